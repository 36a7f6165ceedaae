"""Conversation memory: the SQLite store (owners, limits, threads) and history fitted to a token budget.

``FakeScriptedGenerator`` is a test double: it replays scripted outputs so a
summariser's failures (garbage, exceptions, hangs) can be provoked on purpose.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from ragkit import registry
from ragkit.conversation import (
    ConversationStore,
    HistorySummariser,
    Turn,
    check_conversation_id,
    fit_history,
)
from ragkit.errors import InputError, NotFoundError
from ragkit.generation import BaseGenerator, GenerationDelta, GenerationOptions, Message, Usage


@registry.register("generator", "test-fake-scripted")
class FakeScriptedGenerator(BaseGenerator):
    """Replays ``outputs`` in turn (the last one repeats); ``"<raise>"`` raises, ``"<hang>"`` sleeps ``hang`` s."""

    def __init__(self, outputs: list[str] | None = None, hang: float = 5.0) -> None:
        self.outputs = list(outputs or ["A summary."])
        self.hang = hang
        self.calls: list[list[Message]] = []

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Iterator[GenerationDelta]:
        self.calls.append(list(messages))
        output = self.outputs[min(len(self.calls), len(self.outputs)) - 1]
        if output == "<raise>":
            raise RuntimeError("the model server went away")
        if output == "<hang>":
            time.sleep(self.hang)
        yield GenerationDelta(text=output)
        yield GenerationDelta(finish_reason="stop", usage=Usage(self.count_message_tokens(messages), 9))


def words(text: str) -> int:
    """One token per word: easy budgets to reason about."""
    return len(text.split())


def turn(n: int, answer: str | None = None) -> Turn:
    return Turn(f"question {n}?", answer or f"answer {n}.", citations=[{"number": 1, "source": f"doc-{n}.md"}])


@pytest.fixture()
def store(tmp_path) -> Iterator[ConversationStore]:
    with ConversationStore(tmp_path / "conversations.sqlite") as opened:
        yield opened


# -- the store ------------------------------------------------------------------------------------


def test_round_trip_survives_reopening(tmp_path):
    path = tmp_path / "conversations.sqlite"
    with ConversationStore(path) as store:
        conversation = store.create(None, title="  Paris \n landmarks ")
        store.append(
            conversation.id,
            None,
            Turn(
                "What is the Eiffel Tower?",
                "A tower in Paris [1].",
                [{"number": 1, "chunk_id": "c1", "source": "eiffel.md"}],
            ),
        )
        store.append(
            conversation.id,
            None,
            Turn(
                "when was it built?",
                "Between 1887 and 1889 [1].",
                [{"number": 1, "chunk_id": "c1"}],
                standalone="When was the Eiffel Tower built?",
            ),
        )
    with ConversationStore(path) as store:
        found = store.get(conversation.id, None)
        assert found.title == "Paris landmarks"
        assert [t.question for t in found.turns] == ["What is the Eiffel Tower?", "when was it built?"]
        assert found.turns[1].standalone == "When was the Eiffel Tower built?"
        assert found.turns[0].citations == [{"number": 1, "chunk_id": "c1", "source": "eiffel.md"}]
        assert found.turns[0].created > 0
        assert [(m.role, m.content) for m in store.history(conversation.id, None)] == [
            ("user", "What is the Eiffel Tower?"),
            ("assistant", "A tower in Paris [1]."),
            ("user", "when was it built?"),
            ("assistant", "Between 1887 and 1889 [1]."),
        ]
        listed = store.list(None)
        assert [(c.id, c.turn_count, c.turns) for c in listed] == [(conversation.id, 2, [])]
        assert found.to_dict()["turns"][1]["standalone"] == "When was the Eiffel Tower built?"
        store.delete(conversation.id, None)
        assert store.list(None) == []
        with pytest.raises(NotFoundError):
            store.get(conversation.id, None)


def test_ids_are_random_and_url_safe(store):
    ids = {store.create(None).id for _ in range(20)}
    assert len(ids) == 20
    assert all(check_conversation_id(i) == i and len(i) >= 20 for i in ids)


def test_another_owner_meets_the_same_error_as_a_missing_id(store):
    mine = store.create("key-alice")
    store.append(mine.id, "key-alice", turn(1))
    missing = "c_" + "x" * 22
    errors = {}
    for name, call in {
        "get": lambda cid, owner: store.get(cid, owner),
        "history": lambda cid, owner: store.history(cid, owner),
        "append": lambda cid, owner: store.append(cid, owner, turn(2)),
        "delete": lambda cid, owner: store.delete(cid, owner),
    }.items():
        for who, cid, owner in (
            ("bob", mine.id, "key-bob"),
            ("local", mine.id, None),
            ("missing", missing, "key-alice"),
        ):
            with pytest.raises(NotFoundError) as caught:
                call(cid, owner)
            errors[(name, who)] = str(caught.value).replace(cid, "<id>")
    assert set(errors.values()) == {"conversation '<id>' does not exist"}
    # nothing leaked, nothing changed: alice still has her one turn, bob and the local user see no conversations
    assert store.get(mine.id, "key-alice").turn_count == 1
    assert store.list("key-bob") == [] and store.list(None) == []
    assert [c.id for c in store.list("key-alice")] == [mine.id]


@pytest.mark.parametrize("bad", ["", "a/b", "../etc", "id with space", "x" * 65, "é", "a;DROP TABLE turns", 42, None])
def test_a_malformed_id_is_an_input_error(store, bad):
    for call in (
        lambda: store.get(bad, None),
        lambda: store.append(bad, None, turn(1)),
        lambda: store.delete(bad, None),
    ):
        with pytest.raises(InputError, match="conversation id .* is not valid"):
            call()


def test_threads_append_concurrently_without_losing_turns(tmp_path):
    path = tmp_path / "conversations.sqlite"
    with ConversationStore(path, max_turns=1000) as store:
        shared = store.create("svc")
        barrier = threading.Barrier(8)
        failures: list[BaseException] = []

        def worker(n: int) -> None:
            try:
                barrier.wait()
                own = store.create("svc")
                for i in range(10):
                    store.append(shared.id, "svc", turn(n * 100 + i))
                    store.append(own.id, "svc", turn(i))
                    store.history(shared.id, "svc")
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        found = store.get(shared.id, "svc")
        assert found.turn_count == 80
        assert sorted(t.question for t in found.turns) == sorted(
            f"question {n * 100 + i}?" for n in range(8) for i in range(10)
        )
        # each thread's own turns stay in the order it wrote them
        numbers = [int(t.question.split()[1].rstrip("?")) for t in found.turns]
        for n in range(8):
            assert [x for x in numbers if x // 100 == n] == [n * 100 + i for i in range(10)]
        assert len(store.list("svc")) == 9
    # a second connection (another worker process) sees the same data
    with ConversationStore(path) as other:
        assert other.get(shared.id, "svc").turn_count == 80
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_only_the_most_recent_turns_are_kept(tmp_path):
    with ConversationStore(tmp_path / "c.sqlite", max_turns=3) as store:
        conversation = store.create(None)
        for n in range(1, 6):
            store.append(conversation.id, None, turn(n))
        found = store.get(conversation.id, None)
        assert [t.question for t in found.turns] == ["question 3?", "question 4?", "question 5?"]
        assert found.turn_count == 3


def test_message_size_is_bounded(tmp_path):
    with ConversationStore(tmp_path / "c.sqlite", max_message_chars=100) as store:
        conversation = store.create(None)
        with pytest.raises(InputError, match="question is 101 characters long; the limit is 100"):
            store.append(conversation.id, None, Turn("q" * 101, "fine"))
        with pytest.raises(InputError, match="answer is 150 characters"):
            store.append(conversation.id, None, Turn("fine?", "a" * 150))
        with pytest.raises(InputError, match="with its citations"):
            store.append(conversation.id, None, Turn("fine?", "fine", [{"quote": "z" * 99}] * 5))
        with pytest.raises(InputError, match="JSON-ready"):
            store.append(conversation.id, None, Turn("fine?", "fine", [{"bad": object()}]))
        assert store.get(conversation.id, None).turns == []  # nothing half-written
        store.append(conversation.id, None, Turn("q" * 100, "a" * 100))
        assert store.get(conversation.id, None).turn_count == 1


def test_bad_options_and_owners_are_refused(tmp_path):
    with pytest.raises(InputError, match="max_turns"):
        ConversationStore(tmp_path / "c.sqlite", max_turns=0)
    with ConversationStore(tmp_path / "c.sqlite") as store, pytest.raises(InputError, match="owner"):
        store.create("")


def test_default_path_is_in_the_ragkit_home(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path / "home"))
    with ConversationStore() as store:
        assert store.path == tmp_path / "home" / "conversations.sqlite"
        assert store.path.exists()


# -- history under a token budget ---------------------------------------------------------------


def history(turns: int) -> list[Message]:
    return [m for n in range(1, turns + 1) for m in turn(n).messages()]


def test_history_that_fits_comes_back_unchanged():
    messages = history(3)
    fitted = fit_history(messages, budget_tokens=1000, count_tokens=words)
    assert fitted.messages == messages
    assert (fitted.kept_turns, fitted.dropped, fitted.summary) == (3, 0, None)


def test_without_a_summariser_old_turns_become_a_note():
    # each turn: "question n?" (2 words) + "answer n." (2 words) + 2 x 4 overhead = 12 tokens
    fitted = fit_history(history(10), budget_tokens=60, count_tokens=words, summary_tokens=20)
    assert fitted.kept_turns == 3  # 60 - 20 leaves room for three turns
    assert fitted.dropped == 7
    assert fitted.messages[0] == Message("system", "7 earlier turns of this conversation were left out.")
    assert [m.content for m in fitted.messages[1:]] == [
        "question 8?",
        "answer 8.",
        "question 9?",
        "answer 9.",
        "question 10?",
        "answer 10.",
    ]
    assert fitted.tokens <= 60


def test_a_summary_replaces_the_cut_turns_and_is_cached(tmp_path):
    fake = registry.build(
        "generator",
        {
            "type": "test-fake-scripted",
            "outputs": [
                "Summary: The user asked about questions 1 to 7 and got answers 1 to 7.",
            ],
        },
    )
    with ConversationStore(tmp_path / "c.sqlite") as store:
        summarise = HistorySummariser(fake, cache=store, timeout=5)
        fitted = fit_history(history(10), budget_tokens=60, count_tokens=words, summarise=summarise, summary_tokens=20)
        assert fitted.summary == "The user asked about questions 1 to 7 and got answers 1 to 7."
        assert fitted.messages[0].role == "system"
        assert fitted.messages[0].content.endswith(fitted.summary)
        assert fitted.messages[1].content == "question 8?"
        assert len(fake.calls) == 1
        prompt = fake.calls[0][-1].content
        assert "User: question 7?" in prompt and "question 8?" not in prompt  # only the cut turns are summarised
        assert [c.model for c in fitted.calls] == [fake.model_name] and fitted.calls[0].completion_tokens == 9

        again = fit_history(history(10), budget_tokens=60, count_tokens=words, summarise=summarise, summary_tokens=20)
        assert again.summary == fitted.summary and again.calls == []
        assert len(fake.calls) == 1  # same history: no second model call
    with ConversationStore(tmp_path / "c.sqlite") as reopened:  # the cache is on disk
        summarise = HistorySummariser(fake, cache=reopened)
        fit_history(history(10), budget_tokens=60, count_tokens=words, summarise=summarise, summary_tokens=20)
        assert len(fake.calls) == 1
        fit_history(history(11), budget_tokens=60, count_tokens=words, summarise=summarise, summary_tokens=20)
        assert len(fake.calls) == 2  # another history is summarised afresh


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("", "unusable"),
        ("   \n ", "unusable"),
        ("!!! ??? 42", "unusable"),
        ("tower " * 40, "unusable"),
        ("<raise>", "the model server went away"),
        ("<hang>", "did not answer within"),
    ],
)
def test_a_failed_summary_falls_back_to_the_note(output, reason):
    fake = FakeScriptedGenerator([output], hang=3.0)
    summarise = HistorySummariser(fake, timeout=0.5 if output == "<hang>" else 30)  # a busy machine: no false timeouts
    fitted = fit_history(history(10), budget_tokens=60, count_tokens=words, summarise=summarise, summary_tokens=20)
    assert fitted.summary is None
    assert fitted.messages[0] == Message("system", "7 earlier turns of this conversation were left out.")
    assert fitted.kept_turns == 3
    assert reason in fitted.note
    assert fitted.calls and fitted.calls[0].error


def test_a_summariser_that_crashes_or_returns_nonsense_never_fails_the_fit():
    def crash(messages):
        raise ValueError("boom")

    fitted = fit_history(history(4), budget_tokens=30, count_tokens=words, summarise=crash, summary_tokens=10)
    assert "ValueError: boom" in fitted.note and fitted.messages[0].content.endswith("left out.")
    fitted = fit_history(history(4), budget_tokens=30, count_tokens=words, summarise=lambda m: None, summary_tokens=10)
    assert "empty or not text" in fitted.note


def test_a_turn_longer_than_the_budget_is_cut_whole():
    messages = history(2) + turn(3, answer="word " * 500).messages()
    fitted = fit_history(messages, budget_tokens=100, count_tokens=words, summary_tokens=20)
    assert fitted.kept_turns == 0 and fitted.dropped == 3
    assert fitted.messages == [Message("system", "3 earlier turns of this conversation were left out.")]
