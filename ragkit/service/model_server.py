"""One generator behind OpenAI's chat-completions API, with no retrieval: ``ragkit serve-model``.

``ragkit serve`` answers ``/v1/chat/completions`` through a RAG pipeline
(a collection is the model). This app serves the model itself, the way vLLM,
llama.cpp or Ollama do, so anything that speaks OpenAI (the ``openai`` client,
LangChain's ``ChatOpenAI``, LlamaIndex's ``OpenAILike``, ragkit's own
``generator: {type: openai}``) can use a local ragkit generator::

    from ragkit import registry
    from ragkit.service.model_server import create_model_app

    generator = registry.build("generator", {"type": "transformers"})
    app = create_model_app(generator)  # GET /v1/models, POST /v1/chat/completions

It reuses the service's pieces: the request and response models and the
``chat.completion.chunk`` encoder of :mod:`ragkit.service.routes.openai`, API
keys (:mod:`ragkit.service.auth`), OpenAI-shaped errors
(:mod:`ragkit.service.errors`), request ids and the access log, and the
streaming response that stops the model when the client leaves.

What it honours: every message role (system and developer become the system
prompt), ``max_tokens`` / ``max_completion_tokens``, ``temperature``,
``top_p``, ``stop`` (up to 4), ``seed`` (where the generator supports it),
``stream`` with ``stream_options.include_usage``, and ``tools`` /
``tool_choice`` when the generator calls tools natively
(``BaseGenerator.supports_tools``); otherwise a request with tools is refused
with 400. Invalid requests are answered 400 with OpenAI's error body (``param``
names the field); an unknown model 404; a missing or wrong key 401.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from ragkit import __version__
from ragkit.errors import RagkitError
from ragkit.generation.base import (
    Generation,
    GenerationDelta,
    GenerationOptions,
    Generator,
    Message,
    Usage,
    join_stream,
)
from ragkit.service.auth import Authenticator, Principal, require
from ragkit.service.errors import (
    ModelNotFound,
    OpenAIErrorDetail,
    http_error_handler,
    ragkit_error_handler,
    request_id_of,
)
from ragkit.service.metrics import Metrics
from ragkit.service.middleware import RequestContextMiddleware
from ragkit.service.models import UsageModel
from ragkit.service.routes.ask import CLIENT_CLOSED
from ragkit.service.routes.openai import ChatCompletionRequest, ChatMessage, ModelCard, ModelList, _ChunkEncoder
from ragkit.service.settings import ApiKey
from ragkit.service.streaming import ClientGone, EventStreamResponse, error_status, unless_disconnected

MAX_STOPS = 4
"""OpenAI's limit of stop sequences per request."""

UsageHook = Callable[[Usage], None]
"""Called with the tokens of every finished generation (for counting calls, e.g. in a benchmark)."""


class ModelChatMessage(ChatMessage):
    """A chat message as a raw model reads it: tool calls and tool results included."""

    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    def to_message(self) -> Message:
        """The generator's :class:`~ragkit.generation.base.Message`."""
        role: Any = {"developer": "system", "function": "tool"}.get(self.role, self.role)
        return Message(role, self.text(), self.name, self.tool_calls, self.tool_call_id)


class ModelChatRequest(ChatCompletionRequest):
    """OpenAI's chat-completions request, for the model itself (unknown fields are ignored)."""

    model: str = Field(min_length=1, description="The served model's id (GET /v1/models)")
    messages: list[ModelChatMessage] = Field(min_length=1)  # type: ignore[assignment]
    max_tokens: int | None = Field(default=None, ge=1, description="At most the context window minus the prompt")
    tools: list[dict[str, Any]] | None = Field(default=None, description="Only for a model that calls tools natively")
    tool_choice: str | dict[str, Any] | None = Field(default=None, description="Passed on with tools")

    def refusal(self, supports_tools: bool) -> tuple[str, str] | None:
        """``(param, why)`` for the first parameter this model cannot honour, else ``None``."""
        for param in ("top_k", "filters", "mode"):
            if getattr(self, param) is not None:
                return (
                    param,
                    f"{param} is a retrieval option of `ragkit serve`; this server answers from the model alone",
                )
        stops = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        if len(stops) > MAX_STOPS:
            return "stop", f"stop: at most {MAX_STOPS} sequences, got {len(stops)}"
        if self.functions or self.function_call is not None:
            return "functions", "functions and function_call are not supported: send tools and tool_choice"
        if self.tools and self.tool_choice != "none" and not supports_tools:
            return "tools", (
                "tools are not supported: this model has no native tool calling (send no tools, or "
                "tool_choice 'none'); ragkit's agents drive such models with ReAct prompts instead"
            )
        kind = (self.response_format or {}).get("type", "text")
        if kind != "text":
            return "response_format", f"response_format {kind!r} is not supported: send {{'type': 'text'}}"
        if self.logprobs or self.top_logprobs is not None:
            return "logprobs", "logprobs and top_logprobs are not supported"
        return None

    def generation_options(self, supports_tools: bool) -> GenerationOptions:
        """The generator's options for this request (``None``: the generator's own default)."""
        tools = self.tools if supports_tools and self.tool_choice != "none" else None
        return GenerationOptions(
            max_tokens=self.max_completion_tokens or self.max_tokens,
            tools=tools or None,
            tool_choice=self.tool_choice if tools else None,
            **self.sampling(),
        )


