"""Asking within a conversation: history in the prompt and for condensing, caller instructions, stored turns.

The generator is ``ScriptedGenerator`` from the RAG pipeline tests: a test double that replays a fixed answer
and records the messages it was given, so what reaches the model can be checked exactly.
"""

from __future__ import annotations

import asyncio

import pytest

from ragkit.conversation import ConversationStore
from ragkit.errors import NotFoundError
from ragkit.generation import Message
from ragkit.rag import PipelineConfig, RagPipeline
from tests.test_rag_pipeline import ScriptedGenerator

QUESTION = "Where was Super Bowl 50 played?"


def test_history_and_instructions_reach_the_prompt(sample_collection):
    generator = ScriptedGenerator("At Levi's Stadium [1].")
    history = [Message("user", "Who won Super Bowl 50?"), Message("assistant", "The Denver Broncos [1].")]
    answer = RagPipeline(generator=generator).ask(
        QUESTION, sample_collection, history=history, instructions="Answer in French."
    )
    messages = generator.calls[0]
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0].content.endswith("Answer in French.")
    assert messages[1].content == "Who won Super Bowl 50?" and QUESTION in messages[3].content
    history_entry = next(t for t in answer.trace if t.stage == "history")
    assert "1 recent turn(s)" in history_entry.notes[0]


def test_history_beyond_the_budget_is_cut_with_a_note(sample_collection):
    generator = ScriptedGenerator("At Levi's Stadium [1].")
    config = PipelineConfig.parse({"context": {"history_tokens": 40, "summarise_history": False}})
    history = []
    for number in range(6):
        history += [Message("user", f"Question number {number} about football?"), Message("assistant", "Yes " * 10)]
    RagPipeline(config, generator=generator).ask(QUESTION, sample_collection, history=history)
    messages = generator.calls[0]
    assert any("earlier turns of this conversation were left out" in m.content for m in messages)
    assert "Question number 0" not in " ".join(m.content for m in messages)


def test_a_stored_conversation_keeps_its_turns_and_belongs_to_its_owner(sample_collection, tmp_path):
    store = ConversationStore(tmp_path / "conversations.sqlite")
    conversation = store.create("alice")
    pipeline = RagPipeline(generator=ScriptedGenerator("At Levi's Stadium [1]."))
    first = pipeline.ask(
        QUESTION, sample_collection, conversation_id=conversation.id, owner="alice", conversations=store
    )
    assert first.conversation_id == conversation.id
    generator = ScriptedGenerator("The Denver Broncos [1].")
    second = asyncio.run(
        RagPipeline(generator=generator).aask(
            "Who won it?", sample_collection, conversation_id=conversation.id, owner="alice", conversations=store
        )
    )
    assert second.conversation_id == conversation.id
    assert [m.content for m in generator.calls[0][1:3]] == [QUESTION, "At Levi's Stadium [1]."]
    turns = store.get(conversation.id, "alice").turns
    assert [t.question for t in turns] == [QUESTION, "Who won it?"]
    assert turns[0].citations[0]["number"] == 1
    with pytest.raises(NotFoundError, match="does not exist"):
        pipeline.ask(QUESTION, sample_collection, conversation_id=conversation.id, owner="bob", conversations=store)
    assert len(store.get(conversation.id, "alice").turns) == 2  # bob's attempt stored nothing


def test_without_a_store_the_home_s_conversations_are_used_and_opened_once(sample_collection, tmp_path, monkeypatch):
    from ragkit.rag.pipeline import default_conversations

    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path / "home"))
    store = default_conversations()
    conversation = store.create(None)
    pipeline = RagPipeline(generator=ScriptedGenerator("At Levi's Stadium [1]."))
    pipeline.ask(QUESTION, sample_collection, conversation_id=conversation.id)
    pipeline.ask("Who won it?", sample_collection, conversation_id=conversation.id)
    assert default_conversations() is store
    assert [t.question for t in store.get(conversation.id, None).turns] == [QUESTION, "Who won it?"]
    assert store.path == tmp_path / "home" / "conversations.sqlite"
