"""`colabssh sync` and related commands (being written)."""
