"""Evaluation suites: a YAML file naming documents, questions, pipelines and metrics.

::

    name: smoke
    documents:
      path: ../datasets/sample-docs          # relative to this file
      loader: {include: ["*.md", "*.txt"]}    # LoaderOptions, as in a collection config
      collection: default                     # a recipe name, or an inline collection config
    questions: smoke-questions.jsonl          # or {path: ..., format: squad-dev}
    pipelines:
      - {name: dense, retrieval_only: true, mode: dense}
      - basic                                 # pipelines/basic.yaml
      - {name: short, recipe: basic, config: {answer: {max_tokens: 16}}}
    metrics: [answer_hit, recall, mrr, ndcg, exact_match, f1]
    k: [1, 3, 5]
    sample: null                              # or N questions, drawn with `seed`
    seed: 0

:func:`load_suite` validates everything a run needs before anything runs —
files exist, pipelines and metrics are known, options are valid — and
raises one :class:`~ragkit.errors.ConfigError` that names the file and the
field at fault.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from ragkit.config import CollectionConfig, ComponentConfig, LoaderOptions
from ragkit.errors import ConfigError, NotFoundError, RagkitError
from ragkit.evaluation.sample import EvalQuestion
from ragkit.yaml_io import read_mapping, validate

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$"
QuestionFormat = Literal["ragkit", "squad-dev"]


class DocumentsSpec(BaseModel):
    """The document folder to ingest and how."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    """The folder (relative paths are relative to the suite file)."""
    loader: LoaderOptions | None = None
    """How the folder is walked and parsed (replaces the collection config's ``loader``)."""
    collection: str | dict[str, Any] | None = None
    """A collection recipe name or file (``default``), or an inline collection config; default: the defaults."""

    @model_validator(mode="before")
    @classmethod
    def _folder_shorthand(cls, data: Any) -> Any:
        return {"path": data} if isinstance(data, str) else data


class QuestionsSpec(BaseModel):
    """The questions file and its format."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    """A JSON-lines file (relative paths are relative to the suite file)."""
    format: QuestionFormat = "ragkit"
    """``ragkit`` (the suite format) or ``squad-dev`` (converted while reading)."""

    @model_validator(mode="before")
    @classmethod
    def _file_shorthand(cls, data: Any) -> Any:
        return {"path": data} if isinstance(data, str) else data


class PipelineSpec(BaseModel):
    """One pipeline to evaluate: a recipe, an inline config, or retrieval only."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME_PATTERN)
    recipe: str | None = None
    """A pipeline recipe name (``basic``) or YAML file; ``config`` is merged over it."""
    config: dict[str, Any] | None = None
    """An inline pipeline config (as under ``pipeline:`` in a recipe)."""
    retrieval_only: bool = False
    """Only retrieve (batched), no generation: scores retrieval metrics only.

    With a ``recipe`` or ``config``, its stages run (hybrid retrieval, rerankers ...); without, one retriever
    (``mode``) with no score threshold.
    """
    mode: Literal["dense", "lexical"] | None = None
    """Search mode (default: dense, or the recipe's)."""
    top_k: int | None = Field(default=None, ge=1)
    """Hits to retrieve (default: the largest ``k`` for retrieval only, else the recipe's)."""

    @model_validator(mode="before")
    @classmethod
    def _recipe_shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"name": data.rsplit("/", 1)[-1].removesuffix(".yaml").removesuffix(".yml"), "recipe": data}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSpec:
        if not self.retrieval_only and self.recipe is None and self.config is None:
            self.recipe = self.name  # {name: basic} means the recipe 'basic'
        return self


