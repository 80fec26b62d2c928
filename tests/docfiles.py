"""Real documents made at test time: PDF, DOCX, PPTX, XLSX, HTML, Markdown, CSV, JSON and text.

Each carries known facts and, where the format has them, one table, so a test can ask a
question and check that the right passage (and its citation) reached the model.

    path = make_docx(tmp_path / "manual.docx", FACTS)
"""

from __future__ import annotations

import json
from pathlib import Path

TABLE = [["Part", "Torque (Nm)", "Colour"],
         ["Flux valve", "42", "teal"],
         ["Cooling pump", "17", "amber"],
         ["Main bearing", "95", "violet"]]


def make_pdf(path: Path, pages: list[tuple[str, str]]) -> Path:
    """One page per (heading, body); core fonts only, so it needs no font files."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_auto_page_break(auto=False)
    for heading, body in pages:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 16)
        pdf.cell(0, 10, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, body)
    pdf.output(str(path))
    return path


def make_docx(path: Path, sections: list[tuple[str, str]], table: list[list[str]] | None = TABLE) -> Path:
    import docx

    document = docx.Document()
    for heading, body in sections:
        document.add_heading(heading, level=1)
        document.add_paragraph(body)
    if table:
        document.add_heading("Parts table", level=1)
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    document.save(str(path))
    return path


def make_pptx(path: Path, slides: list[tuple[str, str]]) -> Path:
    from pptx import Presentation

    deck = Presentation()
    for title, body in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    deck.save(str(path))
    return path


def make_xlsx(path: Path, table: list[list[str]] = TABLE, sheet: str = "Parts") -> Path:
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = sheet
    for row in table:
        book.active.append(row)
    book.save(str(path))
    return path


def make_html(path: Path, sections: list[tuple[str, str]], table: list[list[str]] | None = TABLE) -> Path:
    parts = ["<html><head><title>Guide</title></head><body>"]
    parts += [f"<h2>{h}</h2><p>{b}</p>" for h, b in sections]
    if table:
        head = "".join(f"<th>{c}</th>" for c in table[0])
        rows = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in table[1:])
        parts.append(f"<h2>Parts table</h2><table><tr>{head}</tr>{rows}</table>")
    path.write_text("".join(parts) + "</body></html>", encoding="utf-8")
    return path


def make_markdown(path: Path, sections: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"## {h}\n\n{b}\n\n" for h, b in sections), encoding="utf-8")
    return path


def make_csv(path: Path, table: list[list[str]] = TABLE) -> Path:
    path.write_text("\n".join(",".join(row) for row in table) + "\n", encoding="utf-8")
    return path


def make_json(path: Path, facts: dict) -> Path:
    path.write_text(json.dumps(facts, indent=2), encoding="utf-8")
    return path


def make_text(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def filler(n: int, seed: int = 0) -> str:
    """Plain sentences of no particular meaning, to pad a page."""
    words = ("the crew checked the hull and logged the readings before the next shift began "
             "while the harbour lights dimmed and the tide turned slowly").split()
    return " ".join(words[(seed + i) % len(words)] for i in range(n)) + "."


# ---------------------------------------------------------------------- bad files


def make_encrypted_pdf(path: Path, password: str = "hunter2") -> Path:
    import pypdf

    source = make_pdf(path.with_suffix(".plain.pdf"), [("Secret", "Nobody may read this page.")])
    writer = pypdf.PdfWriter(clone_from=str(source))
    writer.encrypt(user_password=password, owner_password=password)
    writer.write(str(path))
    source.unlink()
    return path


def make_corrupt_pdf(path: Path) -> Path:
    """A PDF header over bytes that are not a PDF's body."""
    path.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n")
    return path


def make_zip_bomb(path: Path, unpacked: int = 64 << 20) -> Path:
    """A 'DOCX' whose one member unpacks from a few kilobytes to `unpacked` bytes of zeros."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            block = b"\0" * (1 << 20)
            for _ in range(unpacked >> 20):
                member.write(block)
    return path


def make_binary(path: Path, size: int = 4096) -> Path:
    import random

    path.write_bytes(bytes(random.Random(7).randrange(256) for _ in range(size)))
    return path
