"""The REST models of answers are made from the dataclasses: same fields, same JSON, no drift."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import BaseModel, Field

from ragkit.generation.base import Usage
from ragkit.query.state import Query, StageTrace
from ragkit.rag.answer import Answer, Citation
from ragkit.schema import Chunk, Hit
from ragkit.service.model_mirror import mirror_of, mirrors
from ragkit.service.models import (
    AnswerModel,
    CitationModel,
    HitModel,
    UsageModel,
    rest_answer,
    rest_citation,
    rest_hits,
    source_url,
)


def full_answer() -> Answer:
    """An answer with every field set to something other than its default."""
    chunk = Chunk("c1", "d1", "a.md", "Paris is in France.", 3, 22, {"page": 2, "section": "Europe"}, "h1")
    hit = Hit(chunk, 0.8, "reranked", {"dense": 0.7, "rerank": 0.8}, {"dense": 2, "rerank": 1})
    citation = Citation.from_hit(1, hit)
    citation.positions = [17]
    citation.inferred = True
    return Answer(
        question="Where is Paris?",
        text="In France [1].",
        citations=[citation],
        hits=[hit],
        dropped_citations=[4],
        grounded=False,
        usage=Usage(prompt_tokens=40, completion_tokens=5),
        timings={"retrieve": 0.1, "total": 0.3},
        model="tiny",
        pipeline="basic",
        finish_reason="length",
        skipped_hits=1,
        trace=[StageTrace("dense", "retriever", 0.1, notes=["fine"])],
        queries=[Query("Where is Paris?")],
        conversation_id="conv_1",
    )


PAIRS: list[tuple[type, type[BaseModel], Any]] = [
    (Answer, AnswerModel, lambda a: rest_answer(a, "docs")),
    (Citation, CitationModel, lambda a: rest_citation(a.citations[0], "docs")),
    (Hit, HitModel, lambda a: rest_hits(a.hits, "docs")[0]),
    (Usage, UsageModel, lambda a: a.usage.to_dict()),
]


@pytest.mark.parametrize(("source", "model", "pick"), PAIRS, ids=[p[1].__name__ for p in PAIRS])
def test_every_field_of_the_python_shape_is_a_rest_field_and_the_json_round_trips(
    source: type, model: type[BaseModel], pick: Any
) -> None:
    data = pick(full_answer())
    # a field added to the Python shape (to_dict) is in the REST model, and nothing else is
    assert set(model.model_fields) == set(data)
    if source is not Hit:  # a hit's JSON flattens its chunk: HitModel is declared field by field
        assert {f.name for f in dataclasses.fields(source)} <= set(model.model_fields)
        assert mirror_of(source) is model
    # the REST model reads what the service writes and writes it back unchanged
    assert model.model_validate(data).model_dump(mode="json") == data


def test_rest_hits_and_citations_are_the_python_shape_plus_a_source_url() -> None:
    answer = full_answer()
    hit, citation = rest_hits(answer.hits, "my docs")[0], rest_citation(answer.citations[0], "my docs")
    assert hit == {**answer.hits[0].to_dict(1), "url": "/v1/collections/my%20docs/sources/a.md"}
    assert citation == {**answer.citations[0].to_dict(), "url": "/v1/collections/my%20docs/sources/a.md"}
    assert source_url("docs", "hr/pay #2.docx") == "/v1/collections/docs/sources/hr/pay%20%232.docx"


def test_the_schema_keeps_what_is_required_and_what_is_optional() -> None:
    def required(model: type[BaseModel]) -> list[str]:
        return list(model.model_json_schema(mode="serialization")["required"])

    assert required(HitModel) == list(HitModel.model_fields)  # one shape: every key always there
    assert "conversation_id" not in required(AnswerModel) and "skipped_hits" in required(AnswerModel)
    assert required(UsageModel) == ["prompt_tokens", "completion_tokens", "total_tokens"]
    assert len(required(CitationModel)) == len(dataclasses.fields(Citation)) + 1  # and the url
    schema = AnswerModel.model_json_schema()
    assert schema["properties"]["finish_reason"] == {"title": "Finish Reason", "type": "string"}
    assert schema["properties"]["citations"]["items"] == {"$ref": "#/$defs/CitationModel"}
    assert schema["properties"]["hits"]["items"] == {"$ref": "#/$defs/HitModel"}
    assert (AnswerModel.__doc__ or "").startswith("A generated answer with its citations, the hits")


def test_a_new_field_appears_in_the_mirror_and_a_stale_one_is_refused() -> None:
    @dataclasses.dataclass
    class Note:
        text: str
        added_later: int | None = None

    @mirrors(Note)
    class NoteModel(BaseModel):
        """A note."""

    assert list(NoteModel.model_fields) == ["text", "added_later"]
    assert NoteModel.model_validate({"text": "a", "added_later": 3}).added_later == 3  # type: ignore[attr-defined]

    with pytest.raises(TypeError, match=r"declares \['renamed'\], which .*Note does not have"):

        @mirrors(Note)
        class Stale(BaseModel):
            """A REST field whose dataclass field was renamed."""

            renamed: str = Field(default="")

    @dataclasses.dataclass
    class Holder:
        inner: Usage
        unmirrored: Query

    with pytest.raises(TypeError, match="Query has no REST model"):

        @mirrors(Holder)
        class HolderModel(BaseModel):
            """Holds a dataclass that has no REST model."""
