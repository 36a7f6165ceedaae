"""sql_bench's systems through an OpenAI-compatible server: the same model, reached by each framework's client.

Systems (``--systems``, beside sql_bench's in-process ones):

- ``ragkit-openai``: ragkit's ``SQLQueryEngine`` with ``generator: {type: openai, base_url, model}``
  (ragkit's OpenAI connector);
- ``langchain-openai``: LangChain's ``create_sql_query_chain`` with ``langchain_openai.ChatOpenAI``;
- ``llamaindex-openai``: LlamaIndex's ``NLSQLTableQueryEngine`` with ``llama_index.llms.openai_like.OpenAILike``.

The server: by default the bench serves the model it loaded (the same ragkit
generator the in-process systems use) with ``ragkit.service.model_server``
(what ``ragkit serve-model`` runs) on a free loopback port, in a thread of
the bench's process; every client asks with ``temperature: 0`` (greedy) and
``--max-tokens``. Calls and tokens are counted by that server (its
``on_usage`` hook), the same for every client. ``--openai-base-url`` (and
``--openai-model``, ``OPENAI_API_KEY``) points the systems at a server of
your own instead; then only ragkit's calls are counted (by its generator).

    .venv/bin/python evaluation/benchmarks/sql_bench.py --systems ragkit-openai \\
        --work /tmp/ragkit-sql-bench-openai --resume
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

OPENAI_SYSTEMS = ("ragkit-openai", "langchain-openai", "llamaindex-openai")
TIMEOUT_S = 900.0
"""Seconds one request may take (a loaded shared machine can take minutes for a long prompt)."""


def add_openai_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the OpenAI-compatible systems."""
    parser.add_argument("--openai-base-url", help="an OpenAI-compatible server's /v1 (default: serve the model here)")
    parser.add_argument("--openai-model", help="the model id at --openai-base-url (default: the loaded model's name)")


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    add_openai_arguments(parser)
    return parser.parse_known_args(sys.argv[1:])[0]


def _bench() -> Any:
    import sql_bench  # this script's own module (lazily: sql_bench imports this one)

    return sql_bench


class _Endpoint:
    """The server the systems talk to: ``base_url``, ``model``, and whether it counts the calls itself."""

    def __init__(self, base_url: str, model: str, counts: bool) -> None:
        self.base_url, self.model, self.counts = base_url, model, counts
        self.server: Any = None
        """The uvicorn server when the bench serves its own model (``None`` for a given URL)."""
        self.thread: threading.Thread | None = None


_endpoint: _Endpoint | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def endpoint(generator: Any, counter: Any) -> _Endpoint:
    """The server for this process: ``--openai-base-url``, or ``generator`` served on loopback (started once)."""
    global _endpoint
    if _endpoint is not None:
        return _endpoint
    options = _options()
    if options.openai_base_url:
        _endpoint = _Endpoint(options.openai_base_url, options.openai_model or generator.model_name, counts=False)
        return _endpoint
    import uvicorn

    from ragkit.service.model_server import create_model_app

    def count(usage: Any) -> None:
        counter.calls += 1
        counter.prompt_tokens += usage.prompt_tokens
        counter.completion_tokens += usage.completion_tokens

    app = create_model_app(generator, on_usage=count)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="sql-bench-model-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("the model server did not start")
        time.sleep(0.05)
    _endpoint = _Endpoint(f"http://127.0.0.1:{port}/v1", generator.model_name, counts=True)
    _endpoint.server, _endpoint.thread = server, thread
    return _endpoint


def close_endpoint() -> None:
    """Stop the model server this process started (if it did) and forget the endpoint."""
    global _endpoint
    current, _endpoint = _endpoint, None
    if current is None or current.server is None:
        return
    current.server.should_exit = True
    if current.thread is not None:
        current.thread.join(timeout=30)


