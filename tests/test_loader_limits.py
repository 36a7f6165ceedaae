"""Decompression bombs and per-file limits (issue 14, item 6).

Each bomb is a small, well-formed shell of its format (docx, xlsx, pptx, odt,
epub) whose main XML member is huge but compresses to almost nothing. The
limits refuse it from the zip directory, before anything is inflated; a
directory that lies about sizes is caught while streaming; a file over a
limit fails alone, with an error naming it and the limit, and the rest of
the ingest is kept.
"""

from __future__ import annotations

import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from ragkit import Collection
from ragkit.config import LoaderOptions
from ragkit.errors import ConfigError, LoaderError
from ragkit.ingest import IngestPipeline
from ragkit.loaders import (
    ArchiveLimitError,
    ArchiveLimits,
    DocxLoader,
    FileLimits,
    LoaderSet,
    SourceFile,
    check_archive,
)

BOMB_BYTES = 60_000_000
"""Over the 50 MB default; deflate packs it to about 60 KB."""

_W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
_CT = "http://schemas.openxmlformats.org/package/2006/content-types"
_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_OFFICE_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def _content_types(main: str, content_type: str) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="{_CT}">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/{main}" ContentType="{content_type}"/></Types>'
    )


def _root_rels(main: str) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_REL}">'
        f'<Relationship Id="rId1" Type="{_OFFICE_REL}/officeDocument" Target="{main}"/></Relationships>'
    )


# suffix -> (small members, the huge member's name, its head, its repeated body, its tail)
SHELLS: dict[str, tuple[dict[str, str], str, str, str, str]] = {
    ".docx": (
        {
            "[Content_Types].xml": _content_types(
                "word/document.xml",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
            ),
            "_rels/.rels": _root_rels("word/document.xml"),
        },
        "word/document.xml",
        f'<?xml version="1.0" encoding="UTF-8"?><w:document {_W}><w:body>',
        "<w:p><w:r><w:t>All work and no play makes Jack a dull boy.</w:t></w:r></w:p>",
        "</w:body></w:document>",
    ),
    ".xlsx": (
        {
            "[Content_Types].xml": _content_types(
                "xl/workbook.xml", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
            ),
            "_rels/.rels": _root_rels("xl/workbook.xml"),
            "xl/workbook.xml": (
                '<?xml version="1.0" encoding="UTF-8"?>'
                '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
                f'xmlns:r="{_OFFICE_REL}"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
            ),
            "xl/_rels/workbook.xml.rels": (
                f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_REL}">'
                f'<Relationship Id="rId1" Type="{_OFFICE_REL}/worksheet" Target="worksheets/sheet1.xml"/>'
                "</Relationships>"
            ),
        },
        "xl/worksheets/sheet1.xml",
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>',
        '<row><c t="inlineStr"><is><t>All work and no play</t></is></c></row>',
        "</sheetData></worksheet>",
    ),
    ".pptx": (
        {
            "[Content_Types].xml": _content_types(
                "ppt/presentation.xml",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml",
            ),
            "_rels/.rels": _root_rels("ppt/presentation.xml"),
            "ppt/presentation.xml": (
                '<?xml version="1.0" encoding="UTF-8"?>'
                '<p:presentation xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"/>'
            ),
        },
        "ppt/slides/slide1.xml",
        '<?xml version="1.0" encoding="UTF-8"?><p:sld '
        'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" '
        'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"><p:cSld><p:spTree>',
        "<p:sp><p:txBody><a:p><a:r><a:t>All work and no play</a:t></a:r></a:p></p:txBody></p:sp>",
        "</p:spTree></p:cSld></p:sld>",
    ),
    ".odt": (
        {
            "mimetype": "application/vnd.oasis.opendocument.text",
            "META-INF/manifest.xml": (
                '<?xml version="1.0" encoding="UTF-8"?>'
                '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
                '<manifest:file-entry manifest:full-path="/" '
                'manifest:media-type="application/vnd.oasis.opendocument.text"/>'
                '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
                "</manifest:manifest>"
            ),
        },
        "content.xml",
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        "<office:body><office:text>",
        "<text:p>All work and no play makes Jack a dull boy.</text:p>",
        "</office:text></office:body></office:document-content>",
    ),
    ".epub": (
        {
            "mimetype": "application/epub+zip",
            "META-INF/container.xml": (
                '<?xml version="1.0" encoding="UTF-8"?>'
                '<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
                '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
                "</rootfiles></container>"
            ),
            "OEBPS/content.opf": (
                '<?xml version="1.0" encoding="UTF-8"?>'
                '<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">'
                '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="id">bomb</dc:identifier>'
                "<dc:title>Bomb</dc:title><dc:language>en</dc:language></metadata>"
                '<manifest><item id="c1" href="chapter1.xhtml" media-type="application/xhtml+xml"/></manifest>'
                '<spine><itemref idref="c1"/></spine></package>'
            ),
        },
        "OEBPS/chapter1.xhtml",
        '<?xml version="1.0" encoding="UTF-8"?><html xmlns="http://www.w3.org/1999/xhtml">'
        "<head><title>Bomb</title></head><body>",
        "<p>All work and no play makes Jack a dull boy.</p>",
        "</body></html>",
    ),
}


