"""The search: score prompt candidates on the train split, pick the best, compare it with the base on held-out.

Every answer goes through the suite's own machinery (:func:`ragkit.evaluation.runner` asks with the
same :class:`~ragkit.rag.RagPipeline` an eval run uses and scores with the suite's metrics), so what
is optimised is what ``ragkit eval run`` measures. Answers are kept in the eval store's answer cache
(greedy pipelines), so running the same command again resumes where it stopped: every answer already
written is replayed, not generated.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragkit.errors import ConfigError
from ragkit.evaluation.optimise.candidates import (
    Candidate,
    Demo,
    bootstrap_demos,
    hand_written,
    propose_instruction,
    proposed_candidate,
)
from ragkit.evaluation.optimise.splits import Splits, split_questions
from ragkit.evaluation.sample import EvalQuestion, EvalSample
from ragkit.evaluation.suite import PipelineRun, Suite, load_suite

Say = Callable[[str], None]
"""Receives one line per finished step (candidate scored, demonstrations found ...)."""


@dataclass(slots=True)
class OptimiseSettings:
    """The budget and choices of one optimisation run (the CLI's options)."""

    train: int = 20
    heldout: int = 40
    candidates: int = 6
    """Prompts scored on train, the base prompt included."""
    demos: int = 3
    """Demonstrations per few-shot candidate (0: instructions only)."""
    pool: int | None = None
    """Bootstrap pool size (default: three questions per demonstration, at least 6, at most those left over)."""
    propose: int = 0
    """Instructions written by the pipeline's generator, tried beside the hand-written ones."""
    metric: str | None = None
    """The metric to maximise (default: ``f1`` if the suite has it, else its first answer metric)."""
    demo_threshold: float = 0.5
    """A pool answer becomes a demonstration when it cites a source and its ``answer_contains`` (when the suite
    scores it: the reference answer is in the answer) or else the optimised metric reaches this."""
    seed: int = 0

    def pool_size(self) -> int:
        """The bootstrap pool's size."""
        if self.demos <= 0:
            return 0
        return self.pool if self.pool is not None else max(6, 3 * self.demos)


@dataclass(slots=True)
class Trial:
    """A candidate scored on the train split."""

    candidate: Candidate
    scores: dict[str, float]
    objective: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            **self.candidate.to_dict(),
            "train": self.scores,
            "objective": self.objective,
            "seconds": round(self.seconds, 2),
        }


@dataclass(slots=True)
class OptimiseResult:
    """Everything a run found: the splits, each candidate's train score, the winner and the held-out comparison."""

    suite: Suite
    pipeline: PipelineRun
    metric: str
    metrics: list[str]
    settings: OptimiseSettings
    splits: Splits
    demos: list[Demo]
    trials: list[Trial]
    winner: int
    heldout_before: dict[str, float]
    heldout_after: dict[str, float]
    heldout_samples: dict[str, list[EvalSample]] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def best(self) -> Trial:
        """The winning trial."""
        return self.trials[self.winner]

    def improved(self) -> bool:
        """Whether the winner beat the base prompt on the held-out split (on the optimised metric)."""
        return self.heldout_after.get(self.metric, 0.0) > self.heldout_before.get(self.metric, 0.0)


def _means(samples: Sequence[EvalSample], names: Sequence[str]) -> dict[str, float]:
    """Each metric's mean over every sample (a failed sample counts 0), and ``cited``: the share citing a source."""
    total = len(samples) or 1
    means = {}
    for name in names:
        values = [s.metrics[name].value if name in s.metrics else None for s in samples]
        means[name] = round(sum(v or 0.0 for v in values) / total, 4)
    cited = sum(1 for s in samples if any(not c.get("inferred") for c in s.citations))
    means["cited"] = round(cited / total, 4)
    return means


