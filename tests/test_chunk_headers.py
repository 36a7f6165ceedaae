"""Contextual chunk headers: title and heading path embedded and BM25-indexed with each chunk, text untouched.

Real files, the real MiniLM embedder, FAISS and BM25. The articles are
written so that some sections never name the article's subject: only the
header can connect them to a query that names it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ragkit import Collection
from ragkit.config import ChunkHeaders, CollectionConfig, indexed_text
from ragkit.errors import ConfigError, ConflictError
from ragkit.rag.answer import Citation
from ragkit.schema import Chunk

BREWERY = """# Osterwald Brewery

The Osterwald Brewery is a family-owned brewery in a small Bavarian market town, run by the same family since 1790.

## Founding

In 1790 a miller named Johann Pichler bought the old monastery buildings beside the river. His son dug a second
cellar into the hillside, and the family sold flour and timber to the carters who crossed the bridge on their way
to the salt market.

## Beers

Its pale lager is brewed with soft water from a spring above the village and hops from the Hallertau. A dark wheat
beer follows in winter, and a strong bock is tapped on the first Sunday of Lent. The bottles carry a painted fox.
"""

OBSERVATORY = """# Kerrow Observatory

Kerrow Observatory is an astronomical observatory on a headland in the west of Ireland.

## Instruments

A refracting telescope with a lens of thirty centimetres was installed under a copper dome, and a smaller reflector
was added later for photographing comets. Visitors climb a spiral staircase to reach the eyepiece on clear nights.

## History

In 1790 a landowner with an interest in the planets paid for a tower on the cliff. The first keeper kept a diary of
storms and eclipses, and the family who lived in the gatehouse sold tea and cake to travellers who came to look.
"""

RIVER = """# Lune Valley Mill

Lune Valley Mill spun cotton by water power for a hundred years.

## The wheel

A wooden wheel six metres across turned the shafts on three floors, and the race was cleaned every spring by the
whole village. Barley and oats were ground in a side room for the farms up the valley.

## Owners

In 1795 a family of millers from the hills bought the buildings beside the river and the bridge. They sold flour
and timber to carters travelling to the market towns, and their sons dug cellars into the hillside for storage.
"""

OTHER_BREWERY = """# Kessler Brewery

Kessler Brewery is a brewery in Franconia, founded by a cooper and his brothers in 1872.

## Beers

