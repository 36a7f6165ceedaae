"""Settings and collection configuration (pydantic models).

:class:`Settings` is the one settings object: read from a YAML file and
``RAGKIT_*`` environment variables. :class:`CollectionConfig` is everything
that shapes a collection (loader options, splitter, embedder, store, lexical
index); it is saved with the collection so later ingests and searches use the
same components.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ragkit import yaml_io
from ragkit.errors import ConfigError

ComponentConfig = dict[str, Any]


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

    @field_validator("splitter", "embedder", "store")
    @classmethod
    def _has_type(cls, value: ComponentConfig) -> ComponentConfig:
        if "type" not in value:
            raise ValueError("needs a 'type' key")
        return value

    @classmethod
    def from_yaml(cls, path: Path) -> CollectionConfig:
        """Read a config file, with errors that name the file and field."""
        try:
            data = yaml_io.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
        return cls.parse(data, where=str(path))

    @classmethod
    def parse(cls, data: Any, where: str = "collection config") -> CollectionConfig:
        """Validate a plain dict, turning pydantic errors into a :class:`ConfigError`."""
        if isinstance(data, dict) and "collection" in data and isinstance(data["collection"], dict):
            data = data["collection"]
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"{where}: {format_validation_error(exc)}") from None


def format_validation_error(exc: ValidationError) -> str:
    """One readable line per pydantic error: ``field.path: message``."""
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error["loc"]) or "(root)"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)


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
        data: dict[str, Any] = {}
        if config_file is not None:
            try:
                data = yaml_io.safe_load(config_file.read_text(encoding="utf-8")) or {}
            except OSError as exc:
                raise ConfigError(f"cannot read settings {config_file}: {exc.strerror}") from None
            except yaml.YAMLError as exc:
                raise ConfigError(f"{config_file} is not valid YAML: {exc}") from None
        try:
            env = cls()  # defaults and RAGKIT_* variables
            merged = {**data, **{name: getattr(env, name) for name in env.model_fields_set}}
            merged.update({k: v for k, v in overrides.items() if v is not None})
            return cls(**merged)
        except ValidationError as exc:
            raise ConfigError(f"settings: {format_validation_error(exc)}") from None