def bomb(path: Path, unpacked: int = BOMB_BYTES) -> Path:
    """A ``path.suffix`` shell whose main member unpacks to about ``unpacked`` bytes (written as a stream)."""
    small, name, head, body, tail = SHELLS[path.suffix]
    block = body.encode() * max(1, (1 << 20) // len(body))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, text in small.items():
            method = zipfile.ZIP_STORED if member == "mimetype" else zipfile.ZIP_DEFLATED
            archive.writestr(member, text, compress_type=method)
        with archive.open(name, "w") as stream:
            written = stream.write(head.encode())
            while written + len(block) < unpacked:
                written += stream.write(block)
            while written < unpacked:
                written += stream.write(body.encode())
            stream.write(tail.encode())
    return path


def source_file(path: Path) -> SourceFile:
    stat = path.stat()
    return SourceFile(path, path.resolve().as_posix(), stat.st_size, stat.st_mtime, path.name)


def _patch_declared_size(path: Path, member: str, size: int) -> None:
    """Make the zip directory (central and local headers) declare ``size`` unpacked bytes for ``member``."""
    data = bytearray(path.read_bytes())
    encoded = member.encode()
    at = 0
    patched = 0
    while (at := data.find(b"PK\x01\x02", at)) >= 0:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if bytes(data[at + 46 : at + 46 + name_length]) == encoded:
            struct.pack_into("<I", data, at + 24, size)
            local = struct.unpack_from("<I", data, at + 42)[0]
            struct.pack_into("<I", data, local + 22, size)
            patched += 1
        at += 4
    assert patched == 1
    path.write_bytes(bytes(data))


# ---------------------------------------------------------------- the guard, format by format


@pytest.mark.parametrize("suffix", sorted(SHELLS))
def test_bomb_of_every_zip_format_is_refused_naming_the_file_and_limit(suffix: str, tmp_path: Path) -> None:
    path = bomb(tmp_path / f"bomb{suffix}")
    assert path.stat().st_size < 300_000, "a bomb: small on disk"
    loaders = LoaderSet()
    if suffix not in loaders.supported_suffixes():
        pytest.skip(f"no loader reads {suffix} here (ragkit-unstructured not installed)")
    with pytest.raises(ArchiveLimitError) as info:
        list(loaders.load(source_file(path)))
    message = str(info.value)
    assert str(path) in message and "max_member_bytes limit of 50,000,000" in message, message
    assert info.value.limit == "max_member_bytes"


def test_the_guard_refuses_from_the_directory_without_inflating(tmp_path: Path) -> None:
    path = bomb(tmp_path / "bomb.docx")
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveLimitError, match="max_member_bytes"):
            check_archive(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, f"the guard used {peak:,} bytes for a {BOMB_BYTES:,}-byte member"

    # a directory declaring 4 GB over data that is not even deflate: refused before anything is read
    garbage = tmp_path / "declared.docx"
    with zipfile.ZipFile(garbage, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\xff" * 100)
    _patch_declared_size(garbage, "word/document.xml", 0xFFFF_FFF0)
    with pytest.raises(ArchiveLimitError, match=r"'word/document.xml' unpacks to 4,294,967,280 bytes"):
        check_archive(garbage)


def test_a_directory_that_lies_about_sizes_is_stopped_while_streaming(tmp_path: Path) -> None:
    path = bomb(tmp_path / "liar.docx")
    _patch_declared_size(path, "word/document.xml", 1000)  # under every directory limit
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveLimitError) as info:
            list(LoaderSet().load(source_file(path)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "more than the 1,000 bytes its zip directory declares" in str(info.value)
    assert info.value.limit == "declared_size" and str(path) in str(info.value)
    assert peak < 5_000_000, f"streaming the lying member used {peak:,} bytes"


def test_total_size_member_count_and_ratio_each_name_their_limit(tmp_path: Path) -> None:
    many = tmp_path / "many.docx"
    with zipfile.ZipFile(many, "w") as archive:
        for number in range(30):
            archive.writestr(f"media/{number}.xml", "<x/>")
    with pytest.raises(ArchiveLimitError, match=r"has 30 members, over the max_archive_members limit of 20"):
        check_archive(many, ArchiveLimits(max_archive_members=20))

    split = tmp_path / "split.docx"
    with zipfile.ZipFile(split, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for number in range(3):
            archive.writestr(f"word/part{number}.xml", b"<a/>" * 100_000)  # 400 KB each
    with pytest.raises(
        ArchiveLimitError, match=r"unpacks to 1,200,000 bytes, over the max_unpacked_bytes limit of 1,000,000"
    ):
        check_archive(split, ArchiveLimits(max_unpacked_bytes=1_000_000))

    dense = bomb(tmp_path / "dense.docx", unpacked=3_000_000)  # under the size limits, but packed ~1000:1
    with pytest.raises(ArchiveLimitError, match=r"over the max_compression_ratio limit of 200") as info:
        check_archive(dense)
    assert info.value.limit == "max_compression_ratio"


def test_real_documents_pass_and_limits_are_loader_options(tmp_path: Path) -> None:
    import docx

    word = docx.Document()
    word.add_heading("Quarterly report", level=1)
    for number in range(200):
        word.add_paragraph(f"Paragraph {number}: revenue grew in the north and fell in the south.")
    real = tmp_path / "report.docx"
    word.save(str(real))
    check_archive(real)
    assert "Paragraph 199" in str(next(iter(LoaderSet().load(source_file(real)))).text)

    # a dense but genuine file: refused by default, read once the loader option lifts the ratio limit
    dense = bomb(tmp_path / "dense.docx", unpacked=2_000_000)
    with pytest.raises(ArchiveLimitError, match="max_compression_ratio"):
        list(LoaderSet().load(source_file(dense)))
    options = LoaderOptions(loaders={".docx": {"type": "docx", "max_compression_ratio": None}})
    documents = list(LoaderSet(options).load(source_file(dense)))
    assert str(documents[0].text).startswith("All work and no play")
    lifted = LoaderSet(limits=FileLimits(archive=ArchiveLimits(max_compression_ratio=None)))
    assert next(iter(lifted.load(source_file(dense)))).text == documents[0].text

    with pytest.raises(ConfigError, match=r"loader 'docx': archive limit max_unpacked_bytes must be positive"):
        DocxLoader(max_unpacked_bytes=0)
    bad = LoaderOptions(loaders={".docx": {"type": "docx", "max_member_bytes": "big"}})
    with pytest.raises(ConfigError, match="max_member_bytes"):
        LoaderSet(bad)
    with pytest.raises(ConfigError, match="max_chunks_per_file"):
        FileLimits(max_chunks_per_file=0)


def test_a_loader_that_does_not_check_archives_is_guarded_by_the_loader_set(tmp_path: Path) -> None:
    path = bomb(tmp_path / "book.epub")
    # the text loader knows nothing of zips; the loader set checks the archive before calling it
    loaders = LoaderSet(LoaderOptions(loaders={".epub": {"type": "text"}}))
    with pytest.raises(ArchiveLimitError, match=r"book\.epub: .*max_member_bytes"):
        list(loaders.load(source_file(path)))


def test_not_a_zip_is_still_a_plain_loader_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.docx"
    path.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    with pytest.raises(LoaderError, match=r"not a valid \.docx") as info:
        check_archive(path)
    assert not isinstance(info.value, ArchiveLimitError)


# ---------------------------------------------------------------- in an ingest


NOTE = "# Lighthouses\n\nThe Eddystone lighthouse stands on rocks fourteen kilometres south of Plymouth.\n"


def test_ingest_fails_the_bomb_alone_and_keeps_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    bomb(folder / "bomb.docx")
    (folder / "lighthouses.md").write_text(NOTE, encoding="utf-8")
    with Collection.create("limits", store_dir=tmp_path / "home") as col:
        report = col.ingest(folder)
        assert report.added == 1 and len(report.failed) == 1, report.summary()
        failure = report.failed[0]
        assert failure.source == "bomb.docx"
        assert "max_member_bytes limit of 50,000,000" in failure.reason
        assert report.chunks_written < 10, "the bomb wrote nothing"
        assert set(col.store.sources()) == {"lighthouses.md"}
        hits = col.search("Where is the Eddystone lighthouse?", top_k=1)
        assert "Plymouth" in hits[0].chunk.text


def test_max_chunks_per_file_fails_that_file_and_keeps_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    long_text = "\n\n".join(f"## Part {n}\n\n" + f"Sentence {n} about lighthouses and ships. " * 40 for n in range(30))
    (folder / "long.md").write_text(long_text, encoding="utf-8")
    (folder / "lighthouses.md").write_text(NOTE, encoding="utf-8")
    with Collection.create("chunks", store_dir=tmp_path / "home") as col:
        loaders = LoaderSet(col.config.loader, limits=FileLimits(max_chunks_per_file=5))
        pipeline = IngestPipeline(loaders, col.splitter, col.embedder, col.store, batch_size=2)
        report = pipeline.run([folder])
        assert report.added == 1 and len(report.failed) == 1, report.summary()
        assert report.failed[0].source == "long.md"
        assert "more chunks than the max_chunks_per_file limit of 5" in report.failed[0].reason
        assert set(col.store.sources()) == {"lighthouses.md"}
        kept = [c for batch in col.store.iter_chunks() for c in batch]
        assert kept and all(c.source == "lighthouses.md" for c in kept), "no chunk of long.md stays"


def test_limits_are_collection_loader_options_and_a_loaders_own_value_wins(tmp_path: Path) -> None:
    """`loader: {max_member_bytes: ..., max_chunks_per_file: ...}` in a collection's config bounds its ingests."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    bomb(folder / "small-bomb.docx", unpacked=2_000_000)  # under the default limits' sizes, over 1 MB
    bomb(folder / "deck.pptx", unpacked=2_000_000)
    long_text = "\n\n".join(f"## Part {n}\n\n" + f"Sentence {n} about lighthouses and ships. " * 40 for n in range(30))
    (folder / "long.md").write_text(long_text, encoding="utf-8")
    (folder / "lighthouses.md").write_text(NOTE, encoding="utf-8")
    config = {
        "loader": {
            "max_member_bytes": 1_000_000,
            "max_compression_ratio": None,
            "max_chunks_per_file": 5,
            "loaders": {".docx": {"type": "docx", "max_member_bytes": None}},  # Word files: this loader's own value
        }
    }
    with Collection.create("collection-limits", config, store_dir=tmp_path / "home") as col:
        report = col.ingest(folder)
    reasons = {failure.source: failure.reason for failure in report.failed}
    assert set(reasons) == {"deck.pptx", "long.md", "small-bomb.docx"}, report.summary()
    assert "max_member_bytes limit of 1,000,000" in reasons["deck.pptx"]
    assert "max_chunks_per_file limit of 5" in reasons["long.md"]
    # the Word file passed its archive check under its loader's lifted limit, was read, and then gave too many chunks
    assert "max_chunks_per_file limit of 5" in reasons["small-bomb.docx"], reasons["small-bomb.docx"]
    assert report.added == 1  # lighthouses.md

    with pytest.raises(ConfigError, match="max_chunks_per_file"):
        Collection.create("bad-limits", {"loader": {"max_chunks_per_file": 0}}, store_dir=tmp_path / "home")
