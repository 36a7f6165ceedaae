"""Settings and collection configuration (pydantic models).

:class:`Settings` is the one settings object: read from a YAML file and
``RAGKIT_*`` environment variables. :class:`CollectionConfig` is everything
that shapes a collection (loader options, splitter, embedder, store, lexical
index); it is saved with the collection so later ingests and searches use the
same components.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from ragkit.errors import ConfigError
from ragkit.limits import (
    DEFAULT_MAX_ARCHIVE_MEMBERS,
    DEFAULT_MAX_CHUNKS_PER_FILE,
    DEFAULT_MAX_COMPRESSION_RATIO,
    DEFAULT_MAX_MEMBER_BYTES,
    DEFAULT_MAX_UNPACKED_BYTES,
)
from ragkit.yaml_io import format_validation_error as format_validation_error  # re-exported: its old home
from ragkit.yaml_io import load_yaml, read_mapping, validate

if TYPE_CHECKING:
    from ragkit.schema import Chunk

ComponentConfig = dict[str, Any]

CHUNK_HEADER_KEY = "chunk_header"
"""Chunk metadata key holding the contextual header a chunk was embedded and indexed with."""
_HEADER_FIELDS = {"header", "title", "headings", "context", "text"}
_CONTEXT_PROMPT_FIELDS = ("document", "chunk")

DEFAULT_CONTEXT_PROMPT = (
    "<document>\n{document}\n</document>\n\n"
    "Here is a chunk of that document:\n<chunk>\n{chunk}\n</chunk>\n\n"
    "Write one short sentence that situates this chunk within the document (what the document is, and what "
    "this part of it is about), to help search find the chunk. Answer with that sentence only."
)
"""The prompt of :class:`ChunkContext` (after Anthropic's *contextual retrieval*)."""


class LoaderOptions(BaseModel):
    """How a folder is walked and its files parsed."""

    model_config = ConfigDict(extra="forbid")

    include: list[str] = Field(default_factory=lambda: ["**/*"])
    """Glob patterns (relative to the ingest root) a file must match."""
    exclude: list[str] = Field(default_factory=list)
    """Glob patterns that drop a file even when it matches ``include``."""
    follow_symlinks: bool = False
    """Follow symbolic links to files and folders (loops are detected)."""
    include_hidden: bool = False
    """Read files and folders whose name starts with a dot."""
    max_file_bytes: int | None = None
    """Refuse files larger than this (``None``: no limit; large text is streamed)."""
    encoding: str | None = None
    """Force a text encoding instead of detecting it."""
    max_chunks_per_file: int | None = Field(default=DEFAULT_MAX_CHUNKS_PER_FILE, gt=0)
    """A file that gives more chunks than this fails alone (``None``: no limit)."""
    max_unpacked_bytes: int | None = Field(default=DEFAULT_MAX_UNPACKED_BYTES, gt=0)
    """How far one zip-based file (docx, pptx, xlsx, odt, epub ...) may unpack in all (``None``: no limit)."""
    max_member_bytes: int | None = Field(default=DEFAULT_MAX_MEMBER_BYTES, gt=0)
    """How far one member of a zip-based file may unpack (``None``: no limit)."""
    max_archive_members: int | None = Field(default=DEFAULT_MAX_ARCHIVE_MEMBERS, gt=0)
    """How many members a zip-based file may hold (``None``: no limit)."""
    max_compression_ratio: float | None = Field(default=DEFAULT_MAX_COMPRESSION_RATIO, gt=1)
    """Unpacked/packed ratio a large member may reach (``None``: no limit)."""
    loaders: dict[str, ComponentConfig] = Field(default_factory=dict)
    """Per-suffix loader overrides, e.g. ``{".json": {"type": "json", "text_field": "body"}}``."""

    @field_validator("loaders")
    @classmethod
    def _suffixes_have_dots(cls, value: dict[str, ComponentConfig]) -> dict[str, ComponentConfig]:
        for suffix, config in value.items():
            if not suffix.startswith("."):
                raise ValueError(f"loader override key {suffix!r} must be a file suffix like '.json'")
            if "type" not in config:
                raise ValueError(f"loader override for {suffix!r} needs a 'type'")
        return value


class ChunkContext(BaseModel):
    """A model-written sentence per chunk that situates it in its document ("contextual retrieval").

    At ingest, every chunk of a new or changed source is sent to
    ``generator`` with its document (cut to ``max_document_chars``); the first
    line of the answer, cleaned and cut to ``max_chars``, joins the chunk's
    header. Answers are cached on disk, so ingesting the same text again calls
    no model. A call that fails or writes nothing usable leaves the chunk with
    its plain header and is counted in the ingest report. The calling is done
    by :mod:`ragkit.chunk_context`.
    """

    model_config = ConfigDict(extra="forbid")

    generator: dict[str, Any]
    """The generator config (``{"type": "openai", ...}``, ``{"type": "transformers"}``); needs a ``type``."""
    prompt: str = DEFAULT_CONTEXT_PROMPT
    """The user message: a format string with ``{document}`` and ``{chunk}`` (write a literal brace as ``{{``)."""
    max_tokens: int = Field(default=60, ge=1, le=1024)
    """The answer's token cap."""
    max_chars: int = Field(default=300, ge=20)
    """The sentence kept is cut to this many characters."""
    max_document_chars: int = Field(default=8000, ge=200)
    """A longer document is shown as its beginning plus the part around the chunk, this many characters in all."""
    timeout: float | None = Field(default=60.0, gt=0)
    """Seconds one call may take (loading a local model is not counted); ``None``: no limit."""
    concurrency: int = Field(default=4, ge=1, le=64)
    """Calls in flight at once for a server generator; an in-process (local) model is always called one at a time."""
    cache: bool = True
    """Cache the answers in the store's ``cache/chunk-context.sqlite``."""

    @field_validator("generator")
    @classmethod
    def _check_generator(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value.get("type"), str) or not value["type"].strip():
            raise ValueError(f"needs a 'type' key naming a generator, got {value!r}")
        return value

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, value: str) -> str:
        try:
            parts = list(string.Formatter().parse(value))
        except ValueError as exc:
            raise ValueError(
                f"prompt is not a format string ({exc}); write a literal brace as '{{{{' or '}}}}'"
            ) from None
        used = [name for _, name, _, _ in parts if name is not None]
        unknown = sorted(set(used) - set(_CONTEXT_PROMPT_FIELDS))
        if unknown:
            shown = ", ".join("{" + name + "}" for name in unknown)
            raise ValueError(f"prompt uses unknown placeholder(s) {shown}; allowed: {{document}}, {{chunk}}")
        missing = [name for name in _CONTEXT_PROMPT_FIELDS if name not in used]
        if missing:
            raise ValueError("prompt must contain " + " and ".join("{" + name + "}" for name in missing))
        return value


