"""Pipelines and conversations over the real service: search with a pipeline's stages and its trace,
conversations kept per API key, and the OpenAI endpoint reading the whole message history."""

from __future__ import annotations

import httpx
import openai

from tests.service.conftest import ADMIN_KEY, QUESTION, READER_KEY, Service


def test_search_with_a_pipeline_returns_its_stages_trace(admin: httpx.Client) -> None:
    plain = admin.post("/v1/collections/docs/search", json={"query": QUESTION, "top_k": 3}).json()
    assert plain["mode"] == "dense" and plain["pipeline"] is None
    assert [entry["stage"] for entry in plain["trace"]] == ["dense"]
    assert plain["hits"][0]["ranks"] == {"dense": 1}

    staged = admin.post("/v1/collections/docs/search", json={"query": QUESTION, "top_k": 3, "pipeline": "basic"})
    assert staged.status_code == 200, staged.text
    body = staged.json()
    assert body["pipeline"] == "basic" and body["queries"] == [
        {"text": QUESTION, "kind": "question", "origin": "original"}
    ]
    assert body["trace"][0]["candidates"]["dense"][0]["chunk_id"] == body["hits"][0]["chunk_id"]
    assert all(hit["score"] >= 0.2 for hit in body["hits"])  # the basic pipeline's threshold applies

    missing = admin.post("/v1/collections/docs/search", json={"query": QUESTION, "pipeline": "nope"})
    assert missing.status_code == 404 and "no pipeline named 'nope'" in missing.json()["error"]["message"]


def test_conversations_continue_and_belong_to_their_key(admin: httpx.Client, service: Service) -> None:
    first = admin.post("/v1/collections/docs/ask", json={"question": QUESTION, "conversation_id": "new"})
    assert first.status_code == 200, first.text
    conversation_id = first.json()["conversation_id"]
    assert conversation_id and conversation_id.startswith("c_")
    second = admin.post(
        "/v1/collections/docs/ask", json={"question": "Who won it?", "conversation_id": conversation_id}
    )
    assert second.status_code == 200 and second.json()["conversation_id"] == conversation_id

    stored = admin.get(f"/v1/conversations/{conversation_id}").json()
    assert [turn["question"] for turn in stored["turns"]] == [QUESTION, "Who won it?"]
    assert stored["turns"][0]["answer"] == first.json()["text"]
    assert conversation_id in [c["id"] for c in admin.get("/v1/conversations").json()["conversations"]]

    with service.client(READER_KEY) as reader:
        theirs = reader.get(f"/v1/conversations/{conversation_id}")
        missing = reader.get("/v1/conversations/c_AAAAAAAAAAAAAAAAAAAAAA")
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json()["error"]["message"].replace(conversation_id, "X") == missing.json()["error"][
            "message"
        ].replace("c_AAAAAAAAAAAAAAAAAAAAAA", "X")
        asked = reader.post("/v1/collections/docs/ask", json={"question": QUESTION, "conversation_id": conversation_id})
        assert asked.status_code == 404
        assert conversation_id not in [c["id"] for c in reader.get("/v1/conversations").json()["conversations"]]
    assert len(admin.get(f"/v1/conversations/{conversation_id}").json()["turns"]) == 2

    assert admin.get("/v1/conversations/not a valid id!").status_code == 400
    assert admin.delete(f"/v1/conversations/{conversation_id}").status_code == 204
    assert admin.get(f"/v1/conversations/{conversation_id}").status_code == 404


def test_openai_chat_reads_the_history_and_the_system_message(service: Service) -> None:
    client = openai.OpenAI(base_url=f"{service.url}/v1", api_key=ADMIN_KEY, max_retries=0)
    before = len(service.spy.runs)
    client.chat.completions.create(
        model="docs:spy",
        max_tokens=4,
        messages=[
            {"role": "system", "content": "Answer like a pirate."},
            {"role": "user", "content": "Who won Super Bowl 50?"},
            {"role": "assistant", "content": "The Denver Broncos won it [1]."},
            {"role": "user", "content": "Where was it played?"},
        ],
    )
    messages = service.spy.runs[before]["messages"]
    assert messages[0].role == "system" and messages[0].content.endswith("Answer like a pirate.")
    assert [(m.role, m.content) for m in messages[1:3]] == [
        ("user", "Who won Super Bowl 50?"),
        ("assistant", "The Denver Broncos won it [1]."),
    ]
    assert "Where was it played?" in messages[-1].content
