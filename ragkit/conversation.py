"""Conversation memory: a store of conversations, and history fitted to a token budget.

::

    from ragkit.conversation import ConversationStore, Turn, fit_history

    store = ConversationStore()                      # <home>/conversations.sqlite
    conversation = store.create(owner=None, title="Paris")
    store.append(conversation.id, None, Turn("What is the Eiffel Tower?", "A wrought-iron tower in Paris [1].",
                                             citations=[{"number": 1, "source": "eiffel.md"}]))
    history = store.history(conversation.id, None)   # [user, assistant] messages, oldest first
    fitted = fit_history(history, budget_tokens=512, count_tokens=lambda text: len(text) // 4 + 1)

A conversation belongs to an *owner*: the name of the API key that created
it in the service, ``None`` for the local single user (the CLI, Python). A
conversation that does not exist and one that belongs to somebody else give
the same :class:`~ragkit.errors.NotFoundError`, so an id tells a caller
nothing about other users' conversations.

The store is one SQLite file in WAL mode, shared safely by the threads of
one process (one connection behind a lock) and by several processes
(SQLite's own locking, a 30 s busy timeout, appends in ``BEGIN IMMEDIATE``
transactions). It keeps at most ``max_turns`` turns per conversation (the
oldest go first) and refuses messages longer than ``max_message_chars``.

:func:`fit_history` keeps the most recent turns that fit a token budget and
replaces the older ones with a summary written by a generator
(:class:`HistorySummariser`, one call, cached by content in the same file),
or with a plain note saying how many turns were left out. A summary that
fails (an exception, a timeout, empty or garbled output) falls back to the
note: fitting history never fails a question.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragkit.errors import InputError, NotFoundError, StorageError, UpstreamError
from ragkit.generation.base import Generation, GenerationOptions, Message
from ragkit.generation.base import generate_within as base_generate_within
from ragkit.sqlite_wal import connect_wal

if TYPE_CHECKING:
    from ragkit.generation.base import Generator
    from ragkit.query.state import ModelCall

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What a conversation id may look like: URL-safe characters (letters, digits, ``-``, ``_``), 1-64 of them."""
MAX_TITLE_CHARS = 200
DEFAULT_MAX_TURNS = 100
DEFAULT_MAX_MESSAGE_CHARS = 100_000
MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens counted per message on top of its text, for the chat template's markers."""


def new_conversation_id() -> str:
    """A fresh random, URL-safe conversation id (``c_`` and 22 characters: 128 random bits)."""
    return "c_" + secrets.token_urlsafe(16)


def check_conversation_id(conversation_id: Any) -> str:
    """``conversation_id`` when it is a well-formed id, else an :class:`InputError` saying what is allowed."""
    if not isinstance(conversation_id, str) or not ID_PATTERN.fullmatch(conversation_id):
        shown = repr(conversation_id)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise InputError(
            f"conversation id {shown} is not valid: use 1-64 letters, digits, '-' or '_' "
            "(ids come from creating a conversation)"
        )
    return conversation_id


# -- the data -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Turn:
    """One exchange: the user's question, the assistant's answer and its citations.

    ``standalone`` is the question the pipeline searched with when it
    differs from the words the user typed (a condensed follow-up).
    ``citations`` are JSON-ready dicts (``Citation.to_dict()``).
    """

    question: str
    answer: str
    citations: list[dict[str, Any]] = field(default_factory=list)
    standalone: str | None = None
    created: float = 0.0
    """Seconds since the epoch when it was stored (set by the store)."""

    def messages(self) -> list[Message]:
        """The turn as chat messages: the user's question, then the answer."""
        return [Message("user", self.question), Message("assistant", self.answer)]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data: dict[str, Any] = {"question": self.question, "answer": self.answer, "citations": self.citations}
        if self.standalone is not None:
            data["standalone"] = self.standalone
        data["created"] = self.created
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Turn:
        """Inverse of :meth:`to_dict`."""
        return cls(
            question=str(data.get("question", "")),
            answer=str(data.get("answer", "")),
            citations=list(data.get("citations") or []),
            standalone=data.get("standalone"),
            created=float(data.get("created") or 0.0),
        )


