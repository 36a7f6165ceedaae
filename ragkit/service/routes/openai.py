"""OpenAI-compatible routes: ``GET /v1/models`` and ``POST /v1/chat/completions``.

Every collection × pipeline is a model: ``"{collection}"`` for the default
pipeline, ``"{collection}:{pipeline}"`` for the others. The last user message
is the question (earlier messages are not used); the answer comes back as a
``chat.completion`` or as ``chat.completion.chunk`` Server-Sent Events ending
with ``data: [DONE]``. Citations travel as an extra top-level ``citations``
field on the whole response and on the final chunk (the one with
``finish_reason``). Errors use OpenAI's shape so its clients parse them.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any, Literal, cast

import numpy as np
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ragkit.errors import InputError
from ragkit.generation.base import Message
from ragkit.protocols import TokenCounter, counts_tokens
from ragkit.rag import AskEvent, RagPipeline
from ragkit.rag.answer import Answer
from ragkit.rag.pipeline import AskExtras
from ragkit.service.auth import Principal, require
from ragkit.service.errors import ModelNotFound, ServiceHTTPError, error_body, error_responses, request_id_of
from ragkit.service.models import CitationModel, FilterSpec, Mode, UsageModel, rest_citation
from ragkit.service.routes.ask import CLIENT_CLOSED
from ragkit.service.state import ServiceState, get_state
from ragkit.service.streaming import AnswerRun, ClientGone, EventStreamResponse, guarded, unless_disconnected

router = APIRouter(prefix="/v1", tags=["openai"])


# -- models ----------------------------------------------------------------------------------


class ModelCard(BaseModel):
    """One model: a collection answered by one pipeline."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ragkit"


