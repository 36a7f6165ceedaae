"""What the routes share: settings, the collection cache, pipelines, the task queue, metrics, auth.

One :class:`ServiceState` lives on ``app.state.ragkit``; every route receives it
through ``Depends(get_state)``, so a test can hand the routes another state with
``app.dependency_overrides[get_state]`` (or build the app with its own
``pipelines=``, or replace parts of ``app.state.ragkit``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Request

from ragkit.errors import NotFoundError
from ragkit.generation.base import GenerationOptions
from ragkit.rag import PipelineConfig, RagPipeline
from ragkit.service.auth import Authenticator
from ragkit.service.evaluations import EvaluationManager
from ragkit.service.job_store import JobStore
from ragkit.service.jobs import JobManager
from ragkit.service.metrics import Metrics
from ragkit.service.settings import ServiceSettings
from ragkit.service.stores import CollectionCache
from ragkit.service.tasks import TaskQueue

if TYPE_CHECKING:
    from ragkit.conversation import ConversationStore

T = TypeVar("T")


class ServiceState:
    """The service's shared objects; see the module docstring."""

    def __init__(self, settings: ServiceSettings, pipelines: dict[str, RagPipeline]) -> None:
        self.settings = settings
        self.pipelines = pipelines
        self.collections = CollectionCache(settings.store_dir)
        self.metrics = Metrics()
        self.authenticator = Authenticator(settings.api_keys)
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._tasks: TaskQueue | None = None
        self._jobs: JobManager | None = None
        self._evaluations: EvaluationManager | None = None
        self._lock = threading.Lock()
        self._searchers: dict[str, RagPipeline] = {}
        self._conversations: ConversationStore | None = None

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The worker threads for blocking work (created on first use)."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.settings.blocking_threads, thread_name_prefix="ragkit-io")
            return self._executor

    def _task_queue(self) -> TaskQueue:
        """The background task queue shared by ingest jobs and evaluations (lock held; created on first use)."""
        if self._tasks is None:
            kept = {"job": self.settings.max_jobs_kept, "evaluation": self.settings.max_evaluations_kept}
            self._tasks = TaskQueue(kept)
        return self._tasks

    @property
    def jobs(self) -> JobManager:
        """The ingest jobs: one lane of the task queue per collection, recorded under ``{store_dir}/jobs/``."""
        with self._lock:
            if self._jobs is None:
                settings = self.settings
                self._jobs = JobManager(
                    self._task_queue(),
                    on_finish=self.metrics.observe_job,
                    store=JobStore(settings.store_dir / "jobs"),
                    collections=self.collections,
                    max_kept=settings.max_jobs_kept,
                    max_age_days=settings.job_retention_days,
                )
            return self._jobs

    @property
    def evaluations(self) -> EvaluationManager:
        """The evaluation runs: one lane of the task queue, kept under ``{store_dir}/evaluations/``."""
        with self._lock:
            if self._evaluations is None:
                self._evaluations = EvaluationManager(
                    self.settings.store_dir / "evaluations",
                    self._task_queue(),
                    on_finish=self.metrics.observe_evaluation,
                )
            return self._evaluations

    @property
    def conversations(self) -> ConversationStore:
        """The stored conversations, ``{store_dir}/conversations.sqlite`` (opened on first use)."""
        with self._lock:
            if self._conversations is None:
                from ragkit.collection.layout import HomeLayout
                from ragkit.conversation import ConversationStore

                self._conversations = ConversationStore(HomeLayout(self.settings.store_dir).conversations)
            return self._conversations

    def ask_slots(self) -> asyncio.Semaphore:
        """The semaphore that bounds answers generated at once (one per event loop)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._slots is None or self._slots[0] is not loop:
                self._slots = (loop, asyncio.Semaphore(self.settings.max_concurrent_asks))
            return self._slots[1]

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking ``function`` in a worker thread and await its result."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()  # as asyncio.to_thread: the request's trace span stays current
        return await loop.run_in_executor(self.executor, functools.partial(context.run, function, *args, **kwargs))

    def pipeline(self, name: str | None) -> RagPipeline:
        """The configured pipeline ``name`` (default: the service's default), or 404."""
        chosen = name or self.settings.default_pipeline
        pipeline = self.pipelines.get(chosen)
        if pipeline is None:
            known = ", ".join(sorted(self.pipelines)) or "none"
            raise NotFoundError(f"no pipeline named {chosen!r} (configured: {known})")
        return pipeline

    def search_pipeline(self, mode: str) -> RagPipeline:
        """The plain search of one retriever (``dense`` or ``lexical``), no threshold: a search without a pipeline."""
        with self._lock:
            pipeline = self._searchers.get(mode)
            if pipeline is None:
                config = PipelineConfig.parse({"retrieval": {"mode": mode, "top_k": 5, "min_score": None}})
                pipeline = self._searchers[mode] = RagPipeline(config, name=mode)
            return pipeline

    @staticmethod
    def options(pipeline: RagPipeline, max_tokens: int | None, **sampling: Any) -> GenerationOptions:
        """A request's generation options; its ``max_tokens`` may lower the pipeline's limit, never raise it."""
        ceiling = pipeline.config.answer.max_tokens
        return GenerationOptions(max_tokens=min(max_tokens or ceiling, ceiling), **sampling)

    def close(self) -> None:
        """Cancel queued tasks and stop running ones at their next checkpoint, close collections, stop the threads."""
        with self._lock:
            tasks, self._tasks = self._tasks, None
            jobs, self._jobs, self._evaluations = self._jobs, None, None
            executor, self._executor = self._executor, None
        if jobs is not None:
            jobs.suspend()  # queued ingest jobs stay queued on disk, for the next start
        if tasks is not None:
            tasks.close()
        if jobs is not None and jobs.store is not None:
            jobs.store.release()
        self.collections.close()
        if self._conversations is not None:
            self._conversations.close()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def get_state(request: Request) -> ServiceState:
    """Dependency: the app's shared state."""
    state: ServiceState = request.app.state.ragkit
    return state
