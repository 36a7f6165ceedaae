"""Placeholder: filled in by the diversity reranker work."""
