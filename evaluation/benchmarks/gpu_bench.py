"""GPU against the CPU path: embedding throughput, FAISS search, and generation through a local server.

Three parts, each printed as a Markdown table with ratios against the CPU
path a user would otherwise run:

1. **Embedding** (ragkit's sentence-transformers embedder, the packaged
   all-MiniLM-L6-v2): texts per second by device, precision and batch size.
   CPU rows: fp32 (and bf16 where the CPU does it natively); CUDA rows: fp32
   and fp16 at several batch sizes plus ``auto`` (the batch the card's free
   memory allows). Ratios against CPU fp32 at batch 32 (the CPU default).
2. **FAISS search** over ``--vectors`` clustered random unit vectors (1M by default):
   queries per second and recall@10 for CPU flat and CPU IVF (ragkit's
   ``auto`` above 100k vectors, built as the store builds it: sqrt(n) lists,
   nprobe 48), and the GPU copies the store searches on a
   GPU (``GpuIndexFlatIP``, ``GpuIndexIVFFlat``, CAGRA where the build has
   it), made by the store's own code (:mod:`ragkit.stores.faiss_gpu`).
3. **Generation** through a running OpenAI-compatible server (``--server
   http://localhost:8000/v1``: vLLM, TGI's Messages API, ...): completion
   tokens per second, one request at a time and ``--concurrency`` at once,
   against the packaged SmolLM2-135M on this machine's CPU (ragkit's
   ``transformers`` generator).

Where there is no GPU (or no server) those rows say so ("not run: no GPU
here") and the rest runs. ``--check`` instead asserts that ragkit's GPU paths
work on this machine's GPU (see ``gpu_check.sh``).

    python evaluation/benchmarks/gpu_bench.py                      # a few minutes
    python evaluation/benchmarks/gpu_bench.py --vectors 100000 --texts 256
    python evaluation/benchmarks/gpu_bench.py --server http://localhost:8000/v1
    python evaluation/benchmarks/gpu_bench.py --check               # on a GPU machine: pass or fail
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: F401  (sets the offline switches)
from common import log
from formatting import table

NO_GPU = "not run: no GPU here"
NO_SERVER = "not run: no server (--server URL)"
WORDS = (  # noqa: SIM905  (a sentence is easier to read than 26 quoted words)
    "river city bridge history water north market library science museum winter harvest engine signal "
    "garden mountain railway council language festival ocean forest harbour theory planet medicine"
).split()


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def sample_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` sentences of 40 to 160 words (passage-like lengths), the same for every run."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(40, 160)))) + "." for _ in range(n)]


# -- 1. embedding --------------------------------------------------------------------------


def embed_rate(device: str, precision: str, batch: int | None, texts: list[str]) -> dict[str, Any]:
    """Texts per second for one (device, precision, batch) row, after a warm-up batch."""
    from ragkit import registry

    config = {"type": "sentence-transformers", "device": device, "precision": precision, "batch_size": batch}
    embedder = registry.build("embedder", config)
    embedder.embed_documents(texts[:8])  # load and warm up before the clock
    loaded = embedder.load()
    started = time.perf_counter()
    embedder.embed_documents(texts)
    seconds = time.perf_counter() - started
    used = batch or (loaded.cuda_batch_size if device == "cuda" else 32) or 128
    return {"texts_per_s": round(len(texts) / seconds, 1), "batch_used": used, "precision_used": loaded.precision}


def embedding_part(args: argparse.Namespace, gpu: bool) -> list[dict[str, Any]]:
    """The embedding rows: CPU ones always, CUDA ones where there is a GPU."""
    from ragkit_sentence_transformers.selection import cpu_supports_bf16, read_cpu_flags

    rows: list[dict[str, Any]] = []
    cpu_texts = sample_texts(min(args.texts, args.cpu_texts))
    cpu_precisions = ["fp32", "bf16"] if cpu_supports_bf16(read_cpu_flags()) else ["fp32"]
    for precision in cpu_precisions:
        for batch in args.cpu_batches:
            log(f"embedding on the CPU, {precision}, batch {batch}")
            rows.append(
                {
                    "device": "cpu",
                    "precision": precision,
                    "batch": batch,
                    **embed_rate("cpu", precision, batch, cpu_texts),
                }
            )
    texts = sample_texts(args.texts)
    for precision in ("fp32", "fp16"):
        for batch in [*args.gpu_batches, None]:
            row: dict[str, Any] = {"device": "cuda", "precision": precision, "batch": batch or "auto"}
            if gpu:
                log(f"embedding on CUDA, {precision}, batch {batch or 'auto'}")
                row.update(embed_rate("cuda", precision, batch, texts))
            else:
                row["note"] = NO_GPU
            rows.append(row)
    return rows


def embedding_table(rows: list[dict[str, Any]]) -> str:
    """Rows with their ratio against CPU fp32 at batch 32 (else the first CPU row)."""
    cpu = [r for r in rows if r["device"] == "cpu" and "texts_per_s" in r]
    base = next((r for r in cpu if r["precision"] == "fp32" and r["batch"] == 32), cpu[0] if cpu else None)
    lines = []
    for r in rows:
        rate = r.get("texts_per_s")
        ratio = f"{rate / base['texts_per_s']:.2f}x" if rate and base else "–"
        batch = f"{r['batch']}" + (f" (→{r['batch_used']})" if r["batch"] == "auto" and "batch_used" in r else "")
        lines.append([r["device"], r["precision"], batch, f"{rate:,.0f}" if rate else r.get("note", "–"), ratio])
    return table(["device", "precision", "batch", "texts/s", "vs CPU fp32 b32"], lines)


# -- 2. FAISS ------------------------------------------------------------------------------


def unit_vectors(n: int, d: int, seed: int, clusters: int = 2000) -> np.ndarray:
    """Unit rows from a seeded mixture of Gaussian clusters (as the store benchmark draws them), in blocks.

    Embeddings cluster by topic; uniform random vectors would make every
    approximate index look worse than it is on real data. The cluster
    centres depend on ``clusters`` only, so queries (another seed) come from
    the same clusters as the stored vectors.
    """
    centres = np.random.default_rng(12345).standard_normal((clusters, d), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 100_000):
        size = min(100_000, n - start)
        block = centres[rng.integers(0, clusters, size)] + rng.standard_normal((size, d), dtype=np.float32) * 0.06
        out[start : start + size] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def timed_search(search: Any, queries: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    """Queries per second (one warm-up query first) and the ids found."""
    search(queries[:1], k)
    started = time.perf_counter()
    _, ids = search(queries, k)
    return len(queries) / (time.perf_counter() - started), np.asarray(ids)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the true top-k found, averaged over the queries."""
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return round(hits / truth.size, 4)


