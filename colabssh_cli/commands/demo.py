"""`colabssh demo` and related commands (being written)."""
