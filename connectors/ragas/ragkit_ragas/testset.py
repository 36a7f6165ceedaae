"""Test-set generation: questions with verbatim, verified answer spans from a folder of documents.

:func:`generate_testset` loads a folder with ragkit's loaders, cuts the
documents into passages with ragkit's recursive splitter, and asks a ragkit
generator, passage by passage, for *one question the passage answers and
its answer copied word for word from the passage*. Every answer is then
located in the passage (exactly, else ignoring case and runs of
whitespace) and its span converted to character offsets in the loaded
document's text. A question is written only when
``document.text[start:end] == quote`` holds for the loaded text; the rest
are dropped and counted by reason. So every record in the output names a
span that exists, whatever the generator made up.

Why not ragas' ``TestsetGenerator``: it builds a knowledge graph first
(headline, summary, theme and entity extraction, embeddings, clustering):
dozens of structured LLM calls per document before the first question,
which a small local model fails and a CPU takes minutes over, and its
questions carry no source offsets. One short call per question and a
check against the source work offline with the packaged 135M model.

Output: one JSON object per line, in the question format of ragkit's
evaluation suites (``ragkit.evaluation.questions``), so the file is a
ready questions file for ``ragkit eval``::

    {"id": "...", "question": "...", "answers": ["<quote>"],
     "gold_spans": [{"source": "<path relative to the folder>", "start": 1234, "end": 1260}],
     "metadata": {"quote": "<quote>", "source": "...", "source_uri": "<absolute path>",
                  "document_id": "...", "document_start": 1234, "document_end": 1260,
                  "reference_contexts": ["<the passage>"], "passage_start": 1100, "passage_end": 1800,
                  "generated_answer": "<what the model wrote>", "generator": "<model name>"}}

``gold_spans`` offsets are in the file's coordinates as the evaluation
core reads them (a chunk's offsets plus the ``part_offset`` of a streamed
text part); ``document_start``/``document_end`` index the loaded
document's text, where ``quote`` is found. ``metadata.reference_contexts``
gives the ragas metrics their gold passage.
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragkit.component import Component
from ragkit.errors import ConfigError, InputError, LoaderError
from ragkit.generation.base import Message
from ragkit.hashing import content_hash
from ragkit.schema import Chunk, Document
from ragkit_ragas._sync import run_sync
from ragkit_ragas.judge import Judge, JudgeError, build_judge_generator

SYSTEM_PROMPT = "You write reading-comprehension questions about a passage, and answer them from the passage."
QUESTION_PROMPT = """Passage:
{passage}

Write one question that this passage answers. Then give the answer, copied word for word from the passage: \
a short phrase, not a whole paragraph.
Reply in exactly this form:
Question: <the question>
Answer: <the words copied from the passage>"""
ANSWER_PROMPT = """Passage:
{passage}

Question: {question}

Answer the question with a short phrase copied word for word from the passage. Reply with the answer only."""

_QUESTION = re.compile(r"^[\W\d_]*question\s*\d*\s*[:\-]\s*(.+)$", re.IGNORECASE | re.MULTILINE)
_ANSWER = re.compile(r"^[\W\d_]*(?:the\s+)?answer\s*\d*\s*[:\-]\s*(.+)$", re.IGNORECASE | re.MULTILINE)
_QUESTION_PREFIX = re.compile(r"^[\W\d_]*question\s*\d*\s*[:\-]\s*", re.IGNORECASE)
_ANSWER_PREFIX = re.compile(r"^[\W\d_]*(?:the\s+)?answer(?:\s*[:\-]|\s+is\b:?)\s*", re.IGNORECASE)
_QUOTES = "\"'“”‘’`«»"

ANSWER_MATCHES = ("exact", "sentence")
"""The ``answer_match`` modes of :func:`generate_testset`."""

TestsetProgress = Callable[[int, int], None]
"""Called as ``progress(written, attempted)`` after each passage."""


@dataclass
class TestsetReport:
    """What :func:`generate_testset` did."""

    __test__ = False  # not a pytest test class, whatever its name

    requested: int
    written: int = 0
    attempted: int = 0
    """Passages the generator was asked about."""
    dropped: int = 0
    """Answers generated but not written (unverifiable span, malformed, duplicate ...)."""
    failed_calls: int = 0
    """Generator calls that failed for good (after retries)."""
    drop_reasons: dict[str, int] = field(default_factory=dict)
    documents: int = 0
    passages: int = 0
    out: str = ""
    generator: str = ""
    seed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    """Files that could not be loaded, and the first few failed calls."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class _Passage:
    document: Document
    chunk: Chunk
    relative: str


