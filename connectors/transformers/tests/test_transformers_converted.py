"""The converted-model cache: a GGUF de-quantised once, read back as safetensors with the same weights and output."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
runtime = pytest.importorskip("ragkit_transformers.runtime")
from ragkit_transformers import converted  # noqa: E402
from ragkit_transformers.source import resolve_model  # noqa: E402

PROMPT = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def _greedy(loaded, new_tokens: int = 12) -> list[int]:
    ids = torch.tensor([loaded.encode_messages(PROMPT)])
    with torch.no_grad():
        out = loaded.model.generate(ids, max_new_tokens=new_tokens, do_sample=False, pad_token_id=loaded.pad_token_id)
    return out[0, ids.shape[1] :].tolist()


@pytest.fixture(scope="module")
def loads(tmp_path_factory):
    """The packaged model loaded twice in this process: from its GGUF (writing the cache), then from the cache."""
    cache = tmp_path_factory.mktemp("cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("RAGKIT_CACHE_DIR", str(cache))
    patch.delenv("RAGKIT_CONVERTED_CACHE", raising=False)
    try:
        source = resolve_model(None)
        gguf = Path(source.directory) / source.gguf_file
        assert converted.converted_folder(gguf, transformers.__version__) is None
        first = runtime._load(source, "cpu", "float32")
        folder = converted.converted_folder(gguf, transformers.__version__)
        second = runtime._load(source, "cpu", "float32")
        yield first, second, folder, cache
    finally:
        patch.undo()


def test_the_first_load_writes_a_complete_converted_folder(loads):
    _, _, folder, cache = loads
    assert folder is not None and folder.parent == cache / "converted"
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")], "a temporary folder was left behind"


def test_the_converted_model_has_the_same_weights_and_answers_the_same(loads):
    first, second, _, _ = loads
    a, b = first.model.state_dict(), second.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert first.encode_messages(PROMPT) == second.encode_messages(PROMPT)
    assert _greedy(first) == _greedy(second)
    assert second.eos_token_ids == first.eos_token_ids and second.pad_token_id == first.pad_token_id


def test_a_changed_gguf_file_is_converted_again(tmp_path, loads):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"one")
    key = converted.cache_key(gguf, "4.0")
    gguf.write_bytes(b"other bytes")
    assert converted.cache_key(gguf, "4.0") != key
    assert converted.cache_key(gguf, "4.1") != converted.cache_key(gguf, "4.0")


def test_the_cache_can_be_turned_off(monkeypatch, loads):
    _, _, _, cache = loads
    source = resolve_model(None)
    gguf = Path(source.directory) / source.gguf_file
    monkeypatch.setenv("RAGKIT_CACHE_DIR", str(cache))
    monkeypatch.setenv("RAGKIT_CONVERTED_CACHE", "off")
    assert converted.converted_folder(gguf, transformers.__version__) is None


def test_a_cache_that_cannot_be_written_costs_only_the_speed_up(tmp_path, monkeypatch, caplog, loads):
    first, _, _, _ = loads
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("RAGKIT_CACHE_DIR", str(blocked))
    source = resolve_model(None)
    gguf = Path(source.directory) / source.gguf_file
    before = (first.model.hf_quantizer, getattr(first.model.config, "quantization_config", None))
    with caplog.at_level(logging.WARNING, logger="ragkit_transformers.converted"):
        assert converted.save_converted(gguf, transformers.__version__, first.model, first.tokenizer) is None
    assert "could not keep a converted copy" in caplog.text
    # the model it was asked to save is untouched: still marked as loaded from GGUF
    assert (first.model.hf_quantizer, getattr(first.model.config, "quantization_config", None)) == before


def test_a_pinned_checksum_keys_the_folder_whatever_the_path(tmp_path):
    """A packaged model assembled into two RAGKIT_HOMEs is converted once: its key is its pinned SHA-256."""
    one, two = tmp_path / "home1" / "m.gguf", tmp_path / "home2" / "m.gguf"
    for file in (one, two):
        file.parent.mkdir()
        file.write_bytes(b"same bytes")
    assert converted.cache_key(one, "4.0", sha256="ab" * 32) == converted.cache_key(two, "4.0", sha256="ab" * 32)
    assert converted.cache_key(one, "4.0") != converted.cache_key(two, "4.0")
