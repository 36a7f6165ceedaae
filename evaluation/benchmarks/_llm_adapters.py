"""One ragkit generator behind LangChain's and LlamaIndex's model interfaces, so every system uses the same model.

The text-to-SQL benchmark loads one local model (a ragkit generator from
the registry, e.g. ``{"type": "transformers", "model": ...}``) and gives it
to ragkit directly, to LangChain as a ``BaseChatModel``
(:func:`langchain_chat_model`) and to LlamaIndex as a ``CustomLLM``
(:func:`llamaindex_llm`). Each adapter turns the framework's messages or
prompt into ragkit :class:`~ragkit.generation.base.Message` objects, calls
``generator.generate`` with the framework's stop words and the same
``max_tokens``, and cuts the text at the first stop word (as those
frameworks' own local-model wrappers do). :class:`CallCounter` counts the
calls and tokens each system made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ragkit.generation.base import GenerationOptions, Message


@dataclass
class CallCounter:
    """Model calls and tokens through one adapter (or ragkit directly)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompts: list[str] = field(default_factory=list)

    def take(self) -> dict[str, int]:
        """The counts so far, then zero them (one question's worth)."""
        counts = {"calls": self.calls, "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}
        self.calls = self.prompt_tokens = self.completion_tokens = 0
        self.prompts.clear()
        return counts


def cut_at_stop(text: str, stop: list[str] | None) -> str:
    """``text`` up to the first of the ``stop`` strings."""
    for word in stop or []:
        if word and word in text:
            text = text[: text.index(word)]
    return text


def generate(
    generator: Any, messages: list[Message], stop: list[str] | None, max_tokens: int, counter: CallCounter
) -> str:
    """One generation with ``generator``, counted, cut at ``stop``."""
    result = generator.generate(messages, GenerationOptions(max_tokens=max_tokens, stop=stop or None))
    counter.calls += 1
    counter.prompt_tokens += result.usage.prompt_tokens
    counter.completion_tokens += result.usage.completion_tokens
    counter.prompts.append(messages[-1].content if messages else "")
    return cut_at_stop(result.text, stop)


def langchain_chat_model(generator: Any, max_tokens: int, counter: CallCounter) -> Any:
    """A LangChain ``BaseChatModel`` answering with ``generator``."""
    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from pydantic import ConfigDict

    roles = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}

    class RagkitChatModel(BaseChatModel):
        """LangChain chat model over a ragkit generator."""

        model_config = ConfigDict(arbitrary_types_allowed=True)
        ragkit_generator: Any
        max_tokens: int
        counter: Any

        @property
        def _llm_type(self) -> str:
            return "ragkit-generator"

        def _generate(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: CallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> ChatResult:
            converted = [Message(role=roles.get(m.type, "user"), content=str(m.content)) for m in messages]  # type: ignore[arg-type]
            text = generate(self.ragkit_generator, converted, stop, self.max_tokens, self.counter)
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    return RagkitChatModel(ragkit_generator=generator, max_tokens=max_tokens, counter=counter)


def llamaindex_llm(generator: Any, max_tokens: int, counter: CallCounter) -> Any:
    """A LlamaIndex ``CustomLLM`` answering with ``generator`` (a completion prompt becomes one user message)."""
    from llama_index.core.llms import CompletionResponse, CompletionResponseGen, CustomLLM, LLMMetadata
    from llama_index.core.llms.callbacks import llm_completion_callback
    from pydantic import ConfigDict

    class RagkitLLM(CustomLLM):
        """LlamaIndex LLM over a ragkit generator."""

        model_config = ConfigDict(arbitrary_types_allowed=True)
        ragkit_generator: Any = None
        max_tokens: int = 256
        counter: Any = None

        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(
                context_window=int(self.ragkit_generator.context_window),
                num_output=self.max_tokens,
                model_name=str(self.ragkit_generator.model_name),
            )

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            stop = kwargs.get("stop")
            text = generate(self.ragkit_generator, [Message("user", prompt)], stop, self.max_tokens, self.counter)
            return CompletionResponse(text=text)

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
            response = self.complete(prompt, formatted=formatted, **kwargs)

            def one() -> CompletionResponseGen:
                yield CompletionResponse(text=response.text, delta=response.text)

            return one()

    return RagkitLLM(ragkit_generator=generator, max_tokens=max_tokens, counter=counter)
