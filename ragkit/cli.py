"""The ``ragkit`` command line.

Only typer is imported at start-up; everything heavy (numpy, FAISS, the
embedding model) is imported inside the command that needs it, so
``ragkit --help`` answers at once. ragkit errors are printed as one line
without a traceback, with a non-zero exit code per error class.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from ragkit.agents.cli import agent as agent_command
from ragkit.cli_support import CommandGroup, refuse_flag_values, run_action
from ragkit.model_server_cli import serve_model_command
from ragkit.plugins import add_connector_command
from ragkit.rerank_cli import rerank_app
from ragkit.sql_cli import sql_command

if TYPE_CHECKING:
    from ragkit.collection import Collection
    from ragkit.config import CollectionConfig
    from ragkit.schema import Hit

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    cls=CommandGroup,
    name="ragkit",
    help="Retrieval-augmented generation: ingest documents, search them, ask questions, serve them over HTTP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=HELP_OPTIONS,
)
collections_app = typer.Typer(
    cls=CommandGroup,
    help="List, show, reindex and delete collections.",
    no_args_is_help=True,
    context_settings=HELP_OPTIONS,
)
app.add_typer(collections_app, name="collections")
app.add_typer(rerank_app, name="rerank")
app.command("agent")(agent_command)
app.command("sql")(sql_command)
app.command("serve-model")(serve_model_command)
add_connector_command(app, "mcp", "ragkit-mcp", "Serve collections to MCP clients over stdio (ragkit mcp --help).")

T = TypeVar("T")

StoreDir = Annotated[
    Path | None,
    typer.Option("--store-dir", envvar="RAGKIT_HOME", help="Where collections live (default ~/.ragkit)."),
]
CollectionName = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _print_version(value: bool) -> None:
    if value:
        from ragkit import __version__

        typer.echo(f"ragkit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Retrieval-augmented generation: ingest documents, search them, ask questions, serve them over HTTP."""


def _run(action: Callable[[], T]) -> T:
    """Run ``action``, turning ragkit errors into one line on stderr and an exit code."""
    return run_action(action, "interrupted; what was committed so far is kept, re-run to finish")


def _load_config(config: str | None) -> CollectionConfig | None:
    if config is None:
        return None
    from ragkit.recipes import load_collection_config

    return load_collection_config(config)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to ingest.", metavar="PATH")],
    collection: CollectionName,
    config: Annotated[
        str | None,
        typer.Option("--config", help="Collection config: a YAML file or a recipe name (e.g. 'default', 'milvus')."),
    ] = None,
    sync: Annotated[bool, typer.Option("--sync", help="Delete sources under PATHS that no longer exist.")] = False,
    source_prefix: Annotated[
        str,
        typer.Option(
            "--source-prefix",
            metavar="FOLDER",
            help="Put the source ids of these files under FOLDER (team/ gives team/hr/a.docx).",
        ),
    ] = "",
    store_dir: StoreDir = None,
    as_json: JsonFlag = False,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            metavar="ENGINE",
            help="local (in this process) or ray: load, split and embed on a Ray cluster (the ray extra of ragkit).",
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            metavar="HOST:PORT",
            help="With --engine ray: the cluster's head (default: RAY_ADDRESS, "
            "else a Ray instance started on this machine).",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="With --engine ray: embedding actors, each holding the model (default: one per node).",
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            min=1,
            help="With --engine ray: chunks per model call (default: the collection's embed_batch_size).",
        ),
    ] = None,
    files_per_task: Annotated[
        int | None,
        typer.Option("--files-per-task", min=1, help="With --engine ray: files each load-and-split task reads (8)."),
    ] = None,
) -> None:
    """Ingest files into a collection (created on first use); unchanged files are skipped.

    A file's source id is its path relative to the folder given (hr/a.docx), or its name for a file given directly.
    """

    def action() -> None:
        from ragkit.collection import Collection
        from ragkit.errors import InputError

        if engine not in ("local", "ray"):
            raise InputError(f"--engine must be local or ray, got {engine!r}")
        if engine == "local" and any(v is not None for v in (address, workers, batch_size, files_per_task)):
            raise InputError("--address, --workers, --batch-size and --files-per-task go with --engine ray")
        wanted = _load_config(config)
        with Collection.open_or_create(collection, wanted, store_dir) as col, _progress(not as_json) as progress:
            if engine == "ray":
                from ragkit.scaleout import RaySettings, ingest_with_ray

                settings = RaySettings(address, workers, batch_size, files_per_task or 8)
                report = ingest_with_ray(col, paths, settings, sync, progress, source_prefix)
            else:
                report = col.ingest(paths, sync=sync, progress=progress, source_prefix=source_prefix)
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2))
            return
        typer.echo(f"{collection}: {report.summary()}")
        if engine == "ray":
            stages = ", ".join(f"{k} {v:.1f}s" for k, v in report.stage_seconds.items())
            typer.echo(f"  stages: {stages}")
        for issue in report.failed:
            typer.echo(f"  failed  {issue.source}: {issue.reason}", err=True)
        for issue in report.skipped:
            typer.echo(f"  skipped {issue.source}: {issue.reason}", err=True)

    _run(action)


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    labels = {"scan": "checking files", "files": "ingesting files", "chunks": "chunks embedded"}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(labels.get(stage, stage), total=total or None)
            bar.update(tasks[stage], completed=done, total=total or None)

        yield update


