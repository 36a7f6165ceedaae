"""Built-in tools over collections: ``search``, ``ask`` and ``list_collections``.

Each is configured like any component (``{type: search, collection: docs,
pipeline: hybrid}``) and opens its collection and pipeline on first use,
keeping them for the tool's life (:meth:`CollectionTools.close` lets them
go). The calculator lives in :mod:`ragkit.agents.calculator`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic
from pydantic import BaseModel, ConfigDict

from ragkit.agents.tools import Tool, ToolError, ToolOutput
from ragkit.errors import ConfigError, FilterError, NotFoundError
from ragkit.registry import register
from ragkit.schema import Hit, chunk_location, hit_dicts

if TYPE_CHECKING:
    from ragkit.collection import Collection
    from ragkit.rag import RagPipeline
    from ragkit.rag.config import PipelineConfig

QUERY_CHARS = 1000
"""Longest query or question a tool accepts."""

_FILTERS_HELP = (
    'Optional metadata filter, as an expression like source == "guide.md" and page >= 2 '
    'or as JSON like {"source": "guide.md"}; list_collections shows the fields. Leave it out to search everything.'
)


def _pipeline_config(pipeline: str | Mapping[str, Any] | None, where: str) -> PipelineConfig | None:
    """The pipeline's config (a recipe name, a YAML path or a config mapping), checked now."""
    from ragkit.rag.config import PipelineConfig, load_pipeline_config

    if pipeline is None:
        return None
    if isinstance(pipeline, str):
        try:
            return load_pipeline_config(pipeline)
        except NotFoundError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if isinstance(pipeline, Mapping):
        return PipelineConfig.parse(dict(pipeline), where=f"{where}: pipeline")
    raise ConfigError(f"{where}: pipeline must be a recipe name, a YAML path or a mapping, got {pipeline!r}")


def _no_filters(filters: Any) -> bool:
    return filters is None or (isinstance(filters, (str, Mapping)) and not filters)


class CollectionTools(Tool):
    """Shared plumbing of the collection tools: a store folder and the collections opened so far."""

    def __init__(
        self,
        home: str | Path | None = None,
        name: str | None = None,
        description: str | None = None,
        requires_approval: bool = False,
        timeout_s: float | None = 30.0,
        max_retries: int = 2,
    ) -> None:
        super().__init__(
            name=name,
            description=description,
            requires_approval=requires_approval,
            timeout_s=timeout_s,
            max_retries=max_retries,
        )
        self.home = str(home) if home is not None else None
        self._lock = threading.Lock()
        self._collections: dict[str, Collection] = {}

    def collection(self, name: str) -> Collection:
        """The collection ``name`` in :attr:`home` (``RAGKIT_HOME`` when unset), opened once."""
        from ragkit.collection import Collection

        with self._lock:
            if name not in self._collections:
                self._collections[name] = Collection.open(name, self.home)
            return self._collections[name]

    def close(self) -> None:
        """Close the collections this tool opened (they are opened again on the next call)."""
        with self._lock:
            collections, self._collections = list(self._collections.values()), {}
        for collection in collections:
            collection.close()


def _passage(number: int, hit: Hit, max_chars: int) -> str:
    where = chunk_location(hit.chunk)
    label = str(where["source"])
    if where["section"]:
        label += f" › {where['section']}"
    if where["page"] is not None:
        label += f", page {where['page']}"
    text = " ".join(hit.chunk.text.split())
    if len(text) > max_chars:
        text = text[: max_chars - 1].rstrip() + "…"
    return f"[{number}] {label}\n{text}"


