"""OpenTelemetry spans for requests, pipeline stages, model calls and tool calls; off and free by default.

Tracing turns on from the standard ``OTEL_*`` variables, read once when this
module is imported: ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``; ``none``
is off) or ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
(OTLP over HTTP), or ``RAGKIT_TRACING=true`` (OTLP with the exporter's own
defaults). ``OTEL_SDK_DISABLED=true`` keeps it off whatever else is set.
``OTEL_SERVICE_NAME`` (default ``ragkit``), ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_BSP_*`` and the exporter's own variables work as everywhere in
OpenTelemetry. In code, :func:`enable` turns it on with a tracer provider of
your own (or the global one), :func:`disable` turns it off again.

Spans follow the OpenTelemetry GenAI semantic conventions:
``gen_ai.operation.name`` is ``retrieval``, ``embeddings``, ``chat`` or
``execute_tool``, span names are ``"{operation} {model, tool or collection}"``;
rerank stages carry OpenInference's ``reranker.*`` attributes. Query text,
prompts, answers and documents are recorded only when opted in:
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (the GenAI
convention's variable) or ``RAGKIT_TRACING_CONTENT=true``.

When tracing is off nothing here imports ``opentelemetry`` and every helper
returns a shared no-op context manager after one flag check; this module is
the only place ragkit imports ``opentelemetry``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ragkit.generation.base import Generation, Message
    from ragkit.query.state import QueryState
    from ragkit.schema import Hit

log = logging.getLogger("ragkit.tracing")
T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
CONTENT_VARIABLES = ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "RAGKIT_TRACING_CONTENT")
MAX_CONTENT_CHARS = 4000
"""Recorded text is cut to this many characters per attribute."""


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def wanted_by_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the ``OTEL_*`` / ``RAGKIT_TRACING`` variables ask for tracing (see the module docstring)."""
    env = os.environ if environ is None else environ

    def flag(name: str) -> bool:
        return env.get(name, "").strip().lower() in _TRUE

    if flag("OTEL_SDK_DISABLED"):
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return flag("RAGKIT_TRACING") or any(env.get(name, "").strip() for name in endpoints)


