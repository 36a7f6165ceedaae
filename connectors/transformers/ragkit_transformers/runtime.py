"""The torch side: loading models once per process, and one streamed ``model.generate`` call.

This module imports torch and transformers at the top; the generator
imports it only when a model is first used, so building the component
(and validating its config) stays fast.

Threads, per :class:`GenerationJob`:

* the caller's thread iterates :meth:`GenerationJob.pieces` (text from a
  ``TextIteratorStreamer``) and may :meth:`~GenerationJob.cancel` at any time;
* one worker thread takes the model's ``generate_lock`` — one ``generate``
  per model at a time — and runs ``model.generate``. A cancel is seen while
  it still waits for the lock (it polls) and, once generating, by a
  stopping criterion checked after every token, so the worker ends within
  a token of the cancel (after the prompt's forward pass, if that is under way).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from ragkit.errors import ConfigError, InputError, UnavailableError
from ragkit_transformers.converted import converted_folder, save_converted
from ragkit_transformers.selection import choose_context_window, choose_device, choose_dtype
from ragkit_transformers.source import ModelSource

logger = logging.getLogger(__name__)

THREAD_NAME_PREFIX = "ragkit-transformers-generate"
"""Worker threads running ``model.generate`` are named ``<prefix>-<n>``."""

_LOCK_POLL_S = 0.05
_thread_numbers = itertools.count(1)


@dataclass(eq=False)
class LoadedModel:
    """A model and its tokenizer loaded in this process.

    Shared by every generator with the same (model, gguf_file, device, dtype, quantize).
    """

    source: ModelSource
    model: Any
    tokenizer: Any
    device: str
    dtype: str
    quantize: str
    """``int8`` (dynamic int8 quantisation of the linear layers) or ``none``."""
    max_positions: int | None
    """The model config's ``max_position_embeddings`` (``None`` if it states none)."""
    tokenizer_max_length: int | None
    eos_token_ids: frozenset[int]
    pad_token_id: int | None
    has_chat_template: bool
    load_seconds: float
    generate_lock: threading.Lock = field(default_factory=threading.Lock)
    """Held around ``model.generate``: one generation per model at a time."""
    tokenizer_lock: threading.Lock = field(default_factory=threading.Lock)
    """Held around encoding: a fast tokenizer's settings are shared mutable state."""

    def context_window(self, requested: int | None) -> int:
        """The context window for the ``context_window`` option ``requested``."""
        return choose_context_window(requested, self.max_positions, self.tokenizer_max_length)

    def encode_text(self, text: str) -> list[int]:
        """Token ids of ``text``, without special tokens."""
        with self.tokenizer_lock:
            ids = self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        return list(ids)

    @property
    def template_takes_tools(self) -> bool:
        """Whether the chat template renders a ``tools`` list (Qwen2.5's does: Hermes-style ``<tool_call>``)."""
        template = getattr(self.tokenizer, "chat_template", None) if self.has_chat_template else None
        return isinstance(template, str) and "tools" in template and "tool_call" in template

    def encode_messages(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> list[int]:
        """Token ids of the prompt: the chat template applied, with the assistant's turn opened.

        ``tools`` (OpenAI function definitions) go to the template, which
        writes them into the system turn (only when
        :attr:`template_takes_tools`). A tokenizer without a chat template
        gets ``role: content`` lines and a final ``assistant:``.
        """
        if not self.has_chat_template:
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
            with self.tokenizer_lock:
                return list(self.tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])
        extra = {"tools": tools} if tools else {}
        try:
            with self.tokenizer_lock:
                encoded = self.tokenizer.apply_chat_template(
                    messages, add_generation_prompt=True, tokenize=True, return_dict=True, **extra
                )
        except Exception as exc:  # jinja2 errors: a template that refuses these roles or this order
            raise InputError(f"the chat template of {self.source.name} refused the messages: {exc}") from None
        ids = encoded["input_ids"]
        if ids and isinstance(ids[0], list):  # some versions batch a single conversation
            ids = ids[0]
        return [int(i) for i in ids]

    def decode(self, ids: list[int]) -> str:
        """Text of token ids, special tokens left out."""
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))


