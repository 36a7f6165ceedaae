"""Fixtures of the service tests: a real uvicorn server on a free loopback port, a small ingested
corpus, the real local generator (SmolLM2, loaded once per process) and a FAKE OpenAI-compatible
server for the upstream-failure cases."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from ragkit.collection import Collection
from ragkit.generation import BaseGenerator, GenerationDelta, GenerationOptions, Message
from ragkit.rag import PipelineConfig, RagPipeline, shared_generator
from ragkit.service import ApiKey, ServiceSettings, build_pipelines, create_app
from ragkit.testing.fake_openai import FakeOpenAIServer

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "evaluation" / "datasets" / "sample-docs"

ADMIN_KEY = "test-admin-key-0123456789"
WRITER_KEY = "test-writer-key-0123456789"
READER_KEY = "test-reader-key-0123456789"
OTHER_KEY = "test-other-key-0123456789"
"""A read+write key limited to the collection 'other'."""

LOCAL_GENERATOR: dict[str, Any] = {"type": "transformers"}
"""The real packaged SmolLM2-135M-Instruct; one config everywhere, so the model loads once."""


def tiny_pipeline(
    max_tokens: int = 12, generator: dict[str, Any] | None = None, min_score: float | None = 0.2
) -> dict[str, Any]:
    """A pipeline config with short answers and a small context, so each answer takes about a second.

    It sets no prompt: on the local SmolLM2 the pipeline then takes the generator's ``suggested_user_prompt``
    (SmolLM2's own, ``SMOLLM2_USER``; with the recipes' prompt, written for Qwen2.5-Coder, SmolLM2 writes no
    citation marker).
    """
    return {
        "retrieval": {"top_k": 2, "min_score": min_score},
        "context": {"max_tokens": 256},
        "generator": generator or LOCAL_GENERATOR,
        "answer": {"max_tokens": max_tokens, "temperature": 0.0},
    }


QUESTION = "Where was Super Bowl 50 played?"

UPLOAD_LIMIT = 256 * 1024
REQUEST_LIMIT = 1024 * 1024
JSON_LIMIT = 256 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """A real uvicorn server running ``app`` on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


# -- FAKE OpenAI-compatible servers ---------------------------------------------------------------


FAKE_MODES: dict[str, dict[str, Any]] = {
    "fail": {"fail_always": 500, "error_message": "the fake upstream exploded"},
    "slow": {"delay": 3.0, "fail_always": 500, "error_message": "too late"},
    "broken": {"reply": "Levi", "drop_after": 2},  # the role chunk and "Levi", then the cut
}
"""The knobs of the fake behind each misbehaving pipeline."""


class FakeUpstreams:
    """FAKE OpenAI-compatible chat servers on loopback (the shared ``ragkit.testing.fake_openai``), one per
    misbehaviour: ``fail`` answers 500, ``slow`` waits 3 s before answering (past a 1 s client timeout),
    ``broken`` streams one token and then drops the connection mid-body."""

    def __init__(self) -> None:
        self.servers = {mode: FakeOpenAIServer(**knobs) for mode, knobs in FAKE_MODES.items()}

    def generator(self, mode: str) -> dict[str, Any]:
        """The generator config of a pipeline that talks to the fake in ``mode``."""
        return {
            "type": "openai",
            "model": "fake-model",
            "base_url": self.servers[mode].v1,
            "timeout": 1,
            "max_retries": 0,
        }

    def __enter__(self) -> FakeUpstreams:
        for server in self.servers.values():
            server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers.values():
            server.stop()


# -- a spy around the real generator ---------------------------------------------------------------


