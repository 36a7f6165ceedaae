from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DOCS = REPO / "evaluation" / "datasets" / "sample-docs"


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store folder holding collection 'sample': the five sample documents, default config."""
    from ragkit import Collection

    store = tmp_path_factory.mktemp("sample-store")
    with Collection.create("sample", store_dir=store) as collection:
        report = collection.ingest([SAMPLE_DOCS])
        assert not report.failed, report.failed
    return store


@pytest.fixture()
def sample_collection(sample_store: Path) -> Iterator[object]:
    from ragkit import Collection

    with Collection.open("sample", store_dir=sample_store) as collection:
        yield collection
