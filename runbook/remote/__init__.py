"""Remote access: what runs on the servers (scripts/, loaded by name)."""