class ModelReply(BaseModel):
    """The assistant's message: text, or tool calls."""

    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ModelChoice(BaseModel):
    """The one choice of a completion."""

    index: int = 0
    message: ModelReply
    logprobs: None = None
    finish_reason: Literal["stop", "length", "tool_calls"]


class ModelCompletion(BaseModel):
    """A ``chat.completion`` of the model."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ModelChoice]
    usage: UsageModel
    system_fingerprint: str | None = None


class ModelServerState:
    """What the routes share: the generator, its id, the keys, the answer slots, metrics."""

    def __init__(
        self,
        generator: Generator,
        model_id: str,
        api_keys: Sequence[ApiKey],
        max_concurrent: int,
        on_usage: UsageHook | None,
    ) -> None:
        self.generator = generator
        self.model_id = model_id
        self.authenticator = Authenticator(api_keys)  # read by ragkit.service.auth's dependencies
        self.metrics = Metrics()
        self.created = int(time.time())
        self.max_concurrent = max_concurrent
        self.on_usage = on_usage
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    @property
    def supports_tools(self) -> bool:
        """Whether the generator calls tools natively."""
        return bool(getattr(self.generator, "supports_tools", False))

    def slots(self) -> asyncio.Semaphore:
        """The semaphore bounding generations at once (one per event loop)."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.max_concurrent))
        return self._slots[1]

    def observe(self, usage: Usage) -> None:
        """Hand a finished generation's tokens to the hook, if any."""
        if self.on_usage is not None:
            self.on_usage(usage)


def _state(request: Request) -> ModelServerState:
    state: ModelServerState = request.app.state.ragkit
    return state


def _finish(reason: str | None) -> Literal["stop", "length", "tool_calls"]:
    return reason if reason in ("length", "tool_calls") else "stop"  # type: ignore[return-value]


class DeltaEncoder(_ChunkEncoder):
    """Generator deltas → ``chat.completion.chunk`` Server-Sent Events (the service's encoder, no citations)."""

    def __init__(self, completion_id: str, model: str, include_usage: bool) -> None:
        super().__init__(completion_id, model, include_usage, collection="")

    def encode_delta(self, delta: GenerationDelta) -> bytes:
        """One delta's chunks; the last one (with ``finish_reason``) adds the usage chunk and ``[DONE]``."""
        out = b""
        if not self.started:
            self.started = True
            out += self._delta({"role": "assistant", "content": ""})
        if delta.text:
            out += self._delta({"content": delta.text})
        if delta.tool_calls:
            out += self._delta({"tool_calls": delta.tool_calls})
        if delta.finish_reason is not None:
            out += self._delta({}, _finish(delta.finish_reason))
            if self.include_usage:
                out += self._data(self._chunk([], usage=(delta.usage or Usage()).to_dict()))
            out += self._data("[DONE]")
        return out


