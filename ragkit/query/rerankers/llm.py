"""The ``llm-rerank`` stage: a chat model judges the candidates, pointwise or listwise.

``method: pointwise`` asks the model to rate each passage's relevance to
the question from 0 to 10. By default (``batch_size: 1``) each call rates
one passage: the most reliable with small models, at one call per
candidate. ``batch_size: N`` shows N numbered passages per call and asks for
one ``[number]: rating`` line each (fewer calls, for stronger models). The
hits are ordered by rating (ties keep their incoming order); a hit's score
is its rating.

``method: listwise`` shows numbered passages and asks for their order,
most relevant first (RankGPT, Sun et al. 2023). With more than ``window``
candidates a window slides from the bottom of the list to the top by
``step`` (default half a window), so good passages rise. A hit's score is
``1 - (rank - 1) / n`` (1.0 for the first).

A model answer that cannot be used never reorders anything: when any call
for a question fails, times out or yields no rating / no usable order, that
question keeps its incoming order and scores (no hit is marked as reranked)
and the trace says why. A partial order is used: the passages it names come
first, the rest follow in their incoming order, and the trace notes it;
numbers out of range or named twice are ignored, with a note.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ragkit.errors import ConfigError
from ragkit.generation.base import Message
from ragkit.query.llm import DEFAULT_TIMEOUT, LLMCaller, parse_int_list, parse_rating, parse_scores, truncate
from ragkit.query.stages import PipelineContext, RerankerStage
from ragkit.query.state import QueryState
from ragkit.registry import register
from ragkit.schema import Hit

POINTWISE_PROMPT = (
    "Rate how well the passage answers the question, from 0 (unrelated) to 10 (answers it fully). "
    "Reply with the number only.\n\nQuestion: {question}\n\nPassage: {passage}"
)
POINTWISE_BATCH_PROMPT = (
    "Rate how well each passage answers the question, from 0 (unrelated) to 10 (answers it fully). "
    "Reply with one line per passage, like [1]: 7, and nothing else.\n\nQuestion: {question}\n\n{passages}"
)
LISTWISE_PROMPT = (
    "Below are {count} passages, each with a number in brackets. Rank them by how well they answer the question, "
    "most relevant first. Reply with the numbers only, like [2] > [1] > [3], and nothing else.\n\n"
    "Question: {question}\n\n{passages}\n\nRanking:"
)


class _Failed(Exception):
    """A question's model answer cannot be used; the message is the trace note."""


