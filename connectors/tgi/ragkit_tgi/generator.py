"""Answers from text-generation-inference (TGI) through its native ``/generate`` and ``/generate_stream`` API.

The native API takes one prompt string, so chat messages are rendered with a
Jinja chat template first (ChatML by default, or the model's own template
from a local tokenizer folder). Requests go through
``huggingface_hub.InferenceClient.text_generation`` (payload, SSE parsing
and TGI's error types are the library's), but over an HTTP client owned by
the generator, for three reasons:

* ``huggingface_hub`` sends every request through one process-wide session
  whose request hook refuses *all* URLs when ``HF_HUB_OFFLINE=1`` (the flag
  is read once, at import), even a TGI server on localhost. A model server
  is not the Hub, so this generator is not blocked by the Hub's offline mode.
* A streamed response is closed as soon as the stream is closed, so TGI
  sees the client go and stops generating (the library keeps streamed
  responses open until the client itself is closed).
* The Hugging Face token (``HF_TOKEN`` or a saved login) is never sent to a
  TGI server unless ``api_key_env`` names it.

``InferenceClient`` does not retry; this generator retries 429, 5xx and
refused connections with exponential backoff (honouring ``Retry-After``):
the whole request for :meth:`TGIGenerator.generate`, and the opening of a
stream up to its first token for :meth:`TGIGenerator.stream`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx2
import jinja2
from huggingface_hub import InferenceClient
from huggingface_hub.errors import (
    HfHubHTTPError,
    InferenceTimeoutError,
    OfflineModeIsEnabled,
    OverloadedError,
    TextGenerationError,
    ValidationError,
)
from huggingface_hub.utils import hf_raise_for_status  # type: ignore[attr-defined]  # public, not in __all__
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ragkit.errors import (
    ConfigError,
    InputError,
    MissingDependencyError,
    RagkitError,
    UnavailableError,
    UpstreamError,
)
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
from ragkit.upstream import Upstream, retry_after, server_message

logger = logging.getLogger(__name__)

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""The default chat template: ChatML (``<|im_start|>role\\ncontent<|im_end|>\\n`` ..., then the assistant's turn)."""

_FINISH_REASONS: dict[str, FinishReason] = {"length": "length", "eos_token": "stop", "stop_sequence": "stop"}
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_MAX_BACKOFF = 8.0
_MAX_RETRY_AFTER = 30.0
_TOKENIZE_CACHE = 2048


