"""The SQLite key → JSON store under the caches: many openers of one new file at once lose nothing.

A collection's context-sentence cache is opened by several ingest threads at
the same moment, and two collections (or workers) share one file. Before the
open was serialised, a late opener could see the new file without its version
stamp and empty what an earlier one had just cached, or fail with "database
is locked" and run uncached.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ragkit.kvstore import JsonStore
from ragkit.sqlite_wal import connect_wal

OPENERS = 8


def open_and_put_at_once(path: Path) -> list[JsonStore]:
    barrier = threading.Barrier(OPENERS)
    stores: list[JsonStore] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        barrier.wait()
        store = JsonStore(path, "test cache", version=3)
        store.put(f"key-{index}", {"index": index})
        with lock:
            stores.append(store)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(OPENERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return stores


@pytest.mark.parametrize("trial", range(25))
def test_stores_opening_one_new_file_at_once_keep_every_entry(tmp_path: Path, trial: int) -> None:
    path = tmp_path / f"cache-{trial}.sqlite"
    stores = open_and_put_at_once(path)
    assert all(store.enabled for store in stores)  # nobody gave up on "database is locked"
    reopened = JsonStore(path, "test cache", version=3)
    assert {reopened.get(f"key-{index}")["index"] for index in range(OPENERS)} == set(range(OPENERS))
    assert len(reopened) == OPENERS
    for store in [*stores, reopened]:
        store.close()


def test_connect_wal_raises_what_is_not_a_lock(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(Exception, match="unable to open"):
        connect_wal(folder)
