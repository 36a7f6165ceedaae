"""Annoy as a ragkit vector store: read-mostly, approximate, rebuilt on change.

Annoy (Spotify's "Approximate Nearest Neighbors Oh Yeah") builds a forest
of random-projection trees that cannot change once built. So this store
keeps everything that does change in ragkit's own embedded store: it *is*
the built-in FAISS store (:class:`ragkit.stores.faiss_store.FaissStore`)
with the FAISS index swapped for an Annoy one. SQLite (``store.sqlite``)
stays the source of truth for chunks, metadata, vectors and source records;
filters run on the same in-memory metadata columns
(:class:`ragkit.stores.columns.MetadataColumns`) with the same semantics.

When the index is rebuilt: **lazily**. A write (upsert, commit, delete)
only marks the index stale; the next search, or :meth:`flush` (which
``close`` and every ingest call), rebuilds it from SQLite. A bulk ingest
therefore builds once, and a stream of writes between two searches costs
one rebuild. Each rebuild reads every vector, so the store suits
collections written in batches and searched a lot, not a write-heavy one.

Files in the collection folder, written by :meth:`flush`:
``vectors.annoy`` (the forest), ``vectors.npy`` (the vectors, row ``i`` is
Annoy item ``i``), ``rowids.npy`` (item to SQLite row) and ``annoy.json``
(stamped with the database generation they reflect, written last). On open
the index and the vectors are memory-mapped, not read; when the stamp
disagrees with the database (a crash between a write and a flush, or other
build options) the index is rebuilt at the first search.

Search: Annoy proposes candidates, which are rescored with the exact inner
product of the stored vectors (the score every ragkit store returns), so
scores are exact and only recall is approximate. Below ``exact_below``
vectors no forest is built and search is exact. Filters: a filter matching
at most ``exact_filter_limit`` chunks is searched exactly over just those
vectors; a broader one over-fetches from Annoy (by the inverse of the
fraction that matches, growing fourfold while too few candidates pass) and
keeps the matching candidates, falling back to the exact search over the
matching vectors when Annoy still runs dry.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ragkit.errors import ConfigError, StorageError
from ragkit.stores.faiss_store import FaissStore
from ragkit.stores.files import fsync_file
from ragkit_annoy import _annoy

log = logging.getLogger(__name__)

_FORMAT = 1
_INDEX_FILE = "vectors.annoy"
_VECTORS_FILE = "vectors.npy"
_ROWIDS_FILE = "rowids.npy"
_META_FILE = "annoy.json"
_EXACT_BATCH = 16_000_000
"""Score-matrix cells per batch of queries in the exact search (64 MB of float32)."""


class AnnoyStore(FaissStore):
    """Annoy vectors plus ragkit's SQLite document store, in one folder (``store: {type: annoy}``)."""

    component_type = "annoy"

    def __init__(
        self,
        path: str | Path,
        dimension: int,
        name: str = "",
        n_trees: int = 50,
        search_k: int = 10_000,
        metric: str = "angular",
        exact_below: int = 10_000,
        exact_filter_limit: int = 50_000,
        seed: int = 1,
        n_jobs: int = -1,
        read_only: bool = False,
    ) -> None:
        """Open (or create) the store in ``path``.

        ``n_trees``: trees in the forest (more: better recall, bigger index,
        slower build). ``search_k``: candidate items Annoy gathers from the
        trees per query for ``top_k`` results (scaled up when over-fetching);
        ``-1`` is Annoy's own default, ``n_trees * top_k``: fast, but it finds
        only part of the true neighbours of 384-d embeddings. ``metric``: ``angular`` (cosine;
        right for normalised embeddings) or ``dot``. ``exact_below``: below
        this many vectors no forest is built and search is exact.
        ``exact_filter_limit``: filters matching at most this many chunks are
        searched exactly. ``seed``: the forest's random seed (the same data
        gives the same index). ``n_jobs``: threads for building (``-1``: all).
        """
        if metric not in _annoy.METRICS:
            raise ConfigError(f"store 'annoy': metric must be one of {', '.join(_annoy.METRICS)}, got {metric!r}")
        for option, value in (("n_trees", n_trees), ("exact_filter_limit", exact_filter_limit)):
            if value < 1:
                raise ConfigError(f"store 'annoy': {option} must be positive, got {value}")
        if search_k < 1 and search_k != -1:
            raise ConfigError(f"store 'annoy': search_k must be positive or -1 (Annoy's default), got {search_k}")
        if exact_below < 0:
            raise ConfigError(f"store 'annoy': exact_below must be 0 or more, got {exact_below}")
        if n_jobs == 0 or n_jobs < -1:
            raise ConfigError(f"store 'annoy': n_jobs must be positive or -1 (every core), got {n_jobs}")
        self.n_trees = n_trees
        self.search_k = search_k
        self.metric = metric
        self.exact_below = exact_below
        self.seed = seed
        self.n_jobs = n_jobs
        self._annoy: Any = None
        self._item_rowids = np.empty(0, dtype=np.int64)
        self._item_vectors: np.ndarray = np.empty((0, dimension), dtype=np.float32)
        self._stale = True
        super().__init__(
            path, dimension, name, exact_filter_limit=exact_filter_limit, read_only=read_only, device="cpu"
        )

    def _choose_search_device(self) -> str:
        return "cpu"  # Annoy has no GPU search

    # -- the Annoy index (overrides of FaissStore's index hooks) -----------------------

    def _files(self) -> dict[str, Path]:
        names = {"index": _INDEX_FILE, "vectors": _VECTORS_FILE, "rowids": _ROWIDS_FILE, "meta": _META_FILE}
        return {key: self.path / name for key, name in names.items()}

    def _build_stamp(self) -> dict[str, Any]:
        return {"format": _FORMAT, "metric": self.metric, "n_trees": self.n_trees, "seed": self.seed}

    def _load_index(self) -> None:
        """Memory-map the saved index when its stamp matches the database; else mark it stale."""
        generation = self._generation()
        self._index_generation = generation
        count = self.count()
        files = self._files()
        self._annoy = None
        try:
            meta = json.loads(files["meta"].read_text())
            expected = {**self._build_stamp(), "generation": generation, "count": count}
            if all(meta.get(key) == value for key, value in expected.items()):
                rowids = np.load(files["rowids"])
                vectors = np.load(files["vectors"], mmap_mode="r")
                annoy = _annoy.load_index(files["index"], self._dimension, self.metric) if meta["annoy"] else None
                if (
                    len(rowids) == count
                    and vectors.shape == (count, self._dimension)
                    and (annoy is None or annoy.get_n_items() == count)
                ):
                    self._annoy, self._item_rowids, self._item_vectors = annoy, rowids, vectors
                    self._stale = self._dirty = False
                    return
            log.warning("Annoy index in %s does not match the database; rebuilding it at the next search", self.path)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("Annoy index in %s is unreadable (%s); rebuilding it at the next search", self.path, exc)
        self._item_rowids = np.empty(0, dtype=np.int64)
        self._item_vectors = np.empty((0, self._dimension), dtype=np.float32)
        self._stale = self._dirty = True

    def _rebuild_index(self) -> None:
        """Build the forest from the vectors in SQLite (the source of truth)."""
        rowids, vectors = self._all_vectors()
        self._annoy = None  # let the old forest go before building the new one
        if len(rowids) and len(rowids) >= self.exact_below:
            self._annoy = _annoy.new_index(vectors, self.metric, self.n_trees, self.seed, self.n_jobs)
        self._item_rowids, self._item_vectors = rowids, vectors
        self._stale = False
        self._dirty = True

    def _ensure_current(self) -> None:
        """Rebuild the forest when a write came after it was built (the caller holds the lock)."""
        if self._stale:
            self._rebuild_index()

    def _index_add(self, rowids: np.ndarray, vectors: np.ndarray) -> None:
        self._stale = self._dirty = True

    def _index_remove(self, rowids: Any) -> None:
        if not len(rowids):
            return
        if self._columns is not None:
            self._columns.remove(rowids)
        self._stale = self._dirty = True

    def flush(self) -> None:
        """Rebuild a stale index and save it atomically, stamped with the database generation it reflects."""
        with self._lock:
            if self.read_only:
                return
            self._ensure_current()
            if not self._dirty:
                return
            files = self._files()
            meta = {
                **self._build_stamp(),
                "generation": self._generation(),
                "count": len(self._item_rowids),
                "annoy": self._annoy is not None,
            }
            try:
                if self._annoy is not None:
                    tmp = files["index"].with_suffix(".annoy.tmp")
                    if not self._annoy.save(str(tmp)):  # Annoy then maps the saved file instead of its heap copy
                        raise OSError(f"Annoy could not write {tmp}")
                    fsync_file(tmp)
                    os.replace(tmp, files["index"])
                _save_array(files["rowids"], self._item_rowids)
                _save_array(files["vectors"], self._item_vectors)
                self._item_vectors = np.load(files["vectors"], mmap_mode="r")  # the heap copy goes
                tmp_meta = files["meta"].with_suffix(".json.tmp")
                tmp_meta.write_text(json.dumps(meta))
                fsync_file(tmp_meta)
                os.replace(tmp_meta, files["meta"])
            except (OSError, RuntimeError) as exc:
                raise StorageError(f"cannot save the Annoy index in {self.path}: {exc}") from None
            self._dirty = False

    # -- searching -----------------------------------------------------------------------

    def _search_index(self, queries: np.ndarray, top_k: int, allowed: np.ndarray | None) -> tuple[Any, Any]:
        """Annoy's candidates rescored exactly; with ``allowed``, over-fetched and post-filtered."""
        with self._lock:
            self._ensure_current()
            positions = None if allowed is None else self._positions(allowed)
            if self._annoy is None:
                return self._exact(queries, top_k, positions)
            total = len(self._item_rowids)
            mask = None
            if positions is not None:
                mask = np.zeros(total, dtype=bool)
                mask[positions] = True
            eligible = total if positions is None else len(positions)
            want = min(top_k, eligible)
            scores = np.zeros((len(queries), top_k), dtype=np.float32)
            ids = np.full((len(queries), top_k), -1, dtype=np.int64)
            for row, query in enumerate(queries):
                items = self._candidates(query, want, total, eligible, mask)
                if items is None:  # Annoy ran dry before finding enough: exact over what is eligible
                    found_scores, found_ids = self._exact(query[None, :], top_k, positions)
                    scores[row], ids[row] = found_scores[0], found_ids[0]
                    continue
                found = self._rank(query[None, :], np.asarray(items, dtype=np.int64), top_k)
                scores[row, : len(found[0][0])], ids[row, : len(found[1][0])] = found[0][0], found[1][0]
            return scores, ids

    def _candidates(self, query: np.ndarray, want: int, total: int, eligible: int, mask: np.ndarray | None) -> Any:
        """At least ``want`` eligible Annoy items for ``query``, or ``None`` when Annoy cannot give that many."""
        fetch = want if mask is None else math.ceil(want * total / eligible * 2)
        vector = query.tolist()
        while True:
            fetch = min(fetch, total)
            search_k = -1 if self.search_k == -1 else max(self.search_k * fetch // max(want, 1), self.search_k)
            items = self._annoy.get_nns_by_vector(vector, fetch, search_k)
            if mask is not None:
                items = [i for i in items if mask[i]]
            if len(items) >= want:
                return items
            if fetch >= total:
                return None
            fetch *= 4

    def _search_exact(self, queries: np.ndarray, top_k: int, allowed: np.ndarray) -> tuple[Any, Any]:
        """Exact search over just the allowed vectors (a selective filter)."""
        with self._lock:
            self._ensure_current()
            return self._exact(queries, top_k, self._positions(allowed))

    def _positions(self, allowed: np.ndarray) -> np.ndarray:
        """Annoy item numbers of these row ids (both sorted; rows not in the index are left out)."""
        positions = np.searchsorted(self._item_rowids, allowed)
        inside = positions < len(self._item_rowids)
        positions = positions[inside]
        found: np.ndarray = positions[self._item_rowids[positions] == allowed[inside]]
        return found

    def _exact(self, queries: np.ndarray, top_k: int, positions: np.ndarray | None) -> tuple[Any, Any]:
        """Exact inner-product search over every item, or over ``positions``, in batches of queries."""
        items = np.arange(len(self._item_rowids)) if positions is None else positions
        if not len(items):
            return np.zeros((len(queries), 0), dtype=np.float32), np.zeros((len(queries), 0), dtype=np.int64)
        batch = max(1, _EXACT_BATCH // len(items))
        parts = [self._rank(queries[i : i + batch], items, top_k) for i in range(0, len(queries), batch)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _rank(self, queries: np.ndarray, items: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ids and exact scores of the best ``top_k`` of ``items`` per query; ties go to the older row."""
        candidates = np.asarray(self._item_vectors[items], dtype=np.float32)
        scores = queries @ candidates.T
        k = min(top_k, len(items))
        if k < len(items):
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        else:
            top = np.tile(np.arange(k), (len(queries), 1))
        rowids = self._item_rowids[items]
        out_scores = np.empty((len(queries), k), dtype=np.float32)
        out_ids = np.empty((len(queries), k), dtype=np.int64)
        for row in range(len(queries)):
            picked = top[row]
            order = np.lexsort((rowids[picked], -scores[row, picked]))
            out_scores[row] = scores[row, picked[order]]
            out_ids[row] = rowids[picked[order]]
        return out_scores, out_ids

    # -- reporting -------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts and index details, for ``collections show``."""
        return {
            "chunks": self.count(),
            "sources": len(self.sources()),
            "index": "annoy" if self._annoy is not None else "exact",
            "metric": self.metric,
            "n_trees": self.n_trees,
            "index_vectors": len(self._item_rowids),
            "stale": self._stale,
            "memory_mapped": isinstance(self._item_vectors, np.memmap),
            "disk_bytes": sum(f.stat().st_size for f in self.path.iterdir() if f.is_file()),
        }


def _save_array(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as ``.npy`` atomically (a temporary file, fsynced, then renamed)."""
    tmp = path.with_suffix(".npy.tmp")
    with tmp.open("wb") as handle:
        np.save(handle, np.ascontiguousarray(array))
    fsync_file(tmp)
    os.replace(tmp, path)
