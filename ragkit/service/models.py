"""Request and response models of the ragkit routes (the OpenAI-compatible ones are in ``routes/openai.py``).

The models of what a pipeline returns (:class:`AnswerModel`, :class:`CitationModel`,
:class:`UsageModel`) are made from the dataclasses of :mod:`ragkit.rag.answer`
by :func:`~ragkit.service.model_mirror.mirrors`: every dataclass field is a REST
field, so the REST shapes cannot drift from the Python ones. :class:`HitModel`
is declared field by field (a hit's JSON flattens its chunk); a test holds it to
``Hit.to_dict()``. In REST, every hit and citation also carries the ``url`` of
its source (:func:`rest_hits`, :func:`rest_citation`, :func:`rest_answer`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from ragkit.generation.base import Usage
from ragkit.rag.answer import Answer, Citation
from ragkit.schema import Hit, hit_dicts
from ragkit.service.model_mirror import mirrors
from ragkit.service.tasks import TaskStatus

Mode = Literal["dense", "lexical"]
FilterSpec = str | dict[str, Any]
_FILTER_DOC = (
    "A metadata filter: an expression such as 'file_type == \"pdf\" and page >= 2', "
    'or a dict such as {"file_type": {"$in": ["pdf", "md"]}}'
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- collections ---------------------------------------------------------------------------


class CreateCollection(_Strict):
    """A new collection: its name and, optionally, a recipe name or a collection config."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", examples=["handbook"])
    recipe: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
        description="A collection recipe name (a file in the recipe folders, e.g. 'default'); never a path",
    )
    config: dict[str, Any] | None = Field(
        default=None, description="A collection config (loader, splitter, embedder, store, lexical ...)"
    )


class ReindexCollection(_Strict):
    """A collection's new configuration: rebuilt from its sources in the background, then swapped in atomically."""

    recipe: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
        description="A collection recipe name (a file in the recipe folders, e.g. 'default'); never a path",
    )
    config: dict[str, Any] | None = Field(
        default=None, description="The new collection config (loader, splitter, embedder, store, lexical ...)"
    )
    drop_missing: bool = Field(
        default=False, description="Leave out sources whose files are gone (otherwise the job fails listing them)"
    )


class CollectionCounts(BaseModel):
    """How much a collection holds."""

    chunks: int
    sources: int


class CollectionInfo(BaseModel):
    """A collection: name, configuration, embedding and counts."""

    name: str
    config: dict[str, Any]
    embedding: dict[str, Any]
    counts: CollectionCounts
    stats: dict[str, Any]


class CollectionList(BaseModel):
    """The collections the caller may see."""

    collections: list[str]


# -- documents and jobs --------------------------------------------------------------------


class DocumentInfo(BaseModel):
    """One ingested source."""

    id: str = Field(description="Stable id of the source (use it to delete the document)")
    name: str = Field(description="The uploaded file name, or the source path for documents ingested by path")
    source: str
    uploaded: bool
    chunks: int
    size: int
    content_hash: str
    modified: float = Field(description="The file's modification time (seconds since the epoch)")


class DocumentList(BaseModel):
    """The sources of a collection."""

    collection: str
    documents: list[DocumentInfo]


class IngestPath(_Strict):
    """A server-side file or folder to ingest (it must lie inside one of the service's ingest roots)."""

    path: str = Field(min_length=1, max_length=4096)
    sync: bool = Field(default=False, description="Also delete sources under the path that no longer exist")
    source_prefix: str = Field(
        default="",
        max_length=1024,
        description="Put the source ids under this folder ('team/' gives 'team/hr/a.docx'); ids are relative to path",
    )


class FileIssueModel(BaseModel):
    """A file that was not ingested, and why."""

    source: str
    reason: str


class JobCounts(BaseModel):
    """What the ingest did, file by file and chunk by chunk."""

    added: int
    updated: int
    unchanged: int
    deleted: int
    failed: int
    skipped: int
    chunks_written: int
    chunks_embedded: int
    chunks_deleted: int


class JobError(BaseModel):
    """Why a job failed as a whole."""

    type: str
    message: str


