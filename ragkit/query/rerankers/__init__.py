"""Built-in reranker stages (the cross-encoder comes with ``ragkit-sentence-transformers``).

Each module registers its stages; :mod:`ragkit.registry` imports them when a
reranker is asked for.
"""