def _search_arguments(default_top_k: int, max_top_k: int) -> type[BaseModel]:
    model = pydantic.create_model(  # type: ignore[call-overload]
        "SearchArguments",
        __config__=ConfigDict(extra="forbid"),
        query=(str, pydantic.Field(min_length=1, max_length=QUERY_CHARS, description="What to search for.")),
        top_k=(
            int,
            pydantic.Field(default_top_k, ge=1, le=max_top_k, description=f"How many passages, 1 to {max_top_k}."),
        ),
        filters=(str | dict[str, Any] | None, pydantic.Field(None, description=_FILTERS_HELP)),
    )
    return model  # type: ignore[no-any-return]


@register("tool", "search")
class SearchTool(CollectionTools):
    """Search a collection for passages relevant to a query; returns numbered passages with their sources.

    Args:
        collection: The collection's name.
        pipeline: A pipeline whose stages do the search: a recipe name
            (``hybrid``), a YAML path or a config mapping; ``None`` searches
            with ``mode`` alone.
        mode: ``dense`` (default) or ``lexical`` without a pipeline; with one,
            one of its retrievers alone.
        home: The store folder (default: ``RAGKIT_HOME``).
        top_k: Passages returned when the model asks for no number.
        max_top_k: The most passages the model may ask for.
        max_chars: Each passage's text is cut to this many characters in
            the observation (hits and citations keep the whole chunk).

    """

    default_name = "search"

    def __init__(
        self,
        collection: str,
        pipeline: str | Mapping[str, Any] | None = None,
        mode: str | None = None,
        home: str | Path | None = None,
        top_k: int = 5,
        max_top_k: int = 20,
        max_chars: int = 500,
        name: str | None = None,
        description: str | None = None,
        requires_approval: bool = False,
        timeout_s: float | None = 30.0,
        max_retries: int = 2,
    ) -> None:
        where = f"tool {name or self.default_name!r}"
        if not isinstance(collection, str) or not collection:
            raise ConfigError(f"{where}: 'collection' must name a collection")
        if max_top_k < 1 or not 1 <= top_k <= max_top_k:
            raise ConfigError(f"{where}: need 1 <= top_k <= max_top_k, got top_k={top_k}, max_top_k={max_top_k}")
        if max_chars < 20:
            raise ConfigError(f"{where}: max_chars must be at least 20, got {max_chars}")
        super().__init__(
            home=home,
            name=name,
            description=description
            or f"Search the {collection!r} collection for passages relevant to a query. "
            "Returns numbered passages with their sources.",
            requires_approval=requires_approval,
            timeout_s=timeout_s,
            max_retries=max_retries,
        )
        self.collection_name = collection
        self.config = _pipeline_config(pipeline, where)
        self.pipeline_name = pipeline if isinstance(pipeline, str) else "custom" if pipeline is not None else None
        self.mode = mode
        self.top_k = top_k
        self.max_chars = max_chars
        self._model = _search_arguments(top_k, max_top_k)
        self._pipeline: RagPipeline | None = None

    def pipeline(self) -> RagPipeline:
        """The pipeline that searches (built once)."""
        from ragkit.rag import PipelineConfig, RagPipeline

        with self._lock:
            if self._pipeline is None:
                if self.config is None:
                    mode = self.mode or "dense"
                    config = PipelineConfig.parse({"retrieval": {"mode": mode, "min_score": None}})
                    self._pipeline = RagPipeline(config, name=mode)
                else:
                    name = str(self.pipeline_name).rsplit("/", 1)[-1].removesuffix(".yaml").removesuffix(".yml")
                    self._pipeline = RagPipeline(self.config, name=name)
            return self._pipeline

    def run(self, query: str, top_k: int = 5, filters: str | dict[str, Any] | None = None) -> ToolOutput:
        """The ``top_k`` best passages for ``query``, numbered from 1, with hits and citations."""
        from ragkit.rag.answer import Citation

        collection = self.collection(self.collection_name)
        pipeline = self.pipeline()
        mode = self.mode if self.config is not None else None
        try:
            result = pipeline.search(
                query, collection, top_k=top_k, filters=None if _no_filters(filters) else filters, mode=mode
            )
        except FilterError as exc:
            raise ToolError(f"invalid filters: {exc}") from exc
        hits = result.hits[:top_k]
        if not hits:
            content = f"No passages found in {self.collection_name!r} for {query!r}."
        else:
            content = "\n\n".join(_passage(n, hit, self.max_chars) for n, hit in enumerate(hits, 1))
        citations = [Citation.from_hit(n, hit) for n, hit in enumerate(hits, 1)]
        return ToolOutput(content=content, citations=citations, hits=hits, data=hit_dicts(hits))


