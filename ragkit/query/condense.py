"""Placeholder: the condense transform (conversation memory)."""