_MODELS: dict[tuple[str, ...], LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


def loaded_models() -> dict[tuple[str, ...], LoadedModel]:
    """A snapshot of the models loaded in this process, by (folder, gguf_file, device, dtype[, quantize])."""
    with _MODELS_LOCK:
        return dict(_MODELS)


def load_model(
    source: ModelSource,
    device: str | None,
    dtype: str | None,
    threads: int | None = None,
    quantize: str | None = None,
    cpu_quantize: str = "none",
) -> LoadedModel:
    """The loaded model for ``source`` on the chosen device and dtype, loaded once per process.

    ``quantize``: ``int8`` (CPU only), ``none``, or ``None`` for
    ``cpu_quantize`` on the CPU and ``none`` elsewhere. Two threads asking
    at once for the same model load it once: the second waits for the first.
    """
    mps = getattr(torch.backends, "mps", None)
    chosen_device = choose_device(
        device,
        cuda_available=torch.cuda.is_available(),
        cuda_device_count=torch.cuda.device_count() if torch.cuda.is_available() else 0,
        mps_available=bool(mps is not None and mps.is_available()),
    )
    chosen_dtype = choose_dtype(dtype, chosen_device)
    if dtype in ("float16", "fp16", "half") and chosen_dtype != "float16":
        logger.warning("dtype float16 is not used on %s; running %s instead", chosen_device, chosen_dtype)
    chosen_quantize = choose_quantize(quantize, chosen_device, cpu_quantize)
    if chosen_quantize == "int8" and chosen_dtype != "float32":
        raise ConfigError(f"generator option 'quantize': int8 needs dtype float32, not {chosen_dtype}")
    key: tuple[str, ...] = (source.directory, source.gguf_file or "", chosen_device, chosen_dtype)
    if chosen_quantize != "none":
        key = (*key, chosen_quantize)
    with _MODELS_LOCK:
        loaded = _MODELS.get(key)
        if loaded is None:
            if threads is not None:
                torch.set_num_threads(threads)
            loaded = _MODELS[key] = _load(source, chosen_device, chosen_dtype, chosen_quantize)
        return loaded


def choose_quantize(requested: str | None, device: str, cpu_default: str) -> str:
    """The quantisation to run: ``requested``, or ``cpu_default`` on the CPU and ``none`` elsewhere (``None``).

    int8 dynamic quantisation runs on the CPU only: asking for it elsewhere is a :class:`ConfigError`.
    """
    if requested is None:
        return cpu_default if device == "cpu" else "none"
    if requested == "int8" and device != "cpu":
        raise ConfigError(f"generator option 'quantize': int8 runs on the CPU only, not on {device}; use 'none'")
    return requested


def quantize_int8(model: Any) -> Any:
    """``model`` with its ``nn.Linear`` layers replaced by dynamically quantised int8 ones (in place).

    Weights become int8 with one scale per output channel; activations are
    quantised on the fly. Per channel, not per tensor: with one scale per
    tensor the packaged Qwen2.5-Coder-0.5B answered "Which NFL team won Super
    Bowl 50?" with a bare "[2]", with one per channel "The Denver Broncos won
    the game" like the float32 model. About 4x less weight memory traffic:
    on a CPU, several times faster decoding than the de-quantised fp32 GGUF
    weights.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
        return torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            model, {torch.nn.Linear: qconfig}, dtype=torch.qint8, inplace=True
        )


def _dtype_keyword() -> str:
    """``dtype`` from transformers 4.56 on, ``torch_dtype`` before."""
    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def _load(source: ModelSource, device: str, dtype: str, quantize: str = "none") -> LoadedModel:
    started = time.perf_counter()
    where = source.directory if source.gguf_file is None else f"{source.directory}/{source.gguf_file}"
    kwargs: dict[str, Any] = {"local_files_only": True}
    load_from = source.directory
    gguf = Path(source.directory) / source.gguf_file if source.gguf_file is not None else None
    converted = converted_folder(gguf, transformers.__version__, source.sha256) if gguf is not None else None
    if converted is not None:
        load_from = str(converted)  # the GGUF de-quantised by an earlier load (see converted.py)
    elif source.gguf_file is not None:
        kwargs["gguf_file"] = source.gguf_file
    try:
        with _quiet_progress_bars():
            tokenizer = AutoTokenizer.from_pretrained(load_from, **kwargs)
            model: Any = AutoModelForCausalLM.from_pretrained(
                load_from, **kwargs, **{_dtype_keyword(): getattr(torch, dtype)}
            )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"generator option 'model': {where} could not be loaded as a causal LM: {exc}") from None
    except Exception as exc:  # out of memory, a broken file ...
        raise UnavailableError(f"cannot load model {source.name} from {where}: {exc}") from None
    if gguf is not None and converted is None and dtype == "float32":
        save_converted(gguf, transformers.__version__, model, tokenizer, source.sha256)
    try:
        model = model.to(device)
    except Exception as exc:  # e.g. out of GPU memory
        raise UnavailableError(f"cannot move model {source.name} to {device}: {exc}") from None
    model.eval()
    if quantize == "int8":
        model = quantize_int8(model)

    config = model.config
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    max_positions = getattr(text_config, "max_position_embeddings", None)
    generation_config = model.generation_config
    eos = generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    eos_ids = frozenset(int(i) for i in (eos if isinstance(eos, list | tuple) else [eos]) if i is not None)
    pad = generation_config.pad_token_id
    if pad is None:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids, default=None)
    tokenizer_max = getattr(tokenizer, "model_max_length", None)
    seconds = time.perf_counter() - started
    logger.info(
        "loaded generator model %s on %s (%s, quantize %s) in %.1f s", source.name, device, dtype, quantize, seconds
    )
    return LoadedModel(
        source=source,
        model=model,
        tokenizer=tokenizer,
        device=device,
        dtype=dtype,
        quantize=quantize,
        max_positions=int(max_positions) if isinstance(max_positions, int) else None,
        tokenizer_max_length=int(tokenizer_max) if isinstance(tokenizer_max, int | float) else None,
        eos_token_ids=eos_ids,
        pad_token_id=int(pad) if pad is not None else None,
        has_chat_template=bool(getattr(tokenizer, "chat_template", None)),
        load_seconds=seconds,
    )


@contextlib.contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    """Silence the "Loading weights" and "de-quantizing GGUF tensors" progress bars while a model loads.

    The GGUF one is a plain ``tqdm`` in ``transformers.modeling_gguf_pytorch_utils``
    that transformers' own switch does not reach; it is swapped for a silent
    one for the duration of the load (under the load lock).
    """
    from transformers.utils import logging as hf_logging

    restore_bars = hf_logging.is_progress_bar_enabled()
    if restore_bars:
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    gguf_utils: Any = None
    original_tqdm: Any = None
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils

        original_tqdm = getattr(gguf_utils, "tqdm", None)
        if original_tqdm is not None:
            gguf_utils.tqdm = functools.partial(original_tqdm, disable=True)
    except ImportError:  # pragma: no cover - a transformers without GGUF support
        pass
    try:
        yield
    finally:
        if original_tqdm is not None:
            gguf_utils.tqdm = original_tqdm
        if restore_bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


class _CancelCriterion(StoppingCriteria):
    """Stops generation once ``event`` is set (checked after every token)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event
        self.fired = False

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        stop = self.event.is_set()
        self.fired = self.fired or stop
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class _StopStringCriterion(StoppingCriteria):
    """Stops generation once the decoded end of the answer contains a stop string.

    Decodes only the last few tokens (enough for the longest stop string
    even at one byte per token), so each check costs microseconds.
    """

    def __init__(self, loaded: LoadedModel, prompt_length: int, stops: tuple[str, ...]) -> None:
        self.loaded = loaded
        self.prompt_length = prompt_length
        self.stops = stops
        self.window = 4 * max(len(s) for s in stops) + 4

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        start = max(self.prompt_length, input_ids.shape[1] - self.window)
        tail = self.loaded.decode(input_ids[0, start:].tolist())
        stop = any(s in tail for s in self.stops)
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class _Streamer(TextIteratorStreamer):
    """A ``TextIteratorStreamer`` that remembers whether it was ended."""

    ended = False

    def end(self) -> None:
        """Flush the last text and signal the end (once)."""
        if not self.ended:
            self.ended = True
            super().end()  # type: ignore[no-untyped-call]


@dataclass(slots=True)
class SamplingSettings:
    """What one ``generate`` call is asked for (already validated)."""

    max_new_tokens: int
    temperature: float
    top_p: float | None = None
    seed: int | None = None
    stops: tuple[str, ...] = ()
    threads: int | None = None


class GenerationJob:
    """One ``model.generate`` call streamed from a worker thread; cancellable.

    Use: :meth:`start`, iterate :meth:`pieces`, then :meth:`join` (also
    after :meth:`cancel`). :attr:`generated_ids` holds the new token ids once
    the worker has finished.
    """

    def __init__(self, loaded: LoadedModel, prompt_ids: list[int], settings: SamplingSettings) -> None:
        self.loaded = loaded
        self.prompt_ids = prompt_ids
        self.settings = settings
        self.cancel_event = threading.Event()
        self.cancel_criterion = _CancelCriterion(self.cancel_event)
        self.streamer = _Streamer(loaded.tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.generated_ids: list[int] = []
        self.error: BaseException | None = None
        self.started_generating = False
        self.thread = threading.Thread(target=self._work, name=f"{THREAD_NAME_PREFIX}-{next(_thread_numbers)}")
        self.thread.daemon = True

    def start(self) -> None:
        """Start the worker thread."""
        self.thread.start()

    def pieces(self) -> Iterator[str]:
        """Non-empty text pieces as the model produces them (blocks until each arrives)."""
        for piece in self.streamer:
            if piece:
                yield piece

    def cancel(self) -> None:
        """Ask the worker to stop: before it starts generating, or after the current token."""
        self.cancel_event.set()

    def join(self) -> None:
        """Wait for the worker thread to end."""
        if self.thread.ident is not None:  # started
            self.thread.join()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self.cancel_event.is_set()

    @property
    def hit_eos(self) -> bool:
        """Whether the answer ended with an end-of-sequence token."""
        return bool(self.generated_ids) and self.generated_ids[-1] in self.loaded.eos_token_ids

    def _work(self) -> None:
        lock = self.loaded.generate_lock
        try:
            while not lock.acquire(timeout=_LOCK_POLL_S):
                if self.cancel_event.is_set():
                    return
            try:
                if self.cancel_event.is_set():
                    return
                self.started_generating = True
                self._generate()
            finally:
                lock.release()
        except BaseException as exc:  # handed to the consumer by the generator
            self.error = exc
        finally:
            self.streamer.end()  # unblocks the consumer when generate did not end the stream itself

    def _generate(self) -> None:
        loaded, settings = self.loaded, self.settings
        if settings.threads is not None and torch.get_num_threads() != settings.threads:
            torch.set_num_threads(settings.threads)
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        config = copy.deepcopy(loaded.model.generation_config)
        config.max_new_tokens = settings.max_new_tokens
        config.max_length = None
        config.num_beams = 1
        if settings.temperature > 0:
            config.do_sample = True
            config.temperature = settings.temperature
            if settings.top_p is not None:
                config.top_p = settings.top_p
        else:
            config.do_sample = False
            config.temperature = None
            config.top_p = None
            config.top_k = None
        if loaded.pad_token_id is not None:
            config.pad_token_id = loaded.pad_token_id
        criteria: list[Any] = [self.cancel_criterion]
        if settings.stops:
            criteria.append(_StopStringCriterion(loaded, len(self.prompt_ids), settings.stops))
        input_ids = torch.tensor([self.prompt_ids], dtype=torch.long, device=loaded.device)
        attention_mask = torch.ones_like(input_ids)
        with torch.inference_mode():
            output = loaded.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                generation_config=config,
                stopping_criteria=StoppingCriteriaList(criteria),
                streamer=self.streamer,
            )
        sequences = output.sequences if hasattr(output, "sequences") else output
        self.generated_ids = [int(i) for i in sequences[0, len(self.prompt_ids) :].tolist()]


__all__ = [
    "THREAD_NAME_PREFIX",
    "GenerationJob",
    "LoadedModel",
    "SamplingSettings",
    "choose_quantize",
    "load_model",
    "loaded_models",
]
