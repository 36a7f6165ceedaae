"""Loaders: every built-in format from real files, decoding, bad input, LoaderSet, round trips."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ragkit import registry
from ragkit.config import LoaderOptions
from ragkit.errors import ConfigError, LoaderError
from ragkit.hashing import document_id
from ragkit.loaders import (
    BUILTIN_LOADERS,
    BaseLoader,
    CsvLoader,
    DocxLoader,
    HtmlLoader,
    JsonlLoader,
    JsonLoader,
    LoaderSet,
    MarkdownLoader,
    PdfLoader,
    SourceFile,
    TextLoader,
    UnsupportedFileError,
    discover,
)
from ragkit.schema import Document

# ---------------------------------------------------------------- helpers


def source_of(path: Path) -> str:
    return path.resolve().as_posix()


def load(loader: BaseLoader, path: Path) -> list[Document]:
    return list(loader.load(path, source_of(path)))


def source_file(path: Path) -> SourceFile:
    stat = path.stat()
    return SourceFile(path=path, source=source_of(path), size=stat.st_size, mtime=stat.st_mtime, relative=path.name)


def make_pdf(path: Path, pages: list[str | None], title: str | None = None) -> Path:
    """A real PDF via reportlab; ``None`` makes a page with a drawing but no text."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4)
    if title:
        pdf.setTitle(title)
    for text in pages:
        if text is None:
            pdf.rect(100, 100, 200, 200, fill=1)
        else:
            y = 780
            for line in text.split("\n"):
                pdf.drawString(72, y, line)
                y -= 16
        pdf.showPage()
    pdf.save()
    return path


def make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = "Quarterly Report"
    document.add_heading("Overview", level=1)
    document.add_paragraph("Revenue grew in every region this quarter.")
    document.add_heading("Details by region", level=2)
    document.add_paragraph("North led the growth.", style="List Bullet")
    table = document.add_table(rows=3, cols=2)
    for row, (region, value) in enumerate([("Region", "Revenue"), ("North", "120"), ("South", "80")]):
        table.cell(row, 0).text = region
        table.cell(row, 1).text = value
    document.add_paragraph("Closing remarks after the table.")
    document.save(str(path))
    return path


# ---------------------------------------------------------------- formats


class TestText:
    def test_plain_text(self, tmp_path: Path) -> None:
        path = tmp_path / "notes.txt"
        path.write_text("first line\n\nsecond paragraph – with ünïcode\n", encoding="utf-8")
        (doc,) = load(TextLoader(), path)
        assert doc.text == "first line\n\nsecond paragraph – with ünïcode\n"
        assert doc.id == document_id(source_of(path))
        assert doc.source == source_of(path)
        assert doc.metadata == {
            "source": source_of(path),
            "file_name": "notes.txt",
            "file_type": "txt",
            "encoding": "utf-8",
        }
        assert doc.content_hash

    def test_markdown_front_matter_and_title(self, tmp_path: Path) -> None:
        path = tmp_path / "guide.md"
        path.write_text(
            "---\nauthor: Ada\nyear: 2024\ndate: 2024-03-01\ntags: [a, b]\nsource: spoofed\n---\n"
            "Intro text.\n\n```\n# not a heading\n```\n\n## Getting started\n\nBody.\n",
            encoding="utf-8",
        )
        (doc,) = load(MarkdownLoader(), path)
        assert doc.text.startswith("Intro text.")
        assert "author:" not in doc.text
        assert doc.metadata["title"] == "Getting started"
        assert doc.metadata["author"] == "Ada"
        assert doc.metadata["year"] == 2024
        assert doc.metadata["date"] == "2024-03-01"
        assert "tags" not in doc.metadata  # scalars only
        assert doc.metadata["source"] == source_of(path)  # reserved keys are not overridden
        assert doc.metadata["file_type"] == "md"

    def test_markdown_front_matter_title_wins_and_setext(self, tmp_path: Path) -> None:
        path = tmp_path / "a.md"
        path.write_text("Big Title\n=========\n\ntext\n", encoding="utf-8")
        assert load(MarkdownLoader(), path)[0].metadata["title"] == "Big Title"
        path.write_text("---\ntitle: From matter\n---\n# Heading\n", encoding="utf-8")
        assert load(MarkdownLoader(), path)[0].metadata["title"] == "From matter"

    def test_markdown_bad_front_matter_is_left_in_text(self, tmp_path: Path) -> None:
        path = tmp_path / "a.md"
        path.write_text("---\n: : not yaml [\n---\n# H\n", encoding="utf-8")
        (doc,) = load(MarkdownLoader(), path)
        assert doc.text == "---\n: : not yaml [\n---\n# H\n"
        assert set(doc.metadata) == {"source", "file_name", "file_type", "encoding", "title"}

    def test_markdown_front_matter_can_be_kept(self, tmp_path: Path) -> None:
        path = tmp_path / "a.md"
        path.write_text("---\nauthor: Ada\n---\n# H\n", encoding="utf-8")
        (doc,) = load(MarkdownLoader(front_matter=False), path)
        assert doc.text.startswith("---\nauthor: Ada")
        assert "author" not in doc.metadata