def generate_testset(
    documents: Path | str,
    generator_config: Mapping[str, Any] | Any,
    n: int,
    seed: int,
    out: Path | str,
    *,
    chunk_size: int = 700,
    min_passage_chars: int = 200,
    max_attempts: int | None = None,
    max_tokens: int = 96,
    retries: int = 1,
    timeout: float | None = 120.0,
    cache_dir: Path | str | None = None,
    answer_match: str = "exact",
    progress: TestsetProgress | None = None,
) -> TestsetReport:
    """Write up to ``n`` verified questions about the files under ``documents`` to ``out`` (JSONL).

    Args:
        documents: A folder (walked) or a file; every format ragkit loads.
        generator_config: The question writer, a ragkit generator config
            (``{"type": "transformers"}``) or a built generator.
        n: How many questions to write.
        seed: Picks the passages (and is passed to the generator); the same
            seed, documents and generator give the same questions.
        out: The JSONL file to write (replaced atomically).
        chunk_size: Passage length in characters.
        min_passage_chars: Shorter passages (headings, scraps) are skipped.
        max_attempts: Passages to try at most (default ``4 * n + 4``).
        max_tokens: Length limit of each generation.
        retries: Extra attempts of a failed generator call.
        timeout: Seconds one generator call may take.
        cache_dir: A folder for a cache of the generator's answers
            (``None``: no cache).
        answer_match: ``exact``: the answer must occur in the passage
            (ignoring case and spacing), else the question is dropped;
            ``sentence``: an answer that does not occur is replaced by the
            passage sentence sharing most of its words (at least half of
            them, two or more), for generators too small to copy; the
            record says which in ``metadata.answer_match``. Either way the
            written quote is verified against the loaded text.
        progress: ``progress(written, attempted)`` after each passage.

    Returns:
        A :class:`TestsetReport`: questions written, attempts, drops by reason.

    Raises:
        InputError: ``documents`` is missing or holds no loadable text, or ``n < 1``.

    """
    return run_sync(
        agenerate_testset(
            documents,
            generator_config,
            n,
            seed,
            out,
            chunk_size=chunk_size,
            min_passage_chars=min_passage_chars,
            max_attempts=max_attempts,
            max_tokens=max_tokens,
            retries=retries,
            timeout=timeout,
            cache_dir=cache_dir,
            answer_match=answer_match,
            progress=progress,
        )
    )


