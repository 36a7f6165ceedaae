"""The ``cross-encoder`` reranker stage: a sentence-transformers CrossEncoder scores (question, chunk) pairs.

A cross-encoder reads the question and a chunk together and gives one
relevance score: slower than a bi-encoder (every pair is a forward pass)
and better at ordering the top candidates. No cross-encoder weights ship
in any package that installs offline here, so ragkit trains one
(:func:`ragkit_sentence_transformers.rerank_training.train_cross_encoder`,
``ragkit rerank train``); a model from a local folder or from the local
Hugging Face cache works too.

torch and sentence-transformers are imported when the model is first used;
building the stage (and validating its folder) reads two JSON files only.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragkit.errors import ConfigError, MissingDependencyError, UnavailableError
from ragkit.query.stages import RerankerStage
from ragkit.query.state import ModelCall, QueryState
from ragkit.schema import Hit
from ragkit_sentence_transformers.embedder import _mps_available
from ragkit_sentence_transformers.selection import choose_device, validate_device, validate_precision

if TYPE_CHECKING:
    from ragkit_sentence_transformers.rerank_training import TrainingReport

logger = logging.getLogger(__name__)

_WHERE = "reranker 'cross-encoder'"
ACTIVATIONS = ("sigmoid", "none")
_HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


# -- the model folder -----------------------------------------------------------------------------


def check_cross_encoder_folder(folder: Path, option: str = "model") -> None:
    """Raise a :class:`ConfigError` naming ``folder`` unless it holds a 1-label cross-encoder.

    A folder counts when sentence-transformers saved it as a ``CrossEncoder``
    (``config_sentence_transformers.json``), or when its ``config.json`` names a
    ``...ForSequenceClassification`` architecture with one label. A plain
    sentence-embedding model (``BertModel``, no classification head) is refused.
    """
    where = f"{_WHERE} option {option!r}: {folder}"
    if not folder.exists():
        raise ConfigError(f"{where} does not exist")
    if not folder.is_dir():
        raise ConfigError(f"{where} is a file; expected a cross-encoder model folder")
    config = _read_json(folder / "config.json", where)
    if config is None:
        raise ConfigError(f"{where} has no config.json, so it is not a transformers model folder")
    st_config = _read_json(folder / "config_sentence_transformers.json", where) or {}
    architectures = [str(a) for a in config.get("architectures") or []]
    labels = _label_count(config)
    if st_config.get("model_type") == "CrossEncoder":
        if labels not in (None, 1) and any(a.endswith("ForSequenceClassification") for a in architectures):
            raise ConfigError(f"{where} is a cross-encoder with {labels} labels; a reranker needs one relevance score")
        return
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        if labels not in (None, 1):
            raise ConfigError(
                f"{where} has a sequence-classification head with {labels} labels (a classifier, e.g. NLI); "
                "a reranker needs a 1-label relevance head"
            )
        return
    named = ", ".join(architectures) or "none"
    hint = (
        " It looks like a sentence-embedding model (use it as an embedder)."
        if (folder / "modules.json").is_file() or (folder / "1_Pooling").is_dir()
        else ""
    )
    raise ConfigError(
        f"{where} is not a cross-encoder: its config.json names architecture {named} and no "
        f"sequence-classification head (num_labels).{hint} Train one with `ragkit rerank train`."
    )


def _read_json(path: Path, where: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot read {path.name}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {path.name} is not a JSON object")
    return data


def _label_count(config: dict[str, Any]) -> int | None:
    if isinstance(config.get("id2label"), dict):
        return len(config["id2label"])
    if isinstance(config.get("num_labels"), int):
        return int(config["num_labels"])
    return None


def resolve_cross_encoder(model: str) -> Path:
    """The folder of ``model``: a local folder, or a hub name found in the local Hugging Face cache.

    Nothing is downloaded. Raises :class:`ConfigError` naming the folder or
    name and what is wrong with it.
    """
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"{_WHERE} option 'model': expected a model folder or hub name, got {model!r}")
    path = Path(model).expanduser()
    named = _named_reranker(model)
    if named is not None:
        check_cross_encoder_folder(named)
        return named.resolve()
    if "/" not in model and not model.startswith((".", "~")) and not path.exists():
        home = _rerankers_home()
        raise ConfigError(
            f"{_WHERE} option 'model': there is no reranker named {model!r} in {home} and no folder {model!r}; "
            f"train one with `ragkit rerank train` (it writes {home / 'default'}) or give a folder"
        )
    looks_like_path = model.startswith((".", "/", "~")) or path.exists() or not _HUB_NAME.fullmatch(model)
    if looks_like_path:
        check_cross_encoder_folder(path)
        return path.resolve()
    cached = _hub_cache_folder(model)
    if cached is None:
        home = _rerankers_home()
        raise ConfigError(
            f"{_WHERE} option 'model': {model} is not a folder, not a reranker in {home}, and not in the local "
            "Hugging Face cache; ragkit does not download rerankers: train one with `ragkit rerank train` "
            f"(it writes {home / 'default'}) or give a folder"
        )
    check_cross_encoder_folder(cached)
    return cached


def _rerankers_home() -> Path:
    from ragkit.collection import HomeLayout

    return HomeLayout.of(None).rerankers


def _named_reranker(model: str) -> Path | None:
    """``<home>/rerankers/<model>`` when ``model`` is a plain name (``default``) and that folder exists."""
    if "/" in model or model.startswith((".", "~")):
        return None
    folder = _rerankers_home() / model
    return folder if folder.is_dir() else None


def _hub_cache_folder(name: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - a dependency of sentence-transformers
        return None
    found = try_to_load_from_cache(name, "config.json")
    return Path(found).parent if isinstance(found, str) else None


# -- device and precision -------------------------------------------------------------------------


def choose_device_precision(
    device: str, precision: str, cuda_available: bool, mps_available: bool = False
) -> tuple[str, str]:
    """The torch device and weight dtype to score on.

    ``device="auto"`` picks CUDA (in fp16 unless ``precision`` says
    otherwise), then Apple's MPS, then the CPU (fp32). Asking for a GPU that
    is not there is an :class:`UnavailableError`, not a silent CPU run.
    """
    device = choose_device(device, cuda_available, mps_available, _WHERE)
    if precision == "auto":
        precision = "fp16" if device.startswith("cuda") else "fp32"
    return device, precision


@dataclass
class LoadedCrossEncoder:
    """A cross-encoder loaded in this process, shared by every stage with the same (folder, device, precision)."""

    model: Any
    device: str
    precision: str
    max_length: int
    lock: threading.Lock
    """Held around every call: HF fast tokenizers are not safe to call from several threads at once."""


_MODELS: dict[tuple[str, str, str], LoadedCrossEncoder] = {}
_MODELS_LOCK = threading.Lock()


def loaded_cross_encoders() -> dict[tuple[str, str, str], LoadedCrossEncoder]:
    """A snapshot of the cross-encoders loaded in this process, by (folder, device, precision)."""
    with _MODELS_LOCK:
        return dict(_MODELS)


def load_cross_encoder(folder: Path, device: str, precision: str) -> LoadedCrossEncoder:
    """The model in ``folder`` on the chosen device and precision, loaded once per process."""
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("the cross-encoder reranker", "torch") from None
    chosen_device, chosen_precision = choose_device_precision(
        device, precision, torch.cuda.is_available(), _mps_available(torch)
    )
    key = (str(folder), chosen_device, chosen_precision)
    with _MODELS_LOCK:
        loaded = _MODELS.get(key)
        if loaded is None:
            loaded = _MODELS[key] = _load(folder, chosen_device, chosen_precision, torch)
        return loaded


def _load(folder: Path, device: str, precision: str, torch: Any) -> LoadedCrossEncoder:
    try:
        from sentence_transformers import CrossEncoder
    except ImportError:
        raise MissingDependencyError("the cross-encoder reranker", "sentence-transformers") from None
    from ragkit_sentence_transformers.embedder import _quiet_progress_bars

    started = time.perf_counter()
    with _quiet_progress_bars():
        try:
            model = CrossEncoder(str(folder), device=device, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"{_WHERE} option 'model': cannot load {folder} as a cross-encoder: {exc}") from None
        except Exception as exc:  # e.g. out of GPU memory
            raise UnavailableError(f"cannot load cross-encoder {folder} on {device}: {exc}") from None
    try:
        if precision == "fp16":
            model = model.half()
        elif precision == "bf16":
            model = model.to(torch.bfloat16)
    except Exception as exc:
        raise UnavailableError(f"cannot run cross-encoder {folder} in {precision} on {device}: {exc}") from None
    model.eval()
    if model.num_labels != 1:
        raise ConfigError(f"{_WHERE} option 'model': {folder} has {model.num_labels} labels; a reranker needs one")
    max_length = int(getattr(model, "max_seq_length", None) or 512)
    if max_length > 1_000_000:  # a tokenizer's "no limit" sentinel
        max_length = 512
    logger.info(
        "loaded cross-encoder %s on %s (%s) in %.1f s", folder, device, precision, time.perf_counter() - started
    )
    _warn_if_trained_worse(folder)
    return LoadedCrossEncoder(model, device, precision, max_length, threading.Lock())


def _warn_if_trained_worse(folder: Path) -> None:
    """Log a warning when ``ragkit rerank train`` measured this model ranking worse than retrieval."""
    from ragkit_sentence_transformers.rerank_training import REPORT_FILE, WORSE_WARNING

    report = folder / REPORT_FILE
    if not report.is_file():
        return
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
        before, after = float(data["before"]["mrr"]), float(data["after"]["mrr"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if data.get("verdict") == "worse" or after < before - 0.005:
        logger.warning(
            "cross-encoder %s: held-out MRR %.3f in retrieval order, %.3f reranked (%s); %s",
            folder, before, after, report, WORSE_WARNING.removeprefix("warning: "),
        )  # fmt: skip


# -- the stage ------------------------------------------------------------------------------------


class CrossEncoderReranker(RerankerStage):
    """Reorders hits by a cross-encoder's relevance score for each (question, chunk) pair.

    Args:
        model: A cross-encoder folder (e.g. one made by ``ragkit rerank train``)
            or a hub name already in the local Hugging Face cache. Required.
        device: ``auto`` (CUDA, then MPS, then the CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        precision: ``auto`` (fp16 on CUDA, fp32 elsewhere), ``fp32``, ``fp16`` (CUDA only) or ``bf16``.
        max_length: Truncate each (question, chunk) pair to this many tokens
            (default: the model's own limit). Shorter is faster; text past it is not read.
        batch_size: Pairs per forward pass; the pairs of every question of a batch go in together.
        candidates: Rerank only the first this many incoming hits (the rest are dropped).
        top_k: Keep this many hits after reranking.
        min_score: Drop hits scoring below this (on the ``activation`` scale).
        activation: ``sigmoid`` (scores in 0-1, a relevance probability for a
            model trained with binary cross-entropy) or ``none`` (raw logits).

    The model loads on first use, once per process per (folder, device, precision).

    """

    role = "reranker"
    component_type = "cross-encoder"
    label = "cross-encoder"

    def __init__(
        self,
        model: str,
        device: str = "auto",
        precision: str = "auto",
        max_length: int | None = None,
        batch_size: int = 32,
        candidates: int | None = None,
        top_k: int | None = None,
        min_score: float | None = None,
        activation: str = "sigmoid",
    ) -> None:
        super().__init__(top_k=top_k, min_score=min_score, candidates=candidates, batch_size=batch_size)
        validate_device(device, _WHERE)
        validate_precision(precision, _WHERE)
        if device == "cpu" and precision == "fp16":
            raise ConfigError(f"{_WHERE} option 'precision': fp16 is not supported on the CPU; use bf16 or fp32")
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)):
            raise ConfigError(f"{_WHERE} option 'max_length': expected an integer, got {max_length!r}")
        if max_length is not None and max_length < 8:
            raise ConfigError(f"{_WHERE} option 'max_length': must be at least 8 tokens, got {max_length}")
        if activation not in ACTIVATIONS:
            raise ConfigError(f"{_WHERE} option 'activation': {activation!r} is not one of {', '.join(ACTIVATIONS)}")
        self.folder = resolve_cross_encoder(model)
        self.model = model
        self.device_option = device
        self.precision_option = precision
        self.max_length = max_length
        self.activation = activation
        self._loaded: LoadedCrossEncoder | None = None

    def __repr__(self) -> str:
        return f"CrossEncoderReranker(model={self.model!r}, device={self.device_option!r})"

    # -- the model ----------------------------------------------------------------------------

    def _model(self) -> LoadedCrossEncoder:
        if self._loaded is None:
            self._loaded = load_cross_encoder(self.folder, self.device_option, self.precision_option)
        return self._loaded

    @property
    def device(self) -> str:
        """The device the model runs on (loads the model)."""
        return self._model().device

    @property
    def precision(self) -> str:
        """The weight dtype the model runs in (loads the model)."""
        return self._model().precision

    # -- scoring ------------------------------------------------------------------------------

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """A relevance score for each ``(question, passage)`` pair, in ``batch_size`` forward passes."""
        if not pairs:
            return []
        loaded = self._model()
        import torch

        activation: Callable[..., Any] = torch.nn.Sigmoid() if self.activation == "sigmoid" else torch.nn.Identity()
        length = min(self.max_length or loaded.max_length, loaded.max_length)
        with loaded.lock:
            try:
                scores = loaded.model.predict(
                    [list(p) for p in pairs],
                    batch_size=self.batch_size,
                    show_progress_bar=False,
                    activation_fn=activation,
                    convert_to_numpy=True,
                    processing_kwargs={"text": {"max_length": length, "truncation": True}},
                )
            except RuntimeError as exc:  # torch: out of (GPU) memory, device lost ...
                raise UnavailableError(
                    f"cross-encoder {self.folder} on {loaded.device} failed: {exc}; "
                    "a smaller batch_size needs less memory"
                ) from None
        return [float(s) for s in scores.reshape(-1).astype("float32")]

    def score_many(self, questions: Sequence[str], hit_lists: Sequence[list[Hit]]) -> list[list[float]]:
        """Scores for every hit of every question, all pairs in one :meth:`score_pairs` call."""
        pairs = [(q, hit.chunk.text) for q, hits in zip(questions, hit_lists, strict=True) for hit in hits]
        flat = self.score_pairs(pairs)
        out, at = [], 0
        for hits in hit_lists:
            out.append(flat[at : at + len(hits)])
            at += len(hits)
        return out

    def rerank_many(self, states: Sequence[QueryState], hit_lists: Sequence[list[Hit]]) -> list[list[Hit]]:
        """Reorder by :meth:`score_many`, recording one model call per question in the trace."""
        started = time.perf_counter()
        reranked = super().rerank_many(states, hit_lists)
        share = (time.perf_counter() - started) / max(1, len(states))
        name = self.folder.name
        for state, hits in zip(states, hit_lists, strict=True):
            try:
                entry = state.current(self.label)
            except KeyError:  # run outside a pipeline
                continue
            entry.calls.append(ModelCall(model=f"cross-encoder:{name}", seconds=share))
            entry.notes.append(f"scored {len(hits)} (question, chunk) pairs with {name} on {self._model().device}")
        return reranked

    # -- training -----------------------------------------------------------------------------

    @classmethod
    def train(cls, **options: Any) -> TrainingReport:
        """Train a cross-encoder for this stage (options: see :func:`.rerank_training.train_cross_encoder`).

        ``ragkit rerank train`` reaches the trainer through this method (the
        core finds the stage in the registry and never imports this package).
        """
        from ragkit_sentence_transformers.rerank_training import train_cross_encoder

        return train_cross_encoder(**options)
