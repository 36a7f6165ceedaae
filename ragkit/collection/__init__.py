"""Collections: a named folder holding one configured set of components and their data.

A collection remembers the configuration it was created with (loader
options, splitter, embedder, store, lexical index) in ``collection.yaml``,
together with the embedder's fingerprint and vector dimension, so every later
ingest and search uses the same components, and a different embedder is
refused instead of silently mixing vectors::

    from ragkit import Collection

    docs = Collection.open_or_create("docs")
    docs.ingest(["handbook/"])
    for hit in docs.search("How do I reset my password?", top_k=3):
        print(hit.score, hit.chunk.source, hit.chunk.text[:80])

The package keeps one job per module: :mod:`~ragkit.collection.core` (the
class), :mod:`~ragkit.collection.layout` (the on-disk layout),
:mod:`~ragkit.collection.config_file` (``collection.yaml``),
:mod:`~ragkit.collection.components` (building components, the embedder
check), :mod:`~ragkit.collection.writer_lock` and
:mod:`~ragkit.collection.keyword` (keyword-index upkeep) and
:mod:`~ragkit.collection.reindex` (rebuilding with a new configuration, swapped in atomically).
"""

from __future__ import annotations

from ragkit.collection.core import Collection, SearchMode
from ragkit.collection.layout import CollectionFolder, HomeLayout, check_collection_name, home_dir
from ragkit.collection.reindex import ReindexReport, reindex_collection
from ragkit.ingest import IngestReport

_home = home_dir
"""Kept for callers that imported the private name (``ragkit.cli``, ``ragkit.rerank_cli``)."""

__all__ = [
    "Collection",
    "CollectionFolder",
    "HomeLayout",
    "IngestReport",
    "ReindexReport",
    "SearchMode",
    "check_collection_name",
    "reindex_collection",
]