class _Evaluator:
    """Asks and scores questions with one candidate prompt on the pipeline's config.

    Retrieval does not depend on the prompt, so each question is searched once (in batches, as an eval
    run's retrieval-only pipelines are) and its hits reused by every candidate; answers go through the
    answer cache of the eval store (greedy pipelines), keyed as ``ragkit eval run --answer-cache`` keys them.
    """

    def __init__(self, suite: Suite, run: PipelineRun, store: Path, progress: Any) -> None:
        from ragkit.evaluation.answer_cache import AnswerCache
        from ragkit.evaluation.runner import _ingest

        self.suite = suite
        self.run = run
        self.progress = progress
        self.metrics = [m for m in suite.build_metrics(store) if "answer" in set(m.needs)]
        self.collection, _ = _ingest(suite, store, progress)
        greedy = run.config is not None and run.config.answer.temperature == 0
        self.cache = AnswerCache(store / "answer-cache") if greedy else None
        self._hits: dict[str, Any] = {}

    @property
    def metric_names(self) -> list[str]:
        """The answer metrics scored."""
        return [m.name for m in self.metrics]

    def _search(self, questions: Sequence[EvalQuestion]) -> None:
        """Search the questions not searched yet, in one batch; a failure is kept per question."""
        from ragkit.evaluation.metrics.base import describe_error
        from ragkit.evaluation.runner import search_pipeline

        todo = [q for q in questions if q.id not in self._hits]
        if not todo:
            return
        pipeline = search_pipeline(self.run)
        try:
            found = pipeline.search_many([q.question for q in todo], self.collection)
        except Exception as exc:  # every question fails the same way: say so on each sample
            for question in todo:
                self._hits[question.id] = describe_error(exc)
            return
        for question, result in zip(todo, found, strict=True):
            self._hits[question.id] = result.hits

    def samples(self, candidate: Candidate, questions: Sequence[EvalQuestion], stage: str) -> list[EvalSample]:
        """The scored samples of ``questions`` asked with ``candidate``'s prompt."""
        from ragkit.evaluation.runner import score_samples
        from ragkit.rag import RagPipeline

        self._search(questions)
        config = self.run.config.model_copy(update={"prompt": candidate.template()})
        pipeline = RagPipeline(config, name=self.run.name)
        found: list[EvalSample] = []
        errors = 0
        for question in questions:
            sample = self._answer(pipeline, config, question)
            errors += sample.error is not None
            found.append(sample)
            if self.progress is not None:
                self.progress(stage, len(found), len(questions), errors)
        score_samples(self.metrics, found, False)
        return found

    def _answer(self, pipeline: Any, config: Any, question: EvalQuestion) -> EvalSample:
        from ragkit.errors import ConfigError, MissingDependencyError
        from ragkit.evaluation.answer_cache import CachedAnswer, answer_key
        from ragkit.evaluation.metrics.base import describe_error
        from ragkit.evaluation.runner import _replayed
        from ragkit.generation.fingerprint import generator_fingerprint

        hits = self._hits[question.id]
        if isinstance(hits, str):
            return EvalSample(question, self.run.name, error=hits)
        began = time.perf_counter()
        key = None
        try:
            text = pipeline.check_question(question.question)
            if self.cache is not None:
                fingerprint = generator_fingerprint(pipeline.generator)
                key = answer_key(config.model_dump(mode="json"), fingerprint, text, hits)
                cached = self.cache.get(key, len(hits))
                if cached is not None:
                    return _replayed(self.pipeline_run(config), question, hits, cached)
            answer = pipeline.ask_with_hits(text, hits)
        except (ConfigError, MissingDependencyError):
            raise
        except Exception as exc:
            return EvalSample(question, self.run.name, error=describe_error(exc), latency=time.perf_counter() - began)
        sample = EvalSample(
            question,
            self.run.name,
            hits=list(answer.hits),
            answer=answer.text,
            citations=[c.to_dict() for c in answer.citations],
            usage=answer.usage.to_dict(),
            timings=dict(answer.timings),
            latency=time.perf_counter() - began,
        )
        if self.cache is not None and key is not None and answer.hits:
            entry = CachedAnswer.of(sample, hits, answer.hits)
            if entry is not None:
                self.cache.put(key, entry)
        return sample

    def pipeline_run(self, config: Any) -> PipelineRun:
        """The suite's pipeline run with ``config``."""
        return PipelineRun(self.run.name, False, self.run.mode, self.run.top_k, config, self.run.recipe)

    def close(self) -> None:
        """Close the collection and the cache."""
        self.collection.close()
        if self.cache is not None:
            self.cache.close()