class TestHtml:
    PAGE = """<!DOCTYPE html>
<html><head><title> The  Page </title><style>body { color: red }</style>
<script>var hidden = "script text";</script></head>
<body>
<nav><a href="/">Home</a> | <a href="/x">Menu item</a></nav>
<h1>Main   heading</h1>
<p>First <b>bold</b> paragraph
   spread over lines.</p>
<h2>Sub heading</h2>
<ul><li>one</li><li>two</li></ul>
<table><tr><th>Name</th><th>Age</th></tr><tr><td>Ann</td><td>31</td></tr></table>
<pre>code  keeps   spacing</pre>
<p>Line<br>break</p>
<noscript>enable js</noscript>
</body></html>"""

    def test_html_to_markdownish_text(self, tmp_path: Path) -> None:
        path = tmp_path / "page.html"
        path.write_text(self.PAGE, encoding="utf-8")
        (doc,) = load(HtmlLoader(), path)
        assert doc.metadata["title"] == "The Page"
        assert doc.metadata["file_type"] == "html"
        text = doc.text
        assert "# Main heading" in text.splitlines()
        assert "## Sub heading" in text.splitlines()
        assert "First bold paragraph spread over lines." in text
        assert "- one\n\n- two" in text
        assert "Name | Age\nAnn | 31" in text
        assert "code  keeps   spacing" in text
        assert "Line\nbreak" in text
        for dropped in ("script text", "color: red", "Menu item", "enable js"):
            assert dropped not in text

    def test_html_declared_charset(self, tmp_path: Path) -> None:
        path = tmp_path / "legacy.htm"
        path.write_bytes(
            '<html><head><meta charset="iso-8859-1"></head><body><p>Olá, café</p></body></html>'.encode("latin-1")
        )
        (doc,) = load(HtmlLoader(), path)
        assert "Olá, café" in doc.text
        assert doc.metadata["encoding"] in {"iso8859-1", "latin_1", "iso8859_1"}