@register("reranker", "llm-rerank")
class LLMReranker(RerankerStage):
    """Reranks with a chat model's judgement; see the module docstring.

    Args:
        method: ``pointwise`` (rate each passage 0-10) or ``listwise`` (order numbered passages).
        candidates: Rerank the first this many incoming hits (the rest are dropped).
        top_k: Keep this many hits after reranking (default: all).
        batch_size: Pointwise: passages per call (default 1).
        window: Listwise: passages per call; more candidates slide a window over them.
        step: Listwise: how far the window moves (default: half a window).
        generator: The generator config (default: the pipeline's).
        max_tokens: The answer's token cap (default: enough for the method's answer).
        timeout: Seconds one call may take; ``None``: no limit.
        max_chars: Each passage is cut to this many characters in the prompt.
        cache: Cache answers in the collection's store home.

    """

    def __init__(
        self,
        method: Literal["pointwise", "listwise"] = "pointwise",
        candidates: int | None = 20,
        top_k: int | None = None,
        batch_size: int = 1,
        window: int = 10,
        step: int | None = None,
        generator: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        max_chars: int = 600,
        cache: bool = True,
    ) -> None:
        super().__init__(top_k=top_k, candidates=candidates, batch_size=batch_size)
        owner = "reranker 'llm-rerank'"
        if method not in ("pointwise", "listwise"):
            raise ConfigError(f"{owner}: option 'method' must be 'pointwise' or 'listwise', got {method!r}")
        for option, value in (("window", window), ("max_chars", max_chars), ("step", step), ("max_tokens", max_tokens)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{owner}: option {option!r} must be an integer of at least 1, got {value!r}")
        if window < 2:
            raise ConfigError(f"{owner}: option 'window' must be at least 2, got {window}")
        if step is not None and step >= window:
            raise ConfigError(f"{owner}: option 'step' must be smaller than window ({window}), got {step}")
        self.method = method
        self.window = window
        self.step = step or max(1, window // 2)
        self.max_tokens = max_tokens
        self.max_chars = max_chars
        self.caller = LLMCaller(owner, generator, timeout, cache)

    def bind(self, context: PipelineContext) -> None:
        """Use the pipeline's generator unless this stage has its own."""
        self.caller.bind(context)

    def passage(self, hit: Hit) -> str:
        """The hit's text on one line, cut to ``max_chars``."""
        return truncate(hit.chunk.text, self.max_chars)

    def numbered(self, hits: Sequence[Hit]) -> str:
        """The passages as ``[1] text`` blocks."""
        return "\n\n".join(f"[{i}] {self.passage(hit)}" for i, hit in enumerate(hits, 1))

    def ask(self, state: QueryState, prompt: str, max_tokens: int) -> str:
        """The model's answer, or :class:`_Failed` when the call failed."""
        reply = self.caller.call(state, self.label, [Message("user", prompt)], max_tokens)
        if reply.text is None:
            raise _Failed(f"model call failed: {reply.error}")
        return reply.text

    def rerank_many(self, states: Sequence[QueryState], hit_lists: Sequence[list[Hit]]) -> list[list[Hit]]:
        """Each question's hits in the model's order, or in their incoming order when its answers are unusable."""
        out = []
        for state, hits in zip(states, hit_lists, strict=True):
            entry = state.current(self.label)
            if len(hits) < 2:
                out.append(list(hits))
                continue
            try:
                if self.method == "pointwise":
                    scores = self.rate(state, hits, entry.notes)
                    order = sorted(range(len(hits)), key=lambda i: -scores[i])
                else:
                    order = self.order(state, hits, entry.notes)
                    scores = [1.0 - rank / len(hits) for rank in range(len(hits))]
                    scores = [scores[order.index(i)] for i in range(len(hits))]
            except _Failed as failure:
                entry.notes.append(f"{failure}; kept the incoming order")
                out.append(list(hits))
                continue
            out.append(
                [hits[i].rescored(float(scores[i]), self.label, "reranked", rank) for rank, i in enumerate(order, 1)]
            )
        return out

    # -- pointwise ----------------------------------------------------------------------------------

    def rate(self, state: QueryState, hits: Sequence[Hit], notes: list[str]) -> list[float]:
        """A 0-10 rating for every hit, or :class:`_Failed` when one is missing."""
        scores: list[float | None] = [None] * len(hits)
        for start in range(0, len(hits), self.batch_size):
            group = hits[start : start + self.batch_size]
            if len(group) == 1:
                prompt = POINTWISE_PROMPT.format(question=state.question, passage=self.passage(group[0]))
                text = self.ask(state, prompt, self.max_tokens or 8)
                rating = parse_rating(text)
                if rating is None:
                    raise _Failed(f"no 0-10 rating for passage {start + 1} in the model's answer {truncate(text)!r}")
                scores[start] = rating
                continue
            prompt = POINTWISE_BATCH_PROMPT.format(question=state.question, passages=self.numbered(group))
            text = self.ask(state, prompt, self.max_tokens or 8 * len(group) + 8)
            found = parse_scores(text, len(group))
            missing = [start + i for i in range(1, len(group) + 1) if i not in found]
            if missing:
                shown = ", ".join(str(m) for m in missing)
                raise _Failed(f"no 0-10 rating for passage(s) {shown} in the model's answer {truncate(text)!r}")
            for number, rating in found.items():
                scores[start + number - 1] = rating
        return [float(s) for s in scores if s is not None]

    # -- listwise -----------------------------------------------------------------------------------

    def order(self, state: QueryState, hits: Sequence[Hit], notes: list[str]) -> list[int]:
        """The model's order of ``hits`` (indices), built window by window from the bottom up."""
        order = list(range(len(hits)))
        end = len(hits)
        while True:
            start = max(0, end - self.window)
            segment = order[start:end]
            order[start:end] = [segment[i] for i in self.permutation(state, [hits[j] for j in segment], notes, start)]
            if start == 0:
                return order
            end -= self.step

    def permutation(self, state: QueryState, hits: Sequence[Hit], notes: list[str], offset: int) -> list[int]:
        """One window's order (indices into ``hits``); a partial order keeps the unnamed ones after, in order."""
        prompt = LISTWISE_PROMPT.format(count=len(hits), question=state.question, passages=self.numbered(hits))
        text = self.ask(state, prompt, self.max_tokens or 6 * len(hits) + 8)
        named: list[int] = []
        outside: list[int] = []
        repeated: list[int] = []
        for number in parse_int_list(text):
            if not 1 <= number <= len(hits):
                outside.append(number)
            elif number - 1 in named:
                repeated.append(number)
            else:
                named.append(number - 1)
        where = f"passages {offset + 1}-{offset + len(hits)}" if offset or len(hits) < self._total(state) else ""
        prefix = f"{where}: " if where else ""
        if not named:
            raise _Failed(f"{prefix}no usable order in the model's answer {truncate(text)!r}")
        if outside:
            notes.append(f"{prefix}ignored number(s) out of range 1-{len(hits)}: {_listed(outside)}")
        if repeated:
            notes.append(f"{prefix}ignored repeated number(s): {_listed(repeated)}")
        rest = [i for i in range(len(hits)) if i not in named]
        if rest:
            notes.append(
                f"{prefix}the model ranked {len(named)} of {len(hits)} passages; "
                f"the other {len(rest)} follow in their incoming order"
            )
        return named + rest

    def _total(self, state: QueryState) -> int:
        return min(len(state.hits), self.candidates or len(state.hits))


def _listed(numbers: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")
