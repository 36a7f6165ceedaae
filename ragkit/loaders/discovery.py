"""Finding the files to load: folder walking with globs, hidden-file and symlink policies."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path

from ragkit.config import LoaderOptions
from ragkit.errors import ConflictError, InputError
from ragkit.loaders.base import SourceFile

logger = logging.getLogger(__name__)


@lru_cache(maxsize=256)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob matched against a POSIX relative path.

    ``*`` and ``?`` stay inside one path segment, ``[abc]`` is a character
    class, ``**`` spans any number of segments (``a/**/b`` matches ``a/b``
    and ``a/x/y/b``). A pattern without a ``/`` matches the file name at any
    depth, as in ``.gitignore`` (``*.md`` matches ``notes/a.md``).
    """
    pattern = pattern.strip()
    while pattern.startswith("./"):
        pattern = pattern[2:]
    pattern = pattern.lstrip("/")
    if "/" not in pattern.rstrip("/"):
        pattern = "**/" + pattern
    pattern = pattern.rstrip("/") or "**"
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        if pattern.startswith("**/", i) and (i == 0 or pattern[i - 1] == "/"):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i) and (i == 0 or pattern[i - 1] == "/") and i + 2 == n:
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            while i < n and pattern[i] == "*":
                i += 1
            out.append("[^/]*")
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            start = i + 1
            if start < n and pattern[start] in "!^":
                start += 1
            if start < n and pattern[start] == "]":
                start += 1
            end = pattern.find("]", start)
            if end < 0:
                out.append(re.escape("["))
                i += 1
                continue
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def matches_any(patterns: Sequence[str], relative: str) -> bool:
    """Whether the POSIX relative path matches one of the globs."""
    return any(glob_to_regex(p).match(relative) for p in patterns)


def source_prefix(prefix: str | None) -> str:
    """``prefix`` checked and made a folder (``team`` -> ``team/``); ``""`` for none.

    A prefix namespaces the source ids of one ingest root (``team/`` +
    ``hr/a.docx``). It must be a relative POSIX path without ``.`` or ``..``
    parts, empty parts, backslashes or control characters
    (:class:`~ragkit.errors.InputError` otherwise).
    """
    if prefix is None or prefix == "":
        return ""
    if not isinstance(prefix, str):
        raise InputError(f"source prefix must be text, not {type(prefix).__name__}")
    shown = prefix.encode("unicode_escape").decode("ascii")[:200]
    if any(ord(c) < 32 or ord(c) == 127 for c in prefix):
        raise InputError(f"source prefix {shown!r} contains control characters")
    if "\\" in prefix:
        raise InputError(f"source prefix {shown!r} contains a backslash; separate folders with '/'")
    if prefix.startswith("/"):
        raise InputError(f"source prefix {shown!r} is absolute; give a relative folder such as 'team/'")
    parts = prefix.rstrip("/").split("/")
    if any(part in ("", ".", "..") or part != part.strip() for part in parts):
        raise InputError(
            f"source prefix {shown!r} has an empty, '.', '..' or space-padded part; give a folder such as 'team/'"
        )
    return "/".join(parts) + "/"


def _source_file(path: Path, relative: str, prefix: str) -> SourceFile | None:
    try:
        stat = path.stat()
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # vanished, permission, symlink loop
        logger.warning("skipping %s: %s", path, getattr(exc, "strerror", None) or exc)
        return None
    return SourceFile(
        path=path,
        source=prefix + relative,
        size=stat.st_size,
        mtime=stat.st_mtime,
        relative=relative,
        resolved=resolved.as_posix(),
    )