async def agenerate_testset(
    documents: Path | str,
    generator_config: Mapping[str, Any] | Any,
    n: int,
    seed: int,
    out: Path | str,
    *,
    chunk_size: int = 700,
    min_passage_chars: int = 200,
    max_attempts: int | None = None,
    max_tokens: int = 96,
    retries: int = 1,
    timeout: float | None = 120.0,
    cache_dir: Path | str | None = None,
    answer_match: str = "exact",
    progress: TestsetProgress | None = None,
) -> TestsetReport:
    """Async twin of :func:`generate_testset`."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"testset: n must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"testset: seed must be an integer, got {seed!r}")
    if answer_match not in ANSWER_MATCHES:
        raise InputError(f"testset: answer_match must be 'exact' or 'sentence', got {answer_match!r}")
    started = time.perf_counter()
    report = TestsetReport(requested=n, out=str(out), seed=seed)
    loaded, errors = load_documents(documents)
    report.errors.extend(errors)
    report.documents = len(loaded)
    passages = _passages(loaded, chunk_size, min_passage_chars)
    report.passages = len(passages)
    if not passages:
        raise InputError(f"testset: no passage of at least {min_passage_chars} characters under {documents}")
    order = _order(passages, seed)
    limit = max_attempts if max_attempts is not None else 4 * n + 4
    order = order[: max(1, limit)]

    from ragkit_ragas.cache import JudgeCache

    generator = build_judge_generator(generator_config)
    judge = Judge(
        generator,
        cache=JudgeCache(cache_dir) if cache_dir is not None else None,
        retries=retries,
        timeout=timeout,
        concurrency=1,
        max_tokens=max_tokens,
        temperature=0.0,
        seed=seed,
    )
    report.generator = judge.model_name
    texts = {document.id: document.text or "" for document in loaded}
    drops: Counter[str] = Counter()
    records: list[dict[str, Any]] = []
    questions_seen: set[str] = set()
    try:
        for passage in order:
            if len(records) >= n:
                break
            report.attempted += 1
            try:
                parsed = await _question_and_answer(judge, passage.chunk.text.strip())
            except JudgeError as exc:
                report.failed_calls += 1
                if len(report.errors) < 20:
                    report.errors.append(str(exc))
                drops["generator_failed"] += 1
                _tick(progress, len(records), report.attempted)
                continue
            record, reason = _record(passage, parsed, texts, judge.model_name, questions_seen, answer_match)
            if record is None:
                drops[reason] += 1
            else:
                questions_seen.add(_normal(record["question"]))
                records.append(record)
            _tick(progress, len(records), report.attempted)
    finally:
        if judge.cache is not None:
            judge.cache.close()

    # the check every written record passes, against the text as loaded
    verified = []
    for record in records:
        if _span_problem(record, texts) is None:
            verified.append(record)
        else:  # cannot happen unless a bug: counted, never written
            drops["span_mismatch"] += 1
    report.written = len(verified)
    report.dropped = sum(drops.values()) - drops["generator_failed"]
    report.drop_reasons = dict(sorted(drops.items()))
    _write_jsonl(Path(out), verified)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


class VerifiedTestsetGenerator(Component):
    """The ``testset_generator`` component ``ragas``: :func:`generate_testset` with its options fixed when built.

    ``ragkit eval testset`` finds it through the registry (the
    ``testset_generator.ragas`` entry point), so the core never imports this
    package. Its config round-trips through ``to_config`` / ``from_config``.

    Args:
        generator: The question writer: a ragkit generator config
            (``{"type": "transformers"}``) or just its type name.
        chunk_size: Passage length in characters.
        min_passage_chars: Shorter passages are skipped.
        max_attempts: Passages to try at most (default ``4 * n + 4``).
        max_tokens: Length limit of each generation.
        retries: Extra attempts of a failed generator call.
        timeout: Seconds one generator call may take (``None``: no limit).
        cache_dir: A folder for a cache of the generator's answers (``None``: no cache).
        answer_match: ``exact`` or ``sentence``, see :func:`generate_testset`.

    Raises:
        ConfigError: An option is out of range or of the wrong kind.

    """

    def __init__(
        self,
        generator: Mapping[str, Any] | str = "transformers",
        chunk_size: int = 700,
        min_passage_chars: int = 200,
        max_attempts: int | None = None,
        max_tokens: int = 96,
        retries: int = 1,
        timeout: float | None = 120.0,
        cache_dir: str | None = None,
        answer_match: str = "exact",
    ) -> None:
        where = "testset_generator 'ragas'"
        config = {"type": generator} if isinstance(generator, str) else generator
        if not isinstance(config, Mapping) or not isinstance(config.get("type"), str):
            raise ConfigError(f"{where}: generator must be a generator config with a 'type' key, got {generator!r}")
        for name, value, least in (
            ("chunk_size", chunk_size, 1),
            ("min_passage_chars", min_passage_chars, 0),
            ("max_attempts", 1 if max_attempts is None else max_attempts, 1),
            ("max_tokens", max_tokens, 1),
            ("retries", retries, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"{where}: {name} must be an integer of at least {least}, got {value!r}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
            raise ConfigError(f"{where}: timeout must be a positive number of seconds or null, got {timeout!r}")
        if answer_match not in ANSWER_MATCHES:
            raise ConfigError(f"{where}: answer_match must be one of {', '.join(ANSWER_MATCHES)}, got {answer_match!r}")
        self.generator = dict(config)
        self.options: dict[str, Any] = {
            "chunk_size": chunk_size,
            "min_passage_chars": min_passage_chars,
            "max_attempts": max_attempts,
            "max_tokens": max_tokens,
            "retries": retries,
            "timeout": timeout,
            "cache_dir": cache_dir,
            "answer_match": answer_match,
        }

    def generate(
        self, documents: Path | str, n: int, seed: int, out: Path | str, progress: TestsetProgress | None = None
    ) -> TestsetReport:
        """Write up to ``n`` verified questions about ``documents`` to ``out``; see :func:`generate_testset`."""
        return generate_testset(documents, self.generator, n, seed, out, progress=progress, **self.options)


def load_documents(documents: Path | str) -> tuple[list[Document], list[str]]:
    """The documents ragkit's loaders read under ``documents`` (a folder or a file), and the files that failed.

    Each document's ``metadata["relative_path"]`` is its file's path relative
    to the folder given.
    """
    from ragkit.loaders import LoaderSet, UnsupportedFileError, discover

    loaders = LoaderSet()
    found: list[Document] = []
    errors: list[str] = []
    for file in discover([Path(documents)]):
        try:
            docs = list(loaders.load(file))
        except UnsupportedFileError:
            continue
        except LoaderError as exc:
            errors.append(str(exc))
            continue
        for document in docs:
            if document.text and document.text.strip():
                document.metadata = {**document.metadata, "relative_path": file.relative or Path(file.source).name}
                found.append(document)
    return found, errors


def verify_testset(path: Path | str, documents: Path | str) -> tuple[int, list[str]]:
    """Check a test set against the documents: ``(records verified, problems)``.

    A record passes when the document it names, loaded again from
    ``documents``, holds ``metadata.quote`` at ``[document_start,
    document_end)``, and its gold span says the same in file coordinates.
    """
    loaded, _ = load_documents(documents)
    texts = {document.id: document.text or "" for document in loaded}
    offsets = {document.id: _part_offset(document) for document in loaded}
    good = 0
    problems: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            problem = _span_problem(record, texts, offsets)
            if problem is None:
                good += 1
            else:
                problems.append(f"line {line_number}: {problem}")
    return good, problems


def _span_problem(
    record: Mapping[str, Any], texts: Mapping[str, str], offsets: Mapping[str, int] | None = None
) -> str | None:
    """Why ``record``'s span is not where it says in the loaded text (``None`` when it is)."""
    metadata = record.get("metadata") or {}
    document_id = metadata.get("document_id")
    text = texts.get(document_id) if isinstance(document_id, str) else None
    if text is None:
        return f"document {metadata.get('source')!r} ({document_id}) is not among the loaded documents"
    start, end, quote = metadata.get("document_start"), metadata.get("document_end"), metadata.get("quote")
    if not isinstance(start, int) or not isinstance(end, int) or not isinstance(quote, str) or not quote:
        return "the record has no document_start, document_end and quote"
    if text[start:end] != quote:
        return f"the quote is not at [{start}, {end}) of {metadata.get('source')!r}"
    if record.get("answers") != [quote]:
        return "the reference answer is not the quote"
    spans = record.get("gold_spans") or []
    if offsets is not None and spans:
        shift = offsets.get(str(document_id), 0)
        if spans[0].get("start") != start + shift or spans[0].get("end") != end + shift:
            return "the gold span does not match the quote's offsets"
    return None