@app.command()
def search(
    collection: CollectionName,
    query: Annotated[str | None, typer.Argument(help="The query (omit with --queries-file).")] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="How many hits.")] = 5,
    filters: Annotated[
        str | None,
        typer.Option(
            "--filters",
            "--filter",
            "-f",
            help="Metadata filter, e.g. 'page >= 2 and lang == \"en\"' (--filter: old name).",
        ),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option("--mode", help="dense (vectors) or lexical (BM25); with --pipeline, one of its retrievers alone."),
    ] = None,
    pipeline: Annotated[
        str | None,
        typer.Option(
            "--pipeline", "-p", help="Search with a pipeline's stages (recipe name or YAML file, e.g. 'hybrid')."
        ),
    ] = None,
    trace: Annotated[bool, typer.Option("--trace", help="Also print what each pipeline stage did.")] = False,
    queries_file: Annotated[
        Path | None,
        typer.Option("--queries-file", help="One query per line ('-' for stdin); writes JSON lines."),
    ] = None,
    store_dir: StoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Search a collection and print the best chunks with their sources."""

    def action() -> None:
        from ragkit.collection import Collection
        from ragkit.errors import InputError
        from ragkit.rag import PipelineConfig, RagPipeline

        if (query is None) == (queries_file is None):
            raise InputError("give either a QUERY or --queries-file")
        if pipeline is None:
            _check_mode(mode)
            config = PipelineConfig.parse({"retrieval": {"mode": mode or "dense", "min_score": None}})
            searcher = RagPipeline(config, name=mode or "dense")
        else:
            searcher = RagPipeline.load(pipeline)
        with Collection.open(collection, store_dir) as col:
            if queries_file is not None:
                _search_batch(col, searcher, queries_file, top_k, filters, mode if pipeline else None)
                return
            assert query is not None
            result = searcher.search(query, col, top_k=top_k, filters=filters, mode=mode if pipeline else None)
        if as_json:
            typer.echo(json.dumps(_result_json(result), indent=2))
            return
        _print_hits(result.hits)
        if trace:
            _print_trace(result.trace)

    _run(action)


def _check_mode(mode: str | None) -> None:
    from ragkit import registry
    from ragkit.errors import InputError

    known = registry.available("retriever")
    if mode is not None and mode not in known:
        names = [repr(name) for name in known]
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        raise InputError(f"--mode must be {listed}, got {mode!r}")


def _result_json(result: Any) -> dict[str, Any]:
    data = {"query": result.question, "hits": [_hit_json(h, i) for i, h in enumerate(result.hits, 1)]}
    if len(result.queries) > 1:
        data["queries"] = [q.to_dict() for q in result.queries]
    data["trace"] = [t.to_dict() for t in result.trace]
    return data


def _search_batch(
    col: Collection, searcher: Any, queries_file: Path, top_k: int, flt: str | None, mode: str | None
) -> None:
    from ragkit.errors import InputError

    try:
        lines = sys.stdin.read().splitlines() if str(queries_file) == "-" else queries_file.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"cannot read --queries-file {queries_file}: {exc.strerror}") from None
    queries = [line.strip() for line in lines if line.strip()]
    for start in range(0, len(queries), 64):
        part = queries[start : start + 64]
        results = searcher.search_many(part, col, top_k=top_k, filters=flt, mode=mode)
        for result in results:
            typer.echo(json.dumps(_result_json(result)))


def _print_trace(trace: list[Any]) -> None:
    """One line per stage: its name, kind, time, what it produced, and its notes or error."""
    typer.echo("\nStages:", err=True)
    for entry in trace:
        parts = [f"{entry.stage} ({entry.kind})", f"{entry.seconds * 1000:.1f} ms"]
        if entry.skipped:
            parts.append("skipped")
        if entry.queries is not None and entry.kind == "transform":
            parts.append(f"{len(entry.queries)} queries")
        if entry.candidates:
            parts.append(", ".join(f"{label}: {len(hits)} hits" for label, hits in entry.candidates.items()))
        if entry.hits is not None:
            parts.append(f"{len(entry.hits)} hits")
        if entry.calls:
            parts.append(f"{len(entry.calls)} model calls, {entry.tokens} tokens")
        typer.echo("  " + " | ".join(parts), err=True)
        for note in entry.notes:
            typer.echo(f"      note: {note}", err=True)
        if entry.error:
            typer.echo(f"      error: {entry.error}", err=True)


def _hit_json(hit: Hit, rank: int) -> dict[str, Any]:
    """The hit's one JSON shape (:meth:`~ragkit.schema.Hit.to_dict`), as Python and REST give it."""
    return hit.to_dict(rank)