class ChunkHeaders(BaseModel):
    """Contextual chunk headers: what is prefixed to a chunk's text before it is embedded and BM25-indexed.

    The header is the document's ``title`` (chunk metadata, set by the
    loaders) and the chunk's heading path (``headings``, else ``section``,
    set by the markdown splitter), joined with ``" > "``; a first heading
    equal to the title is not repeated. With ``context`` (a
    :class:`ChunkContext`), a model-written sentence situating the chunk in
    its document follows on the next line. ``template`` shapes the indexed
    text from ``{header}``, ``{title}``, ``{headings}`` and ``{context}``, and
    must end with ``{text}`` (the chunk itself): a header is a prefix. When
    the template names ``{context}``, ``{header}`` is the title and heading
    path only. A chunk with no title, no headings and no context sentence is
    indexed as it is. ``chunk.text``, its offsets and the citations built from
    it never include the header.
    """

    model_config = ConfigDict(extra="forbid")

    title: bool = True
    """Put the document's title in the header."""
    headings: bool = True
    """Put the chunk's heading path in the header."""
    template: str = "{header}\n\n{text}"
    """How the indexed text is built: a prefix made of ``{header}``, ``{title}``, ``{headings}``, ``{context}``,
    then ``{text}``."""
    context: ChunkContext | None = None
    """A model-written sentence per chunk (see :class:`ChunkContext`); ``None``: no model is called."""

    @field_validator("template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        try:
            parts = list(string.Formatter().parse(value))
        except ValueError as exc:
            raise ValueError(f"template {value!r} is not a format string: {exc}") from None
        fields = [name for _, name, _, _ in parts if name is not None]
        unknown = sorted(set(fields) - _HEADER_FIELDS)
        if unknown:
            known = ", ".join("{" + f + "}" for f in sorted(_HEADER_FIELDS))
            raise ValueError(f"template uses unknown field(s) {', '.join(unknown)}; known: {known}")
        if fields.count("text") != 1 or not value.endswith("{text}") or parts[-1][1:] != ("text", "", None):
            raise ValueError("template must end with {text} (the chunk itself) and name it once: a header is a prefix")
        return value

    @model_validator(mode="after")
    def _context_field_needs_context(self) -> ChunkHeaders:
        if self.context is None and self._names_context():
            raise ValueError("template uses {context} but no 'context' (the model that writes it) is configured")
        return self

    @model_serializer(mode="wrap")
    def _without_unset_context(self, handler: SerializerFunctionWrapHandler) -> Any:
        dumped = handler(self)
        if isinstance(dumped, dict) and dumped.get("context") is None:
            dumped.pop("context", None)  # headers without context save as they did before the option existed
        return dumped

    def _names_context(self) -> bool:
        return any(name == "context" for _, name, _, _ in string.Formatter().parse(self.template))

    def header(self, metadata: Mapping[str, Any]) -> str:
        """The title and heading path of a chunk with this metadata (``""`` when it has neither)."""
        title, path = self._parts(metadata)
        return " > ".join(([title] if title else []) + path)

    def _parts(self, metadata: Mapping[str, Any]) -> tuple[str, list[str]]:
        title = _clean(metadata.get("title")) if self.title else ""
        path: list[str] = []
        if self.headings:
            headings = metadata.get("headings")
            section = metadata.get("section")
            if isinstance(headings, (list, tuple)):
                path = [h for h in (_clean(h) for h in headings) if h]
            elif isinstance(section, str):
                path = [h for h in (_clean(h) for h in section.split(" > ")) if h]
        if title and path and path[0] == title:
            path = path[1:]
        return title, path

    def prefix(self, metadata: Mapping[str, Any], context: str | None = None) -> str:
        """What is put before a chunk's text (the template without its ``{text}``); ``""`` without a header.

        ``context`` is the chunk's model-written sentence (``None`` or ``""``:
        none). Unless the template names ``{context}``, it is put on its own
        line after the title and heading path, inside ``{header}``.
        """
        title, path = self._parts(metadata)
        header = " > ".join(([title] if title else []) + path)
        context = _clean(context)
        if not header and not context:
            return ""
        if context and not self._names_context():
            header = f"{header}\n{context}" if header else context
        return self.template[: -len("{text}")].format(
            header=header, title=title, headings=" > ".join(path), context=context
        )


def _clean(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def indexed_text(chunk: Chunk) -> str:
    """The text a chunk was embedded and BM25-indexed with: its stored header prefix (if any), then its text.

    Ingest writes the prefix into ``chunk.metadata["chunk_header"]`` when the
    collection has :class:`ChunkHeaders` on; without it this is ``chunk.text``.
    """
    prefix = chunk.metadata.get(CHUNK_HEADER_KEY)
    return prefix + chunk.text if isinstance(prefix, str) and prefix else chunk.text


class CollectionConfig(BaseModel):
    """The components and options of one collection."""

    model_config = ConfigDict(extra="forbid")

    loader: LoaderOptions = Field(default_factory=LoaderOptions)
    splitter: ComponentConfig = Field(
        default_factory=lambda: {"type": "markdown", "chunk_size": 1000, "chunk_overlap": 100}
    )
    embedder: ComponentConfig = Field(default_factory=lambda: {"type": "sentence-transformers"})
    store: ComponentConfig = Field(default_factory=lambda: {"type": "faiss", "index": "auto"})
    lexical: ComponentConfig | None = Field(default_factory=lambda: {"type": "bm25"})
    """The keyword index kept beside the vectors, or ``None`` for none."""
    embed_batch_size: int = Field(default=256, ge=1)
    """Chunks embedded per model call; large batches keep the model busy."""
    embedding_cache: bool = True
    """Reuse vectors of text already embedded by the same model."""
    chunk_headers: ChunkHeaders | None = None
    """Contextual chunk headers (``true``, or ``{title, headings, template, context}``): embed and BM25-index each
    chunk prefixed with its document title and heading path, and with ``context``, a model-written sentence; see
    :class:`ChunkHeaders`. Off (``false``) by default; fixed when the collection is created, like the other
    options."""

    @field_validator("chunk_headers", mode="before")
    @classmethod
    def _headers_switch(cls, value: Any) -> Any:
        if value is True:
            return ChunkHeaders()
        if value is None or value is False:
            return None
        if not isinstance(value, (Mapping, ChunkHeaders)):
            raise ValueError(f"must be true, false or a mapping of title, headings, template, context; got {value!r}")
        return value

    @field_serializer("chunk_headers")
    def _headers_off_as_false(self, value: ChunkHeaders | None) -> Any:
        return False if value is None else value.model_dump()

    @field_validator("splitter", "embedder", "store")
    @classmethod
    def _has_type(cls, value: ComponentConfig) -> ComponentConfig:
        if "type" not in value:
            raise ValueError("needs a 'type' key")
        return value

    @classmethod
    def from_yaml(cls, path: Path) -> CollectionConfig:
        """Read a config file (or its ``collection:`` section), with errors that name the file and field."""
        return load_yaml(path, cls, "config", section="collection")

    @classmethod
    def parse(cls, data: Any, where: str = "collection config") -> CollectionConfig:
        """Validate a plain dict, turning pydantic errors into a :class:`ConfigError`."""
        if isinstance(data, dict) and "collection" in data and isinstance(data["collection"], dict):
            data = data["collection"]
        return validate(cls, data, where)


def default_home() -> Path:
    """``~/.ragkit``: where collections live unless told otherwise."""
    return Path.home() / ".ragkit"


class Settings(BaseSettings):
    """Process-wide settings, from ``RAGKIT_*`` variables and an optional YAML file."""

    model_config = SettingsConfigDict(env_prefix="RAGKIT_", extra="forbid")

    home: Path = Field(default_factory=default_home)
    """The store folder: collections, caches. ``RAGKIT_HOME``."""
    log_level: str = "WARNING"

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Settings from ``config_file`` (YAML), then environment, then ``overrides``."""
        data = read_mapping(config_file, "settings") if config_file is not None else {}
        return settings_from(cls, data, overrides, "settings")


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def settings_from(cls: type[SettingsT], data: Mapping[str, Any], overrides: Mapping[str, Any], where: str) -> SettingsT:
    """``cls`` from ``data`` (read from a file), then ``RAGKIT_*`` variables, then ``overrides`` (``None`` ignored).

    Any mistake is a :class:`ConfigError` that starts with ``where`` and names the field.
    """
    try:
        env = cls()  # defaults and RAGKIT_* variables
        merged = {**data, **{name: getattr(env, name) for name in env.model_fields_set}}
        merged.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**merged)
    except (ValidationError, ValueError) as exc:
        message = format_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
        raise ConfigError(f"{where}: {message}") from None
