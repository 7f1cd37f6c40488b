"""The installation registry: one record per portal (member_id), with explicit states."""
