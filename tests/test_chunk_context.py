"""Contextual retrieval: a model-written sentence per chunk joins the header that is embedded and BM25-indexed.

Real files, the real MiniLM embedder, FAISS and BM25. The model is a scripted
fake (:class:`FakeContextWriter`) wherever the test must control what it
writes (a sentence with a word found nowhere else, garbage, an exception);
the last test runs the real local model (SmolLM2-135M) and is marked slow.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from ragkit import Collection
from ragkit.chunk_context import clean_context, document_excerpt
from ragkit.config import ChunkHeaders, CollectionConfig, indexed_text
from ragkit.errors import ConfigError
from ragkit.generation.base import BaseGenerator, GenerationDelta, GenerationOptions, Message, Usage
from ragkit.ingest import IngestPipeline
from ragkit.rag.answer import Citation
from ragkit.registry import register
from ragkit.schema import Chunk

BREWERY = """# Osterwald Brewery

The Osterwald Brewery is a family-owned brewery in a small Bavarian market town.

## Founding

In 1790 a miller named Johann Pichler bought the old monastery buildings beside the river. His son dug a second
cellar into the hillside and sold flour and timber to the carters who crossed the bridge.

## Beers

Its pale lager is brewed with soft water from a spring above the village and hops from the Hallertau. A dark wheat
beer follows in winter, and a strong bock is tapped on the first Sunday of Lent.
"""

OBSERVATORY = """# Kerrow Observatory

Kerrow Observatory is an astronomical observatory on a headland in the west of Ireland.

## Instruments

A refracting telescope with a lens of thirty centimetres was installed under a copper dome, and a smaller reflector
was added later for photographing comets.

## History