class TGIGenerator(BaseGenerator):
    """Writes answers with a text-generation-inference server's native API.

    Args:
        base_url: The TGI server's root, e.g. ``http://localhost:8080``
            (``/generate``, ``/generate_stream`` and ``/tokenize`` live below it).
        chat_template: A Jinja chat template (Hugging Face style: it gets
            ``messages``, ``add_generation_prompt``, ``bos_token``,
            ``eos_token`` and ``raise_exception``). ``None``: the template in
            the ``tokenizer`` folder's ``tokenizer_config.json`` if there is
            one, else ChatML (:data:`CHATML_TEMPLATE`). ``bos_token`` is
            rendered empty, because TGI adds it when it tokenizes the prompt.
        tokenizer: A local tokenizer: a folder with ``tokenizer.json`` (and
            optionally ``tokenizer_config.json``), or the ``tokenizer.json``
            file itself, for exact token counts without asking the server
            (needs the ``tokenizers`` package). ``None``: counts come from
            the server's ``POST /tokenize`` (exact; one request per new text,
            cached), and where the server has no such route or cannot be
            reached, **an estimate** of ``len(text) // 4 + 1``.
        timeout: Seconds a request may wait for an answer; while streaming,
            the longest wait for the next token.
        max_new_tokens: Default answer length limit (a call's
            :class:`GenerationOptions` ``max_tokens`` may override it).
        temperature: Default sampling temperature; ``0`` means greedy
            decoding (TGI itself rejects a temperature of 0).
        context_window: How many tokens prompt plus answer may hold (TGI's
            ``--max-total-tokens``).
        model_name: The name reported to users (TGI serves one model whatever the name).
        api_key_env: The environment variable holding a bearer token (an
            Inference Endpoint's ``HF_TOKEN``, or a proxy's key); ``None``
            sends no ``Authorization`` header at all. The key is never saved.
        max_retries: Retries of a request answered 429 or 5xx, or whose
            connection was refused (timeouts are not retried).
        backoff: Seconds before the first retry; doubled each time (at most
            8 s), or the server's ``Retry-After`` when it sends one.

    The native API has no tool calling: options with ``tools`` are refused
    (use ``generator.openai`` against TGI's Messages API for tools).

    """

    def __init__(
        self,
        base_url: str,
        chat_template: str | None = None,
        tokenizer: str | None = None,
        timeout: float = 60.0,
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        context_window: int = 4096,
        model_name: str = "tgi",
        api_key_env: str | None = None,
        max_retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        if not isinstance(base_url, str) or "://" not in base_url:
            raise ConfigError(f"generator option 'base_url': expected a URL like http://host:8080, got {base_url!r}")
        if chat_template is not None and (not isinstance(chat_template, str) or not chat_template.strip()):
            raise ConfigError(f"generator option 'chat_template': expected a Jinja template, got {chat_template!r}")
        if tokenizer is not None and (not isinstance(tokenizer, str) or not tokenizer):
            raise ConfigError(f"generator option 'tokenizer': expected a path, got {tokenizer!r}")
        check_number("generator", "timeout", timeout, 0.0, strict=True)
        check_int("generator", "max_new_tokens", max_new_tokens, 1)
        check_number("generator", "temperature", temperature, 0.0)
        check_int("generator", "context_window", context_window, 1)
        if not isinstance(model_name, str) or not model_name.strip():
            raise ConfigError(f"generator option 'model_name': expected a name, got {model_name!r}")
        if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env):
            raise ConfigError(f"generator option 'api_key_env': expected a variable name, got {api_key_env!r}")
        check_int("generator", "max_retries", max_retries, 0)
        check_number("generator", "backoff", backoff, 0.0)
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self._context_window = context_window
        self._model_name = model_name
        self.api_key_env = api_key_env
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.default_options = GenerationOptions(max_tokens=max_new_tokens, temperature=float(temperature))
        self._tokenizer: Any = None
        template_vars: dict[str, Any] = {}
        if tokenizer is not None:
            self._tokenizer, folder_template, template_vars = _load_tokenizer(Path(tokenizer).expanduser())
            chat_template = chat_template or folder_template
        self._template_source = chat_template or CHATML_TEMPLATE
        self._template = _compile_template(self._template_source)
        self._template_vars = template_vars
        self._lock = threading.Lock()
        self._http: httpx2.Client | None = None
        self._client: _TGIInferenceClient | None = None
        self._token_cache: OrderedDict[str, int] = OrderedDict()
        self._tokenize_route = True  # False once the server showed it has no /tokenize

    # -- identity -------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """The ``model_name`` option."""
        return self._model_name

    @property
    def context_window(self) -> int:
        """How many tokens prompt plus answer may hold (the ``context_window`` option)."""
        return self._context_window

    @property
    def chat_template(self) -> str:
        """The Jinja chat template in use."""
        return self._template_source

    def __repr__(self) -> str:
        return f"TGIGenerator(base_url={self.base_url!r}, model_name={self._model_name!r})"

    # -- clients --------------------------------------------------------------------------

    def _api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None if self.api_key_env else None

    def _inference_client(self) -> _TGIInferenceClient:
        with self._lock:
            if self._client is None:
                self._http = httpx2.Client(timeout=httpx2.Timeout(self.timeout), follow_redirects=False)
                self._client = _TGIInferenceClient(self._http, self._api_key(), base_url=self.base_url)
            return self._client

    def close(self) -> None:
        """Close the HTTP connections (a later call opens new ones)."""
        with self._lock:
            if self._http is not None:
                self._http.close()
            self._http, self._client = None, None

    # -- prompts and parameters -----------------------------------------------------------

    def render_prompt(self, messages: Sequence[Message]) -> str:
        """The prompt string the chat template makes of ``messages`` (ending with the assistant's turn)."""
        if not messages:
            raise InputError("generator 'tgi': no messages to answer")
        values = {
            "bos_token": "",
            "eos_token": "",
            **self._template_vars,
            "messages": [_message_dict(m) for m in messages],
            "add_generation_prompt": True,
        }
        try:
            return self._template.render(**values)
        except jinja2.TemplateError as exc:
            raise InputError(f"generator 'tgi': the chat template failed on these messages: {exc}") from None

    def parameters(self, options: GenerationOptions | None = None) -> dict[str, Any]:
        """The TGI ``parameters`` (``text_generation`` keyword arguments) for these options.

        ``max_tokens`` becomes ``max_new_tokens``; a temperature of 0 means
        greedy decoding (``do_sample=False``, no temperature sent); ``top_p``
        is only sent with sampling and below 1 (TGI refuses 1.0).
        """
        opts = self.options(options)
        if opts.tools:
            raise InputError(
                "generator 'tgi': the native TGI API has no tool calling; use generator 'openai' with "
                "base_url <tgi>/v1 (TGI's Messages API) for tools"
            )
        params: dict[str, Any] = {"max_new_tokens": opts.max_tokens}
        if opts.temperature:
            params["do_sample"] = True
            params["temperature"] = opts.temperature
            if opts.top_p is not None and opts.top_p < 1.0:
                params["top_p"] = opts.top_p
        else:
            params["do_sample"] = False
        if opts.seed is not None:
            params["seed"] = opts.seed
        if opts.stop:
            params["stop"] = list(opts.stop)
        return params

    def _route(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    # -- generation -----------------------------------------------------------------------

    def generate(self, messages: Sequence[Message], options: GenerationOptions | None = None) -> Generation:
        """The whole answer, from one ``POST /generate`` (retried on 429/5xx/refused connections)."""
        prompt = self.render_prompt(messages)
        params = self.parameters(options)
        client = self._inference_client()
        output = self._with_retries(
            lambda: client.text_generation(prompt, details=True, stream=False, model=self._route("generate"), **params)
        )
        text = getattr(output, "generated_text", None)
        if not isinstance(text, str):
            raise UpstreamError(f"TGI server {self.base_url} sent no generated_text (got {type(output).__name__})")
        details = getattr(output, "details", None)
        reason = getattr(details, "finish_reason", None)
        if reason == "stop_sequence":
            text = _strip_stop(text, params.get("stop") or [])
        generated = getattr(details, "generated_tokens", None)
        prefill = getattr(details, "prefill", None)
        prompt_tokens = len(prefill) if prefill else self._count_prompt(prompt)
        completion_tokens = generated if isinstance(generated, int) else self.count_tokens(text)
        return Generation(
            text=text,
            finish_reason=_finish(reason),
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
            model=self.model_name,
        )

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Iterator[GenerationDelta]:
        """The answer token by token, from ``POST /generate_stream``.

        Special tokens (end of sequence ...) are left out; a stop sequence
        that ends the answer is cut off, as :meth:`generate` does. The last
        delta carries the finish reason and the usage. Closing the iterator
        closes the HTTP response, so TGI stops generating.
        """
        prompt = self.render_prompt(messages)
        params = self.parameters(options)
        client = self._inference_client()
        events, response, first = self._with_retries(lambda: self._open_stream(client, prompt, params))
        trimmer = _StopTrimmer(params.get("stop") or [])
        details: Any = None
        try:
            event = first
            while event is not None:
                token = getattr(event, "token", None)
                if details is None and token is not None and not getattr(token, "special", False):
                    text = trimmer.feed(getattr(token, "text", "") or "")
                    if text:
                        yield GenerationDelta(text=text)
                if details is None and getattr(event, "details", None) is not None:
                    details = event.details  # the last event; reading on to the end keeps the connection reusable
                event = next(events, None)
        except RagkitError:
            raise
        except Exception as exc:
            if details is None:
                raise self._wrap(exc, streaming=True) from None
            logger.debug("TGI server %s: error after the final event, ignored: %s", self.base_url, exc)
        finally:
            _close(events, response)
        if details is None:
            raise UpstreamError(f"TGI server {self.base_url} ended the stream without its final message")
        reason = getattr(details, "finish_reason", None)
        rest = trimmer.finish(stopped=reason == "stop_sequence")
        if rest:
            yield GenerationDelta(text=rest)
        input_length = getattr(details, "input_length", None)
        generated = getattr(details, "generated_tokens", None)
        usage = Usage(
            prompt_tokens=input_length if isinstance(input_length, int) else self._count_prompt(prompt),
            completion_tokens=generated if isinstance(generated, int) else 0,
        )
        yield GenerationDelta(finish_reason=_finish(reason), usage=usage)

    def _open_stream(self, client: _TGIInferenceClient, prompt: str, params: dict[str, Any]) -> tuple[Any, Any, Any]:
        """Start a stream and wait for its first event (so that failures before it can be retried)."""
        client.streams.response = None
        events = client.text_generation(
            prompt, details=True, stream=True, model=self._route("generate_stream"), **params
        )
        response = client.streams.response
        try:
            first = next(iter(events), None)
        except BaseException:
            _close(events, response)
            raise
        return events, response, first

    # -- retries and errors -----------------------------------------------------------------

    def _with_retries(self, call: Any) -> Any:
        attempt = 0
        while True:
            try:
                return call()
            except Exception as exc:
                if attempt >= self.max_retries or not _retryable(exc):
                    raise self._wrap(exc) from None
                delay = self._delay(attempt, exc)
                logger.info("TGI server %s failed (%s); retry %d in %.2f s", self.base_url, exc, attempt + 1, delay)
                time.sleep(delay)
                attempt += 1

    def _delay(self, attempt: int, exc: BaseException) -> float:
        _, response = _status(exc)
        seconds = retry_after(response.headers) if response is not None else None
        if seconds is not None and seconds <= _MAX_RETRY_AFTER:
            return seconds
        return float(min(self.backoff * 2**attempt, _MAX_BACKOFF) * (1 - 0.25 * random.random()))

    @property
    def upstream(self) -> Upstream:
        """The server as failure messages name it (see :mod:`ragkit.upstream`)."""
        if self.api_key_env:
            hint = f"check the {self.api_key_env} environment variable"
        else:
            hint = "set option 'api_key_env' to the variable holding its key"
        return Upstream(
            name=f"TGI server {self.base_url}",
            timeout=self.timeout,
            retries=self.max_retries,
            key_hint=hint,
            not_found=" (is 'base_url' a TGI server?)",
        )

    def _wrap(self, exc: BaseException, streaming: bool = False) -> RagkitError:
        """The ragkit error for an exception raised by ``huggingface_hub`` or the HTTP library."""
        if isinstance(exc, RagkitError):
            return exc
        upstream = self.upstream
        if isinstance(exc, InferenceTimeoutError | httpx2.TimeoutException):
            return upstream.timeout_error(streaming=streaming, retried=False)  # timeouts are not retried
        if isinstance(exc, OfflineModeIsEnabled):
            return UnavailableError(f"{upstream.name}: {exc}")
        status, response = _status(exc)
        message = _server_message(exc, response)
        if status is not None:
            headers = response.headers if response is not None else None
            return upstream.status_error(status, message, retry_after=retry_after(headers), retried=not streaming)
        if isinstance(exc, ValidationError):
            return InputError(f"{upstream.name} rejected the request: {message}")
        if isinstance(exc, TextGenerationError):  # an error event inside the stream
            return upstream.stream_error(message)
        return upstream.error(exc, streaming=streaming, retried=not streaming)

    def server_info(self) -> dict[str, Any]:
        """The server's ``GET /info``: ``model_id``, ``max_total_tokens``, ``version`` ... (for health checks)."""
        self._inference_client()
        http = self._http
        assert http is not None
        headers = {"authorization": f"Bearer {key}"} if (key := self._api_key()) else {}
        try:
            response = http.get(self._route("info"), headers=headers)
            response.read()
            if response.status_code >= 400:
                raise HfHubHTTPError(f"GET /info answered {response.status_code}", response=response)
            info = response.json()
        except Exception as exc:
            raise self._wrap(exc) from None
        if not isinstance(info, dict):
            raise UpstreamError(f"TGI server {self.base_url} sent {type(info).__name__} for /info, not an object")
        return info

    # -- tokens -----------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text``: by the local ``tokenizer``, else the server's ``/tokenize``, else an estimate.

        The server counts as it would for a prompt, so its count may include a
        beginning-of-sequence token; the estimate is ``len(text) // 4 + 1``.
        """
        if self._tokenizer is not None:
            return len(self._tokenizer.encode(text, add_special_tokens=False).ids)
        counted = self._server_count(text)
        return counted if counted is not None else len(text) // 4 + 1

    def count_message_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the prompt the chat template makes of ``messages``, as TGI will see it."""
        return self._count_prompt(self.render_prompt(messages))

    def _count_prompt(self, prompt: str) -> int:
        if self._tokenizer is not None:
            return len(self._tokenizer.encode(prompt, add_special_tokens=True).ids)
        counted = self._server_count(prompt)
        return counted if counted is not None else len(prompt) // 4 + 1

    def _server_count(self, text: str) -> int | None:
        if not self._tokenize_route:
            return None
        with self._lock:
            if text in self._token_cache:
                self._token_cache.move_to_end(text)
                return self._token_cache[text]
        self._inference_client()
        http = self._http
        if http is None:
            return None
        headers = {"authorization": f"Bearer {key}"} if (key := self._api_key()) else {}
        try:
            response = http.post(
                self._route("tokenize"), json={"inputs": text}, headers=headers, timeout=min(self.timeout, 10.0)
            )
        except httpx2.HTTPError as exc:
            logger.debug("TGI /tokenize at %s failed (%s); estimating", self.base_url, exc)
            return None
        if response.status_code in (404, 405):
            logger.info("TGI server %s has no /tokenize; token counts are estimates", self.base_url)
            self._tokenize_route = False
            return None
        try:
            response.raise_for_status()
            tokens = response.json()
            if not isinstance(tokens, list):
                raise ValueError(f"expected a list of tokens, got {type(tokens).__name__}")
        except (httpx2.HTTPError, ValueError) as exc:
            logger.debug("TGI /tokenize at %s failed (%s); estimating", self.base_url, exc)
            return None
        with self._lock:
            self._token_cache[text] = len(tokens)
            while len(self._token_cache) > _TOKENIZE_CACHE:
                self._token_cache.popitem(last=False)
        return len(tokens)


class _TGIInferenceClient(InferenceClient):
    """``InferenceClient`` that sends its requests through the generator's own ``httpx2.Client``.

    Only the transport (``_inner_post``) is replaced: the library still
    builds the payload and parses answers, streams and TGI's errors.
    """

    def __init__(self, http: httpx2.Client, api_key: str | None, *, base_url: str) -> None:
        super().__init__(base_url=base_url)
        self._ragkit_http = http
        self._ragkit_key = api_key
        self.streams = threading.local()
        """``streams.response``: the response of the last stream this thread opened."""

    def _inner_post(self, request_parameters: Any, *, stream: bool = False) -> Any:
        # the library's headers, minus any Hugging Face token it picked up on its own
        headers = {k: v for k, v in request_parameters.headers.items() if k.lower() != "authorization"}
        if self._ragkit_key:
            headers["authorization"] = f"Bearer {self._ragkit_key}"
        request = self._ragkit_http.build_request(
            "POST",
            request_parameters.url,
            json=request_parameters.json,
            content=request_parameters.data,
            headers=headers,
        )
        try:
            response = self._ragkit_http.send(request, stream=True)
        except httpx2.TimeoutException as error:
            raise InferenceTimeoutError(f"Inference call timed out: {request_parameters.url}") from error
        keep_open = False
        try:
            if response.status_code >= 400:
                response.read()  # the error body, for the library's error parsing
            hf_raise_for_status(response)
            if stream:
                keep_open = True
                self.streams.response = response
                return _lines(response)
            return response.read()
        except httpx2.TimeoutException as error:
            raise InferenceTimeoutError(f"Inference call timed out: {request_parameters.url}") from error
        finally:
            if not keep_open:
                response.close()


def _lines(response: httpx2.Response) -> Iterator[str]:
    try:
        yield from response.iter_lines()
    finally:
        response.close()


def _close(events: Any, response: Any) -> None:
    close = getattr(events, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # pragma: no cover - closing never matters more than the answer
            logger.debug("closing a TGI stream failed", exc_info=True)
    if response is not None:
        response.close()


class _StopTrimmer:
    """Holds back streamed text that may be the start of a stop sequence, and cuts a final stop sequence off."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""

    def feed(self, text: str) -> str:
        if not self.stops:
            return text
        self.pending += text
        keep = max((_overlap(self.pending, stop) for stop in self.stops), default=0)
        cut = len(self.pending) - keep
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out

    def finish(self, stopped: bool) -> str:
        rest, self.pending = self.pending, ""
        return _strip_stop(rest, self.stops) if stopped else rest


def _overlap(text: str, stop: str) -> int:
    """Length of the longest end of ``text`` that is a start of ``stop``."""
    for size in range(min(len(text), len(stop)), 0, -1):
        if text.endswith(stop[:size]):
            return size
    return 0


def _strip_stop(text: str, stops: Sequence[str]) -> str:
    """``text`` without the stop sequence it ends with (TGI includes it; OpenAI-style answers do not)."""
    for stop in sorted((s for s in stops if s), key=len, reverse=True):
        if text.endswith(stop):
            return text[: -len(stop)]
    return text


def _finish(reason: str | None) -> FinishReason:
    return _FINISH_REASONS.get(reason or "", "stop")


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, OverloadedError):
        return True
    status, _ = _status(exc)
    if status is not None:
        return status in _RETRY_STATUSES
    # a refused or reset connection (TGI restarting, still loading its model); not timeouts
    return isinstance(exc, httpx2.ConnectError | httpx2.RemoteProtocolError) and not isinstance(
        exc, httpx2.TimeoutException
    )


def _status(exc: BaseException) -> tuple[int | None, httpx2.Response | None]:
    """The HTTP status (and response) behind an error, looking through the library's re-raising."""
    for candidate in (exc, exc.__cause__):
        if candidate is None:
            continue
        try:
            response = candidate.__dict__.get("response")
        except AttributeError:  # pragma: no cover
            response = None
        code = getattr(response, "status_code", None)
        if isinstance(code, int):
            return code, response
    return None, None


def _server_message(exc: BaseException, response: httpx2.Response | None) -> str:
    """TGI's own error message (``{"error": ..., "error_type": ...}``), else the response text, else the exception."""
    if isinstance(exc, TextGenerationError) and not isinstance(exc, HfHubHTTPError) and str(exc):
        return str(exc)
    if response is None:
        return str(exc)
    try:
        body: Any = response.json()
    except Exception:
        try:
            body = response.text
        except Exception:  # pragma: no cover - body not read
            body = None
    return server_message(body, response.reason_phrase or f"HTTP {response.status_code}")


def _message_dict(message: Message) -> dict[str, Any]:
    if isinstance(message, dict):  # tolerate wire-form dicts
        return {"content": "", **message}
    data = message.to_dict()
    data.setdefault("content", "")
    return data


def _compile_template(source: str) -> jinja2.Template:
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    environment.globals["raise_exception"] = _raise_exception
    try:
        return environment.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"generator option 'chat_template': not a valid Jinja template: {exc}") from None


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _load_tokenizer(path: Path) -> tuple[Any, str | None, dict[str, Any]]:
    """The tokenizer at ``path``, and the chat template and end token of its folder's ``tokenizer_config.json``."""
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(f"generator option 'tokenizer': no tokenizer.json at {path}")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise MissingDependencyError("exact token counts from a local tokenizer", "tokenizers") from None
    try:
        tokenizer = Tokenizer.from_file(str(file))
    except Exception as exc:
        raise ConfigError(f"generator option 'tokenizer': cannot read {file}: {exc}") from None
    template: str | None = None
    variables: dict[str, Any] = {}
    config_file = file.parent / "tokenizer_config.json"
    if config_file.is_file():
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"generator option 'tokenizer': cannot read {config_file}: {exc}") from None
        raw = config.get("chat_template")
        if isinstance(raw, list):  # named templates: take the default one
            raw = next((t.get("template") for t in raw if isinstance(t, dict) and t.get("name") == "default"), None)
        if isinstance(raw, str) and raw.strip():
            template = raw
        eos = config.get("eos_token")
        if isinstance(eos, dict):
            eos = eos.get("content")
        if isinstance(eos, str):
            variables["eos_token"] = eos
    return tokenizer, template, variables
