"""Ingestion on Ray Data (``ragkit ingest --engine ray``) on a real local Ray cluster.

The module starts one cluster (:class:`ragkit.scaleout.local_cluster.LocalRayCluster`:
a head and a second node joining it by address, each ``ray start --block`` in
its own session, files in a temporary folder, token auth with a token of its
own) and stops it by killing the processes of those two sessions by PID;
never ``ray stop``, which would kill every Ray process on the machine.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from ragkit import Collection
from ragkit.cli import app
from tests.conftest import SAMPLE_DOCS

if importlib.util.find_spec("ray") is None:  # not imported here: Ray reads its auth settings on first import
    pytest.skip("ray is not installed (the ragkit[ray] extra)", allow_module_level=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """The address of a two-node Ray cluster on this machine (2 CPUs each), started for this module."""
    from ragkit.scaleout import ray_engine
    from ragkit.scaleout.local_cluster import LocalRayCluster

    with LocalRayCluster(nodes=2, cpus=2) as local:
        try:
            ray_engine.connect(local.address)
            deadline = time.monotonic() + 60
            while ray_engine.cluster_cpus()[0] < 2 and time.monotonic() < deadline:
                time.sleep(0.3)
            assert ray_engine.cluster_cpus() == (2, 4.0)
            yield local.address
        finally:
            ray_engine.disconnect()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ray-corpus")
    for path in SAMPLE_DOCS.iterdir():
        shutil.copy2(path, folder / path.name)
    (folder / "empty.txt").write_text("")  # a file with no text: failed the same way by both engines
    return folder


def _contents(collection: Collection) -> tuple[dict[str, Any], dict[str, tuple[str, str]], dict[str, np.ndarray]]:
    """Source records (without times), chunks (id -> source, text) and the vectors of a query's hits."""
    records = {
        source: (r.content_hash, r.chunk_count, r.chunk_ids, r.document_ids)
        for source, r in collection.store.sources().items()
    }
    chunks = {c.id: (c.source, c.text) for batch in collection.store.iter_chunks(500) for c in batch}
    hits = {h.chunk.id: h.score for h in collection.search("how did the oil crisis end", top_k=5)}
    return records, chunks, hits


def _ingest_with_ray(collection: Collection, corpus: Path, address: str, sync: bool = False) -> Any:
    from ragkit.scaleout import RaySettings, ingest_with_ray

    return ingest_with_ray(collection, [corpus], RaySettings(address, workers=2, batch_size=32), sync=sync)


@pytest.fixture(scope="module")
def in_process(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home-local")
    with Collection.create("docs", store_dir=home) as collection:
        collection.ingest([corpus])
    return home


def test_same_chunks_ids_and_counts_as_in_process(cluster: str, corpus: Path, in_process: Path, tmp_path: Path) -> None:
    with Collection.open("docs", store_dir=in_process) as local:
        expected = _contents(local)
        local_report = local.ingest([corpus])  # nothing changed: the in-process ingest skips all
    with Collection.create("docs", store_dir=tmp_path) as collection:
        report = _ingest_with_ray(collection, corpus, cluster)
        records, chunks, hits = _contents(collection)
    assert report.added == 5 and report.updated == 0
    assert [f.source for f in report.failed] == ["empty.txt"]
    assert local_report.unchanged == 5
    assert records == expected[0]
    assert chunks == expected[1] and len(chunks) == report.chunks_written
    assert list(hits) == list(expected[2])
    assert np.allclose(list(hits.values()), list(expected[2].values()), atol=2e-3)  # batches padded differently


def test_second_run_skips_unchanged_updates_changed_and_syncs_deleted_via_cli(cluster: str, tmp_path: Path) -> None:
    homes = {engine: tmp_path / engine for engine in ("local", "ray")}
    works = {engine: tmp_path / f"docs-{engine}" for engine in homes}
    options = {"local": [], "ray": ["--engine", "ray", "--address", cluster, "--workers", "2", "--batch-size", "16"]}

    def ingest(engine: str, *more: str) -> dict[str, Any]:
        args = ["ingest", str(works[engine]), "-c", "docs", "--store-dir", str(homes[engine]), "--json", *more]
        result = CliRunner().invoke(app, [*args, *options[engine]])
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.stdout))

    for engine, work in works.items():
        work.mkdir()
        for name in ("a.md", "b.txt", "c.md", "d.md"):  # small files: this test is about the decisions
            paragraphs = [
                f"Paragraph {n} of {name}: " + f"{name} says something about topic {n}. " * 8 for n in range(6)
            ]
            (work / name).write_text("# " + name + "\n\n" + "\n\n".join(paragraphs))
        assert ingest(engine)["added"] == 4
        (work / "b.txt").write_text("The plague came back.\n\nIt was rewritten for this test.\n")
        (work / "d.md").unlink()
    report = ingest("ray", "--sync")
    assert (report["added"], report["updated"], report["unchanged"], report["deleted"]) == (0, 1, 2, 1)
    assert report["chunks_written"] == 1 and report["chunks_deleted"] > 1
    assert ingest("local", "--sync")["deleted"] == 1
    found = {}
    for engine, home in homes.items():
        with Collection.open("docs", store_dir=home) as collection:
            records, chunks, _ = _contents(collection)
        found[engine] = (records, sorted(chunks.values()))
    assert "d.md" not in found["ray"][0] and found["ray"][0]["b.txt"][1] == 1
    assert found["ray"] == found["local"]


def test_milvus_lite_store_gets_the_same_chunks(cluster: str, corpus: Path, in_process: Path, tmp_path: Path) -> None:
    pytest.importorskip("ragkit_milvus", reason="the ragkit-milvus connector is not installed")
    from ragkit.recipes import load_collection_config

    with Collection.open("docs", store_dir=in_process) as local:
        expected = _contents(local)
    with Collection.create("docs", load_collection_config("milvus"), store_dir=tmp_path) as collection:
        assert type(collection.store).__module__.startswith("ragkit_milvus")
        report = _ingest_with_ray(collection, corpus, cluster)
        records, chunks, hits = _contents(collection)
    assert report.added == 5
    assert records == expected[0]
    assert chunks == expected[1]
    assert list(hits) == list(expected[2])


# -- errors (after the cluster tests: one of them leaves the cluster) --------------------------------------------------


def test_an_unreachable_address_is_a_clear_error(in_process: Path, corpus: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["ingest", str(corpus), "-c", "docs", "--store-dir", str(in_process), "--engine", "ray"]
    result = CliRunner().invoke(app, [*args, "--address", f"127.0.0.1:{port}"])
    assert result.exit_code == 6, result.output
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in result.stderr
    assert "ray start --head" in result.stderr


def test_without_ray_installed_the_error_says_what_to_install(
    in_process: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when it is not installed
    args = ["ingest", str(corpus), "-c", "docs", "--store-dir", str(in_process), "--engine", "ray"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 6, result.output
    assert "pip install ragkit[ray]" in result.stderr


def test_options_of_the_ray_engine_need_it(in_process: Path, corpus: Path) -> None:
    args = ["ingest", str(corpus), "-c", "docs", "--store-dir", str(in_process), "--workers", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "--engine ray" in result.stderr


def test_import_ragkit_and_its_cli_do_not_import_ray() -> None:
    code = (
        "import sys, ragkit, ragkit.cli, ragkit.scaleout\n"
        "from ragkit.scaleout import RaySettings\n"
        "assert 'ray' not in sys.modules, 'ray imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