def _ask_arguments() -> type[BaseModel]:
    model = pydantic.create_model(  # type: ignore[call-overload]
        "AskArguments",
        __config__=ConfigDict(extra="forbid"),
        question=(
            str,
            pydantic.Field(min_length=1, max_length=QUERY_CHARS, description="The question, as a full sentence."),
        ),
        filters=(str | dict[str, Any] | None, pydantic.Field(None, description=_FILTERS_HELP)),
    )
    return model  # type: ignore[no-any-return]


@register("tool", "ask")
class AskTool(CollectionTools):
    """Ask a question of a collection's documents; returns a cited answer.

    Args:
        collection: The collection's name.
        pipeline: The RAG pipeline that answers: a recipe name (default
            ``basic``), a YAML path or a config mapping.
        home: The store folder (default: ``RAGKIT_HOME``).
        top_k: Context blocks retrieved (default: the pipeline's own).
        max_tokens: Longest answer, in tokens (default: the pipeline's own).

    """

    default_name = "ask"

    def __init__(
        self,
        collection: str,
        pipeline: str | Mapping[str, Any] = "basic",
        home: str | Path | None = None,
        top_k: int | None = None,
        max_tokens: int | None = None,
        name: str | None = None,
        description: str | None = None,
        requires_approval: bool = False,
        timeout_s: float | None = 120.0,
        max_retries: int = 2,
    ) -> None:
        where = f"tool {name or self.default_name!r}"
        if not isinstance(collection, str) or not collection:
            raise ConfigError(f"{where}: 'collection' must name a collection")
        if top_k is not None and top_k < 1:
            raise ConfigError(f"{where}: top_k must be at least 1, got {top_k}")
        if max_tokens is not None and max_tokens < 1:
            raise ConfigError(f"{where}: max_tokens must be at least 1, got {max_tokens}")
        super().__init__(
            home=home,
            name=name,
            description=description
            or f"Ask a question of the {collection!r} collection's documents; returns an answer citing its sources.",
            requires_approval=requires_approval,
            timeout_s=timeout_s,
            max_retries=max_retries,
        )
        self.collection_name = collection
        self.config = _pipeline_config(pipeline, where)
        self.pipeline_name = pipeline if isinstance(pipeline, str) else "custom"
        self.top_k = top_k
        self.max_tokens = max_tokens
        self._model = _ask_arguments()
        self._pipeline: RagPipeline | None = None

    def pipeline(self) -> RagPipeline:
        """The pipeline that answers (built once; its generator is shared per process)."""
        from ragkit.rag import RagPipeline

        with self._lock:
            if self._pipeline is None:
                assert self.config is not None
                name = self.pipeline_name.rsplit("/", 1)[-1].removesuffix(".yaml").removesuffix(".yml")
                self._pipeline = RagPipeline(self.config, name=name)
            return self._pipeline

    def run(self, question: str, filters: str | dict[str, Any] | None = None) -> ToolOutput:
        """The pipeline's answer to ``question``: its text with markers, its citations and hits."""
        from ragkit.generation.base import GenerationOptions

        collection = self.collection(self.collection_name)
        pipeline = self.pipeline()
        options = GenerationOptions(max_tokens=self.max_tokens) if self.max_tokens is not None else None
        try:
            answer = pipeline.ask(
                question,
                collection,
                top_k=self.top_k,
                filters=None if _no_filters(filters) else filters,
                options=options,
            )
        except FilterError as exc:
            raise ToolError(f"invalid filters: {exc}") from exc
        content = answer.text.strip()
        if answer.citations:
            sources = "; ".join(f"[{c.number}] {c.source}" for c in answer.citations)
            content += f"\nSources: {sources}"
        data = {
            "text": answer.text,
            "grounded": answer.grounded,
            "citations": [c.to_dict() for c in answer.citations],
            "usage": answer.usage.to_dict(),
        }
        return ToolOutput(content=content, citations=list(answer.citations), hits=list(answer.hits), data=data)


