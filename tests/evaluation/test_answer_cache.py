"""The answer cache: a re-run replays unchanged answers without touching the model, and anything that could
change an answer is a miss."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ragkit import registry
from ragkit.cli import app
from ragkit.evaluation import evaluate, run_suite
from ragkit.evaluation.answer_cache import AnswerCache
from ragkit.generation import BaseGenerator, GenerationDelta, GenerationOptions, Message, Usage
from ragkit.generation.fingerprint import generator_fingerprint
from ragkit.kvstore import JsonStore

SMOKE = Path(__file__).resolve().parents[2] / "evaluation" / "suites" / "smoke.yaml"
CALLS: Counter[str] = Counter()
"""What the test generator was asked to do, by ``<label>:<what>``."""


@registry.register("generator", "test-extractive")
class ExtractiveGenerator(BaseGenerator):
    """Answers with the first sentence of source block 1 and cites it; counts its calls and token counting.

    ``fail_on``: a word; a question containing it makes the call raise (an upstream failure).
    """

    def __init__(self, label: str = "a", fail_on: str | None = None) -> None:
        self.label = label
        self.fail_on = fail_on

    def count_tokens(self, text: str) -> int:
        CALLS[f"{self.label}:count"] += 1
        return super().count_tokens(text)

    def load(self) -> None:
        CALLS[f"{self.label}:load"] += 1

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Iterator[GenerationDelta]:
        CALLS[f"{self.label}:generate"] += 1
        prompt = messages[-1].content
        if self.fail_on and self.fail_on in prompt:
            raise RuntimeError("the upstream model failed")
        block = re.search(r'<source id="1"[^>]*>\n(.*?)\n</source>', prompt, re.S)
        sentence = block.group(1).split(". ")[0] if block else "nothing"
        text = f"{sentence} [1]."
        yield GenerationDelta(text=text)
        yield GenerationDelta(finish_reason="stop", usage=Usage(self.count_message_tokens(messages), 7))


def suite_file(
    tmp_path: Path,
    *,
    label: str = "a",
    answer: dict | None = None,
    top_k: int = 3,
    min_score: float | None = None,
    **generator,
) -> Path:
    """The smoke suite's documents and questions with one RAG pipeline on the test generator."""
    data = yaml.safe_load(SMOKE.read_text(encoding="utf-8"))
    data["documents"]["path"] = str(SMOKE.parent / data["documents"]["path"])
    data["questions"] = str(SMOKE.parent / data["questions"])
    data["pipelines"] = [
        {
            "name": "rag",
            "config": {
                "generator": {"type": "test-extractive", "label": label, **generator},
                "retrieval": {"top_k": top_k, "min_score": min_score},
                "answer": {"max_tokens": 32, **(answer or {})},
            },
        }
    ]
    data["metrics"] = ["answer_hit", "f1"]
    data["k"] = [3]
    file = tmp_path / f"suite-{label}.yaml"
    file.write_text(yaml.safe_dump(data), encoding="utf-8")
    return file


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("answer-cache-store")


def samples_of(result) -> list:
    [pipeline] = result.pipelines
    return pipeline.samples


def test_a_rerun_replays_every_answer_and_never_touches_the_model(tmp_path, store):
    suite = suite_file(tmp_path, label="replay")
    first = run_suite(suite, store_dir=store, answer_cache=True)
    questions = len(samples_of(first))
    assert CALLS["replay:generate"] == questions
    assert CALLS["replay:load"] == 1  # on the first miss, not at warm-up (a warm cache never loads it)
    assert not any(s.answer_cached for s in samples_of(first))
    before = dict(CALLS)

    second = run_suite(suite, store_dir=store, answer_cache=True)
    assert CALLS["replay:generate"] == before["replay:generate"]  # no model call
    assert CALLS["replay:count"] == before["replay:count"]  # no token counting either: no prompt was assembled
    assert CALLS["replay:load"] == 1
    assert all(s.answer_cached for s in samples_of(second))
    for old, new in zip(samples_of(first), samples_of(second), strict=True):
        assert (new.answer, new.citations, new.usage, new.latency) == (
            old.answer,
            old.citations,
            old.usage,
            old.latency,
        )
        assert [h.chunk.id for h in new.hits] == [h.chunk.id for h in old.hits]
        assert {n: r.value for n, r in new.metrics.items()} == {n: r.value for n, r in old.metrics.items()}
    aggregates = second.pipelines[0].aggregates()
    assert aggregates["answers_cached"] == questions and first.pipelines[0].aggregates()["answers_cached"] == 0

    third = run_suite(suite, store_dir=store)  # the suite's default: off
    assert CALLS["replay:generate"] == before["replay:generate"] + questions
    assert not any(s.answer_cached for s in samples_of(third))


