"""A cache of GGUF models converted once to safetensors, so later loads take a second, not a minute.

transformers loads a ``.gguf`` file by de-quantising every tensor in
Python: about 20 s for SmolLM2-135M and minutes for the 0.5B and 1.5B
models on two cores, paid by every process that loads them (each CLI call,
each server start). The de-quantised float32 weights are the same every
time, so the first load writes them, with the converted tokenizer and
config, to a folder keyed by the GGUF file's path, size and modification
time and by the transformers version; every later load reads that folder
(memory-mapped safetensors) instead.

The cache lives in ``$RAGKIT_CACHE_DIR/converted`` (default
``$XDG_CACHE_HOME/ragkit`` or ``~/.cache/ragkit``), outside ``RAGKIT_HOME``
on purpose: a model is the same whatever collection home a process uses.
``RAGKIT_CONVERTED_CACHE=off`` turns it off. Writing is best effort: a full
or read-only disk costs the speed-up, never the load; two processes
converting at once each write a private folder and the first rename wins.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Bumped when what is written changes, so older folders are ignored."""
_COMPLETE = "ragkit-converted.txt"
"""Written last: a folder without it is an interrupted write and is not used."""


def cache_root() -> Path | None:
    """The folder holding converted models, or ``None`` when the cache is turned off."""
    if os.environ.get("RAGKIT_CONVERTED_CACHE", "").strip().lower() in {"off", "0", "false", "no"}:
        return None
    base = os.environ.get("RAGKIT_CACHE_DIR", "").strip()
    if base:
        return Path(base).expanduser() / "converted"
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "ragkit" / "converted"


def cache_key(gguf: Path, transformers_version: str, sha256: str | None = None) -> str | None:
    """The key of ``gguf``'s converted folder.

    A model with a pinned ``sha256`` (a packaged model, checked when it was
    assembled) is keyed by that checksum, so every ``RAGKIT_HOME`` that
    assembles it shares one converted folder; any other file by its real
    path, size and modification time. The converter's version is part of both.
    """
    if sha256 is not None:
        identity = f"{FORMAT_VERSION}|sha256:{sha256}|transformers {transformers_version}"
        return hashlib.sha256(identity.encode()).hexdigest()[:32]
    try:
        real = gguf.resolve()
        info = real.stat()
    except OSError:
        return None
    identity = f"{FORMAT_VERSION}|{real}|{info.st_size}|{info.st_mtime_ns}|transformers {transformers_version}"
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def converted_folder(gguf: Path, transformers_version: str, sha256: str | None = None) -> Path | None:
    """The complete converted folder of ``gguf`` (see :func:`cache_key`), or ``None`` when there is none (yet)."""
    root = cache_root()
    key = cache_key(gguf, transformers_version, sha256)
    if root is None or key is None:
        return None
    folder = root / f"{_slug(gguf.stem)}-{key}"
    return folder if (folder / _COMPLETE).is_file() else None


def save_converted(
    gguf: Path, transformers_version: str, model: Any, tokenizer: Any, sha256: str | None = None
) -> Path | None:
    """Write ``model`` and ``tokenizer`` (loaded from ``gguf``) as the converted folder; ``None`` if it failed.

    Call it with the model as loaded, before it is moved, cast or quantised.
    """
    root = cache_root()
    key = cache_key(gguf, transformers_version, sha256)
    if root is None or key is None:
        return None
    target = root / f"{_slug(gguf.stem)}-{key}"
    if (target / _COMPLETE).is_file():
        return target
    temp: Path | None = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
        _write(temp, model, tokenizer, gguf)
        try:
            temp.rename(target)
        except OSError:  # another process finished first: its folder is as good as ours
            if not (target / _COMPLETE).is_file():
                raise
        else:
            temp = None
        logger.info("converted %s once into %s; later loads read it", gguf.name, target)
        return target
    except Exception as exc:  # full disk, read-only cache, a model transformers cannot save ...
        logger.warning("could not keep a converted copy of %s (%s); the next load converts it again", gguf, exc)
        return None
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def _write(folder: Path, model: Any, tokenizer: Any, gguf: Path) -> None:
    """The model, tokenizer and config in ``folder``, with the completion marker written last."""
    # transformers marks a GGUF-loaded model as quantised and refuses to save it; the weights are
    # plain float tensors once de-quantised, so the marker is dropped for the save and put back
    quantizer = getattr(model, "hf_quantizer", None)
    config = model.config
    had_quantization_config = hasattr(config, "quantization_config")
    quantization_config = getattr(config, "quantization_config", None)
    try:
        model.hf_quantizer = None
        if had_quantization_config:
            del config.quantization_config
        model.save_pretrained(folder, safe_serialization=True)
    finally:
        model.hf_quantizer = quantizer
        if had_quantization_config:
            config.quantization_config = quantization_config
    tokenizer.save_pretrained(folder)
    (folder / _COMPLETE).write_text(f"converted from {gguf}\nformat {FORMAT_VERSION}\n", encoding="utf-8")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:60]
