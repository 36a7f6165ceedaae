"""The pure decisions (device, precision, prefixes, model names), every branch, on any machine.

These are the GPU code paths' CPU-side logic: CUDA and MPS availability are
arguments here, so the choices a GPU machine makes are tested without one.
"""

from __future__ import annotations

import itertools

import pytest
from ragkit_sentence_transformers.selection import (
    PRECISIONS,
    choose_batch_size,
    choose_device,
    choose_precision,
    cpu_supports_bf16,
    looks_like_hub_name,
    read_cpu_flags,
    validate_device,
    validate_precision,
)

from ragkit.embedders.prefixes import BGE_QUERY_EN, BGE_QUERY_ZH, E5_INSTRUCT_QUERY, default_prefixes
from ragkit.errors import ConfigError, UnavailableError

BOOLS = (False, True)


@pytest.mark.parametrize(("cuda", "mps"), list(itertools.product(BOOLS, BOOLS)))
def test_auto_device_prefers_cuda_then_mps_then_cpu(cuda, mps):
    expected = "cuda" if cuda else "mps" if mps else "cpu"
    assert choose_device("auto", cuda_available=cuda, mps_available=mps) == expected


@pytest.mark.parametrize(("cuda", "mps"), list(itertools.product(BOOLS, BOOLS)))
@pytest.mark.parametrize("requested", ["cpu", "cuda", "cuda:1", "mps"])
def test_explicit_device_is_kept_or_refused(requested, cuda, mps):
    available = {"cpu": True, "cuda": cuda, "cuda:1": cuda, "mps": mps}[requested]
    if available:
        assert choose_device(requested, cuda_available=cuda, mps_available=mps) == requested
    else:
        with pytest.raises(UnavailableError, match="not available"):
            choose_device(requested, cuda_available=cuda, mps_available=mps)


@pytest.mark.parametrize("bad", ["gpu", "CUDA", "cuda:", "cuda:x", "tpu", "", "cpu ", None, 0])
def test_invalid_device_names(bad):
    with pytest.raises(ConfigError, match="device"):
        validate_device(bad)
    with pytest.raises(ConfigError, match="device"):
        choose_device(bad, True, True)


# (requested, device, cpu_bf16) -> chosen
PRECISION_TABLE = {
    ("auto", "cuda"): {False: "fp16", True: "fp16"},
    ("auto", "cuda:0"): {False: "fp16", True: "fp16"},
    ("auto", "mps"): {False: "fp32", True: "fp32"},
    ("auto", "cpu"): {False: "fp32", True: "bf16"},
    ("fp32", "cuda"): {False: "fp32", True: "fp32"},
    ("fp32", "mps"): {False: "fp32", True: "fp32"},
    ("fp32", "cpu"): {False: "fp32", True: "fp32"},
    ("fp16", "cuda"): {False: "fp16", True: "fp16"},
    ("fp16", "mps"): {False: "fp16", True: "fp16"},
    ("fp16", "cpu"): {False: "fp32", True: "fp32"},  # fp16 on a CPU falls back
    ("bf16", "cuda"): {False: "bf16", True: "bf16"},
    ("bf16", "mps"): {False: "bf16", True: "bf16"},
    ("bf16", "cpu"): {False: "bf16", True: "bf16"},  # asked for explicitly: kept even if emulated
}


@pytest.mark.parametrize(("requested", "device"), list(PRECISION_TABLE))
@pytest.mark.parametrize("cpu_bf16", BOOLS)
def test_precision_choice(requested, device, cpu_bf16):
    expected = PRECISION_TABLE[(requested, device)][cpu_bf16]
    assert choose_precision(requested, device, cpu_supports_bf16=cpu_bf16) == expected


def test_precision_table_covers_every_option():
    assert {r for r, _ in PRECISION_TABLE} == set(PRECISIONS)


@pytest.mark.parametrize("bad", ["float16", "FP16", "int8", "", None])
def test_invalid_precision(bad):
    with pytest.raises(ConfigError, match="precision"):
        validate_precision(bad)
    with pytest.raises(ConfigError, match="precision"):
        choose_precision(bad, "cpu", True)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx2", "avx512f"}, False),
        ({"avx512f", "avx512_bf16"}, True),
        ({"amx_bf16", "amx_tile"}, True),
        (set(), False),
        (["sse4_2", "amx_bf16"], True),
    ],
)
def test_cpu_bf16_detection(flags, expected):
    assert cpu_supports_bf16(flags) is expected


def test_read_cpu_flags_is_a_set_of_strings():
    flags = read_cpu_flags()
    assert isinstance(flags, set)
    assert all(isinstance(flag, str) for flag in flags)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("intfloat/e5-small-v2", True),
        ("all-MiniLM-L6-v2", True),
        ("BAAI/bge-small-en-v1.5", True),
        ("./models/x", False),
        ("/abs/path", False),
        ("~/models/x", False),
        ("a/b/c", False),
        ("org/../x", False),
        ("has space", False),
        ("", False),
    ],
)
def test_hub_name_shape(name, expected):
    assert looks_like_hub_name(name) is expected


@pytest.mark.parametrize(
    ("model", "query", "document"),
    [
        ("intfloat/e5-small-v2", "query: ", "passage: "),
        ("intfloat/multilingual-e5-large", "query: ", "passage: "),
        ("E5-base", "query: ", "passage: "),
        ("/models/e5_small_v2/", "query: ", "passage: "),
        ("C:\\models\\e5-large-v2", "query: ", "passage: "),
        ("intfloat/e5-mistral-7b-instruct", E5_INSTRUCT_QUERY, ""),
        ("intfloat/multilingual-e5-large-instruct", E5_INSTRUCT_QUERY, ""),
        ("BAAI/bge-small-en-v1.5", BGE_QUERY_EN, ""),
        ("bge-large-en", BGE_QUERY_EN, ""),
        ("BAAI/bge-large-zh-v1.5", BGE_QUERY_ZH, ""),
        ("BAAI/bge-m3", "", ""),
        ("nomic-ai/nomic-embed-text-v1.5", "search_query: ", "search_document: "),
        ("all-MiniLM-L6-v2", "", ""),
        ("sentence-transformers/all-mpnet-base-v2", "", ""),
        ("text-embedding-3-small", "", ""),
        ("thenlper/gte-base", "", ""),
        ("ge5x-model", "", ""),  # "e5" only as a whole name part
        ("e5/some-model", "", ""),  # only the last part of the name counts
    ],
)
def test_default_prefixes(model, query, document):
    assert default_prefixes(model) == (query, document)


def test_batch_size_defaults_to_the_device_and_respects_a_choice():
    assert choose_batch_size(None, "cpu") == 32
    assert choose_batch_size(None, "mps") == 32
    assert choose_batch_size(None, "cuda") == 128
    assert choose_batch_size(None, "cuda:1") == 128
    assert choose_batch_size(8, "cuda") == 8
