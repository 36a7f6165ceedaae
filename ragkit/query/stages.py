"""The base classes of query-pipeline stages, and building stages from their configs.

Every stage is a :class:`~ragkit.component.Component` registered under one of
the stage roles, so ``{"type": "rrf"}`` in a recipe finds it, a connector
can add its own through the ``ragkit.components`` entry points, and
``to_config()`` round-trips it through YAML. A stage is batch-first: it
receives every question of a batch at once (an evaluation searches 256
questions per call; one ``ask`` is a batch of one), so a model scores all
the pairs in one call.

Roles, in the order they may appear in a pipeline:

=================  ===============  ===========================================
role               kind             examples
=================  ===============  ===========================================
query_transform    ``transform``    multi-query, hyde, step-back, decompose
retriever          ``retrieve``     dense, lexical
fuser              ``fuse``         rrf, weighted, dbsf
reranker           ``rerank``       cross-encoder, llm-rerank, mmr, threshold
context_shaper     ``shape``        parent-document, sentence-window, compress
=================  ===============  ===========================================
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ragkit import registry
from ragkit.component import Component
from ragkit.errors import ConfigError, NotFoundError
from ragkit.schema import Hit

if TYPE_CHECKING:
    from ragkit.collection import Collection
    from ragkit.filters import FilterLike
    from ragkit.query.state import CandidateList, Query, QueryState

StageKind = Literal["transform", "retrieve", "fuse", "rerank", "shape"]
STAGE_ROLES: dict[str, StageKind] = {
    "query_transform": "transform",
    "retriever": "retrieve",
    "fuser": "fuse",
    "reranker": "rerank",
    "context_shaper": "shape",
}
"""Registry role → stage kind, in pipeline order."""
_ORDER = {kind: position for position, kind in enumerate(STAGE_ROLES.values())}


class PipelineContext:
    """What a pipeline lends its stages when it is built: the generator config for LLM stages.

    ``generator`` is the pipeline's generator config; a stage that calls a
    model and was given none of its own uses it.
    """

    def __init__(self, generator: Mapping[str, Any] | None = None) -> None:
        self.generator = dict(generator) if generator is not None else {"type": "transformers"}


class Stage(Component):
    """One step of a query pipeline; see the module docstring.

    Subclasses implement :meth:`run` (sync, batch-first). :meth:`arun` runs
    it in a worker thread; a stage whose work is I/O may override it with a
    native async version and set ``native_async``.
    """

    kind: ClassVar[StageKind]
    native_async: ClassVar[bool] = False
    fail_open: ClassVar[bool] = True
    """When the stage raises (a model server down, a crash), record the error and keep its input.

    Retrievers and fusers fail closed: without them there is nothing to answer from.
    Configuration and input mistakes (:class:`~ragkit.errors.ConfigError`, ``InputError``) always raise.
    """

    label: str = ""
    """The name the stage goes by in traces and hit scores: its config's ``name``, else its type."""

    def bind(self, context: PipelineContext) -> None:
        """Called once when the pipeline is built (LLM stages take the default generator from it)."""
        return None

    def run(self, states: list[QueryState]) -> None:
        """Do this stage's work for every question of the batch, extending each state."""
        raise NotImplementedError

    async def arun(self, states: list[QueryState]) -> None:
        """Async twin of :meth:`run` (a worker thread, unless a stage overrides it)."""
        await asyncio.to_thread(self.run, states)

    def to_config(self) -> dict[str, Any]:
        """The config that rebuilds this stage, with its ``name`` when it has its own."""
        config = super().to_config()
        if self.label and self.label != self.component_type:
            config["name"] = self.label
        return config


# -- retrievers ---------------------------------------------------------------------------------


class RetrieverStage(Stage):
    """Finds candidate chunks for each query of each question.

    Args:
        top_k: Candidates per query (default: the request's ``top_k``).
        min_score: Drop candidates scoring below this, on this retriever's scale.

    """

    kind = "retrieve"
    fail_open = False

    def __init__(self, top_k: int | None = None, min_score: float | None = None) -> None:
        if top_k is not None and top_k < 1:
            raise ConfigError(f"retriever {self.component_type!r}: top_k must be at least 1, got {top_k}")
        self.top_k = top_k
        self.min_score = min_score

    def retrieve_many(
        self, collection: Collection, queries: Sequence[Query], top_k: int, filters: FilterLike
    ) -> list[list[Hit]]:
        """The best ``top_k`` hits for each query, best first (the batch-first retriever method)."""
        raise NotImplementedError

    def run(self, states: list[QueryState]) -> None:
        """Retrieve for every query not retrieved yet, grouped so each group is one batch call."""
        from ragkit.query.state import CandidateList

        groups: dict[tuple[int, str, int], list[tuple[QueryState, int]]] = {}
        for state in states:
            done = state.scratch.setdefault(f"retrieved:{self.label}", 0)
            k = self.top_k or state.top_k
            key = (id(state.collection), repr(state.request.filters), k)
            groups.setdefault(key, []).extend((state, i) for i in range(done, len(state.queries)))
            state.scratch[f"retrieved:{self.label}"] = len(state.queries)
        for (_, _, k), members in groups.items():
            if not members:
                continue
            first = members[0][0]
            found = self.retrieve_many(first.collection, [s.queries[i] for s, i in members], k, first.request.filters)
            for (state, index), hits in zip(members, found, strict=True):
                label = self.label if index == 0 else f"{self.label}#{index + 1}"
                kept = []
                for rank, hit in enumerate(hits, 1):
                    if self.min_score is not None and hit.score < self.min_score:
                        continue
                    hit.scores[label] = hit.score
                    hit.ranks[label] = rank
                    kept.append(hit)
                state.candidates.append(CandidateList(label, self.label, index, kept))


