"""Pure decision functions: device, dtype and context window.

They take facts (is CUDA available? how many positions does the model
have?) as arguments instead of probing the machine, so every branch — the
GPU ones included — is tested on any machine.
"""

from __future__ import annotations

import re

from ragkit.errors import ConfigError, UnavailableError

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
"""Device names the generator accepts (``None`` means ``auto`` too)."""

DTYPES = ("float32", "float16", "bfloat16")
"""The weight dtypes a model can run in, by their torch names."""

_DTYPE_ALIASES = {
    "auto": "auto",
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}

AUTO_CONTEXT_CAP = 32768
"""Largest context window chosen automatically from a model's config.

Models that claim 128k positions would otherwise let a prompt grow until the
KV cache fills memory; ask for more with the ``context_window`` option.
"""

FALLBACK_CONTEXT = 2048
"""Context window when neither the model config nor the tokenizer states one."""

_NO_LIMIT = 1_000_000
"""Tokenizers say ``model_max_length = 1e30`` when they know no limit."""


def validate_device(device: str | None) -> str:
    """The device option in canonical form (``None`` → ``auto``); :class:`ConfigError` if invalid."""
    if device is None:
        return "auto"
    if not isinstance(device, str) or not DEVICE_PATTERN.match(device):
        raise ConfigError(f"generator option 'device': {device!r} is not one of auto, cpu, cuda, cuda:N, mps")
    return device


def validate_dtype(dtype: str | None) -> str:
    """The dtype option in canonical form (``auto``, ``float32``, ``float16`` or ``bfloat16``).

    Accepts the short names ``fp32``, ``fp16``, ``half`` and ``bf16``; ``None`` means ``auto``.
    """
    if dtype is None:
        return "auto"
    canonical = _DTYPE_ALIASES.get(dtype) if isinstance(dtype, str) else None
    if canonical is None:
        raise ConfigError(
            f"generator option 'dtype': {dtype!r} is not one of auto, float32 (fp32), float16 (fp16), bfloat16 (bf16)"
        )
    return canonical


def check_device_dtype(device: str | None, dtype: str | None) -> None:
    """Refuse combinations that can never work, at config time: float16 on an explicit CPU."""
    if validate_device(device) == "cpu" and validate_dtype(dtype) == "float16":
        raise ConfigError("generator option 'dtype': float16 is not supported on the CPU; use bfloat16 or float32")


def choose_device(
    requested: str | None,
    cuda_available: bool,
    cuda_device_count: int | None = None,
    mps_available: bool = False,
) -> str:
    """The torch device to run on.

    ``None`` / ``"auto"`` picks CUDA when it is available, else the CPU
    (Apple's MPS only when asked for by name). An explicit choice is kept,
    but asking for a GPU that is not there raises
    :class:`~ragkit.errors.UnavailableError` instead of silently running on
    the CPU. ``cuda_device_count`` (when known) checks ``cuda:N``'s index.
    """
    requested = validate_device(requested)
    if requested == "auto":
        return "cuda" if cuda_available else "cpu"
    if requested.startswith("cuda"):
        if not cuda_available:
            raise UnavailableError(f"generator option 'device': {requested!r} was asked for but CUDA is not available")
        index = int(requested.partition(":")[2] or 0)
        if cuda_device_count is not None and index >= cuda_device_count:
            raise UnavailableError(
                f"generator option 'device': {requested!r} was asked for but there are {cuda_device_count} CUDA devices"
            )
    if requested == "mps" and not mps_available:
        raise UnavailableError("generator option 'device': 'mps' was asked for but MPS is not available")
    return requested


def choose_dtype(requested: str | None, device: str) -> str:
    """The weight dtype (``float32``, ``float16`` or ``bfloat16``) for ``device``.

    ``auto``: float16 on CUDA, float32 elsewhere (the CPU and MPS). An
    explicit choice is kept, except float16 on a CPU (slow, and some ops
    lack half kernels there), which falls back to float32: that only happens
    when ``device`` was ``auto`` and resolved to the CPU, as an explicit
    ``cpu`` + ``float16`` is refused at config time.
    """
    canonical = validate_dtype(requested)
    kind = device.split(":", 1)[0]
    if canonical == "auto":
        return "float16" if kind == "cuda" else "float32"
    if canonical == "float16" and kind == "cpu":
        return "float32"
    return canonical


def choose_context_window(
    requested: int | None,
    max_position_embeddings: int | None,
    tokenizer_max_length: int | None = None,
) -> int:
    """How many tokens prompt plus answer may hold.

    ``requested`` (the ``context_window`` option) is kept if the model has
    that many positions, else :class:`ConfigError`. ``None`` takes the
    model's ``max_position_embeddings``, capped at :data:`AUTO_CONTEXT_CAP`;
    without one, the tokenizer's ``model_max_length`` when it states a real
    limit, else :data:`FALLBACK_CONTEXT`.
    """
    positions = max_position_embeddings if max_position_embeddings and max_position_embeddings > 0 else None
    if positions is None and tokenizer_max_length and 0 < tokenizer_max_length < _NO_LIMIT:
        positions = tokenizer_max_length
    if requested is not None:
        if positions is not None and requested > positions:
            raise ConfigError(
                f"generator option 'context_window': {requested} exceeds the model's {positions} positions"
            )
        return requested
    if positions is None:
        return FALLBACK_CONTEXT
    return min(positions, AUTO_CONTEXT_CAP)


__all__ = [
    "AUTO_CONTEXT_CAP",
    "DEVICE_PATTERN",
    "DTYPES",
    "FALLBACK_CONTEXT",
    "check_device_dtype",
    "choose_context_window",
    "choose_device",
    "choose_dtype",
    "validate_device",
    "validate_dtype",
]
