"""The FAISS store's GPU path, tested for its CPU-side logic.

No GPU here (nor in CI): the decisions are pure functions checked with given
numbers, the real faiss CPU build is checked for what it reports and refuses,
and the store's GPU search path runs against ``FakeGpuBackend``, a FAKE GPU
that clones with faiss's CPU functions (what ``index_cpu_to_gpu`` returns
behaves the same: an independent copy answering the same searches). How
``FaissGpu`` calls faiss's GPU API (which function for one GPU or several,
with which cloner options; the CAGRA build) is checked against
``FakeGpuFaiss``, a FAKE GPU build of the faiss module that records the calls.
"""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from ragkit.errors import ConfigError, UnavailableError
from ragkit.filters import parse_filter
from ragkit.stores.faiss_gpu import (
    CAGRA_MIN_VECTORS,
    GPU_MIN_VECTORS,
    FaissGpu,
    FakeGpuBackend,
    build_mirror,
    choose_device,
    gpu_index_type,
)
from ragkit.stores.faiss_store import FaissStore

from .test_faiss_store import make_chunks, unit_vectors

CPU_BUILD = FaissGpu(faiss).num_gpus() == 0


# -- decisions, with given facts ------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "gpus", "chosen"),
    [("auto", 0, "cpu"), ("auto", 1, "cuda"), ("auto", 4, "cuda"), ("cpu", 2, "cpu"), ("cuda", 1, "cuda")],
)
def test_device_choice_follows_the_gpus_faiss_reports(requested, gpus, chosen):
    assert choose_device(requested, gpus) == chosen


def test_asking_for_cuda_without_a_gpu_is_a_config_error_naming_the_setting():
    with pytest.raises(ConfigError, match=r"option 'device'.*no GPU.*ragkit\[gpu\]"):
        choose_device("cuda", 0)
    with pytest.raises(ConfigError, match="option 'device'"):
        choose_device("gpu", 1)


@pytest.mark.parametrize(
    ("kind", "count", "cagra", "expected"),
    [
        ("flat", 1_000_000, False, "GpuIndexFlatIP"),
        ("ivf", 1_000_000, False, "GpuIndexIVFFlat"),
        ("hnsw", 1_000_000, True, "GpuIndexCagra"),
        ("hnsw", CAGRA_MIN_VECTORS - 1, True, "GpuIndexFlatIP"),  # too few for a useful graph
        ("hnsw", 1_000_000, False, "GpuIndexFlatIP"),  # no CAGRA in the build: exact brute force on the GPU
    ],
)
def test_the_gpu_index_type_for_each_kind_and_size(kind, count, cagra, expected):
    assert gpu_index_type(kind, count, cagra, min_vectors=min(count, GPU_MIN_VECTORS)) == expected
    assert gpu_index_type(kind, GPU_MIN_VECTORS - 1, cagra) is None  # too small to pay for the copy


def test_the_metric_names_the_flat_gpu_index_and_an_unknown_metric_is_refused():
    assert gpu_index_type("flat", 10**6, False, metric="l2") == "GpuIndexFlatL2"
    with pytest.raises(ConfigError, match="metric"):
        gpu_index_type("flat", 10**6, False, metric="cosine")


# -- the real faiss CPU build ----------------------------------------------------------


@pytest.mark.skipif(not CPU_BUILD, reason="needs a CPU build of faiss (this one reports GPUs)")
def test_a_cpu_build_reports_no_gpu_and_auto_searches_on_the_cpu(tmp_path):
    backend = FaissGpu(faiss)
    assert backend.num_gpus() == 0 and not backend.has_cagra()
    # the CPU wheel still defines index_cpu_to_all_gpus, which fails inside (NameError): never reached
    with pytest.raises(UnavailableError, match="no GPU"):
        backend.to_gpu(faiss.IndexFlatIP(4))
    store = FaissStore(path=tmp_path, dimension=16)
    store.upsert(make_chunks(10), unit_vectors(10))
    assert store.stats()["search_device"] == "cpu" and store.stats()["gpu_index"] is None
    assert store.to_config()["device"] == "auto" and "gpu_backend" not in store.to_config()


@pytest.mark.skipif(not CPU_BUILD, reason="needs a CPU build of faiss (this one reports GPUs)")
def test_device_cuda_on_a_cpu_build_is_refused_when_the_store_is_built(tmp_path):
    with pytest.raises(ConfigError, match="store 'faiss' option 'device': 'cuda'"):
        FaissStore.from_config({"device": "cuda"}, path=tmp_path, dimension=16)


