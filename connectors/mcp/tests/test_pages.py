"""``resources/list`` in pages, over the SDK's in-process connection to the server object."""

from __future__ import annotations

from typing import Any

import anyio
from mcp import Client
from mcp.shared.exceptions import MCPError
from ragkit_mcp.server import RagkitMcp, document_uri
from ragkit_mcp.stdio import local_state

from ragkit.service.auth import OPEN, Principal


def _pages(corpus: dict[str, Any], principal: Principal, page_size: int) -> tuple[list[list[str]], str]:
    state = local_state(store_dir=corpus["home"])
    server = RagkitMcp(state, lambda ctx: principal, page_size=page_size).server()

    async def session() -> tuple[list[list[str]], str]:
        pages: list[list[str]] = []
        async with Client(server, cache=None) as client:
            cursor = None
            while True:
                page = await client.list_resources(cursor=cursor)
                pages.append([str(r.uri) for r in page.resources])
                cursor = page.next_cursor
                if cursor is None:
                    break
            try:
                await client.list_resources(cursor="not-a-cursor")
            except MCPError as exc:
                return pages, str(exc)
        return pages, ""

    try:
        return anyio.run(session)
    finally:
        state.close()


def test_documents_are_listed_in_pages_that_add_up_to_all_of_them(corpus):
    pages, refused = _pages(corpus, OPEN, page_size=2)
    assert [len(p) for p in pages] == [2, 2]
    every = [uri for page in pages for uri in page]
    expected = {document_uri(name, f.name) for name, files in corpus["files"].items() for f in files}
    assert sorted(every) == sorted(expected) and len(set(every)) == 4
    assert "invalid cursor" in refused


def test_a_limited_caller_pages_through_its_collections_only(corpus):
    pages, _ = _pages(corpus, Principal("limited", frozenset({"read"}), ("other",)), page_size=2)
    assert pages == [[document_uri("other", "black-death.txt")]]
