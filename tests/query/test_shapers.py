"""Context shapers (parent-document, sentence-window, compress, dedupe) on a real collection.

One collection (real MiniLM embedder, real FAISS + SQLite) built from squad-dev
paragraphs: ``guide.md`` with three sections (the Warsaw one under a bare
``## Warsaw`` heading that no chunk holds), ``teacher.txt`` with no headings,
and two identical copies of a Super Bowl file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ragkit import Collection
from ragkit.errors import ConfigError
from ragkit.query import QueryPipeline, build_stage
from ragkit.query.shapers import DocumentText, chunks_of_documents
from ragkit.query.state import QueryRequest, QueryState
from ragkit.rag.answer import Citation
from ragkit.schema import Chunk, Hit
from ragkit.splitters.sentence import sentence_spans

SQUAD = Path("/work/shared/datasets/squad-dev/documents")
NORMANS_Q = "In what country is Normandy located?"


def paragraphs(name: str, count: int, skip: int = 0) -> list[str]:
    text = (SQUAD / name).read_text(encoding="utf-8")
    return [p for p in text.split("\n\n")[1:] if p.strip()][skip : skip + count]


def guide_text() -> str:
    parts = ["# Field guide", "## Normans", *paragraphs("0002-normans.md", 4)]
    parts += ["## Nikola Tesla", *paragraphs("0003-nikola-tesla.md", 4)]
    parts += ["## Warsaw", "### Parks", *paragraphs("0001-warsaw.md", 4)]
    return "\n\n".join(parts) + "\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The documents by source, written to a temporary folder."""
    root = tmp_path_factory.mktemp("shaper-docs")
    files = {
        "guide.md": guide_text(),
        "teacher.txt": "\n\n".join(paragraphs("0005-teacher.md", 3)) + "\n",
        "a/super-bowl.md": "# Super Bowl 50\n\n" + "\n\n".join(paragraphs("0000-super-bowl-50.md", 3)) + "\n",
    }
    files["b/super-bowl.md"] = files["a/super-bowl.md"]
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    files["_root"] = str(root)
    for name in list(files):  # sources are the files' absolute paths
        files[str(root / name)] = files[name]
    return files


@pytest.fixture(scope="module")
def collection(corpus: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collection]:
    store = tmp_path_factory.mktemp("shaper-store")
    with Collection.create("shaping", store_dir=store) as created:
        report = created.ingest([corpus["_root"]])
        assert not report.failed and report.added == 4
        yield created


def name(source: str) -> str:
    """A source as a path relative to the corpus folder (``guide.md``)."""
    return "/".join(Path(source).parts[-2:]) if Path(source).parent.name in ("a", "b") else Path(source).name


def doc_of(corpus: dict[str, str], hit: Hit) -> str:
    return corpus[hit.chunk.source]


def shown(block: Chunk, child: Chunk) -> int:
    """How many characters of ``child`` a shaped ``block`` shows."""
    return min(block.end, child.end) - max(block.start, child.start)


def run(collection: Collection, stages: list[Any], question: str = NORMANS_Q, top_k: int = 10) -> Any:
    return QueryPipeline.from_configs(stages).search(question, collection, top_k=top_k)


def notes(result: Any, stage: str) -> list[str]:
    return next(entry.notes for entry in result.trace if entry.stage == stage)


# -- the store method and its fallback ------------------------------------------------------------


class ScanOnly:
    """The collection's own store seen through ``iter_chunks`` alone (as a third-party store without the method)."""

    def __init__(self, store: Any) -> None:
        self.iter_chunks = store.iter_chunks


def test_chunks_of_documents_falls_back_to_one_scan(collection: Collection, caplog: Any) -> None:
    guide = next(c for b in collection.store.iter_chunks() for c in b if name(c.source) == "guide.md").document_id
    teacher = next(c for b in collection.store.iter_chunks() for c in b if name(c.source) == "teacher.txt").document_id
    direct = chunks_of_documents(collection.store, [teacher, guide])
    assert [c.document_id for c in direct] == sorted([c.document_id for c in direct], key=[teacher, guide].index)
    assert [c.start for c in direct if c.document_id == guide] == sorted(
        c.start for c in direct if c.document_id == guide
    )
    with caplog.at_level(logging.DEBUG, logger="ragkit.query.shapers"):
        scanned = chunks_of_documents(ScanOnly(collection.store), [teacher, guide])  # type: ignore[arg-type]
    assert [c.to_dict() for c in scanned] == [c.to_dict() for c in direct]
    assert "scanning iter_chunks()" in caplog.text


