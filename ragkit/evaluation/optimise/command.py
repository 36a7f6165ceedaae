"""The body of ``ragkit eval optimise``: run the search, write the recipe and the report, print the summary."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from ragkit.evaluation.optimise.search import OptimiseSettings


def default_out(suite: Path, pipeline: str) -> Path:
    """``eval-out/<suite file stem>-<pipeline>-optimise``: fixed, so running the command again resumes there."""
    return Path("eval-out") / f"{suite.stem}-{pipeline}-optimise"


def _lines(note: Callable[[str], None], every: int = 5) -> Callable[[str, int, int, int], None]:
    """Progress as a line every ``every`` answers (a log or a background run, where no bar is drawn)."""

    def update(stage: str, done: int, total: int, errors: int) -> None:
        if stage.startswith("ingest") or not total or (done % every and done != total):
            return
        note(f"  {stage}: {done}/{total}" + (f" ({errors} failed)" if errors else ""))

    return update


def run_command(
    suite: Path,
    pipeline: str,
    settings: OptimiseSettings,
    out: Path | None,
    store_dir: Path | None,
    recipe: Path | None,
    as_json: bool,
    echo: object = print,
) -> dict[str, Path]:
    """Optimise, write ``<out>/optimise.json``, ``optimise.md`` and the recipe; returns their paths.

    The recipe goes to ``recipe`` (default ``<out>/<pipeline>-optimised.yaml``); the eval store to
    ``store_dir`` (default ``<out>/../.eval-store``, shared with ``ragkit eval run``).
    """
    import json

    from ragkit.evaluation import default_store_dir
    from ragkit.evaluation.optimise.output import render_markdown, report_data, write_recipe, write_report
    from ragkit.evaluation.optimise.search import optimise
    from ragkit.evaluation.progress import progress_bar

    say = echo if callable(echo) else print
    folder = out if out is not None else default_out(suite, pipeline)
    store = store_dir if store_dir is not None else default_store_dir(folder)

    def note(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with progress_bar(not as_json) as bar:
        progress = bar if bar is not None else _lines(note)
        result = optimise(suite, pipeline, store, settings, progress, note)
    recipe_path = write_recipe(result, recipe if recipe is not None else folder / f"{pipeline}-optimised.yaml")
    paths = {**write_report(result, folder, recipe_path), "recipe": recipe_path}
    if as_json:
        data = report_data(result, recipe_path)
        data["heldout"].pop("per_question")
        say(json.dumps({**data, "reports": {k: str(v) for k, v in paths.items()}}, indent=2, ensure_ascii=False))
    else:
        say(render_markdown(report_data(result, recipe_path)))
        for path in paths.values():
            say(f"wrote {path}")
    return paths
