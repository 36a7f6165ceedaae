"""Where the FAISS store searches: a GPU copy of its index when faiss reports GPUs.

The store's own index always stays on the CPU: it takes the writes
(``add_with_ids``, ``remove_ids``), answers filtered and exact searches (GPU
indexes take no ``IDSelector``) and is what :meth:`FaissStore.flush` saves.
On a machine with a GPU build of faiss (``pip install ragkit[gpu]``: the
``faiss-gpu-cu12`` wheel, which replaces ``faiss-cpu``) the store also keeps
a :class:`GpuMirror`: a copy of that index on the GPU that answers
unfiltered searches. New vectors are added to it as they are added to the CPU
index; removals drop it, and the next search clones it again.

Which GPU index is built (:func:`gpu_index_type`):

- ``flat`` → ``GpuIndexFlatIP`` (exact, brute force on the GPU);
- ``ivf`` → ``GpuIndexIVFFlat`` (``index_cpu_to_gpu`` with cloner options);
- ``hnsw`` → ``GpuIndexCagra`` where the build has CAGRA (``faiss``
  builds with cuVS; the PyPI ``faiss-gpu-cu12`` wheel has none) and the
  collection is large enough to build its graph, else ``GpuIndexFlatIP``
  (exact brute force on a GPU outruns a CPU HNSW graph up to millions of
  vectors);
- below :data:`GPU_MIN_VECTORS` vectors nothing moves: copying to the GPU
  costs more than the CPU search it saves.

The decisions are pure functions of facts (the GPU count, whether the build
has CAGRA, the collection size) so they are tested on machines without a
GPU. The faiss calls go through a :class:`GpuBackend`; :class:`FaissGpu`
wraps faiss's GPU functions (the store passes the ``faiss`` module in: faiss
is imported in the store module only), :class:`FakeGpuBackend` stands in for
a GPU on CPU-only machines (tests) by cloning with faiss's CPU functions,
which return the same kind of independent copy ``index_cpu_to_gpu`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ragkit.errors import ConfigError, UnavailableError

DEVICES = ("auto", "cpu", "cuda")
GPU_MIN_VECTORS = 20_000
"""Below this many vectors the store searches on the CPU even where a GPU is present."""
CAGRA_MIN_VECTORS = 10_000
"""CAGRA builds a graph of degree 64: below this it is no better than brute force."""
GPU_MAX_K = 2048
"""faiss's GPU indexes return at most this many neighbours (and take at most this nprobe)."""


def check_device(device: object) -> str:
    """Return ``device`` if it is one of :data:`DEVICES`, else raise :class:`ConfigError`."""
    if device not in DEVICES:
        raise ConfigError(f"store 'faiss' option 'device': expected one of {', '.join(DEVICES)}, got {device!r}")
    return str(device)


def choose_device(requested: str, num_gpus: int) -> str:
    """``cpu`` or ``cuda``: where the store searches, given how many GPUs faiss reports.

    ``auto`` is ``cuda`` when faiss reports a GPU, else ``cpu``. ``cuda`` with
    no GPU raises :class:`ConfigError` naming the setting (a silent fallback
    would hide a missing ``faiss-gpu`` install or driver).
    """
    check_device(requested)
    if requested == "auto":
        return "cuda" if num_gpus > 0 else "cpu"
    if requested == "cuda" and num_gpus < 1:
        raise ConfigError(
            "store 'faiss' option 'device': 'cuda' was asked for but faiss reports no GPU "
            "(install the GPU build, `pip install ragkit[gpu]`, which replaces faiss-cpu, on a machine "
            "with an NVIDIA driver; or set device: auto)"
        )
    return requested


def gpu_index_type(
    kind: str, count: int, has_cagra: bool, metric: str = "ip", min_vectors: int = GPU_MIN_VECTORS
) -> str | None:
    """The faiss GPU index class the store builds for an index ``kind`` of ``count`` vectors.

    ``None`` means the search stays on the CPU (too few vectors to pay for the copy).
    ``metric`` is ``ip`` (the store's: cosine on unit vectors) or ``l2``;
    ``min_vectors`` is the store's ``gpu_min_vectors`` option.
    """
    if metric not in ("ip", "l2"):
        raise ConfigError(f"store 'faiss': metric must be ip or l2, got {metric!r}")
    if count < min_vectors:
        return None
    flat = "GpuIndexFlatIP" if metric == "ip" else "GpuIndexFlatL2"
    if kind == "ivf":
        return "GpuIndexIVFFlat"
    if kind == "hnsw" and has_cagra and count >= CAGRA_MIN_VECTORS:
        return "GpuIndexCagra"
    return flat