class SpyGenerator(BaseGenerator):
    """The REAL local generator, wrapped to record how each stream ended (completed or closed early)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.runs: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        # set by a test that needs the answer to outlast the client: after the first delta the stream waits
        # for this event (at most 30 s), so how fast the real model answers on this machine cannot matter
        self.hold_after_first: threading.Event | None = None

    @property
    def model_name(self) -> str:
        return str(self.inner.model_name)

    @property
    def context_window(self) -> int:
        return int(self.inner.context_window)

    @property
    def suggested_user_prompt(self) -> str | None:  # type: ignore[override]
        """The wrapped model's own RAG prompt (SmolLM2's), so a pipeline over the spy prompts it the same way."""
        return self.inner.suggested_user_prompt  # type: ignore[no-any-return]

    def count_tokens(self, text: str) -> int:
        return int(self.inner.count_tokens(text))

    def count_message_tokens(self, messages: Sequence[Message]) -> int:
        return int(self.inner.count_message_tokens(messages))

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Iterator[GenerationDelta]:
        run: dict[str, Any] = {
            "deltas": 0,
            "completed": False,
            "closed_early": False,
            "ended_at": None,
            "messages": list(messages),
        }
        with self.lock:
            self.runs.append(run)
        inner = self.inner.stream(messages, options)
        try:
            for delta in inner:
                run["deltas"] += 1
                yield delta
                hold = self.hold_after_first
                if hold is not None and run["deltas"] == 1:
                    hold.wait(30)
            run["completed"] = True
        except GeneratorExit:
            run["closed_early"] = True
            raise
        finally:
            inner.close()  # stops the model (joins its worker) before we note the end
            run["ended_at"] = time.monotonic()


class ExplodingGenerator(BaseGenerator):
    """A FAKE generator with a bug: one token, then an unexpected (non-ragkit) exception."""

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Iterator[GenerationDelta]:
        yield GenerationDelta(text="Santa")
        raise RuntimeError("fake generator bug")


# -- the session service ---------------------------------------------------------------------------


class Service:
    """The running session service and what the tests need to know about it."""

    def __init__(
        self, url: str, home: Path, roots: Path, corpus: Path, app: Any, spy: SpyGenerator, fake: FakeUpstreams
    ) -> None:
        self.url = url
        self.home = home
        self.roots = roots
        self.corpus = corpus
        self.app = app
        self.spy = spy
        self.fake = fake

    def client(self, key: str | None = ADMIN_KEY, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=kwargs.pop("timeout", 180), **kwargs)


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeUpstreams]:
    with FakeUpstreams() as fake:
        yield fake


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, fake_openai: FakeUpstreams) -> Iterator[Service]:
    """The service on a free port, with 'docs' (the 5 sample documents, PDF included) and an empty 'other'."""
    home = tmp_path_factory.mktemp("service-home")
    roots = tmp_path_factory.mktemp("ingest-root")
    corpus = roots / "corpus"
    shutil.copytree(SAMPLE, corpus)
    with Collection.create("docs", store_dir=home) as docs:
        report = docs.ingest([corpus])
        assert report.added == 5 and not report.failed, report.summary()
    Collection.create("other", store_dir=home).close()

    settings = ServiceSettings(
        store_dir=home,
        api_keys=[
            ApiKey.model_validate({"key": ADMIN_KEY, "name": "admin", "scopes": ["admin"]}),
            ApiKey.model_validate({"key": WRITER_KEY, "name": "writer", "scopes": ["write"]}),
            ApiKey.model_validate({"key": READER_KEY, "name": "reader", "scopes": ["read"]}),
            ApiKey.model_validate(
                {"key": OTHER_KEY, "name": "other-only", "scopes": ["write"], "collections": ["other"]}
            ),
        ],
        pipelines={
            "basic": tiny_pipeline(),
            "fail": tiny_pipeline(generator=fake_openai.generator("fail")),
            "slow": tiny_pipeline(generator=fake_openai.generator("slow")),
            "broken": tiny_pipeline(generator=fake_openai.generator("broken")),
        },
        default_pipeline="basic",
        ingest_roots=[roots],
        max_upload_bytes=UPLOAD_LIMIT,
        max_request_bytes=REQUEST_LIMIT,
        max_json_bytes=JSON_LIMIT,
        cors_origins=["https://app.example.com"],
    )
    pipelines = build_pipelines(settings)
    spy = SpyGenerator(shared_generator(LOCAL_GENERATOR))
    pipelines["spy"] = RagPipeline(PipelineConfig.parse(tiny_pipeline(max_tokens=200)), generator=spy, name="spy")
    pipelines["buggy"] = RagPipeline(
        PipelineConfig.parse(tiny_pipeline()), generator=ExplodingGenerator(), name="buggy"
    )
    app = create_app(settings, pipelines=pipelines)
    with LiveServer(app) as server:
        yield Service(server.url, home, roots, corpus, app, spy, fake_openai)


@pytest.fixture(scope="session")
def admin(service: Service) -> Iterator[httpx.Client]:
    with service.client(ADMIN_KEY) as client:
        yield client


@pytest.fixture(scope="session")
def docs_counts(admin: httpx.Client) -> dict[str, int]:
    """Chunk and source counts of a clean ingest of the sample documents."""
    counts = admin.get("/v1/collections/docs").json()["counts"]
    assert counts["sources"] == 5 and counts["chunks"] > 50
    return dict(counts)


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    """Poll a job until it ends; returns its last state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return dict(job)
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs from Server-Sent Event lines."""
    event, data = "message", list[str]()
    for line in lines:
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = "message", list[str]()
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield event, "\n".join(data)


def new_collection(client: httpx.Client, name: str) -> None:
    client.delete(f"/v1/collections/{name}")
    response = client.post("/v1/collections", json={"name": name})
    assert response.status_code == 201, response.text
