"""The web page at ``/`` in a real browser: Playwright driving Debian's Chromium against the real service.

The service runs on loopback over a small real collection (three squad-dev
articles, a PDF and a CSV); its generator is the ``openai`` connector talking
to the FAKE OpenAI-compatible server (``ragkit.testing.fake_openai``), which
streams a scripted reply citing ``[1]`` word by word, so answers are quick
and deterministic. Nothing here asserts wall-clock time; the first-token
delay is measured and printed (run with ``-s``).

``RAGKIT_WEB_SCREENSHOTS=1`` also saves the guide's screenshots to
``docs/images/web-*.png`` (``scripts/web_screenshots.py`` does just that).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragkit.collection import Collection
from ragkit.service import ApiKey, ServiceSettings, create_app
from ragkit.service.routes.web import WEB_DIR
from ragkit.testing.fake_openai import FakeOpenAIServer
from tests.service.conftest import LiveServer

playwright_sync = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
SQUAD = Path(os.environ.get("RAGKIT_SQUAD_DOCS", "/work/shared/datasets/squad-dev/documents"))
SAMPLE = ROOT / "evaluation" / "datasets" / "sample-docs"
IMAGES = ROOT / "docs" / "images"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
KEY = "web-test-key-0123456789"
REPLY = "The answer is in the first source [1]. It says so plainly."
CSV = "city,river,country\nParis,Seine,France\nKyiv,Dnipro,Ukraine\nCairo,Nile,Egypt\n"
SHOTS = os.environ.get("RAGKIT_WEB_SCREENSHOTS") == "1"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt install chromium)")


class TokenClock:
    """ASGI wrapper noting when (epoch seconds) the service sends each body chunk holding a ``token`` event."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sent: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def timed_send(message: Any) -> None:
            await send(message)
            if message.get("type") == "http.response.body" and b"event: token" in message.get("body", b""):
                self.sent.append(time.time())

        await self.app(scope, receive, timed_send)


