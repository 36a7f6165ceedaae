"""The CUDA embedding batch size, chosen from the card's free memory: tested on the CPU with given numbers.

``batch_size_for_gpu_memory`` is pure; ``cuda_batch_size`` reads the loaded
model's weights and asks torch for free memory, here from a FAKE CUDA report
(no GPU on these machines) around the real packaged model loaded on the CPU.
"""

from __future__ import annotations

import types

import pytest
from ragkit_sentence_transformers.embedder import SentenceTransformerEmbedder, cuda_batch_size
from ragkit_sentence_transformers.selection import (
    GPU_BATCH_MAX,
    GPU_BATCH_MIN,
    batch_size_for_gpu_memory,
    choose_batch_size,
    choose_precision,
)

GIB = 2**30
MINILM = {"model_bytes": 45_000_000, "max_seq_length": 256, "hidden_size": 384}
"""all-MiniLM-L6-v2 in fp16: 22.7M parameters, 256 tokens, 384 wide."""
BGE_LARGE = {"model_bytes": 670_000_000, "max_seq_length": 512, "hidden_size": 1024}
"""bge-large-en-v1.5 in fp16: 335M parameters, 512 tokens, 1024 wide."""


def test_a_big_card_with_a_small_model_takes_the_largest_batch():
    assert batch_size_for_gpu_memory(78 * GIB, bytes_per_value=2, **MINILM) == GPU_BATCH_MAX


def test_the_batch_is_what_the_memory_allows_as_a_power_of_two():
    # MiniLM fp16: 256 tokens x 2 bytes x (16 x 384 + 2 x 6 heads x 256) = 4.5 MiB a text;
    # half of 1 GiB less the weights leaves room for 104 texts: 64
    assert batch_size_for_gpu_memory(1 * GIB, bytes_per_value=2, **MINILM) == 64
    # bge-large fp16: 512 x 2 x (16 x 1024 + 2 x 16 x 512) = 32 MiB a text; 8 GiB free: 105 texts fit: 64
    assert batch_size_for_gpu_memory(8 * GIB, bytes_per_value=2, **BGE_LARGE) == 64


def test_fp32_halves_the_batch_and_too_little_memory_gives_the_floor():
    fp16 = batch_size_for_gpu_memory(2 * GIB, bytes_per_value=2, **MINILM)
    assert batch_size_for_gpu_memory(2 * GIB, bytes_per_value=4, **MINILM) == fp16 // 2
    assert batch_size_for_gpu_memory(700_000_000, bytes_per_value=2, **BGE_LARGE) == GPU_BATCH_MIN


def test_more_free_memory_never_means_a_smaller_batch():
    sizes = [batch_size_for_gpu_memory(gib * GIB, bytes_per_value=2, **BGE_LARGE) for gib in (1, 2, 4, 8, 16, 40, 80)]
    assert sizes == sorted(sizes) and sizes[0] == GPU_BATCH_MIN and sizes[-1] == 1024


def test_nonsense_inputs_are_refused():
    with pytest.raises(ValueError, match="max_seq_length"):
        batch_size_for_gpu_memory(GIB, 1, 0, 384, 2)


def test_an_explicit_batch_wins_and_cuda_uses_the_measured_one():
    assert choose_batch_size(None, "cuda", 512) == 512
    assert choose_batch_size(None, "cuda:1", None) == 128  # could not measure
    assert choose_batch_size(8, "cuda", 512) == 8
    assert choose_batch_size(None, "cpu", 512) == 32


def test_auto_precision_is_fp16_on_cuda():
    assert choose_precision("auto", "cuda", cpu_supports_bf16=True) == "fp16"


class FakeCudaTorch:
    """A FAKE torch.cuda that reports ``free`` bytes (no GPU here); the rest is real torch."""

    def __init__(self, free: int) -> None:
        import torch

        self.device = torch.device
        self.cuda = types.SimpleNamespace(mem_get_info=lambda device: (free, 80 * GIB))


@pytest.fixture(scope="module")
def loaded():
    return SentenceTransformerEmbedder(device="cpu", precision="fp32").load()


def test_the_loaded_models_weights_and_width_size_the_batch(loaded):
    model_bytes = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    expected = batch_size_for_gpu_memory(1 * GIB, model_bytes, loaded.max_seq_length, 384, 4)
    got = cuda_batch_size(loaded.model, "cuda", loaded.max_seq_length, loaded.dimension, FakeCudaTorch(1 * GIB))
    assert got == expected == 32  # fp32 MiniLM: 9 MiB a text, ~52 fit in half a GiB less its 91 MB


def test_a_failed_memory_query_falls_back_to_the_fixed_default(loaded):
    broken = types.SimpleNamespace(device=lambda name: name, cuda=types.SimpleNamespace())
    assert cuda_batch_size(loaded.model, "cuda", loaded.max_seq_length, loaded.dimension, broken) is None
