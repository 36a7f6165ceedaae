"""Pure decision functions: device, precision, model names.

(:func:`default_prefixes`, the instruction prefix choice, lives in the core,
:mod:`ragkit.embedders.prefixes`, so every embedder connector shares it.)

They take facts (is CUDA available? does the CPU do bf16 natively?) as
arguments instead of probing the machine, so every branch — the GPU ones
included — is tested on any machine.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable

from ragkit.embedders.prefixes import default_prefixes
from ragkit.errors import ConfigError, UnavailableError

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")

_HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
# CPU flags that mean bf16 matrix arithmetic runs natively (oneDNN uses them)
_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def validate_device(device: str, where: str = "embedder") -> str:
    """Return ``device`` if it is a device name ragkit accepts, else raise :class:`ConfigError` naming ``where``."""
    if not isinstance(device, str) or not DEVICE_PATTERN.match(device):
        raise ConfigError(f"{where} option 'device': {device!r} is not one of auto, cpu, cuda, cuda:N, mps")
    return device


def validate_precision(precision: str, where: str = "embedder") -> str:
    """Return ``precision`` if valid, else raise :class:`ConfigError` naming ``where``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"{where} option 'precision': {precision!r} is not one of {', '.join(PRECISIONS)}")
    return precision


def choose_device(requested: str, cuda_available: bool, mps_available: bool, where: str = "embedder") -> str:
    """The torch device to run on.

    ``"auto"`` picks CUDA, then Apple's MPS, then the CPU. An explicit choice
    is kept, but asking for a GPU that is not there raises
    :class:`~ragkit.errors.UnavailableError` instead of silently running on
    the CPU.
    """
    validate_device(requested, where)
    if requested == "auto":
        if cuda_available:
            return "cuda"
        if mps_available:
            return "mps"
        return "cpu"
    if requested.startswith("cuda") and not cuda_available:
        raise UnavailableError(f"{where} option 'device': {requested!r} was asked for but CUDA is not available")
    if requested == "mps" and not mps_available:
        raise UnavailableError(f"{where} option 'device': 'mps' was asked for but MPS is not available")
    return requested


def choose_batch_size(requested: int | None, device: str, cuda_batch_size: int | None = None) -> int:
    """Texts per forward pass: ``requested``, else on a CUDA GPU the one its memory allows, else 32.

    32 was the fastest batch on two CPU threads in bf16 (measured on
    squad-dev paragraphs: 64 was ~9% and 256 ~30% slower per CPU second);
    a GPU wants larger batches to stay busy: ``cuda_batch_size`` is
    :func:`batch_size_for_gpu_memory`'s answer for the loaded model (128 when
    it could not be measured).
    """
    if requested is not None:
        return requested
    if device.startswith("cuda"):
        return cuda_batch_size or 128
    return 32


GPU_BATCH_MIN = 16
GPU_BATCH_MAX = 1024
"""Past about a thousand texts a pass an encoder keeps a GPU busy: larger batches only cost memory."""
_ACTIVATION_WIDTHS = 16
"""Hidden-size-wide values alive per token at the peak of one encoder layer (Q, K, V, output, the 4x FFN, copies)."""


def batch_size_for_gpu_memory(
    free_bytes: int,
    model_bytes: int,
    max_seq_length: int,
    hidden_size: int,
    bytes_per_value: int,
    fraction: float = 0.5,
) -> int:
    """Texts per forward pass that fit the GPU memory left after loading the model.

    ``free_bytes`` is ``torch.cuda.mem_get_info()``'s free memory with the
    model already loaded; ``model_bytes`` its weights (kept back once more for
    cuBLAS workspaces and the allocator's fragmentation). A text costs, at
    worst (padded to ``max_seq_length`` tokens), ``_ACTIVATION_WIDTHS`` values
    of ``hidden_size`` per token plus one layer's attention scores
    (``hidden_size / 64`` heads of ``max_seq_length²``). Only ``fraction`` of
    what is left is planned for (other processes, the store's GPU index).
    The answer is a power of two between :data:`GPU_BATCH_MIN` and
    :data:`GPU_BATCH_MAX`.
    """
    for name, value in (
        ("free_bytes", free_bytes),
        ("max_seq_length", max_seq_length),
        ("hidden_size", hidden_size),
        ("bytes_per_value", bytes_per_value),
    ):
        if value < 1:
            raise ValueError(f"{name} must be positive, got {value}")
    heads = max(1, hidden_size // 64)
    per_text = max_seq_length * bytes_per_value * (_ACTIVATION_WIDTHS * hidden_size + 2 * heads * max_seq_length)
    usable = free_bytes * fraction - model_bytes
    fits = int(usable // per_text) if usable > 0 else 0
    if fits < GPU_BATCH_MIN:
        return GPU_BATCH_MIN
    return min(GPU_BATCH_MAX, 1 << (fits.bit_length() - 1))


def choose_precision(requested: str, device: str, cpu_supports_bf16: bool) -> str:
    """The weight dtype (``fp32``, ``fp16`` or ``bf16``) for ``device``.

    ``"auto"``: fp16 on CUDA; bf16 on a CPU that does bf16 natively (AMX or
    AVX512-BF16: measured 2.3-2.8x faster than fp32, vectors at cosine
    0.99995 to fp32's, the same retrieval quality); fp32 elsewhere (MPS, older
    CPUs, where bf16 is emulated and slower). An explicit choice is kept,
    except fp16 on a CPU (slow and partly unsupported there), which falls
    back to fp32.
    """
    validate_precision(requested)
    kind = device.split(":", 1)[0]
    if requested == "auto":
        if kind == "cuda":
            return "fp16"
        if kind == "cpu" and cpu_supports_bf16:
            return "bf16"
        return "fp32"
    if requested == "fp16" and kind == "cpu":
        return "fp32"
    return requested


def cpu_supports_bf16(flags: Iterable[str]) -> bool:
    """Whether CPU flags (as in ``/proc/cpuinfo``) include native bf16 arithmetic."""
    return not _BF16_FLAGS.isdisjoint(flags)


def read_cpu_flags() -> set[str]:
    """The CPU feature flags of this machine (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    if not sys.platform.startswith("linux"):
        return set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def looks_like_hub_name(name: str) -> bool:
    """Whether ``name`` could be a Hugging Face hub id (``org/model`` or ``model``)."""
    return bool(_HUB_NAME.fullmatch(name)) and ".." not in name


__all__ = [
    "DEVICE_PATTERN",
    "PRECISIONS",
    "batch_size_for_gpu_memory",
    "choose_batch_size",
    "choose_device",
    "choose_precision",
    "cpu_supports_bf16",
    "default_prefixes",
    "looks_like_hub_name",
    "read_cpu_flags",
    "validate_device",
    "validate_precision",
]
