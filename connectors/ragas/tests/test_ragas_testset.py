"""Test-set generation: every written question's quote is found at its offsets in the loaded documents."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from ragkit_ragas.testset import generate_testset, locate, parse_question_answer, verify_testset

from ragkit.errors import InputError
from ragkit.generation.base import BaseGenerator, GenerationDelta, GenerationOptions, Message

REPO = Path(__file__).resolve().parents[3]
SAMPLE_DOCS = REPO / "evaluation" / "datasets" / "sample-docs"


@pytest.fixture
def two_docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("black-death.txt", "amazon-rainforest.md"):
        shutil.copy(SAMPLE_DOCS / name, folder / name)
    return folder


class PassageEcho(BaseGenerator):
    """A test generator: asks about the passage it is given and answers with words from it, or not.

    Replies cycle through: a verbatim answer (its words re-spaced and
    re-cased, which must still be found), an invented answer, a reply in
    no known format.
    """

    def __init__(self) -> None:
        self.calls = 0

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Iterator[GenerationDelta]:
        self.calls += 1
        passage = messages[-1].content.split("Passage:\n", 1)[1].split("\n\nWrite one question", 1)[0]
        words = passage.split()
        kind = (self.calls - 1) % 3
        if kind == 0:
            answer = "  ".join(words[3:7]).upper()
            reply = f'Question: What does passage {self.calls} say?\nAnswer: "{answer}"'
        elif kind == 1:
            reply = "Question: Who painted the Mona Lisa?\nAnswer: Leonardo da Vinci in 1503 on Mars"
        else:
            reply = "I do not know."
        yield GenerationDelta(text=reply)
        yield GenerationDelta(finish_reason="stop")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_only_verifiable_questions_are_written_and_drops_are_counted(two_docs: Path, tmp_path: Path):
    out = tmp_path / "testset.jsonl"
    generator = PassageEcho()
    report = generate_testset(two_docs, generator, n=3, seed=1, out=out)
    assert report.written == 3
    assert report.attempted == 7  # good, invented, malformed, good, invented, malformed, good
    assert report.drop_reasons == {"answer_not_in_passage": 2, "malformed_output": 2}
    assert report.dropped == 4 and report.failed_calls == 0
    assert report.documents == 2
    records = read_jsonl(out)
    assert len(records) == 3
    texts = {p.name: p.read_text(encoding="utf-8") for p in two_docs.iterdir()}
    for record in records:
        assert set(record) == {"id", "question", "answers", "gold_spans", "metadata"}
        span = record["gold_spans"][0]
        quote = record["metadata"]["quote"]
        assert texts[span["source"]][span["start"] : span["end"]] == quote  # plain-text files: file offsets
        assert record["answers"] == [quote]
        assert quote in record["metadata"]["reference_contexts"][0]
    assert {r["gold_spans"][0]["source"] for r in records} == {"black-death.txt", "amazon-rainforest.md"}
    assert verify_testset(out, two_docs) == (3, [])


def test_the_same_seed_gives_the_same_questions(two_docs: Path, tmp_path: Path):
    first = generate_testset(two_docs, PassageEcho(), n=2, seed=7, out=tmp_path / "a.jsonl")
    second = generate_testset(two_docs, PassageEcho(), n=2, seed=7, out=tmp_path / "b.jsonl")
    assert first.written == second.written == 2
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    other = generate_testset(two_docs, PassageEcho(), n=2, seed=8, out=tmp_path / "c.jsonl")
    assert other.written == 2
    assert (tmp_path / "c.jsonl").read_text() != (tmp_path / "a.jsonl").read_text()


def test_a_tampered_record_fails_verification(two_docs: Path, tmp_path: Path):
    out = tmp_path / "t.jsonl"
    generate_testset(two_docs, PassageEcho(), n=1, seed=0, out=out)
    record = read_jsonl(out)[0]
    record["metadata"]["document_start"] += 1
    out.write_text(json.dumps(record) + "\n")
    good, problems = verify_testset(out, two_docs)
    assert good == 0 and "the quote is not at" in problems[0]


class Paraphraser(BaseGenerator):
    """A test generator that asks a question, then answers it in its own words (never verbatim)."""

    def __init__(self) -> None:
        self.calls = 0

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Iterator[GenerationDelta]:
        self.calls += 1
        if "Reply with the answer only" in messages[-1].content:
            yield GenerationDelta(text="Answer: about forty thousand people died in the city of Paris")
        else:
            yield GenerationDelta(text="Question: How many people died in Paris in 1466?")
        yield GenerationDelta(finish_reason="stop")


def test_sentence_mode_quotes_the_passage_sentence_behind_a_paraphrased_answer(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    text = (
        "The plague reached Paris in 1348 and returned many times over the following century. "
        "Forty thousand people died in Paris in 1466. Venice suffered a severe outbreak later, "
        "and the city built quarantine stations on islands in its lagoon to isolate the sick."
    )
    (docs / "paris.txt").write_text(text, encoding="utf-8")
    exact = generate_testset(docs, Paraphraser(), n=1, seed=0, out=tmp_path / "exact.jsonl", max_attempts=1)
    assert exact.written == 0 and exact.drop_reasons == {"answer_not_in_passage": 1}
    generator = Paraphraser()
    out = tmp_path / "sentence.jsonl"
    report = generate_testset(docs, generator, n=1, seed=0, out=out, answer_match="sentence")
    assert report.written == 1 and generator.calls == 2  # question, then answer
    record = read_jsonl(out)[0]
    assert record["answers"] == ["Forty thousand people died in Paris in 1466."]
    assert record["metadata"]["answer_match"] == "sentence"
    assert record["metadata"]["generated_answer"] == "about forty thousand people died in the city of Paris"
    assert verify_testset(out, docs) == (1, [])


def test_locate_ignores_case_and_spacing_but_returns_the_passage_wording():
    passage = "The  Black Death\nkilled many people in Europe."
    start, end = locate(passage, "black death killed")
    assert passage[start:end] == "Black Death\nkilled"
    assert locate(passage, "plague") is None
    assert locate(passage, "Europe") == (passage.index("Europe"), passage.index("Europe") + 6)


def test_parse_question_answer_forms():
    assert parse_question_answer("Question: Why?\nAnswer: Because.") == ("Why?", "Because.")
    assert parse_question_answer('{"question": "Why?", "answer": "Because"}') == ("Why?", "Because")
    assert parse_question_answer("1. Question - Why?\n2. Answer - Because") == ("Why?", "Because")
    assert parse_question_answer("no idea") is None


def test_bad_arguments(two_docs: Path, tmp_path: Path):
    with pytest.raises(InputError, match="n must be"):
        generate_testset(two_docs, PassageEcho(), n=0, seed=0, out=tmp_path / "x.jsonl")
    with pytest.raises(InputError, match="does not exist"):
        generate_testset(tmp_path / "missing", PassageEcho(), n=1, seed=0, out=tmp_path / "x.jsonl")


def test_testset_with_the_local_model_verifies_every_span(two_docs: Path, tmp_path: Path):
    out = tmp_path / "local.jsonl"
    report = generate_testset(
        two_docs, {"type": "transformers"}, n=2, seed=0, out=out, max_attempts=3, max_tokens=40, answer_match="sentence"
    )
    print("local testset report:", json.dumps(report.to_dict(), indent=1))
    records = read_jsonl(out)
    print("local testset records:", json.dumps(records, indent=1)[:3000])
    assert report.attempted <= 3
    assert report.written == len(records) <= 2
    assert report.written + report.dropped + report.failed_calls == report.attempted
    good, problems = verify_testset(out, two_docs)
    assert problems == [] and good == len(records)
