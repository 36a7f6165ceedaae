"""``/v1/sql``: databases registered by admin keys, questions from read keys, persisted in the store folder.

The model is the FAKE OpenAI server through the real ``openai`` connector; the
database is a real SQLite file (its checksum must not change); the engine is
the real ``ragkit-sql`` connector, found through the registry.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ragkit.rag import PipelineConfig, RagPipeline
from ragkit.service import ApiKey, ServiceSettings, create_app
from ragkit.testing.fake_openai import FakeOpenAIServer

pytest.importorskip("sqlglot", reason="the ragkit-sql connector is not installed")

ADMIN = {"Authorization": "Bearer sql-admin-key-0123456789"}
READER = {"Authorization": "Bearer sql-reader-key-0123456789"}
LIMITED = {"Authorization": "Bearer sql-limited-key-0123456789"}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "shop.sqlite"
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price REAL);"
        "INSERT INTO products VALUES (1, 'Notebook', 3.5), (2, 'Fountain pen', 42.0), (3, 'Desk lamp', 25.0);"
        "CREATE TABLE users (id INTEGER PRIMARY KEY, login TEXT, password_hash TEXT);"
        "INSERT INTO users VALUES (1, 'admin', 'secret-hash');"
    )
    connection.commit()
    connection.close()
    return path


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(model="fake-model") as server:
        yield server


def make_client(fake: FakeOpenAIServer, home: Path) -> TestClient:
    generator = {"type": "openai", "model": "fake-model", "base_url": fake.v1, "api_key": "x", "max_retries": 0}
    settings = ServiceSettings(
        store_dir=home,
        api_keys=[
            ApiKey.model_validate({"key": ADMIN["Authorization"][7:], "name": "admin", "scopes": ["admin"]}),
            ApiKey.model_validate({"key": READER["Authorization"][7:], "name": "reader", "scopes": ["read"]}),
            ApiKey.model_validate(
                {"key": LIMITED["Authorization"][7:], "name": "limited", "scopes": ["read"], "collections": ["other"]}
            ),
        ],
    )
    pipelines = {"basic": RagPipeline(PipelineConfig.parse({"generator": generator}), name="basic")}
    return TestClient(create_app(settings, pipelines=pipelines))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def client(fake: FakeOpenAIServer, home: Path, shop: Path) -> Iterator[TestClient]:
    with make_client(fake, home) as test_client:
        registered = test_client.post(
            "/v1/sql/databases",
            json={"name": "shop", "url": f"sqlite:///{shop}", "deny_columns": ["users.password_hash"]},
            headers=ADMIN,
        )
        assert registered.status_code == 201, registered.text
        assert registered.json()["tables"] == ["products", "users"]
        yield test_client


def test_read_key_asks_and_gets_sql_rows_and_cited_rows(client: TestClient, fake: FakeOpenAIServer) -> None:
    replies = iter(["```sql\nSELECT name FROM products WHERE price > 20 ORDER BY name\n```", "Two products."])
    fake.reset(reply=lambda messages: next(replies))
    response = client.post(
        "/v1/sql", json={"database": "shop", "question": "Which products cost over 20?"}, headers=READER
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] == "Two products."
    assert body["sql"] == "SELECT name FROM products WHERE price > 20 ORDER BY name LIMIT 100"
    assert body["rows"] == [["Desk lamp"], ["Fountain pen"]]
    assert [(c["source"], c["row"], c["quote"]) for c in body["citations"]] == [
        ("sql:shop", 0, "name=Desk lamp"),
        ("sql:shop", 1, "name=Fountain pen"),
    ]
    assert body["database"] == "shop" and body["attempts"][0]["error"] is None


def test_a_write_is_refused_and_the_file_is_unchanged(client: TestClient, fake: FakeOpenAIServer, shop: Path) -> None:
    before = hashlib.sha256(shop.read_bytes()).hexdigest()
    fake.reset(reply="```sql\nUPDATE users SET password_hash = 'x'\n```")
    response = client.post("/v1/sql", json={"database": "shop", "question": "Reset the password"}, headers=READER)
    assert response.status_code == 200
    body = response.json()
    assert body["rows"] == [] and body["error"].startswith("refused (not_select)")
    assert len(body["attempts"]) == 2
    assert hashlib.sha256(shop.read_bytes()).hexdigest() == before


def test_denied_column_stays_hidden(client: TestClient, fake: FakeOpenAIServer) -> None:
    state = fake.reset(reply="```sql\nSELECT password_hash FROM users\n```")
    body = client.post("/v1/sql", json={"database": "shop", "question": "Hashes?"}, headers=READER).json()
    assert "users.password_hash is not allowed" in body["error"]
    assert "secret-hash" not in json.dumps(state.bodies)


def test_scopes_and_limited_keys(client: TestClient, shop: Path) -> None:
    spec = {"name": "shop2", "url": f"sqlite:///{shop}"}
    assert client.post("/v1/sql/databases", json=spec, headers=READER).status_code == 403
    assert client.post("/v1/sql/databases", json=spec).status_code == 401
    limited = client.post("/v1/sql", json={"database": "shop", "question": "q"}, headers=LIMITED)
    unknown = client.post("/v1/sql", json={"database": "nope", "question": "q"}, headers=READER)
    assert limited.status_code == unknown.status_code == 404
    assert client.get("/v1/sql/databases", headers=LIMITED).json() == {"databases": []}
    assert [d["name"] for d in client.get("/v1/sql/databases", headers=READER).json()["databases"]] == ["shop"]


def test_bad_registrations(client: TestClient, tmp_path: Path) -> None:
    missing = client.post(
        "/v1/sql/databases", json={"name": "gone", "url": f"sqlite:///{tmp_path / 'no.sqlite'}"}, headers=ADMIN
    )
    assert missing.status_code == 404 and "does not exist" in missing.json()["error"]["message"]
    twice = client.post("/v1/sql/databases", json={"name": "shop", "url": "sqlite:///x"}, headers=ADMIN)
    assert twice.status_code == 409
    bad_name = client.post("/v1/sql/databases", json={"name": "../x", "url": "sqlite:///x"}, headers=ADMIN)
    assert bad_name.status_code == 422


def test_registrations_persist_with_masked_passwords(
    fake: FakeOpenAIServer, home: Path, shop: Path, client: TestClient
) -> None:
    path = home / "sql_databases.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["databases"]["shop"]["url"] == f"sqlite:///{shop}"
    with make_client(fake, home) as again:
        listed = again.get("/v1/sql/databases", headers=READER).json()["databases"]
        assert [d["name"] for d in listed] == ["shop"]
        assert again.delete("/v1/sql/databases/shop", headers=READER).status_code == 403
    from ragkit.service.routes.sql import mask_url

    assert mask_url("postgresql://me:s3cret@db:5432/sales") == "postgresql://me:***@db:5432/sales"


def test_delete_forgets_the_database(fake: FakeOpenAIServer, tmp_path: Path, shop: Path) -> None:
    with make_client(fake, tmp_path) as fresh:
        assert fresh.post("/v1/sql/databases", json={"name": "tmp", "url": str(shop)}, headers=ADMIN).status_code == 201
        assert fresh.delete("/v1/sql/databases/tmp", headers=ADMIN).status_code == 204
        assert fresh.post("/v1/sql", json={"database": "tmp", "question": "q"}, headers=READER).status_code == 404
        assert fresh.delete("/v1/sql/databases/tmp", headers=ADMIN).status_code == 404
