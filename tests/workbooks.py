"""Real .xlsx workbooks for tests, written by openpyxl as a script would write them: a cell given as
"=..." is a formula with no saved value (openpyxl never calculates). `saved` puts a value into such a
cell the way Excel stores one when it saves the workbook (`<c t="str"><f>...</f><v>value</v></c>`)."""

from __future__ import annotations

import io
import re
import zipfile
from xml.sax.saxutils import escape

import openpyxl

SHEET = "xl/worksheets/sheet1.xml"


def xlsx_bytes(rows: list[list[object]], saved: dict[str, str] | None = None) -> bytes:
    """A one-sheet workbook of `rows`; `saved` maps a formula cell ("B3") to its saved text value."""
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return _save_values(buffer.getvalue(), saved) if saved else buffer.getvalue()


def _save_values(data: bytes, saved: dict[str, str]) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    xml = source.read(SHEET).decode()
    for cell, value in saved.items():
        pattern = rf'<c r="{cell}"><f>(.*?)</f><v ?/></c>'
        xml, found = re.subn(pattern, rf'<c r="{cell}" t="str"><f>\1</f><v>{escape(value)}</v></c>', xml)
        assert found == 1, f"{cell} is not a formula cell without a value"
    return _with_sheet(source, xml)


def with_cells(data: bytes, cells: dict[str, str]) -> bytes:
    """`data` (from `xlsx_bytes`) with the cells named in `cells` ("B3", each a string cell there)
    rewritten as raw cell XML: `cells` maps a cell to its new `<c>` element's inner type and value,
    given as "e:#SPILL!" (an error cell, as Excel saves one) or "s:#N/A" (an inline text cell)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    xml = source.read(SHEET).decode()
    for cell, spec in cells.items():
        kind, value = spec.split(":", 1)
        new = (
            f'<c r="{cell}" t="e"><v>{escape(value)}</v></c>'
            if kind == "e"
            else f'<c r="{cell}" t="inlineStr"><is><t>{escape(value)}</t></is></c>'
        )
        xml, found = re.subn(rf'<c r="{cell}"[^>]*>.*?</c>', new, xml)
        assert found == 1, f"{cell} is not a cell with a value"
    return _with_sheet(source, xml)


def _with_sheet(source: zipfile.ZipFile, xml: str) -> bytes:
    """The workbook `source` with its first sheet's XML replaced by `xml`."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            target.writestr(item, xml if item.filename == SHEET else source.read(item.filename))
    return out.getvalue()