class GenerationRun:
    """One streamed generation: holds a slot and the generator's iterator; the first delta is awaited up front."""

    def __init__(self, slots: asyncio.Semaphore, deltas: AsyncIterator[GenerationDelta]) -> None:
        self._slots = slots
        self._deltas = deltas
        self._released = False
        self.first: GenerationDelta | None = None

    @classmethod
    async def open(
        cls, slots: asyncio.Semaphore, generator: Generator, messages: list[Message], options: GenerationOptions
    ) -> GenerationRun:
        """Take a slot and start the model; bad options or a too-long prompt raise here, before any byte is sent."""
        await slots.acquire()
        run = cls(slots, generator.astream(messages, options))
        try:
            run.first = await anext(run._deltas, None)
        except BaseException:
            await run.close()
            raise
        return run

    async def deltas(self) -> AsyncIterator[GenerationDelta]:
        """Every delta: the first, then the rest as they come."""
        if self.first is None:
            return
        yield self.first
        async for delta in self._deltas:
            yield delta

    async def close(self) -> None:
        """Stop the model (closing its iterator) and free the slot. Idempotent."""
        try:
            aclose = getattr(self._deltas, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            if not self._released:
                self._released = True
                self._slots.release()


router = APIRouter(prefix="/v1", tags=["openai"])


@router.get("/models", response_model=ModelList)
async def list_models(request: Request, principal: Principal = Depends(require("read"))) -> ModelList:
    """The one served model."""
    state = _state(request)
    return ModelList(data=[ModelCard(id=state.model_id, created=state.created)])


@router.get("/models/{model}", response_model=ModelCard)
async def get_model(model: str, request: Request, principal: Principal = Depends(require("read"))) -> ModelCard:
    """The served model, or 404."""
    state = _state(request)
    if model != state.model_id:
        raise ModelNotFound(f"The model {model!r} does not exist; this server serves {state.model_id!r}")
    return ModelCard(id=model, created=state.created)


@router.post("/chat/completions", response_model=ModelCompletion, summary="Chat completions from the model itself")
async def chat_completions(
    body: ModelChatRequest, request: Request, principal: Principal = Depends(require("read"))
) -> Any:
    """The model's reply to the messages, whole or as ``chat.completion.chunk`` events ending with ``[DONE]``."""
    state = _state(request)
    if body.model != state.model_id:
        raise ModelNotFound(f"The model {body.model!r} does not exist; this server serves {state.model_id!r}")
    refused = body.refusal(state.supports_tools)
    if refused is not None:
        param, why = refused
        return _invalid(request, why, f"unsupported_{param}", param)
    messages = [m.to_message() for m in body.messages]
    options = body.generation_options(state.supports_tools)
    completion_id = f"chatcmpl-{request_id_of(request)}"
    slots = state.slots()
    if not body.stream:

        async def whole() -> Generation:
            run = await GenerationRun.open(slots, state.generator, messages, options)
            try:
                pieces = [delta async for delta in run.deltas()]
            finally:  # also when the client leaves and this task is cancelled: the model stops at once
                await asyncio.shield(run.close())
            return join_stream(iter(pieces), body.model)

        try:
            result = await unless_disconnected(request, whole())
        except ClientGone:
            return Response(status_code=CLIENT_CLOSED)
        state.observe(result.usage)
        calls = [{k: v for k, v in call.items() if k != "index"} for call in result.tool_calls or []] or None
        reply = ModelReply(content=result.text or (None if calls else ""), tool_calls=calls)
        choice = ModelChoice(message=reply, finish_reason=_finish(result.finish_reason))
        usage = UsageModel(**result.usage.to_dict())
        return ModelCompletion(
            id=completion_id, created=int(time.time()), model=body.model, choices=[choice], usage=usage
        )
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    encoder = DeltaEncoder(completion_id, body.model, include_usage)
    try:
        run = await unless_disconnected(request, GenerationRun.open(slots, state.generator, messages, options))
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)

    async def content() -> AsyncIterator[bytes]:
        try:
            async for delta in run.deltas():
                if delta.finish_reason is not None:
                    state.observe(delta.usage or Usage())
                yield encoder.encode_delta(delta)
        except Exception as exc:  # after the first byte, a failure can only be an error event
            error_type = type(exc).__name__ if isinstance(exc, RagkitError) else "InternalError"
            yield encoder.encode_error(error_type, str(exc), error_status(exc))

    return EventStreamResponse(content(), run)


def _invalid(request: Request, message: str, code: str, param: str | None) -> JSONResponse:
    """A 400 in OpenAI's shape, ``param`` naming the field at fault."""
    rid = request_id_of(request)
    detail = OpenAIErrorDetail(
        message=message, type="invalid_request_error", code=code, param=param or None, request_id=rid
    )
    return JSONResponse({"error": detail.model_dump()}, status_code=400, headers={"X-Request-ID": rid})


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """Request validation errors → 400 in OpenAI's shape (as OpenAI answers them), ``param`` the first bad field."""
    assert isinstance(exc, RequestValidationError)
    parts, params = [], []
    for error in exc.errors():
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        params.append(location)
        parts.append(f"{location or '(request)'}: {error.get('msg', 'invalid')}")
    return _invalid(request, "; ".join(parts) or "invalid request", "invalid_value", params[0] if params else None)


def create_model_app(
    generator: Generator,
    *,
    model_id: str | None = None,
    api_keys: Sequence[ApiKey] = (),
    max_concurrent: int = 1,
    on_usage: UsageHook | None = None,
) -> FastAPI:
    """``generator`` served as an OpenAI-compatible model (see the module docstring).

    ``model_id`` is the id clients send (default: the generator's
    ``model_name``); with ``api_keys`` every route needs one (any scope);
    ``max_concurrent`` bounds generations at once (the others wait);
    ``on_usage`` is called with each finished generation's tokens.
    """
    state = ModelServerState(generator, model_id or generator.model_name, api_keys, max_concurrent, on_usage)
    app = FastAPI(title="ragkit model server", version=__version__, description=(__doc__ or "").split("\n\n")[0])
    app.state.ragkit = state
    app.add_exception_handler(RagkitError, ragkit_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(RequestContextMiddleware, metrics=state.metrics)
    return app