@dataclass(slots=True)
class Conversation:
    """A conversation: its id, owner, title and turns (oldest first).

    :meth:`ConversationStore.list` leaves ``turns`` empty and fills only ``turn_count``.
    """

    id: str
    owner: str | None
    title: str | None
    created: float
    updated: float
    turn_count: int = 0
    turns: list[Turn] = field(default_factory=list)

    def history(self) -> list[Message]:
        """The turns as chat messages, oldest first."""
        return [message for turn in self.turns for message in turn.messages()]

    def to_dict(self, turns: bool = True) -> dict[str, Any]:
        """A JSON-ready dict (the owner is left out: callers know who they are)."""
        data: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "created": self.created,
            "updated": self.updated,
            "turn_count": self.turn_count,
        }
        if turns:
            data["turns"] = [turn.to_dict() for turn in self.turns]
        return data


# -- the store ------------------------------------------------------------------------------------


class ConversationStore:
    """Conversations in one SQLite file; see the module docstring.

    Args:
        path: The file (its folder is created); default ``<home>/conversations.sqlite``
            with the home of :meth:`ragkit.config.Settings.load` (``RAGKIT_HOME``).
        max_turns: Turns kept per conversation; appending more drops the oldest.
        max_message_chars: Longest question, answer or standalone question accepted.

    Raises:
        StorageError: The file cannot be opened or was written by a newer ragkit.

    """

    def __init__(
        self,
        path: Path | str | None = None,
        max_turns: int = DEFAULT_MAX_TURNS,
        max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS,
    ) -> None:
        if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
            raise InputError(f"conversation store: max_turns must be an integer of at least 1, got {max_turns!r}")
        if isinstance(max_message_chars, bool) or not isinstance(max_message_chars, int) or max_message_chars < 1:
            raise InputError(
                f"conversation store: max_message_chars must be an integer of at least 1, got {max_message_chars!r}"
            )
        if path is None:
            from ragkit.config import Settings

            path = Settings.load().home / "conversations.sqlite"
        self.path = Path(path)
        self.max_turns = max_turns
        self.max_message_chars = max_message_chars
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect_wal(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"conversation store {self.path} cannot be opened: {exc}") from None
        try:
            found = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if found > SCHEMA_VERSION:
                raise StorageError(
                    f"conversation store {self.path} was written by a newer ragkit (schema {found}, "
                    f"this one reads {SCHEMA_VERSION})"
                )
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS conversations (id TEXT PRIMARY KEY, owner TEXT, title TEXT, "
                "created REAL NOT NULL, updated REAL NOT NULL, turns INTEGER NOT NULL DEFAULT 0)"
            )
            conn.execute("CREATE INDEX IF NOT EXISTS conversations_owner ON conversations (owner, updated)")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS turns (conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, "
                "data TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (conversation_id, seq))"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS summaries (key TEXT PRIMARY KEY, summary TEXT NOT NULL, "
                "created REAL NOT NULL)"
            )
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            raise StorageError(f"conversation store {self.path} cannot be used: {exc}") from None
        except StorageError:
            conn.close()
            raise
        self._conn = conn

    # -- plumbing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        """The connection under the lock, in one transaction (``BEGIN IMMEDIATE`` when writing)."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StorageError(f"conversation store {self.path} is closed")
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StorageError(f"conversation store {self.path}: {exc}") from None

    @staticmethod
    def _owned(conn: sqlite3.Connection, conversation_id: str, owner: str | None) -> tuple[Any, ...]:
        """The conversation's row, or the same :class:`NotFoundError` whether it is missing or not the owner's."""
        row = conn.execute(
            "SELECT id, owner, title, created, updated, turns FROM conversations WHERE id = ? AND owner IS ?",
            (conversation_id, owner),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"conversation {conversation_id!r} does not exist")
        return tuple(row)

    def _check_text(self, what: str, text: Any) -> str:
        if not isinstance(text, str):
            raise InputError(f"conversation turn: {what} must be text, got {type(text).__name__}")
        if len(text) > self.max_message_chars:
            raise InputError(
                f"conversation turn: the {what} is {len(text):,} characters long; the limit is "
                f"{self.max_message_chars:,} (ConversationStore max_message_chars)"
            )
        return text

    @staticmethod
    def _check_owner(owner: Any) -> str | None:
        if owner is not None and (not isinstance(owner, str) or not owner):
            raise InputError(f"conversation owner must be a non-empty string or None, got {owner!r}")
        return owner

    # -- the API -----------------------------------------------------------------------------

    def create(self, owner: str | None, title: str | None = None) -> Conversation:
        """A new, empty conversation of ``owner`` (``None``: the local user)."""
        owner = self._check_owner(owner)
        if title is not None:
            if not isinstance(title, str):
                raise InputError(f"conversation title must be text, got {type(title).__name__}")
            title = " ".join(title.split())[:MAX_TITLE_CHARS] or None
        now = time.time()
        conversation_id = new_conversation_id()
        with self._transaction(write=True) as conn:
            conn.execute(
                "INSERT INTO conversations (id, owner, title, created, updated, turns) VALUES (?, ?, ?, ?, ?, 0)",
                (conversation_id, owner, title, now, now),
            )
        return Conversation(conversation_id, owner, title, now, now)

    def get(self, conversation_id: str, owner: str | None) -> Conversation:
        """The conversation with its turns; :class:`NotFoundError` when it is missing or ``owner``'s is not."""
        check_conversation_id(conversation_id)
        with self._transaction(write=False) as conn:
            row = self._owned(conn, conversation_id, owner)
            data = conn.execute(
                "SELECT data FROM turns WHERE conversation_id = ? ORDER BY seq", (conversation_id,)
            ).fetchall()
        turns = [Turn.from_dict(json.loads(text)) for (text,) in data]
        return Conversation(row[0], row[1], row[2], row[3], row[4], len(turns), turns)

    def history(self, conversation_id: str, owner: str | None) -> list[Message]:
        """The conversation's turns as chat messages (user, assistant, ...), oldest first."""
        return self.get(conversation_id, owner).history()

    def append(self, conversation_id: str, owner: str | None, turn: Turn) -> Turn:
        """Add a finished turn (the oldest turns go beyond ``max_turns``); returns it with ``created`` set."""
        check_conversation_id(conversation_id)
        if not isinstance(turn, Turn):
            raise InputError(f"conversation turn must be a Turn, got {type(turn).__name__}")
        self._check_text("question", turn.question)
        self._check_text("answer", turn.answer)
        if turn.standalone is not None:
            self._check_text("standalone question", turn.standalone)
        if not isinstance(turn.citations, list) or not all(isinstance(c, dict) for c in turn.citations):
            raise InputError("conversation turn: citations must be a list of dicts (Citation.to_dict())")
        turn = Turn(turn.question, turn.answer, list(turn.citations), turn.standalone, time.time())
        try:
            text = json.dumps(turn.to_dict(), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InputError(f"conversation turn: citations must be JSON-ready: {exc}") from None
        if len(text) > 4 * self.max_message_chars:
            raise InputError(
                f"conversation turn: {len(text):,} characters with its citations; the limit is "
                f"{4 * self.max_message_chars:,} (4 x ConversationStore max_message_chars)"
            )
        with self._transaction(write=True) as conn:
            self._owned(conn, conversation_id, owner)
            last = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM turns WHERE conversation_id = ?", (conversation_id,)
            ).fetchone()[0]
            seq = int(last) + 1
            conn.execute(
                "INSERT INTO turns (conversation_id, seq, data, created) VALUES (?, ?, ?, ?)",
                (conversation_id, seq, text, turn.created),
            )
            conn.execute(
                "DELETE FROM turns WHERE conversation_id = ? AND seq <= ?", (conversation_id, seq - self.max_turns)
            )
            count = conn.execute("SELECT count(*) FROM turns WHERE conversation_id = ?", (conversation_id,)).fetchone()[
                0
            ]
            conn.execute(
                "UPDATE conversations SET updated = ?, turns = ? WHERE id = ?", (turn.created, count, conversation_id)
            )
        return turn

    def list(self, owner: str | None, limit: int = 100) -> list[Conversation]:
        """``owner``'s conversations, most recently updated first (without their turns)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InputError(f"limit must be an integer of at least 1, got {limit!r}")
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT id, owner, title, created, updated, turns FROM conversations WHERE owner IS ? "
                "ORDER BY updated DESC, id LIMIT ?",
                (owner, limit),
            ).fetchall()
        return [Conversation(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def delete(self, conversation_id: str, owner: str | None) -> None:
        """Delete the conversation and its turns; :class:`NotFoundError` when it is missing or not ``owner``'s."""
        check_conversation_id(conversation_id)
        with self._transaction(write=True) as conn:
            self._owned(conn, conversation_id, owner)
            conn.execute("DELETE FROM turns WHERE conversation_id = ?", (conversation_id,))
            conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # -- the summary cache (failures are logged, never raised) -------------------------------

    def cached_summary(self, key: str) -> str | None:
        """The summary stored under ``key``, or ``None`` (also when it cannot be read)."""
        try:
            with self._transaction(write=False) as conn:
                row = conn.execute("SELECT summary FROM summaries WHERE key = ?", (key,)).fetchone()
        except StorageError as exc:
            logger.warning("summary cache: %s", exc)
            return None
        return None if row is None else str(row[0])

    def store_summary(self, key: str, summary: str) -> None:
        """Keep ``summary`` under ``key``; a failure to write is logged, never raised."""
        try:
            with self._transaction(write=True) as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO summaries (key, summary, created) VALUES (?, ?, ?)",
                    (key, summary, time.time()),
                )
        except StorageError as exc:
            logger.warning("summary cache: %s", exc)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- calling a model with a deadline ------------------------------------------------------------


