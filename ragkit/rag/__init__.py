"""Retrieval-augmented generation: the basic pipeline, answers and citations.

::

    from ragkit.rag import RagPipeline
    answer = RagPipeline.load("basic").ask("When was the tower completed?", collection)
"""

from __future__ import annotations

from ragkit.rag.answer import Answer, AskEvent, Citation
from ragkit.rag.citations import CitationTracker, find_markers, infer_citations, resolve_citations
from ragkit.rag.config import PipelineConfig, load_pipeline_config
from ragkit.rag.pipeline import PreparedPrompt, RagPipeline, shared_generator
from ragkit.rag.prompt import PromptTemplate, format_block

__all__ = [
    "Answer",
    "AskEvent",
    "Citation",
    "CitationTracker",
    "PipelineConfig",
    "PreparedPrompt",
    "PromptTemplate",
    "RagPipeline",
    "find_markers",
    "format_block",
    "infer_citations",
    "load_pipeline_config",
    "resolve_citations",
    "shared_generator",
]
