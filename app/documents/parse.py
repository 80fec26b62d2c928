"""A file's bytes as Markdown pages, offline, refusing what is not what it claims to be.

    kind = sniff("manual.pdf", head)          # None, or why the bytes do not match the name (415)
    pages = parse(path, "manual.pdf", max_unpacked=200 << 20)   # [Page(1, "..."), ...] or ParseError

What reads what (measured and argued in ARCHITECTURE.md): PDF with `pypdf`, page by page, so a
chunk keeps its page number; PPTX, XLSX, HTML and CSV with Microsoft's `markitdown` (tables come
out as Markdown tables, slides as pages); DOCX with `mammoth` to HTML and then markitdown's HTML
step; Markdown, text and JSON as they are. Office files are zip archives: their sizes are read
from the archive's directory and a file that would unpack past `max_unpacked` (or at a ratio no
real document has) is refused before anything is unpacked.

    ParseError    the file cannot be indexed; its message is the reason shown in `failed` status
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

from app.documents.chunk import Page

PDF = (".pdf",)
ZIPPED = (".docx", ".pptx", ".xlsx")
MARKUP = (".html", ".htm", ".csv")
TEXT = (".md", ".markdown", ".txt", ".json")
SUPPORTED = PDF + ZIPPED + MARKUP + TEXT
MAX_RATIO = 200  # unpacked / packed for one member; real Office XML stays far below
EMPTY_HEADER = re.compile(r"^(\|(?:\s*\|)+)\n(\|(?:\s*:?-+:?\s*\|)+)\n(\|.*\|)$", re.MULTILINE)
SLIDE = re.compile(r"<!-- Slide number: (\d+) -->")


class ParseError(ValueError):
    """The reason a file cannot be indexed, in words a user can act on."""


def extension(name: str) -> str:
    return Path(name).suffix.lower()


def sniff(name: str, head: bytes) -> str | None:
    """Why the first bytes of a file do not match its name's type, or None when they do."""
    ext = extension(name)
    if ext not in SUPPORTED:
        return f"{ext or 'a file without an extension'} is not a supported document type ({', '.join(SUPPORTED)})"
    if ext in PDF and b"%PDF-" not in head[:1024]:
        return f"{name} is not a PDF (it does not start with %PDF-)"
    if ext in ZIPPED and not head.startswith(b"PK\x03\x04"):
        return f"{name} is not a {ext[1:].upper()} file (not a zip archive)"
    if ext in MARKUP + TEXT and not is_text(head):
        return f"{name} is binary data, not text"
    return None


def is_text(data: bytes) -> bool:
    """UTF-8 without NUL bytes (a cut multi-byte character at the end is allowed)."""
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(data) - 3 and exc.reason == "unexpected end of data"
    return True


def parse(path: Path, name: str, *, max_unpacked: int) -> list[Page]:
    """The document's pages as Markdown, without empty ones; ParseError when there is no text."""
    data = path.read_bytes()
    problem = sniff(name, data[:4096])
    if problem:
        raise ParseError(problem)
    ext = extension(name)
    if ext in ZIPPED:
        check_archive(data, ext, max_unpacked)
    pages = [p for p in _READERS[ext](data) if p.text.strip()]
    if not pages:
        raise ParseError(f"no text found in {name} (a scanned PDF would need OCR, which is not done here)")
    return pages


def check_archive(data: bytes, ext: str, max_unpacked: int) -> None:
    """Refuse a zip that is not one, or that would unpack too large (its directory is trusted
    only to refuse: the readers unpack no more than it declares)."""
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise ParseError(f"not a valid {ext[1:].upper()} file: {exc}") from None
    total = sum(m.file_size for m in members)
    worst = max((m.file_size / max(m.compress_size, 1) for m in members), default=0)
    if total > max_unpacked or worst > MAX_RATIO:
        raise ParseError(f"refused: the {ext[1:].upper()} would unpack to {total:,} bytes "
                         f"(compressed {worst:.0f}:1); limit {max_unpacked:,} bytes (DOCS_MAX_UNPACKED_BYTES)")


def _pdf(data: bytes) -> list[Page]:
    import pypdf
    from pypdf.errors import PyPdfError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ParseError("the PDF is encrypted with a password; upload an unprotected copy")
        return [Page(i, page.extract_text() or "") for i, page in enumerate(reader.pages, start=1)]
    except ParseError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise ParseError(f"the PDF could not be read: {exc or type(exc).__name__}") from None


def _markitdown(data: bytes, ext: str) -> str:
    from markitdown import MarkItDown, StreamInfo

    try:
        return MarkItDown(enable_plugins=False).convert_stream(io.BytesIO(data), stream_info=StreamInfo(
            extension=ext)).text_content
    except Exception as exc:  # noqa: BLE001 - markitdown wraps every reader's own errors
        raise ParseError(f"the {ext[1:].upper()} could not be read: {str(exc).strip().splitlines()[-1]}") from None


def _docx(data: bytes) -> list[Page]:
    import mammoth

    try:
        html = mammoth.convert_to_html(io.BytesIO(data)).value
    except Exception as exc:  # noqa: BLE001 - a damaged archive member, bad XML
        raise ParseError(f"the DOCX could not be read: {exc}") from None
    return [Page(None, promote_headers(_markitdown(html.encode(), ".html")))]


def promote_headers(markdown: str) -> str:
    r"""A table written without a header row (Word's usual) gets its first row as the header,
    instead of an empty one.

        >>> promote_headers("|  |  |\n| --- | --- |\n| a | b |\n| 1 | 2 |")
        '| a | b |\n| --- | --- |\n| 1 | 2 |'
    """
    return EMPTY_HEADER.sub(lambda m: f"{m.group(3)}\n{m.group(2)}", markdown)


def _slides(data: bytes) -> list[Page]:
    """One page per slide, numbered as the deck numbers them."""
    parts = SLIDE.split(_markitdown(data, ".pptx"))
    return [Page(int(n), text) for n, text in zip(parts[1::2], parts[2::2])] or [Page(None, parts[0])]


def _json(data: bytes) -> list[Page]:
    try:
        return [Page(None, json.dumps(json.loads(data), indent=1, ensure_ascii=False))]
    except ValueError as exc:
        raise ParseError(f"not valid JSON: {exc}") from None


_READERS = {
    ".pdf": _pdf, ".docx": _docx, ".pptx": _slides,
    ".xlsx": lambda data: [Page(None, _markitdown(data, ".xlsx"))],
    ".html": lambda data: [Page(None, _markitdown(data, ".html"))],
    ".htm": lambda data: [Page(None, _markitdown(data, ".html"))],
    ".csv": lambda data: [Page(None, _markitdown(data, ".csv"))],
    ".json": _json,
    **{ext: lambda data: [Page(None, data.decode("utf-8", "replace"))] for ext in (".md", ".markdown", ".txt")},
}