class ModelList(BaseModel):
    """The models the caller may use."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class ContentPart(BaseModel):
    """A part of a message's content; only text parts are read."""

    model_config = ConfigDict(extra="ignore")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """A chat message."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The message's text."""
        if isinstance(self.content, list):
            return "".join(part.text or "" for part in self.content if part.type == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    """Streaming options."""

    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The standard chat-completions request (unknown fields are ignored), plus ragkit's retrieval options."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, description="'{collection}' or '{collection}:{pipeline}'")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=8192, description="At most the pipeline's answer.max_tokens")
    max_completion_tokens: int | None = Field(default=None, ge=1, le=8192, description="Same as max_tokens")
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(default=None, ge=1, le=1, description="Only 1 is supported")
    top_k: int | None = Field(default=None, ge=1, le=100, description="ragkit: chunks to retrieve")
    filters: FilterSpec | None = Field(default=None, description="ragkit: a metadata filter")
    mode: Mode | None = Field(default=None, description="ragkit: dense or lexical retrieval")
    tools: list[dict[str, Any]] | None = Field(
        default=None, description="Accepted only with tool_choice 'auto' or 'none': these models never call tools"
    )
    tool_choice: str | dict[str, Any] | None = Field(default=None, description="'auto' or 'none' only")
    functions: list[dict[str, Any]] | None = Field(default=None, description="Legacy; as tools")
    function_call: str | dict[str, Any] | None = Field(default=None, description="Legacy; 'auto' or 'none' only")
    response_format: dict[str, Any] | None = Field(default=None, description="Only {'type': 'text'}")
    logprobs: bool | None = Field(default=None, description="Not supported (only false)")
    top_logprobs: int | None = Field(default=None, description="Not supported")

    def unsupported(self) -> tuple[str, str] | None:
        """``(param, why)`` for the first parameter these models cannot honour, else ``None``.

        Silently ignoring one would return an answer the caller did not ask
        for (free text where JSON was required, no tool call where one was).
        """
        for param, choice in (("tool_choice", self.tool_choice), ("function_call", self.function_call)):
            if choice is not None and choice not in ("auto", "none"):
                return param, (
                    f"{param} {choice!r} is not supported: ragkit's models answer from their collection and never "
                    "call tools; send 'auto' or 'none' (or no tools)"
                )
        kind = (self.response_format or {}).get("type", "text")
        if kind != "text":
            return "response_format", (
                f"response_format {kind!r} is not supported: answers are cited free text; send {{'type': 'text'}}"
            )
        if self.logprobs:
            return "logprobs", "logprobs is not supported: the answers carry citations, not token log-probabilities"
        if self.top_logprobs is not None:
            return "top_logprobs", "top_logprobs is not supported (logprobs is not)"
        return None

    def _last_user(self) -> int:
        for index in range(len(self.messages) - 1, -1, -1):
            if self.messages[index].role == "user":
                return index
        raise InputError("messages: there is no user message to answer")

    def question(self) -> str:
        """The last user message's text."""
        return self.messages[self._last_user()].text()

    def history(self) -> list[Message]:
        """The user and assistant messages before the last user message: the conversation so far."""
        earlier = self.messages[: self._last_user()]
        return [Message(m.role, m.text()) for m in earlier if m.role in ("user", "assistant") and m.text().strip()]

    def instructions(self) -> str | None:
        """The system and developer messages' text: the caller's instructions, added to the pipeline's prompt."""
        parts = [m.text().strip() for m in self.messages if m.role in ("system", "developer") and m.text().strip()]
        return "\n\n".join(parts) or None

    def sampling(self) -> dict[str, Any]:
        """The sampling options asked for (besides the token limit)."""
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        return {"temperature": self.temperature, "top_p": self.top_p, "stop": stop or None, "seed": self.seed}


class AssistantMessage(BaseModel):
    """The answer as an assistant message."""

    role: Literal["assistant"] = "assistant"
    content: str
    refusal: str | None = None


class Choice(BaseModel):
    """The one choice of a completion."""

    index: int = 0
    message: AssistantMessage
    logprobs: None = None
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter"]


class ChatCompletion(BaseModel):
    """A ``chat.completion`` with ragkit's ``citations``."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: UsageModel
    system_fingerprint: str | None = None
    citations: list[CitationModel] = Field(description="ragkit: the sources the answer cites")


_OPENAI_ERRORS = error_responses(400, 401, 403, 404, 413, 422, 502, 503, 504, openai=True)
_CHAT_200: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A chat.completion, or with `stream: true` chat.completion.chunk events "
        "(`data: {...}`) ending with `data: [DONE]`; the chunk with finish_reason carries `citations`.",
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {
                        "data": {"type": "string", "description": "A chat.completion.chunk as JSON, or [DONE]"}
                    },
                }
            }
        },
    }
}


def model_id(collection: str, pipeline: str, default: str) -> str:
    """The model id of ``collection`` answered by ``pipeline``."""
    return collection if pipeline == default else f"{collection}:{pipeline}"


def _created(state: ServiceState, name: str) -> int:
    return state.collections.created(name)


def _cards(state: ServiceState, principal: Principal) -> list[ModelCard]:
    default = state.settings.default_pipeline
    cards = []
    for name in principal.visible(state.collections.names()):
        created = _created(state, name)
        for pipeline in sorted(state.pipelines, key=lambda p: (p != default, p)):
            cards.append(ModelCard(id=model_id(name, pipeline, default), created=created))
    return cards


@router.get("/models", response_model=ModelList, responses=error_responses(401, 403, openai=True))
async def list_models(
    state: ServiceState = Depends(get_state), principal: Principal = Depends(require("read"))
) -> ModelList:
    """One model per collection and pipeline the caller may use."""
    return ModelList(data=await state.run(_cards, state, principal))


def resolve_model(state: ServiceState, principal: Principal, model: str) -> tuple[str, RagPipeline]:
    """The collection and pipeline a model id names (404 in OpenAI's shape if none)."""
    collection, _, pipeline_name = model.partition(":")
    pipeline = state.pipelines.get(pipeline_name or state.settings.default_pipeline)
    # a collection the key may not access reads exactly like a missing one (no hint that it exists)
    if (
        pipeline is None
        or not collection
        or not principal.may_access(collection)
        or collection not in state.collections.names()
    ):
        raise ModelNotFound(f"The model {model!r} does not exist; GET /v1/models lists the models")
    return collection, pipeline


@router.get("/models/{model}", response_model=ModelCard, responses=error_responses(401, 403, 404, 422, openai=True))
async def get_model(
    model: str, state: ServiceState = Depends(get_state), principal: Principal = Depends(require("read"))
) -> ModelCard:
    """One model."""
    collection, _ = await state.run(resolve_model, state, principal, model)
    return ModelCard(id=model, created=await state.run(_created, state, collection))


# -- chat completions ------------------------------------------------------------------------


def _finish_reason(answer: Answer) -> Literal["stop", "length", "tool_calls"]:
    reason = answer.finish_reason
    return reason if reason in ("length", "tool_calls") else "stop"  # type: ignore[return-value]


def _completion(completion_id: str, model: str, answer: Answer, collection: str) -> ChatCompletion:
    return ChatCompletion(
        id=completion_id,
        created=int(time.time()),
        model=model,
        choices=[Choice(message=AssistantMessage(content=answer.text), finish_reason=_finish_reason(answer))],
        usage=UsageModel(**answer.usage.to_dict()),
        citations=[CitationModel.model_validate(rest_citation(c, collection)) for c in answer.citations],
    )


class _ChunkEncoder:
    """Pipeline events → ``chat.completion.chunk`` Server-Sent Events."""

    def __init__(self, completion_id: str, model: str, include_usage: bool, collection: str) -> None:
        self.completion_id = completion_id
        self.collection = collection
        self.model = model
        self.include_usage = include_usage
        self.created = int(time.time())
        self.started = False

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = None
        chunk.update(extra)
        return chunk

    @staticmethod
    def _data(payload: Any) -> bytes:
        text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        return f"data: {text}\n\n".encode()

    def _delta(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._data(self._chunk([choice], **extra))

    def encode(self, event: AskEvent) -> bytes:
        out = b""
        if not self.started:
            self.started = True
            out += self._delta({"role": "assistant", "content": ""})
        if event.type == "token" and event.text:
            out += self._delta({"content": event.text})
        elif event.type == "answer":
            assert event.answer is not None
            answer = event.answer
            citations = [rest_citation(c, self.collection) for c in answer.citations]
            out += self._delta({}, _finish_reason(answer), citations=citations)
            if self.include_usage:
                out += self._data(self._chunk([], usage=answer.usage.to_dict()))
            out += self._data("[DONE]")
        return out

    def encode_error(self, error_type: str, message: str, status: int) -> bytes:
        body = error_body("/v1/chat/completions", status, error_type, message, self.completion_id)
        return self._data(body) + self._data("[DONE]")


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={**_CHAT_200, **_OPENAI_ERRORS},
    summary="Chat completions (OpenAI-compatible)",
)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    state: ServiceState = Depends(get_state),
    principal: Principal = Depends(require("read")),
) -> Any:
    """Answer the last user message from the model's collection, in OpenAI's format, with ``citations``.

    The earlier user and assistant messages are the conversation's history (a ``condense`` stage makes a
    follow-up standalone from them, and the most recent turns go into the prompt); system and developer
    messages are added to the pipeline's system prompt as the caller's instructions.
    """
    refused = body.unsupported()
    if refused is not None:
        param, why = refused
        raise ServiceHTTPError(400, why, "InvalidRequestError", code=f"unsupported_{param}")
    name, pipeline = await state.run(resolve_model, state, principal, body.model)
    question = body.question()
    history = body.history()
    extras = AskExtras(instructions=body.instructions())
    collection = await state.run(state.collections.get, name)
    options = state.options(pipeline, body.max_completion_tokens or body.max_tokens, **body.sampling())
    completion_id = f"chatcmpl-{request_id_of(request)}"
    slots = state.ask_slots()
    if not body.stream:

        async def answer() -> ChatCompletion:
            async with slots:
                result = await pipeline.aask(
                    question,
                    collection,
                    body.top_k,
                    body.filters,
                    body.mode,
                    options,
                    history,
                    instructions=extras.instructions,
                )
            state.metrics.observe_answer(result)
            return _completion(completion_id, body.model, result, name)

        try:
            return await unless_disconnected(request, answer())
        except ClientGone:
            return Response(status_code=CLIENT_CLOSED)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    encoder = _ChunkEncoder(completion_id, body.model, include_usage, name)
    opening = AnswerRun.open(
        slots, pipeline, question, collection, body.top_k, body.filters, body.mode, options, history, extras
    )
    try:
        run = await unless_disconnected(request, opening)
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    content = guarded(
        run.events(), encoder.encode, encoder.encode_error, state.metrics.observe_answer, request_id_of(request)
    )
    return EventStreamResponse(content, run)


# -- embeddings ------------------------------------------------------------------------------


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings request: ``model`` names a collection, whose own embedder embeds ``input``."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, description="'{collection}': the collection whose embedder to use")
    input: str | list[str] = Field(description="A text or a list of texts (token arrays are not supported)")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, description="Only the embedder's own dimension")

    def texts(self) -> list[str]:
        """The texts to embed (at least one, none empty)."""
        texts = [self.input] if isinstance(self.input, str) else list(self.input)
        if not texts:
            raise InputError("input: give at least one text")
        if len(texts) > MAX_EMBEDDING_INPUTS:
            raise InputError(f"input: at most {MAX_EMBEDDING_INPUTS} texts per request, got {len(texts)}")
        if any(not text.strip() for text in texts):
            raise InputError("input: texts must not be empty")
        return texts


