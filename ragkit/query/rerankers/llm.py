"""Placeholder: filled in by the llm reranker work."""