def _print_hits(hits: list[Hit]) -> None:
    if not hits:
        typer.echo("no results")
    for rank, hit in enumerate(hits, 1):
        chunk = hit.chunk
        where = chunk.source
        if "page" in chunk.metadata:
            where += f" p.{chunk.metadata['page']}"
        if chunk.metadata.get("row") is not None:
            where += f" row {chunk.metadata['row']}"
        if chunk.metadata.get("section"):
            where += f" § {chunk.metadata['section']}"
        snippet = " ".join(chunk.text.split())
        if len(snippet) > 300:
            snippet = snippet[:297] + "..."
        typer.echo(f"[{rank}] {hit.score:.3f} {where} [{chunk.start}:{chunk.end}]")
        typer.echo(f"    {snippet}")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    collection: CollectionName,
    pipeline: Annotated[
        str, typer.Option("--pipeline", "-p", help="Pipeline recipe name or YAML file (e.g. 'basic').")
    ] = "basic",
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", min=1, help="Sources to retrieve.")] = None,
    filters: Annotated[
        str | None,
        typer.Option("--filters", "--filter", "-f", help="Metadata filter on the sources (--filter: old name)."),
    ] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="dense or lexical retrieval.")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", min=1, help="Longest answer, in tokens.")] = None,
    store_dir: StoreDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole Answer as JSON (no streaming).")] = False,
    trace: Annotated[bool, typer.Option("--trace", help="Also print what each pipeline stage did.")] = False,
    conversation: Annotated[
        str | None,
        typer.Option(
            "--conversation",
            help="Continue a stored conversation by id ('new' starts one; its id is printed on stderr).",
        ),
    ] = None,
) -> None:
    """Answer a question from a collection, streaming the answer, then list its cited sources."""

    def action() -> None:
        from ragkit.collection import Collection
        from ragkit.generation import GenerationOptions
        from ragkit.rag import RagPipeline

        rag = RagPipeline.load(pipeline)
        options = GenerationOptions(max_tokens=max_tokens)
        extras = _conversation_extras(conversation, store_dir)
        with Collection.open(collection, store_dir) as col:
            _say_loading(rag.unloaded_models(col))
            if as_json:
                answer = rag.ask(
                    question,
                    col,
                    top_k=top_k,
                    filters=filters,
                    mode=mode,
                    options=options,
                    conversation_id=extras.conversation_id,
                    conversations=extras.conversations,
                )
                typer.echo(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
                return
            events = rag.stream(question, col, top_k=top_k, filters=filters, mode=mode, options=options, extras=extras)
            for event in events:
                if event.type == "token":
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
                elif event.answer is not None:
                    _print_answer_sources(event.answer)
                    if trace:
                        _print_trace(event.answer.trace)
                    if event.answer.conversation_id:
                        typer.echo(f"conversation: {event.answer.conversation_id}", err=True)

    _run(action)


def _say_loading(models: list[Any]) -> None:
    """On a terminal, say which models the first answer waits for (30-60 s can otherwise look like a hang)."""
    if not models or not sys.stderr.isatty():
        return
    names = ", ".join(str(getattr(m, "model_name", None) or type(m).__name__) for m in models)
    typer.echo(f"loading {names}… (once per process; the answer follows)", err=True)


def _conversation_extras(conversation: str | None, store_dir: Path | None) -> Any:
    """The ask's stored conversation (the local user's, in the store folder): none, a new one, or an existing one."""
    from ragkit.rag.pipeline import AskExtras

    if conversation is None:
        return AskExtras()
    from ragkit.collection import HomeLayout
    from ragkit.conversation import ConversationStore

    store = ConversationStore(HomeLayout.of(store_dir).conversations)
    if conversation == "new":
        conversation = store.create(None).id
    else:
        store.get(conversation, None)  # NotFoundError before any work
    return AskExtras(conversation_id=conversation, conversations=store)


def _print_answer_sources(answer: Any) -> None:
    typer.echo("")
    if answer.citations:
        label = (
            "Sources (inferred by word overlap: the model wrote no markers)"
            if all(c.inferred for c in answer.citations)
            else "Sources"
        )
        typer.echo(f"\n{label}:")
        for citation in answer.citations:
            typer.echo(f"  [{citation.number}] {citation.location}")
    elif answer.hits:  # the model answered from sources but neither cited one nor could one be inferred
        typer.echo("\n(no sources cited: the answer is not grounded in the documents)")
    if answer.dropped_citations:
        numbers = ", ".join(f"[{n}]" for n in answer.dropped_citations)
        typer.echo(f"  dropped citations to missing sources: {numbers}", err=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option("--host", help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default 8000).")] = None,
    store_dir: StoreDir = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Service settings YAML (keys, CORS, limits, pipelines).")
    ] = None,
) -> None:
    """Run the REST service (OpenAI-compatible chat completions included)."""

    def action() -> None:
        from ragkit.service import ServiceSettings, serve

        settings = ServiceSettings.load(config, host=host, port=port, store_dir=store_dir)
        serve(settings)

    _run(action)