def test_stitched_text_is_the_documents_text_where_chunks_hold_it(
    collection: Collection, corpus: dict[str, str]
) -> None:
    chunks = [c for b in collection.store.iter_chunks() for c in b if name(c.source) == "guide.md"]
    document = DocumentText.stitch(chunks[0].document_id, chunks)
    text = corpus["guide.md"]
    assert document.gaps, "the guide's chunks are separated by trimmed blank lines"
    held = list(text[document.start : document.end])
    for a, b in document.gaps:  # only what no chunk holds may differ, and it is whitespace in the stitched text
        held[a - document.start : b - document.start] = document.slice(a, b)
        assert document.slice(a, b).isspace()
    assert document.text == "".join(held)
    for chunk in chunks:
        assert document.slice(chunk.start, chunk.end) == chunk.text


# -- parent-document ----------------------------------------------------------------------------


def test_parent_is_the_whole_section_with_the_documents_text(collection: Collection, corpus: dict[str, str]) -> None:
    result = run(collection, [{"type": "dense", "top_k": 10}, {"type": "parent-document"}])
    text = corpus["guide.md"]
    best = result.hits[0]
    assert name(best.chunk.source) == "guide.md" and best.chunk.metadata["section"] == "Field guide > Normans"
    assert best.chunk.start == text.index("## Normans")
    assert best.chunk.end == text.index("## Nikola Tesla") - 2  # the section without its trailing blank line
    for hit in result.hits:
        assert doc_of(corpus, hit)[hit.chunk.start : hit.chunk.end] == hit.chunk.text
        citation = Citation.from_hit(1, hit)
        assert doc_of(corpus, hit)[citation.start : citation.end].startswith(citation.quote)
    # siblings collapsed: one parent per section
    sections = [(h.chunk.source, h.chunk.metadata.get("section")) for h in result.hits]
    assert len(sections) == len(set(sections))
    assert len(best.chunk.metadata["parent_of"]) >= 2
    assert best.chunk.metadata["parent_scope"] == "section"
    [note] = notes(result, "parent-document")
    assert note.startswith(f"10 hits expanded to {len(result.hits)} parents (section, at most 4000 chars)")
    assert "merged into it" in note


def test_collapsed_siblings_keep_the_best_score_and_merge_their_scores(collection: Collection) -> None:
    hybrid: list[Any] = [{"type": "dense", "top_k": 10}, {"type": "lexical", "top_k": 10}, "rrf"]
    plain = run(collection, hybrid, top_k=20)
    shaped = run(collection, [*hybrid, {"type": "parent-document", "max_chars": None}], top_k=20)
    by_id = {h.chunk.id: h for h in plain.hits}
    assert len(shaped.hits) < len(plain.hits)
    for parent in shaped.hits:
        children = [by_id[i] for i in parent.chunk.metadata.get("parent_of", [parent.chunk.id])]
        assert parent.score == children[0].score == max(c.score for c in children)
        labels = {label for c in children for label in c.scores}
        assert set(parent.scores) == labels
        for label in labels:
            assert parent.scores[label] == max(c.scores[label] for c in children if label in c.scores)
            assert parent.ranks[label] == min(c.ranks[label] for c in children if label in c.ranks)
    assert [h.ranks["parent-document"] for h in shaped.hits] == list(range(1, len(shaped.hits) + 1))
    # parents in the order of their best hit
    assert [h.score for h in shaped.hits] == sorted((h.score for h in shaped.hits), reverse=True)


def test_window_parents_are_capped_do_not_cut_words_and_list_filled_gaps(
    collection: Collection, corpus: dict[str, str]
) -> None:
    stages = [{"type": "dense", "top_k": 10}, {"type": "parent-document", "scope": "window", "parent_chars": 1500}]
    result = run(collection, stages, question="Which parks in Warsaw have peacocks?")
    children = [h.chunk.metadata.get("parent_of", [h.chunk.id]) for h in result.hits]
    originals = {c.id: c for c in collection.store.get([i for ids in children for i in ids])}
    spans = []
    for hit in result.hits:
        chunk, text = hit.chunk, doc_of(corpus, hit)
        child = originals[chunk.metadata.get("parent_of", [chunk.id])[0]]
        assert shown(chunk, child) > (child.end - child.start) / 2  # it shows (most of) the hit it stands for
        assert chunk.end - chunk.start <= max(1500, child.end - child.start)
        assert chunk.start == 0 or text[chunk.start - 1].isspace()
        assert chunk.end == len(text) or text[chunk.end].isspace()
        expected = list(text[chunk.start : chunk.end])
        for a, b in chunk.metadata.get("gaps", []):  # stretches no chunk holds are whitespace, and listed
            assert chunk.text[a - chunk.start : b - chunk.start].isspace()
            expected[a - chunk.start : b - chunk.start] = chunk.text[a - chunk.start : b - chunk.start]
        assert chunk.text == "".join(expected)
        spans.append((chunk.source, chunk.start, chunk.end))
    # the bare '## Warsaw' heading lies in no chunk: a window across it lists it as a gap
    bare = corpus["guide.md"].index("## Warsaw")
    across = [h for h in result.hits if name(h.chunk.source) == "guide.md" and h.chunk.start < bare < h.chunk.end]
    for hit in across:
        assert any(a <= bare < b for a, b in hit.chunk.metadata["gaps"])
    # windows of one document never show the same text twice
    for i, (source, a, b) in enumerate(spans):
        for other, c, d in spans[i + 1 :]:
            if other == source:
                assert min(b, d) <= max(a, c)


