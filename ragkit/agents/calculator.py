"""Built-in tools (being written: issue 11 part 1)."""