def generate_within(
    generator: Generator, messages: Sequence[Message], options: GenerationOptions, timeout: float | None
) -> tuple[Generation, float]:
    """The whole generation and the seconds it took; :class:`UpstreamTimeoutError` after ``timeout`` seconds.

    The model runs in a worker thread. A generator with a ``load()`` method
    (a local model) is loaded first, outside the deadline. On a timeout the
    stream's ``cancel()`` (when it has one) asks the model to stop.
    """
    load = getattr(generator, "load", None)
    if callable(load):
        load()
    started = time.perf_counter()
    generation = base_generate_within(generator, messages, options, timeout)
    return generation, time.perf_counter() - started


def model_call(
    generator: Generator, generation: Generation | None, seconds: float, error: str | None = None
) -> ModelCall:
    """The trace record of one call."""
    from ragkit.query.state import ModelCall

    usage = generation.usage if generation is not None else None
    return ModelCall(
        model=generator.model_name,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        seconds=seconds,
        error=error,
    )


# -- history under a token budget ---------------------------------------------------------------


@dataclass(slots=True)
class Summary:
    """A summary of earlier turns, and the model call that wrote it (``None`` when it came from the cache)."""

    text: str
    call: ModelCall | None = None
    cached: bool = False


Summarise = Callable[[Sequence[Message]], "str | Summary"]
"""Writes a summary of messages: returns its text (or a :class:`Summary`), raises when it cannot."""