def test_section_parents_longer_than_max_chars_become_windows(collection: Collection, corpus: dict[str, str]) -> None:
    stages = [{"type": "dense", "top_k": 10}, {"type": "parent-document", "max_chars": 1200}]
    result = run(collection, stages)
    for hit in result.hits:
        assert hit.chunk.end - hit.chunk.start <= 1200 or hit.chunk.metadata.get("parent_of") is None
        assert doc_of(corpus, hit)[hit.chunk.start : hit.chunk.end] == hit.chunk.text


# -- sentence-window ------------------------------------------------------------------------------


def expected_window(text: str, start: int, end: int, window: int) -> tuple[int, int]:
    sentences = sentence_spans(text)
    inside = [i for i, (a, b) in enumerate(sentences) if a < end and start < b]
    first, last = max(inside[0] - window, 0), min(inside[-1] + window, len(sentences) - 1)
    return min(sentences[first][0], start), max(sentences[last][1], end)


@pytest.mark.parametrize("window", [0, 1, 2])
def test_sentence_window_widens_to_whole_sentences_and_neighbours(
    collection: Collection, corpus: dict[str, str], window: int
) -> None:
    question = "What qualifications does a teacher need?"
    plain = run(collection, [{"type": "dense", "top_k": 3, "min_score": 0.3}], question=question, top_k=3)
    stages = [{"type": "dense", "top_k": 3, "min_score": 0.3}, {"type": "sentence-window", "window": window}]
    shaped = run(collection, stages, question=question, top_k=3)
    text = corpus["teacher.txt"]
    teacher = [h for h in plain.hits if name(h.chunk.source) == "teacher.txt"]
    assert teacher, "the teacher file answers this question"
    for hit in shaped.hits:
        assert doc_of(corpus, hit)[hit.chunk.start : hit.chunk.end] == hit.chunk.text
    first = teacher[0].chunk
    widened = next(h for h in shaped.hits if first.id in h.chunk.metadata.get("window_of", [first.id]))
    assert (widened.chunk.start, widened.chunk.end) == expected_window(text, first.start, first.end, window)
    if window:
        assert widened.chunk.metadata["window"] == window
        assert widened.chunk.end - widened.chunk.start > first.end - first.start
    assert "sentence window" in notes(shaped, "sentence-window")[0]


def test_sentence_window_stays_in_the_hits_section(collection: Collection, corpus: dict[str, str]) -> None:
    text = corpus["guide.md"]
    tesla = text.index("## Nikola Tesla")
    stages = [{"type": "dense", "top_k": 5}, {"type": "sentence-window", "window": 3}]
    result = run(collection, stages, question="When was Nikola Tesla born?", top_k=5)
    opening = [h for h in result.hits if name(h.chunk.source) == "guide.md" and h.chunk.start == tesla]
    assert opening, "the section's first chunk (starting at its heading) is found"
    # without the section rule the window would reach back into the Normans section
    loose = run(
        collection,
        [{"type": "dense", "top_k": 5}, {"type": "sentence-window", "window": 3, "within_section": False}],
        question="When was Nikola Tesla born?",
        top_k=5,
    )
    assert any(name(h.chunk.source) == "guide.md" and h.chunk.start < tesla < h.chunk.end for h in loose.hits)


def test_sentence_window_max_chars_keeps_the_hits_own_sentences(collection: Collection) -> None:
    question = "What qualifications does a teacher need?"
    plain = run(collection, [{"type": "dense", "top_k": 3}], question=question, top_k=3)
    stages = [{"type": "dense", "top_k": 3}, {"type": "sentence-window", "window": 5, "max_chars": 1100}]
    shaped = run(collection, stages, question=question, top_k=3)
    for hit in shaped.hits:
        child = next(h.chunk for h in plain.hits if h.chunk.id in hit.chunk.metadata.get("window_of", [hit.chunk.id]))
        assert shown(hit.chunk, child) > (child.end - child.start) / 2
        assert hit.chunk.end - hit.chunk.start <= max(1100, child.end - child.start + 400)


