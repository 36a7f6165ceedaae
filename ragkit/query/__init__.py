"""Query pipelines: stages from query transforms to context shaping, with a trace of each.

See :mod:`ragkit.query.engine` for the pipeline, :mod:`ragkit.query.stages`
for the stage roles and their base classes, :mod:`ragkit.query.state` for
what flows through, and the user guide's "Building pipelines" page.
"""

from __future__ import annotations

from ragkit.query.engine import QueryPipeline, SearchResult
from ragkit.query.stages import (
    ContextShaperStage,
    FuserStage,
    PipelineContext,
    QueryTransformStage,
    RerankerStage,
    RetrieverStage,
    Stage,
    build_stage,
    check_order,
    stage_types,
)
from ragkit.query.state import CandidateList, ModelCall, Query, QueryRequest, QueryState, StageTrace

__all__ = [
    "CandidateList",
    "ContextShaperStage",
    "FuserStage",
    "ModelCall",
    "PipelineContext",
    "Query",
    "QueryPipeline",
    "QueryRequest",
    "QueryState",
    "QueryTransformStage",
    "RerankerStage",
    "RetrieverStage",
    "SearchResult",
    "Stage",
    "StageTrace",
    "build_stage",
    "check_order",
    "stage_types",
]
