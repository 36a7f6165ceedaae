"""Source ids relative to the ingest root, file URIs, row numbers, and collections made before either.

Issue 14 item 14: a source used to be the file's absolute resolved path, so a
``source == "hr/a.md"`` filter could not match and citations named the
server's own folders. Real components throughout: loaders, the packaged
embedder, FAISS, the keyword index and the installed ``ragkit`` script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ragkit import Collection
from ragkit.errors import ConflictError, FilterError, InputError
from ragkit.loaders import discovery

NOTES = {
    "hr/leave.md": "# Leave\n\nStaff get twenty-five days of paid leave each year.\n",
    "hr/sub/payroll.md": "# Payroll\n\nSalaries are paid on the last working day of the month.\n",
    "it/passwords.md": "# Passwords\n\nPasswords must be at least fourteen characters long.\n",
    "hrx/other.md": "# Other\n\nThe canteen opens at eight in the morning.\n",
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def chunks_of(col: Collection) -> list:
    return [chunk for batch in col.store.iter_chunks() for chunk in batch]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_a_folder_gives_ids_relative_to_it_with_uris_and_folder_filters(tmp_path: Path, home: Path) -> None:
    root = write_tree(tmp_path / "docs", NOTES)
    single = write_tree(tmp_path / "loose", {"memo.txt": "The memo says the office closes at six."}) / "memo.txt"
    with Collection.create("ids", store_dir=home) as col:
        col.ingest([root, single])
        assert set(col.store.sources()) == {*NOTES, "memo.txt"}
        for chunk in chunks_of(col):
            origin = single if chunk.source == "memo.txt" else root / chunk.source
            assert chunk.metadata["source"] == chunk.source
            assert chunk.metadata["uri"] == origin.absolute().as_uri()
        # the filters a user writes by the names they know, dense and keyword search alike
        for mode in ("dense", "lexical"):
            exact = col.search("paid leave days", top_k=10, filters='source == "hr/leave.md"', mode=mode)
            assert {h.chunk.source for h in exact} == {"hr/leave.md"}
            folder = col.search("paid salaries leave canteen", top_k=10, filters='source.startswith("hr/")', mode=mode)
            assert {h.chunk.source for h in folder} == {"hr/leave.md", "hr/sub/payroll.md"}, mode
            as_dict = col.search("paid salaries", top_k=10, filters={"source": {"$prefix": "hr/sub/"}}, mode=mode)
            assert {h.chunk.source for h in as_dict} == {"hr/sub/payroll.md"}
        for mode in ("dense", "lexical"):  # a prefix on a field of numbers is refused with its kind
            with pytest.raises(FilterError, match="field 'chunk_index' holds numbers"):
                col.search("x", filters='chunk_index.startswith("1")', mode=mode)


def test_a_source_prefix_namespaces_a_root_and_is_checked(tmp_path: Path, home: Path) -> None:
    root = write_tree(tmp_path / "docs", {"hr/leave.md": NOTES["hr/leave.md"]})
    with Collection.create("prefixed", store_dir=home) as col:
        col.ingest(root, source_prefix="team")
        assert set(col.store.sources()) == {"team/hr/leave.md"}
        hits = col.search("leave", top_k=3, filters='source.startswith("team/hr/")', mode="lexical")
        assert hits and hits[0].chunk.source == "team/hr/leave.md"
        for bad in ("/abs", "a/../b", "a\\b", "a//b", "x\ny"):
            with pytest.raises(InputError, match="source prefix"):
                col.ingest(root, source_prefix=bad)


def test_rows_are_cited_by_number(tmp_path: Path, home: Path) -> None:
    folder = tmp_path / "tables"
    folder.mkdir()
    (folder / "staff.csv").write_text("name,role\nAda,engineer\nGrace,admiral\n", encoding="utf-8")
    (folder / "items.json").write_text(json.dumps([{"text": "first item"}, {"text": "second item", "row": 99}]))
    (folder / "lines.jsonl").write_text('{"text": "line one"}\n\n{"text": "line three"}\n', encoding="utf-8")
    with Collection.create("rows", store_dir=home) as col:
        col.ingest(folder)
        rows = {(c.source, c.text.splitlines()[0]): c.metadata.get("row") for c in chunks_of(col)}
    assert rows == {
        ("staff.csv", "name: Ada"): 1,  # data rows: the header is not counted
        ("staff.csv", "name: Grace"): 2,
        ("items.json", "first item"): 1,  # array items, 1-based; a record's own "row" does not win
        ("items.json", "second item"): 2,
        ("lines.jsonl", "line one"): 1,  # the line number in the file, blank lines counted
        ("lines.jsonl", "line three"): 3,
    }


def _ingest_the_old_way(col: Collection, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What ragkit did before: the source is the absolute resolved path, no uri in the chunks."""
    real = discovery._source_file

    def absolute(path: Path, relative: str, prefix: str):
        found = real(path, relative, prefix)
        if found is not None:
            found.source = found.resolved
        return found

    with monkeypatch.context() as patch:
        patch.setattr(discovery, "_source_file", absolute)
        col.ingest(root, record_uri=False)


