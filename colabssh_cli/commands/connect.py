"""`colabssh connect` and related commands (being written)."""
