"""What an optimisation run leaves behind: the recipe with the winning prompt, and its report (JSON, Markdown)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ragkit.evaluation.optimise.search import OptimiseResult


def recipe_data(result: OptimiseResult) -> dict[str, Any]:
    """The new recipe: the pipeline's config as the suite runs it, with the winning prompt."""
    config = result.pipeline.config
    pipeline = config.model_dump(mode="json", exclude_unset=True)
    template = result.best.candidate.template()
    pipeline["prompt"] = {"system": template.system, "user": template.user}
    description = config.description or f"{result.pipeline.name} pipeline"
    pipeline.pop("description", None)
    return {"description": f"{description} (prompt optimised on {result.suite.name})", "pipeline": pipeline}


def write_recipe(result: OptimiseResult, path: Path) -> Path:
    """Write the recipe YAML (a comment header says where the prompt came from); returns the path."""
    best = result.best
    m = result.metric
    header = [
        f"# Written by 'ragkit eval optimise {result.suite.source} --pipeline {result.pipeline.name}'.",
        f"# Prompt candidate '{best.candidate.name}' ({best.candidate.origin}, {len(best.candidate.demos)} "
        "demonstration(s)), the best of "
        f"{len(result.trials)} on {len(result.splits.train)} train questions ({m} {best.objective:.3f}).",
        f"# Held-out ({len(result.splits.heldout)} questions, seed {result.settings.seed}): {m} "
        f"{result.heldout_before.get(m, 0):.3f} with the base prompt, "
        f"{result.heldout_after.get(m, 0):.3f} with this one.",
    ]
    body = yaml.safe_dump(recipe_data(result), sort_keys=False, allow_unicode=True, width=100)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(header) + "\n" + body, encoding="utf-8")
    return path


def report_data(result: OptimiseResult, recipe: Path | None = None) -> dict[str, Any]:
    """The report as JSON-ready data."""
    names = [*result.metrics, "cited"]
    questions = []
    before = result.heldout_samples.get("before", [])
    after = result.heldout_samples.get("after", [])
    for old, new in zip(before, after, strict=True):
        questions.append(
            {
                "id": old.question.id,
                "question": old.question.question,
                "references": list(old.question.answers),
                "before": {"answer": old.answer, "error": old.error, **_values(old, result.metrics)},
                "after": {"answer": new.answer, "error": new.error, **_values(new, result.metrics)},
            }
        )
    return {
        "suite": result.suite.name,
        "suite_file": result.suite.source,
        "pipeline": result.pipeline.name,
        "generator": result.pipeline.config.generator,
        "metric": result.metric,
        "metrics": names,
        "settings": {
            "train": result.settings.train,
            "heldout": result.settings.heldout,
            "candidates": result.settings.candidates,
            "demos": result.settings.demos,
            "pool": len(result.splits.pool),
            "propose": result.settings.propose,
            "demo_threshold": result.settings.demo_threshold,
            "seed": result.settings.seed,
        },
        "splits": result.splits.to_dict(),
        "candidates": [trial.to_dict() for trial in result.trials],
        "winner": result.best.candidate.name,
        "heldout": {
            "questions": len(result.splits.heldout),
            "before": result.heldout_before,
            "after": result.heldout_after,
            "delta": {n: round(result.heldout_after[n] - result.heldout_before[n], 4) for n in names},
            "improved": result.improved(),
            "per_question": questions,
        },
        "recipe": str(recipe) if recipe is not None else None,
        "duration_s": round(result.duration_s, 1),
    }


def _values(sample: Any, names: list[str]) -> dict[str, float | None]:
    return {name: sample.metrics[name].value if name in sample.metrics else None for name in names}


def render_markdown(data: dict[str, Any]) -> str:
    """The report as Markdown: held-out before/after per metric, then each candidate's train scores."""
    names = data["metrics"]
    held = data["heldout"]
    metric = data["metric"]
    lines = [
        f"# Prompt optimisation: {data['pipeline']} on {data['suite']}",
        "",
        f"Optimised metric: `{metric}`; winner: `{data['winner']}`; held-out: {held['questions']} questions, "
        f"train: {len(data['splits']['train'])}, seed {data['settings']['seed']}.",
        "",
        "## Held-out, before and after",
        "",
        "| metric | base prompt | optimised | change |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in names:
        lines.append(
            f"| {name} | {held['before'][name]:.3f} | {held['after'][name]:.3f} | {held['delta'][name]:+.3f} |"
        )
    verdict = "improved" if held["improved"] else "did not improve"
    lines += ["", f"The optimised prompt {verdict} `{metric}` on the held-out split.", ""]
    lines += ["## Candidates (train split)", "", "| # | candidate | origin | demos | " + " | ".join(names) + " |"]
    lines.append("| ---: | --- | --- | ---: | " + " | ".join("---:" for _ in names) + " |")
    for index, trial in enumerate(data["candidates"], start=1):
        mark = " **(winner)**" if trial["name"] == data["winner"] else ""
        scores = " | ".join(f"{trial['train'][n]:.3f}" for n in names)
        lines.append(f"| {index} | {trial['name']}{mark} | {trial['origin']} | {len(trial['demos'])} | {scores} |")
    if data.get("recipe"):
        lines += ["", f"Recipe written: `{data['recipe']}`."]
    return "\n".join(lines) + "\n"


def write_report(result: OptimiseResult, out_dir: Path, recipe: Path | None) -> dict[str, Path]:
    """Write ``optimise.json`` and ``optimise.md`` into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = report_data(result, recipe)
    paths = {"json": out_dir / "optimise.json", "markdown": out_dir / "optimise.md"}
    paths["json"].write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_markdown(data), encoding="utf-8")
    return paths