class _NoSpan:
    """What a helper yields when tracing is off: takes attributes and drops them."""

    __slots__ = ()

    def set_attribute(self, key: str, value: Any) -> None:
        """Drop the attribute."""

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Drop the attributes."""

    def is_recording(self) -> bool:
        """Never."""
        return False


NO_SPAN = _NoSpan()
_NOOP = contextlib.nullcontext(NO_SPAN)

_on: bool = wanted_by_environment()
"""The module-level flag every helper checks first."""
_tracer: Any = None
_provider: Any = None
_content: bool = any(_flag(name) for name in CONTENT_VARIABLES)


def enabled() -> bool:
    """Whether spans are being made."""
    return _on


def capture_content() -> bool:
    """Whether query text, prompts, answers and documents go into spans (opted in)."""
    return _content


def enable(tracer_provider: Any = None, content: bool | None = None) -> None:
    """Turn tracing on in this process.

    ``tracer_provider`` defaults to the global one, else one set up from the ``OTEL_*`` variables.
    ``content`` opts in to (``True``) or out of (``False``) recording text; ``None`` keeps the
    environment's choice.
    """
    global _on, _tracer, _content
    _tracer = _make_tracer(tracer_provider)
    _on = True
    if content is not None:
        _content = content


def disable() -> None:
    """Turn tracing off in this process (the helpers are no-ops again; content capture back to the environment's)."""
    global _on, _tracer, _content, _provider
    _on = False
    _tracer = _provider = None
    _content = any(_flag(name) for name in CONTENT_VARIABLES)


def _make_tracer(provider: Any) -> Any:
    global _provider
    from opentelemetry import trace

    _load_api()
    from ragkit import __version__

    if provider is None:
        provider = trace.get_tracer_provider()
        if type(provider).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider"):
            provider = _provider_from_environment()
            trace.set_tracer_provider(provider)
    _provider = provider
    return provider.get_tracer("ragkit", __version__)


def tracer_provider() -> Any:
    """The tracer provider ragkit's spans go to (``None`` when tracing is off).

    The service hands it to FastAPI, whose own telemetry makes the HTTP server spans (W3C ``traceparent``
    honoured).
    """
    if not _on or _get_tracer() is None:
        return None
    return _provider


def _provider_from_environment() -> Any:
    """A TracerProvider with the exporters ``OTEL_TRACES_EXPORTER`` names (default ``otlp``, over HTTP)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "ragkit"}
    provider = TracerProvider(resource=Resource.create(attributes))
    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp") or "otlp"
    for name in (n.strip().lower() for n in names.split(",")):
        if name in ("otlp", "otlp_proto_http"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif name != "none":
            log.warning("OTEL_TRACES_EXPORTER %r is not supported by ragkit (use otlp or console); ignored", name)
    return provider


def _get_tracer() -> Any:
    global _tracer, _on
    if _tracer is None:
        try:
            _tracer = _make_tracer(None)
        except ImportError as exc:
            _on = False
            log.warning("tracing asked for by OTEL_* variables but %s; install ragkit[otel]. Tracing is off", exc)
            return None
    return _tracer


def _clip(text: str) -> str:
    return text if len(text) <= MAX_CONTENT_CHARS else text[:MAX_CONTENT_CHARS] + "…"


class _Active(contextlib.AbstractContextManager[Any]):
    """A span made current for a ``with`` block, without generator machinery (this is the hot path).

    An exception marks the span (``error.type``, status ERROR, the exception event) and goes on;
    ``after(span)`` runs on a clean exit (attributes known only at the end).
    """

    __slots__ = ("after", "attributes", "kind", "name", "parent", "span", "token", "tracer")

    def __init__(
        self, tracer: Any, name: str, kind: Any, attributes: dict[str, Any], parent: Any = None, after: Any = None
    ) -> None:
        self.tracer, self.name, self.kind, self.attributes = tracer, name, kind, attributes
        self.parent, self.after = parent, after

    def __enter__(self) -> Any:
        api = _api
        self.span = span = self.tracer.start_span(
            self.name, context=self.parent, kind=self.kind, attributes=self.attributes
        )
        self.token = api["attach"](api["set_span_in_context"](span))
        return span

    def __exit__(self, kind: Any, exc: BaseException | None, traceback: Any) -> None:
        span = self.span
        try:
            if exc is not None:
                _mark_error(span, exc)
            elif self.after is not None and span.is_recording():  # not for a span the sampler dropped
                self.after(span)
        finally:
            _api["detach"](self.token)
            span.end()


_api: dict[str, Any] = {}
"""The OpenTelemetry functions the hot path uses, looked up once when the first tracer is made."""


def _load_api() -> None:
    from opentelemetry import context, trace

    _api.update(
        attach=context.attach,
        detach=context.detach,
        set_span_in_context=trace.set_span_in_context,
        INTERNAL=trace.SpanKind.INTERNAL,
        CLIENT=trace.SpanKind.CLIENT,
        Status=trace.Status,
        ERROR=trace.StatusCode.ERROR,
    )


def _mark_error(span: Any, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_attribute("error.type", type(exc).__qualname__)
    span.set_status(_api["Status"](_api["ERROR"], f"{type(exc).__name__}: {exc}"[:200]))


def _span(
    name: str, attributes: dict[str, Any], kind: str = "INTERNAL", after: Any = None
) -> contextlib.AbstractContextManager[Any]:
    tracer = _get_tracer()
    if tracer is None:
        return _NOOP
    return _Active(tracer, name, _api[kind], attributes, None, after)


def span(name: str, attributes: dict[str, Any] | None = None) -> contextlib.AbstractContextManager[Any]:
    """A plain internal span around a block (the current span while it runs); a no-op when off."""
    if not _on:
        return _NOOP
    return _span(name, dict(attributes or {}))


# -- the seams ------------------------------------------------------------------------------------


def ask_events(pipeline: str, question: str, collection: str | None, events: Iterator[T]) -> Iterator[T]:
    """``events`` (one answer's) under a ``ragkit.ask {pipeline}`` span, made current only while each is made.

    A ``with`` around a generator's ``yield`` would leave the span current in the consumer's code between
    events; here it is attached around each ``next`` and detached before the event is handed on, so a
    stream read in pieces (the CLI's tokens, a response body) has its stage and model spans under it.
    """
    if not _on or _get_tracer() is None:
        yield from events
        return
    span = _start_ask(pipeline, question, collection)
    try:
        while True:
            token = _api["attach"](_api["set_span_in_context"](span))
            try:
                event = next(events)
            except StopIteration:
                return
            finally:
                _api["detach"](token)
            yield event
    except GeneratorExit:
        raise
    except BaseException as exc:
        _mark_error(span, exc)
        raise
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
        span.end()


async def ask_events_async(
    pipeline: str, question: str, collection: str | None, events: AsyncIterator[T]
) -> AsyncGenerator[T, None]:
    """The async twin of :func:`ask_events`: the span is current around each ``__anext__``.

    Each step attaches and detaches in the same task, so the stream may move between tasks between
    events (the service starts an answer in its handler and sends the rest from the response).
    """
    if not _on or _get_tracer() is None:
        async for event in events:
            yield event
        return
    span = _start_ask(pipeline, question, collection)
    try:
        while True:
            token = _api["attach"](_api["set_span_in_context"](span))
            try:
                event = await events.__anext__()
            except StopAsyncIteration:
                return
            finally:
                _api["detach"](token)
            yield event
    except GeneratorExit:
        raise
    except BaseException as exc:
        _mark_error(span, exc)
        raise
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
        span.end()


def _start_ask(pipeline: str, question: str, collection: str | None) -> Any:
    attributes: dict[str, Any] = {"ragkit.pipeline": pipeline}
    if collection:
        attributes["gen_ai.data_source.id"] = collection
    if _content:
        attributes["gen_ai.prompt"] = _clip(question)
    return _get_tracer().start_span(f"ragkit.ask {pipeline}", kind=_api["INTERNAL"], attributes=attributes)


def stage(stage: Any, states: Sequence[QueryState]) -> contextlib.AbstractContextManager[Any]:
    """The span of one query-pipeline stage over a batch of questions.

    A retriever is a GenAI ``retrieval`` span (``retrieval {collection}``), a reranker a span with
    OpenInference's ``reranker.*`` attributes; other stages are ``ragkit.stage {label}``.
    """
    if not _on:
        return _NOOP
    return _stage_span(stage, states)


def search(collection: str, mode: str, queries: Sequence[str], top_k: int) -> contextlib.AbstractContextManager[Any]:
    """The ``retrieval {collection}`` span of a plain search (``Collection.search``, no pipeline)."""
    if not _on:
        return _NOOP
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "retrieval",
        "gen_ai.data_source.id": collection,
        "gen_ai.request.top_k": top_k,
        "ragkit.stage.type": mode,
    }
    if len(queries) > 1:
        attributes["ragkit.questions"] = len(queries)
    if _content and queries:
        attributes["gen_ai.retrieval.query.text"] = _clip(queries[0])
    return _span(f"retrieval {collection}", attributes)


def _collection_name(states: Sequence[QueryState]) -> str:
    collection = states[0].collection if states else None
    return str(getattr(collection, "name", "") or "")


def _stage_span(stage: Any, states: Sequence[QueryState]) -> contextlib.AbstractContextManager[Any]:
    kind = str(getattr(stage, "kind", "stage"))
    label = str(getattr(stage, "label", "") or type(stage).__name__)
    # few attributes: each costs the SDK about a microsecond per span (the kind and label are in the name)
    component = str(getattr(stage, "component_type", "") or type(stage).__name__)
    attributes: dict[str, Any] = {"ragkit.stage.type": component}
    if len(states) > 1:
        attributes["ragkit.questions"] = len(states)
    collection = _collection_name(states)
    if kind == "retrieve":
        name = f"retrieval {collection}" if collection else "retrieval"
        attributes["gen_ai.operation.name"] = "retrieval"
        if collection:
            attributes["gen_ai.data_source.id"] = collection
        top_k = getattr(stage, "top_k", None) or (states[0].top_k if states else None)
        if top_k:
            attributes["gen_ai.request.top_k"] = int(top_k)
        if _content and states:
            attributes["gen_ai.retrieval.query.text"] = _clip(states[0].question)
    elif kind == "rerank":
        name = f"rerank {label}"
        attributes["openinference.span.kind"] = "RERANKER"
        model = _model_of(stage)
        if model:
            attributes["reranker.model_name"] = model
        top_k = getattr(stage, "top_k", None) or (states[0].top_k if states else None)
        if top_k:
            attributes["reranker.top_k"] = int(top_k)
        if _content and states:
            attributes["reranker.query"] = _clip(states[0].question)
            _documents(attributes, "reranker.input_documents", states[0].hits)
    else:
        name = f"ragkit.stage {label}"
        attributes["ragkit.stage.kind"] = kind
    after = None
    if states and kind == "retrieve":
        after = _retrieval_done(states[0])
    elif states and kind == "rerank" and _content:
        after = _rerank_done(states[0])
    return _span(name, attributes, after=after)


def _retrieval_done(state: QueryState) -> Any:
    def after(span: Any) -> None:
        found = state.candidates[-1].hits if state.candidates else []
        span.set_attribute("ragkit.hits", len(found))
        if _content:
            span.set_attribute("gen_ai.retrieval.documents", _documents_json(found))

    return after


def _rerank_done(state: QueryState) -> Any:
    def after(span: Any) -> None:
        out: dict[str, Any] = {}
        _documents(out, "reranker.output_documents", state.hits)
        span.set_attributes(out)

    return after


def _model_of(component: Any) -> str:
    for holder in (component, getattr(component, "generator", None), getattr(component, "embedder", None)):
        if holder is None:
            continue
        for attr in ("model_name", "model"):
            value = getattr(holder, attr, None)
            if isinstance(value, str) and value:
                return value
    return ""


def _documents(attributes: dict[str, Any], prefix: str, hits: Sequence[Hit]) -> None:
    """OpenInference's flattened document list: ``{prefix}.{i}.document.id/content/score``."""
    for i, hit in enumerate(hits):
        attributes[f"{prefix}.{i}.document.id"] = hit.chunk.id
        attributes[f"{prefix}.{i}.document.content"] = _clip(hit.chunk.text)
        attributes[f"{prefix}.{i}.document.score"] = float(hit.score)


def _documents_json(hits: Sequence[Hit]) -> str:
    return json.dumps([{"id": h.chunk.id, "score": float(h.score), "content": _clip(h.chunk.text)} for h in hits])


def embeddings(embedder: Any, texts: Sequence[Any]) -> contextlib.AbstractContextManager[Any]:
    """The span of one embedding call (``embeddings {model}``)."""
    if not _on:
        return _NOOP
    model = _model_of(embedder) or type(embedder).__name__
    attributes: dict[str, Any] = {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": model}
    if len(texts) > 1:
        attributes["ragkit.inputs"] = len(texts)
    dimension = getattr(embedder, "dimension", None)
    if isinstance(dimension, int):
        attributes["gen_ai.embeddings.dimension.count"] = dimension
    return _span(f"embeddings {model}", attributes, "CLIENT")


def start_chat(model: str, messages: Sequence[Message], options: Any = None) -> ChatSpan | None:
    """Start (not enter) the span of one chat call, a child of the current span; ``None`` when off.

    For streams that outlive a ``with`` block: feed it the deltas, then :meth:`ChatSpan.end` it.
    """
    if not _on:
        return None
    tracer = _get_tracer()
    if tracer is None:
        return None
    attributes: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model}
    for option, key in (("max_tokens", "gen_ai.request.max_tokens"), ("temperature", "gen_ai.request.temperature")):
        value = getattr(options, option, None)
        if value is not None:
            attributes[key] = value
    if _content:
        attributes["gen_ai.input.messages"] = json.dumps(
            [{"role": m.role, "parts": [{"type": "text", "content": _clip(m.content)}]} for m in messages]
        )
    return ChatSpan(tracer.start_span(f"chat {model}", kind=_api["CLIENT"], attributes=attributes))


class ChatSpan:
    """A chat call's span while its answer streams: what the deltas say goes on it when it ends."""

    def __init__(self, span: Any) -> None:
        self.span = span
        self.parts: list[str] = []
        self.finish: str | None = None
        self.usage: Any = None

    def feed(self, delta: Any) -> None:
        """Take one :class:`~ragkit.generation.base.GenerationDelta`."""
        if delta.text and _content:
            self.parts.append(delta.text)
        if delta.finish_reason is not None:
            self.finish = delta.finish_reason
        if delta.usage is not None:
            self.usage = delta.usage

    def end(self, generation: Generation | None = None, error: BaseException | None = None) -> None:
        """Record the finish reason, token usage (and text when opted in), or the error; end the span."""
        span = self.span
        if generation is not None:
            self.finish, self.usage, self.parts = generation.finish_reason, generation.usage, [generation.text]
            if generation.model:
                span.set_attribute("gen_ai.response.model", generation.model)
        if self.finish:
            span.set_attribute("gen_ai.response.finish_reasons", [self.finish])
        if self.usage is not None:
            if self.usage.prompt_tokens:
                span.set_attribute("gen_ai.usage.input_tokens", self.usage.prompt_tokens)
            if self.usage.completion_tokens:
                span.set_attribute("gen_ai.usage.output_tokens", self.usage.completion_tokens)
        if _content and error is None:
            parts = [{"type": "text", "content": _clip("".join(self.parts))}]
            message = {"role": "assistant", "parts": parts, "finish_reason": self.finish or "stop"}
            span.set_attribute("gen_ai.output.messages", json.dumps([message]))
        if error is not None and not isinstance(error, GeneratorExit):  # GeneratorExit: the reader stopped early
            _mark_error(span, error)
        span.end()


def agent(model: str, question: str) -> contextlib.AbstractContextManager[Any]:
    """The ``invoke_agent`` span of one agent run (its chat and ``execute_tool`` spans inside)."""
    if not _on:
        return _NOOP
    attributes: dict[str, Any] = {"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": model}
    if _content:
        attributes["gen_ai.prompt"] = _clip(question)
    return _span("invoke_agent", attributes)


def tool(name: str, call_id: str | None, arguments: Any) -> contextlib.AbstractContextManager[Any]:
    """The span of one tool call by an agent (``execute_tool {tool}``)."""
    if not _on:
        return _NOOP
    attributes: dict[str, Any] = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name}
    if call_id:
        attributes["gen_ai.tool.call.id"] = call_id
    if _content and arguments is not None:
        attributes["gen_ai.tool.call.arguments"] = _clip(json.dumps(arguments, default=str))
    return _span(f"execute_tool {name}", attributes)


def record_tool_result(span: Any, status: str, result: str | None) -> None:
    """The tool call's outcome on its span (the result text only when opted in)."""
    if not span.is_recording():
        return
    span.set_attribute("ragkit.tool.status", status)
    if status == "error":
        span.set_attribute("error.type", "ToolError")
        span.set_status(_api["Status"](_api["ERROR"], (result or "")[:200]))
    if _content and result is not None:
        span.set_attribute("gen_ai.tool.call.result", _clip(result))


def end_chat(chat: ChatSpan | None, generation: Generation | None = None, error: BaseException | None = None) -> None:
    """:meth:`ChatSpan.end` when a span was started (``chat`` is ``None`` when tracing is off)."""
    if chat is not None:
        chat.end(generation, error)