# -- fusion -------------------------------------------------------------------------------------


class FuserStage(Stage):
    """Merges the candidate lists of every retriever and query into one ranked list.

    Args:
        top_k: Keep this many fused hits (default: all; the pipeline cuts to the request's ``top_k`` at the end).
        weights: Weight per retriever label (default 1 each).

    """

    kind = "fuse"
    fail_open = False

    def __init__(self, top_k: int | None = None, weights: dict[str, float] | None = None) -> None:
        if top_k is not None and top_k < 1:
            raise ConfigError(f"fuser {self.component_type!r}: top_k must be at least 1, got {top_k}")
        for label, weight in (weights or {}).items():
            if not isinstance(weight, (int, float)) or weight < 0 or math.isnan(weight):
                raise ConfigError(f"fuser {self.component_type!r}: weight of {label!r} must be >= 0, got {weight!r}")
        self.top_k = top_k
        self.weights = dict(weights or {})

    def weight(self, candidates: CandidateList) -> float:
        """The weight of one list: by its label (``dense#2``), else its retriever's, else 1."""
        return float(self.weights.get(candidates.label, self.weights.get(candidates.retriever, 1.0)))

    def fuse(self, lists: Sequence[CandidateList]) -> list[Hit]:
        """One ranked list from many; each hit keeps the scores and ranks it had in every list."""
        raise NotImplementedError

    def run(self, states: list[QueryState]) -> None:
        """Fuse each question's candidate lists into its ``hits``."""
        for state in states:
            fused = self.fuse(state.candidates)
            state.hits = fused[: self.top_k] if self.top_k else fused
            state.fused = True


def merge_hits(lists: Sequence[CandidateList]) -> dict[str, Hit]:
    """One hit per chunk id across lists, carrying every list's score and rank."""
    merged: dict[str, Hit] = {}
    for candidates in lists:
        for hit in candidates.hits:
            found = merged.get(hit.chunk.id)
            if found is None:
                merged[hit.chunk.id] = Hit(hit.chunk, hit.score, "fused", dict(hit.scores), dict(hit.ranks))
            else:
                found.scores.update(hit.scores)
                found.ranks.update(hit.ranks)
    return merged


# -- rerankers ----------------------------------------------------------------------------------


class RerankerStage(Stage):
    """Reorders each question's hits (and may drop some).

    Score-based rerankers implement :meth:`score_many`; rerankers that
    reorder without scores (MMR, lost-in-the-middle) override :meth:`rerank_many`.

    Args:
        top_k: Keep this many hits after reranking (default: all).
        min_score: Drop hits scoring below this, on this reranker's scale.
        candidates: Rerank only the first this many incoming hits (the rest are dropped); default: all.
        batch_size: Pairs per model call, for model-based rerankers.

    """

    kind = "rerank"

    def __init__(
        self,
        top_k: int | None = None,
        min_score: float | None = None,
        candidates: int | None = None,
        batch_size: int = 32,
    ) -> None:
        for option, value in (("top_k", top_k), ("candidates", candidates), ("batch_size", batch_size)):
            if value is not None and value < 1:
                raise ConfigError(f"reranker {self.component_type!r}: {option} must be at least 1, got {value}")
        self.top_k = top_k
        self.min_score = min_score
        self.candidates = candidates
        self.batch_size = batch_size

    def score_many(self, questions: Sequence[str], hit_lists: Sequence[list[Hit]]) -> list[list[float]]:
        """A relevance score for each hit of each question (higher is more relevant)."""
        raise NotImplementedError

    def rerank_many(self, states: Sequence[QueryState], hit_lists: Sequence[list[Hit]]) -> list[list[Hit]]:
        """Each list reordered, rescored under this stage's label; default: by :meth:`score_many`."""
        scored = self.score_many([s.question for s in states], hit_lists)
        out = []
        for hits, scores in zip(hit_lists, scored, strict=True):
            order = sorted(range(len(hits)), key=lambda i: -scores[i])
            out.append([hits[i].rescored(float(scores[i]), self.label, "reranked", r) for r, i in enumerate(order, 1)])
        return out

    def run(self, states: list[QueryState]) -> None:
        """Rerank every question's candidates in one batch, then apply ``min_score`` and ``top_k``."""
        lists = [s.hits[: self.candidates] if self.candidates else list(s.hits) for s in states]
        reranked = self.rerank_many(states, lists)
        for state, hits in zip(states, reranked, strict=True):
            if self.min_score is not None:
                hits = [h for h in hits if h.score >= self.min_score]
            state.hits = hits[: self.top_k] if self.top_k else hits