def faiss_part(args: argparse.Namespace) -> list[dict[str, Any]]:
    """CPU flat and IVF, then the store's GPU copies of them (where faiss reports a GPU)."""
    import faiss

    from ragkit.stores.faiss_gpu import FaissGpu, build_mirror

    n, d, k = args.vectors, args.dim, 10
    log(f"FAISS: {n:,} x {d} vectors, {args.queries} queries, top {k}")
    vectors, queries = unit_vectors(n, d, 0), unit_vectors(args.queries, d, 1)
    ids = np.arange(1, n + 1, dtype=np.int64)
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(d))
    flat.add_with_ids(vectors, ids)
    nlist = max(1, min(int(np.sqrt(n)), n // 39))  # as the store builds it; faiss wants 39 points a list
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.train(vectors[np.random.default_rng(2).choice(n, min(n, nlist * 64), replace=False)])
    ivf.add_with_ids(vectors, ids)
    ivf.nprobe = args.nprobe
    rows = []
    qps, truth = timed_search(flat.search, queries, k)
    rows.append({"index": "CPU flat (IndexFlatIP)", "qps": round(qps, 1), "recall@10": 1.0})
    qps, found = timed_search(ivf.search, queries, k)
    rows.append(
        {
            "index": f"CPU IVF (nlist {nlist}, nprobe {args.nprobe})",
            "qps": round(qps, 1),
            "recall@10": recall(found, truth),
        }
    )
    backend = FaissGpu(faiss)
    if backend.num_gpus() < 1:
        for name in ("GpuIndexFlatIP", "GpuIndexIVFFlat", "GpuIndexCagra"):
            rows.append({"index": name, "note": NO_GPU})
        return rows
    for kind, cpu_index in (("flat", flat), ("ivf", ivf), ("hnsw", None)):
        if kind == "hnsw" and not backend.has_cagra():
            rows.append({"index": "GpuIndexCagra", "note": "not run: this faiss build has no CAGRA"})
            continue
        log(f"FAISS: GPU copy of the {kind} index")
        started = time.perf_counter()
        mirror = build_mirror(
            backend, cpu_index or flat, kind, lambda: (ids, vectors), args.nprobe, faiss, min_vectors=1
        )
        build = time.perf_counter() - started
        assert mirror is not None
        qps, found = timed_search(mirror.search, queries, k)
        rows.append(
            {
                "index": mirror.type_name,
                "qps": round(qps, 1),
                "recall@10": recall(found, truth),
                "copy_s": round(build, 2),
            }
        )
    return rows


def faiss_table(rows: list[dict[str, Any]]) -> str:
    """Rows with ratios against CPU flat and CPU IVF."""
    flat, ivf = rows[0]["qps"], rows[1]["qps"]
    lines = []
    for r in rows:
        qps = r.get("qps")
        cells = (
            [f"{qps:,.0f}", f"{r['recall@10']:.3f}", f"{qps / flat:.1f}x", f"{qps / ivf:.2f}x"]
            if qps
            else [r.get("note", "–"), "–", "–", "–"]
        )
        lines.append([r["index"], *cells])
    return table(["index", "queries/s", "recall@10", "vs CPU flat", "vs CPU IVF"], lines)


# -- 3. generation ------------------------------------------------------------------------


def _post(url: str, body: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        result: dict[str, Any] = json.load(response)
        return result


def server_model(server: str) -> str:
    """The first model the server lists at ``/models``."""
    with urllib.request.urlopen(f"{server}/models", timeout=10) as response:
        return str(json.load(response)["data"][0]["id"])


def server_rate(server: str, model: str, prompt: str, max_tokens: int, requests: int, concurrency: int) -> float:
    """Completion tokens per second over ``requests`` chat requests, ``concurrency`` at a time."""
    tokens: list[int] = []
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }

    def one() -> None:
        tokens.append(int(_post(f"{server}/chat/completions", body)["usage"]["completion_tokens"]))

    _post(f"{server}/chat/completions", {**body, "max_tokens": 4})  # warm-up
    started = time.perf_counter()
    for first in range(0, requests, concurrency):
        threads = [threading.Thread(target=one) for _ in range(min(concurrency, requests - first))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return sum(tokens) / (time.perf_counter() - started)


def cpu_generator_rate(prompt: str, max_tokens: int) -> float:
    """Tokens per second of the packaged SmolLM2-135M on this machine's CPU (ragkit's transformers generator)."""
    from ragkit import registry
    from ragkit.generation.base import GenerationOptions, Message

    generator = registry.build("generator", {"type": "transformers", "device": "cpu"})
    generator.generate([Message("user", "Hi")], GenerationOptions(max_tokens=4))  # load before the clock
    started = time.perf_counter()
    answer = generator.generate([Message("user", prompt)], GenerationOptions(max_tokens=max_tokens, temperature=0.0))
    seconds = time.perf_counter() - started
    return generator.count_tokens(answer.text) / seconds


def generation_part(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Server rows (one at a time, then concurrent) and the CPU generator row."""
    prompt = "Write a short paragraph about rivers and the cities built on them."
    if not args.server:
        return [{"path": "server", "note": NO_SERVER}]
    server = args.server.rstrip("/")
    model = args.model or server_model(server)
    log(f"generation: {server} ({model})")
    rows: list[dict[str, Any]] = []
    for concurrency in (1, args.concurrency):
        rate = server_rate(server, model, prompt, args.max_tokens, args.requests, concurrency)
        rows.append({"path": f"server {model}, {concurrency} at a time", "tokens_per_s": round(rate, 1)})
    if args.cpu_generator:
        log("generation: the packaged SmolLM2-135M on the CPU")
        rows.append(
            {
                "path": "CPU SmolLM2-135M (transformers)",
                "tokens_per_s": round(cpu_generator_rate(prompt, args.max_tokens), 1),
            }
        )
    return rows


def generation_table(rows: list[dict[str, Any]]) -> str:
    """Rows with their ratio against the CPU generator (where it was measured)."""
    cpu = next((r["tokens_per_s"] for r in rows if r["path"].startswith("CPU")), None)
    lines = []
    for r in rows:
        rate = r.get("tokens_per_s")
        lines.append(
            [r["path"], f"{rate:,.1f}" if rate else r.get("note", "–"), f"{rate / cpu:.1f}x" if rate and cpu else "–"]
        )
    return table(["path", "tokens/s", "vs CPU SmolLM2"], lines)


# -- the check for a GPU machine ---------------------------------------------------------


def check(args: argparse.Namespace) -> int:
    """Assert ragkit's GPU paths on this machine's GPU; 0 when all pass, 1 on a failure, 2 without a GPU."""
    import faiss

    from ragkit.stores.faiss_gpu import FaissGpu

    if FaissGpu(faiss).num_gpus() < 1 or not cuda_available():
        print(f"gpu check: {NO_GPU} (faiss GPUs: {FaissGpu(faiss).num_gpus()}, torch CUDA: {cuda_available()})")
        return 2
    import tempfile

    from ragkit import registry
    from ragkit.schema import Chunk
    from ragkit.stores.faiss_store import FaissStore

    failures = []
    n, d = 30_000, 64
    vectors, queries = unit_vectors(n, d, 0), unit_vectors(50, d, 1)
    chunks = [Chunk(id=f"c{i}", document_id="d", source="s", text="t", start=i, end=i + 1) for i in range(n)]
    with tempfile.TemporaryDirectory() as folder:
        for kind in ("flat", "ivf", "hnsw"):
            gpu = FaissStore(path=f"{folder}/{kind}", dimension=d, index=kind, device="cuda", gpu_min_vectors=1000)
            cpu = FaissStore(path=f"{folder}/{kind}-cpu", dimension=d, index=kind, device="cpu")
            for store in (gpu, cpu):
                store.upsert(chunks, vectors)
            top = [h[0].chunk.id for h in gpu.search(queries, 1)]
            want = [h[0].chunk.id for h in cpu.search(queries, 1)]
            agree = sum(a == b for a, b in zip(top, want, strict=True)) / len(top)
            stats = gpu.stats()
            print(f"faiss {kind}: searched on {stats['gpu_index']}, top-1 agrees with the CPU on {agree:.0%}")
            if stats["gpu_index"] is None or agree < 0.9:
                failures.append(f"faiss {kind}")
            gpu.close()
            reopened = FaissStore(path=f"{folder}/{kind}", dimension=d, index=kind, device="cpu")
            if reopened.count() != n:
                failures.append(f"faiss {kind} saved from the GPU store reopens on the CPU")
    texts = sample_texts(64)
    cuda = registry.build("embedder", {"type": "sentence-transformers", "device": "cuda"})
    cpu_embedder = registry.build("embedder", {"type": "sentence-transformers", "device": "cpu", "precision": "fp32"})
    a, b = cuda.embed_documents(texts), cpu_embedder.embed_documents(texts)
    loaded = cuda.load()
    cosine = float(np.min(np.sum(a * b, axis=1)))
    print(f"embedder on cuda: {loaded.precision}, batch {loaded.cuda_batch_size}, min cosine to CPU fp32 {cosine:.5f}")
    if loaded.precision != "fp16" or not loaded.cuda_batch_size or cosine < 0.999:
        failures.append("embedder on cuda")
    print("gpu check: " + ("FAILED: " + ", ".join(failures) if failures else "all passed"))
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or ``--check``) and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--vectors", type=int, default=1_000_000, help="FAISS vectors (1M by default)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--nprobe", type=int, default=48, help="IVF lists searched (the store's default)")
    parser.add_argument("--texts", type=int, default=4096, help="texts embedded per row on a GPU")
    parser.add_argument("--cpu-texts", type=int, default=512, help="texts embedded per row on the CPU")
    parser.add_argument("--cpu-batches", type=lambda s: [int(x) for x in s.split(",")], default=[32, 128])
    parser.add_argument("--gpu-batches", type=lambda s: [int(x) for x in s.split(",")], default=[32, 128, 512])
    parser.add_argument("--server", help="an OpenAI-compatible API root, e.g. http://localhost:8000/v1")
    parser.add_argument("--model", help="the server's model (default: the first it lists)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--no-cpu-generator", dest="cpu_generator", action="store_false", help="skip the CPU generator row"
    )
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: embedding,faiss,generation")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--check", action="store_true", help="assert ragkit's GPU paths on this GPU instead")
    args = parser.parse_args(argv)
    if args.check:
        return check(args)
    skip = set(filter(None, args.skip.split(",")))
    gpu = cuda_available()
    print(f"GPU: {'yes' if gpu else 'no GPU here: the GPU rows are not run'}\n")
    results: dict[str, Any] = {"gpu": gpu}
    if "embedding" not in skip:
        results["embedding"] = embedding_part(args, gpu)
        print("Embedding (all-MiniLM-L6-v2)\n\n" + embedding_table(results["embedding"]) + "\n")
    if "faiss" not in skip:
        results["faiss"] = faiss_part(args)
        print(
            f"FAISS search ({args.vectors:,} x {args.dim}, {args.queries} queries)\n\n"
            + faiss_table(results["faiss"])
            + "\n"
        )
    if "generation" not in skip:
        results["generation"] = generation_part(args)
        print("Generation\n\n" + generation_table(results["generation"]) + "\n")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
