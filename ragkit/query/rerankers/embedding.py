"""Placeholder: filled in by the embedding reranker work."""