def test_the_report_says_which_answers_were_replayed(tmp_path, store):
    suite = suite_file(tmp_path, label="report")
    result = CliRunner().invoke(app, ["eval", "run", str(suite), "--answer-cache", "--out", str(tmp_path / "one")])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        app, ["eval", "run", str(suite), "--answer-cache", "--out", str(tmp_path / "two"), "--store-dir", str(store)]
    )
    assert result.exit_code == 0, result.output
    # the first run used the default store beside --out; this one a fresh store: both generated
    assert CALLS["report:generate"] == 2 * 10
    result = CliRunner().invoke(
        app, ["eval", "run", str(suite), "--answer-cache", "--out", str(tmp_path / "three"), "--store-dir", str(store)]
    )
    assert result.exit_code == 0, result.output
    assert CALLS["report:generate"] == 2 * 10
    report = json.loads((tmp_path / "three" / "report.json").read_text(encoding="utf-8"))
    assert all(s["answer_cached"] for s in report["samples"])
    assert report["pipelines"][0]["aggregates"]["answers_cached"] == 10
    markdown = (tmp_path / "three" / "report.md").read_text(encoding="utf-8")
    assert "Answers replayed from the answer cache" in markdown and "`rag` 10 of 10" in markdown


@pytest.mark.parametrize(
    ("change", "label"),
    [
        ({"answer": {"max_tokens": 40}}, "answer-setting"),
        ({"top_k": 2}, "retrieved-hits"),
        ({"label": "other"}, "generator-config"),
    ],
)
def test_anything_that_could_change_an_answer_is_a_miss(tmp_path, store, change, label):
    base = {"label": f"miss-{label}"}
    run_suite(suite_file(tmp_path, **base), store_dir=store, answer_cache=True)
    again = run_suite(suite_file(tmp_path, **base), store_dir=store, answer_cache=True)
    assert all(s.answer_cached for s in samples_of(again))  # unchanged: every answer found
    changed = {**base, **change}
    if "label" in change:
        changed["label"] = f"miss-{label}-changed"
    result = run_suite(suite_file(tmp_path, **changed), store_dir=store, answer_cache=True)
    assert not any(s.answer_cached for s in samples_of(result)), label


def test_sampled_pipelines_are_never_cached_and_failures_are_asked_again(tmp_path, store):
    sampled = suite_file(tmp_path, label="sampled", answer={"temperature": 0.7})
    for _ in range(2):
        run_suite(sampled, store_dir=store, answer_cache=True)
    assert CALLS["sampled:generate"] == 2 * 10

    failing = suite_file(tmp_path, label="failing", fail_on="Amazon")
    first = run_suite(failing, store_dir=store, answer_cache=True)
    failed = [s.question.id for s in samples_of(first) if s.error]
    assert failed and all("the upstream model failed" in s.error for s in samples_of(first) if s.error)
    calls = CALLS["failing:generate"]
    second = run_suite(failing, store_dir=store, answer_cache=True)
    assert CALLS["failing:generate"] == calls + len(failed)  # only the failures are asked again
    assert [s.question.id for s in samples_of(second) if s.error] == failed
    assert all(s.answer_cached for s in samples_of(second) if not s.error)


def test_a_broken_cache_file_costs_time_not_the_run(tmp_path, store, caplog):
    suite = suite_file(tmp_path, label="broken")
    broken = tmp_path / "broken-store"
    (broken / "answer-cache").mkdir(parents=True)
    (broken / "answer-cache" / "answers.sqlite3").write_bytes(b"this is not a database" * 100)
    result, _ = evaluate(suite, out_dir=tmp_path / "out", store_dir=broken, answer_cache=True)
    assert all(s.answer is not None and s.error is None for s in samples_of(result))
    assert "answer cache" in caplog.text and "cannot be used" in caplog.text


def test_a_store_written_by_another_schema_version_starts_empty(tmp_path):
    old = JsonStore(tmp_path / "kv.sqlite3", "test store", version=1)
    old.put("k", {"x": 1})
    assert old.get("k") == {"x": 1} and len(old) == 1
    old.close()
    assert JsonStore(tmp_path / "kv.sqlite3", "test store", version=1).get("k") == {"x": 1}
    newer = JsonStore(tmp_path / "kv.sqlite3", "test store", version=2)
    assert newer.get("k") is None and len(newer) == 0


def test_a_cached_entry_that_does_not_fit_the_hits_is_a_miss(tmp_path):
    cache = AnswerCache(tmp_path)
    cache._store.put("key", {"text": "t", "used": [4], "citations": [], "usage": {}, "timings": {}, "latency": 0.1})
    assert cache.get("key", hit_count=3) is None and cache.missed == 1
    assert cache.get("key", hit_count=5) is not None and cache.found == 1


def test_the_local_models_fingerprint_changes_with_its_file(tmp_path):
    from ragkit_transformers.generator import TransformersGenerator

    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 64)
    generator = TransformersGenerator(model=str(model))
    before = generator_fingerprint(generator)
    assert "tiny.gguf:68:" in generator.fingerprint and not generator.is_loaded
    os.utime(model, ns=(1, 1))  # new weights behind the same name
    assert generator_fingerprint(generator) != before
    packaged = TransformersGenerator()
    assert "SmolLM2-135M-Instruct" in packaged.fingerprint and not packaged.is_loaded


def test_questions_nothing_relevant_answers_never_load_the_model(tmp_path, store):
    suite = suite_file(tmp_path, label="unanswerable", min_score=0.99)  # no chunk is that close to a question
    for _ in range(2):
        result = run_suite(suite, store_dir=store, answer_cache=True)
        samples = samples_of(result)
        assert all(not s.hits and s.answer and s.error is None for s in samples)
        assert not any(s.answer_cached for s in samples)  # nothing to keep: no model call made them
    assert CALLS["unanswerable:load"] == 0 and CALLS["unanswerable:generate"] == 0