class JobInfo(BaseModel):
    """An ingest job."""

    id: str
    collection: str
    kind: Literal["upload", "path", "reindex"]
    status: Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"] = Field(
        description="interrupted: the service stopped while the job was queued or running and did not resume it"
    )
    sources: list[str]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: JobCounts | None
    errors: list[FileIssueModel] = Field(description="Files that failed (corrupt, unreadable ...)")
    skipped: list[FileIssueModel] = Field(description="Files skipped (unsupported type ...)")
    report: dict[str, Any] | None = Field(description="The whole ingest report")
    error: JobError | None
    reindex: dict[str, Any] | None = Field(
        default=None,
        description="A reindex job's report once it swapped: sources, dropped, chunks_before, chunks_after, config",
    )
    progress: dict[str, int] | None = Field(
        default=None, description="files_done and files_total while the ingest runs (and as it ended)"
    )
    resumed: int = Field(default=0, description="How many times a restart of the service resumed this job")
    resumed_at: datetime | None = None
    not_ingested: list[str] | None = Field(
        default=None, description="An interrupted job's files that are not in the collection (send them again)"
    )


class JobList(BaseModel):
    """Ingest jobs, newest first."""

    jobs: list[JobInfo]


# -- evaluations ---------------------------------------------------------------------------


class EvaluationRequest(_Strict):
    """An evaluation to run: a suite file on the server or an inline suite, optionally narrowed."""

    suite: str | dict[str, Any] = Field(
        description=(
            "A suite file on the server, inside the ingest roots (a relative path is looked up under each "
            "root), e.g. 'suites/smoke.yaml'; or an inline suite (the YAML suite format as JSON, which needs "
            "the admin scope), whose relative paths resolve against the first ingest root"
        ),
        examples=["suites/smoke.yaml"],
    )
    sample: int | None = Field(default=None, ge=1, description="Evaluate this many questions instead of the suite's")
    pipelines: list[str] | None = Field(
        default=None, min_length=1, description="Run only these pipelines of the suite (by name)"
    )


class EvaluationProgress(BaseModel):
    """How far a run is: the stage (ingest, a pipeline, a pipeline's metric) and its counts."""

    stage: str
    done: int
    total: int
    errors: int


class EvaluationInfo(BaseModel):
    """An evaluation run: its request, status, progress and, once it succeeded, the summary and report links."""

    id: str
    suite: str = Field(description="The suite file on the server, or 'suite' for an inline suite")
    suite_name: str
    sample: int | None
    pipelines: list[str] | None
    requested_by: str | None = Field(description="The API key name that started the run")
    owner: str | None = Field(default=None, description="The key the run belongs to (may delete and cancel it)")
    collections: list[str] | None = Field(
        default=None, description="The collections the run reads; a key needs read access to all of them to see it"
    )
    status: TaskStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: EvaluationProgress
    summary: dict[str, Any] | None = Field(
        description="The JSON report without its samples: suite, versions, questions, per-pipeline aggregates"
    )
    error: JobError | None
    reports: dict[str, str] = Field(description="Report format (json, markdown, html) → URL, once succeeded")


class EvaluationList(BaseModel):
    """Evaluation runs, newest first."""

    evaluations: list[EvaluationInfo]


# -- search and ask ------------------------------------------------------------------------


class SearchRequest(_Strict):
    """A search over one collection: plain dense or lexical retrieval, or a configured pipeline's stages."""

    query: str = Field(min_length=1, max_length=10_000)
    top_k: int = Field(default=5, ge=1, le=100)
    filters: FilterSpec | None = Field(default=None, description=_FILTER_DOC)
    mode: Mode | None = Field(
        default=None, description="dense or lexical (default dense); with a pipeline, one of its retrievers alone"
    )
    pipeline: str | None = Field(
        default=None,
        description="Search with a configured pipeline's stages (hybrid, rerankers ...) instead of one retriever",
    )


class SearchResponse(BaseModel):
    """The best chunks, best first, with what each pipeline stage did."""

    query: str
    mode: Mode | None
    pipeline: str | None = None
    hits: list[HitModel]
    queries: list[dict[str, Any]] = Field(default_factory=list, description="The queries retrieval used")
    trace: list[dict[str, Any]] = Field(
        default_factory=list, description="Each stage: its output, seconds, model calls, notes and errors"
    )


class AskRequest(_Strict):
    """A question to answer from one collection."""

    question: str = Field(min_length=1, description="The question (the pipeline limits its length)")
    pipeline: str | None = Field(default=None, description="A configured pipeline name (default: the service's)")
    top_k: int | None = Field(default=None, ge=1, le=100)
    filters: FilterSpec | None = Field(default=None, description=_FILTER_DOC)
    mode: Mode | None = None
    stream: bool = Field(default=False, description="Answer as Server-Sent Events")
    max_tokens: int | None = Field(
        default=None, ge=1, le=8192, description="Answer length limit; at most the pipeline's answer.max_tokens"
    )
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    conversation_id: str | None = Field(
        default=None,
        max_length=64,
        description="Continue this stored conversation ('new' starts one): its history is used and this turn kept",
    )


