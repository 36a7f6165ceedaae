"""OpenTelemetry tracing (ragkit.tracing): the span tree of a real ask over HTTP, content opt-in, an agent's
tool call, a reranker span, a real OTLP/HTTP receiver fed by a real `ragkit serve`, and nothing imported when off.

The in-process tests turn tracing on with the SDK's InMemorySpanExporter; the generator is the SCRIPTED test
double (no model), the embedder and stores are the real packaged ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra (opentelemetry-sdk) is not installed")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ragkit import tracing
from ragkit.agents.agent import Agent
from ragkit.agents.scripted import ScriptedGenerator
from ragkit.agents.tools import tool
from ragkit.collection import Collection
from ragkit.rag import PipelineConfig, RagPipeline

REPO = Path(__file__).resolve().parent.parent
QUESTION = "What killed a third of Europe?"
TRACEPARENT_TRACE = "0af7651916cd43dd8448eb211c80319c"


TEXTS = {
    "plague.txt": "The Black Death was a plague that killed a third of Europe in the 1340s.",
    "printing.txt": "Gutenberg's printing press spread books across Europe after 1450.",
    "voyages.txt": "Columbus crossed the Atlantic in 1492 with three ships.",
    "bridges.txt": "Roman engineers built stone bridges with semicircular arches.",
    "tea.txt": "Tea reached England in the seventeenth century through Dutch traders.",
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store folder with collection 'sample': five one-line documents (the real packaged embedder)."""
    home = tmp_path_factory.mktemp("tracing-home")
    corpus = home / "corpus"
    corpus.mkdir()
    for name, text in TEXTS.items():
        (corpus / name).write_text(text + "\n", encoding="utf-8")
    with Collection.create("sample", store_dir=home / "store") as collection:
        collection.ingest([corpus])
    return home / "store"


@pytest.fixture()
def sample(store: Path) -> Iterator[Collection]:
    with Collection.open("sample", store_dir=store) as collection:
        yield collection


@contextlib.contextmanager
def traced(content: bool) -> Iterator[InMemorySpanExporter]:
    """Tracing on for one test, finished spans kept in memory; ``content``: record text (the opt-in)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider, content=content)
    try:
        yield exporter
    finally:
        tracing.disable()
        provider.shutdown()


@pytest.fixture()
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, content not captured (the default)."""
    with traced(content=False) as exporter:
        yield exporter


@pytest.fixture()
def spans_with_content() -> Iterator[InMemorySpanExporter]:
    """Tracing on with content captured (what OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true asks)."""
    with traced(content=True) as exporter:
        yield exporter


def rerank_pipeline(answer: str = "A plague, the Black Death [1].") -> RagPipeline:
    config = PipelineConfig.parse(
        {
            "stages": [{"type": "dense", "top_k": 4}, {"type": "embedding-rerank", "top_k": 2}],
            "answer": {"max_tokens": 16},
        }
    )
    return RagPipeline(config, generator=ScriptedGenerator(then=answer, name="scripted-chat"), name="traced")


def by_name(finished: tuple[ReadableSpan, ...], prefix: str) -> ReadableSpan:
    matches = [s for s in finished if s.name.startswith(prefix)]
    assert matches, f"no span named {prefix!r}; spans: {[s.name for s in finished]}"
    return matches[0]


def parent_of(span: ReadableSpan, finished: tuple[ReadableSpan, ...]) -> ReadableSpan:
    assert span.parent is not None, f"{span.name} has no parent"
    return next(s for s in finished if s.context.span_id == span.parent.span_id)


def ancestors(span: ReadableSpan, finished: tuple[ReadableSpan, ...]) -> list[str]:
    names = []
    while span.parent is not None and not span.parent.is_remote:
        span = parent_of(span, finished)
        names.append(span.name)
    return names


def content_keys(span: ReadableSpan) -> set[str]:
    attributes = dict(span.attributes or {})
    words = ("messages", "query", "documents", "prompt", "arguments", "result")
    return {k for k in attributes if any(w in k for w in words)}


