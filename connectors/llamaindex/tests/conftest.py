"""A small real collection shared by this folder's tests: three SQuAD dev articles, ingested by ragkit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ragkit import Collection

REPO = Path(__file__).resolve().parents[3]
SQUAD = REPO.parent / "shared" / "datasets" / "squad-dev" / "documents"
ARTICLES = ["0002-normans.md", "0000-super-bowl-50.md", "0003-nikola-tesla.md"]


@pytest.fixture(scope="session")
def squad() -> Path:
    """The squad-dev documents folder (the tests that need it are skipped without it)."""
    if not SQUAD.is_dir():
        pytest.skip(f"the squad-dev documents are not at {SQUAD}")
    return SQUAD


@pytest.fixture(scope="session")
def collection(squad: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collection]:
    """Collection ``squad`` of three articles (packaged embedder, FAISS, BM25), built once."""
    home = tmp_path_factory.mktemp("squad-home")
    with Collection.create("squad", store_dir=home) as col:
        report = col.ingest([squad / name for name in ARTICLES])
        assert (report.added, report.failed) == (3, [])
        yield col