def _part_offset(document: Document) -> int:
    offset = document.metadata.get("part_offset", 0)
    return offset if isinstance(offset, int) else 0


# -- internals ------------------------------------------------------------------------------------------


def _passages(documents: Sequence[Document], chunk_size: int, min_chars: int) -> list[_Passage]:
    from ragkit.splitters.recursive import RecursiveSplitter

    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 100:
        raise ConfigError(f"testset: chunk_size must be an integer of at least 100, got {chunk_size!r}")
    splitter = RecursiveSplitter(chunk_size=chunk_size, chunk_overlap=0)
    passages = []
    for document in documents:
        relative = str(document.metadata.get("relative_path") or document.source)
        for chunk in splitter.split([document]):
            if len(chunk.text.strip()) >= min_chars:
                passages.append(_Passage(document, chunk, relative))
    return passages


def _order(passages: list[_Passage], seed: int) -> list[_Passage]:
    """Passages shuffled by ``seed`` within each document, then taken from the documents in turn."""
    rng = random.Random(seed)
    by_document: dict[str, list[_Passage]] = {}
    for passage in passages:
        by_document.setdefault(passage.document.id, []).append(passage)
    queues = list(by_document.values())
    for queue in queues:
        rng.shuffle(queue)
    rng.shuffle(queues)
    ordered: list[_Passage] = []
    while any(queues):
        for queue in queues:
            if queue:
                ordered.append(queue.pop())
    return ordered