@dataclass(slots=True)
class FittedHistory:
    """History cut to a token budget.

    ``messages`` are what to send: when turns were cut, a ``system`` message
    first (the summary, or the note that ``dropped`` turns were left out),
    then the kept turns. ``summary`` is the summary text when one was used;
    ``note`` says why it fell back to the plain note; ``calls`` are the model
    calls made (for a trace).
    """

    messages: list[Message]
    kept_turns: int
    dropped: int = 0
    summary: str | None = None
    note: str | None = None
    tokens: int = 0
    calls: list[ModelCall] = field(default_factory=list)


SUMMARY_PREFIX = "Summary of the earlier conversation: "


def split_turns(messages: Sequence[Message]) -> list[list[Message]]:
    """Messages grouped into turns: each turn starts at a user message (leading non-user messages form one)."""
    turns: list[list[Message]] = []
    for message in messages:
        if message.role == "user" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns


def dropped_note(count: int) -> str:
    """The note that stands for ``count`` turns left out."""
    if count == 1:
        return "1 earlier turn of this conversation was left out."
    return f"{count} earlier turns of this conversation were left out."


def fit_history(
    messages: Sequence[Message],
    budget_tokens: int,
    count_tokens: Callable[[str], int],
    summarise: Summarise | None = None,
    summary_tokens: int = 160,
) -> FittedHistory:
    """The most recent whole turns that fit ``budget_tokens``, the older ones summarised or noted.

    Each message counts ``count_tokens(content)`` plus
    :data:`MESSAGE_OVERHEAD_TOKENS`. When everything fits, the messages come
    back unchanged. Otherwise ``summary_tokens`` are set aside for the
    summary (or the note), the newest turns that fit the rest are kept, and
    the cut ones are handed to ``summarise`` (one call). When there is no
    ``summarise``, or it raises, or its text is empty or not text, a
    ``system`` note says how many turns were left out instead; the reason is
    in ``note``. Never raises for a model's failure.
    """
    if isinstance(budget_tokens, bool) or not isinstance(budget_tokens, int) or budget_tokens < 0:
        raise InputError(f"history budget_tokens must be an integer >= 0, got {budget_tokens!r}")

    def cost(message: Message) -> int:
        return int(count_tokens(message.content)) + MESSAGE_OVERHEAD_TOKENS

    turns = split_turns(messages)
    costs = [sum(cost(m) for m in turn) for turn in turns]
    if sum(costs) <= budget_tokens:
        return FittedHistory(list(messages), len(turns), tokens=sum(costs))
    room = max(0, budget_tokens - summary_tokens)
    kept = 0
    used = 0
    for turn_cost in reversed(costs):
        if used + turn_cost > room:
            break
        used += turn_cost
        kept += 1
    cut_turns = turns[: len(turns) - kept]
    kept_messages = [m for turn in turns[len(turns) - kept :] for m in turn]
    dropped = len(cut_turns)
    cut_messages = [m for turn in cut_turns for m in turn]
    fitted = FittedHistory([], kept, dropped)
    text: str | None = None
    if summarise is None:
        fitted.note = "no summariser given"
    else:
        try:
            written = summarise(cut_messages)
            if isinstance(written, Summary):
                if written.call is not None:
                    fitted.calls.append(written.call)
                written = written.text
            if not isinstance(written, str) or not written.strip():
                raise UpstreamError(f"the summary was empty or not text ({type(written).__name__})")
            text = written.strip()
        except Exception as exc:
            fitted.note = f"summary failed ({type(exc).__name__}: {exc}); noted instead"
            call = getattr(exc, "call", None)
            if call is not None:
                fitted.calls.append(call)
    if text is not None:
        fitted.summary = text
        head = Message("system", SUMMARY_PREFIX + text)
    else:
        head = Message("system", dropped_note(dropped))
    fitted.messages = [head, *kept_messages]
    fitted.tokens = used + cost(head)
    return fitted