def _pipeline_run(suite: Suite, name: str) -> PipelineRun:
    runs = {run.name: run for run in suite.pipeline_runs()}
    if name not in runs:
        raise ConfigError(f"{suite.source}: no pipeline named {name!r} (it has: {', '.join(runs)})")
    run = runs[name]
    if run.retrieval_only or run.config is None:
        raise ConfigError(f"{suite.source}: pipeline {name!r} is retrieval only: it has no prompt to optimise")
    return run


def _objective(metric: str | None, names: Sequence[str], suite: Suite) -> str:
    if not names:
        raise ConfigError(f"{suite.source}: the suite scores no answer metric (e.g. f1, exact_match, answer_contains)")
    if metric is None:
        return "f1" if "f1" in names else names[0]
    if metric not in names:
        raise ConfigError(f"--metric {metric!r} is not an answer metric of the suite (it has: {', '.join(names)})")
    return metric


def base_candidate(run: PipelineRun) -> Candidate:
    """The pipeline's own prompt as a candidate (the generator's suggested user message when the config sets none)."""
    from ragkit.rag import RagPipeline

    prompt = run.config.prompt
    user = prompt.user
    if "user" not in prompt.model_fields_set:
        suggested = getattr(RagPipeline(run.config, name=run.name).generator, "suggested_user_prompt", None)
        user = suggested or user
    return Candidate("base", prompt.system, user, origin="base")


def optimise(
    suite: Suite | str | Path,
    pipeline: str,
    store_dir: str | Path,
    settings: OptimiseSettings | None = None,
    progress: Any = None,
    say: Say | None = None,
) -> OptimiseResult:
    """Search the prompt of ``pipeline`` (a RAG pipeline of ``suite``) and compare the winner on held-out.

    ``progress(stage, done, total, errors)`` follows each batch of answers; ``say(line)`` gets one line
    per finished step. See :mod:`ragkit.evaluation.optimise` for what is searched.
    """
    settings = settings or OptimiseSettings()
    if settings.candidates < 1:
        raise ConfigError(f"--candidates must be at least 1, got {settings.candidates}")
    tell = say or (lambda _line: None)
    loaded = suite if isinstance(suite, Suite) else load_suite(suite)
    run = _pipeline_run(loaded, pipeline)
    began = time.perf_counter()
    questions = loaded.load_questions()
    pool = settings.pool_size()
    if settings.pool is None:  # the default pool shrinks to the questions left over (a small suite)
        spare = sum(1 for q in questions if q.answers) - settings.train - settings.heldout
        pool = max(0, min(pool, spare))
    splits = split_questions(questions, settings.train, settings.heldout, pool, settings.seed)
    evaluator = _Evaluator(loaded, run, Path(store_dir).expanduser(), progress)
    try:
        names = evaluator.metric_names
        metric = _objective(settings.metric, names, loaded)
        base = base_candidate(run)
        trials: list[Trial] = []

        def trial(candidate: Candidate) -> Trial:
            clock = time.perf_counter()
            stage = f"train {len(trials) + 1}/{settings.candidates} {candidate.name}"
            scores = _means(evaluator.samples(candidate, splits.train, stage), names)
            done = Trial(candidate, scores, scores[metric], time.perf_counter() - clock)
            trials.append(done)
            tell(f"{stage}: {metric} {done.objective:.3f} on {len(splits.train)} train questions, {done.seconds:.0f} s")
            return done

        trial(base)
        demos: list[Demo] = []
        demo_slots = 0
        if settings.demos > 0 and settings.candidates > 1 and splits.pool:
            answered = evaluator.samples(base, splits.pool, "bootstrap pool")
            judge = "answer_contains" if "answer_contains" in names else metric  # "correct", as DSPy's SQuAD metric
            demos = bootstrap_demos(answered, judge, settings.demo_threshold, 2 * settings.demos)
            tell(f"bootstrap: {len(demos)} demonstration(s) from {len(answered)} pool questions")
            if demos:
                demo_slots = 2 if settings.candidates > 3 else 1  # K <= 3: one instruction, one few-shot
        instructions = hand_written(base.user)
        if settings.propose > 0:
            instructions = _proposals(evaluator, base, splits, settings, tell) + instructions
        for candidate in instructions[: max(0, settings.candidates - 1 - demo_slots)]:
            trial(candidate)
        for variant in _demo_variants(trials, base, demos, settings.demos)[:demo_slots]:
            trial(variant)
        winner = max(range(len(trials)), key=lambda i: (trials[i].objective, -i))  # ties: the earlier (base first)
        tell(f"winner on train: {trials[winner].candidate.name} ({metric} {trials[winner].objective:.3f})")
        held: dict[str, list[EvalSample]] = {}
        if winner != 0:  # the winner first: a second process can answer the base's held-out meanwhile (cached)
            held["after"] = evaluator.samples(trials[winner].candidate, splits.heldout, "held-out: winner")
        held["before"] = evaluator.samples(base, splits.heldout, "held-out: base")
        held.setdefault("after", held["before"])
        before, after = _means(held["before"], names), _means(held["after"], names)
        tell(f"held-out {metric}: {before[metric]:.3f} -> {after[metric]:.3f} on {len(splits.heldout)} questions")
    finally:
        evaluator.close()
    return OptimiseResult(
        loaded, run, metric, names, settings, splits, demos, trials, winner, before, after, held,
        time.perf_counter() - began,
    )  # fmt: skip