def parse_question_answer(text: str) -> tuple[str, str] | None:
    """``(question, answer)`` from a ``Question: ... / Answer: ...`` reply (or a JSON object with those keys)."""
    question = _QUESTION.search(text)
    answer = _ANSWER.search(text)
    if question and answer:
        return question.group(1).strip(), answer.group(1).strip()
    try:
        start, end = text.index("{"), text.rindex("}") + 1
        data = json.loads(text[start:end])
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("question"), str) and isinstance(data.get("answer"), str):
        return data["question"].strip(), data["answer"].strip()
    return None


def locate(passage: str, answer: str) -> tuple[int, int] | None:
    """Where ``answer`` occurs in ``passage``: exactly, else ignoring case and runs of whitespace.

    Returns offsets into ``passage`` (so ``passage[start:end]`` is the
    passage's own wording of the answer), or ``None``.
    """
    if not answer:
        return None
    at = passage.find(answer)
    if at >= 0:
        return at, at + len(answer)
    # normalise: collapse whitespace, lower case; keep a map back to passage offsets
    normal_chars: list[str] = []
    positions: list[int] = []
    previous_space = False
    for index, char in enumerate(passage):
        if char.isspace():
            if previous_space:
                continue
            normal_chars.append(" ")
            previous_space = True
        else:
            normal_chars.append(char.lower())
            previous_space = False
        positions.append(index)
    wanted = " ".join(answer.split()).lower()
    if not wanted:
        return None
    at = "".join(normal_chars).find(wanted)
    if at < 0:
        return None
    start = positions[at]
    end = positions[at + len(wanted) - 1] + 1
    return start, end


async def _question_and_answer(judge: Judge, passage: str) -> tuple[str, str] | None:
    """Ask for a question and its answer; if the reply has only a question, ask for the answer separately."""
    system = Message("system", SYSTEM_PROMPT)
    reply = (await judge.ask([system, Message("user", QUESTION_PROMPT.format(passage=passage))])).text
    parsed = parse_question_answer(reply)
    if parsed is not None:
        return parsed
    question = _first_question(reply)
    if question is None:
        return None
    answer_reply = (
        await judge.ask([system, Message("user", ANSWER_PROMPT.format(passage=passage, question=question))])
    ).text
    answer = _first_line(_ANSWER_PREFIX.sub("", answer_reply.strip(), count=1))
    return (question, answer) if answer else None