# -- transforms and shapers ---------------------------------------------------------------------


class AdaptiveRule:
    """When an adaptive query transform runs: only for questions whose first retrieval looks weak.

    Rewrites mostly pay off on hard questions, and each costs a model call.
    A question is weak when the best score of ``retriever``'s list (default:
    the first retriever) is below ``min_score``, or when the first two
    retrievers agree on fewer than ``min_agreement`` of their top ``depth``
    chunks (0.0-1.0), or when nothing was found.
    """

    def __init__(
        self,
        min_score: float | None = None,
        min_agreement: float | None = None,
        retriever: str | None = None,
        depth: int = 5,
    ) -> None:
        self.min_score = min_score
        self.min_agreement = min_agreement
        self.retriever = retriever
        self.depth = depth

    @classmethod
    def parse(cls, data: Any, owner: str) -> AdaptiveRule:
        """The rule of an ``adaptive:`` option, or a :class:`ConfigError` naming what is wrong."""
        where = f"query transform {owner!r}: adaptive"
        if data is True:
            data = {"min_agreement": 0.4}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a mapping like {{min_score: 0.5}} or {{min_agreement: 0.4}}")
        unknown = set(data) - {"min_score", "min_agreement", "retriever", "depth"}
        if unknown:
            raise ConfigError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}")
        if data.get("min_score") is None and data.get("min_agreement") is None:
            raise ConfigError(f"{where} needs min_score or min_agreement")
        agreement = data.get("min_agreement")
        if agreement is not None and not 0 <= agreement <= 1:
            raise ConfigError(f"{where}: min_agreement must lie in [0, 1], got {agreement}")
        depth = int(data.get("depth", 5))
        if depth < 1:
            raise ConfigError(f"{where}: depth must be at least 1, got {depth}")
        return cls(data.get("min_score"), agreement, data.get("retriever"), depth)

    def describe(self) -> list[str]:
        """The rule's tests, for trace notes."""
        parts = []
        if self.min_score is not None:
            parts.append(f"best {self.retriever or 'first retriever'} score >= {self.min_score}")
        if self.min_agreement is not None:
            parts.append(f"top-{self.depth} agreement >= {self.min_agreement}")
        return parts

    def weak_reason(self, state: QueryState) -> str | None:
        """Why ``state``'s first retrieval is weak, or ``None`` when it is not."""
        first = [c for c in state.candidates if c.query_index == 0]
        if not any(c.hits for c in first):
            return "weak first retrieval: nothing found"
        if self.min_score is not None:
            chosen = [c for c in first if self.retriever in (None, c.retriever)][:1]
            best = chosen[0].hits[0].score if chosen and chosen[0].hits else float("-inf")
            if best < self.min_score:
                name = chosen[0].retriever if chosen else self.retriever
                return f"weak first retrieval: best {name} score {best:.3f} < {self.min_score}"
        if self.min_agreement is not None and len(first) >= 2:
            a = {h.chunk.id for h in first[0].hits[: self.depth]}
            b = {h.chunk.id for h in first[1].hits[: self.depth]}
            agreement = len(a & b) / self.depth
            if agreement < self.min_agreement:
                return (
                    f"weak first retrieval: {first[0].retriever} and {first[1].retriever} share "
                    f"{len(a & b)} of their top {self.depth} ({agreement:.2f} < {self.min_agreement})"
                )
        return None