class GpuBackend(Protocol):
    """The faiss GPU calls the store needs (the real ones, or a CPU stand-in in tests)."""

    def num_gpus(self) -> int:
        """GPUs faiss can use."""

    def has_cagra(self) -> bool:
        """Whether this faiss build has CAGRA (``GpuIndexCagra``)."""

    def to_gpu(self, index: Any) -> Any:
        """A copy of a CPU index on the GPU(s)."""

    def cagra(self, vectors: np.ndarray) -> Any:
        """A CAGRA graph over ``vectors`` (searched by position), built on the GPU."""

    def to_cpu(self, index: Any) -> Any:
        """A CPU copy of a GPU index (CAGRA becomes faiss's CPU HNSW, ``IndexHNSWCagra``)."""


class FaissGpu:
    """:class:`GpuBackend` over a GPU build of faiss (passed in as ``faiss``)."""

    def __init__(self, faiss: Any, use_float16: bool = False) -> None:
        self.faiss = faiss
        self.use_float16 = use_float16
        self._resources: list[Any] = []

    def num_gpus(self) -> int:
        """``faiss.get_num_gpus()``: 0 on CPU builds, which lack the GPU functions altogether."""
        get = getattr(self.faiss, "get_num_gpus", None)
        if get is None or not hasattr(self.faiss, "index_cpu_to_gpu"):
            return 0
        return int(get())

    def has_cagra(self) -> bool:
        """Whether this build has ``GpuIndexCagra`` (faiss built with cuVS)."""
        return hasattr(self.faiss, "GpuIndexCagra")

    def _require_gpu(self) -> None:
        if self.num_gpus() < 1:
            raise UnavailableError("faiss reports no GPU: this is a CPU build of faiss or no GPU is visible")

    def _options(self, multiple: bool) -> Any:
        faiss = self.faiss
        options = faiss.GpuMultipleClonerOptions() if multiple else faiss.GpuClonerOptions()
        options.useFloat16 = self.use_float16  # float32 keeps scores equal to the CPU index's
        if multiple:
            options.shard = False  # a full replica per GPU: more queries per second, same results
        return options

    def to_gpu(self, index: Any) -> Any:
        """``index_cpu_to_gpu`` on one GPU, ``index_cpu_to_all_gpus`` (replicas) on several."""
        self._require_gpu()
        faiss = self.faiss
        if self.num_gpus() > 1 and hasattr(faiss, "GpuMultipleClonerOptions"):
            return faiss.index_cpu_to_all_gpus(index, co=self._options(multiple=True))
        if not self._resources:
            self._resources.append(faiss.StandardGpuResources())
        return faiss.index_cpu_to_gpu(self._resources[0], 0, index, self._options(multiple=False))

    def cagra(self, vectors: np.ndarray) -> Any:
        """A ``GpuIndexCagra`` (inner product) trained, which builds its graph, on ``vectors``."""
        self._require_gpu()
        faiss = self.faiss
        if not self._resources:
            self._resources.append(faiss.StandardGpuResources())
        config = faiss.GpuIndexCagraConfig()
        index = faiss.GpuIndexCagra(self._resources[0], vectors.shape[1], faiss.METRIC_INNER_PRODUCT, config)
        index.train(np.ascontiguousarray(vectors, dtype=np.float32))
        return index

    def to_cpu(self, index: Any) -> Any:
        """``index_gpu_to_cpu`` (a ``GpuIndexCagra`` comes back as an ``IndexHNSWCagra``)."""
        return self.faiss.index_gpu_to_cpu(index)


