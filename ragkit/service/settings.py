"""Settings of the REST service: where it listens, who may call it, and its limits.

Read from a YAML file (top-level keys, or a ``service:`` section) and
``RAGKIT_*`` environment variables (the environment wins over the file)::

    host: 0.0.0.0
    port: 8000
    store_dir: /var/lib/ragkit
    api_keys:
      - {key: "s3cret-admin", name: ops, scopes: [admin]}
      - {key: "s3cret-reader", name: web, scopes: [read], collections: [handbook]}
    cors_origins: ["https://intranet.example.com"]
    ingest_roots: [/srv/documents]
    pipelines: {basic: basic, fast: {generator: {type: openai, base_url: "http://vllm:8000/v1"}}}

``RAGKIT_API_KEYS`` holds keys in a compact form: comma-separated entries
``key:scope+scope[:coll1|coll2]``, e.g.
``RAGKIT_API_KEYS="k1:admin,k2:read:handbook|faq"``. Keys read from the
environment are named ``env-1``, ``env-2`` ... in order (the name, never the
key, is what the request log shows); a key cannot contain ``:`` or ``,``
there (use the YAML file for such keys). ``RAGKIT_CORS_ORIGINS`` is a comma-
separated list, ``RAGKIT_INGEST_ROOTS`` a list separated by ``os.pathsep``
(``:``), ``RAGKIT_ALLOWED_ENDPOINTS`` (the server URLs an evaluation suite may
name) a comma-separated list; all three also accept a JSON list. The pipelines come from
``RAGKIT_SERVICE_PIPELINES`` (JSON), since ``RAGKIT_PIPELINES`` names the
recipe folder. Other variables: ``RAGKIT_HOST``, ``RAGKIT_PORT``,
``RAGKIT_STORE_DIR`` (default: ``RAGKIT_HOME``, ``~/.ragkit``),
``RAGKIT_MAX_UPLOAD_BYTES`` ... one per setting.

With no API keys every route is open, which is only allowed on a loopback
host (``127.0.0.1``, ``::1``, ``localhost``): :meth:`ServiceSettings.check_exposure`
refuses anything else.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ragkit.config import Settings, settings_from
from ragkit.errors import ConfigError
from ragkit.yaml_io import read_mapping

Scope = Literal["admin", "write", "read"]
"""What a key may do: ``read`` (GET, search, ask, chat, models), ``write`` (uploads,
ingest, document deletion), ``admin`` (create and delete collections)."""

_IMPLIED: dict[str, tuple[Scope, ...]] = {
    "admin": ("admin", "write", "read"),
    "write": ("write", "read"),
    "read": ("read",),
}
_PIPELINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MiB = 1024 * 1024


class ApiKey(BaseModel):
    """One API key: the secret, a name for logs, its scopes and (optionally) its collections."""

    model_config = ConfigDict(extra="forbid")

    key: SecretStr
    name: str = Field(min_length=1, max_length=64)
    scopes: set[Scope] = Field(min_length=1)
    collections: list[str] | None = None
    """The only collections this key may touch; ``None``: all of them."""

    @field_validator("key")
    @classmethod
    def _key_not_blank(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if not secret or secret != secret.strip():
            raise ValueError("an API key must be non-empty and have no surrounding whitespace")
        return value

    def granted(self) -> set[Scope]:
        """The scopes this key has, with the implied ones (admin ⊃ write ⊃ read)."""
        return {implied for scope in self.scopes for implied in _IMPLIED[scope]}

    def allows_collection(self, name: str) -> bool:
        """Whether this key may touch collection ``name``."""
        return self.collections is None or name in self.collections


def parse_api_keys(text: str) -> list[ApiKey]:
    """Keys from the compact form ``key:scope+scope[:coll1|coll2]``, comma-separated.

    A lone key with no scope (``RAGKIT_API_KEYS=secret``) is one full-access
    (admin) key, the way other OpenAI-compatible servers take one ``--api-key``;
    a warning says so.
    """
    keys: list[ApiKey] = []
    lone = text.strip()
    if lone and ":" not in lone and "," not in lone:
        logging.getLogger("ragkit.service").warning(
            "RAGKIT_API_KEYS holds one key without a scope: it is a full-access (admin) key named env-1; "
            "use key:read, key:write or key:admin[:collection|...] to limit it"
        )
        return [ApiKey(key=SecretStr(lone), name="env-1", scopes={"admin"})]  # type: ignore[arg-type]
    for number, entry in enumerate((e.strip() for e in text.split(",")), 1):
        if not entry:
            continue
        parts = entry.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise ValueError(
                f"API key entry {number} is not of the form key:scope+scope[:coll1|coll2] (scopes: admin, write, read)"
            )
        scopes = [s.strip() for s in parts[1].split("+") if s.strip()]
        unknown = [s for s in scopes if s not in _IMPLIED]
        if unknown:
            raise ValueError(f"API key entry {number}: unknown scope(s) {', '.join(unknown)}; use admin, write, read")
        collections = [c.strip() for c in parts[2].split("|") if c.strip()] if len(parts) == 3 else None
        keys.append(
            ApiKey(key=SecretStr(parts[0]), name=f"env-{number}", scopes=set(scopes), collections=collections)  # type: ignore[arg-type]
        )
    return keys


def _split_list(value: Any, separator: str) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(separator) if item.strip()]
    return value


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


PIPELINES_ENV = "RAGKIT_SERVICE_PIPELINES"
"""The environment variable of the ``pipelines`` setting (``RAGKIT_PIPELINES`` is the recipe folder)."""


class _ServiceEnvironment(EnvSettingsSource):
    """``RAGKIT_*`` variables, except that ``pipelines`` comes from ``RAGKIT_SERVICE_PIPELINES``."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The raw value of a field from the environment."""
        if field_name == "pipelines":
            key = PIPELINES_ENV if self.case_sensitive else PIPELINES_ENV.lower()
            return self.env_vars.get(key), key, False
        return super().get_field_value(field, field_name)


