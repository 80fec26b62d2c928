"""Real files of every type read to Markdown pages; files that are not what they claim refused."""

from __future__ import annotations

import pytest

from app.documents.parse import ParseError, is_text, parse, sniff
from tests import docfiles as make

SECTIONS = [("Overview", "The flux valve must be torqued to 42 Nm."), ("Safety", "Never open the hatch in a storm.")]
TABLE_LINES = ["| Part | Torque (Nm) | Colour |", "| --- | --- | --- |", "| Flux valve | 42 | teal |"]
MB = 1 << 20


def read(path):
    return parse(path, path.name, max_unpacked=64 * MB)


def test_pdf_pages_keep_their_numbers(tmp_path):
    pages = read(make.make_pdf(tmp_path / "m.pdf", SECTIONS))
    assert [p.number for p in pages] == [1, 2]
    assert "torqued to 42 Nm" in pages[0].text and "hatch in a storm" in pages[1].text


@pytest.mark.parametrize("name, build", [
    ("m.docx", lambda p: make.make_docx(p, SECTIONS)),
    ("m.html", lambda p: make.make_html(p, SECTIONS)),
])
def test_documents_with_headings_and_a_table(tmp_path, name, build):
    [page] = read(build(tmp_path / name))
    lines = page.text.splitlines()
    assert any(line.lstrip("#").strip() == "Overview" and line.startswith("#") for line in lines)
    start = lines.index(TABLE_LINES[0])
    assert lines[start:start + 3] == TABLE_LINES


def test_slides_are_pages(tmp_path):
    pages = read(make.make_pptx(tmp_path / "m.pptx", SECTIONS))
    assert [p.number for p in pages] == [1, 2]
    assert "# Overview" in pages[0].text and "hatch in a storm" in pages[1].text


@pytest.mark.parametrize("name, build", [
    ("m.xlsx", lambda p: make.make_xlsx(p)),
    ("m.csv", lambda p: make.make_csv(p)),
])
def test_sheets_are_tables(tmp_path, name, build):
    [page] = read(build(tmp_path / name))
    lines = page.text.splitlines()
    assert lines[lines.index(TABLE_LINES[0]):][:3] == TABLE_LINES


@pytest.mark.parametrize("name, build, expected", [
    ("m.md", lambda p: make.make_markdown(p, SECTIONS), "## Safety"),
    ("m.txt", lambda p: make.make_text(p, "plain words"), "plain words"),
    ("m.json", lambda p: make.make_json(p, {"captain": "Ada"}), '"captain": "Ada"'),
])
def test_text_formats(tmp_path, name, build, expected):
    [page] = read(build(tmp_path / name))
    assert expected in page.text


@pytest.mark.parametrize("name, build, reason", [
    ("locked.pdf", make.make_encrypted_pdf, "encrypted with a password"),
    ("broken.pdf", make.make_corrupt_pdf, "could not be read"),
    ("bomb.docx", make.make_zip_bomb, "would unpack to 67,108,864 bytes"),
    ("notzip.docx", lambda p: make.make_text(p, "PK\x03\x04 and then nothing"), "not a valid DOCX"),
    ("binary.txt", make.make_binary, "binary data, not text"),
    ("bad.json", lambda p: make.make_text(p, "{not json"), "not valid JSON"),
    ("empty.md", lambda p: make.make_text(p, "\n\n  \n"), "no text found"),
])
def test_bad_files_raise_a_reason(tmp_path, name, build, reason):
    with pytest.raises(ParseError, match=reason):
        parse(build(tmp_path / name), name, max_unpacked=16 * MB)


@pytest.mark.parametrize("name, head, refused", [
    ("a.pdf", b"%PDF-1.7\n...", None),
    ("a.pdf", b"hello", "is not a PDF"),
    ("a.docx", b"PK\x03\x04rest", None),
    ("a.pptx", b"%PDF-1.7", "not a PPTX file"),
    ("a.md", "# Überschrift".encode(), None),
    ("a.txt", b"\x00\x01\x02", "binary data"),
    ("a.csv", b"\xff\xfe\x00a", "binary data"),
    ("a.exe", b"MZ", "not a supported document type"),
    ("README", b"text", "without an extension"),
])
def test_sniff(name, head, refused):
    found = sniff(name, head)
    assert (found is None) if refused is None else (refused in found)


@pytest.mark.parametrize("data, text", [
    (b"plain", True), ("é".encode()[:1], True), (b"a\x00b", False), (b"\xff\xfeabc", False),
])
def test_is_text(data, text):
    assert is_text(data) is text