class WebService:
    def __init__(self, url: str, clock: TokenClock, fake: FakeOpenAIServer, corpus: Path) -> None:
        self.url = url
        self.corpus = corpus
        self.clock = clock
        self.fake = fake

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": KEY}, timeout=60)


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebService]:
    home = tmp_path_factory.mktemp("web-home")
    corpus = tmp_path_factory.mktemp("web-corpus")
    squad = sorted(SQUAD.glob("*.md"), key=lambda p: (p.stat().st_size, p.name))  # the smallest: a quick ingest
    if not squad:
        pytest.skip(f"no squad-dev documents in {SQUAD}")
    for path in [p for p in squad if "super-bowl" not in p.name][:3]:
        shutil.copy(path, corpus / path.name)
    shutil.copy(SAMPLE / "super-bowl-50.pdf", corpus / "super-bowl-50.pdf")
    (corpus / "rivers.csv").write_text(CSV)
    with Collection.create("library", store_dir=home) as library:
        report = library.ingest([corpus])
        assert report.added == 5 and not report.failed, report.summary()
    first = sorted(corpus.glob("*.md"))[0].name  # questions for an evaluation run, written after the ingest
    lines = [
        {"id": f"q{i}", "question": q, "answers": ["x"], "gold_spans": [{"source": first, "start": 0, "end": 200}]}
        for i, q in enumerate(["What is this article about?", "What does the first section say?"])
    ]
    (corpus / "questions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    with FakeOpenAIServer(model="fake-model", reply=REPLY, chunk_delay=0.03) as fake:
        generator = {"type": "openai", "model": "fake-model", "base_url": fake.v1, "max_retries": 0}
        pipeline = {
            "retrieval": {"top_k": 3, "min_score": None},
            "context": {"max_tokens": 512},
            "generator": generator,
            "answer": {"max_tokens": 32, "temperature": 0.0},
        }
        settings = ServiceSettings(
            store_dir=home,
            api_keys=[ApiKey.model_validate({"key": KEY, "name": "web", "scopes": ["admin"]})],
            pipelines={"fake": pipeline, "short": {**pipeline, "answer": {"max_tokens": 8}}},
            default_pipeline="fake",
            ingest_roots=[corpus],
            log_json=False,
            log_level="WARNING",
        )
        clock = TokenClock(create_app(settings))
        with LiveServer(clock) as server:
            yield WebService(server.url, clock, fake, corpus)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, web: WebService) -> Iterator[Any]:
    """A fresh page (its own sessionStorage) that may reach nothing but the service: any other request fails."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def guard(route: Any) -> None:
        if route.request.url.startswith(web.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.outside_requests = outside
    yield page
    context.close()


def screenshot(page: Any, name: str) -> None:
    """Save the page as docs/images/``name``, reduced to a 64-colour palette to keep the guide light."""
    from PIL import Image

    path = IMAGES / name
    page.screenshot(path=str(path))
    with Image.open(path) as image:
        image.convert("RGB").quantize(colors=64).save(path, optimize=True)


def open_with_key(page: Any, web: WebService) -> None:
    page.goto(web.url + "/")
    page.fill("#api-key", KEY)
    page.click("#key-form button[type=submit]")
    page.wait_for_function("document.querySelector('#collection').options.length > 0")
    # the pipelines come from their own request (/v1/models), which may answer after the collections
    page.wait_for_function("document.querySelector('#pipeline').options.length > 0")


def ask(page: Any, question: str) -> None:
    page.fill("#question", question)
    page.press("#question", "Enter")
    page.wait_for_function("window.ragkitPage.answer !== null && !document.querySelector('#ask-button').disabled")


WATCH_ANSWER = """() => {
    window.domUpdates = [];
    const box = document.querySelector('#answer');
    new MutationObserver(() => window.domUpdates.push({
        at: performance.timeOrigin + performance.now(),
        length: box.textContent.length,
        final: window.ragkitPage.answer !== null,
    })).observe(box, {characterData: true, childList: true, subtree: true});
}"""
"""Record every change of the answer box: when (epoch ms), its text length, and whether the answer was final."""


def watch_answer(page: Any) -> None:
    page.evaluate(WATCH_ANSWER)


def clock_offset(page: Any) -> float:
    """The browser's epoch clock minus this process's, in seconds (the best of a few round trips)."""
    samples = []
    for _ in range(5):
        before = time.time()
        browser_now = page.evaluate("performance.timeOrigin + performance.now()") / 1000
        after = time.time()
        samples.append((after - before, browser_now - (before + after) / 2))
    return min(samples)[1]


def report_first_token(page: Any, web: WebService, what: str) -> float:
    """Print (not assert) how long after the service sent the first token event the page showed it."""
    updates = page.evaluate("window.domUpdates")
    first_shown = min(u["at"] for u in updates if u["length"] > 0) / 1000 - clock_offset(page)
    delay_ms = (first_shown - web.clock.sent[0]) * 1000
    FIRST_TOKEN_MS.append(delay_ms)
    print(f"\nfirst token ({what}): shown {delay_ms:.1f} ms after the service sent it")
    return delay_ms


FIRST_TOKEN_MS: list[float] = []


def test_the_page_and_its_assets_load_offline_and_weigh_under_300_kb(page: Any, web: WebService) -> None:
    open_with_key(page, web)
    assert page.title() == "ragkit"
    assert [o for o in page.eval_on_selector_all("#collection option", "os => os.map(o => o.value)")] == ["library"]
    assert page.eval_on_selector_all("#pipeline option", "os => os.map(o => o.textContent)") == ["default", "short"]
    # what the browser loaded to draw the page (the API calls it made are fetches, not assets), read from the
    # page's own resource timing once the network is idle, not from response events that may still be queued
    page.wait_for_load_state("networkidle")
    assets = page.evaluate(
        """() => [location.href, ...performance.getEntriesByType('resource')
            .filter(e => !['fetch', 'xmlhttprequest'].includes(e.initiatorType)).map(e => e.name)]"""
    )
    with web.client() as http:
        sizes = {url: len(http.get(url).content) for url in assets}
    assert sorted(url.rsplit("/", 1)[-1] for url in sizes) == ["", "app.css", "app.js"], sizes
    assert sum(sizes.values()) < 300_000, sizes
    shipped = sum(p.stat().st_size for p in WEB_DIR.iterdir() if p.is_file())
    assert shipped < 300_000
    assert page.outside_requests == []


def test_api_docs_render_offline(page: Any, web: WebService) -> None:
    page.goto(web.url + "/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)  # Swagger UI drew the operations
    paths = page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.textContent)")
    assert any("/v1/collections/{name}/ask" in p.replace("\u200b", "") for p in paths)
    assert page.outside_requests == []


def test_without_a_key_a_clear_message_with_it_the_collections(page: Any, web: WebService) -> None:
    page.goto(web.url + "/")
    notice = page.locator("#notice")
    notice.wait_for(state="visible")
    assert "needs an API key" in notice.inner_text()
    assert page.eval_on_selector_all("#collection option", "os => os.length") == 0
    page.fill("#api-key", "a-wrong-key")
    page.click("#key-form button[type=submit]")
    page.wait_for_function("document.querySelector('#notice').textContent.includes('refused')")
    page.fill("#api-key", KEY)
    page.press("#api-key", "Enter")
    page.wait_for_function("document.querySelector('#collection').options.length === 1")
    assert notice.is_hidden()
    page.reload()  # the key is kept for the tab's session
    page.wait_for_function("document.querySelector('#collection').options.length === 1")
    assert page.input_value("#api-key") == KEY


def test_ask_streams_tokens_then_a_citation_opens_its_source_with_the_span_marked(page: Any, web: WebService) -> None:
    open_with_key(page, web)
    watch_answer(page)
    web.clock.sent.clear()
    ask(page, "Which river flows through Kyiv?")
    updates = page.evaluate("window.domUpdates")
    streamed = sorted({u["length"] for u in updates if not u["final"] and u["length"] > 0})
    assert len(streamed) > 3, updates  # the text grew token by token before the final answer arrived
    answer = page.evaluate("window.ragkitPage.answer")
    assert answer["text"].startswith("The answer is in the first source [1].")
    assert page.inner_text("#answer").startswith("The answer is in the first source [1].")

    report_first_token(page, web, "csv question")

    citation = answer["citations"][0]
    assert citation["number"] == 1 and citation["source"] == "rivers.csv" and citation["row"] == 2
    hit = next(h for h in answer["hits"] if h["chunk_id"] == citation["chunk_id"])
    link = page.locator("#answer a.cite").first
    assert link.inner_text() == "[1]"
    link.click()
    mark = page.locator("#source-text mark")
    mark.wait_for()
    assert mark.inner_text() == hit["text"] and "Dnipro" in hit["text"]
    assert "Row 2" in page.inner_text("#source-meta")
    page.click("#trace summary")
    assert "generate" in page.inner_text("#trace-body")
    if SHOTS:
        screenshot(page, "web-ask.png")


def test_a_pdf_citation_shows_its_page_and_that_page_text(page: Any, web: WebService) -> None:
    open_with_key(page, web)
    watch_answer(page)
    web.clock.sent.clear()
    ask(page, "Where was Super Bowl 50 played, Levi's Stadium?")
    report_first_token(page, web, "pdf question")
    answer = page.evaluate("window.ragkitPage.answer")
    citation = answer["citations"][0]
    assert citation["source"] == "super-bowl-50.pdf" and citation["page"] is not None
    page.locator("#citations a.cite").first.click()
    mark = page.locator("#source-text mark")
    mark.wait_for()
    hit = next(h for h in answer["hits"] if h["chunk_id"] == citation["chunk_id"])
    assert mark.inner_text() == hit["text"]
    assert f"Page {citation['page']}" in page.inner_text("#source-meta")
    if SHOTS:
        screenshot(page, "web-pdf-citation.png")


def test_keyboard_tab_to_the_question_type_and_enter_submits(page: Any, web: WebService) -> None:
    open_with_key(page, web)
    page.evaluate("document.activeElement.blur()")
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "question":
            break
    assert page.evaluate("document.activeElement.id") == "question"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"  # focus is visible
    page.keyboard.type("Which river flows through Cairo?")
    page.keyboard.press("Enter")
    page.wait_for_function("window.ragkitPage.answer !== null")
    assert page.get_attribute("#answer", "aria-live") == "polite"
    assert "[1]" in page.inner_text("#answer")


def test_upload_shows_progress_and_the_file_becomes_searchable(page: Any, web: WebService, tmp_path: Path) -> None:
    open_with_key(page, web)
    note = tmp_path / "lighthouse-notes.txt"
    note.write_text("The Quillhaven lighthouse keeper logs the fog horn every evening at nine.\n")
    page.set_input_files("#files", str(note))
    page.click("#upload-form button[type=submit]")
    page.wait_for_function("document.querySelector('#upload-status').textContent.startsWith('Done')", timeout=60_000)
    assert page.is_visible("#upload-progress")
    assert page.evaluate("document.querySelector('#upload-progress').value") == 1
    assert "1 added" in page.inner_text("#upload-status")
    page.wait_for_selector("#documents tbody th:text('lighthouse-notes.txt')")
    with web.client() as client:
        hits = client.post("/v1/collections/library/search", json={"query": "Quillhaven lighthouse", "top_k": 1})
    assert hits.json()["hits"][0]["source"] == "lighthouse-notes.txt"
    if SHOTS:
        screenshot(page, "web-upload.png")


def test_the_texts_route_gives_the_extracted_text_citations_index(web: WebService) -> None:
    with web.client() as client:
        body = {"question": "Which river flows through Paris?", "max_tokens": 8}
        answer = client.post("/v1/collections/library/ask", json=body).json()
        citation = answer["citations"][0]
        texts = client.get(f"/v1/collections/library/texts/{citation['source']}")
        assert texts.status_code == 200, texts.text
        document = next(d for d in texts.json()["documents"] if d["id"] == citation["document_id"])
        hit = next(h for h in answer["hits"] if h["chunk_id"] == citation["chunk_id"])
        assert document["text"][citation["start"] : citation["end"]] == hit["text"]
        missing = client.get("/v1/collections/library/texts/no-such-file.txt")
        assert missing.status_code == 404 and "no-such-file.txt" in missing.json()["error"]["message"]
    assert httpx.get(f"{web.url}/v1/collections/library/texts/rivers.csv").status_code == 401


def test_documents_are_listed_and_a_whole_source_shows_its_rows(page: Any, web: WebService) -> None:
    open_with_key(page, web)
    row = page.locator("#documents tbody tr", has_text="rivers.csv")
    assert row.locator("td").first.inner_text() == "3"  # chunks: one per CSV row
    row.get_by_role("button", name="Show the text of rivers.csv").click()
    page.wait_for_function("document.querySelector('#source-text').textContent.includes('row 3')")
    text = page.inner_text("#source-text")
    assert "— row 2 —" in text and "river: Dnipro" in text


def test_an_evaluation_report_opens_in_the_page(page: Any, web: WebService) -> None:
    suite = {
        "name": "web-smoke",
        "documents": {"path": str(web.corpus), "loader": {"include": ["*.md"]}},
        "questions": str(web.corpus / "questions.jsonl"),
        "pipelines": [{"name": "lexical", "retrieval_only": True, "mode": "lexical"}],
        "metrics": ["recall", "mrr"],
        "k": [1, 3],
    }
    with web.client() as client:
        started = client.post("/v1/evaluations", json={"suite": suite})
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        for _ in range(600):
            run = client.get(f"/v1/evaluations/{run_id}").json()
            if run["status"] not in ("queued", "running"):
                break
            time.sleep(0.1)
    assert run["status"] == "succeeded", run
    open_with_key(page, web)
    page.get_by_role("button", name=f"Open the report of web-smoke ({run_id})").click()
    frame = page.frame_locator("#report")
    # the frame shows an empty page until the report's srcdoc has loaded: wait for the report itself
    frame.locator("body", has_text="web-smoke").wait_for(timeout=30_000)
    assert "web-smoke" in frame.locator("body").inner_text()
    assert page.is_visible("#report")


def test_without_fastapi_offline_docs_is_a_plain_list_of_the_operations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from ragkit.service.routes import web as web_routes

    monkeypatch.setattr(web_routes, "swagger_assets", lambda: None)
    app = create_app(ServiceSettings(store_dir=tmp_path, log_json=False))
    client = TestClient(app)
    docs = client.get("/docs")
    assert docs.status_code == 200 and "<script" not in docs.text and "cdn" not in docs.text.lower()
    assert "<code>POST /v1/collections/{name}/ask</code> Ask a question" in docs.text
    assert client.get("/redoc").status_code == 404  # no CDN page left behind
    assert client.get("/").text.startswith("<!doctype html>")


def test_the_chosen_pipeline_answers(page: Any, web: WebService) -> None:
    open_with_key(page, web)
    page.select_option("#pipeline", "short")  # answer.max_tokens 8: the scripted reply is cut
    ask(page, "Which river flows through Paris?")
    answer = page.evaluate("window.ragkitPage.answer")
    assert answer["finish_reason"] == "length"
    assert REPLY.startswith(answer["text"]) and len(answer["text"]) < len(REPLY)
    assert web.fake.state.requests[-1]["body"]["max_tokens"] == 8


def test_on_a_phone_sized_screen_nothing_overflows_sideways(page: Any, web: WebService) -> None:
    page.set_viewport_size({"width": 390, "height": 800})
    open_with_key(page, web)
    ask(page, "Which river flows through Cairo?")
    page.locator("#answer a.cite").first.click()
    page.locator("#source-text mark").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = page.locator("#question").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