def test_an_ask_over_http_gives_the_span_tree_with_genai_names_and_no_content(
    spans: InMemorySpanExporter, store: Path
) -> None:
    from fastapi.testclient import TestClient

    from ragkit.service import ServiceSettings, create_app

    app = create_app(ServiceSettings(store_dir=store), pipelines={"basic": rerank_pipeline()})
    traceparent = f"00-{TRACEPARENT_TRACE}-b7ad6b7169203331-01"
    with TestClient(app) as client:
        response = client.post(
            "/v1/collections/sample/ask", json={"question": QUESTION}, headers={"traceparent": traceparent}
        )
    assert response.status_code == 200, response.text
    finished = spans.get_finished_spans()

    http = by_name(finished, "POST /v1/collections/{name}/ask")
    assert f"{http.context.trace_id:032x}" == TRACEPARENT_TRACE  # continues the caller's trace
    assert http.attributes["http.route"] == "/v1/collections/{name}/ask"
    assert http.attributes["http.response.status_code"] == 200
    ask = by_name(finished, "ragkit.ask traced")
    assert http.name in ancestors(ask, finished)  # under FastAPI's server span (and its endpoint span)

    retrieval = by_name(finished, "retrieval sample")
    assert parent_of(retrieval, finished) is ask
    assert retrieval.attributes["gen_ai.operation.name"] == "retrieval"
    assert retrieval.attributes["gen_ai.data_source.id"] == "sample"
    assert retrieval.attributes["ragkit.hits"] == 4

    embeddings = by_name(finished, "embeddings ")
    assert parent_of(embeddings, finished) is retrieval
    assert embeddings.attributes["gen_ai.operation.name"] == "embeddings"
    assert "MiniLM" in str(embeddings.attributes["gen_ai.request.model"])

    rerank = by_name(finished, "rerank embedding-rerank")
    assert parent_of(rerank, finished) is ask
    assert rerank.attributes["openinference.span.kind"] == "RERANKER"
    assert rerank.attributes["reranker.top_k"] == 2

    chat = by_name(finished, "chat scripted-chat")
    assert parent_of(chat, finished) is ask
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.request.model"] == "scripted-chat"
    assert chat.attributes["gen_ai.request.max_tokens"] == 16
    assert chat.attributes["gen_ai.usage.input_tokens"] > 0
    assert chat.attributes["gen_ai.usage.output_tokens"] > 0
    assert chat.attributes["gen_ai.response.finish_reasons"] == ("stop",)

    order = [s.name for s in sorted(finished, key=lambda s: s.start_time or 0)]
    assert order.index(retrieval.name) < order.index(rerank.name) < order.index(chat.name)
    assert not [k for s in finished for k in content_keys(s)], "content recorded without opting in"
    assert QUESTION not in repr([dict(s.attributes or {}) for s in finished])


def test_a_streamed_ask_over_http_has_its_ragkit_ask_span_over_the_stages(
    spans: InMemorySpanExporter, store: Path
) -> None:
    """The SSE route starts the answer in its handler and streams the rest from the response: the ask span
    still holds the retrieval, rerank and chat spans, under the HTTP request's span."""
    from fastapi.testclient import TestClient

    from ragkit.service import ServiceSettings, create_app

    app = create_app(ServiceSettings(store_dir=store), pipelines={"basic": rerank_pipeline()})
    with TestClient(app) as client:
        response = client.post("/v1/collections/sample/ask", json={"question": QUESTION, "stream": True})
    assert response.status_code == 200 and "event: answer" in response.text, response.text
    finished = spans.get_finished_spans()
    ask = by_name(finished, "ragkit.ask traced")
    assert "POST /v1/collections/{name}/ask" in ancestors(ask, finished)
    for stage in ("retrieval sample", "rerank embedding-rerank", "chat scripted-chat"):
        assert parent_of(by_name(finished, stage), finished) is ask, stage
    assert ask.status.is_ok and ask.end_time is not None


def test_a_stream_read_in_pieces_leaves_no_span_current_between_events(
    spans: InMemorySpanExporter, sample: Collection
) -> None:
    from opentelemetry import trace

    between: list[bool] = []
    for _event in rerank_pipeline().stream(QUESTION, sample):
        between.append(trace.get_current_span().get_span_context().is_valid)
    assert between and not any(between)  # the consumer's code never runs inside the ask span
    ask = by_name(spans.get_finished_spans(), "ragkit.ask traced")
    assert parent_of(by_name(spans.get_finished_spans(), "chat scripted-chat"), spans.get_finished_spans()) is ask


