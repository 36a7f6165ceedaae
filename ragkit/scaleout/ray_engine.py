"""The one module that imports Ray: connect to a cluster and run the ingest stages as Ray Data operators.

Ray is untyped and optional (the ``ragkit[ray]`` extra); this wrapper keeps
it behind two small functions with typed arguments, and turns Ray's
exceptions into ragkit errors that say what failed and what to do.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragkit.errors import InputError, MissingDependencyError, UnavailableError
from ragkit.scaleout.stages import Batch, Embed, LoadSplit, StageSpec

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for the cluster's address to accept a connection before giving up (Ray itself waits minutes)."""


@dataclass(frozen=True)
class RaySettings:
    """How the ingest runs on Ray.

    ``address``: a running cluster (``host:port`` of its head, ``ray://host:port``
    for Ray Client, or ``auto``); ``None`` uses ``RAY_ADDRESS`` if set, else
    starts a Ray instance on this machine for the run. ``workers``: embedding
    actors, each holding its own copy of the model (default: one per node).
    ``batch_size``: chunks per model call (default: the collection's
    ``embed_batch_size``). ``files_per_task``: files each load-and-split task
    reads. ``cpus_per_worker``: CPUs each embedding actor reserves.
    """

    address: str | None = None
    workers: int | None = None
    batch_size: int | None = None
    files_per_task: int = 8
    cpus_per_worker: float = 1.0

    def __post_init__(self) -> None:
        for name in ("workers", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"Ray ingest: {name} must be at least 1, got {value}")
        if self.files_per_task < 1:
            raise InputError(f"Ray ingest: files_per_task must be at least 1, got {self.files_per_task}")
        if self.cpus_per_worker <= 0:
            raise InputError(f"Ray ingest: cpus_per_worker must be above 0, got {self.cpus_per_worker}")


def _ray() -> Any:
    # ragkit sends no usage statistics: Ray's own stay off, and so does Ray Data's collector, which also polls a
    # Prometheus on localhost:9090 from the driver after each run; a user who wants them sets these variables
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DATA_USAGE_DISABLED", "1")
    try:
        import ray
        import ray.data
    except ImportError:
        raise MissingDependencyError("ingestion on Ray (--engine ray)", "ragkit[ray]") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail fast, with a clear message, when ``host:port`` does not accept connections."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"Ray address {address!r} is not host:port (or ray://host:port, or auto)")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UnavailableError(
            f"cannot reach the Ray cluster at {address}: {reason}. Start one with `ray start --head` "
            "and pass the address it prints (--address HOST:PORT), or leave --address out to run Ray on this machine"
        ) from None


def _token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return Path(path).is_file() if path else (Path.home() / ".ray" / "auth_token").is_file()


def check(address: str | None) -> None:
    """Fail now if Ray is not installed or ``address`` (``host:port``) does not answer; connects to nothing."""
    from importlib.util import find_spec

    if find_spec("ray") is None:
        raise MissingDependencyError("ingestion on Ray (--engine ray)", "ragkit[ray]")
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and address != "auto" and "://" not in address:
        _check_reachable(address)


def connect(address: str | None) -> None:
    """Connect this process to the Ray cluster at ``address`` (see :class:`RaySettings`), once per process."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    check(address)
    if address and "RAY_AUTH_MODE" not in os.environ and _token_available():
        # `ray start --head` turns token auth on; a client only sends its token in token mode,
        # which Ray reads when it is first imported
        os.environ["RAY_AUTH_MODE"] = "token"
    ray = _ray()
    if ray.is_initialized():
        if address in (None, "auto", ray.get_runtime_context().gcs_address):
            return
        ray.shutdown()  # connected elsewhere: leave that cluster for this one
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False, include_dashboard=False)
    except Exception as exc:  # ConnectionError, AuthenticationError, RuntimeError: all mean "no cluster"
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        hint = (
            " (with token auth on, give this process the cluster's token: RAY_AUTH_TOKEN or ~/.ray/auth_token)"
            if "uthenticat" in str(exc)
            else ""
        )
        raise UnavailableError(f"cannot connect to {where}: {_first_line(exc)}{hint}") from None
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def disconnect() -> None:
    """Leave the cluster (the cluster itself keeps running)."""
    ray = _ray()
    if ray.is_initialized():
        ray.shutdown()


def cluster_cpus() -> tuple[int, float]:
    """The number of alive nodes and CPUs of the connected cluster."""
    ray = _ray()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return len(nodes), float(ray.cluster_resources().get("CPU", 0.0))


def run_stages(files: Sequence[tuple[int, bytes]], spec: StageSpec, settings: RaySettings) -> Iterator[Batch]:
    """Load, split and embed ``files`` (index, pickled file) on the cluster; yields row batches in file order.

    Load-and-split runs as tasks (``files_per_task`` files each); embedding
    runs in an actor pool of ``settings.workers`` actors, each holding the
    model, ``batch_size`` chunks per call. The rows come back in the order of
    ``files`` (Ray Data's ``preserve_order``), each file's chunks together.
    """
    ray = _ray()
    nodes, _ = cluster_cpus()
    workers = settings.workers or max(1, nodes)
    blocks = max(1, -(-len(files) // settings.files_per_task))  # one block per load-and-split call
    workers = min(workers, blocks)  # an actor with no block to embed would only load the model
    batch_size = settings.batch_size or spec.config.embed_batch_size
    context = ray.data.DataContext.get_current()
    saved = (context.execution_options.preserve_order, context.enable_progress_bars)
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    try:
        items = [{"index": i, "file": blob} for i, blob in files]
        dataset = ray.data.from_items(items, override_num_blocks=blocks)
        dataset = dataset.map_batches(
            LoadSplit,
            fn_constructor_args=(spec,),
            batch_size=settings.files_per_task,
            # reading and splitting is light beside embedding: these actors reserve no CPU, so they
            # always fit beside the embedding actors (one per node at most)
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, nodes)),
            num_cpus=0,
            batch_format="numpy",
        )
        dataset = dataset.map_batches(
            Embed,
            fn_constructor_args=(spec,),
            batch_size=batch_size,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=settings.cpus_per_worker,
            batch_format="numpy",
        )
        yield from dataset.iter_batches(batch_size=batch_size, batch_format="numpy", prefetch_batches=2)
    except (UnavailableError, InputError):
        raise
    except Exception as exc:
        raise UnavailableError(f"the ingest on Ray failed: {_first_line(exc)}") from None
    finally:
        context.execution_options.preserve_order, context.enable_progress_bars = saved


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if len(lines) > 1 and lines[0].startswith(("ray::", "Traceback")) else lines[0]


__all__ = ["RaySettings", "check", "cluster_cpus", "connect", "disconnect", "run_stages"]