The brewery makes a smoked lager, a pale export beer and a cloudy cellar beer that is served straight from the cask
in its own tavern. Its malt comes from a maltings in the next town and its hops from the Hallertau.
"""

TITLE_QUERY = "Osterwald Brewery"


def chunks_lacking(collection: Collection, words: str) -> list[Chunk]:
    """The stored chunks of the brewery article whose text never names ``words``."""
    out = []
    for batch in collection.store.iter_chunks(100):
        out += [c for c in batch if c.source.endswith("brewery.md") and words.lower() not in c.text.lower()]
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("articles")
    (folder / "brewery.md").write_text(BREWERY, encoding="utf-8")
    (folder / "observatory.md").write_text(OBSERVATORY, encoding="utf-8")
    (folder / "mill.md").write_text(RIVER, encoding="utf-8")
    (folder / "kessler.md").write_text(OTHER_BREWERY, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("headers-store")


@pytest.fixture(scope="module")
def plain(corpus: Path, store: Path) -> Iterator[Collection]:
    with Collection.create("plain", store_dir=store) as collection:
        report = collection.ingest([corpus])
        assert report.added == 4 and not report.failed
        yield collection


@pytest.fixture(scope="module")
def headed(corpus: Path, store: Path, plain: Collection) -> Iterator[Collection]:
    with Collection.create("headed", {"chunk_headers": True}, store_dir=store) as collection:
        report = collection.ingest([corpus])
        assert report.added == 4 and not report.failed
        # the shared embedding cache holds the plain texts: none of the headed texts may come from it
        assert report.chunks_embedded == report.chunks_written
        yield collection


def rank_of(hits: list[Any], chunk_id: str) -> int | None:
    return next((rank for rank, hit in enumerate(hits, 1) if hit.chunk.id == chunk_id), None)


# -- what gets indexed ----------------------------------------------------------------------------


def test_header_is_title_and_heading_path() -> None:
    headers = ChunkHeaders()
    meta = {"title": "Osterwald Brewery", "headings": ["Osterwald Brewery", "Beers"], "section": "x"}
    assert headers.header(meta) == "Osterwald Brewery > Beers"
    assert headers.prefix(meta) == "Osterwald Brewery > Beers\n\n"
    assert ChunkHeaders(title=False).header(meta) == "Osterwald Brewery > Beers"  # the path starts at the title
    assert ChunkHeaders(headings=False).header(meta) == "Osterwald Brewery"
    assert headers.header({"title": "Report", "section": "Results > Tables"}) == "Report > Results > Tables"
    assert headers.header({"source": "notes.txt"}) == ""  # nothing to say: the chunk is indexed as it is
    custom = ChunkHeaders(template="Document: {title}\nSection: {headings}\n\n{text}")
    assert custom.prefix(meta) == "Document: Osterwald Brewery\nSection: Beers\n\n"


def test_stored_chunks_keep_plain_text_and_spans(headed: Collection, plain: Collection, corpus: Path) -> None:
    document = (corpus / "brewery.md").read_text(encoding="utf-8")
    headed_chunks = {c.id: c for batch in headed.store.iter_chunks(100) for c in batch}
    plain_chunks = {c.id: c for batch in plain.store.iter_chunks(100) for c in batch}
    assert headed_chunks.keys() == plain_chunks.keys()  # same ids: headers change what is indexed, not the chunks
    beers = next(c for c in headed_chunks.values() if c.metadata.get("section") == "Osterwald Brewery > Beers")
    assert beers.text == document[beers.start : beers.end] == plain_chunks[beers.id].text
    assert beers.metadata["chunk_header"] == "Osterwald Brewery > Beers\n\n"
    assert indexed_text(beers) == "Osterwald Brewery > Beers\n\n" + beers.text
    assert "chunk_header" not in plain_chunks[beers.id].metadata
    assert indexed_text(plain_chunks[beers.id]) == beers.text


def test_a_title_query_finds_sections_that_never_name_the_title(headed: Collection, plain: Collection) -> None:
    lacking = chunks_lacking(headed, "Osterwald")
    assert lacking, "the corpus should have brewery sections that never say 'Osterwald'"
    for chunk in lacking:
        # keyword search: only the header holds the word, so without headers the section is not found at all
        assert rank_of(headed.search(TITLE_QUERY, top_k=20, mode="lexical"), chunk.id) is not None
        assert rank_of(plain.search(TITLE_QUERY, top_k=20, mode="lexical"), chunk.id) is None
    founding = next(c for c in lacking if c.metadata.get("section", "").endswith("Founding"))
    dense_on = rank_of(headed.search(TITLE_QUERY, top_k=20), founding.id)
    dense_off = rank_of(plain.search(TITLE_QUERY, top_k=20), founding.id)
    assert dense_on is not None and dense_off is not None
    assert dense_on < dense_off, (dense_on, dense_off)
    assert dense_on <= 3  # the brewery's own sections come first once they carry its name


def test_citations_show_the_plain_chunk(headed: Collection) -> None:
    hit = headed.search(TITLE_QUERY, top_k=20, mode="lexical")[0]
    citation = Citation.from_hit(1, hit)
    assert citation.quote == hit.chunk.text[:240]
    assert not citation.quote.startswith("Osterwald Brewery >")
    assert (citation.start, citation.end) == (hit.chunk.start, hit.chunk.end)


# -- incremental ingest and the cache --------------------------------------------------------------


def test_incremental_ingest_keeps_headers_of_unchanged_files(corpus: Path, store: Path, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("brewery.md", "observatory.md"):
        (folder / name).write_text((corpus / name).read_text(encoding="utf-8"), encoding="utf-8")
    with Collection.create("incremental", {"chunk_headers": True}, store_dir=store) as collection:
        first = collection.ingest([folder])
        assert first.added == 2 and first.chunks_embedded == 0  # the same headed texts are in the cache already
        again = collection.ingest([folder])
        assert again.unchanged == 2 and again.chunks_written == 0
        # change the other file: the keyword index is rebuilt, and the brewery's stored headers are reused
        (folder / "observatory.md").write_text(OBSERVATORY + "\nA new dome was built in 1990.\n", encoding="utf-8")
        changed = collection.ingest([folder])
        assert changed.updated == 1 and changed.chunks_written < first.chunks_written
        lacking = chunks_lacking(collection, "Osterwald")
        found = collection.search(TITLE_QUERY, top_k=20, mode="lexical")
        assert all(rank_of(found, chunk.id) is not None for chunk in lacking)


# -- configuration -------------------------------------------------------------------------------


def test_config_round_trip(store: Path, headed: Collection, plain: Collection) -> None:
    custom = {"title": True, "headings": False, "template": "[{title}] {text}"}
    for given, stored in ((True, ChunkHeaders().model_dump()), (False, False), (None, False), (custom, custom)):
        config = CollectionConfig.parse({"chunk_headers": given})
        dumped = config.model_dump(mode="json")
        assert dumped["chunk_headers"] == stored
        assert CollectionConfig.parse(yaml.safe_load(yaml.safe_dump(dumped))) == config
    assert CollectionConfig().chunk_headers is None
    saved = yaml.safe_load((headed.folder / "collection.yaml").read_text(encoding="utf-8"))
    assert saved["config"]["chunk_headers"] == ChunkHeaders().model_dump()
    assert Collection.open("headed", store_dir=store).config.chunk_headers == ChunkHeaders()
    # a collection's headers are fixed at creation, like its embedder
    with pytest.raises(ConflictError, match="chunk_headers"):
        Collection.open_or_create("plain", {"chunk_headers": True}, store_dir=store)
    assert Collection.open_or_create("headed", {"chunk_headers": True}, store_dir=store).config == headed.config


def test_collections_saved_before_the_option_open_with_headers_off(tmp_path: Path) -> None:
    folder = tmp_path / "collections" / "old"
    folder.mkdir(parents=True)
    config = CollectionConfig().model_dump(mode="json")
    del config["chunk_headers"]
    (folder / "collection.yaml").write_text(yaml.safe_dump({"name": "old", "config": config}), encoding="utf-8")
    assert Collection.open("old", store_dir=tmp_path).config.chunk_headers is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yes", "chunk_headers: .*true, false or a mapping"),
        ({"title": True, "depth": 2}, "chunk_headers.depth"),
        ({"template": "{text}\n\n{header}"}, "chunk_headers.template: .*must end with {text}"),
        ({"template": "{header}"}, "chunk_headers.template"),
        ({"template": "{author}: {text}"}, "chunk_headers.template: .*unknown field.*author"),
        ({"template": "{header {text}"}, "chunk_headers.template"),
        ({"title": "maybe"}, "chunk_headers.title"),
    ],
)
def test_bad_options_are_refused(value: Any, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        Collection.create("bad", {"chunk_headers": value}, store_dir=tmp_path)
    assert Collection.names(tmp_path) == []