def test_content_is_recorded_when_opted_in(spans_with_content: InMemorySpanExporter, sample: Collection) -> None:
    spans = spans_with_content
    answer = rerank_pipeline().ask(QUESTION, sample)
    assert answer.text.startswith("A plague")
    finished = spans.get_finished_spans()

    assert by_name(finished, "ragkit.ask traced").parent is None  # a library call is its own trace root
    retrieval = by_name(finished, "retrieval sample")
    assert retrieval.attributes["gen_ai.retrieval.query.text"] == QUESTION
    assert "Black Death" in str(retrieval.attributes["gen_ai.retrieval.documents"])
    rerank = by_name(finished, "rerank ")
    assert rerank.attributes["reranker.query"] == QUESTION
    assert rerank.attributes["reranker.input_documents.0.document.content"]
    assert rerank.attributes["reranker.output_documents.1.document.id"]
    assert "reranker.output_documents.2.document.id" not in rerank.attributes  # cut to top_k
    chat = by_name(finished, "chat ")
    assert QUESTION in str(chat.attributes["gen_ai.input.messages"])
    assert "Black Death" in str(chat.attributes["gen_ai.output.messages"])


@tool
def shout(text: str) -> str:
    """Say the text back in capitals."""
    return text.upper()


def test_an_agent_tool_call_is_an_execute_tool_span(spans: InMemorySpanExporter) -> None:
    generator = ScriptedGenerator(
        ['Thought: shout it\nAction: shout\nAction Input: {"text": "hi"}'], then="Final Answer: HI", name="agent-lm"
    )
    result = Agent(generator=generator, tools=[shout]).run("Shout hi.")
    assert result.answer == "HI"
    finished = spans.get_finished_spans()
    call = by_name(finished, "execute_tool shout")
    assert call.attributes["gen_ai.operation.name"] == "execute_tool"
    assert call.attributes["gen_ai.tool.name"] == "shout"
    assert call.attributes["gen_ai.tool.call.id"]
    assert call.attributes["ragkit.tool.status"] == "ok"
    assert "gen_ai.tool.call.arguments" not in call.attributes  # content only when opted in
    chats = [s for s in finished if s.name == "chat agent-lm"]
    assert len(chats) == 2 and all(parent_of(s, finished).name == "invoke_agent" for s in [*chats, call])
    run = by_name(finished, "invoke_agent")
    assert run.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert run.attributes["gen_ai.request.model"] == "agent-lm"


def test_an_agent_streamed_through_the_event_loop_keeps_its_spans_under_the_caller(
    spans: InMemorySpanExporter,
) -> None:
    generator = ScriptedGenerator(['Action: shout\nAction Input: {"text": "yo"}'], then="Final Answer: YO")
    agent = Agent(generator=generator, tools=[shout])

    async def consume() -> None:
        with tracing.span("caller"):
            async for _event in agent.astream("Shout yo."):
                pass

    asyncio.run(consume())
    finished = spans.get_finished_spans()
    call = by_name(finished, "execute_tool shout")
    assert "caller" in ancestors(call, finished)  # the worker thread ran in the caller's trace context


def test_a_failing_tool_marks_its_span_as_an_error(spans_with_content: InMemorySpanExporter) -> None:
    @tool
    def broken(text: str) -> str:
        """Always fails."""
        raise RuntimeError("disk on fire")

    generator = ScriptedGenerator(['Action: broken\nAction Input: {"text": "x"}'], then="Final Answer: no")
    Agent(generator=generator, tools=[broken]).run("Try it.")
    call = by_name(spans_with_content.get_finished_spans(), "execute_tool broken")
    assert call.status.status_code.name == "ERROR"
    assert "disk on fire" in str(call.attributes["gen_ai.tool.call.result"])
    assert call.attributes["gen_ai.tool.call.arguments"] == '{"text": "x"}'