def _default_pipelines() -> dict[str, str | dict[str, Any]]:
    return {"basic": "basic"}


def _default_store_dir() -> Path:
    return Settings.load().home


class ServiceSettings(BaseSettings):
    """Everything the service needs besides the pipelines' own recipes."""

    model_config = SettingsConfigDict(env_prefix="RAGKIT_", extra="forbid")

    host: str = "127.0.0.1"
    """Interface to bind. Anything but loopback needs at least one API key."""
    port: int = Field(default=8000, ge=0, le=65535)
    store_dir: Path = Field(default_factory=_default_store_dir)
    """The store folder: collections, uploaded documents (``documents/<collection>/``), staging."""
    api_keys: Annotated[list[ApiKey], NoDecode] = Field(default_factory=list)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_upload_bytes: int = Field(default=50 * MiB, ge=1)
    """Largest single uploaded file; a bigger one aborts the upload with 413."""
    max_upload_files: int = Field(default=1000, ge=1)
    """Most files in one upload request."""
    max_request_bytes: int = Field(default=200 * MiB, ge=1)
    """Largest whole request body (uploads)."""
    max_json_bytes: int = Field(default=1 * MiB, ge=1)
    """Largest body of the JSON routes (search, ask, chat ...)."""
    ingest_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    """Server-side folders that ``POST /v1/collections/{name}/ingest`` and ``POST /v1/evaluations`` may read.

    Anything else is 403: a suite file, and every file or folder it names, must lie inside them."""
    allowed_endpoints: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Server URLs an evaluation suite may name as generator, judge or embedder (``base_url`` ...), besides
    those the service's own pipelines use; a URL matches an entry with the same scheme, host and port whose
    path it starts with. ``RAGKIT_ALLOWED_ENDPOINTS``: comma-separated or a JSON list. Default: none."""
    pipelines: dict[str, str | dict[str, Any]] = Field(default_factory=_default_pipelines)
    """Pipeline name → recipe name, YAML path, or an inline pipeline config dict."""
    default_pipeline: str = "basic"
    max_concurrent_asks: int = Field(default=4, ge=1)
    """Answers generated at once; more requests wait their turn (models are per process)."""
    blocking_threads: int = Field(default=8, ge=1)
    """Worker threads for blocking work (search, opening collections, staging files)."""
    max_jobs_kept: int = Field(default=1000, ge=1)
    """Finished ingest jobs remembered for ``GET /v1/jobs/{id}``, in memory and in their records on disk
    (``{store_dir}/jobs/``): the newest this many."""
    job_retention_days: float | None = Field(default=30, gt=0)
    """Records of finished ingest jobs are dropped this many days after they finished (``null``: only
    ``max_jobs_kept`` bounds them)."""
    resume_jobs: bool = True
    """At start, resume the ingest jobs a stopped service left queued or running (uploads whose files are
    still there, paths still inside the ingest roots); ``false`` marks them all ``interrupted`` instead."""
    max_evaluations_kept: int = Field(default=100, ge=1)
    """Finished evaluation runs kept in memory (all stay on disk under ``{store_dir}/evaluations/``)."""
    preload: bool = False
    """Load the pipelines' generators at start-up (the port opens once they are loaded)."""
    log_json: bool | None = None
    """One JSON object per log line (``true``), plain escaped text (``false``), or ``null``: JSON unless
    stderr is a terminal (a person reading gets text; a log collector gets JSON)."""
    log_level: str = "INFO"

    def json_logs(self, stream: Any = None) -> bool:
        """Whether to log JSON lines: ``log_json`` when set, else whether ``stream`` (stderr) is not a terminal."""
        if self.log_json is not None:
            return self.log_json
        stream = sys.stderr if stream is None else stream
        isatty = getattr(stream, "isatty", None)
        return not (callable(isatty) and isatty())

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Init arguments, then the environment (see :class:`_ServiceEnvironment`)."""
        return init_settings, _ServiceEnvironment(settings_cls), dotenv_settings, file_secret_settings

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            return json.loads(text) if text.startswith("[") else parse_api_keys(text)
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: Any) -> Any:
        return _split_list(value, ",")

    @field_validator("allowed_endpoints", mode="before")
    @classmethod
    def _parse_endpoints(cls, value: Any) -> Any:
        return _split_list(value, ",")

    @field_validator("allowed_endpoints")
    @classmethod
    def _check_endpoints(cls, value: list[str]) -> list[str]:
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{url!r} is not an http(s) URL such as http://vllm:8000/v1")
        return value

    @field_validator("ingest_roots", mode="before")
    @classmethod
    def _parse_roots(cls, value: Any) -> Any:
        return _split_list(value, os.pathsep)

    @field_validator("ingest_roots")
    @classmethod
    def _resolve_roots(cls, value: list[Path]) -> list[Path]:
        return [root.expanduser().resolve() for root in value]

    @field_validator("store_dir")
    @classmethod
    def _expand_store(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("pipelines", mode="before")
    @classmethod
    def _parse_pipelines(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> ServiceSettings:
        if not self.pipelines:
            raise ValueError("pipelines: configure at least one pipeline")
        bad = [name for name in self.pipelines if not _PIPELINE_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"pipelines: invalid name(s) {', '.join(map(repr, bad))} (letters, digits, '_', '-', '.')")
        if self.default_pipeline not in self.pipelines:
            raise ValueError(
                f"default_pipeline {self.default_pipeline!r} is not one of the pipelines "
                f"({', '.join(sorted(self.pipelines))})"
            )
        secrets = [k.key.get_secret_value() for k in self.api_keys]
        if len(set(secrets)) != len(secrets):
            raise ValueError("api_keys: the same key is listed twice")
        names = [k.name for k in self.api_keys]
        if len(set(names)) != len(names):
            raise ValueError("api_keys: two keys have the same name")
        return self

    @property
    def auth_enabled(self) -> bool:
        """Whether requests must carry an API key."""
        return bool(self.api_keys)

    def check_exposure(self) -> None:
        """Refuse (:class:`ConfigError`) to serve without API keys on a non-loopback host."""
        if not self.api_keys and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to serve on {self.host!r} without API keys: anyone who can reach it could read and "
                "change every collection. Set api_keys (or RAGKIT_API_KEYS=key:admin) or bind 127.0.0.1"
            )

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> ServiceSettings:
        """Settings from ``config_file`` (YAML), then the environment, then ``overrides`` (``None`` ignored)."""
        data: dict[str, Any] = {}
        if config_file is not None:
            loaded = read_mapping(config_file, "service settings")
            section = loaded.get("service")
            data = dict(section) if isinstance(section, dict) else loaded
        where = str(config_file) if config_file is not None else "service settings"
        return settings_from(cls, data, overrides, where)