# -- compress -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["embedding", "overlap"])
def test_compress_keeps_the_answer_sentence_and_drops_unrelated_ones(
    collection: Collection, corpus: dict[str, str], method: str
) -> None:
    plain = run(collection, [{"type": "dense", "top_k": 4}], top_k=4)
    shaped = run(collection, [{"type": "dense", "top_k": 4}, {"type": "compress", "method": method}], top_k=4)
    answer = "gave their name to Normandy, a region in France"
    holding = [h for h in shaped.hits if answer in h.chunk.text]
    assert holding, "the sentence with the answer is kept"
    before = {h.chunk.id: h for h in plain.hits}
    total_before = sum(len(h.chunk.text) for h in plain.hits)
    assert sum(len(h.chunk.text) for h in shaped.hits) < total_before * 0.7
    unrelated = "Through generations of assimilation and mixing"  # same paragraph as the answer
    assert any(unrelated in h.chunk.text and answer in h.chunk.text for h in plain.hits)
    assert not any(unrelated in h.chunk.text for h in shaped.hits)
    for hit in shaped.hits:
        meta = hit.chunk.metadata
        original = before[meta.get("compressed_from", hit.chunk.id)].chunk
        assert (hit.chunk.start, hit.chunk.end) == (original.start, original.end)  # the citation's span stays true
        assert hit.score == before[original.id].score
        if meta.get("compressed"):
            for a, b in meta["kept_spans"]:
                assert original.start <= a < b <= original.end
                assert doc_of(corpus, hit)[a:b] in hit.chunk.text
            assert hit.chunk.id != original.id
    assert hit.scores["compress"] >= 0  # the best sentence's score, recorded under the stage's label
    assert notes(shaped, "compress")[0].startswith("kept ")


def test_compress_never_drops_the_best_hit(collection: Collection) -> None:
    stages = [{"type": "dense", "top_k": 4}, {"type": "compress", "min_similarity": 0.99, "keep_at_least": 2}]
    result = run(collection, stages, top_k=4)
    assert len(result.hits) == 1
    kept = result.hits[0].chunk
    assert len(kept.metadata["kept_spans"]) == 2
    assert "dropped 3 hits" in notes(result, "compress")[0]


def test_compress_embeds_all_sentences_of_a_batch_in_one_call(collection: Collection, monkeypatch: Any) -> None:
    embedder = collection.embedder
    calls: list[int] = []
    original = embedder.embed_documents

    def counting(texts: Any) -> Any:
        calls.append(len(texts))
        return original(texts)

    monkeypatch.setattr(embedder, "embed_documents", counting)
    pipeline = QueryPipeline.from_configs([{"type": "dense", "top_k": 2}, {"type": "compress"}])
    results = pipeline.search_many([NORMANS_Q, "When did Tesla die?", "Who won Super Bowl 50?"], collection, top_k=2)
    assert len(calls) == 1 and calls[0] > 6
    assert all(r.hits for r in results)


# -- dedupe -------------------------------------------------------------------------------------


def test_dedupe_removes_the_copy_of_a_file(collection: Collection) -> None:
    question = "Who won Super Bowl 50?"
    plain = run(collection, [{"type": "dense", "top_k": 6}], question=question, top_k=6)
    assert len({h.chunk.text for h in plain.hits}) < len(plain.hits), "both copies are retrieved"
    shaped = run(collection, [{"type": "dense", "top_k": 6}, "dedupe"], question=question, top_k=6)
    assert len({h.chunk.text for h in shaped.hits}) == len(shaped.hits)
    assert {h.chunk.text for h in shaped.hits} == {h.chunk.text for h in plain.hits}
    first_of = {}
    for hit in plain.hits:
        first_of.setdefault(hit.chunk.text, hit.chunk.id)
    assert [h.chunk.id for h in shaped.hits] == list(first_of.values())  # the better-ranked copy is kept
    removed = len(plain.hits) - len(shaped.hits)
    for hit in shaped.hits:
        for duplicate in hit.chunk.metadata.get("duplicates", []):
            assert duplicate["source"] != hit.chunk.source
    assert notes(shaped, "dedupe") == [
        f"removed {removed} duplicate hits ({removed} with the same words, 0 with shingle Jaccard >= 0.9)"
    ]


