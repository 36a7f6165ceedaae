from ragkit.rag import CitationTracker, find_markers, infer_citations, resolve_citations
from ragkit.schema import Chunk, Document, Hit


def _hits(*texts: str) -> list[Hit]:
    hits = []
    for i, text in enumerate(texts):
        doc = Document(id=f"d{i}", source=f"file{i}.md", text=text, metadata={"section": f"S{i}", "page": i + 1})
        hits.append(Hit(Chunk.create(doc, text, 10 * i), score=0.9 - i / 10))
    return hits


def test_markers_in_all_common_shapes():
    text = "Paris [1]. Built 1889 [2, 3]. Iron [1][4]; see [2;3]. Not a marker: [a] [] [1234]"
    assert [(m.number) for m in find_markers(text)] == [1, 2, 3, 1, 4, 2, 3]
    assert find_markers(text)[0].position == text.index("[1]")


def test_resolve_maps_numbers_to_blocks_and_drops_missing_ones():
    hits = _hits("alpha text", "beta text", "gamma text")
    citations, dropped = resolve_citations("A [2]. B [7]. C [2][1]. D [0] [7].", hits)
    assert [c.number for c in citations] == [2, 1]
    second = citations[0]
    assert second.chunk_id == hits[1].chunk.id
    assert second.source == "file1.md"
    assert (second.start, second.end) == (hits[1].chunk.start, hits[1].chunk.end)
    assert second.page == 2 and second.section == "S1"
    assert len(second.positions) == 2
    assert dropped == [7, 0]


def test_inferred_citations_pick_the_block_a_sentence_comes_from():
    hits = _hits(
        "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
        "Gustave Eiffel's company designed and built the tower.",
    )
    citations = infer_citations("The tower was completed in 1889. Gustave Eiffel's company built it.", hits)
    assert [c.number for c in citations] == [1, 2]
    assert all(c.inferred for c in citations)
    assert infer_citations("Bananas are yellow and curved fruit.", hits) == []


def test_tracker_reports_markers_split_across_stream_pieces_once():
    hits = _hits("a", "b", "c")
    tracker = CitationTracker(hits)
    seen = []
    for piece in ["It is ", "Paris [", "2", "]. Also [", "1, ", "2] and [9]", " [2]."]:
        seen.extend(c.number for c in tracker.feed(piece))
    assert seen == [2, 1]
    assert tracker.text.endswith("[2].")


def test_tracker_ignores_brackets_that_never_close_into_markers():
    tracker = CitationTracker(_hits("a"))
    assert tracker.feed("array[") == []
    assert [c.number for c in tracker.feed("i] is fine [1]")] == [1]
    assert tracker.feed(" again [1]") == []