class MetricSpec(BaseModel):
    """A metric and its options.

    Written ``recall``, ``{name: recall, backend: python}``, or with ``type`` naming
    the metric when an option is itself called ``name``: ``{type: ragas, name: NoiseSensitivity}``.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"name": data}
        if isinstance(data, Mapping) and "type" in data:  # {type: ragas, name: NoiseSensitivity}: all else is options
            return {"name": data["type"], "options": {k: v for k, v in data.items() if k != "type"}}
        if isinstance(data, Mapping) and "options" not in data:
            return {"name": data.get("name"), "options": {k: v for k, v in data.items() if k != "name"}}
        return data


@dataclass(slots=True)
class PipelineRun:
    """A suite pipeline made concrete: retrieval-only settings, or a parsed :class:`PipelineConfig`."""

    name: str
    retrieval_only: bool
    mode: str
    top_k: int
    config: Any = None
    """The :class:`~ragkit.rag.config.PipelineConfig` of a RAG pipeline (``None`` for retrieval only)."""
    recipe: str | None = None

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description for reports."""
        data: dict[str, Any] = {
            "name": self.name,
            "kind": "retrieval" if self.retrieval_only else "rag",
            "mode": self.mode,
            "top_k": self.top_k,
        }
        if self.recipe is not None:
            data["recipe"] = self.recipe
        if self.config is not None:
            data["config"] = self.config.model_dump(mode="json")
        return data