class FakeGpuFaiss:
    """A FAKE GPU build of faiss: the GPU names of faiss's API (as the faiss-gpu-cu12 wheel spells them),
    recording how they are called and cloning with the real CPU faiss; everything else is the real module."""

    def __init__(self, gpus: int, cagra: bool = False) -> None:
        self.gpus = gpus
        self.calls: list[tuple] = []
        if cagra:
            self.GpuIndexCagra = self._cagra

    def __getattr__(self, name):
        return getattr(faiss, name)

    def get_num_gpus(self):
        return self.gpus

    class GpuClonerOptions:
        useFloat16 = True  # faiss's own default is False; set here so the test sees ragkit set it

    class GpuMultipleClonerOptions(GpuClonerOptions):
        shard = True

    class GpuIndexCagraConfig:
        pass

    def StandardGpuResources(self):
        self.calls.append(("StandardGpuResources",))
        return "resources"

    def index_cpu_to_gpu(self, resources, device, index, options=None):
        self.calls.append(("index_cpu_to_gpu", resources, device, options.useFloat16))
        return faiss.clone_index(index)

    def index_cpu_to_all_gpus(self, index, co=None, ngpu=-1):
        self.calls.append(("index_cpu_to_all_gpus", co.useFloat16, co.shard))
        return faiss.clone_index(index)

    def index_gpu_to_cpu(self, index):
        self.calls.append(("index_gpu_to_cpu",))
        return faiss.clone_index(index)

    def _cagra(self, resources, d, metric, config):
        self.calls.append(("GpuIndexCagra", resources, d, metric))
        calls = self.calls

        class Graph:
            def train(self, vectors):  # GpuIndexCagra builds its graph in train()
                calls.append(("train", vectors.shape, vectors.dtype))

        return Graph()


def test_one_gpu_clones_with_index_cpu_to_gpu_in_float32_reusing_its_resources():
    fake = FakeGpuFaiss(gpus=1)
    backend = FaissGpu(fake)
    assert backend.num_gpus() == 1 and not backend.has_cagra()
    for _ in range(2):
        backend.to_gpu(faiss.IndexFlatIP(4))
    assert fake.calls == [
        ("StandardGpuResources",),
        ("index_cpu_to_gpu", "resources", 0, False),
        ("index_cpu_to_gpu", "resources", 0, False),
    ]
    backend.to_cpu(faiss.IndexFlatIP(4))
    assert fake.calls[-1] == ("index_gpu_to_cpu",)


def test_several_gpus_get_a_full_replica_each():
    fake = FakeGpuFaiss(gpus=4)
    FaissGpu(fake).to_gpu(faiss.IndexFlatIP(4))
    assert fake.calls == [("index_cpu_to_all_gpus", False, False)]  # float32, replicas (shard off)


def test_a_cagra_build_trains_an_inner_product_graph_on_the_vectors():
    fake = FakeGpuFaiss(gpus=1, cagra=True)
    backend = FaissGpu(fake)
    assert backend.has_cagra()
    backend.cagra(unit_vectors(50).astype(np.float64))
    assert fake.calls[-2:] == [
        ("GpuIndexCagra", "resources", 16, faiss.METRIC_INNER_PRODUCT),
        ("train", (50, 16), np.float32),  # faiss takes float32 only
    ]


# -- the store's GPU search path, on a FAKE GPU ------------------------------------------


def fake_gpu_store(path, kind="flat", cagra=False, **options):
    backend = FakeGpuBackend(faiss, cagra=cagra)
    store = FaissStore(path=path, dimension=16, index=kind, device="cuda", gpu_min_vectors=100, gpu_backend=backend)
    return store, backend


def ids_of(results):
    return [[hit.chunk.id for hit in hits] for hits in results]


def test_unfiltered_search_goes_through_the_gpu_copy_and_finds_what_the_cpu_finds(tmp_path):
    vectors, queries = unit_vectors(600), unit_vectors(20, seed=1)
    chunks = make_chunks(600)
    store, backend = fake_gpu_store(tmp_path / "gpu")
    cpu = FaissStore(path=tmp_path / "cpu", dimension=16, index="flat", device="cpu")
    for s in (store, cpu):
        s.upsert(chunks, vectors)
    assert ids_of(store.search(queries, 5)) == ids_of(cpu.search(queries, 5))
    assert backend.calls == ["to_gpu"] and store.stats()["gpu_index"] == "GpuIndexFlatIP"
    # a filter needs an IDSelector, which GPU indexes do not take: the CPU index answers it
    even = parse_filter({"even": True})
    assert ids_of(store.search(queries, 5, even)) == ids_of(cpu.search(queries, 5, even))
    assert backend.calls == ["to_gpu"]


def test_writes_keep_the_gpu_copy_current(tmp_path):
    store, backend = fake_gpu_store(tmp_path)
    store.upsert(make_chunks(300), unit_vectors(300))
    store.search(unit_vectors(1, seed=3), 3)
    new = unit_vectors(1, seed=9)
    store.upsert(make_chunks(1, source="new.md"), new)  # added to the GPU copy in place
    assert store.search(new, 1)[0][0].chunk.id == "new.md-0"
    assert backend.calls == ["to_gpu"]
    store.delete_sources(["new.md"])  # GPU indexes cannot remove ids: cloned again on the next search
    assert store.search(new, 1)[0][0].chunk.id != "new.md-0"
    assert backend.calls == ["to_gpu", "to_gpu"]


