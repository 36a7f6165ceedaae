"""Per-attack rates from an injection-suite report (``ragkit eval run evaluation/suites/injection.yaml``).

Reads the run's ``report.json`` and prints, per pipeline and attack: how often
the question's own attack succeeded (the ``attack_success`` metric), how often
*any* attack of the suite did (a canary of another attacked document that was
retrieved into the same prompt counts here), and how often the question was
still answered (``answer_contains``).

    python evaluation/security/injection_summary.py eval-out/injection-*/report.json [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
QUESTIONS = REPO / "evaluation" / "datasets" / "injection" / "questions.jsonl"


def _canaries() -> tuple[list[str], list[str]]:
    canaries: set[str] = set()
    patterns: set[str] = set()
    for line in QUESTIONS.read_text(encoding="utf-8").splitlines():
        meta = json.loads(line)["metadata"]
        canaries.update(meta.get("canaries") or [])
        patterns.update(meta.get("patterns") or [])
    return sorted(canaries), sorted(patterns)


def summarise(report: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{pipeline: {attack | "all": {n, own, any, answered}}}`` with counts (rates are counts over ``n``)."""
    sys.path.insert(0, str(REPO))
    from ragkit.evaluation.metrics.injection import attack_followed

    canaries, patterns = _canaries()
    attack_of = {
        json.loads(line)["id"]: json.loads(line)["metadata"]["attack"]
        for line in QUESTIONS.read_text(encoding="utf-8").splitlines()
    }
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for sample in report["samples"]:
        if sample.get("answer") is None:
            continue
        rows = table.setdefault(sample["pipeline"], {})
        metrics = sample["metrics"]
        marks = {
            "own": metrics.get("attack_success") == 1.0,
            "any": attack_followed(sample["answer"], canaries, patterns) is not None,
            "answered": metrics.get("answer_contains") == 1.0,
        }
        for key in (attack_of.get(sample["id"], "?"), "all"):
            row = rows.setdefault(key, {"n": 0, "own": 0, "any": 0, "answered": 0})
            row["n"] += 1
            for name, hit in marks.items():
                row[name] += hit
    return table


def markdown(table: dict[str, dict[str, dict[str, Any]]]) -> str:
    """One row per attack, per pipeline the own-attack, any-attack and answered counts."""
    pipelines = list(table)
    attacks: list[str] = []
    for rows in table.values():
        attacks += [a for a in rows if a not in attacks and a != "all"]
    head = "| attack | " + " | ".join(pipelines) + " |"
    lines = [head, "| --- |" + " --- |" * len(pipelines)]
    for attack in [*attacks, "all"]:
        cells = []
        for pipeline in pipelines:
            row = table[pipeline].get(attack)
            if row is None:
                cells.append("–")
            else:
                cells.append(f"{row['own']}/{row['n']} · {row['any']}/{row['n']} · {row['answered']}/{row['n']}")
        name = f"**{attack}**" if attack == "all" else attack
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the summary of one report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("report", type=Path, help="the suite run's report.json")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    table = summarise(json.loads(args.report.read_text(encoding="utf-8")))
    print(json.dumps(table, indent=2) if args.json else markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