def _walk(root: Path, options: LoaderOptions, seen_dirs: set[tuple[int, int]]) -> Iterator[tuple[Path, str]]:
    """``(path, relative)`` of every file under ``root`` that the options take, in sorted order."""

    def visit(folder: Path, prefix: str) -> Iterator[tuple[Path, str]]:
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            logger.warning("skipping folder %s: %s", folder, exc.strerror or exc)
            return
        for entry in entries:
            relative = prefix + entry.name
            if entry.name.startswith(".") and not options.include_hidden:
                continue
            try:
                is_link = entry.is_symlink()
                if is_link and not options.follow_symlinks:
                    continue
                is_dir = entry.is_dir(follow_symlinks=True)
                is_file = not is_dir and entry.is_file(follow_symlinks=True)
            except OSError:
                continue
            if is_dir:
                if options.exclude and matches_any(options.exclude, relative):
                    continue
                try:
                    stat = os.stat(entry.path)
                except OSError as exc:
                    logger.warning("skipping folder %s: %s", entry.path, exc.strerror or exc)
                    continue
                key = (stat.st_dev, stat.st_ino)
                if key in seen_dirs:
                    logger.info("skipping %s: folder already walked (symlink loop?)", entry.path)
                    continue
                seen_dirs.add(key)
                yield from visit(Path(entry.path), relative + "/")
            elif is_file:
                if not matches_any(options.include, relative):
                    continue
                if options.exclude and matches_any(options.exclude, relative):
                    continue
                yield Path(entry.path), relative
            elif is_link:
                logger.info("skipping broken symbolic link %s", entry.path)

    stat = os.stat(root)
    seen_dirs.add((stat.st_dev, stat.st_ino))
    yield from visit(root, "")


def discover(
    paths: Sequence[str | Path] | str | Path, options: LoaderOptions | None = None, prefix: str = ""
) -> Iterator[SourceFile]:
    """The files to load under ``paths`` (folders are walked, files taken as they are).

    Each file's source id is ``prefix`` (see :func:`source_prefix`) plus its
    POSIX path relative to the folder given (``hr/a.docx``), or its name for a
    file given directly. A file reached twice (the same resolved file under
    two of ``paths``) comes once, the first time. Two different files that
    would get the same source id raise :class:`~ragkit.errors.ConflictError`
    naming both (give the roots different prefixes).

    In a folder, a file is taken when its POSIX path relative to that folder
    matches one of ``options.include`` and none of ``options.exclude``
    (a folder matching an exclude glob is not entered). Names starting with
    a dot are skipped unless ``include_hidden``; symbolic links are skipped
    unless ``follow_symlinks`` (then loops are detected and broken links
    skipped). A file named directly is taken unless an exclude glob matches
    its name. Each file comes once, in sorted order within each folder,
    folders in the order given. A path that does not exist raises
    :class:`~ragkit.errors.InputError` before any file is yielded.
    """
    options = options or LoaderOptions()
    if isinstance(paths, str | Path):
        paths = [paths]
    roots: list[tuple[str | Path, Path]] = []
    for given in paths:
        path = Path(given).expanduser()
        if not os.path.lexists(path):
            raise InputError(f"{given}: does not exist (no such file or folder)")
        if not path.exists():
            raise InputError(f"{given}: broken symbolic link")
        if not (path.is_dir() or path.is_file()):
            raise InputError(f"{given}: not a regular file or folder")
        roots.append((given, Path(os.path.abspath(path))))
    return _discover(roots, options, source_prefix(prefix))


def _discover(roots: list[tuple[str | Path, Path]], options: LoaderOptions, prefix: str) -> Iterator[SourceFile]:
    seen_files: set[str] = set()
    seen_sources: dict[str, Path] = {}
    seen_dirs: set[tuple[int, int]] = set()
    for _given, root in roots:
        if root.is_dir():
            found: Iterator[tuple[Path, str]] = _walk(root, options, seen_dirs)
        else:
            if options.exclude and matches_any(options.exclude, root.name):
                continue
            found = iter([(root, root.name)])
        for path, relative in found:
            source_file = _source_file(path, relative, prefix)
            if source_file is None or source_file.resolved in seen_files:
                continue
            other = seen_sources.get(source_file.source)
            if other is not None:
                raise ConflictError(
                    f"two files would get the same source id {source_file.source!r}: {other} and {path}; "
                    "ingest their folders separately with different source prefixes (--source-prefix)"
                )
            seen_files.add(source_file.resolved)
            seen_sources[source_file.source] = path
            yield source_file
