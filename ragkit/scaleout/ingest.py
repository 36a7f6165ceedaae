"""Ingest on Ray Data: the in-process ingest's decisions, with loading, splitting and embedding on a cluster.

:class:`RayIngestPipeline` is the in-process :class:`~ragkit.ingest.IngestPipeline`
with one part swapped: which files are new, changed, unchanged or gone
(``scan`` and ``sync``), the source records, the keyword index and the
writer lock are the in-process ingest's own code; only the work between
(load → split → embed) runs as Ray Data stages (:mod:`ragkit.scaleout.ray_engine`).
The vectors come back to this process in file order and are written to the
collection's store here: FAISS on this machine, or Milvus (a Lite file, or a
server by URI) — the same writes, source commits and deletions as in-process,
so a collection ingested either way holds the same chunks under the same ids.
"""

from __future__ import annotations

import functools
import pickle
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ragkit.errors import ConfigError
from ragkit.ingest import FileIssue, IngestPipeline, IngestReport, ProgressCallback, _Batch, _PendingFile
from ragkit.protocols import IngestDestination
from ragkit.scaleout.stages import FAILED, StageSpec
from ragkit.schema import Chunk, SourceRecord

if TYPE_CHECKING:
    from ragkit.collection import Collection
    from ragkit.scaleout.ray_engine import RaySettings


class RayIngestPipeline(IngestPipeline):
    """An :class:`~ragkit.ingest.IngestPipeline` whose load, split and embed stages run on Ray; see the module."""

    settings: RaySettings | None = None
    spec: StageSpec | None = None

    def run_on_ray(
        self,
        settings: RaySettings,
        spec: StageSpec,
        paths: Sequence[str | Path],
        sync: bool = False,
        source_prefix: str = "",
    ) -> IngestReport:
        """:meth:`run` with the new and changed files loaded, split and embedded on the cluster of ``settings``."""
        self.settings, self.spec = settings, spec
        return self.run(paths, sync, source_prefix, spec.record_uri)

    def _process(self, pending: list[_PendingFile], report: IngestReport) -> None:
        """Send ``pending`` through the Ray stages and write what comes back, file by file, as in-process."""
        from ragkit.scaleout import ray_engine

        assert self.settings is not None and self.spec is not None, "use run_on_ray()"
        started = time.perf_counter()
        ray_engine.connect(self.settings.address)
        report.stage_seconds["connect"] = time.perf_counter() - started
        files = [(i, pickle.dumps(item.file, protocol=5)) for i, item in enumerate(pending)]
        batch = _Batch()
        vectors: list[np.ndarray] = []
        current: list[Chunk] = []  # the chunks of the file coming in (some may be written already)
        files_done = 0
        store_seconds = 0.0
        started = time.perf_counter()
        for rows in ray_engine.run_stages(files, self.spec, self.settings):
            for n, index in enumerate(rows["index"]):
                item = pending[int(index)]
                total, seq = int(rows["total"][n]), int(rows["seq"][n])
                if total == FAILED:
                    report.failed.append(FileIssue(item.file.source, str(rows["error"][n])))
                elif total == 0:
                    report.failed.append(FileIssue(item.file.source, "no text to index"))
                else:
                    if seq == 0:
                        current = []
                    current.append(pickle.loads(rows["chunk"][n]))
                    batch.chunks.append(current[-1])
                    vectors.append(np.asarray(rows["vector"][n], dtype=np.float32))
                    if seq + 1 < total:
                        if len(batch.chunks) >= self.batch_size:
                            store_seconds += self._store(batch, vectors, report)
                            batch, vectors = _Batch(), []
                        continue
                    batch.done.append(self._record(item, current))
                    if item.replaces is not None:
                        batch.replaced.append(item.replaces)
                    report.added += int(item.is_new)
                    report.updated += int(not item.is_new)
                files_done += 1
                self.progress("files", files_done, len(pending))
                if len(batch.chunks) >= self.batch_size or (batch.done and not batch.chunks):
                    store_seconds += self._store(batch, vectors, report)
                    batch, vectors = _Batch(), []
        store_seconds += self._store(batch, vectors, report)
        report.stage_seconds["ray"] = time.perf_counter() - started - store_seconds
        report.stage_seconds["store"] = store_seconds

    def _record(self, item: _PendingFile, chunks: list[Chunk]) -> SourceRecord:
        document_ids: list[str] = []
        for chunk in chunks:
            if chunk.document_id not in document_ids:
                document_ids.append(chunk.document_id)
        file = item.file
        return SourceRecord(
            file.source, item.content_hash, file.size, file.mtime, document_ids, len(chunks), [c.id for c in chunks]
        )

    def _store(self, batch: _Batch, vectors: list[np.ndarray], report: IngestReport) -> float:
        """Write ``batch``'s chunks with their vectors, then commit its finished files; returns the seconds."""
        started = time.perf_counter()
        for start in range(0, len(batch.chunks), self.batch_size):
            part = batch.chunks[start : start + self.batch_size]
            self.store.upsert(part, np.stack(vectors[start : start + self.batch_size]))
            self._written_sources.update(c.source for c in part)
            self._to_destinations(report, functools.partial(_add, chunks=part))
            report.chunks_written += len(part)
            report.chunks_embedded += len(part)
            self.progress("chunks", report.chunks_written, 0)
        if batch.done:
            self.store.commit_sources(batch.done)
            if batch.replaced:  # old absolute ids of the files just committed under relative ones
                report.chunks_deleted += self.store.delete_sources(batch.replaced)
            self._to_destinations(report, lambda d: d.commit_sources(batch.done))
            if batch.replaced:
                self._to_destinations(report, lambda d: d.delete_sources(batch.replaced))
        return time.perf_counter() - started


def _add(destination: IngestDestination, chunks: list[Chunk]) -> None:
    destination.add(chunks)


def ingest_with_ray(
    collection: Collection,
    paths: str | Path | Sequence[str | Path],
    settings: RaySettings,
    sync: bool = False,
    progress: ProgressCallback | None = None,
    source_prefix: str = "",
) -> IngestReport:
    """Ingest ``paths`` into ``collection`` as :meth:`ragkit.collection.Collection.ingest` does, on Ray.

    Unchanged files are skipped and, with ``sync``, sources gone from
    ``paths`` deleted, exactly as in-process; new and changed files are
    loaded, split and embedded on the cluster ``settings`` names. Model-written
    chunk contexts (``chunk_headers.context``) are not supported here.
    """
    headers = collection.config.chunk_headers
    if headers is not None and headers.context is not None:
        raise ConfigError(
            f"collection {collection.name!r} writes chunk contexts with a model (chunk_headers.context); "
            "ingest it without --engine ray"
        )
    from ragkit.scaleout import ray_engine

    ray_engine.check(settings.address)  # Ray missing or the cluster unreachable: say so before anything is read
    chosen = [paths] if isinstance(paths, (str, Path)) else list(paths)
    spec = StageSpec(collection.config)
    return collection._run_ingest(
        RayIngestPipeline, lambda p: p.run_on_ray(settings, spec, chosen, sync, source_prefix), progress
    )


__all__ = ["RayIngestPipeline", "ingest_with_ray"]