def _api_key() -> str:
    return os.environ.get("OPENAI_API_KEY") or "unused"  # a server without keys needs none; the clients want one


def ragkit_openai_system(generator: Any, database: Path, max_tokens: int, counter: Any) -> Callable[[str], Any]:
    """ragkit's SQLQueryEngine with ragkit's OpenAI connector as its generator."""
    from _llm_adapters import CallCounter

    from ragkit import registry

    server = endpoint(generator, counter)
    os.environ.setdefault("OPENAI_API_KEY", _api_key())
    remote = registry.build(
        "generator",
        {
            "type": "openai",
            "base_url": server.base_url,
            "model": server.model,
            "timeout": TIMEOUT_S,
            "max_retries": 0,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "context_window": int(getattr(generator, "context_window", 8192)),
        },
    )
    # the server counts when it is ours; else ragkit's generator does (its usage comes from the server's answers)
    return _bench().ragkit_system(remote, database, max_tokens, CallCounter() if server.counts else counter)


def langchain_openai_system(generator: Any, database: Path, max_tokens: int, counter: Any) -> Callable[[str], Any]:
    """LangChain's ``create_sql_query_chain`` with ``ChatOpenAI`` on the server."""
    from langchain_classic.chains import create_sql_query_chain
    from langchain_community.utilities import SQLDatabase
    from langchain_openai import ChatOpenAI

    bench = _bench()
    server = endpoint(generator, counter)
    model = ChatOpenAI(
        model=server.model,
        base_url=server.base_url,
        api_key=_api_key(),
        temperature=0.0,
        max_tokens=max_tokens,
        timeout=TIMEOUT_S,
        max_retries=0,
    )
    chain = create_sql_query_chain(model, SQLDatabase.from_uri(bench.readonly_url(database)), k=bench.ROW_CAP)

    def answer(question: str) -> dict[str, Any]:
        try:
            sql = str(chain.invoke({"question": question}))
        except Exception as exc:
            return {"sql": None, "text": "", "failed": True, "error": bench._error(exc)}
        return {"sql": sql, "text": "", "failed": not sql.strip(), "error": ""}

    return answer


def llamaindex_openai_system(generator: Any, database: Path, max_tokens: int, counter: Any) -> Callable[[str], Any]:
    """LlamaIndex's ``NLSQLTableQueryEngine`` with ``OpenAILike`` on the server."""
    from llama_index.core import Settings, SQLDatabase
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.query_engine import NLSQLTableQueryEngine
    from llama_index.llms.openai_like import OpenAILike
    from sqlalchemy import create_engine

    bench = _bench()
    server = endpoint(generator, counter)
    llm = OpenAILike(
        model=server.model,
        api_base=server.base_url,
        api_key=_api_key(),
        is_chat_model=True,
        is_function_calling_model=False,
        context_window=int(getattr(generator, "context_window", 8192)),
        temperature=0.0,
        max_tokens=max_tokens,
        timeout=TIMEOUT_S,
        max_retries=0,
    )
    Settings.llm = llm  # nothing may fall back to a remote default model
    Settings.embed_model = MockEmbedding(embed_dim=8)
    engine = NLSQLTableQueryEngine(
        sql_database=SQLDatabase(create_engine(bench.readonly_url(database))), llm=llm, synthesize_response=False
    )

    def answer(question: str) -> dict[str, Any]:
        try:
            response = engine.query(question)
        except Exception as exc:
            return {"sql": None, "text": "", "failed": True, "error": bench._error(exc)}
        sql = (response.metadata or {}).get("sql_query")
        return {"sql": sql, "text": str(response)[:300], "failed": not sql, "error": ""}

    return answer


OPENAI_BUILDERS: dict[str, Callable[[Any, Path, int, Any], Callable[[str], Any]]] = {
    "ragkit-openai": ragkit_openai_system,
    "langchain-openai": langchain_openai_system,
    "llamaindex-openai": llamaindex_openai_system,
}