def _first_question(text: str) -> str | None:
    """The first line of ``text`` that asks something (a ``Question:`` prefix removed)."""
    for line in text.splitlines():
        line = _QUESTION_PREFIX.sub("", line.strip(), count=1).strip()
        if "?" in line:
            return line[: line.index("?") + 1].strip()
    return None


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "whose",
        "why",
        "with",
    ]
)


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"\w+", text.lower()) if w not in _STOPWORDS and (len(w) > 2 or w.isdigit())}


def best_sentence(passage: str, answer: str) -> tuple[int, int] | None:
    """The span of the passage sentence sharing most content words with ``answer``.

    At least two shared words and half of the answer's content words, else
    ``None``. Ties go to the earlier sentence.
    """
    wanted = _content_words(answer)
    if len(wanted) < 2:
        return None
    best: tuple[float, int, int] | None = None
    for match in re.finditer(r"[^.!?\n]+(?:[.!?]+|$)", passage):
        start, end = match.span()
        while start < end and passage[start].isspace():
            start += 1
        while end > start and passage[end - 1].isspace():
            end -= 1
        shared = len(wanted & _content_words(passage[start:end]))
        share = shared / len(wanted)
        if shared >= 2 and share >= 0.5 and (best is None or share > best[0]):
            best = (share, start, end)
    return None if best is None else (best[1], best[2])


def _clean_answer(answer: str) -> str:
    answer = answer.strip()
    for _ in range(2):
        answer = answer.strip().strip(_QUOTES).strip()
    return answer.rstrip(".").strip() or answer


def _record(
    passage: _Passage,
    parsed: tuple[str, str] | None,
    texts: Mapping[str, str],
    model: str,
    questions_seen: set[str],
    answer_match: str = "exact",
) -> tuple[dict[str, Any] | None, str]:
    """The record for one generated question and answer, or ``(None, reason it was dropped)``."""
    if parsed is None:
        return None, "malformed_output"
    question, raw_answer = parsed
    question = question.strip().strip(_QUOTES).strip()
    answer = _clean_answer(raw_answer)
    if len(question) < 8 or not answer:
        return None, "malformed_output"
    chunk_text = passage.chunk.text
    span = locate(chunk_text, answer) or locate(chunk_text, raw_answer.strip())
    matched = "exact"
    if span is None and answer_match == "sentence":
        span = best_sentence(chunk_text, answer)
        matched = "sentence"
    if span is None:
        return None, "answer_not_in_passage"
    start = passage.chunk.start + span[0]
    end = passage.chunk.start + span[1]
    document_text = texts.get(passage.document.id, "")
    quote = document_text[start:end]
    if not quote.strip() or quote != chunk_text[span[0] : span[1]]:
        return None, "answer_not_in_passage"
    if len(quote) > 300 or len(quote) > 0.6 * len(chunk_text):
        return None, "answer_too_long"
    if _normal(quote) == _normal(question) or _normal(quote) in _normal(question):
        return None, "question_contains_answer"
    if _normal(question) in questions_seen:
        return None, "duplicate_question"
    part_offset = _part_offset(passage.document)
    metadata: dict[str, Any] = {
        "quote": quote,
        "source": passage.relative,
        "source_uri": passage.document.source,
        "document_id": passage.document.id,
        "document_start": start,
        "document_end": end,
        "reference_contexts": [chunk_text],
        "passage_start": passage.chunk.start,
        "passage_end": passage.chunk.end,
        "generated_answer": raw_answer,
        "answer_match": matched,
        "generator": model,
    }
    if "page" in passage.document.metadata:
        metadata["page"] = passage.document.metadata["page"]
    record = {
        "id": content_hash(f"{passage.document.id}\x00{start}\x00{end}\x00{question}")[:16],
        "question": question,
        "answers": [quote],
        "gold_spans": [{"source": passage.relative, "start": part_offset + start, "end": part_offset + end}],
        "metadata": metadata,
    }
    return record, ""


def _normal(text: str) -> str:
    return " ".join(text.lower().split()).strip(" ?.!")


def _tick(progress: TestsetProgress | None, written: int, attempted: int) -> None:
    if progress is not None:
        progress(written, attempted)


def _write_jsonl(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
