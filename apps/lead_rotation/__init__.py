"""The second example: round-robin assignment of new leads, with an options page for the admin."""