MAX_EMBEDDING_INPUTS = 2048
"""OpenAI's own limit of inputs per embeddings request."""


class EmbeddingData(BaseModel):
    """One text's vector."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of little-endian float32 with encoding_format")


class EmbeddingUsage(BaseModel):
    """Tokens read."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    """The vectors, in input order."""

    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage


@router.post(
    "/embeddings",
    response_model=EmbeddingList,
    responses=_OPENAI_ERRORS,
    summary="Embeddings (OpenAI-compatible): a collection's own embedder",
)
async def embeddings(
    body: EmbeddingRequest, state: ServiceState = Depends(get_state), principal: Principal = Depends(require("read"))
) -> EmbeddingList:
    """Embed ``input`` with the embedder of the collection ``model`` names (documents' side of the embedder).

    The vectors are the ones the collection stores for its chunks, so a client can compare its own texts with
    them; ``dimensions`` must be the embedder's own (no truncation).
    """
    name, _ = await state.run(resolve_model, state, principal, body.model.partition(":")[0])
    texts = body.texts()
    collection = await state.run(state.collections.get, name)
    embedder = collection.embedder
    if body.dimensions is not None and body.dimensions != embedder.dimension:
        raise InputError(f"dimensions: {name!r}'s embedder gives {embedder.dimension}, not {body.dimensions}")

    def embed() -> tuple[Any, list[int]]:
        vectors = embedder.embed_documents(texts)
        if counts_tokens(embedder):
            return vectors, cast(TokenCounter, embedder).count_tokens(texts)
        return vectors, [len(text.split()) for text in texts]  # words, for an embedder with no tokenizer

    vectors, tokens = await state.run(embed)
    data = []
    for index, vector in enumerate(vectors):
        row = np.asarray(vector, dtype="<f4")
        value: list[float] | str = (
            base64.b64encode(row.tobytes()).decode("ascii") if body.encoding_format == "base64" else row.tolist()
        )
        data.append(EmbeddingData(index=index, embedding=value))
    used = int(sum(tokens))
    return EmbeddingList(data=data, model=body.model, usage=EmbeddingUsage(prompt_tokens=used, total_tokens=used))
