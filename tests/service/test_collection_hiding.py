"""A key limited to some collections cannot tell another collection that exists from one that does not:
every route answers the same 404 for both (and for one of its own collections that is missing), never
listing the collections that exist."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ragkit.collection import Collection
from ragkit.service import ApiKey, ServiceSettings, build_pipelines, create_app
from tests.service.conftest import LiveServer, tiny_pipeline

LIMITED = "k-limited-admin-0123456789"
"""An admin key limited to 'colA' (exists) and 'colB' (does not)."""
ADMIN = "k-admin-0123456789"

REQUESTS = [
    ("GET", "/v1/collections/{name}", None),
    ("GET", "/v1/collections/{name}/documents", None),
    ("POST", "/v1/collections/{name}/search", {"query": "plague"}),
    ("POST", "/v1/collections/{name}/ask", {"question": "Who?"}),
    ("POST", "/v1/collections/{name}/ingest", {"path": "."}),
    ("DELETE", "/v1/collections/{name}/documents/a.md", None),
    ("DELETE", "/v1/collections/{name}", None),
]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("hiding-home")
    roots = tmp_path_factory.mktemp("hiding-root")
    for name in ("colA", "secret"):
        Collection.create(name, store_dir=home).close()
    unreachable = {"type": "openai", "model": "never-called", "base_url": "http://127.0.0.1:9/v1"}
    settings = ServiceSettings(
        store_dir=home,
        api_keys=[
            ApiKey.model_validate({"key": ADMIN, "name": "admin", "scopes": ["admin"]}),
            ApiKey.model_validate(
                {"key": LIMITED, "name": "limited", "scopes": ["admin"], "collections": ["colA", "colB"]}
            ),
        ],
        pipelines={"basic": tiny_pipeline(generator=unreachable)},
        ingest_roots=[Path(roots)],
    )
    with LiveServer(create_app(settings, pipelines=build_pipelines(settings))) as server:
        yield server.url


def _client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _answer(client: httpx.Client, method: str, path: str, body: object, name: str) -> tuple[int, str, str]:
    response = client.request(method, path.format(name=name), json=body)
    error = response.json()["error"]
    return response.status_code, error["type"], error["message"].replace(repr(name), "<NAME>")


@pytest.mark.parametrize(("method", "path", "body"), REQUESTS)
def test_another_collection_and_a_missing_one_get_the_same_404(url: str, method: str, path: str, body: object) -> None:
    with _client(url, LIMITED) as limited:
        existing = _answer(limited, method, path, body, "secret")  # exists, not this key's
        missing = _answer(limited, method, path, body, "nope")  # exists nowhere
        own_missing = _answer(limited, method, path, body, "colB")  # this key's, not created yet
    assert existing[0] == 404, existing
    assert existing == missing == own_missing
    assert "secret" not in existing[2] and "colA" in existing[2]  # names the key's own, never the others
    with _client(url, ADMIN) as admin:
        assert admin.get("/v1/collections/secret").status_code == 200  # it is there


def test_the_list_and_the_models_show_only_the_keys_collections(url: str) -> None:
    with _client(url, LIMITED) as limited:
        assert limited.get("/v1/collections").json()["collections"] == ["colA"]
        assert {m["id"].split(":")[0] for m in limited.get("/v1/models").json()["data"]} == {"colA"}
        answers = []
        for model in ("secret", "nope"):
            chat = limited.post(
                "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]}
            )
            assert chat.status_code == 404, (model, chat.text)
            answers.append(chat.json()["error"]["message"].replace(repr(model), "<MODEL>"))
        assert answers[0] == answers[1], "a forbidden model reads exactly like a missing one"