def test_with_tracing_off_ragkit_imports_no_opentelemetry_module(tmp_path: Path) -> None:
    """The library path imports nothing of OpenTelemetry; the service imports only what FastAPI itself does
    (FastAPI >= 0.165 imports opentelemetry-api for its built-in telemetry), never the SDK or an exporter."""
    script = """
import sys
from ragkit import tracing, Collection
from ragkit.rag import RagPipeline
from ragkit.agents.agent import Agent
from ragkit.query import QueryPipeline
assert not tracing.enabled()
with tracing.stage(object(), []) as span:
    span.set_attribute("x", 1)
assert tracing.start_chat("m", []) is None and tracing.tracer_provider() is None
core = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
from ragkit.service import ServiceSettings, create_app
create_app(ServiceSettings(store_dir=sys.argv[1]))
service = sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter")))
print("CORE", core, "SERVICE", service)
sys.exit(1 if core or service else 0)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and not k.startswith("RAGKIT_TRACING")}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
        ({"RAGKIT_TRACING": "true"}, True),
    ],
)
def test_the_otel_variables_turn_tracing_on_and_off(environ: dict[str, str], wanted: bool) -> None:
    assert tracing.wanted_by_environment(environ) is wanted


# -- a real OTLP/HTTP receiver and a real `ragkit serve` ------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    """Decodes OTLP/HTTP protobuf trace exports (ExportTraceServiceRequest) into (service, span name, attrs)."""

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        received: list[dict[str, Any]] = self.server.received  # type: ignore[attr-defined]
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attrs = {a.key: a.value.string_value or a.value.int_value for a in span.attributes}
                    received.append({"service": resource.get("service.name"), "name": span.name, "attrs": attrs})
        payload = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def test_ragkit_serve_exports_spans_to_an_otlp_receiver_configured_by_otel_variables(store: Path) -> None:
    from tests.service.conftest import free_port

    home = store
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    receiver.received = []  # type: ignore[attr-defined]
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env |= {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_address[1]}",
        "OTEL_SERVICE_NAME": "ragkit-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "HF_HUB_OFFLINE": "1",
    }
    command = [sys.executable, "-m", "ragkit.cli", "serve", "--port", str(port), "--store-dir", str(home)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "ragkit serve did not start"
            time.sleep(0.1)
        body = {"query": "Black Death", "mode": "lexical"}  # BM25: no model to load in the server
        found = httpx.post(f"{url}/v1/collections/sample/search", json=body, timeout=60)
        assert found.status_code == 200, found.text
        received: list[dict[str, Any]] = receiver.received  # type: ignore[attr-defined]
        while not any(r["name"].startswith("POST") for r in received):
            assert time.monotonic() < deadline, f"no retrieval span exported; got {[r['name'] for r in received]}"
            time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=30)
        receiver.shutdown()
    names = {r["name"] for r in received}
    assert {"POST /v1/collections/{name}/search", "retrieval sample"} <= names, names
    assert {r["service"] for r in received} == {"ragkit-under-test"}
    retrieval = next(r for r in received if r["name"] == "retrieval sample")
    assert retrieval["attrs"]["gen_ai.operation.name"] == "retrieval"
    assert retrieval["attrs"]["ragkit.stage.type"] == "lexical"
    assert "gen_ai.retrieval.query.text" not in retrieval["attrs"]  # no content without the opt-in


def test_the_tracing_benchmark_runs_tiny(tmp_path: Path) -> None:
    dataset = tmp_path / "squad-like"  # one short document and three questions in squad-dev's layout
    (dataset / "documents").mkdir(parents=True)
    (dataset / "documents" / "0000-plague.md").write_text(f"# Plague\n\n{TEXTS['plague.txt']}\n", encoding="utf-8")
    rows = [{"question": q, "answers": [{"text": "plague"}], "document": "documents/0000-plague.md"} for q in TEXTS]
    (dataset / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:3]), encoding="utf-8")
    with Collection.create("squad", store_dir=tmp_path / "home") as collection:  # ingested here: one model load
        collection.ingest([dataset / "documents"])
    out = tmp_path / "tracing.json"
    script = REPO / "evaluation" / "benchmarks" / "tracing_bench.py"
    command = [sys.executable, str(script), "--dataset", str(dataset), "--docs", "1", "--queries", "3"]
    command += ["--rounds", "1", "--home", str(tmp_path / "home"), "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "x1.000 of off" in done.stdout
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["off_ran_without_opentelemetry_loaded"] is True
    assert result["spans_exported"] > 0
    for name in ("hybrid", "lexical"):
        assert set(result["pipelines"][name]["ratio_to_off"]) == {"off", "on", "on+content", "on 10%"}
    assert result["span_cost_share"] > 0 and result["off_hook_ns_per_call"] > 0