class TestPdf:
    def test_pages_and_numbers(self, tmp_path: Path) -> None:
        path = make_pdf(tmp_path / "report.pdf", ["Alpha page one text", None, "Gamma page three text"], title="Report")
        docs = load(PdfLoader(), path)
        assert [d.metadata["page"] for d in docs] == [1, 3]  # the page without text is skipped
        assert all(d.metadata["page_count"] == 3 for d in docs)
        assert "Alpha page one" in docs[0].text
        assert "Gamma page three" in docs[1].text
        assert docs[0].id == document_id(f"{source_of(path)}#page=1")
        assert docs[1].id == document_id(f"{source_of(path)}#page=3")
        assert docs[0].metadata["title"] == "Report"
        assert docs[0].metadata["file_type"] == "pdf"

    @pytest.mark.parametrize("engine", ["pypdf", "pypdfium2"])
    def test_engines(self, tmp_path: Path, engine: str) -> None:
        if engine == "pypdfium2":
            pytest.importorskip("pypdfium2", reason="pypdfium2 is an optional second PDF engine")
        path = make_pdf(tmp_path / "two.pdf", ["first page", "second page"])
        docs = load(PdfLoader(engine=engine), path)  # type: ignore[arg-type]
        assert [d.metadata["page"] for d in docs] == [1, 2]
        assert "second page" in docs[1].text

    def test_falls_back_to_pypdfium2(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        pytest.importorskip("pypdfium2", reason="pypdfium2 is an optional second PDF engine")
        from ragkit.loaders import pdf as pdf_module

        def broken(path: Path) -> Any:
            raise pdf_module._Unreadable("pypdf: simulated failure")

        monkeypatch.setattr(pdf_module, "_pypdf_pages", broken)
        path = make_pdf(tmp_path / "fallback.pdf", ["rescued by pdfium"])
        (doc,) = load(PdfLoader(), path)
        assert "rescued by pdfium" in doc.text
        with pytest.raises(LoaderError, match=r"not a readable PDF.*pypdf: simulated failure"):
            load(PdfLoader(engine="pypdf"), path)

    def test_scanned_pdf_has_no_text(self, tmp_path: Path) -> None:
        path = make_pdf(tmp_path / "scan.pdf", [None, None])
        with pytest.raises(LoaderError, match=r"no extractable text \(scanned PDF\?\)") as info:
            load(PdfLoader(), path)
        assert str(path) in str(info.value)

    def test_encrypted_pdf(self, tmp_path: Path) -> None:
        import pypdf

        plain = make_pdf(tmp_path / "plain.pdf", ["secret text"])
        writer = pypdf.PdfWriter(clone_from=str(plain))
        writer.encrypt(user_password="pw", owner_password="owner", algorithm="RC4-128")
        path = tmp_path / "locked.pdf"
        with path.open("wb") as handle:
            writer.write(handle)
        with pytest.raises(LoaderError, match="encrypted") as info:
            load(PdfLoader(), path)
        assert str(path) in str(info.value)

    def test_bad_engine_option(self) -> None:
        with pytest.raises(ConfigError, match="engine"):
            PdfLoader(engine="ocr")  # type: ignore[arg-type]


class TestDocx:
    def test_headings_tables_and_title(self, tmp_path: Path) -> None:
        path = make_docx(tmp_path / "report.docx")
        (doc,) = load(DocxLoader(), path)
        assert doc.metadata["title"] == "Quarterly Report"
        assert doc.metadata["file_type"] == "docx"
        assert doc.id == document_id(source_of(path))
        blocks = doc.text.split("\n\n")
        assert blocks[0] == "# Overview"
        assert blocks[1] == "Revenue grew in every region this quarter."
        assert blocks[2] == "## Details by region"
        assert blocks[3] == "- North led the growth."
        assert blocks[4] == "Region | Revenue\nNorth | 120\nSouth | 80"
        assert blocks[5] == "Closing remarks after the table."

    def test_corrupt_docx(self, tmp_path: Path) -> None:
        path = tmp_path / "broken.docx"
        path.write_bytes(b"PK\x03\x04 this is not really a zip archive")
        with pytest.raises(LoaderError, match=r"not a valid \.docx") as info:
            load(DocxLoader(), path)
        assert str(path) in str(info.value)


class TestJson:
    RECORDS: ClassVar[list[dict[str, Any]]] = [
        {"id": "a1", "body": {"text": "first body"}, "lang": "en", "stars": 4, "tags": ["x"]},
        {"id": "b2", "body": {"text": "second body"}, "lang": "fr", "stars": 5},
        {"id": "c3", "body": {"text": ""}, "lang": "de"},
    ]

    def test_array_with_dotted_text_field(self, tmp_path: Path) -> None:
        path = tmp_path / "records.json"
        path.write_text(json.dumps(self.RECORDS), encoding="utf-8")
        docs = load(JsonLoader(text_field="body.text"), path)
        assert [d.text for d in docs] == ["first body", "second body"]  # empty text skipped
        assert docs[0].metadata["lang"] == "en"
        assert docs[0].metadata["stars"] == 4
        assert docs[0].metadata["id"] == "a1"
        assert "tags" not in docs[0].metadata  # only scalars by default
        assert "body" not in docs[0].metadata
        assert docs[0].metadata["item"] == 0
        assert docs[1].id == document_id(f"{source_of(path)}#item=1")

    def test_metadata_fields_and_id_field(self, tmp_path: Path) -> None:
        path = tmp_path / "records.json"
        path.write_text(json.dumps(self.RECORDS), encoding="utf-8")
        docs = load(JsonLoader(text_field="body.text", metadata_fields=["lang"], id_field="id"), path)
        assert set(docs[0].metadata) == {
            "source",
            "file_name",
            "file_type",
            "encoding",
            "item",
            "row",
            "lang",
            "record_id",
        }
        assert docs[1].id == document_id(f"{source_of(path)}#id=b2")
        # ids follow the record, not its position
        path.write_text(json.dumps(list(reversed(self.RECORDS))), encoding="utf-8")
        again = load(JsonLoader(text_field="body.text", metadata_fields=["lang"], id_field="id"), path)
        assert {d.id for d in again} == {d.id for d in docs}

    def test_single_object_and_strings(self, tmp_path: Path) -> None:
        path = tmp_path / "one.json"
        path.write_text(json.dumps({"text": "just one", "kind": "note"}), encoding="utf-8")
        (doc,) = load(JsonLoader(), path)
        assert doc.text == "just one"
        assert doc.id == document_id(source_of(path))
        assert doc.metadata["kind"] == "note"
        path.write_text(json.dumps(["alpha", "beta"]), encoding="utf-8")
        assert [d.text for d in load(JsonLoader(), path)] == ["alpha", "beta"]

    def test_missing_text_field_names_item(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.json"
        path.write_text(json.dumps([{"text": "ok"}, {"content": "no text"}]), encoding="utf-8")
        with pytest.raises(LoaderError, match=r"item 1: no field 'text'.*fields present: content") as info:
            load(JsonLoader(), path)
        assert str(path) in str(info.value)

    def test_invalid_json(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.json"
        path.write_text('{"text": "unterminated', encoding="utf-8")
        with pytest.raises(LoaderError, match="invalid JSON at line 1"):
            load(JsonLoader(), path)

    def test_duplicate_id(self, tmp_path: Path) -> None:
        path = tmp_path / "dup.json"
        path.write_text(json.dumps([{"id": 1, "text": "a"}, {"id": 1, "text": "b"}]), encoding="utf-8")
        with pytest.raises(LoaderError, match=r"item 1: duplicate id '1' \(also at item 0\)"):
            load(JsonLoader(id_field="id"), path)

    def test_bad_options(self) -> None:
        with pytest.raises(ConfigError, match="text_field"):
            JsonLoader(text_field="")
        with pytest.raises(ConfigError, match="metadata_fields"):
            JsonLoader(metadata_fields="lang")  # type: ignore[arg-type]


class TestJsonl:
    def test_lines(self, tmp_path: Path) -> None:
        path = tmp_path / "data.jsonl"
        path.write_text('{"text": "one", "n": 1}\n\n   \n{"text": "two", "n": 2}\n{"text": "three"}', encoding="utf-8")
        docs = load(JsonlLoader(), path)
        assert [d.text for d in docs] == ["one", "two", "three"]
        assert [d.metadata["line"] for d in docs] == [1, 4, 5]
        assert docs[1].id == document_id(f"{source_of(path)}#line=4")
        assert docs[1].metadata["n"] == 2

    def test_bad_line_fails_the_file_naming_the_line(self, tmp_path: Path) -> None:
        path = tmp_path / "data.jsonl"
        path.write_text('{"text": "one"}\n{"text": "two"}\n{oops}\n{"text": "four"}\n', encoding="utf-8")
        with pytest.raises(LoaderError, match=r"line 3: invalid JSON") as info:
            load(JsonlLoader(), path)
        assert str(path) in str(info.value)

    def test_id_field(self, tmp_path: Path) -> None:
        path = tmp_path / "data.jsonl"
        path.write_text('{"doc": "x1", "content": "hello"}\n', encoding="utf-8")
        (doc,) = load(JsonlLoader(text_field="content", id_field="doc"), path)
        assert doc.id == document_id(f"{source_of(path)}#id=x1")


class TestCsv:
    def test_rows(self, tmp_path: Path) -> None:
        path = tmp_path / "people.csv"
        path.write_text("name,city,age,zip\nAnn,Oslo,31,0150\nBob,,45,2000\n,,,\n", encoding="utf-8")
        docs = load(CsvLoader(metadata_columns=["age", "zip"]), path)
        assert len(docs) == 2  # the empty row is skipped
        assert docs[0].text == "name: Ann\ncity: Oslo\nage: 31\nzip: 0150"
        assert docs[1].text == "name: Bob\nage: 45\nzip: 2000"
        assert docs[0].metadata["row"] == 1
        assert docs[0].metadata["age"] == 31
        assert docs[0].metadata["zip"] == "0150"  # leading zeros keep it a string
        assert docs[1].metadata["zip"] == 2000
        assert docs[1].id == document_id(f"{source_of(path)}#row=2")

    def test_text_columns_and_sniffed_delimiter(self, tmp_path: Path) -> None:
        path = tmp_path / "semi.csv"
        path.write_text('title;body;year\nA;"Body, with comma";2020\nB;Second body;2021\n', encoding="utf-8")
        docs = load(CsvLoader(text_columns=["body"], metadata_columns=["title", "year"]), path)
        assert [d.text for d in docs] == ["body: Body, with comma", "body: Second body"]
        assert docs[1].metadata["title"] == "B"
        assert docs[1].metadata["year"] == 2021

    def test_tsv(self, tmp_path: Path) -> None:
        path = tmp_path / "t.tsv"
        path.write_text("a\tb\n1\t2\n", encoding="utf-8")
        (doc,) = load(CsvLoader(), path)
        assert doc.text == "a: 1\nb: 2"
        assert doc.metadata["file_type"] == "tsv"

    def test_file_mode(self, tmp_path: Path) -> None:
        path = tmp_path / "whole.csv"
        path.write_text("a,b\n1,2\n3,4\n", encoding="utf-8")
        (doc,) = load(CsvLoader(mode="file"), path)
        assert doc.text == "a,b\n1,2\n3,4\n"
        assert doc.id == document_id(source_of(path))

    def test_unknown_column(self, tmp_path: Path) -> None:
        path = tmp_path / "x.csv"
        path.write_text("a,b\n1,2\n", encoding="utf-8")
        with pytest.raises(LoaderError, match=r"no column\(s\) 'c'; the header has: a, b"):
            load(CsvLoader(text_columns=["c"]), path)

    def test_bad_options(self) -> None:
        with pytest.raises(ConfigError, match="mode"):
            CsvLoader(mode="rows")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="delimiter"):
            CsvLoader(delimiter=";;")


# ---------------------------------------------------------------- decoding


class TestDecoding:
    def test_latin1_is_detected(self, tmp_path: Path) -> None:
        path = tmp_path / "legacy.txt"
        text = "Le café était très bon à Montréal, déjà vu.\nGrüße aus München.\n"
        path.write_bytes(text.encode("latin-1"))
        (doc,) = load(TextLoader(), path)
        assert doc.text == text
        assert doc.metadata["encoding"] in {"cp1252", "latin_1", "iso8859_15"}

    def test_cp1251_is_detected(self, tmp_path: Path) -> None:
        path = tmp_path / "ru.txt"
        text = "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 5
        path.write_bytes(text.encode("cp1251"))
        (doc,) = load(TextLoader(), path)
        assert doc.text == text

    @pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-32"])
    def test_byte_order_marks(self, tmp_path: Path, codec: str) -> None:
        path = tmp_path / "bom.txt"
        path.write_bytes("héllo wörld".encode(codec))
        (doc,) = load(TextLoader(), path)
        assert doc.text == "héllo wörld"

    def test_forced_encoding(self, tmp_path: Path) -> None:
        path = tmp_path / "forced.txt"
        path.write_bytes("naïve".encode("cp1252"))
        (doc,) = load(TextLoader(encoding="cp1252"), path)
        assert doc.text == "naïve"
        assert doc.metadata["encoding"] == "cp1252"

    def test_forced_encoding_fails_clearly(self, tmp_path: Path) -> None:
        path = tmp_path / "forced.txt"
        path.write_bytes(b"abc\xffdef")
        with pytest.raises(LoaderError, match=r"cannot decode as utf-8: invalid byte 0xff at byte offset 3") as info:
            load(TextLoader(encoding="utf-8"), path)
        assert str(path) in str(info.value)

    def test_unknown_encoding_option(self) -> None:
        with pytest.raises(ConfigError, match="unknown text encoding 'klingon'"):
            TextLoader(encoding="klingon")

    def test_undecodable_bytes_name_the_offset(self, tmp_path: Path) -> None:
        path = tmp_path / "noise.txt"
        path.write_bytes(b"valid start " + bytes(range(0x80, 0x100)) * 40)
        with pytest.raises(
            LoaderError, match=r"not valid UTF-8 \(first bad byte 0x80 at byte offset 12\).*binary"
        ) as info:
            load(TextLoader(), path)
        assert str(path) in str(info.value)

    def test_nul_bytes_mean_binary(self, tmp_path: Path) -> None:
        path = tmp_path / "image.txt"
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(2000))
        with pytest.raises(LoaderError, match="looks like a binary file, not text"):
            load(TextLoader(), path)

    @pytest.mark.parametrize("loader", [MarkdownLoader(), HtmlLoader(), JsonLoader(), JsonlLoader(), CsvLoader()])
    def test_every_text_loader_refuses_binary(self, tmp_path: Path, loader: BaseLoader) -> None:
        path = tmp_path / f"blob{loader.extensions[0]}"
        path.write_bytes(b"\x00\x01\x02binary\x00" * 100)
        with pytest.raises(LoaderError, match="looks like a binary file") as info:
            load(loader, path)
        assert str(path) in str(info.value)


# ---------------------------------------------------------------- large text files


class TestStreaming:
    def test_parts_cut_at_paragraphs(self, tmp_path: Path) -> None:
        path = tmp_path / "big.txt"
        paragraphs = [f"Paragraph {i}: " + "word " * (i % 17 + 3) for i in range(400)]
        text = "\n\n".join(paragraphs) + "\n"
        path.write_text(text, encoding="utf-8")
        loader = TextLoader(stream_threshold_bytes=2048)
        docs = load(loader, path)
        assert len(docs) > 5
        assert "".join(d.text for d in docs) == text
        offset = 0
        for number, doc in enumerate(docs):
            assert doc.metadata["part"] == number
            assert doc.metadata["part_offset"] == offset
            assert text[offset : offset + len(doc.text)] == doc.text
            assert doc.id == document_id(f"{source_of(path)}#part={number}")
            assert len(doc.text) <= 2048
            offset += len(doc.text)
        for doc in docs[:-1]:
            assert doc.text.endswith("\n\n")  # cut at a paragraph boundary

    def test_no_newlines_at_all(self, tmp_path: Path) -> None:
        path = tmp_path / "one-line.txt"
        text = "x" * 5000
        path.write_text(text, encoding="utf-8")
        docs = load(TextLoader(stream_threshold_bytes=1024), path)
        assert "".join(d.text for d in docs) == text
        assert all(len(d.text) <= 1024 for d in docs)

    def test_multibyte_characters_across_reads(self, tmp_path: Path) -> None:
        path = tmp_path / "utf8.txt"
        text = "Ünïcödé — 日本語のテキスト 🙂\n" * 3000
        path.write_text(text, encoding="utf-8")
        docs = load(TextLoader(stream_threshold_bytes=4096), path)
        assert "".join(d.text for d in docs) == text

    def test_bad_byte_late_in_a_streamed_file(self, tmp_path: Path) -> None:
        path = tmp_path / "late.txt"
        good = ("fine text line\n" * 200_000).encode()  # 3 MB of valid UTF-8
        path.write_bytes(good + b"\xff tail\n")
        with pytest.raises(LoaderError, match=rf"invalid byte 0xff at byte offset {len(good)}") as info:
            list(TextLoader(stream_threshold_bytes=1 << 20).load(path, source_of(path)))
        assert str(path) in str(info.value)

    @pytest.mark.slow
    def test_200_mb_file_streams_in_bounded_memory(self, tmp_path: Path) -> None:
        import hashlib
        import tracemalloc

        path = tmp_path / "huge.txt"
        block = "".join(f"Line {i} of a paragraph about streaming large files.\n" for i in range(40)) + "\n"
        block_bytes = block.encode()
        repeats = (200 * 1024 * 1024) // len(block_bytes) + 1
        expected = hashlib.sha256()
        with path.open("wb") as handle:
            chunk = block_bytes * 1000
            written = 0
            while written < repeats:
                count = min(1000, repeats - written)
                data = chunk if count == 1000 else block_bytes * count
                handle.write(data)
                expected.update(data)
                written += count
        size = path.stat().st_size
        assert size >= 200 * 1024 * 1024

        loader = TextLoader()  # default threshold: 8 MiB
        got = hashlib.sha256()
        total = 0
        parts = 0
        tracemalloc.start()
        try:
            for doc in loader.load(path, source_of(path)):
                assert doc.metadata["part"] == parts
                assert doc.metadata["part_offset"] == total
                assert doc.text is not None
                got.update(doc.text.encode())
                total += len(doc.text)
                parts += 1
                del doc
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert total == size  # ASCII: characters == bytes
        assert got.hexdigest() == expected.hexdigest()
        assert parts >= 200 // 8
        assert peak < 80 * 1024 * 1024, f"peak traced memory {peak / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB file"


# ---------------------------------------------------------------- discovery


def build_tree(root: Path) -> None:
    files = {
        "a.md": "# a",
        "b.txt": "b",
        "docs/c.md": "# c",
        "docs/deep/d.md": "# d",
        "docs/deep/e.pdf": "%PDF",
        "drafts/f.md": "# f",
        ".hidden.md": "# hidden",
        ".git/config.txt": "git",
        "docs/.secret/g.md": "# g",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def relatives(found: Iterator[SourceFile]) -> list[str]:
    return [f.relative for f in found]


class TestDiscover:
    def test_defaults_skip_hidden_and_sort(self, tmp_path: Path) -> None:
        build_tree(tmp_path)
        found = list(discover([tmp_path], LoaderOptions()))
        assert [f.relative for f in found] == [
            "a.md",
            "b.txt",
            "docs/c.md",
            "docs/deep/d.md",
            "docs/deep/e.pdf",
            "drafts/f.md",
        ]
        first = found[0]
        assert first.source == "a.md"  # relative to the folder walked
        assert first.resolved == (tmp_path / "a.md").resolve().as_posix()
        assert first.uri == (tmp_path / "a.md").absolute().as_uri()
        assert first.size == 3
        assert first.mtime == pytest.approx((tmp_path / "a.md").stat().st_mtime)
        assert first.path.is_absolute()

    def test_include_hidden(self, tmp_path: Path) -> None:
        build_tree(tmp_path)
        found = relatives(discover([tmp_path], LoaderOptions(include_hidden=True)))
        assert ".hidden.md" in found
        assert ".git/config.txt" in found
        assert "docs/.secret/g.md" in found

    def test_globs(self, tmp_path: Path) -> None:
        build_tree(tmp_path)
        assert relatives(discover([tmp_path], LoaderOptions(include=["**/*.md"], exclude=["drafts/**"]))) == [
            "a.md",
            "docs/c.md",
            "docs/deep/d.md",
        ]
        assert relatives(discover([tmp_path], LoaderOptions(include=["docs/**/*.md"]))) == [
            "docs/c.md",
            "docs/deep/d.md",
        ]
        # a pattern without a slash matches the file name at any depth
        assert relatives(discover([tmp_path], LoaderOptions(include=["*.pdf"]))) == ["docs/deep/e.pdf"]
        assert relatives(discover([tmp_path], LoaderOptions(exclude=["deep", "*.txt"]))) == [
            "a.md",
            "docs/c.md",
            "drafts/f.md",
        ]
        assert relatives(discover([tmp_path], LoaderOptions(include=["[ab].*"]))) == ["a.md", "b.txt"]

    def test_single_file_and_several_roots(self, tmp_path: Path) -> None:
        build_tree(tmp_path)
        hidden = tmp_path / ".hidden.md"
        found = list(discover([hidden, tmp_path / "docs", str(tmp_path / "docs" / "c.md")], LoaderOptions()))
        # named directly: taken although hidden; the same file is not yielded twice
        assert [f.relative for f in found] == [".hidden.md", "c.md", "deep/d.md", "deep/e.pdf"]
        assert list(discover([hidden], LoaderOptions(exclude=["*.md"]))) == []

    def test_missing_path(self, tmp_path: Path) -> None:
        with pytest.raises(Exception, match=r"no-such-folder: does not exist \(no such file or folder\)") as info:
            discover([tmp_path / "no-such-folder"], LoaderOptions())
        from ragkit.errors import InputError

        assert isinstance(info.value, InputError)

    def test_symlinks_skipped_by_default(self, tmp_path: Path) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "x.md").write_text("# x", encoding="utf-8")
        root = tmp_path / "root"
        root.mkdir()
        (root / "real.md").write_text("# real", encoding="utf-8")
        (root / "linked-dir").symlink_to(outside, target_is_directory=True)
        (root / "linked-file.md").symlink_to(outside / "x.md")
        (root / "broken.md").symlink_to(tmp_path / "missing.md")
        assert relatives(discover([root], LoaderOptions())) == ["real.md"]

        found = list(discover([root], LoaderOptions(follow_symlinks=True)))
        # the same target reached twice comes once; the broken link is skipped
        assert [f.relative for f in found] == ["linked-dir/x.md", "real.md"]
        assert found[0].source == "linked-dir/x.md"
        assert found[0].resolved == (outside / "x.md").resolve().as_posix()

    def test_symlink_loop(self, tmp_path: Path) -> None:
        root = tmp_path / "root"
        (root / "sub").mkdir(parents=True)
        (root / "sub" / "a.txt").write_text("a", encoding="utf-8")
        (root / "sub" / "up").symlink_to(root, target_is_directory=True)
        (root / "self").symlink_to(root / "self")  # a link to itself
        assert relatives(discover([root], LoaderOptions(follow_symlinks=True))) == ["sub/a.txt"]

    def test_accepts_a_single_path(self, tmp_path: Path) -> None:
        (tmp_path / "a.txt").write_text("a", encoding="utf-8")
        assert relatives(discover(tmp_path, LoaderOptions())) == ["a.txt"]


# ---------------------------------------------------------------- LoaderSet and bad input


class TestLoaderSet:
    def test_builtin_selection_is_case_insensitive(self) -> None:
        loaders = LoaderSet(LoaderOptions())
        assert isinstance(loaders.loader_for(Path("x/REPORT.PDF")), PdfLoader)
        assert isinstance(loaders.loader_for(Path("a.markdown")), MarkdownLoader)
        assert isinstance(loaders.loader_for(Path("a.ndjson")), JsonlLoader)
        assert {".txt", ".md", ".html", ".pdf", ".docx", ".json", ".jsonl", ".csv"} <= set(loaders.supported_suffixes())

    def test_unknown_suffix(self) -> None:
        loaders = LoaderSet(LoaderOptions())
        with pytest.raises(
            UnsupportedFileError, match=r"the suffix '\.xyz' is not supported; supported suffixes: .*\.csv.*\.pdf"
        ) as info:
            loaders.loader_for(Path("/data/thing.xyz"))
        assert isinstance(info.value, LoaderError)
        assert "/data/thing.xyz" in str(info.value)
        with pytest.raises(UnsupportedFileError, match="no suffix"):
            loaders.loader_for(Path("Makefile"))

    def test_overrides(self, tmp_path: Path) -> None:
        options = LoaderOptions(
            loaders={
                ".json": {"type": "json", "text_field": "body"},
                ".log": {"type": "text"},
                ".TXT": {"type": "markdown"},
            }
        )
        loaders = LoaderSet(options)
        json_loader = loaders.loader_for(Path("a.json"))
        assert isinstance(json_loader, JsonLoader)
        assert json_loader.text_field == "body"
        assert isinstance(loaders.loader_for(Path("server.log")), TextLoader)
        assert isinstance(loaders.loader_for(Path("notes.txt")), MarkdownLoader)
        assert ".log" in loaders.supported_suffixes()

        path = tmp_path / "a.json"
        path.write_text(json.dumps([{"body": "from body"}]), encoding="utf-8")
        assert [d.text for d in loaders.load(source_file(path))] == ["from body"]

    def test_bad_override_fails_when_built(self) -> None:
        with pytest.raises(ConfigError, match=r"loader override for '\.json'.*unknown option\(s\) nope"):
            LoaderSet(LoaderOptions(loaders={".json": {"type": "json", "nope": 1}}))
        with pytest.raises(ConfigError, match="no loader named 'nonesuch'"):
            LoaderSet(LoaderOptions(loaders={".x": {"type": "nonesuch"}}))

    def test_registered_third_party_loader(self, tmp_path: Path) -> None:
        @registry.register("loader", "test-shout")
        class ShoutLoader(BaseLoader):
            extensions = (".shout", ".txt")  # .txt stays with the built-in

            def load(self, path: Path, source: str) -> Iterator[Document]:
                text = path.read_text(encoding="utf-8").upper()
                yield self.make_document(source, text, self.base_metadata(path, source))

        loaders = LoaderSet(LoaderOptions())
        assert isinstance(loaders.loader_for(Path("a.shout")), ShoutLoader)
        assert isinstance(loaders.loader_for(Path("a.txt")), TextLoader)
        assert ".shout" in loaders.supported_suffixes()
        path = tmp_path / "x.shout"
        path.write_text("hey", encoding="utf-8")
        assert [d.text for d in loaders.load(source_file(path))] == ["HEY"]

    def test_forced_encoding_reaches_loaders(self, tmp_path: Path) -> None:
        loaders = LoaderSet(LoaderOptions(encoding="cp1252", loaders={".log": {"type": "text"}}))
        assert loaders.loader_for(Path("a.txt")).to_config()["encoding"] == "cp1252"
        assert loaders.loader_for(Path("a.log")).to_config()["encoding"] == "cp1252"
        path = tmp_path / "x.txt"
        path.write_bytes("naïve".encode("cp1252"))
        assert [d.text for d in loaders.load(source_file(path))] == ["naïve"]

    def test_max_file_bytes(self, tmp_path: Path) -> None:
        path = tmp_path / "big.txt"
        path.write_text("x" * 100, encoding="utf-8")
        loaders = LoaderSet(LoaderOptions(max_file_bytes=10))
        with pytest.raises(LoaderError, match="100 bytes, over the max_file_bytes limit of 10") as info:
            list(loaders.load(source_file(path)))
        assert str(path) in str(info.value)

    def test_unexpected_exceptions_are_wrapped(self, tmp_path: Path) -> None:
        @registry.register("loader", "test-crash")
        class CrashLoader(BaseLoader):
            extensions = (".crash",)

            def load(self, path: Path, source: str) -> Iterator[Document]:
                raise ZeroDivisionError("boom")
                yield  # pragma: no cover

        path = tmp_path / "a.crash"
        path.write_text("x", encoding="utf-8")
        with pytest.raises(LoaderError, match=r"loader 'test-crash' failed: ZeroDivisionError: boom") as info:
            list(LoaderSet(LoaderOptions()).load(source_file(path)))
        assert str(path) in str(info.value)

    def test_aload(self, tmp_path: Path) -> None:
        path = tmp_path / "a.txt"
        path.write_text("async text", encoding="utf-8")
        docs = asyncio.run(TextLoader().aload(path, source_of(path)))
        assert [d.text for d in docs] == ["async text"]
        docs = asyncio.run(LoaderSet().aload(source_file(path)))
        assert [d.text for d in docs] == ["async text"]


class TestBadInputBatch:
    """Each bad file gives a clear LoaderError naming it; the good files still load."""

    def test_batch(self, tmp_path: Path) -> None:
        good_md = tmp_path / "good.md"
        good_md.write_text("# Good\n\ntext", encoding="utf-8")
        make_pdf(tmp_path / "good.pdf", ["a good pdf page"])
        (tmp_path / "corrupt.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage without xref")
        (tmp_path / "empty.txt").write_bytes(b"")
        (tmp_path / "binary.txt").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" + os.urandom(4096))
        (tmp_path / "unknown.xyz").write_text("who reads me?", encoding="utf-8")
        (tmp_path / "invalid-utf8.md").write_bytes(b"# Title\n" + bytes(range(0x80, 0x100)) * 20)
        (tmp_path / "latin1.txt").write_bytes("Café crème, s'il vous plaît, très chaud.".encode("latin-1"))
        truncated = tmp_path / "truncated.pdf"
        truncated.write_bytes((tmp_path / "good.pdf").read_bytes()[:200])

        loaders = LoaderSet(LoaderOptions())
        loaded: dict[str, list[Document]] = {}
        errors: dict[str, str] = {}
        for file in discover([tmp_path], LoaderOptions()):
            try:
                loaded[file.path.name] = list(loaders.load(file))
            except LoaderError as exc:
                assert exc.path == str(file.path)
                assert str(file.path) in str(exc)
                errors[file.path.name] = exc.reason

        assert set(loaded) == {"good.md", "good.pdf", "latin1.txt"}
        assert loaded["latin1.txt"][0].text == "Café crème, s'il vous plaît, très chaud."
        assert "not a readable PDF" in errors["corrupt.pdf"]
        assert "not a readable PDF" in errors["truncated.pdf"]
        assert errors["empty.txt"] == "file is empty"
        assert "looks like a binary file, not text" in errors["binary.txt"]
        assert "'.xyz' is not supported" in errors["unknown.xyz"]
        assert "not valid UTF-8 (first bad byte 0x80 at byte offset 8)" in errors["invalid-utf8.md"]

    def test_unreadable_file(self, tmp_path: Path) -> None:
        if os.geteuid() == 0:
            pytest.skip("root reads every file, so permissions cannot make one unreadable")
        path = tmp_path / "locked.txt"
        path.write_text("secret", encoding="utf-8")
        path.chmod(0)
        try:
            with pytest.raises(LoaderError, match="cannot read file: Permission denied"):
                list(LoaderSet().load(source_file(path)))
        finally:
            path.chmod(0o644)

    def test_permission_error_is_reported(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        path = tmp_path / "locked.md"
        path.write_text("# secret", encoding="utf-8")

        def deny(self: Path) -> bytes:
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(Path, "read_bytes", deny)
        with pytest.raises(LoaderError, match=r"locked\.md: cannot read file: Permission denied"):
            list(LoaderSet().load(source_file(path)))

    def test_vanished_file(self, tmp_path: Path) -> None:
        path = tmp_path / "gone.txt"
        path.write_text("soon gone", encoding="utf-8")
        file = source_file(path)
        path.unlink()
        with pytest.raises(LoaderError, match=r"gone\.txt: cannot read file: No such file or directory"):
            list(LoaderSet().load(file))


# ---------------------------------------------------------------- configs


NON_DEFAULT_CONFIGS: dict[str, dict[str, Any]] = {
    "text": {"encoding": "latin-1", "stream_threshold_bytes": 4096},
    "markdown": {"encoding": "utf-8", "front_matter": False},
    "html": {"encoding": "cp1252"},
    "pdf": {"engine": "pypdf"},
    "docx": {},
    "json": {"text_field": "body.text", "metadata_fields": ["a"], "id_field": "id", "encoding": None},
    "jsonl": {"text_field": "content", "metadata_fields": None, "id_field": None, "encoding": None},
    "csv": {"mode": "file", "text_columns": ["a"], "metadata_columns": ["b"], "delimiter": ";", "encoding": None},
}


@pytest.mark.parametrize("name", BUILTIN_LOADERS)
def test_config_round_trip(name: str) -> None:
    default = registry.build("loader", name)
    assert default.to_config()["type"] == name
    rebuilt = registry.build("loader", default.to_config())
    assert type(rebuilt) is type(default)
    assert rebuilt.to_config() == default.to_config()

    custom = registry.build("loader", {"type": name, **NON_DEFAULT_CONFIGS[name]})
    config = custom.to_config()
    assert registry.build("loader", config).to_config() == config
    json.dumps(config)  # plain data, ready for YAML/JSON


def test_every_builtin_is_registered_with_extensions() -> None:
    for name in BUILTIN_LOADERS:
        cls = registry.get("loader", name)
        assert issubclass(cls, BaseLoader)
        assert cls.extensions and all(s.startswith(".") and s == s.lower() for s in cls.extensions)