def test_dedupe_by_shingles_catches_near_copies_only(collection: Collection) -> None:
    text = " ".join(paragraphs("0000-super-bowl-50.md", 1))
    near = text.replace("Denver Broncos", "Denver team", 1)
    other = " ".join(paragraphs("0000-super-bowl-50.md", 1, skip=1))

    def hit(key: str, body: str, score: float) -> Hit:
        return Hit(Chunk(key, "d-" + key, key + ".md", body, 0, len(body)), score)

    stage = build_stage({"type": "dedupe"})
    state = QueryState.start(QueryRequest(NORMANS_Q, top_k=5), collection)
    state.hits = [hit("a", text, 0.9), hit("b", near, 0.8), hit("c", other, 0.7), hit("d", text.upper(), 0.6)]
    [shaped] = stage.shape_many([state])  # type: ignore[attr-defined]
    assert [h.chunk.id for h in shaped] == ["a", "c"]
    assert [d["chunk_id"] for d in shaped[0].chunk.metadata["duplicates"]] == ["b", "d"]
    strict = build_stage({"type": "dedupe", "threshold": 1.0})
    [kept] = strict.shape_many([state])  # type: ignore[attr-defined]
    assert [h.chunk.id for h in kept] == ["a", "b", "c"]


# -- composing, config ----------------------------------------------------------------------------


def test_shapers_compose_and_every_span_stays_true(collection: Collection, corpus: dict[str, str]) -> None:
    stages = [{"type": "dense", "top_k": 10}, "dedupe", {"type": "sentence-window", "window": 1}, "compress"]
    result = run(collection, stages, question="Who won Super Bowl 50?", top_k=5)
    assert [e.stage for e in result.trace] == ["dense", "dedupe", "sentence-window", "compress"]
    assert len({h.chunk.text for h in result.hits}) == len(result.hits)
    for hit in result.hits:
        text = doc_of(corpus, hit)
        if hit.chunk.metadata.get("compressed"):
            for a, b in hit.chunk.metadata["kept_spans"]:
                assert hit.chunk.start <= a < b <= hit.chunk.end and text[a:b] in hit.chunk.text
        else:
            assert text[hit.chunk.start : hit.chunk.end] == hit.chunk.text
    assert any("Denver Broncos" in h.chunk.text for h in result.hits)


@pytest.mark.parametrize(
    "config",
    [
        {"type": "parent-document"},
        {"type": "parent-document", "scope": "window", "parent_chars": 1500, "max_chars": None, "name": "parents"},
        {"type": "sentence-window", "window": 2, "max_chars": 800, "within_section": False},
        {"type": "compress", "method": "overlap", "min_similarity": 0.5, "keep_at_least": 2},
        {"type": "dedupe", "threshold": 0.8, "shingle": 5},
    ],
)
def test_config_round_trip(config: dict[str, Any]) -> None:
    stage = build_stage(config)
    saved = stage.to_config()
    assert {k: v for k, v in saved.items() if k in config} == config
    assert build_stage(saved).to_config() == saved
    pipeline = QueryPipeline.from_configs([{"type": "dense"}, config])
    assert QueryPipeline.from_configs(pipeline.to_config()).to_config() == pipeline.to_config()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "parent-document", "scope": "chapter"}, "scope must be one of section, window"),
        ({"type": "parent-document", "parent_chars": 0}, "parent_chars must be at least 1"),
        ({"type": "parent-document", "max_chars": "big"}, "max_chars must be an integer"),
        ({"type": "parent-document", "scope": "window", "parent_chars": 5000}, "parent_chars (5000) is larger than"),
        ({"type": "parent-document", "size": 3}, "unknown option(s) size"),
        ({"type": "sentence-window", "window": -1}, "window must be at least 0"),
        ({"type": "sentence-window", "within_section": "yes"}, "within_section must be true or false"),
        ({"type": "compress", "method": "llm"}, "method must be one of embedding, overlap"),
        ({"type": "compress", "method": "overlap", "min_similarity": -0.2}, "min_similarity must lie in [0, 1]"),
        ({"type": "compress", "min_similarity": 2}, "min_similarity must lie in [-1, 1]"),
        ({"type": "compress", "keep_at_least": 0}, "keep_at_least must be at least 1"),
        ({"type": "dedupe", "threshold": 0}, "threshold must lie in (0, 1]"),
        ({"type": "dedupe", "shingle": 1.5}, "shingle must be an integer"),
    ],
)
def test_bad_options_are_refused_when_built(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        QueryPipeline.from_configs([{"type": "dense"}, config])
