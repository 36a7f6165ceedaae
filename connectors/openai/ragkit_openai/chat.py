"""Chat completions from any OpenAI-compatible server: vLLM, TGI's Messages API, Ollama, llama.cpp, OpenAI ...

Uses the official ``openai`` client (imported on first use): ``OpenAI`` for
:meth:`OpenAIChatGenerator.generate` / :meth:`OpenAIChatGenerator.stream`,
``AsyncOpenAI`` for the native async twins (both made by
:class:`ragkit_openai.client.OpenAIClients`, the set-up the embedder shares).
Failed requests are retried by the client's own loop (408/409/429/5xx
answers, connection errors and timeouts, exponential backoff that honours
``Retry-After``); what still fails becomes a ragkit error by the core's one
upstream mapping (:mod:`ragkit.upstream`): a timeout is
:class:`~ragkit.errors.UpstreamTimeoutError` (504), a 5xx, a broken stream
or garbage :class:`~ragkit.errors.UpstreamError` (502), a refused
connection or a 429 :class:`~ragkit.errors.UnavailableError` (503), a
refused key or an unknown model a :class:`~ragkit.errors.ConfigError`, any
other 4xx an :class:`~ragkit.errors.InputError`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from ragkit.errors import ConfigError, InputError, RagkitError, UpstreamError
from ragkit.generation.base import (
    BaseGenerator,
    FinishReason,
    Generation,
    GenerationDelta,
    GenerationOptions,
    Message,
    Usage,
)
from ragkit.options import check_int, check_number
from ragkit_openai.client import OpenAIConnected

logger = logging.getLogger(__name__)

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "stop",
}


class OpenAIChatGenerator(OpenAIConnected, BaseGenerator):
    """Writes answers through an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    Args:
        model: The model name sent with each request (the id the server knows it by).
        base_url: The server's API root, e.g. ``http://localhost:8000/v1``
            (vLLM, TGI, llama.cpp) or ``http://localhost:11434/v1`` (Ollama).
            ``None``: OpenAI (or ``OPENAI_BASE_URL``).
        api_key: The key, if it is to be written into the config. Prefer
            ``api_key_env``: a key read from the environment is never saved.
        api_key_env: The environment variable holding the key. A server
            without authentication needs none (a placeholder is sent).
        timeout: Seconds one request may take to answer; while streaming,
            the longest wait for the next piece.
        max_retries: Retries of a failed request (408, 409, 429, 5xx,
            connection errors, timeouts) with exponential backoff; a stream
            is only retried before its first piece arrives.
        max_tokens: Default answer length limit (a call's
            :class:`GenerationOptions` may override it).
        temperature: Default sampling temperature (``0``: greedy).
        context_window: How many tokens prompt plus answer may hold.
        extra_body: Extra JSON fields sent with every request, for server
            specific options (vLLM's ``top_k``, ``repetition_penalty``,
            ``chat_template_kwargs`` ...).
        tokenizer: A tiktoken encoding name (``o200k_base``,
            ``cl100k_base``) or an OpenAI model name for exact token counts.
            ``None``, or tiktoken not installed or its encoding file not
            loadable (offline): **an estimate** of ``len(text) // 4 + 1``
            tokens per text, since other servers' tokenizers are not
            reachable through the OpenAI API.
        http_client: An ``httpx2.Client`` for the sync client, e.g. with a
            custom transport; not part of the saved config.
        async_http_client: The same for the async client.

    Clients are made on first use: one sync client per generator, one
    async client per event loop (an async connection pool must not outlive
    its loop); both are safe to share between threads / tasks.

    """

    supports_tools = True
    """OpenAI-compatible servers take tool definitions and answer with ``tool_calls`` (native agent tool calling)."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 3,
        max_tokens: int = 512,
        temperature: float = 0.0,
        context_window: int = 8192,
        extra_body: dict[str, Any] | None = None,
        tokenizer: str | None = None,
        *,
        http_client: Any = None,
        async_http_client: Any = None,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"generator option 'model': expected the model's name, got {model!r}")
        check_number("generator", "timeout", timeout, 0.0, strict=True)
        check_int("generator", "max_retries", max_retries, 0)
        check_int("generator", "max_tokens", max_tokens, 1)
        check_number("generator", "temperature", temperature, 0.0)
        check_int("generator", "context_window", context_window, 1)
        if extra_body is not None:
            if not isinstance(extra_body, dict):
                raise ConfigError(f"generator option 'extra_body': expected a mapping, got {type(extra_body).__name__}")
            try:
                json.dumps(extra_body)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"generator option 'extra_body': not JSON-serialisable: {exc}") from None
        if tokenizer is not None and (not isinstance(tokenizer, str) or not tokenizer):
            raise ConfigError(f"generator option 'tokenizer': expected a tiktoken encoding name, got {tokenizer!r}")
        self._connect(
            "generator", model, base_url, api_key, api_key_env, timeout, max_retries, http_client, async_http_client
        )
        self._context_window = context_window
        self.extra_body = dict(extra_body) if extra_body else None
        self.tokenizer = tokenizer
        self.default_options = GenerationOptions(max_tokens=max_tokens, temperature=float(temperature))
        self._lock = threading.Lock()
        self._encoding: Any = None
        self._encoding_tried = tokenizer is None
        if tokenizer is not None:
            self._check_tokenizer_name(tokenizer)

    # -- config and identity ------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """The ``model`` option: the id the server knows the model by."""
        return self.model

    @property
    def context_window(self) -> int:
        """How many tokens prompt plus answer may hold (the ``context_window`` option)."""
        return self._context_window

    def __repr__(self) -> str:
        return f"OpenAIChatGenerator(model={self.model!r}, base_url={self.where!r})"

    # -- clients --------------------------------------------------------------------------

    @property
    def _client(self) -> Any:
        """The sync client if one has been made (``None`` before first use and after :meth:`close`)."""
        return self._clients.current

    # -- requests -------------------------------------------------------------------------

    def request_body(
        self, messages: Sequence[Message], options: GenerationOptions | None = None, *, stream: bool = False
    ) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create`` for these messages and options.

        Only options that are set are sent; ``extra_body`` goes along as is.
        """
        if not messages:
            raise InputError("generator 'openai': no messages to answer")
        opts = self.options(options)
        kwargs: dict[str, Any] = {"model": self.model, "messages": [_message_dict(m) for m in messages]}
        for name in ("max_tokens", "temperature", "top_p", "stop", "seed", "tools", "tool_choice"):
            value = getattr(opts, name)
            if value is not None:
                kwargs[name] = value
        if stream:
            kwargs["stream"] = True
            kwargs["stream_options"] = {"include_usage": True}
        if self.extra_body:
            kwargs["extra_body"] = dict(self.extra_body)
        return kwargs

    def generate(self, messages: Sequence[Message], options: GenerationOptions | None = None) -> Generation:
        """The whole answer, from one non-streaming request."""
        kwargs = self.request_body(messages, options)
        client = self._clients.sync()
        try:
            response = client.chat.completions.create(**kwargs)
        except Exception as exc:
            raise self._clients.error(exc) from None
        return self._generation(response)

    async def agenerate(self, messages: Sequence[Message], options: GenerationOptions | None = None) -> Generation:
        """Async twin of :meth:`generate` (the async client; cancelling the task drops the request)."""
        kwargs = self.request_body(messages, options)
        client = self._clients.for_loop()
        try:
            response = await client.chat.completions.create(**kwargs)
        except Exception as exc:
            raise self._clients.error(exc) from None
        return self._generation(response)

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Iterator[GenerationDelta]:
        """The answer as the server streams it.

        Yields text pieces (and tool-call fragments, as plain dicts in the
        OpenAI ``delta.tool_calls`` shape), then one last delta with the
        finish reason and, when the server sent it, the usage. Closing the
        iterator closes the HTTP response, so the server sees the client go.
        """
        kwargs = self.request_body(messages, options, stream=True)
        client = self._clients.sync()
        try:
            response = client.chat.completions.create(**kwargs)
        except Exception as exc:
            raise self._clients.error(exc) from None
        state = _StreamState()
        try:
            for chunk in response:
                delta = state.add(chunk)
                if delta is not None:
                    yield delta
        except RagkitError:
            raise
        except Exception as exc:
            raise self._clients.error(exc, streaming=True) from None
        finally:
            response.close()
        yield state.final()

    async def astream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> AsyncIterator[GenerationDelta]:
        """Async twin of :meth:`stream`; cancelling the consumer (or ``aclose()``) closes the response."""
        kwargs = self.request_body(messages, options, stream=True)
        client = self._clients.for_loop()
        try:
            response = await client.chat.completions.create(**kwargs)
        except Exception as exc:
            raise self._clients.error(exc) from None
        state = _StreamState()
        try:
            async for chunk in response:
                delta = state.add(chunk)
                if delta is not None:
                    yield delta
        except RagkitError:
            raise
        except Exception as exc:
            raise self._clients.error(exc, streaming=True) from None
        finally:
            await response.close()
        yield state.final()

    def _generation(self, response: Any) -> Generation:
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices:
            got = type(response).__name__ if not isinstance(response, str) else repr(response[:200])
            raise UpstreamError(f"generation server {self.where} sent no completion choices (got {got})")
        choice = choices[0]
        message = getattr(choice, "message", None)
        if message is None:
            raise UpstreamError(f"generation server {self.where} sent a choice without a message")
        tool_calls = [_plain(call) for call in (getattr(message, "tool_calls", None) or [])]
        usage = _usage(getattr(response, "usage", None)) or Usage()
        return Generation(
            text=message.content or "",
            finish_reason=_finish(choice.finish_reason, bool(tool_calls)),
            usage=usage,
            model=self.model,
            tool_calls=tool_calls or None,
        )

    # -- tokens -------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text``: exact with the ``tokenizer`` option and tiktoken, else ``len(text) // 4 + 1``."""
        encoding = self._tiktoken()
        if encoding is None:
            return len(text) // 4 + 1
        return len(encoding.encode_ordinary(text))

    def count_message_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the prompt built from ``messages``, by OpenAI's recipe.

        Three tokens of markup per message plus its role, content, name and
        tool calls, and three to prime the reply (exact for OpenAI's own
        models with ``tokenizer``; an estimate otherwise).
        """
        total = 3
        for message in messages:
            total += 3 + self.count_tokens(message.role) + self.count_tokens(message.content)
            if message.name:
                total += 1 + self.count_tokens(message.name)
            if message.tool_calls:
                total += self.count_tokens(json.dumps(message.tool_calls))
        return total

    def _check_tokenizer_name(self, name: str) -> None:
        try:
            import tiktoken
        except ImportError:
            logger.warning("the 'tokenizer' option needs tiktoken (pip install tiktoken); estimating token counts")
            self._encoding_tried = True
            return
        if name in tiktoken.list_encoding_names():
            return
        try:
            tiktoken.encoding_name_for_model(name)
        except KeyError:
            known = ", ".join(tiktoken.list_encoding_names())
            raise ConfigError(
                f"generator option 'tokenizer': {name!r} is neither a tiktoken encoding ({known}) "
                "nor a model tiktoken knows"
            ) from None

    def _tiktoken(self) -> Any:
        if not self._encoding_tried:
            with self._lock:
                if not self._encoding_tried:
                    self._encoding = _load_encoding(str(self.tokenizer))
                    self._encoding_tried = True
        return self._encoding


class _StreamState:
    """Turns ``chat.completion.chunk`` objects into deltas, keeping the finish reason and usage for the end."""

    def __init__(self) -> None:
        self.finish: str | None = None
        self.usage: Usage | None = None
        self.saw_tool_calls = False

    def add(self, chunk: Any) -> GenerationDelta | None:
        usage = _usage(getattr(chunk, "usage", None))
        if usage is not None:
            self.usage = usage
        choices = getattr(chunk, "choices", None) or []
        choice = next((c for c in choices if getattr(c, "index", 0) == 0), None)
        if choice is None:
            return None
        if choice.finish_reason:
            self.finish = choice.finish_reason
        delta = choice.delta
        text = (getattr(delta, "content", None) or "") if delta is not None else ""
        calls = getattr(delta, "tool_calls", None) if delta is not None else None
        tool_calls = [_plain(call) for call in calls] if calls else None
        if tool_calls:
            self.saw_tool_calls = True
        if not text and not tool_calls:
            return None
        return GenerationDelta(text=text, tool_calls=tool_calls)

    def final(self) -> GenerationDelta:
        return GenerationDelta(finish_reason=_finish(self.finish, self.saw_tool_calls), usage=self.usage)


def _message_dict(message: Message) -> dict[str, Any]:
    if isinstance(message, dict):  # tolerate wire-form dicts
        return dict(message)
    return message.to_dict()


def _plain(model: Any) -> dict[str, Any]:
    """A pydantic object from the client as a plain dict, without the fields the server left out."""
    if isinstance(model, dict):
        return model
    return dict(model.model_dump(exclude_none=True))


def _usage(usage: Any) -> Usage | None:
    if usage is None:
        return None
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    if not isinstance(prompt, int) and not isinstance(completion, int):
        return None
    return Usage(prompt_tokens=prompt or 0, completion_tokens=completion or 0)


def _finish(reason: str | None, tool_calls: bool) -> FinishReason:
    if reason is None:
        return "tool_calls" if tool_calls else "stop"
    mapped = _FINISH_REASONS.get(reason)
    if mapped is None:
        logger.debug("unknown finish_reason %r read as 'stop'", reason)
        return "stop"
    return mapped


def _load_encoding(name: str) -> Any:
    try:
        import tiktoken
    except ImportError:
        return None
    try:
        if name in tiktoken.list_encoding_names():
            return tiktoken.get_encoding(name)
        return tiktoken.encoding_for_model(name)
    except Exception as exc:  # the encoding file could not be fetched (offline)
        logger.warning("tiktoken could not load the encoding %r (%s); estimating token counts", name, exc)
        return None
