"""The test-set generator as a registered component: found by role and name, built from config, validated then."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from ragkit_ragas.testset import VerifiedTestsetGenerator, verify_testset

from ragkit import registry
from ragkit.errors import ConfigError
from ragkit.evaluation.testset import build_testset_generator
from ragkit.generation.base import BaseGenerator, GenerationDelta, GenerationOptions, Message

SAMPLE_DOCS = Path(__file__).resolve().parents[3] / "evaluation" / "datasets" / "sample-docs"


@registry.register("generator", "test-quote-the-passage")
class QuoteThePassage(BaseGenerator):
    """A question writer that always asks about the passage and quotes its words 4 to 9 as the answer."""

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Iterator[GenerationDelta]:
        passage = messages[-1].content.split("Passage:\n", 1)[1].split("\n\nWrite one question", 1)[0]
        answer = " ".join(passage.split()[3:9])
        yield GenerationDelta(text=f"Question: Which words does passage {len(passage)} hold?\nAnswer: {answer}")
        yield GenerationDelta(finish_reason="stop")


def test_the_registry_finds_it_under_its_role():
    assert "ragas" in registry.available("testset_generator")
    assert registry.get("testset_generator", "ragas") is VerifiedTestsetGenerator


def test_its_config_round_trips_and_a_type_name_is_enough_for_the_question_writer():
    built = build_testset_generator({"type": "ragas", "generator": "transformers", "max_tokens": 40})
    assert isinstance(built, VerifiedTestsetGenerator)
    config = built.to_config()
    assert config["type"] == "ragas" and config["generator"] == "transformers" and config["max_tokens"] == 40
    assert build_testset_generator(config).to_config() == config
    assert built.generator == {"type": "transformers"}


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"answer_match": "fuzzy"}, "answer_match must be one of exact, sentence"),
        ({"chunk_size": 0}, "chunk_size must be an integer of at least 1"),
        ({"timeout": -1}, "timeout must be a positive number"),
        ({"generator": {"model": "x"}}, "generator must be a generator config with a 'type' key"),
        ({"chunksize": 10}, r"unknown option\(s\) chunksize"),
    ],
)
def test_a_bad_option_fails_when_built(option: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        build_testset_generator({"type": "ragas", **option})


def test_generate_writes_verified_questions(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(SAMPLE_DOCS / "black-death.txt", docs / "black-death.txt")
    out = tmp_path / "questions.jsonl"
    writer = build_testset_generator({"type": "ragas", "generator": "test-quote-the-passage"})
    report = writer.generate(docs, 3, 0, out)
    assert report.written == 3 and report.requested == 3 and report.out == str(out)
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 3 and all(r["gold_spans"][0]["source"] == "black-death.txt" for r in records)
    assert verify_testset(out, docs) == (3, [])
    assert json.loads(json.dumps(report.to_dict()))["written"] == 3
