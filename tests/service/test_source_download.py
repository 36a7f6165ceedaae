"""Source ids over REST: uploads named by their upload name, source prefixes, and downloading a source.

Issue 14 item 14: an upload was cited by the server's own path
(``<store>/documents/<collection>/<file>``) and there was no way to open a
cited document. Over the real service on loopback.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from ragkit import Collection
from ragkit.loaders import discovery
from tests.service.conftest import OTHER_KEY, READER_KEY, Service, new_collection, wait_for_job

NOTE = b"# Leave\n\nStaff get twenty-five days of paid leave each year.\n"
BEES = b"# Bees\n\nBees make honey from the nectar of flowers.\n"


def _sources(client: httpx.Client, name: str) -> set[str]:
    return {d["source"] for d in client.get(f"/v1/collections/{name}/documents").json()["documents"]}


def test_uploads_are_named_by_their_upload_name_and_can_be_downloaded(admin: httpx.Client, service: Service) -> None:
    new_collection(admin, "up")
    files = [("files", ("leave.md", NOTE, "text/markdown"))]
    job = admin.post("/v1/collections/up/documents", files=files, data={"source_prefix": "hr/"})
    assert job.status_code == 202, job.text
    assert wait_for_job(admin, job.json()["id"])["status"] == "succeeded"
    plain = admin.post("/v1/collections/up/documents", files=[("files", ("bees.md", BEES))])
    assert wait_for_job(admin, plain.json()["id"])["status"] == "succeeded"
    assert _sources(admin, "up") == {"hr/leave.md", "bees.md"}
    listing = {d["source"]: d for d in admin.get("/v1/collections/up/documents").json()["documents"]}
    assert listing["hr/leave.md"]["uploaded"] is True and listing["hr/leave.md"]["name"] == "hr/leave.md"

    search = admin.post(
        "/v1/collections/up/search",
        json={"query": "paid leave", "top_k": 5, "filters": 'source.startswith("hr/")'},
    )
    assert search.status_code == 200, search.text
    hits = search.json()["hits"]
    assert [h["source"] for h in hits] == ["hr/leave.md"]
    assert hits[0]["url"] == "/v1/collections/up/sources/hr/leave.md" and hits[0]["uri"] is None
    assert admin.get(hits[0]["url"]).content == NOTE, "a hit's url downloads its document"
    assert str(service.home) not in search.text, "the server's own folders are nobody's business"
    exact = admin.post("/v1/collections/up/search", json={"query": "leave", "filters": {"source": "hr/leave.md"}})
    assert [h["source"] for h in exact.json()["hits"]] == ["hr/leave.md"]

    download = admin.get("/v1/collections/up/sources/hr/leave.md")
    assert download.status_code == 200 and download.content == NOTE
    assert download.headers["content-type"].startswith("text/markdown")
    assert 'filename="leave.md"' in download.headers["content-disposition"]
    with service.client(READER_KEY) as reader:  # read scope is enough
        assert reader.get("/v1/collections/up/sources/bees.md").content == BEES

    # a name that needs quoting in a URL: the hit's url still opens it
    odd = admin.post("/v1/collections/up/documents", files=[("files", ("Bienen & Hummeln #1 ü.md", BEES))])
    assert wait_for_job(admin, odd.json()["id"])["status"] == "succeeded"
    hit = admin.post(
        "/v1/collections/up/search", json={"query": "honey", "filters": {"source": "Bienen & Hummeln #1 ü.md"}}
    ).json()["hits"][0]
    opened = admin.get(hit["url"])
    assert opened.status_code == 200 and opened.content == BEES
    assert "filename*=utf-8''Bienen%20%26%20Hummeln%20%231%20%C3%BC.md" in opened.headers["content-disposition"]

    # deleting the document deletes the copy; the source is then unknown
    assert admin.delete("/v1/collections/up/documents/" + listing["hr/leave.md"]["id"]).status_code == 204
    assert not (service.home / "documents" / "up" / "hr" / "leave.md").exists()
    gone = admin.get("/v1/collections/up/sources/hr/leave.md")
    assert gone.status_code == 404 and "has no downloadable source 'hr/leave.md'" in gone.json()["error"]["message"]


def test_a_bad_source_prefix_is_400(admin: httpx.Client) -> None:
    new_collection(admin, "badprefix")
    for bad in ("../x", "/abs", "a\\b"):
        upload = admin.post(
            "/v1/collections/badprefix/documents", files=[("files", ("a.md", NOTE))], data={"source_prefix": bad}
        )
        assert upload.status_code == 400 and "source prefix" in upload.json()["error"]["message"], upload.text
        by_path = admin.post("/v1/collections/badprefix/ingest", json={"path": "corpus", "source_prefix": bad})
        assert by_path.status_code == 400 and "source prefix" in by_path.json()["error"]["message"], by_path.text


def test_server_side_files_are_relative_to_the_path_and_downloadable_inside_the_roots(
    admin: httpx.Client, service: Service, tmp_path: Path
) -> None:
    new_collection(admin, "bypath")
    folder = service.roots / "library"
    (folder / "hr").mkdir(parents=True, exist_ok=True)
    (folder / "hr" / "leave.md").write_bytes(NOTE)
    (folder / "bees.md").write_bytes(BEES)
    job = admin.post("/v1/collections/bypath/ingest", json={"path": "library", "source_prefix": "lib"})
    assert job.status_code == 202, job.text
    assert wait_for_job(admin, job.json()["id"])["status"] == "succeeded"
    assert _sources(admin, "bypath") == {"lib/hr/leave.md", "lib/bees.md"}
    download = admin.get("/v1/collections/bypath/sources/lib/hr/leave.md")
    assert download.status_code == 200 and download.content == NOTE

    # an upload may not take an id a server-side file holds
    clash = admin.post(
        "/v1/collections/bypath/documents",
        files=[("files", ("bees.md", b"# Other bees\n"))],
        data={"source_prefix": "lib"},
    )
    failed = wait_for_job(admin, clash.json()["id"])
    assert failed["status"] == "failed" and "already taken" in str(failed), failed
    assert admin.get("/v1/collections/bypath/sources/lib/bees.md").content == BEES
    assert not (service.home / "documents" / "bypath" / "lib" / "bees.md").exists()

    # a file that is gone, and one ingested from outside the roots, are the same 404 as an unknown source
    (folder / "bees.md").unlink()
    assert admin.get("/v1/collections/bypath/sources/lib/bees.md").status_code == 404
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_bytes(b"# Secret\n\nNot for the service to hand out.\n")
    with Collection.open("bypath", store_dir=service.home) as col:
        col.ingest(outside)  # e.g. by the CLI on the server's machine
    assert "secret.md" in _sources(admin, "bypath")
    refused = admin.get("/v1/collections/bypath/sources/secret.md")
    assert refused.status_code == 404 and refused.json()["error"]["message"].endswith("'secret.md'")


def test_download_needs_a_key_that_may_read_the_collection(admin: httpx.Client, service: Service) -> None:
    ok = admin.get("/v1/collections/docs/sources/black-death.txt")
    assert ok.status_code == 200
    assert ok.content == (service.corpus / "black-death.txt").read_bytes()
    assert ok.headers["content-type"].startswith("text/plain")
    pdf = admin.get("/v1/collections/docs/sources/super-bowl-50.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    with service.client(None) as anonymous:
        assert anonymous.get("/v1/collections/docs/sources/black-death.txt").status_code == 401
    with service.client(OTHER_KEY) as limited:  # a key limited to 'other'
        hidden = limited.get("/v1/collections/docs/sources/black-death.txt")
        missing = limited.get("/v1/collections/nope/sources/black-death.txt")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["error"]["type"] == missing.json()["error"]["type"]
    unknown = admin.get("/v1/collections/docs/sources/no/such.md")
    assert unknown.status_code == 404 and unknown.json()["error"]["message"]
    assert admin.get("/v1/collections/nope/sources/a.md").status_code == 404


def test_an_upload_from_before_relative_ids_is_served_then_replaced_by_its_name(
    admin: httpx.Client, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_collection(admin, "oldup")
    folder = service.home / "documents" / "oldup"
    folder.mkdir(parents=True)
    (folder / "leave.md").write_bytes(NOTE)
    real = discovery._source_file

    def absolute(path: Path, relative: str, prefix: str):  # what ragkit named an upload before
        found = real(path, relative, prefix)
        if found is not None:
            found.source = found.resolved
        return found

    with monkeypatch.context() as patch, Collection.open("oldup", store_dir=service.home) as col:
        patch.setattr(discovery, "_source_file", absolute)
        col.ingest([folder / "leave.md"], record_uri=False)
    old = (folder / "leave.md").resolve().as_posix()
    [listed] = admin.get("/v1/collections/oldup/documents").json()["documents"]
    assert (listed["source"], listed["name"], listed["uploaded"]) == (old, "leave.md", True)
    served = admin.get("/v1/collections/oldup/sources/" + quote(old, safe="/"))
    assert served.status_code == 200 and served.content == NOTE

    changed = NOTE + b"\nUnused days carry over to March.\n"
    job = admin.post("/v1/collections/oldup/documents", files=[("files", ("leave.md", changed))])
    done = wait_for_job(admin, job.json()["id"])
    assert (done["counts"]["added"], done["counts"]["updated"]) == (0, 1), done
    assert _sources(admin, "oldup") == {"leave.md"}, "the old absolute record was replaced, not duplicated"
    assert admin.get("/v1/collections/oldup/sources/leave.md").content == changed
