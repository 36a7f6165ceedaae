"""Annoy for ragkit: a read-mostly approximate vector store, rebuilt on change.

Installing ``ragkit-annoy`` registers the store as ``{"type": "annoy"}``.
The ``annoy`` library is imported only when an index is built or loaded.
"""

from ragkit_annoy.store import AnnoyStore

__all__ = ["AnnoyStore"]