_URL_DOC = "Where to download the source: /v1/collections/{collection}/sources/{source}"


class HitModel(BaseModel):
    """A retrieved chunk: rank, score, origin, location, text and metadata (``Hit.to_dict()`` + ``url``).

    The location fields (``source`` ... ``title``) are spelled as in a citation.
    """

    rank: int = Field(description="Its 1-based position in its list")
    score: float = Field(description="The score of the last stage that scored it")
    origin: str = Field(description="That stage's kind: dense, lexical, fused or reranked")
    chunk_id: str
    document_id: str
    source: str = Field(description="The source id: a path relative to its ingest root, or the upload's name")
    uri: str | None = Field(description="The source's URI, when its loader recorded one")
    start: int = Field(description="Character offset of the chunk in its document's text")
    end: int = Field(description="Character offset just past the chunk in its document's text")
    page: int | None
    section: str | None
    row: int | None = Field(description="The row or item of a CSV, JSON or JSONL file")
    title: str | None
    text: str
    metadata: dict[str, Any]
    scores: dict[str, float] = Field(description="Each stage's score for this hit, by stage")
    ranks: dict[str, int] = Field(description="Each stage's rank for this hit (from 1)")
    url: str = Field(description=_URL_DOC)


SearchHit = HitModel
"""The old name of :class:`HitModel` (search hits and an answer's hits have one shape)."""


@mirrors(Citation, extra=("url",))
class CitationModel(BaseModel):
    """A numbered source the answer cites (``Citation.to_dict()`` + ``url``), located as a hit is."""

    url: str = Field(description=_URL_DOC)


@mirrors(Usage, extra=("total_tokens",))
class UsageModel(BaseModel):
    """Tokens of the answer."""

    total_tokens: int


@mirrors(Answer)
class AnswerModel(BaseModel):
    """A generated answer with its citations, the hits it was built from, usage and timings."""

    finish_reason: str
    citations: list[CitationModel]
    hits: list[HitModel]
    queries: list[dict[str, Any]] = Field(default_factory=list, description="The queries retrieval used")
    trace: list[dict[str, Any]] = Field(
        default_factory=list, description="Each stage: its output, seconds, model calls, notes and errors"
    )
    conversation_id: str | None = Field(default=None, description="The stored conversation this turn was added to")


# -- conversations -------------------------------------------------------------------------


class TurnModel(BaseModel):
    """One question and its answer in a stored conversation."""

    question: str
    answer: str
    citations: list[dict[str, Any]]
    standalone: str | None = Field(
        default=None, description="The standalone question a condense stage made of a follow-up"
    )
    created: float


class ConversationModel(BaseModel):
    """A stored conversation (``turns`` is empty in a list)."""

    id: str
    title: str | None
    created: float
    updated: float
    turn_count: int
    turns: list[TurnModel] = Field(default_factory=list)


class ConversationList(BaseModel):
    """The caller's conversations, most recent first."""

    conversations: list[ConversationModel]


# -- health --------------------------------------------------------------------------------


class Health(BaseModel):
    """Liveness."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """Readiness: each check and whether it passed."""

    status: Literal["ready", "not ready"]
    checks: dict[str, str]


# -- the REST form of hits, citations and answers ------------------------------------------


def source_url(collection: str, source: str) -> str:
    """The download route of ``source`` in ``collection``."""
    return f"/v1/collections/{quote(collection)}/sources/{quote(source, safe='/')}"


def rest_hits(hits: list[Hit], collection: str) -> list[dict[str, Any]]:
    """Each hit's JSON shape (:meth:`Hit.to_dict`, ranked from 1) with its source's ``url``."""
    return [{**data, "url": source_url(collection, data["source"])} for data in hit_dicts(hits)]


def rest_citation(citation: Citation, collection: str) -> dict[str, Any]:
    """The citation's JSON shape (:meth:`Citation.to_dict`) with its source's ``url``."""
    return {**citation.to_dict(), "url": source_url(collection, citation.source)}


def rest_answer(answer: Answer, collection: str) -> dict[str, Any]:
    """:meth:`Answer.to_dict` with a ``url`` on every hit and citation."""
    data = answer.to_dict()
    data["hits"] = rest_hits(answer.hits, collection)
    data["citations"] = [rest_citation(c, collection) for c in answer.citations]
    return data