DEFAULT_SUMMARY_PROMPT = (
    "Summarise the conversation below in at most three sentences. Keep the names, numbers and facts that "
    "later questions may refer to. Write only the summary.\n\nConversation:\n{history}\n\nSummary:"
)


def format_history(messages: Sequence[Message], max_chars: int = 800) -> str:
    """Messages as ``User: ...`` / ``Assistant: ...`` lines, each cut to ``max_chars`` characters."""
    lines = []
    for message in messages:
        text = " ".join(message.content.split())
        if len(text) > max_chars:
            text = text[: max_chars - 3].rstrip() + "..."
        speaker = {"user": "User", "assistant": "Assistant", "system": "Note"}.get(message.role, message.role.title())
        lines.append(f"{speaker}: {text}")
    return "\n".join(lines)


class SummaryError(UpstreamError):
    """A summary that could not be written; ``call`` is the model call, for the trace."""

    def __init__(self, message: str, call: ModelCall | None = None) -> None:
        super().__init__(message)
        self.call = call


class HistorySummariser:
    """Summarises earlier turns with a generator: one call per distinct history, cached by content.

    Args:
        generator: The generator that writes the summary.
        cache: A :class:`ConversationStore` whose ``summaries`` table keeps the
            summaries (``None``: no cache).
        max_tokens: Longest summary, in tokens.
        timeout: Seconds to wait for the model (``None``: no limit).
        prompt: The instruction, with ``{history}`` where the turns go.

    Calling it returns a :class:`Summary` or raises :class:`SummaryError`
    (timeout, model failure, empty or garbled output);
    :func:`fit_history` turns that into the plain note.

    """

    def __init__(
        self,
        generator: Generator,
        cache: ConversationStore | None = None,
        max_tokens: int = 160,
        timeout: float | None = 60.0,
        prompt: str = DEFAULT_SUMMARY_PROMPT,
    ) -> None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise InputError(f"summariser max_tokens must be an integer of at least 1, got {max_tokens!r}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
            raise InputError(f"summariser timeout must be a positive number of seconds or None, got {timeout!r}")
        if not isinstance(prompt, str) or "{history}" not in prompt:
            raise InputError("summariser prompt must contain '{history}'")
        self.generator = generator
        self.cache = cache
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.prompt = prompt

    def key(self, messages: Sequence[Message]) -> str:
        """The cache key of a summary of ``messages``: model fingerprint, prompt, length and the messages."""
        from ragkit.generation.fingerprint import generator_fingerprint

        payload = json.dumps(
            [generator_fingerprint(self.generator), self.prompt, self.max_tokens, [m.to_dict() for m in messages]],
            sort_keys=True,
            ensure_ascii=False,
            default=str,
        )
        return "summary:" + hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def __call__(self, messages: Sequence[Message]) -> Summary:
        """The summary of ``messages`` (from the cache when the same history was summarised before)."""
        key = self.key(messages)
        if self.cache is not None:
            found = self.cache.cached_summary(key)
            if found is not None:
                return Summary(found, None, cached=True)
        prompt = self.prompt.replace("{history}", format_history(messages))
        options = GenerationOptions(max_tokens=self.max_tokens, temperature=0.0)
        try:
            generation, seconds = generate_within(self.generator, [Message("user", prompt)], options, self.timeout)
        except Exception as exc:
            raise SummaryError(f"{type(exc).__name__}: {exc}", model_call(self.generator, None, 0.0, str(exc))) from exc
        call = model_call(self.generator, generation, seconds)
        text = clean_summary(generation.text)
        if text is None:
            call.error = "unusable summary"
            raise SummaryError(f"the model's summary was unusable: {generation.text[:80]!r}", call)
        if self.cache is not None:
            self.cache.store_summary(key, text)
        return Summary(text, call)


def clean_summary(text: str) -> str | None:
    """The summary without a ``Summary:`` prefix and surrounding quotes, or ``None`` when it is garbage."""
    text = re.sub(r"^\s*(?:here is (?:a|the) summary[^:]*:|summary\s*:)\s*", "", text.strip(), flags=re.I)
    text = text.strip().strip("\"'`“”‘’").strip()
    words = re.findall(r"[^\W\d_]{2,}", text)
    if len(words) < 3:
        return None
    # a model stuck in a loop repeats a few words over and over
    if len(words) >= 12 and len({w.lower() for w in words}) < len(words) / 5:
        return None
    return text