In 1790 a landowner with an interest in the planets paid for a tower on the cliff. The first keeper kept a diary of
storms and eclipses.
"""

# the word only the fake model's sentence for the brewery's founding section contains
MARKER_WORD = "gristmilling"
CHUNK_IN_PROMPT = re.compile(r"<chunk>\n(.*?)\n</chunk>", re.S)


@register("generator", "fake-context-writer")
class FakeContextWriter(BaseGenerator):
    """A scripted test double of a chat model: what it writes depends on ``mode`` and the chunk in the prompt.

    ``good``: a labelled, quoted sentence (the founding section's names
    ``gristmilling``); ``mixed``: an exception for the "Beers" section, an empty
    answer for "Instruments", the prompt's markup echoed for "History", a good
    sentence otherwise. Every call is logged in :attr:`calls`.
    """

    calls: ClassVar[list[tuple[str, str]]] = []
    _lock = threading.Lock()

    def __init__(self, mode: str = "good") -> None:
        if mode not in ("good", "mixed"):
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode

    def to_config(self) -> dict[str, Any]:
        """The options (they make the fingerprint, hence the cache key)."""
        return {"type": "fake-context-writer", "mode": self.mode}

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Iterator[GenerationDelta]:
        """The scripted answer in one piece."""
        prompt = messages[-1].content
        match = CHUNK_IN_PROMPT.search(prompt)
        chunk = match.group(1) if match else ""
        with self._lock:
            FakeContextWriter.calls.append((self.mode, chunk[:40]))
        yield GenerationDelta(self._answer(chunk, prompt))
        yield GenerationDelta("", "stop", Usage(len(prompt) // 4, 12))

    def _answer(self, chunk: str, prompt: str) -> str:
        if self.mode == "mixed":
            if "pale lager" in chunk:
                raise RuntimeError("the server hung up")
            if "refracting telescope" in chunk:
                return "   \n"
            if "landowner" in chunk:
                return "<chunk>In 1790 a landowner</chunk>"
        if "miller named Johann" in chunk:
            return 'Context: "This section tells how gristmilling led to the founding of the Osterwald Brewery."'
        title = prompt.split("# ", 1)[1].split("\n", 1)[0] if "# " in prompt else "the document"
        return f"Sure, here it is:\nThis part of the {title} article describes one of its sections."


@pytest.fixture(autouse=True)
def _fresh_call_log() -> None:
    FakeContextWriter.calls.clear()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("context-articles")
    (folder / "brewery.md").write_text(BREWERY, encoding="utf-8")
    (folder / "observatory.md").write_text(OBSERVATORY, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("context-store")


def context_config(mode: str = "good", **options: Any) -> dict[str, Any]:
    return {"chunk_headers": {"context": {"generator": {"type": "fake-context-writer", "mode": mode}, **options}}}


@pytest.fixture(scope="module")
def contextual(corpus: Path, store: Path) -> Iterator[tuple[Collection, Any]]:
    FakeContextWriter.calls.clear()
    with Collection.create("contextual", context_config(), store_dir=store) as collection:
        stages: list[str] = []
        report = collection.ingest([corpus], progress=lambda stage, done, total: stages.append(stage))
        assert report.added == 2 and not report.failed
        assert "context" in stages
        yield collection, report


@pytest.fixture(scope="module")
def headed(corpus: Path, store: Path) -> Iterator[Collection]:
    with Collection.create("headed", {"chunk_headers": True}, store_dir=store) as collection:
        collection.ingest([corpus])
        yield collection


def stored(collection: Collection) -> dict[str, Chunk]:
    return {c.id: c for batch in collection.store.iter_chunks(100) for c in batch}


def founding(collection: Collection) -> Chunk:
    return next(c for c in stored(collection).values() if c.metadata.get("section", "").endswith("Founding"))


# -- cleaning and excerpts --------------------------------------------------------------------------


def test_answers_are_cleaned_or_refused() -> None:
    assert clean_context('Context: "This chunk covers the brewery founding."') == (
        "This chunk covers the brewery founding.",
        None,
    )
    assert clean_context("Sure! Here it is:\n**This section lists the beers.**\nMore text")[0] == (
        "This section lists the beers."
    )
    # small models often open with the prompt's tag or a heading, then write the sentence
    assert clean_context("<chunk>\n\n## Beers\n\nThe section lists the brewery's beers.")[0] == (
        "The section lists the brewery's beers."
    )
    chunk = "In 1790 a miller named Johann Pichler bought the old monastery buildings beside the river."
    assert clean_context("In 1790 a miller named Johann Pichler bought the old monastery buildings.", chunk=chunk)[
        1
    ] == ("repeats the chunk: In 1790 a miller named Johann Pichler bought the old monastery buildings.")
    long_answer = "This section describes " + "a very long story " * 40
    cut, _ = clean_context(long_answer, max_chars=100)
    assert cut is not None and len(cut) <= 100 and cut.endswith("…")
    for garbage, reason in [
        ("", "empty"),
        ("  \n ", "empty"),
        ("42 17 3.5", "not a sentence"),
        ("I'm sorry, I cannot help with that.", "refusal"),
        ("<document> The Osterwald", "echoes the prompt"),
        ("!!!! ### ....", "not a sentence"),
    ]:
        sentence, why = clean_context(garbage)
        assert sentence is None and why is not None and reason in why, (garbage, why)


def test_a_long_document_is_shown_as_its_beginning_and_the_part_around_the_chunk() -> None:
    document = "Title line. " + "filler words here. " * 2000 + "THE CHUNK TEXT" + " tail words." * 500
    start = document.index("THE CHUNK TEXT")
    chunk = Chunk("c", "d", "s", "THE CHUNK TEXT", start, start + 14)
    excerpt = document_excerpt(document, chunk, 2000)
    assert len(excerpt) <= 2000
    assert excerpt.startswith("Title line.") and "THE CHUNK TEXT" in excerpt and "[…]" in excerpt
    early = Chunk("c", "d", "s", "Title line.", 0, 11)
    assert document_excerpt(document, early, 2000) == document[:2000]
    assert document_excerpt("short", early, 2000) == "short"


# -- what gets indexed ------------------------------------------------------------------------------


def test_the_sentence_joins_the_header_and_text_spans_citations_stay_plain(
    contextual: tuple[Collection, Any], corpus: Path
) -> None:
    collection, report = contextual
    chunks = stored(collection)
    # one call per chunk; every chunk got a sentence (the labelled, quoted and preambled answers were cleaned)
    assert report.context_calls == report.chunks_written == len(chunks) == report.context_written
    assert report.context_failed == 0 and "context sentences" in report.summary()
    chunk = founding(collection)
    sentence = "This section tells how gristmilling led to the founding of the Osterwald Brewery."
    assert chunk.metadata["chunk_header"] == f"Osterwald Brewery > Founding\n{sentence}\n\n"
    assert indexed_text(chunk) == chunk.metadata["chunk_header"] + chunk.text
    document = (corpus / "brewery.md").read_text(encoding="utf-8")
    assert chunk.text == document[chunk.start : chunk.end] and MARKER_WORD not in chunk.text
    hit = collection.search(MARKER_WORD, top_k=3, mode="lexical")[0]
    citation = Citation.from_hit(1, hit)
    assert citation.quote == hit.chunk.text[:240] and (citation.start, citation.end) == (chunk.start, chunk.end)
    beers = next(c for c in chunks.values() if c.metadata.get("section", "").endswith("Beers"))
    assert beers.metadata["chunk_header"].endswith(
        "\nThis part of the Osterwald Brewery article describes one of its sections.\n\n"
    )


def test_a_word_only_the_sentence_holds_finds_the_chunk(contextual: tuple[Collection, Any], headed: Collection) -> None:
    collection, _ = contextual
    chunk = founding(collection)
    found = collection.search(MARKER_WORD, top_k=5, mode="lexical")
    assert found and found[0].chunk.id == chunk.id
    assert headed.search(MARKER_WORD, top_k=5, mode="lexical") == []  # title/headings alone never say it


# -- the cache and incremental ingest ---------------------------------------------------------------


def test_a_second_collection_over_the_same_files_calls_no_model(
    contextual: tuple[Collection, Any], corpus: Path, store: Path
) -> None:
    first, _ = contextual
    with Collection.create("contextual-again", context_config(), store_dir=store) as collection:
        report = collection.ingest([corpus])
        assert report.context_calls == 0 and FakeContextWriter.calls == []
        assert report.context_written == report.chunks_written
        assert {c.id: c.metadata["chunk_header"] for c in stored(collection).values()} == {
            c.id: c.metadata["chunk_header"] for c in stored(first).values()
        }
        # delete a source and ingest it again: the answers come from the cache
        collection.delete_sources([next(iter(stored(collection).values())).source])
        again = collection.ingest([corpus])
        assert again.added == 1 and again.context_calls == 0 and FakeContextWriter.calls == []
    assert (store / "cache" / "chunk-context.sqlite").is_file()


def test_unchanged_files_make_no_calls_and_a_changed_one_is_asked_again(corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("brewery.md", "observatory.md"):
        (folder / name).write_text((corpus / name).read_text(encoding="utf-8"), encoding="utf-8")
    config = context_config(cache=False)  # without the cache, every call shows
    with Collection.create("incremental", config, store_dir=tmp_path / "store") as collection:
        first = collection.ingest([folder])
        assert first.context_calls == first.chunks_written > 0
        FakeContextWriter.calls.clear()
        again = collection.ingest([folder])
        assert again.unchanged == 2 and again.context_calls == 0 and FakeContextWriter.calls == []
        (folder / "observatory.md").write_text(OBSERVATORY + "\nA new dome was built in 1990.\n", encoding="utf-8")
        changed = collection.ingest([folder])
        assert changed.updated == 1 and changed.context_calls == changed.chunks_written
        assert {chunk[:12] for _, chunk in FakeContextWriter.calls} <= {
            c.text[:12] for c in stored(collection).values() if c.source.endswith("observatory.md")
        }
        assert collection.search(MARKER_WORD, top_k=3, mode="lexical")[0].chunk.source.endswith("brewery.md")


# -- failures ---------------------------------------------------------------------------------------


def test_failed_empty_and_garbage_answers_keep_the_plain_header_and_are_counted(corpus: Path, tmp_path: Path) -> None:
    with Collection.create("mixed", context_config("mixed"), store_dir=tmp_path) as collection:
        report = collection.ingest([corpus])
        assert report.added == 2 and not report.failed  # a model failure never fails a file
        assert report.context_failed == 3 and report.context_written == report.chunks_written - 3
        reasons = sorted(issue.reason.split(": ", 1)[1] for issue in report.context_failures)
        assert reasons[0].startswith("echoes the prompt")
        assert reasons[1] == "empty answer"
        assert reasons[2].startswith("model call failed: RuntimeError: the server hung up")
        assert report.to_dict()["context_failed"] == 3
        chunks = stored(collection)
        by_section = {c.metadata.get("section", "").split(" > ")[-1]: c for c in chunks.values()}
        assert by_section["Beers"].metadata["chunk_header"] == "Osterwald Brewery > Beers\n\n"
        assert by_section["Instruments"].metadata["chunk_header"] == "Kerrow Observatory > Instruments\n\n"
        assert by_section["History"].metadata["chunk_header"] == "Kerrow Observatory > History\n\n"
        assert MARKER_WORD in by_section["Founding"].metadata["chunk_header"]
        # the failed calls were not cached: the next ingest of the same text asks again
        collection.delete_sources([by_section["Beers"].source])
        FakeContextWriter.calls.clear()
        again = collection.ingest([corpus])
        assert again.context_calls == 1 and again.context_failed == 1  # only the Beers section, which raised


# -- configuration ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"prompt": "{document}"}, "generator"),
        ({"generator": {"model": "x"}}, "type"),
        ({"generator": {"type": "fake-context-writer"}, "prompt": "Situate {chunk}."}, "{document}"),
        ({"generator": {"type": "fake-context-writer"}, "prompt": "{document} {chunk} {title}"}, "{title}"),
        ({"generator": {"type": "fake-context-writer"}, "prompt": "{document} {chunk"}, "format string"),
        ({"generator": {"type": "fake-context-writer"}, "concurrency": 0}, "concurrency"),
        ({"generator": {"type": "fake-context-writer"}, "max_tokens": 0}, "max_tokens"),
        ({"generator": {"type": "fake-context-writer"}, "temperature": 1}, "temperature"),
    ],
)
def test_bad_options_are_refused_when_the_collection_is_created(
    tmp_path: Path, context: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Collection.create("bad", {"chunk_headers": {"context": context}}, store_dir=tmp_path)
    assert Collection.names(tmp_path) == []


def test_a_template_naming_context_needs_the_option_and_places_the_sentence() -> None:
    with pytest.raises(ConfigError, match="no 'context'"):
        CollectionConfig.parse({"chunk_headers": {"template": "{header} | {context}\n\n{text}"}})
    headers = CollectionConfig.parse(
        {
            "chunk_headers": {
                "template": "{header}\nContext: {context}\n\n{text}",
                "context": {"generator": {"type": "fake-context-writer"}},
            }
        }
    ).chunk_headers
    assert isinstance(headers, ChunkHeaders)
    meta = {"title": "Osterwald Brewery", "headings": ["Osterwald Brewery", "Beers"]}
    assert headers.prefix(meta, "About beer.") == "Osterwald Brewery > Beers\nContext: About beer.\n\n"
    assert ChunkHeaders().prefix(meta, "About beer.") == "Osterwald Brewery > Beers\nAbout beer.\n\n"
    assert ChunkHeaders().prefix({}, "About beer.") == "About beer.\n\n"  # no title or headings: the sentence alone
    assert ChunkHeaders().prefix(meta, None) == "Osterwald Brewery > Beers\n\n"


def test_unknown_generator_type_fails_before_anything_is_written(corpus: Path, tmp_path: Path) -> None:
    config = CollectionConfig.parse({"chunk_headers": {"context": {"generator": {"type": "no-such-model"}}}})
    assert config.chunk_headers is not None
    with pytest.raises(ConfigError, match=r"chunk_headers\.context\.generator.*no-such-model"):
        Collection.create("typo", config, store_dir=tmp_path)
    assert Collection.names(tmp_path) == []  # refused when created: nothing was written


def test_config_round_trips_through_the_saved_collection(store: Path) -> None:
    options = {"generator": {"type": "fake-context-writer", "mode": "good"}, "max_tokens": 40, "timeout": None}
    with Collection.create("round-trip", {"chunk_headers": {"context": options}}, store_dir=store) as created:
        saved = yaml.safe_load((created.folder / "collection.yaml").read_text(encoding="utf-8"))
        context = saved["config"]["chunk_headers"]["context"]
        assert context["generator"] == options["generator"] and context["max_tokens"] == 40
        assert context["timeout"] is None and context["concurrency"] == 4
    reopened = Collection.open("round-trip", store_dir=store)
    assert reopened.config == created.config
    with Collection.open_or_create("round-trip", {"chunk_headers": {"context": options}}, store_dir=store):
        pass  # the same options given again: no conflict
    # headers without context save as before (no 'context' key), so older collections compare equal
    plain = CollectionConfig.parse({"chunk_headers": True}).model_dump(mode="json")
    assert "context" not in plain["chunk_headers"]


def test_a_pipeline_given_a_cache_path_caches_there(corpus: Path, tmp_path: Path) -> None:
    with Collection.create("bare", context_config(), store_dir=tmp_path / "home") as collection:
        from ragkit.loaders import LoaderSet

        pipeline = IngestPipeline(
            LoaderSet(collection.config.loader),
            collection.splitter,
            collection.embedder,
            collection.store,
            chunk_headers=collection.config.chunk_headers,
            context_cache=tmp_path / "elsewhere" / "answers.sqlite",
        )
        report = pipeline.run([corpus])
        assert report.context_written == report.chunks_written
        assert (tmp_path / "elsewhere" / "answers.sqlite").is_file()


# -- the real local model -------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_local_model_writes_a_usable_sentence_or_reports_why(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "brewery.md").write_text(BREWERY, encoding="utf-8")  # three chunks
    config = {"chunk_headers": {"context": {"generator": {"type": "transformers"}, "max_tokens": 40}}}
    with Collection.create("local", config, store_dir=tmp_path / "store") as collection:
        report = collection.ingest([folder])
        assert report.added == 1 and not report.failed
        assert report.context_calls == report.chunks_written == 3
        assert report.context_written + report.context_failed == 3
        assert len(report.context_failures) == report.context_failed
        assert report.context_written >= 1, report.context_failures  # a 135M model still writes some prose
        for chunk in stored(collection).values():
            header = chunk.metadata["chunk_header"]
            assert header.startswith(ChunkHeaders().header(chunk.metadata) + "\n")
            assert header.endswith("\n\n") and header.count("\n") <= 3  # at most one sentence line was added
            lines = header.strip("\n").split("\n")
            if len(lines) == 2:
                assert 0 < len(lines[1]) <= 300 and "<chunk>" not in lines[1]
        again = Collection.create("local-again", config, store_dir=tmp_path / "store")
        with again:
            assert again.ingest([folder]).context_calls == 0  # the greedy answers come from the cache
