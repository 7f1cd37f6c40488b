"""Event intake (verify, strip, buffer) and dispatch (queue message → registered handlers)."""
