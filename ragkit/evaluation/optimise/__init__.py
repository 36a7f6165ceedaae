"""Prompt optimisation: search a RAG pipeline's prompt on a suite's train split, report it on held-out.

``ragkit eval optimise SUITE --pipeline NAME`` does, over ragkit's own pipeline, what DSPy's optimisers do
over a DSPy program:

1. **Splits.** The suite's questions (those with reference answers) are shuffled with ``--seed`` and cut
   into three disjoint splits: held-out (``--heldout``), train (``--train``) and a small bootstrap pool.
2. **Bootstrap few-shot** (DSPy's BootstrapFewShot). The pipeline answers the pool questions with its own
   prompt; the answers whose metric passes ``demo_threshold`` and that cite a source become
   demonstrations: the cited source blocks (shortened), the question and the pipeline's cited answer.
3. **Instruction candidates** (the proposal step of COPRO/MIPROv2): hand-written variants of the
   instructions, and optionally (``--propose N``) ones written by the pipeline's generator.
4. **Search.** The base prompt, the instructions and the best instruction with demonstrations are each
   scored on the train split with the suite's metrics (``--candidates`` prompts in all); the best on the
   objective metric wins (ties go to the earlier candidate, so the base prompt stays unless beaten).
5. **Held-out.** The base and the winning prompt answer the held-out split; the report shows both.

The winning prompt is written into a new recipe (the pipeline's config with a new ``prompt:``) that
``ragkit ask --pipeline FILE`` loads as any other. See docs/optimise.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragkit.evaluation.optimise.output import write_recipe, write_report
    from ragkit.evaluation.optimise.search import OptimiseResult, OptimiseSettings, optimise
    from ragkit.evaluation.optimise.splits import Splits, split_questions

_EXPORTS = {
    "OptimiseResult": "ragkit.evaluation.optimise.search",
    "OptimiseSettings": "ragkit.evaluation.optimise.search",
    "optimise": "ragkit.evaluation.optimise.search",
    "Splits": "ragkit.evaluation.optimise.splits",
    "split_questions": "ragkit.evaluation.optimise.splits",
    "write_recipe": "ragkit.evaluation.optimise.output",
    "write_report": "ragkit.evaluation.optimise.output",
}

__all__ = [
    "OptimiseResult",
    "OptimiseSettings",
    "Splits",
    "optimise",
    "split_questions",
    "write_recipe",
    "write_report",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ragkit.evaluation.optimise' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
