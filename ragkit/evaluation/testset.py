"""The ``testset_generator`` role: writing a question set from documents, found through the registry.

The core ships no test-set generator; a connector does (``ragkit-ragas``
registers ``testset_generator.ragas`` in the ``ragkit.components``
entry-point group). ``ragkit eval testset`` builds one with
:func:`build_testset_generator`, so the core never imports the connector,
and a missing connector is a :class:`~ragkit.errors.MissingDependencyError`
that names the package to install.

A test-set generator is a component (``from_config`` / ``to_config``) with
one method, :meth:`TestsetGenerator.generate`, that writes the questions as
JSONL in the question format of the evaluation suites and returns a
:class:`TestsetOutcome`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from ragkit import registry
from ragkit.errors import MissingDependencyError, NotFoundError

ROLE = "testset_generator"
"""The registry role of test-set generators."""

DEFAULT_TESTSET_GENERATOR = "ragas"
"""The test-set generator ``ragkit eval testset`` uses."""

PACKAGES = {DEFAULT_TESTSET_GENERATOR: "ragkit-ragas"}
"""The distribution that provides each test-set generator ragkit knows of (for the error when it is missing)."""


class TestsetOutcome(Protocol):
    """What a test-set generator reports about one run."""

    requested: int
    """Questions asked for."""
    written: int
    """Questions written (each one verified against its document)."""
    attempted: int
    """Passages the question writer was asked about."""
    dropped: int
    """Questions generated but not written."""
    drop_reasons: dict[str, int]
    """Dropped questions by reason."""
    out: str
    """The file written."""

    def to_dict(self) -> dict[str, Any]:
        """The whole outcome as a JSON-ready dict."""
        ...


class TestsetGenerator(Protocol):
    """Writes a question set with source spans from a folder (or file) of documents."""

    def generate(self, documents: Path | str, n: int, seed: int, out: Path | str) -> TestsetOutcome:
        """Write up to ``n`` questions about ``documents`` to ``out`` (JSONL); ``seed`` picks the passages."""
        ...


def build_testset_generator(config: Mapping[str, Any]) -> TestsetGenerator:
    """The test-set generator ``config`` names (``{"type": ..., **options}``), built through the registry.

    Raises:
        MissingDependencyError: No installed package provides the type (the
            message names the package for the types ragkit knows of).
        NotFoundError: An unknown type no known package provides.
        ConfigError: The type's options are invalid.

    """
    name = str(config.get("type", DEFAULT_TESTSET_GENERATOR))
    try:
        cls: Any = registry.get(ROLE, name)
    except (NotFoundError, ImportError):
        package = PACKAGES.get(name)
        if package is None:
            raise
        raise MissingDependencyError("test-set generation", package) from None
    generator: TestsetGenerator = cls.from_config({**config, "type": name})
    return generator
