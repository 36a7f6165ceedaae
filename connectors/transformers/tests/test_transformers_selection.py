"""The pure decisions (device, dtype, context window), every branch, on any machine.

CUDA and MPS availability are arguments here, so the choices a GPU machine
makes are tested without one.
"""

from __future__ import annotations

import itertools

import pytest
from ragkit_transformers.selection import (
    AUTO_CONTEXT_CAP,
    FALLBACK_CONTEXT,
    check_device_dtype,
    choose_context_window,
    choose_device,
    choose_dtype,
    validate_device,
    validate_dtype,
)

from ragkit.errors import ConfigError, UnavailableError

BOOLS = (False, True)


@pytest.mark.parametrize(("cuda", "mps"), list(itertools.product(BOOLS, BOOLS)))
@pytest.mark.parametrize("requested", [None, "auto"])
def test_auto_device_is_cuda_when_available_else_cpu(requested, cuda, mps):
    expected = "cuda" if cuda else "cpu"  # MPS only when asked for by name
    assert choose_device(requested, cuda_available=cuda, mps_available=mps) == expected


@pytest.mark.parametrize(("cuda", "mps"), list(itertools.product(BOOLS, BOOLS)))
@pytest.mark.parametrize("requested", ["cpu", "cuda", "cuda:0", "cuda:1", "mps"])
def test_explicit_device_is_kept_or_refused(requested, cuda, mps):
    available = {"cpu": True, "cuda": cuda, "cuda:0": cuda, "cuda:1": cuda, "mps": mps}[requested]
    if available:
        assert choose_device(requested, cuda_available=cuda, mps_available=mps) == requested
    else:
        with pytest.raises(UnavailableError, match="not available"):
            choose_device(requested, cuda_available=cuda, mps_available=mps)


@pytest.mark.parametrize(
    ("requested", "count", "ok"),
    [("cuda", 1, True), ("cuda:0", 1, True), ("cuda:1", 1, False), ("cuda:1", 2, True), ("cuda:3", 2, False)],
)
def test_cuda_index_is_checked_against_the_device_count(requested, count, ok):
    if ok:
        assert choose_device(requested, cuda_available=True, cuda_device_count=count) == requested
    else:
        with pytest.raises(UnavailableError, match=f"there are {count} CUDA devices"):
            choose_device(requested, cuda_available=True, cuda_device_count=count)


@pytest.mark.parametrize("bad", ["gpu", "CUDA", "cuda:", "cuda:x", "tpu", "", "cpu ", 0, True])
def test_invalid_device_names(bad):
    with pytest.raises(ConfigError, match="'device'"):
        validate_device(bad)
    with pytest.raises(ConfigError, match="'device'"):
        choose_device(bad, True)


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        (None, "auto"),
        ("auto", "auto"),
        ("float32", "float32"),
        ("fp32", "float32"),
        ("float16", "float16"),
        ("fp16", "float16"),
        ("half", "float16"),
        ("bfloat16", "bfloat16"),
        ("bf16", "bfloat16"),
    ],
)
def test_dtype_names(given, canonical):
    assert validate_dtype(given) == canonical


@pytest.mark.parametrize("bad", ["float64", "int8", "FP16", "", 16, True])
def test_invalid_dtype_names(bad):
    with pytest.raises(ConfigError, match="'dtype'"):
        validate_dtype(bad)


# every (requested dtype, device) pair -> the dtype the model runs in
DTYPE_TABLE = {
    "auto": {"cuda": "float16", "cuda:1": "float16", "cpu": "float32", "mps": "float32"},
    "float32": {"cuda": "float32", "cuda:1": "float32", "cpu": "float32", "mps": "float32"},
    "float16": {"cuda": "float16", "cuda:1": "float16", "cpu": "float32", "mps": "float16"},
    "bfloat16": {"cuda": "bfloat16", "cuda:1": "bfloat16", "cpu": "bfloat16", "mps": "bfloat16"},
}


@pytest.mark.parametrize(
    ("requested", "device"), [(r, d) for r in DTYPE_TABLE for d in ("cuda", "cuda:1", "cpu", "mps")]
)
def test_dtype_choice_for_every_device(requested, device):
    assert choose_dtype(requested, device) == DTYPE_TABLE[requested][device]


@pytest.mark.parametrize("cuda", BOOLS)
def test_auto_device_and_dtype_together(cuda):
    """The whole auto path: float16 on the GPU a CUDA machine picks, float32 on a CPU-only one."""
    device = choose_device(None, cuda_available=cuda)
    assert (device, choose_dtype(None, device)) == (("cuda", "float16") if cuda else ("cpu", "float32"))
    # a config written for a GPU (float16) still runs where there is none
    assert choose_dtype("fp16", device) == ("float16" if cuda else "float32")


def test_float16_on_an_explicit_cpu_is_refused_at_config_time():
    with pytest.raises(ConfigError, match="float16 is not supported on the CPU"):
        check_device_dtype("cpu", "fp16")
    for device, dtype in [("cpu", "bf16"), ("cpu", None), ("auto", "float16"), (None, "float16"), ("cuda", "fp16")]:
        check_device_dtype(device, dtype)


@pytest.mark.parametrize(
    ("requested", "positions", "tokenizer_max", "expected"),
    [
        (None, 8192, None, 8192),  # SmolLM2-135M
        (None, 2048, 10**30, 2048),
        (None, 131072, None, AUTO_CONTEXT_CAP),  # capped
        (None, None, 4096, 4096),  # from the tokenizer
        (None, None, 10**30, FALLBACK_CONTEXT),  # the tokenizer's "no limit"
        (None, None, None, FALLBACK_CONTEXT),
        (None, 0, None, FALLBACK_CONTEXT),
        (4096, 8192, None, 4096),  # explicit, fits
        (8192, 8192, None, 8192),
        (65536, 131072, None, 65536),  # explicit beats the cap
        (100000, None, None, 100000),  # nothing to check against
    ],
)
def test_context_window_choice(requested, positions, tokenizer_max, expected):
    assert choose_context_window(requested, positions, tokenizer_max) == expected


def test_context_window_beyond_the_model_is_refused():
    with pytest.raises(ConfigError, match=r"'context_window': 10000 exceeds the model's 8192 positions"):
        choose_context_window(10000, 8192)
    with pytest.raises(ConfigError, match="exceeds the model's 4096"):
        choose_context_window(5000, None, 4096)
