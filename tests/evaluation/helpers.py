"""Small builders shared by the evaluation tests (no models, no collection)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ragkit.evaluation.sample import EvalQuestion, EvalSample, GoldSpan
from ragkit.schema import Chunk, Hit


def hit(source: str, start: int, end: int, text: str = "", score: float = 1.0) -> Hit:
    chunk = Chunk(
        id=f"{source}:{start}-{end}:{text}",
        document_id=source,
        source=source,
        text=text or "x" * (end - start),
        start=start,
        end=end,
    )
    return Hit(chunk, score)


def sample(
    hits: list[Hit],
    answers: list[str] | None = None,
    spans: list[tuple[str, int, int]] | None = None,
    documents: list[str] | None = None,
    answer: str | None = None,
    id: str = "q1",
    pipeline: str = "p",
) -> EvalSample:
    question = EvalQuestion(
        id=id,
        question=f"question {id}?",
        answers=answers or [],
        gold_spans=[GoldSpan(*s) for s in spans or []],
        gold_documents=documents or [],
    )
    return EvalSample(question, pipeline, hits=hits, answer=answer)


def chromium_binary() -> str | None:
    """The headless browser the HTML report tests use, if one is installed."""
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def dump_dom(page: Path, tmp_path: Path, fragment: str = "", window: tuple[int, int] | None = None) -> str:
    """The page's DOM after its scripts ran (``fragment``: e.g. ``#row-0``, as in a link to a question).

    ``window``: the browser window's (width, height) in pixels, for layout checks.
    """
    binary = chromium_binary()
    assert binary is not None
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        *([f"--window-size={window[0]},{window[1]}"] if window else []),
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=2000",
        "--dump-dom",
        page.as_uri() + fragment,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


needs_chromium = pytest.mark.skipif(
    chromium_binary() is None, reason="no chromium binary on PATH (Debian: apt-get install chromium)"
)
