"""Built-in query transform stages (filled in by the LLM transforms)."""
