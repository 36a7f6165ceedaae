"""Built-in context shaper stages."""
