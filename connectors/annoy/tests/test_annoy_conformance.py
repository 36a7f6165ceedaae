"""The VectorStore conformance suite against the Annoy store, in two configurations.

``TestAnnoyStoreDefaults``: the options a user gets. At conformance sizes
(tens to hundreds of vectors, below ``exact_below``) no forest is built and
search is exact, so this run checks the storage, filters and durability.

``TestAnnoyForest`` forces Annoy for every search
(``exact_below=0``) and every filter (``exact_filter_limit=1``: filters go
through over-fetching and post-filtering), with ``search_k`` large enough
that Annoy inspects every tree node at these sizes: its candidates then hold
every item, and after the exact rescoring the ranking is exact, so the
suite's exact-ranking tests apply to the forest as well. No part is skipped.
The ``dot`` metric runs the same forest code; test_annoy_store.py checks it
against brute force (a third full run would cost CI ~12 s more).
"""

from __future__ import annotations

import pytest
from ragkit_annoy import AnnoyStore

from ragkit.testing.vector_store_conformance import VectorStoreConformance


class TestAnnoyStoreDefaults(VectorStoreConformance):
    @pytest.fixture
    def make_store(self):
        def make(path, dimension):
            return AnnoyStore(path=path, dimension=dimension, name="conformance")

        return make


class TestAnnoyForest(VectorStoreConformance):
    @pytest.fixture
    def make_store(self):
        def make(path, dimension):
            return AnnoyStore(
                path=path,
                dimension=dimension,
                name="conformance",
                n_trees=8,
                search_k=100_000,
                exact_below=0,
                exact_filter_limit=1,
            )

        return make
