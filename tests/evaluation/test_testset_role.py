"""``ragkit eval testset`` finds its test-set generator through the registry; without one it names the package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragkit import registry
from ragkit.cli import app
from ragkit.errors import MissingDependencyError, NotFoundError
from ragkit.evaluation import testset

DOCS = Path(__file__).resolve().parents[2] / "evaluation" / "datasets" / "sample-docs" / "black-death.txt"


@pytest.fixture
def no_testset_generator(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The registry as in an install without ``ragkit-ragas``: no ``testset_generator`` anywhere."""
    found = registry._entry_points()
    monkeypatch.setattr(
        registry, "_entry_points", lambda: {key: ep for key, ep in found.items() if key[0] != testset.ROLE}
    )
    for key in [key for key in registry._registry if key[0] == testset.ROLE]:
        monkeypatch.delitem(registry._registry, key)
    yield


def test_without_a_testset_generator_the_error_names_the_package(no_testset_generator: None):
    with pytest.raises(MissingDependencyError, match="pip install ragkit-ragas"):
        testset.build_testset_generator({"type": "ragas"})


def test_the_cli_says_which_package_to_install(no_testset_generator: None, tmp_path: Path):
    result = CliRunner().invoke(app, ["eval", "testset", str(DOCS), "--out", str(tmp_path / "q.jsonl"), "-n", "1"])
    assert result.exit_code == MissingDependencyError.exit_code
    assert "test-set generation needs the 'ragkit-ragas' package: pip install ragkit-ragas" in result.output
    assert not (tmp_path / "q.jsonl").exists()


def test_an_unknown_testset_generator_lists_the_known_ones():
    with pytest.raises(NotFoundError, match="no testset_generator named 'nope'"):
        testset.build_testset_generator({"type": "nope"})
