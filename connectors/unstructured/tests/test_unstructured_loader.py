"""The unstructured loader on real files the tests make, with the network shut."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ragkit import registry
from ragkit.config import LoaderOptions
from ragkit.errors import LoaderError
from ragkit.hashing import document_id
from ragkit.loaders import LoaderSet, SourceFile, discover
from ragkit.schema import Document

INSTALL = "pip install -e 'connectors/unstructured[test]'"
pytest.importorskip("unstructured", reason=f"needs unstructured: {INSTALL}")
pytest.importorskip("ragkit_unstructured", reason=f"needs the connector installed: {INSTALL}")

from ragkit_unstructured import (  # noqa: E402
    NEEDS_LIBREOFFICE,
    NEEDS_PANDOC,
    UnstructuredLoader,
    libreoffice_path,
    pandoc_path,
)

HAS_PANDOC = pandoc_path() is not None
HAS_LIBREOFFICE = libreoffice_path() is not None
PANDOC_TEXT = "# Chapter One\n\nIt was a bright cold day in April.\n\n## The Plan\n\n- first item\n- second item\n"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every name lookup or connection attempt is recorded and refused; none may happen."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args[:2])
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.delenv("DO_NOT_TRACK", raising=False)
    monkeypatch.delenv("SCARF_NO_ANALYTICS", raising=False)
    yield attempts
    assert attempts == [], f"network was attempted: {attempts}"


def source_of(path: Path) -> str:
    return path.resolve().as_posix()


def load(path: Path, **options: Any) -> list[Document]:
    return list(UnstructuredLoader(**options).load(path, source_of(path)))


# ---------------------------------------------------------------- files


def make_pptx(path: Path) -> Path:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])
    first.shapes.title.text = "Quarterly results"
    first.placeholders[1].text = "Revenue grew by ten percent in every region."
    first.notes_slide.notes_text_frame.text = "Speaker note: mention the new office."
    second = deck.slides.add_slide(deck.slide_layouts[5])
    second.shapes.title.text = "Regional table"
    table = second.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(4), Inches(2)).table
    for row, (region, value) in enumerate([("Region", "Revenue"), ("North", "120"), ("South", "80")]):
        table.cell(row, 0).text = region
        table.cell(row, 1).text = value
    deck.slides.add_slide(deck.slide_layouts[6])  # a blank slide: no document
    deck.save(str(path))
    return path


def make_xlsx(path: Path) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sales"
    for row in [("Region", "Revenue"), ("North", 120), ("South", 80)]:
        sheet.append(row)
    book.create_sheet("Notes").append(["The forecast assumes steady demand."])
    book.save(str(path))
    return path


def make_eml(path: Path) -> Path:
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = "Project kickoff"
    message["From"] = "ann@example.com"
    message["To"] = "bob@example.com, cy@example.com"
    message["Date"] = "Mon, 02 Mar 2026 10:00:00 +0000"
    message.set_content("Hello Bob,\n\nThe kickoff meeting is on Monday at ten.\n\nAnn\n")
    message.add_attachment(b"%PDF-1.4 not read", maintype="application", subtype="pdf", filename="agenda.pdf")
    path.write_bytes(bytes(message))
    return path


def make_with_pandoc(path: Path) -> Path:
    import pypandoc

    fmt = {".epub": "epub", ".rtf": "rtf", ".odt": "odt", ".org": "org", ".rst": "rst"}[path.suffix]
    pypandoc.convert_text(
        PANDOC_TEXT, fmt, format="md", outputfile=str(path), extra_args=["--standalone", "--metadata=title:Book"]
    )
    return path


# ---------------------------------------------------------------- formats


def test_registered_through_the_entry_point() -> None:
    cls = registry.get("loader", "unstructured")
    assert cls is UnstructuredLoader
    loaders = LoaderSet(LoaderOptions())
    for suffix in (".pptx", ".xlsx", ".xls", ".eml", ".msg", ".epub", ".rtf", ".odt", ".doc", ".ppt", ".xml"):
        assert suffix in loaders.supported_suffixes()
        assert isinstance(loaders.loader_for(Path("x" + suffix)), UnstructuredLoader)
    # the core keeps the formats it reads itself
    assert type(loaders.loader_for(Path("a.docx"))).__name__ == "DocxLoader"
    assert type(loaders.loader_for(Path("a.html"))).__name__ == "HtmlLoader"


def test_config_round_trip() -> None:
    for loader in (UnstructuredLoader(), UnstructuredLoader(split_pages=False, include_slide_notes=False)):
        config = loader.to_config()
        assert config["type"] == "unstructured"
        assert registry.build("loader", config).to_config() == config


def test_pptx_one_document_per_slide(tmp_path: Path) -> None:
    path = make_pptx(tmp_path / "deck.pptx")
    docs = load(path)
    assert [d.metadata["page"] for d in docs] == [1, 2]  # the blank third slide gives no document
    first, second = docs
    assert "# Quarterly results" in first.text.split("\n\n")
    assert "Revenue grew by ten percent in every region." in first.text
    assert "Speaker note: mention the new office." in first.text
    assert first.metadata["title"] == "Quarterly results"
    assert first.metadata["file_type"] == "pptx"
    assert first.id == document_id(f"{source_of(path)}#page=1")
    assert "Region | Revenue\nNorth | 120\nSouth | 80" in second.text
    without_notes = load(path, include_slide_notes=False)
    assert "Speaker note" not in without_notes[0].text


def test_pptx_as_one_document(tmp_path: Path) -> None:
    path = make_pptx(tmp_path / "deck.pptx")
    (doc,) = load(path, split_pages=False)
    assert doc.id == document_id(source_of(path))
    assert "Quarterly results" in doc.text and "Regional table" in doc.text
    assert "page" not in doc.metadata


def test_xlsx_one_document_per_sheet(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "book.xlsx")
    docs = load(path)
    assert [(d.metadata["page"], d.metadata["sheet"]) for d in docs] == [(1, "Sales"), (2, "Notes")]
    assert docs[0].text == "Region | Revenue\nNorth | 120\nSouth | 80"
    assert "steady demand" in docs[1].text


def test_legacy_xls(tmp_path: Path) -> None:
    xlwt = pytest.importorskip("xlwt", reason="xlwt writes the .xls test file (pip install ragkit-unstructured[test])")
    book = xlwt.Workbook()
    sheet = book.add_sheet("Legacy")
    for col, value in enumerate(["Name", "Age"]):
        sheet.write(0, col, value)
    sheet.write(1, 0, "Ann")
    sheet.write(1, 1, 31)
    path = tmp_path / "old.xls"
    book.save(str(path))
    (doc,) = load(path)
    assert doc.metadata["sheet"] == "Legacy"
    assert "Name | Age" in doc.text and "Ann | 31" in doc.text


def test_eml(tmp_path: Path) -> None:
    path = make_eml(tmp_path / "mail.eml")
    (doc,) = load(path)
    assert "kickoff meeting is on Monday at ten" in doc.text
    assert doc.metadata["subject"] == "Project kickoff"
    assert doc.metadata["title"] == "Project kickoff"
    assert doc.metadata["sent_from"] == "ann@example.com"
    assert "bob@example.com" in doc.metadata["sent_to"]
    assert "not read" not in doc.text  # attachments are not partitioned


def test_xml(tmp_path: Path) -> None:
    path = tmp_path / "catalog.xml"
    path.write_text(
        "<?xml version='1.0'?><catalog><book><title>Parsing</title><desc>A book about parsing.</desc></book></catalog>",
        encoding="utf-8",
    )
    (doc,) = load(path)
    assert "A book about parsing." in doc.text


@pytest.mark.parametrize("suffix", sorted(NEEDS_PANDOC))
def test_pandoc_formats(tmp_path: Path, suffix: str) -> None:
    if not HAS_PANDOC:
        pytest.skip("pandoc is missing (pip install pypandoc-binary); the error path is tested below")
    path = make_with_pandoc(tmp_path / f"book{suffix}")
    (doc,) = load(path)
    lines = doc.text.split("\n\n")
    assert "It was a bright cold day in April." in lines
    assert any(line.startswith("#") and line.endswith("Chapter One") for line in lines)
    assert "- first item" in lines
    assert doc.metadata["file_type"] == suffix[1:]


@pytest.mark.parametrize("suffix", sorted(NEEDS_PANDOC))
def test_missing_pandoc_is_a_clear_error(tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import ragkit_unstructured.loader as module

    monkeypatch.setattr(module, "pandoc_path", lambda: None)
    path = tmp_path / f"book{suffix}"
    path.write_bytes(b"whatever")
    with pytest.raises(LoaderError, match=rf"reading \{suffix} needs pandoc.*apt-get install pandoc") as info:
        load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("suffix", sorted(NEEDS_LIBREOFFICE))
def test_missing_libreoffice_is_a_clear_error(tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import ragkit_unstructured.loader as module

    monkeypatch.setattr(module, "libreoffice_path", lambda: None)
    path = tmp_path / f"old{suffix}"
    path.write_bytes(b"\xd0\xcf\x11\xe0 legacy office file")
    with pytest.raises(
        LoaderError, match=rf"reading \{suffix} needs LibreOffice.*apt-get install libreoffice-"
    ) as info:
        load(path)
    assert str(path) in str(info.value)


@pytest.mark.skipif(not HAS_LIBREOFFICE, reason="LibreOffice (soffice) is not installed; the error path runs instead")
def test_doc_and_ppt_through_libreoffice(tmp_path: Path) -> None:
    import subprocess

    import docx

    source = tmp_path / "src"
    source.mkdir()
    word = docx.Document()
    word.add_heading("Legacy Memo", level=1)
    word.add_paragraph("The archive moves to the new building in May.")
    word.save(str(source / "memo.docx"))
    make_pptx(source / "deck.pptx")
    for name, target in (("memo.docx", "doc"), ("deck.pptx", "ppt")):
        subprocess.run(
            ["soffice", "--headless", "--convert-to", target, "--outdir", str(tmp_path), str(source / name)],
            check=True,
            capture_output=True,
            timeout=180,
        )
    (memo,) = load(tmp_path / "memo.doc")
    assert "The archive moves to the new building in May." in memo.text
    deck = load(tmp_path / "deck.ppt")
    assert "Quarterly results" in deck[0].text


def test_corrupt_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken.pptx"
    path.write_bytes(b"PK\x03\x04 not a real zip")
    with pytest.raises(LoaderError, match=r"broken\.pptx: .*pptx") as info:
        load(path)
    assert "Traceback" not in str(info.value)


def test_batch_goes_on_past_bad_files(tmp_path: Path) -> None:
    make_pptx(tmp_path / "deck.pptx")
    make_xlsx(tmp_path / "book.xlsx")
    make_eml(tmp_path / "mail.eml")
    (tmp_path / "broken.xlsx").write_bytes(b"this is not a workbook")
    (tmp_path / "empty.epub").write_bytes(b"")
    loaders = LoaderSet(LoaderOptions())
    loaded: dict[str, int] = {}
    failed: dict[str, str] = {}
    for file in discover([tmp_path], LoaderOptions()):
        try:
            loaded[file.path.name] = len(list(loaders.load(file)))
        except LoaderError as exc:
            assert str(file.path) in str(exc)
            failed[file.path.name] = exc.reason
    assert loaded == {"book.xlsx": 2, "deck.pptx": 2, "mail.eml": 1}
    assert set(failed) == {"broken.xlsx", "empty.epub"}
    assert failed["empty.epub"] == "file is empty"


def test_override_to_one_document_per_file(tmp_path: Path) -> None:
    path = make_pptx(tmp_path / "deck.pptx")
    options = LoaderOptions(loaders={".pptx": {"type": "unstructured", "split_pages": False}})
    stat = path.stat()
    file = SourceFile(path=path, source=source_of(path), size=stat.st_size, mtime=stat.st_mtime)
    assert len(list(LoaderSet(options).load(file))) == 1


def test_offline_mode_uses_rules_without_the_spacy_model() -> None:
    import importlib.util

    from ragkit_unstructured.offline import contains_verb_heuristic, ensure_offline

    mode = ensure_offline()
    expected = "en_core_web_sm" if importlib.util.find_spec("en_core_web_sm") else "rules"
    assert mode == expected
    assert contains_verb_heuristic("The kickoff meeting is on Monday.")
    assert contains_verb_heuristic("Revenue grew by ten percent.")
    assert not contains_verb_heuristic("Quarterly results")
    assert not contains_verb_heuristic("Regional table")
