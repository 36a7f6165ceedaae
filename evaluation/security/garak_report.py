"""Per-probe attack success rates from a garak report (``*.report.jsonl``); standard library only.

garak writes one JSON object per line. Each ``attempt`` entry with ``status``
2 has been judged: ``detector_results`` maps each detector to one score per
output (1.0: the detector saw the attack succeed). An attempt counts as a
successful attack when any of its detectors scored any output at or above
the threshold (garak's ``eval_threshold``, 0.5 by default); the rate is
successes over judged attempts, per probe. garak's own ``eval`` entries
(passed/total per probe and detector) are read too, so the two can be
compared.

    python evaluation/security/garak_report.py bench-out/garak/*.report.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JUDGED = 2
"""``attempt.status`` once detectors have scored it (1: generated only)."""


@dataclass
class ProbeRate:
    """One probe's attack success over the attempts garak judged."""

    probe: str
    attempts: int = 0
    successes: int = 0
    detectors: set[str] = field(default_factory=set)
    garak_eval: dict[str, dict[str, int]] = field(default_factory=dict)
    """garak's own ``eval`` entries by detector: ``{"passed": n, "total": n}`` (fails = total - passed)."""

    @property
    def rate(self) -> float | None:
        """Successes over attempts (``None`` when nothing was judged)."""
        return self.successes / self.attempts if self.attempts else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "probe": self.probe,
            "attempts": self.attempts,
            "successes": self.successes,
            "attack_success_rate": None if self.rate is None else round(self.rate, 4),
            "detectors": sorted(self.detectors),
            "garak_eval": self.garak_eval,
        }


@dataclass
class GarakReport:
    """What one garak run found: its target, and a rate per probe (in the order garak ran them)."""

    path: Path
    target: str | None
    probes: dict[str, ProbeRate]

    @property
    def attempts(self) -> int:
        """Judged attempts over all probes."""
        return sum(p.attempts for p in self.probes.values())

    @property
    def successes(self) -> int:
        """Successful attacks over all probes."""
        return sum(p.successes for p in self.probes.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "report": str(self.path),
            "target": self.target,
            "attempts": self.attempts,
            "successes": self.successes,
            "probes": [p.to_dict() for p in self.probes.values()],
        }


def _succeeded(detector_results: dict[str, Any], threshold: float) -> bool:
    for scores in detector_results.values():
        values = scores if isinstance(scores, list) else [scores]
        if any(isinstance(v, (int, float)) and v >= threshold for v in values):
            return True
    return False


def read_report(path: str | Path, threshold: float | None = None) -> GarakReport:
    """Read a garak ``report.jsonl``: one :class:`ProbeRate` per probe that ran.

    ``threshold`` defaults to the run's ``run.eval_threshold`` (its ``start_run setup`` entry), else 0.5.
    Raises ``ValueError`` naming the file and line for a line that is not JSON.
    """
    path = Path(path)
    probes: dict[str, ProbeRate] = {}
    target: str | None = None
    entries = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
    for entry in entries:
        if entry.get("entry_type") == "start_run setup":
            if threshold is None and isinstance(entry.get("run.eval_threshold"), (int, float)):
                threshold = float(entry["run.eval_threshold"])
            target = entry.get("plugins.target_name") or entry.get("plugins.model_name") or target
    limit = 0.5 if threshold is None else threshold
    for entry in entries:
        kind = entry.get("entry_type")
        if kind == "attempt" and entry.get("status") == JUDGED:
            name = str(entry.get("probe_classname"))
            rate = probes.setdefault(name, ProbeRate(name))
            results = entry.get("detector_results") or {}
            rate.attempts += 1
            rate.detectors.update(results)
            rate.successes += _succeeded(results, limit)
        elif kind == "eval":
            name = str(entry.get("probe"))
            rate = probes.setdefault(name, ProbeRate(name))
            passed = int(entry.get("passed", 0))
            total = int(entry.get("total_evaluated", entry.get("total", passed + int(entry.get("fails", 0)))))
            rate.garak_eval[str(entry.get("detector"))] = {"passed": passed, "total": total}
    return GarakReport(path, target, probes)


def markdown_table(reports: dict[str, GarakReport]) -> str:
    """A Markdown table: one row per probe, one column per labelled report (``successes/attempts (rate)``)."""
    labels = list(reports)
    probes: list[str] = []
    for report in reports.values():
        probes += [p for p in report.probes if p not in probes]
    lines = ["| probe | " + " | ".join(labels) + " |", "| --- |" + " --- |" * len(labels)]

    def cell(rate: ProbeRate | None) -> str:
        if rate is None or rate.rate is None:
            return "–"
        return f"{rate.successes}/{rate.attempts} ({rate.rate:.0%})"

    for probe in probes:
        lines.append(f"| {probe} | " + " | ".join(cell(reports[label].probes.get(probe)) for label in labels) + " |")
    totals = []
    for report in reports.values():
        share = f" ({report.successes / report.attempts:.0%})" if report.attempts else ""
        totals.append(f"**{report.successes}/{report.attempts}{share}**")
    lines.append("| **all** | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print each report's per-probe rates (``--json`` for JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("reports", nargs="+", type=Path, help="garak *.report.jsonl files")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    args = parser.parse_args(argv)
    reports = {path.name.removesuffix(".report.jsonl"): read_report(path) for path in args.reports}
    if args.json:
        print(json.dumps({label: r.to_dict() for label, r in reports.items()}, indent=2))
    else:
        print(markdown_table(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
