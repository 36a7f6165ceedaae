"""Property-based tests of the whole API from its OpenAPI schema (schemathesis).

Every operation gets generated requests, valid and invalid; no answer may be a
server error, and every answer must match the status codes and bodies the
schema documents. The service under test runs on its own store with one small
collection and the real local model answering in at most 4 tokens.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ragkit.collection import Collection
from ragkit.service import ServiceSettings, create_app
from tests.service.conftest import SAMPLE, LiveServer, tiny_pipeline

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]


def _settings(home: Path, roots: list[Path]) -> ServiceSettings:
    return ServiceSettings(
        store_dir=home,
        pipelines={"basic": tiny_pipeline(max_tokens=4, min_score=None)},  # every question reaches the model
        ingest_roots=roots,
        max_upload_bytes=64 * 1024,
        max_request_bytes=256 * 1024,
        max_json_bytes=64 * 1024,
    )


# the schema comes from an app built only to describe itself (it serves nothing)
schema = schemathesis.openapi.from_dict(create_app(_settings(Path(tempfile.gettempdir()), [])).openapi())


@pytest.fixture(scope="module")
def fuzz_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a service of its own, with one small collection 'docs'."""
    home = tmp_path_factory.mktemp("fuzz-home")
    roots = tmp_path_factory.mktemp("fuzz-roots")
    shutil.copy(SAMPLE / "packet-switching.md", roots / "packet-switching.md")
    with Collection.create("docs", store_dir=home) as docs:
        docs.ingest([roots])
    with LiveServer(create_app(_settings(home, [roots]))) as server:
        yield server.url


_aimed = itertools.count()


def _aim_at_the_collection(case: schemathesis.Case[Any]) -> None:
    """Point every other case at the existing collection, so the query routes get past 404 and run the model."""
    if next(_aimed) % 2 or (case.method == "DELETE" and case.operation.path == "/v1/collections/{name}"):
        return
    if isinstance(case.path_parameters, dict) and "name" in case.path_parameters:
        case.path_parameters["name"] = "docs"
    if case.operation.path == "/v1/chat/completions" and isinstance(case.body, dict) and "model" in case.body:
        case.body["model"] = "docs"


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_schema(case: schemathesis.Case[Any], fuzz_url: str) -> None:
    _aim_at_the_collection(case)
    case.call_and_validate(base_url=fuzz_url, checks=CHECKS, timeout=60)