def test_a_small_collection_stays_on_the_cpu_until_it_grows(tmp_path):
    store, backend = fake_gpu_store(tmp_path)
    store.upsert(make_chunks(50), unit_vectors(50))
    store.search(unit_vectors(1), 3)
    assert backend.calls == [] and store.stats()["gpu_index"] is None
    store.upsert(make_chunks(100, start=50), unit_vectors(100, seed=5))
    store.search(unit_vectors(1), 3)
    assert backend.calls == ["to_gpu"]


def test_saving_writes_the_cpu_index_and_a_cpu_machine_reopens_it(tmp_path):
    vectors, queries = unit_vectors(400), unit_vectors(10, seed=2)
    store, _ = fake_gpu_store(tmp_path)
    store.upsert(make_chunks(400), vectors)
    before = ids_of(store.search(queries, 5))
    store.close()
    reopened = FaissStore(path=tmp_path, dimension=16, index="flat", device="cpu")
    assert ids_of(reopened.search(queries, 5)) == before


def test_an_ivf_gpu_copy_gets_the_stores_nprobe(tmp_path):
    store = FaissStore(
        path=tmp_path,
        dimension=16,
        index="ivf",
        nlist=8,
        nprobe=3,
        device="cuda",
        gpu_min_vectors=100,
        gpu_backend=FakeGpuBackend(faiss),
    )
    vectors = unit_vectors(800)
    store.upsert(make_chunks(800), vectors)
    store.search(vectors[:1], 1)
    mirror = store._gpu_mirror
    assert mirror is not None and mirror.type_name == "GpuIndexIVFFlat" and mirror.index.nprobe == 3
    assert store.search(vectors[:5], 1) and [h[0].chunk.id for h in store.search(vectors[:5], 1)] == [
        f"s.md-{i}" for i in range(5)
    ]


def test_a_cagra_copy_maps_graph_positions_back_to_the_stores_ids(tmp_path, monkeypatch):
    monkeypatch.setattr("ragkit.stores.faiss_gpu.CAGRA_MIN_VECTORS", 100)  # a small graph, for speed
    store, backend = fake_gpu_store(tmp_path, kind="hnsw", cagra=True)
    store.upsert(make_chunks(200, source="a.md"), unit_vectors(200))
    store.delete_sources(["a.md"])  # row ids no longer start at 1
    vectors = unit_vectors(300, seed=4)
    store.upsert(make_chunks(300, source="b.md"), vectors)
    found = store.search(vectors[[7, 150, 299]], 1)
    assert [hits[0].chunk.id for hits in found] == ["b.md-7", "b.md-150", "b.md-299"]
    assert backend.calls == ["cagra"] and store.stats()["gpu_index"] == "GpuIndexCagra"
    # moving it back to the CPU (faiss converts CAGRA to its CPU HNSW) gives a searchable CPU index
    cpu_copy = store._gpu_mirror.cpu_copy(backend)
    assert backend.calls[-1] == "to_cpu" and cpu_copy.ntotal == 300


def test_hnsw_without_cagra_searches_exactly_on_the_gpu(tmp_path):
    backend = FakeGpuBackend(faiss, cagra=False)
    vectors = unit_vectors(300)
    cpu_index = faiss.IndexIDMap2(faiss.IndexHNSWFlat(16, 8, faiss.METRIC_INNER_PRODUCT))
    ids = np.arange(10, 310, dtype=np.int64)
    cpu_index.add_with_ids(vectors, ids)
    mirror = build_mirror(backend, cpu_index, "hnsw", lambda: (ids, vectors), 8, faiss, min_vectors=100)
    assert mirror is not None and mirror.type_name == "GpuIndexFlatIP"
    exact = vectors @ vectors[:4].T
    assert list(mirror.search(vectors[:4], 1)[1][:, 0]) == list(ids[np.argmax(exact, axis=0)])


# -- on a real GPU (gpu_check.sh runs these there) -----------------------------------------


@pytest.mark.skipif(CPU_BUILD, reason="needs a GPU build of faiss and a GPU: faiss reports none here")
@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_on_a_real_gpu_the_store_searches_there_and_agrees_with_the_cpu(tmp_path, kind):
    vectors, queries = unit_vectors(3000), unit_vectors(20, seed=1)
    options = {"dimension": 16, "index": kind, "nlist": 16, "nprobe": 16}
    gpu = FaissStore(path=tmp_path / "gpu", device="cuda", gpu_min_vectors=100, **options)
    cpu = FaissStore(path=tmp_path / "cpu", device="cpu", **options)
    for s in (gpu, cpu):
        s.upsert(make_chunks(3000), vectors)
    assert [h[0].chunk.id for h in gpu.search(queries, 1)] == [h[0].chunk.id for h in cpu.search(queries, 1)]
    assert gpu.stats()["search_device"] == "cuda" and gpu.stats()["gpu_index"].startswith("GpuIndex")
    gpu.close()  # saves the CPU index: a CPU-only process reopens it
    assert FaissStore(path=tmp_path / "gpu", device="cpu", **options).count() == 3000
