"""A symbolic-link loop under an ingest root, given as an ingest path or a suite path: 400, not a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.service.conftest import Service, new_collection


@pytest.fixture(scope="module")
def loop(service: Service) -> str:
    folder = service.roots / "loops"
    folder.mkdir(exist_ok=True)
    for name, target in (("a", "b"), ("b", "a")):
        link = folder / name
        if not link.is_symlink():
            link.symlink_to(folder / target)
    return "loops/a"


def test_ingesting_a_symlink_loop_is_a_400_naming_it(admin: httpx.Client, loop: str) -> None:
    new_collection(admin, "loops")
    for path in (loop, f"{loop}/inside.md"):
        response = admin.post("/v1/collections/loops/ingest", json={"path": path})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "InputError" and "symbolic link loop" in error["message"] and path in error["message"]


def test_a_suite_path_through_a_symlink_loop_is_a_400(admin: httpx.Client, loop: str) -> None:
    response = admin.post("/v1/evaluations", json={"suite": f"{loop}/suite.yaml"})
    assert response.status_code == 400, response.text
    assert "symbolic link loop" in response.json()["error"]["message"]