@collections_app.command("list")
def collections_list(store_dir: StoreDir = None, as_json: JsonFlag = False) -> None:
    """List the collections in the store folder: name, chunks, sources, embedder and store (--json: the names)."""

    def action() -> None:
        from ragkit.collection import Collection

        names = Collection.names(store_dir)
        if as_json:
            typer.echo(json.dumps(names))
            return
        if not names:
            typer.echo("no collections")
            return
        rows = [("NAME", "CHUNKS", "SOURCES", "EMBEDDER", "STORE")]
        for name in names:
            with Collection.open(name, store_dir) as col:
                stats = col.info()["stats"]
                embedder = str(col.embedding.get("fingerprint", "?")).rsplit(":", 1)[0]
                rows.append(
                    (name, str(stats.get("chunks", "?")), str(stats.get("sources", "?")), embedder,
                     str(col.config.store.get("type", "?")))
                )  # fmt: skip
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())

    _run(action)


@collections_app.command("show")
def collections_show(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    store_dir: StoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Show a collection's configuration and counts."""

    def action() -> None:
        import yaml

        from ragkit.collection import Collection

        with Collection.open(name, store_dir) as col:
            info = col.info()
        if as_json:
            typer.echo(json.dumps(info, indent=2))
        else:
            typer.echo(yaml.safe_dump(info, sort_keys=False).rstrip())

    _run(action)


@collections_app.command("delete")
def collections_delete(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    store_dir: StoreDir = None,
) -> None:
    """Delete a collection and all its data."""

    def action() -> None:
        from ragkit.collection import Collection
        from ragkit.errors import storage_errors

        if not yes and not typer.confirm(f"Delete collection {name!r} and all its data?"):
            raise typer.Exit(1)
        with storage_errors(f"cannot delete collection {name!r}"):  # a read-only disk: exit 10, not 5
            Collection.delete(name, store_dir)
        typer.echo(f"deleted {name}")

    _run(action)


@collections_app.command("reindex")
def collections_reindex(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    config: Annotated[
        str,
        typer.Option("--config", help="The new collection config: a YAML file or a recipe name (e.g. 'default')."),
    ],
    drop_missing: Annotated[
        bool, typer.Option("--drop-missing", help="Leave out sources whose files are gone (else: refuse).")
    ] = False,
    store_dir: StoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Rebuild a collection from its sources with a new config, then swap it in atomically.

    Until the swap the old collection keeps answering; a failure or Ctrl-C leaves it unchanged.
    """

    def action() -> None:
        from ragkit.collection import Collection, reindex_collection

        wanted = _load_config(config)
        assert wanted is not None
        with Collection.open(name, store_dir) as col, _progress(not as_json) as progress:
            report = reindex_collection(col, wanted, drop_missing=drop_missing, progress=progress)
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2))
            return
        typer.echo(f"{name}: {report.summary()}")
        for source in report.dropped:
            typer.echo(f"  dropped {source}: its file is gone", err=True)
        for issue in report.ingest.skipped:
            typer.echo(f"  skipped {issue.source}: {issue.reason}", err=True)

    run_action(action, "interrupted; the collection is unchanged")


# -- evaluation ---------------------------------------------------------------------------


class _EvalGroup(CommandGroup):
    """Reads ``ragkit eval SUITE ...`` as ``ragkit eval run SUITE ...``."""

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-") and "run" in self.commands:
            refuse_flag_values(self.commands["run"], args)
            return "run", self.commands["run"], args
        return super().resolve_command(ctx, args)


eval_app = typer.Typer(
    cls=_EvalGroup,
    help="Evaluate pipelines on a suite of questions and compare reports ('ragkit eval SUITE' runs it).",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")


@eval_app.command("run")
def eval_run(
    suite: Annotated[Path, typer.Argument(help="The suite YAML file (e.g. evaluation/suites/smoke.yaml).")],
    sample: Annotated[
        int | None, typer.Option("--sample", min=1, help="Evaluate this many questions (drawn with the suite's seed).")
    ] = None,
    pipelines: Annotated[
        str | None, typer.Option("--pipelines", help="Only these pipelines of the suite, comma-separated.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Report folder (default eval-out/<suite>-<timestamp>).")
    ] = None,
    eval_store: Annotated[
        Path | None,
        typer.Option("--store-dir", help="Where the documents are ingested (default <out>/../.eval-store, reused)."),
    ] = None,
    answer_cache: Annotated[
        bool | None,
        typer.Option(
            "--answer-cache/--no-answer-cache",
            help="Replay RAG answers whose pipeline, generator, question and hits are unchanged "
            "(default: the suite's answer_cache, off).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the aggregates and report paths as JSON.")] = False,
) -> None:
    """Run a suite: ingest its documents, run each pipeline, score, write report.json/.md/.html."""

    def action() -> None:
        from ragkit.evaluation import evaluate
        from ragkit.evaluation.progress import progress_bar
        from ragkit.evaluation.report import k_tables, summary_table

        names = [p.strip() for p in pipelines.split(",") if p.strip()] if pipelines else None
        with progress_bar(not as_json) as progress:
            result, paths = evaluate(suite, out, eval_store, sample, names, progress, answer_cache)
        data = result.to_dict()
        if as_json:
            summary = {
                "suite": result.suite.name,
                "out_dir": str(paths["json"].parent),
                "reports": {kind: str(path) for kind, path in paths.items()},
                "questions": data["questions"],
                "pipelines": [{"name": p["name"], "kind": p["kind"], **p["aggregates"]} for p in data["pipelines"]],
            }
            typer.echo(json.dumps(summary, indent=2))
            return
        if sys.stdout.isatty():  # a person reads it: a table that fits the window; the Markdown is in report.md
            from ragkit.evaluation.terminal import summary_for_terminal

            typer.echo(summary_for_terminal(data, shutil.get_terminal_size().columns))
        else:
            typer.echo(summary_table(data))
            tables = k_tables(data)
            if tables:
                typer.echo("\n" + tables)
        typer.echo("")
        for path in paths.values():
            typer.echo(f"wrote {path}")

    _run(action)


@eval_app.command("compare")
def eval_compare(
    before: Annotated[Path, typer.Argument(help="The earlier report.json.")],
    after: Annotated[Path, typer.Argument(help="The later report.json.")],
    threshold: Annotated[
        float, typer.Option("--threshold", min=0.0, max=1.0, help="A question passes a metric at this value or more.")
    ] = 0.5,
    as_json: JsonFlag = False,
) -> None:
    """Show what changed between two reports: metric deltas per pipeline and the questions that flipped."""

    def action() -> None:
        from ragkit.evaluation.compare import compare_reports, format_comparison
        from ragkit.evaluation.report import load_report

        comparison = compare_reports(load_report(before), load_report(after), threshold)
        if as_json:
            typer.echo(json.dumps(comparison.to_dict(), indent=2, ensure_ascii=False))
        else:
            typer.echo(format_comparison(comparison), nl=False)

    _run(action)


@eval_app.command("optimise")
def eval_optimise(
    suite: Annotated[Path, typer.Argument(help="The suite YAML file (e.g. evaluation/suites/squad-dev.yaml).")],
    pipeline: Annotated[str, typer.Option("--pipeline", help="The suite's RAG pipeline whose prompt is searched.")],
    train: Annotated[int, typer.Option("--train", min=1, help="Questions each candidate is scored on.")] = 20,
    heldout: Annotated[int, typer.Option("--heldout", min=1, help="Questions base and winner are compared on.")] = 40,
    candidates: Annotated[int, typer.Option("--candidates", min=1, help="Prompts tried, the base included.")] = 6,
    demos: Annotated[int, typer.Option("--demos", min=0, help="Demonstrations per few-shot candidate.")] = 3,
    propose: Annotated[int, typer.Option("--propose", min=0, help="Instructions the generator writes.")] = 0,
    metric: Annotated[str | None, typer.Option("--metric", help="The metric to maximise (default f1).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Draws the splits.")] = 0,
    out: Annotated[
        Path | None, typer.Option("--out", help="Report folder (default eval-out/<suite>-<pipeline>-optimise).")
    ] = None,
    recipe: Annotated[
        Path | None,
        typer.Option("--recipe", help="Where the new recipe goes (default <out>/<pipeline>-optimised.yaml)."),
    ] = None,
    eval_store: Annotated[
        Path | None, typer.Option("--store-dir", help="Eval store (default <out>/../.eval-store).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Search a pipeline's prompt (instructions, demonstrations) on a train split; write the best as a recipe."""

    def action() -> None:
        from ragkit.evaluation.optimise.command import run_command
        from ragkit.evaluation.optimise.search import OptimiseSettings

        settings = OptimiseSettings(train, heldout, candidates, demos, None, propose, metric, seed=seed)
        run_command(suite, pipeline, settings, out, eval_store, recipe, as_json, typer.echo)

    _run(action)


@eval_app.command("testset")
def eval_testset(
    documents: Annotated[Path, typer.Argument(help="A folder (or file) of documents to write questions about.")],
    out: Annotated[Path, typer.Option("--out", help="The question set to write (JSONL, the suite format).")],
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="How many questions.")] = 20,
    generator: Annotated[
        str, typer.Option("--generator", help="The question writer, a generator config as JSON or a type name.")
    ] = "transformers",
    seed: Annotated[int, typer.Option("--seed", help="Picks the passages; same seed, same questions.")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Generate a question set from documents; every question's source span is checked against the documents."""

    def action() -> None:
        from ragkit.errors import InputError
        from ragkit.evaluation.testset import DEFAULT_TESTSET_GENERATOR, build_testset_generator

        text = generator.strip()
        try:
            config = json.loads(text) if text.startswith("{") else {"type": text}
        except json.JSONDecodeError as exc:
            raise InputError(f"--generator is not valid JSON: {exc}") from None
        writer = build_testset_generator({"type": DEFAULT_TESTSET_GENERATOR, "generator": config})
        report = writer.generate(documents, count, seed, out)
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2, default=str))
        else:
            typer.echo(
                f"wrote {report.written} of {report.requested} questions to {report.out} "
                f"({report.attempted} passages tried, {report.dropped} answers dropped as unverifiable or malformed)"
            )
            for reason, times in sorted(report.drop_reasons.items()):
                typer.echo(f"  dropped {times}: {reason}", err=True)
        if report.written < report.requested:
            from ragkit.errors import RagkitError

            reasons = sorted(report.drop_reasons.items(), key=lambda item: -item[1])[:2]
            why = "; ".join(f"{reason} ({times}x)" for reason, times in reasons) or "too few passages to ask about"
            raise RagkitError(
                f"wrote only {report.written} of the {report.requested} questions asked for: {why}; "
                "try a stronger --generator, more documents or another --seed"
            )

    _run(action)


def main() -> None:
    """Entry point of the ``ragkit`` script."""
    app()


if __name__ == "__main__":
    main()