def _demo_variants(trials: Sequence[Trial], base: Candidate, demos: list[Demo], count: int) -> list[Candidate]:
    """Few-shot candidates: the best instruction so far with the top demonstrations, then a second variant."""
    if not demos:
        return []
    best = max(trials, key=lambda t: t.objective).candidate
    first = Candidate(f"{best.name}+{min(count, len(demos))}demos", best.system, best.user, demos[:count], "bootstrap")
    if best is not base:
        second = Candidate(f"base+{min(count, len(demos))}demos", base.system, base.user, demos[:count], "bootstrap")
    elif len(demos) > count:
        rest = demos[count : 2 * count]
        second = Candidate(f"{best.name}+{len(rest)}demos-b", best.system, best.user, rest, "bootstrap")
    elif len(demos) > 1 and count > 1:
        fewer = demos[: max(1, min(count, len(demos)) // 2)]
        second = Candidate(f"{best.name}+{len(fewer)}demos", best.system, best.user, fewer, "bootstrap")
    else:
        return [first]  # one demonstration, on the base instruction: no second variant to try
    return [first, second]


def _proposals(
    evaluator: _Evaluator, base: Candidate, splits: Splits, settings: OptimiseSettings, tell: Say
) -> list[Candidate]:
    """Instructions written by the pipeline's generator (COPRO/MIPRO's proposal step), deduplicated."""
    from ragkit.rag import RagPipeline

    generator = RagPipeline(evaluator.run.config, name=evaluator.run.name).generator
    examples = [(q.question, q.answers[0]) for q in splits.train[:3]]
    found: list[Candidate] = []
    seen: set[str] = set()
    for index in range(settings.propose):
        text = propose_instruction(generator, base.system, examples, temperature=0.0 if index == 0 else 0.7)
        if text and text not in seen:
            seen.add(text)
            found.append(proposed_candidate(len(found) + 1, text, base.user))
    tell(f"proposed {len(found)} instruction(s) with {generator.model_name}")
    return found