class Suite(BaseModel):
    """An evaluation suite (see the module docstring for the YAML form)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME_PATTERN)
    description: str = ""
    documents: DocumentsSpec
    questions: QuestionsSpec
    pipelines: list[PipelineSpec] = Field(min_length=1)
    metrics: list[MetricSpec] = Field(min_length=1)
    k: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [1, 3, 5], min_length=1)
    """Cut-offs for the per-``k`` metrics (answer_hit@k, recall@k ...)."""
    sample: int | None = Field(default=None, ge=1)
    """Evaluate this many questions, drawn with ``seed`` (``None``: all)."""
    seed: int = 0
    judge: ComponentConfig | None = None
    """The generator config of the LLM judge, for LLM-judged metrics."""
    embedder: ComponentConfig | None = None
    """An embedder config for metrics that compare embeddings (default: the collection's)."""
    judge_cache: bool = True
    """Cache the judge's calls on disk, in ``judge-cache/`` of the eval store (shared by runs): a re-run
    with the same judge, prompts and options makes no judge calls. A metric's own ``cache_dir`` wins."""
    answer_cache: bool = False
    """Replay a RAG pipeline's answers from ``answer-cache/`` of the eval store when the pipeline, its
    generator, the question and the retrieved hits are all unchanged (greedy pipelines only); see
    :mod:`ragkit.evaluation.answer_cache`. Off by default: the answers are what a suite tests."""
    concurrency: int = Field(default=1, ge=1, le=256)
    """Questions asked at once (for server generators; the local model runs one at a time anyway)."""

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: str = PrivateAttr(default="suite")
    _questions: list[EvalQuestion] | None = PrivateAttr(default=None)

    @field_validator("k")
    @classmethod
    def _sorted_unique(cls, value: list[int]) -> list[int]:
        return sorted(set(value))

    @field_validator("judge", "embedder")
    @classmethod
    def _has_type(cls, value: ComponentConfig | None) -> ComponentConfig | None:
        if value is not None and "type" not in value:
            raise ValueError("needs a 'type' key")
        return value

    @model_validator(mode="after")
    def _unique_pipelines(self) -> Suite:
        names = [p.name for p in self.pipelines]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"pipeline names must be unique; repeated: {', '.join(twice)}")
        return self

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def parse(cls, data: Any, base_dir: str | Path | None = None, where: str = "suite") -> Suite:
        """Validate a dict; relative paths resolve against ``base_dir`` (default: the working folder)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: a suite is a mapping with name, documents, questions, pipelines, metrics")
        suite = validate(cls, data, where)
        suite._base_dir = Path(base_dir or Path.cwd()).expanduser().resolve()
        suite._source = where
        return suite

    @property
    def source(self) -> str:
        """The suite file (or ``suite`` for one built in Python), for messages."""
        return self._source

    @property
    def base_dir(self) -> Path:
        """The folder relative paths are resolved against."""
        return self._base_dir

    def resolve(self, path: Path) -> Path:
        """``path`` made absolute against the suite's folder."""
        return (self._base_dir / path.expanduser()).resolve()

    @property
    def documents_dir(self) -> Path:
        """The absolute document folder."""
        return self.resolve(self.documents.path)

    @property
    def questions_file(self) -> Path:
        """The absolute questions file."""
        return self.resolve(self.questions.path)

    def paths_read(self) -> list[tuple[str, Path]]:
        """``(field, absolute path)`` of every file or folder the suite reads (the service checks them)."""
        paths = [("documents.path", self.documents_dir), ("questions.path", self.questions_file)]
        collection = self.documents.collection
        if isinstance(collection, str) and _is_path(collection):
            paths.append(("documents.collection", self.resolve(Path(collection))))
        for index, spec in enumerate(self.pipelines):
            if spec.recipe is not None and _is_path(spec.recipe):
                paths.append((f"pipelines[{index}].recipe", self.resolve(Path(spec.recipe))))
        return paths

    def _fail(self, field: str, message: str) -> ConfigError:
        return ConfigError(f"{self._source}: {field}: {message}")

    # -- checks and resolution -------------------------------------------------------------------

    def check(self) -> Suite:
        """Check what validation alone cannot: files exist, recipes, pipelines and metrics resolve."""
        if not self.documents_dir.is_dir():
            raise self._fail("documents.path", f"folder {self.documents_dir} does not exist")
        if not self.questions_file.is_file():
            raise self._fail("questions.path", f"file {self.questions_file} does not exist")
        self.load_questions()
        self.collection_config()
        self.pipeline_runs()
        self.build_metrics()
        return self

    def load_questions(self) -> list[EvalQuestion]:
        """Every question of the questions file, read and checked once (errors name the file and line)."""
        if self._questions is None:
            from ragkit.evaluation.questions import load_questions

            self._questions = load_questions(self.questions_file, self.documents_dir, self.questions.format)
        return self._questions

    def collection_config(self) -> CollectionConfig:
        """The collection config: the recipe or inline config, with the suite's loader options."""
        spec = self.documents.collection
        try:
            if isinstance(spec, str):
                from ragkit.recipes import find_recipe

                recipe = str(self.resolve(Path(spec))) if _is_path(spec) else spec
                config = CollectionConfig.from_yaml(find_recipe(recipe))
            else:
                config = CollectionConfig.parse(spec or {}, where="documents.collection")
        except RagkitError as exc:
            raise self._fail("documents.collection", str(exc)) from None
        if self.documents.loader is not None:
            config = config.model_copy(update={"loader": self.documents.loader})
        return config

    def collection_name(self) -> str:
        """The eval collection's name: the suite's name and a hash of the folder and collection config."""
        key = json.dumps(
            {"documents": str(self.documents_dir), "config": self.collection_config().model_dump(mode="json")},
            sort_keys=True,
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:10]
        return f"{self.name[:48]}-{digest}"

    def pipeline_runs(self) -> list[PipelineRun]:
        """Every pipeline, resolved: recipes read and merged with inline configs."""
        return [self._pipeline_run(i, spec) for i, spec in enumerate(self.pipelines)]

    def _pipeline_run(self, index: int, spec: PipelineSpec) -> PipelineRun:
        where = f"pipelines[{index}] ({spec.name})"
        if spec.retrieval_only and spec.recipe is None and spec.config is None:
            return PipelineRun(spec.name, True, spec.mode or "dense", spec.top_k or max(self.k))
        from ragkit.rag.config import PipelineConfig

        base: dict[str, Any] = {}
        if spec.recipe is not None:
            base = self._recipe(where, spec.recipe).model_dump(mode="json")
        merged = _deep_merge(base, spec.config or {})
        if spec.mode is not None:
            merged = _deep_merge(merged, {"retrieval": {"mode": spec.mode}})
        if spec.top_k is not None:
            merged = _deep_merge(merged, {"retrieval": {"top_k": spec.top_k}})
        config = PipelineConfig.parse(merged, where=f"{self._source}: {where}: config")
        mode = config.retrieval.mode or "dense"
        if spec.retrieval_only:
            return PipelineRun(spec.name, True, mode, spec.top_k or max(self.k), config, spec.recipe)
        return PipelineRun(spec.name, False, mode, config.retrieval.top_k, config, spec.recipe)

    def _recipe(self, where: str, recipe: str) -> Any:
        from ragkit.rag.config import PipelineConfig
        from ragkit.recipes import available_recipes, find_recipe

        is_path = _is_path(recipe)
        try:
            path = find_recipe(str(self.resolve(Path(recipe))) if is_path else recipe)
        except NotFoundError:
            if is_path:
                raise ConfigError(
                    f"{self._source}: {where}: pipeline file {self.resolve(Path(recipe))} does not exist"
                ) from None
            known = _pipeline_recipes(available_recipes())
            raise ConfigError(
                f"{self._source}: {where}: unknown pipeline {recipe!r}; known pipeline recipes: "
                f"{', '.join(known) or 'none'} (or use retrieval_only: true, or an inline config)"
            ) from None
        try:
            return PipelineConfig.from_yaml(path)
        except ConfigError as exc:
            raise ConfigError(f"{self._source}: {where}: {exc}") from None

    def metric_entries(self) -> list[tuple[str, dict[str, Any]]]:
        """``(name, options)`` of each metrics entry."""
        return [(m.name, dict(m.options)) for m in self.metrics]

    def build_metrics(self, store_dir: Path | None = None) -> list[Any]:
        """The metric instances (one per ``k`` for per-cut-off metrics); judged ones cache in ``store_dir``."""
        from ragkit.evaluation.metrics import build_metrics

        try:
            cache = str(store_dir / "judge-cache") if store_dir is not None and self.judge_cache else None
            return build_metrics(self.metric_entries(), self.k, self.judge, self.embedder, cache)
        except ConfigError as exc:
            raise ConfigError(f"{self._source}: {exc}") from None

    def with_overrides(
        self, sample: int | None = None, pipelines: Sequence[str] | None = None, answer_cache: bool | None = None
    ) -> Suite:
        """A copy with another ``sample`` size, only the named pipelines, and/or the answer cache on or off.

        The pipelines keep the suite's order.
        """
        update: dict[str, Any] = {}
        if answer_cache is not None:
            update["answer_cache"] = answer_cache
        if sample is not None:
            if sample < 1:
                raise ConfigError(f"--sample must be at least 1, got {sample}")
            update["sample"] = sample
        if pipelines:
            names = [p.name for p in self.pipelines]
            unknown = [p for p in pipelines if p not in names]
            if unknown:
                raise ConfigError(
                    f"{self._source}: no pipeline named {', '.join(map(repr, unknown))} in this suite "
                    f"(it has: {', '.join(names)})"
                )
            update["pipelines"] = [p for p in self.pipelines if p.name in set(pipelines)]
        copy = self.model_copy(update=update)
        copy._base_dir = self._base_dir
        copy._source = self._source
        copy._questions = self._questions
        return copy

    def to_dict(self) -> dict[str, Any]:
        """The suite as JSON-ready data, with its file and resolved folders."""
        data = self.model_dump(mode="json")
        data["file"] = self._source
        data["documents"]["resolved_path"] = str(self.documents_dir)
        data["questions"]["resolved_path"] = str(self.questions_file)
        return data


def _is_path(recipe: str) -> bool:
    """Whether a recipe reference is a file path rather than a recipe name."""
    return "/" in recipe or recipe.endswith((".yaml", ".yml"))


def _pipeline_recipes(names: Sequence[str]) -> list[str]:
    """The recipe names that hold a ``pipeline:`` section (not collection recipes)."""
    from ragkit.recipes import find_recipe

    found = []
    for name in names:
        try:
            data = read_mapping(find_recipe(name), "recipe")
        except RagkitError:
            continue
        if "pipeline" in data:
            found.append(name)
    return found


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` merged into ``base``; nested mappings merge, everything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_suite(path: str | Path, check: bool = True) -> Suite:
    """Read, validate and check a suite file; any mistake is a :class:`ConfigError` naming file and field.

    With ``check=False`` the files the suite names are not opened yet (the
    service first checks that they lie where it may read), call
    :meth:`Suite.check` then.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"suite file {file} does not exist")
    data = read_mapping(file, "suite")
    suite = Suite.parse(data, base_dir=file.resolve().parent, where=str(file))
    return suite.check() if check else suite
