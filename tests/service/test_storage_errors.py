"""A full or read-only store answers 507 or 503 naming the cause and the path, never an untyped 500 (issue 14, item 3).

The first tests put the store on a real, tiny ``tmpfs`` file system (mounted
for the test, so it needs root and the ``mount`` command; they are skipped
where that is impossible), fill it up or remount it read-only, and talk to the
real server. The last test runs everywhere: it injects the ``OSError`` at the
narrowest point, the upload receiver's file write, since a disk cannot be
filled without a mount.
"""

from __future__ import annotations

import errno
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragkit.collection import Collection
from ragkit.errors import StorageFullError, StorageReadOnlyError
from ragkit.service import ServiceSettings, create_app
from ragkit.service import uploads as uploads_module
from tests.service.conftest import LiveServer, wait_for_job

NOTE = "The Eddystone lighthouse stands on rocks fourteen kilometres south of Plymouth.\n"
UPLOAD = ("files", ("notes.txt", b"Harbour notes: the tide turns at noon.\n" * 2500, "text/plain"))  # ~100 KB


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture()
def disk(tmp_path: Path) -> Iterator[Path]:
    """A real 16 MB tmpfs mounted for this test (skipped where mounting is not allowed)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    try:
        mounted = _mount("-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point))
    except FileNotFoundError:
        pytest.skip("no mount command here; test_upload_write_error_injected covers the upload")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip()}); the injected test covers uploads")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture()
def server_on(disk: Path, tmp_path: Path) -> Iterator[tuple[Path, LiveServer]]:
    """A collection 'docs' (one note) in a home on the tiny disk, and the real server over it."""
    home = disk / "home"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "lighthouse.txt").write_text(NOTE, encoding="utf-8")
    with Collection.create("docs", store_dir=home) as collection:
        assert collection.ingest([corpus]).added == 1
    with LiveServer(create_app(ServiceSettings(store_dir=home, ingest_roots=[tmp_path]))) as server:
        yield home, server


def _fill(disk: Path) -> None:
    """Write a filler file until the file system says it is full."""
    block = b"\0" * (64 * 1024)
    with open(disk / "filler", "wb") as handle:
        try:
            while True:
                handle.write(block)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    with pytest.raises(OSError):
        (disk / "probe").write_bytes(block)


def _error(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def _staged(home: Path) -> list[Path]:
    staging = home / "staging"
    return list(staging.iterdir()) if staging.exists() else []


def _search_answers(server: LiveServer) -> None:
    hits = httpx.post(
        f"{server.url}/v1/collections/docs/search", json={"query": "Where is the Eddystone lighthouse?"}, timeout=120
    )
    assert hits.status_code == 200, hits.text
    assert "Plymouth" in hits.json()["hits"][0]["text"]


def test_an_upload_to_a_full_disk_is_507_naming_the_cause_and_the_staging_is_cleaned(
    server_on: tuple[Path, LiveServer], disk: Path
) -> None:
    home, server = server_on
    _search_answers(server)  # the server has the collection open, as it would when the disk fills up
    _fill(disk)
    response = httpx.post(f"{server.url}/v1/collections/docs/documents", files=[UPLOAD], timeout=60)
    assert response.status_code == 507, response.text
    error = _error(response)
    assert error["type"] == "StorageFullError"
    assert "disk is full" in error["message"] and str(home / "staging") in error["message"], error
    assert _staged(home) == [], "nothing staged is left behind"
    _search_answers(server)  # reading still works


def test_an_ingest_job_on_a_full_disk_fails_as_storage_full(
    server_on: tuple[Path, LiveServer], disk: Path, tmp_path: Path
) -> None:
    home, server = server_on
    _search_answers(server)
    more = tmp_path / "more"
    more.mkdir()
    for i in range(40):
        (more / f"harbour-{i}.txt").write_text(f"Harbour log {i}: the tide turned at noon. " * 200, encoding="utf-8")
    _fill(disk)
    response = httpx.post(f"{server.url}/v1/collections/docs/ingest", json={"path": str(more)}, timeout=60)
    assert response.status_code == 202, response.text
    job = wait_for_job(httpx.Client(base_url=server.url, timeout=60), response.json()["id"], timeout=600)
    assert job["status"] == "failed", job
    assert job["error"]["type"] == "StorageFullError", job["error"]
    assert str(home / "collections" / "docs") in job["error"]["message"] and "disk is full" in job["error"]["message"]
    _search_answers(server)  # what was committed before still answers

    cli = subprocess.run(
        [sys.executable, "-m", "ragkit.cli", "ingest", str(more), "-c", "docs", "--store-dir", str(home)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert cli.returncode == StorageFullError.exit_code, cli.stderr  # its own exit code, not a generic store error
    assert "disk is full" in cli.stderr and "Traceback" not in cli.stderr, cli.stderr


def test_a_read_only_store_answers_503_for_upload_create_and_delete_and_still_serves_searches(
    disk: Path, tmp_path: Path
) -> None:
    """The home is written on the tmpfs, then served from a read-only bind mount of it (a read-only volume)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "lighthouse.txt").write_text(NOTE, encoding="utf-8")
    with Collection.create("docs", store_dir=disk / "home") as collection:
        assert collection.ingest([corpus]).added == 1
    view = tmp_path / "read-only"
    view.mkdir()
    assert _mount("--bind", str(disk), str(view)).returncode == 0
    try:
        remounted = _mount("-o", "remount,bind,ro", str(view))
        assert remounted.returncode == 0, remounted.stderr
        home = view / "home"
        with LiveServer(create_app(ServiceSettings(store_dir=home))) as server:
            _search_answers(server)
            upload = httpx.post(f"{server.url}/v1/collections/docs/documents", files=[UPLOAD], timeout=60)
            assert upload.status_code == 503, upload.text
            assert _error(upload)["type"] == "StorageReadOnlyError"
            assert "read-only" in _error(upload)["message"] and str(home / "staging") in _error(upload)["message"]

            create = httpx.post(f"{server.url}/v1/collections", json={"name": "fresh"}, timeout=120)
            assert create.status_code == 503, create.text
            assert _error(create)["type"] == "StorageReadOnlyError"
            assert "read-only" in _error(create)["message"] and str(home / "collections") in _error(create)["message"]

            delete = httpx.delete(f"{server.url}/v1/collections/docs", timeout=60)
            assert delete.status_code == 503, delete.text
            assert _error(delete)["type"] == "StorageReadOnlyError"
            assert "read-only" in _error(delete)["message"] and str(home / "collections") in _error(delete)["message"]

            _search_answers(server)  # the collection is untouched and still answers

        for command, what in (
            (["collections", "delete", "docs", "--yes"], "delete"),
            (["ingest", str(corpus), "-c", "docs"], "ingest"),
        ):
            cli = subprocess.run(
                [sys.executable, "-m", "ragkit.cli", *command, "--store-dir", str(home)],
                capture_output=True, text=True, timeout=600, check=False,
            )  # fmt: skip
            assert cli.returncode == StorageReadOnlyError.exit_code, (what, cli.stderr)
            assert "read-only" in cli.stderr and str(home / "collections" / "docs") in cli.stderr, (what, cli.stderr)
            assert "Traceback" not in cli.stderr
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)
    assert (disk / "home" / "collections" / "docs" / "collection.yaml").is_file()


class _FullDiskFile:
    """A file whose writes fail as on a full disk (the injected fault)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.closed = False

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self) -> None:
        self.closed = True
        self.inner.close()


def test_upload_write_error_injected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs without a mount: ENOSPC is injected at the upload receiver's file write (the narrowest point)."""
    home = tmp_path / "home"
    Collection.create("docs", store_dir=home).close()

    def full_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        return _FullDiskFile(open(path, mode, *args, **kwargs))

    monkeypatch.setattr(uploads_module, "open", full_open, raising=False)
    with LiveServer(create_app(ServiceSettings(store_dir=home))) as server:
        response = httpx.post(f"{server.url}/v1/collections/docs/documents", files=[UPLOAD], timeout=60)
    assert response.status_code == 507, response.text
    assert _error(response)["type"] == "StorageFullError"
    assert str(home / "staging") in _error(response)["message"]
    assert _staged(home) == []