def test_a_collection_with_absolute_sources_is_taken_over_without_duplicates(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree(tmp_path / "docs", NOTES)
    other = write_tree(tmp_path / "elsewhere", {"keep.md": "# Keep\n\nThis one is under another root.\n"})
    with Collection.create("legacy", store_dir=home) as col:
        _ingest_the_old_way(col, root, monkeypatch)
        _ingest_the_old_way(col, other, monkeypatch)
        count = col.store.count()
        assert set(col.store.sources()) == {(root / r).resolve().as_posix() for r in NOTES} | {
            (other / "keep.md").resolve().as_posix()
        }
        report = col.ingest(root)
        assert (report.added, report.updated) == (0, len(NOTES)), report.summary()
        assert set(col.store.sources()) == {*NOTES, (other / "keep.md").resolve().as_posix()}
        assert col.store.count() == count, "each old record was replaced, nothing duplicated"
        lexical = col.search("paid leave", top_k=20, mode="lexical")
        assert {h.chunk.source for h in lexical} <= {*NOTES, (other / "keep.md").resolve().as_posix()}
        assert col.ingest(root).unchanged == len(NOTES)
        # sync drops an old absolute source that came from the root, never another root's
        (root / "it" / "passwords.md").unlink()
        synced = col.ingest(root, sync=True)
        assert synced.deleted == 1
        assert set(col.store.sources()) == {*NOTES} - {"it/passwords.md"} | {(other / "keep.md").resolve().as_posix()}
        (other / "keep.md").unlink()
        assert col.ingest(other, sync=True).deleted == 1
        assert set(col.store.sources()) == {*NOTES} - {"it/passwords.md"}


def test_a_replacement_cut_short_is_finished_by_the_next_ingest(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree(tmp_path / "docs", {"a.md": "# A\n\nAlpha text about apples.\n"})
    with Collection.create("cut", store_dir=home) as col:
        _ingest_the_old_way(col, root, monkeypatch)
        old = (root / "a.md").resolve().as_posix()
        with monkeypatch.context() as patch:  # the new record lands, the old one's deletion does not
            patch.setattr(type(col.store), "delete_sources", lambda self, sources: 0)
            col.ingest(root)
        assert set(col.store.sources()) == {"a.md", old}
        report = col.ingest(root)
        assert report.unchanged == 1 and report.chunks_deleted > 0
        assert set(col.store.sources()) == {"a.md"}
        assert {c.source for c in chunks_of(col)} == {"a.md"}
        assert {h.chunk.source for h in col.search("apples", top_k=5, mode="lexical")} == {"a.md"}


def test_sync_drops_only_the_synced_roots_sources(tmp_path: Path, home: Path) -> None:
    first = write_tree(tmp_path / "first", {"a1.md": "# A1\n\nAardvarks.\n", "a2.md": "# A2\n\nAntelopes.\n"})
    second = write_tree(tmp_path / "second", {"b1.md": "# B1\n\nBadgers.\n"})
    with Collection.create("roots", store_dir=home) as col:
        col.ingest(first)
        col.ingest(second)
        assert col.ingest(second, sync=True).deleted == 0, "the first root's relative ids are not the second's"
        assert set(col.store.sources()) == {"a1.md", "a2.md", "b1.md"}
        (second / "b1.md").unlink()
        assert col.ingest(second, sync=True).deleted == 1
        (first / "a2.md").unlink()
        assert col.ingest(first, sync=True).deleted == 1
        assert set(col.store.sources()) == {"a1.md"}


def test_two_roots_that_give_one_id_to_different_files_are_refused(tmp_path: Path, home: Path) -> None:
    first = write_tree(tmp_path / "first", {"notes.md": "# Notes\n\nFirst root's notes on owls.\n"})
    second = write_tree(tmp_path / "second", {"notes.md": "# Notes\n\nSecond root's notes on otters.\n"})
    with Collection.create("clash", store_dir=home) as col:
        col.ingest(first)
        before = chunks_of(col)
        with pytest.raises(ConflictError) as refused:
            col.ingest(second)
        message = str(refused.value)
        assert str(first / "notes.md") in message and str(second / "notes.md") in message
        assert "--source-prefix" in message
        assert chunks_of(col) == before, "nothing was replaced"
        with pytest.raises(ConflictError, match="same source id 'notes.md'"):
            col.ingest([first, second])  # the same clash inside one call
        # a file re-ingested from its own root is an update
        (first / "notes.md").write_text("# Notes\n\nFirst root's notes on owls, revised.\n", encoding="utf-8")
        assert col.ingest(first).updated == 1
        # with a prefix the second root lands beside the first
        assert col.ingest(second, source_prefix="second").added == 1
        assert set(col.store.sources()) == {"notes.md", "second/notes.md"}
        # a root that moved (its old files gone) is an update, not a clash
        moved = first.rename(tmp_path / "moved")
        (moved / "notes.md").write_text("# Notes\n\nOwls, moved.\n", encoding="utf-8")
        assert col.ingest(moved).updated == 1
        assert {c.metadata["uri"] for c in chunks_of(col) if c.source == "notes.md"} == {
            (moved / "notes.md").absolute().as_uri()
        }


def _ragkit(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "ragkit"
    return subprocess.run([str(script), *args], capture_output=True, text=True, env=dict(os.environ), timeout=600)


def test_cli_ingest_takes_a_source_prefix_and_refuses_a_clash(tmp_path: Path, home: Path) -> None:
    first = write_tree(tmp_path / "first", {"hr/notes.md": "# Notes\n\nOwls hoot at night.\n"})
    second = write_tree(tmp_path / "second", {"hr/notes.md": "# Notes\n\nOtters swim by day.\n"})
    done = _ragkit("ingest", str(first), "-c", "cli", "--store-dir", str(home), "--json")
    assert done.returncode == 0, done.stderr
    clash = _ragkit("ingest", str(second), "-c", "cli", "--store-dir", str(home))
    assert clash.returncode == 4 and "--source-prefix" in clash.stderr and "Traceback" not in clash.stderr
    done = _ragkit("ingest", str(second), "-c", "cli", "--store-dir", str(home), "--source-prefix", "team/")
    assert done.returncode == 0, done.stderr
    with Collection.open("cli", store_dir=home) as col:
        assert set(col.store.sources()) == {"hr/notes.md", "team/hr/notes.md"}


def test_a_root_reached_through_a_symbolic_link_is_the_same_root(tmp_path: Path, home: Path) -> None:
    real = write_tree(tmp_path / "real", {"a.md": "# A\n\nAlpacas.\n", "b.md": "# B\n\nBison.\n"})
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    with Collection.create("linked", store_dir=home) as col:
        col.ingest(link)
        (real / "a.md").write_text("# A\n\nAlpacas, revised.\n", encoding="utf-8")
        assert col.ingest(real).updated == 1, "the same file by its real path is an update, not a clash"
        (real / "b.md").unlink()
        assert col.ingest(real, sync=True).deleted == 1
        assert set(col.store.sources()) == {"a.md"}