class FakeGpuBackend:
    """A FAKE GPU for tests on machines without one: real faiss CPU calls standing in for the GPU ones.

    ``to_gpu`` is ``faiss.clone_index`` (an independent copy, as
    ``index_cpu_to_gpu`` makes), ``cagra`` builds a CPU HNSW graph over the
    positions (what CAGRA's CPU conversion is searched as), ``to_cpu`` clones
    back. It counts its calls so tests can see which path ran.
    """

    def __init__(self, faiss: Any, gpus: int = 1, cagra: bool = False) -> None:
        self.faiss = faiss
        self.gpus = gpus
        self.with_cagra = cagra
        self.calls: list[str] = []

    def num_gpus(self) -> int:
        """The number of fake GPUs it was made with."""
        return self.gpus

    def has_cagra(self) -> bool:
        """Whether it pretends the build has CAGRA."""
        return self.with_cagra

    def to_gpu(self, index: Any) -> Any:
        """A CPU clone of ``index``."""
        self.calls.append("to_gpu")
        return self.faiss.clone_index(index)

    def cagra(self, vectors: np.ndarray) -> Any:
        """A CPU HNSW (inner product) over ``vectors``, searched by position."""
        self.calls.append("cagra")
        index = self.faiss.IndexHNSWFlat(vectors.shape[1], 32, self.faiss.METRIC_INNER_PRODUCT)
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        index.hnsw.efSearch = 128
        return index

    def to_cpu(self, index: Any) -> Any:
        """A CPU clone of ``index``."""
        self.calls.append("to_cpu")
        return self.faiss.clone_index(index)


@dataclass
class GpuMirror:
    """A GPU copy of the store's CPU index, for unfiltered searches.

    ``positions`` is set for a CAGRA mirror, which is searched by position:
    it maps positions back to the store's row ids.
    """

    index: Any
    type_name: str
    positions: np.ndarray | None = None

    def add(self, rowids: np.ndarray, vectors: np.ndarray) -> bool:
        """Add new vectors as the CPU index did; ``False`` when this mirror cannot (CAGRA: rebuild it)."""
        if self.positions is not None:
            return False
        self.index.add_with_ids(vectors, rowids)
        return True

    def search(self, queries: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and row ids of the ``top_k`` nearest vectors, as the CPU index answers."""
        scores, found = self.index.search(queries, top_k)
        if self.positions is None:
            return scores, found
        ids = np.where(found >= 0, self.positions[np.clip(found, 0, None)], -1)
        return scores, ids

    def cpu_copy(self, backend: GpuBackend) -> Any:
        """A CPU copy of this mirror (CAGRA comes back as faiss's CPU HNSW), e.g. to save it."""
        return backend.to_cpu(self.index)


def build_mirror(
    backend: GpuBackend,
    cpu_index: Any,
    kind: str,
    vectors: Any,
    nprobe: int,
    faiss: Any,
    min_vectors: int = GPU_MIN_VECTORS,
) -> GpuMirror | None:
    """The GPU copy of ``cpu_index`` (an ``IndexIDMap2`` or ``IndexIVF`` of the store's ``kind``).

    ``vectors`` is a callable giving ``(row ids, vectors)``; only a CAGRA
    build calls it. ``None`` when the collection is too small for the GPU.
    """
    count = int(cpu_index.ntotal)
    type_name = gpu_index_type(kind, count, backend.has_cagra(), min_vectors=min_vectors)
    if type_name is None:
        return None
    if type_name == "GpuIndexCagra":
        ids, data = vectors()
        return GpuMirror(backend.cagra(data), type_name, positions=np.asarray(ids, dtype=np.int64))
    if kind == "hnsw":  # no CAGRA: exact brute force on the GPU over the same vectors
        ids, data = vectors()
        flat = faiss.IndexIDMap2(faiss.IndexFlatIP(data.shape[1]))
        flat.add_with_ids(data, ids)
        return GpuMirror(backend.to_gpu(flat), type_name)
    mirror = backend.to_gpu(cpu_index)
    inner = faiss.downcast_index(mirror.index) if hasattr(mirror, "index") else mirror
    if hasattr(inner, "nprobe"):
        inner.nprobe = min(nprobe, GPU_MAX_K)
    elif hasattr(mirror, "nprobe"):
        mirror.nprobe = min(nprobe, GPU_MAX_K)
    return GpuMirror(mirror, type_name)