@register("tool", "list_collections")
class ListCollectionsTool(CollectionTools):
    """List the document collections with their document and chunk counts and metadata fields (for filters).

    Args:
        home: The store folder (default: ``RAGKIT_HOME``).
        collections: Show only these collections (default: every one in ``home``).
        examples: Example values shown per metadata field.

    """

    default_name = "list_collections"

    def __init__(
        self,
        home: str | Path | None = None,
        collections: Sequence[str] | None = None,
        examples: int = 3,
        name: str | None = None,
        description: str | None = None,
        requires_approval: bool = False,
        timeout_s: float | None = 30.0,
        max_retries: int = 2,
    ) -> None:
        if collections is not None and (
            isinstance(collections, str) or not all(isinstance(c, str) for c in collections)
        ):
            raise ConfigError(f"tool 'list_collections': collections must be a list of names, got {collections!r}")
        if examples < 0:
            raise ConfigError(f"tool 'list_collections': examples must be 0 or more, got {examples}")
        super().__init__(
            home=home,
            name=name,
            description=description,
            requires_approval=requires_approval,
            timeout_s=timeout_s,
            max_retries=max_retries,
        )
        self.only = list(collections) if collections is not None else None
        self.examples = examples

    def names(self) -> list[str]:
        """The collections this tool shows."""
        from ragkit.collection import Collection

        names = Collection.names(self.home)
        return [n for n in names if n in self.only] if self.only is not None else names

    def describe(self, name: str) -> dict[str, Any]:
        """One collection: ``name``, ``documents``, ``chunks`` and ``fields`` (name, type, examples)."""
        collection = self.collection(name)
        stats = collection.info()["stats"]
        documents = stats.get("sources")
        if documents is None:
            documents = len(collection.store.sources())
        return {
            "name": name,
            "documents": int(documents),
            "chunks": int(stats.get("chunks", 0)),
            "fields": _fields(collection, self.examples),
        }

    def run(self, collection: str | None = None) -> ToolOutput:
        """Describe every collection, or only ``collection``.

        Args:
            collection: Only this collection (leave it out for all of them).

        """
        names = self.names()
        if collection:
            if collection not in names:
                raise ToolError(f"no collection named {collection!r}; collections: {', '.join(names) or 'none'}")
            names = [collection]
        described = [self.describe(name) for name in names]
        if not described:
            return ToolOutput(content="There are no collections.", data=[])
        lines = []
        for entry in described:
            lines.append(f"{entry['name']}: {entry['documents']} documents, {entry['chunks']} chunks")
            for info in entry["fields"]:
                shown = ", ".join(_shown(v) for v in info["examples"])
                lines.append(f"  - {info['name']} ({info['type']})" + (f", e.g. {shown}" if shown else ""))
        return ToolOutput(content="\n".join(lines), data=described)


def _fields(collection: Collection, examples: int) -> list[dict[str, Any]]:
    """The collection's filterable metadata fields as self-query sees them: name, type and example values."""
    from ragkit.query.self_query import collection_fields

    fields = collection_fields(collection, max(examples, 1)).values()
    shown = [{**info.to_dict(), "examples": [v for v in info.examples if v != ""][:examples]} for info in fields]
    return shown


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


__all__ = ["AskTool", "CollectionTools", "ListCollectionsTool", "SearchTool"]
