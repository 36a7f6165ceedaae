"""Creating, listing, showing and deleting collections."""

from __future__ import annotations

import httpx

from tests.service.conftest import Service, wait_for_job


def test_collection_lifecycle(admin: httpx.Client, service: Service) -> None:
    admin.delete("/v1/collections/lifecycle")
    created = admin.post("/v1/collections", json={"name": "lifecycle"})
    assert created.status_code == 201, created.text
    info = created.json()
    assert info["name"] == "lifecycle" and info["counts"] == {"chunks": 0, "sources": 0}
    assert info["config"]["embedder"]["type"] == "sentence-transformers" and info["embedding"]["dimension"] > 0
    assert "lifecycle" in admin.get("/v1/collections").json()["collections"]

    duplicate = admin.post("/v1/collections", json={"name": "lifecycle"})
    assert duplicate.status_code == 409 and "already exists" in duplicate.json()["error"]["message"]

    job = admin.post("/v1/collections/lifecycle/documents", files=[("files", ("n.md", b"# N\n\nNorth.\n"))])
    wait_for_job(admin, job.json()["id"])
    assert admin.get("/v1/collections/lifecycle").json()["counts"] == {"chunks": 1, "sources": 1}

    assert admin.delete("/v1/collections/lifecycle").status_code == 204
    assert not (service.home / "collections" / "lifecycle").exists()
    assert not (service.home / "documents" / "lifecycle").exists()
    gone = admin.get("/v1/collections/lifecycle")
    assert gone.status_code == 404 and gone.json()["error"]["type"] == "NotFoundError"
    assert admin.delete("/v1/collections/lifecycle").status_code == 404


def test_create_from_a_recipe_or_a_config(admin: httpx.Client) -> None:
    for name in ("from-recipe", "from-config"):
        admin.delete(f"/v1/collections/{name}")
    recipe = admin.post("/v1/collections", json={"name": "from-recipe", "recipe": "default"})
    assert recipe.status_code == 201, recipe.text
    config = {"splitter": {"type": "recursive", "chunk_size": 300, "chunk_overlap": 0}, "lexical": None}
    configured = admin.post("/v1/collections", json={"name": "from-config", "config": config})
    assert configured.status_code == 201, configured.text
    assert configured.json()["config"]["splitter"]["chunk_size"] == 300
    assert configured.json()["config"]["lexical"] is None
    for name in ("from-recipe", "from-config"):
        assert admin.delete(f"/v1/collections/{name}").status_code == 204


def test_create_refuses_bad_input(admin: httpx.Client) -> None:
    bad_name = admin.post("/v1/collections", json={"name": "../etc"})
    assert bad_name.status_code == 422 and "name" in bad_name.json()["error"]["message"]
    unknown_recipe = admin.post("/v1/collections", json={"name": "r1", "recipe": "no-such-recipe"})
    assert unknown_recipe.status_code == 400 and "no recipe named" in unknown_recipe.json()["error"]["message"]
    path_recipe = admin.post("/v1/collections", json={"name": "r1", "recipe": "/etc/passwd.yaml"})
    assert path_recipe.status_code == 422, "recipes are names, never server paths"
    bad_config = admin.post("/v1/collections", json={"name": "r1", "config": {"splitter": {"chunk_size": 5}}})
    assert bad_config.status_code == 400 and "splitter" in bad_config.json()["error"]["message"]
    unknown_field = admin.post("/v1/collections", json={"name": "r1", "color": "red"})
    assert unknown_field.status_code == 422
    not_json = admin.post("/v1/collections", content=b"{", headers={"content-type": "application/json"})
    assert not_json.status_code == 422 and not_json.json()["error"]["type"] == "ValidationError"
    assert "r1" not in admin.get("/v1/collections").json()["collections"]


def test_a_name_with_a_trailing_newline_is_400_not_404(admin: httpx.Client) -> None:
    # `$` in a Python regex also matches before a final newline: "docs\n" once passed the name check
    for path in ("/v1/collections/docs%0a", "/v1/collections/docs%0a/search"):
        method = admin.post if path.endswith("search") else admin.get
        response = method(path, **({"json": {"query": "x"}} if path.endswith("search") else {}))
        assert response.status_code == 400, response.text
        assert "is not valid" in response.json()["error"]["message"]
    assert admin.post("/v1/collections", json={"name": "r2\n"}).status_code == 422
