"""Instruction prefixes that some embedding models were trained with.

e5, bge and nomic-embed models expect their inputs to start with a short
instruction (``"query: "``, ``"passage: "`` ...); without it their retrieval
quality drops. Embedder connectors call :func:`default_prefixes` when the
user leaves a prefix option unset.
"""

from __future__ import annotations

import re
from pathlib import PurePath

E5_PREFIXES = ("query: ", "passage: ")
E5_INSTRUCT_QUERY = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: "
BGE_QUERY_EN = "Represent this sentence for searching relevant passages: "
BGE_QUERY_ZH = "为这个句子生成表示以用于检索相关文章："
NOMIC_PREFIXES = ("search_query: ", "search_document: ")


def default_prefixes(model_name: str) -> tuple[str, str]:
    r"""The (query, document) instruction prefixes a model was trained with, judged by its name.

    - e5 (``intfloat/e5-small-v2``, ``multilingual-e5-large`` ...):
      ``"query: "`` / ``"passage: "``; the instruct variants
      (``e5-mistral-7b-instruct``, ``multilingual-e5-large-instruct``) take an
      ``Instruct: ...\nQuery: `` query prefix and none on documents;
    - bge (``BAAI/bge-small-en-v1.5`` ...): the bge retrieval instruction on
      queries only (the Chinese one for ``-zh`` models; none for bge-m3);
    - nomic-embed: ``"search_query: "`` / ``"search_document: "``;
    - anything else: no prefixes.

    ``model_name`` may be a hub id, a served model name or a folder path; its
    last part is used.
    """
    base = PurePath(model_name.replace("\\", "/").rstrip("/")).name.lower() or model_name.lower()
    tokens = set(re.split(r"[-_./\s]+", base))
    if "e5" in tokens:
        if "instruct" in tokens or "mistral" in tokens:
            return E5_INSTRUCT_QUERY, ""
        return E5_PREFIXES
    if "bge" in tokens:
        if "m3" in tokens or "reranker" in tokens:
            return "", ""
        if "zh" in tokens:
            return BGE_QUERY_ZH, ""
        return BGE_QUERY_EN, ""
    if base.startswith("nomic-embed"):
        return NOMIC_PREFIXES
    return "", ""