class QueryTransformStage(Stage):
    """Writes new queries for each question (rewrites, hypothetical answers, sub-questions).

    Args:
        keep_original: Also retrieve with the question as asked.

    """

    kind = "transform"

    def __init__(self, keep_original: bool = True, adaptive: dict[str, Any] | None = None) -> None:
        self.keep_original = keep_original
        self.adaptive = AdaptiveRule.parse(adaptive, self.component_type) if adaptive is not None else None

    def weak_reason(self, state: QueryState) -> str | None:
        """Why the first retrieval of ``state`` looks weak (so this adaptive transform should run), or ``None``."""
        assert self.adaptive is not None
        return self.adaptive.weak_reason(state)

    def strong_note(self, state: QueryState) -> str:
        """The trace note of a question this adaptive transform left alone."""
        tests = self.adaptive.describe() if self.adaptive is not None else []
        return "skipped: the first retrieval looked strong enough (" + ", ".join(tests) + ")"

    def transform_many(self, states: Sequence[QueryState]) -> list[list[Query]]:
        """The new queries for each question."""
        raise NotImplementedError

    def run(self, states: list[QueryState]) -> None:
        """Add each question's new queries (replacing the question when ``keep_original`` is off)."""
        for state, queries in zip(states, self.transform_many(states), strict=True):
            if not queries:
                continue
            if not self.keep_original:
                state.queries = [q for q in state.queries if q.origin != "original"]
            state.queries.extend(queries)


class ContextShaperStage(Stage):
    """Reworks the final hits before they become the prompt (expand, compress, deduplicate)."""

    kind = "shape"

    def shape_many(self, states: Sequence[QueryState]) -> list[list[Hit]]:
        """Each question's hits, shaped."""
        raise NotImplementedError

    def run(self, states: list[QueryState]) -> None:
        """Replace each question's hits with their shaped version."""
        for state, hits in zip(states, self.shape_many(states), strict=True):
            state.hits = hits


# -- building -----------------------------------------------------------------------------------


def stage_types() -> dict[str, list[str]]:
    """Every known stage type, by role."""
    return {role: registry.available(role) for role in STAGE_ROLES}


def build_stage(config: Mapping[str, Any] | str, where: str = "stage") -> Stage:
    """Build a stage from ``{"type": NAME, "name": LABEL?, "role": ROLE?, **options}``.

    The type is looked up in every stage role (``role`` settles a name two
    roles share); an unknown type is a :class:`ConfigError` that lists the
    known ones.
    """
    if isinstance(config, str):
        config = {"type": config}
    if not isinstance(config, Mapping) or not isinstance(config.get("type"), str):
        raise ConfigError(f"{where}: a stage is a mapping with a 'type', got {config!r}")
    options = dict(config)
    kind_name = options.pop("type")
    label = options.pop("name", None) or kind_name
    role = options.pop("role", None)
    roles = [role] if role else list(STAGE_ROLES)
    if role is not None and role not in STAGE_ROLES:
        raise ConfigError(f"{where}: role must be one of {', '.join(STAGE_ROLES)}, got {role!r}")
    found: list[tuple[str, type]] = []
    for candidate in roles:
        try:
            found.append((candidate, registry.get(candidate, kind_name)))
        except NotFoundError:
            continue
    if not found:
        known = "; ".join(f"{r}: {', '.join(names) or 'none'}" for r, names in stage_types().items())
        raise ConfigError(f"{where}: unknown stage type {kind_name!r}; known types - {known}")
    if len(found) > 1:
        raise ConfigError(
            f"{where}: stage type {kind_name!r} exists as {' and '.join(r for r, _ in found)}; add 'role:' to choose"
        )
    _, cls = found[0]
    if not (isinstance(cls, type) and issubclass(cls, Stage)):
        raise ConfigError(f"{where}: {kind_name!r} is not a pipeline stage ({cls!r})")
    if not isinstance(label, str) or not label or any(c in label for c in "#: "):
        raise ConfigError(f"{where}: name must be a non-empty word without '#', ':' or spaces, got {label!r}")
    try:
        stage = cls.from_config(options)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    stage.label = label
    return stage


def check_order(stages: Sequence[Stage], where: str = "stages") -> None:
    """Refuse stage lists that cannot work, saying which stage is out of place and why."""
    if not any(s.kind == "retrieve" for s in stages):
        raise ConfigError(f"{where}: a pipeline needs at least one retriever (dense, lexical ...)")
    labels: set[str] = set()
    for position, stage in enumerate(stages):
        if stage.label in labels:
            raise ConfigError(f"{where}[{position}]: two stages are named {stage.label!r}; give one a 'name:'")
        labels.add(stage.label)
        for before in stages[:position]:
            if _ORDER[before.kind] > _ORDER[stage.kind]:
                raise ConfigError(
                    f"{where}[{position}] ({stage.label}): a {stage.kind} stage cannot come after the "
                    f"{before.kind} stage {before.label!r}; the order is transform -> retrieve -> fuse -> "
                    "rerank -> shape"
                )
    fusers = [s for s in stages if s.kind == "fuse"]
    if len(fusers) > 1:
        raise ConfigError(f"{where}: only one fusion stage may run; found {', '.join(s.label for s in fusers)}")
