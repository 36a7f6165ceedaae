"""The configuration of a RAG pipeline, as saved in ``pipelines/<name>.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ragkit.config import ComponentConfig
from ragkit.errors import ConfigError
from ragkit.rag.prompt import DEFAULT_NO_ANSWER, PromptTemplate
from ragkit.yaml_io import read_mapping, validate

DEFAULT_MIN_SCORE = 0.2


class RetrievalSettings(BaseModel):
    """How context is retrieved.

    A pipeline without ``stages`` retrieves with one retriever, ``mode``
    (default ``dense``), and drops hits under ``min_score``. A pipeline with
    ``stages`` names its retrievers there; ``mode`` then picks one of them
    alone for every request (as ``--mode`` does for one request), and
    ``min_score`` belongs on the stages.
    """

    model_config = ConfigDict(extra="forbid")

    mode: str | None = None
    """A retriever type (``dense``, ``lexical`` ...); default: the stages', or ``dense`` without stages."""
    top_k: int = Field(default=5, ge=1, le=100)
    """Hits handed to the generator (the last stage's best), unless a request names its own ``top_k``."""
    min_score: float | None = DEFAULT_MIN_SCORE
    """Hits scoring below this are not used (cosine for ``dense``, BM25 for ``lexical``).

    When none is left the answer says the documents do not answer the
    question, and no model runs. ``None``: use every hit. Only for a
    pipeline without ``stages``: a stage takes its own ``min_score``.
    """


class ContextSettings(BaseModel):
    """How the retrieved blocks are fitted into the prompt."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int = Field(default=1500, ge=32)
    """Token budget for the blocks, counted with the generator's tokenizer.

    The budget also shrinks to what the generator's context window leaves
    after the prompt template, the question and the answer.
    """
    history_tokens: int = Field(default=512, ge=0)
    """Tokens of conversation history put into the prompt (the most recent turns); 0: none."""
    summarise_history: bool = True
    """Summarise the turns that do not fit ``history_tokens`` with the generator (one call, cached); else a note."""


class AnswerSettings(BaseModel):
    """How the answer is generated."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    no_answer: str = DEFAULT_NO_ANSWER
    """The answer given when nothing relevant was retrieved."""
    max_question_chars: int = Field(default=4000, ge=1)
    """Longer questions are refused with an :class:`~ragkit.errors.InputError`."""


class CitationSettings(BaseModel):
    """How the answer's citations are found."""

    model_config = ConfigDict(extra="forbid")

    infer_when_missing: bool = True
    """When the model cites nothing, attribute its sentences to blocks by word overlap (marked ``inferred``)."""
    min_overlap: float = Field(default=0.5, gt=0.0, le=1.0)
    """Share of a sentence's content words a block must contain to be inferred as its source."""


class PipelineConfig(BaseModel):
    """Everything that shapes a basic RAG pipeline."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["basic", "rag"] = "basic"
    description: str = ""
    stages: list[ComponentConfig | str] = Field(default_factory=list)
    """The query stages before generation, in order (transform, retrieve, fuse, rerank, shape).

    Empty: one retriever, ``retrieval.mode``, with ``retrieval.min_score`` (the basic pipeline).
    """
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    context: ContextSettings = Field(default_factory=ContextSettings)
    generator: ComponentConfig = Field(default_factory=lambda: {"type": "transformers"})
    prompt: PromptTemplate = Field(default_factory=PromptTemplate)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    citations: CitationSettings = Field(default_factory=CitationSettings)

    @field_validator("generator")
    @classmethod
    def _has_type(cls, value: ComponentConfig) -> ComponentConfig:
        if "type" not in value:
            raise ValueError("needs a 'type' key")
        return value

    @model_validator(mode="after")
    def _stages_own_their_thresholds(self) -> PipelineConfig:
        if self.stages and self.retrieval.min_score != DEFAULT_MIN_SCORE:
            raise ValueError(
                "retrieval.min_score applies to a pipeline without stages; with stages, give the retriever "
                "stage its own min_score (or add a threshold stage)"
            )
        return self

    def stage_configs(self) -> list[ComponentConfig | str]:
        """The stages to build: ``stages``, or the single retriever of a pipeline without them."""
        if self.stages:
            return list(self.stages)
        return [{"type": self.retrieval.mode or "dense", "min_score": self.retrieval.min_score}]

    @classmethod
    def parse(cls, data: Any, where: str = "pipeline config") -> PipelineConfig:
        """Validate a dict (a recipe's ``pipeline:`` section, or the section itself)."""
        if isinstance(data, dict) and isinstance(data.get("pipeline"), dict):
            description = data.get("description")
            data = dict(data["pipeline"])
            if description and "description" not in data:
                data["description"] = description
        return validate(cls, data or {}, where)

    @classmethod
    def from_yaml(cls, path: Path) -> PipelineConfig:
        """Read a recipe file, with errors that name the file and field."""
        data = read_mapping(path, "pipeline")
        if "pipeline" not in data:
            raise ConfigError(f"{path} has no 'pipeline:' section (is it a collection recipe?)")
        return cls.parse(data, where=str(path))


def load_pipeline_config(name_or_path: str) -> PipelineConfig:
    """The pipeline config of a recipe name (``basic``) or YAML file."""
    from ragkit.recipes import find_recipe

    return PipelineConfig.from_yaml(find_recipe(name_or_path))
