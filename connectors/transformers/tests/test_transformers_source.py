"""Resolving the ``model`` / ``gguf_file`` options: file-system checks only, no torch."""

from __future__ import annotations

from pathlib import Path

import pytest
from ragkit_transformers import PACKAGED_GGUF_FILE, PACKAGED_MODEL_NAME, TransformersGenerator, resolve_model
from ragkit_transformers.source import packaged_model_dir

from ragkit.errors import ConfigError


def test_default_is_the_packaged_gguf():
    source = resolve_model(None)
    assert source.kind == "packaged"
    assert source.name == PACKAGED_MODEL_NAME == "SmolLM2-135M-Instruct"
    assert source.gguf_file == PACKAGED_GGUF_FILE
    assert (Path(source.directory) / PACKAGED_GGUF_FILE).is_file()
    assert resolve_model("SmolLM2-135M-Instruct") == source
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == source


def test_a_gguf_file_path_is_the_same_model_as_its_folder_plus_file():
    file = packaged_model_dir() / PACKAGED_GGUF_FILE
    by_path = resolve_model(str(file))
    by_folder = resolve_model(str(file.parent), PACKAGED_GGUF_FILE)
    assert by_path.kind == by_folder.kind == "gguf"
    assert (by_path.directory, by_path.gguf_file) == (by_folder.directory, by_folder.gguf_file)
    assert by_path.name == "SmolLM2-135M-Instruct.Q4_1"
    assert resolve_model(str(file), PACKAGED_GGUF_FILE) == by_path  # naming the same file twice is fine


def test_missing_path_names_the_path(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ConfigError, match=rf"'model': {missing} does not exist") as info:
        TransformersGenerator(model=str(missing))
    assert "packaged SmolLM2" in str(info.value)


def test_missing_gguf_file_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match=rf"'gguf_file': {tmp_path / 'm.gguf'} does not exist"):
        TransformersGenerator(model=str(tmp_path), gguf_file="m.gguf")


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ConfigError, match="has no config.json and no .gguf file"):
        TransformersGenerator(model=str(tmp_path))


def test_folder_with_one_gguf_uses_it_and_with_two_asks(tmp_path):
    (tmp_path / "a.Q4.gguf").write_bytes(b"")
    source = resolve_model(str(tmp_path))
    assert (source.kind, source.gguf_file, source.name) == ("gguf", "a.Q4.gguf", "a.Q4")
    (tmp_path / "b.gguf").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"several .gguf files \(a.Q4.gguf, b.gguf\); name one with 'gguf_file'"):
        resolve_model(str(tmp_path))
    assert resolve_model(str(tmp_path), "b.gguf").gguf_file == "b.gguf"


def test_transformers_folder(tmp_path):
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    source = resolve_model(str(folder))
    assert (source.kind, source.gguf_file, source.name, source.directory) == ("folder", None, "my-model", str(folder))


def test_a_file_that_is_not_gguf(tmp_path):
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"")
    with pytest.raises(ConfigError, match="is a file but not a .gguf file"):
        resolve_model(str(file))


def test_conflicting_gguf_file(tmp_path):
    file = tmp_path / "a.gguf"
    file.write_bytes(b"")
    with pytest.raises(ConfigError, match="'gguf_file': 'b.gguf' conflicts with 'model'"):
        resolve_model(str(file), "b.gguf")


def test_gguf_file_without_model():
    with pytest.raises(ConfigError, match="'gguf_file' needs 'model'"):
        TransformersGenerator(gguf_file="x.gguf")


@pytest.mark.parametrize("bad", ["", "   ", 3])
def test_model_must_be_a_path(bad):
    with pytest.raises(ConfigError, match="'model'"):
        TransformersGenerator(model=bad)
