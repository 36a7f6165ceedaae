"""``ragkit mcp``: serve the collections to an MCP client over stdio.

The core CLI finds :func:`main` as the ``cli.mcp`` entry point and hands it
the command's arguments. The server reads the same settings as ``ragkit
serve`` (``--config service.yaml`` and ``RAGKIT_*`` variables: the store
folder, the pipelines and their default); API keys play no part, since
whoever starts the process already holds its files. ``--collections`` limits
what the client sees.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ragkit.errors import InputError

PROG = "ragkit mcp"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Serve ragkit collections to an MCP client (Claude Desktop, an IDE, an agent) over stdio: "
        "the tools search, ask and list_collections, and every document as a resource.",
    )
    parser.add_argument("--config", type=Path, help="Service settings (YAML), as for 'ragkit serve'.")
    parser.add_argument(
        "--store-dir", type=Path, help="Where the collections live (default: RAGKIT_HOME, else ~/.ragkit)."
    )
    parser.add_argument(
        "--collections", help="Comma-separated collection names: the client sees only these (default: all)."
    )
    parser.add_argument(
        "--pipeline",
        help="The default pipeline for ask: a recipe name or YAML path (default: the settings').",
    )
    parser.add_argument("--log-level", default="WARNING", help="Logging on stderr (default: WARNING).")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Run the stdio server until the client closes stdin."""
    parser = _parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        if exc.code in (0, None):
            return
        raise InputError(f"{PROG}: invalid arguments (see {PROG} --help)") from None
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")

    import anyio

    from ragkit_mcp.stdio import serve_stdio

    collections = [c.strip() for c in args.collections.split(",") if c.strip()] if args.collections else None
    anyio.run(lambda: serve_stdio(args.config, args.store_dir, collections, args.pipeline))


if __name__ == "__main__":  # pragma: no cover
    main()
