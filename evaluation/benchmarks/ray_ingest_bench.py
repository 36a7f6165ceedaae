"""Ray ingestion throughput: the in-process ingest vs `--engine ray` with 1 and 2 embedding workers, on 2 cores.

The same squad-dev documents go into a fresh collection each time (embedding
cache off, so every chunk is embedded): once in-process, then on a local Ray
cluster of one node with 2 CPUs (started and stopped by PID) with one
embedding actor (1 CPU, and 2 CPUs) and with two (1 CPU each). The clock
covers the ingest call only; for Ray that includes starting the actors and
loading the model in each (it happens on every run), for in-process the model
is already loaded (its load time is printed apart). Each Ray run's chunks are
checked against the in-process ones (ids, texts, records).

    .venv/bin/python evaluation/benchmarks/ray_ingest_bench.py --out bench-out/steps/ray_ingest.json
    .venv/bin/python evaluation/benchmarks/ray_ingest_bench.py --docs 2 --arms local,ray-1  # tiny
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import dataset_dir, log

ARMS = {
    "local": None,
    "ray-1": (1, 1.0),
    "ray-1x2cpu": (1, 2.0),
    "ray-2": (2, 1.0),
}
"""Arm name -> (embedding workers, CPUs each), None: in-process."""


def _contents(collection: Any) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    records = {s: (r.content_hash, r.chunk_ids) for s, r in collection.store.sources().items()}
    chunks = {c.id: (c.source, c.text) for batch in collection.store.iter_chunks(1000) for c in batch}
    return records, chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=None, help="squad-dev folder (default: the shared one)")
    parser.add_argument("--docs", type=int, default=48, help="documents to ingest")
    parser.add_argument(
        "--arms", default=",".join(ARMS), help=f"comma-separated, of {', '.join(ARMS)} (add -again to repeat one)"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="chunks per model call (default: the config's)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a.removesuffix("-again") not in ARMS]
    if unknown:
        raise SystemExit(f"unknown arms {unknown}; known: {', '.join(ARMS)}")

    from ragkit import Collection
    from ragkit.scaleout import RaySettings, ingest_with_ray
    from ragkit.scaleout.local_cluster import LocalRayCluster

    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    corpus = work / "docs"
    corpus.mkdir()
    for path in sorted((dataset_dir(args.dataset) / "documents").iterdir())[: args.docs]:
        shutil.copy2(path, corpus / path.name)
    config = {"embedding_cache": False}
    results: dict[str, Any] = {"docs": args.docs, "cpus": os.cpu_count(), "arms": {}}
    expected = None
    cluster: LocalRayCluster | None = None
    try:
        for arm in arms:
            home = work / arm
            kind = ARMS[arm.removesuffix("-again")]  # an arm named twice: "-again" the second time
            started = time.perf_counter()
            collection = Collection.create("bench", config, store_dir=home)  # loads the model (its dimension)
            load_seconds = time.perf_counter() - started
            with collection:
                if kind is None:
                    report = collection.ingest([corpus])
                else:
                    if cluster is None:
                        log("starting a one-node Ray cluster with 2 CPUs")
                        cluster = LocalRayCluster(nodes=1, cpus=2, object_store_bytes=500_000_000)
                        cluster.start()
                    workers, cpus = kind
                    settings = RaySettings(
                        cluster.address, workers=workers, batch_size=args.batch_size, cpus_per_worker=cpus
                    )
                    report = ingest_with_ray(collection, [corpus], settings)
                contents = _contents(collection)
            if expected is None:
                expected = contents
            same = contents == expected
            row = {
                "seconds": round(report.seconds, 2),
                "chunks": report.chunks_written,
                "files": report.added,
                "chunks_per_s": round(report.chunks_written / report.seconds, 2),
                "model_load_seconds_in_driver": round(load_seconds, 2),
                "stage_seconds": {k: round(v, 2) for k, v in report.stage_seconds.items()},
                "same_chunks_as_first_arm": same,
            }
            results["arms"][arm] = row
            log(f"{arm}: {row}")
    finally:
        if cluster is not None:
            from ragkit.scaleout import ray_engine

            ray_engine.disconnect()
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    base = results["arms"].get("local")
    print(f"\n{args.docs} documents, {os.cpu_count()} CPUs")
    print("| arm | files | chunks | seconds | chunks/s | vs in-process | same chunks |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for arm, row in results["arms"].items():
        ratio = f"{row['chunks_per_s'] / base['chunks_per_s']:.2f}x" if base else "–"
        print(
            f"| {arm} | {row['files']} | {row['chunks']} | {row['seconds']} | {row['chunks_per_s']} | {ratio} "
            f"| {'yes' if row['same_chunks_as_first_arm'] else 'NO'} |"
        )
    for arm, row in results["arms"].items():
        print(f"{arm} stages: {row['stage_seconds']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    if not all(row["same_chunks_as_first_arm"] for row in results["arms"].values()):
        raise SystemExit("an arm's chunks differ from the first arm's")


if __name__ == "__main__":
    main()
