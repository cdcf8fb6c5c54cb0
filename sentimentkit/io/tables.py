"""The one table reader: CSV, TSV, XLSX and Parquet read without losing, shifting or silently
changing a row. Every front end reads through it (`open_table` streams a file, `read_table` an upload,
`read_labelled` a labelled file for train/evaluate/retrain).

Rules (each one a promise the README repeats):
- The encoding is decided over the whole file before any row is read: a BOM wins (UTF-8, UTF-16 and
  UTF-32, either byte order); then UTF-16 without BOM (by its zero bytes); then UTF-8 if every byte
  of the file is valid UTF-8; otherwise cp1252 whenever the bytes decode as cp1252 into plausible
  Western text, however short the file (curly quotes and the euro sign survive); otherwise the
  encoding charset-normalizer finds most plausible if it decodes the whole file (Cyrillic, Central
  European, Japanese...); cp1252 or Latin-1 last.
- A blank line is an empty row (its text is flagged "empty text" when scored), kept in order.
- A row with more or fewer fields than the header keeps every field (extra ones are joined into
  the last column) and is flagged in `row_errors` with its line number; it is not scored.
- A file whose header has none of `, ; tab |` has one column: each line is one text, every character
  kept (commas, tabs, control characters); a line starting with a quote is a quoted text.
- A cell may hold up to FIELD_LIMIT (8 MiB) characters; a longer one is refused naming its line, and
  told apart from a quote that is never closed.
- A table has at most MAX_COLUMNS (1,000) columns. A sheet is read by the cells it holds: a stray
  value far to the right is one more column, a formatted empty cell none.
- Excel cells keep their type; a formula with no saved value (`UnsavedFormula`) and a cell of the
  error type such as #DIV/0! or #N/A (`SpreadsheetError`) are flagged when scored, never scored.
- Parquet cells keep their Arrow type; `schema` gives every table's Arrow schema (CSV: strings;
  Excel: numbers, dates, or strings for a column of mixed types).
- Renamed columns (empty, duplicate, or named like an output column) are reported in `notes`, for
  every format.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import itertools
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    import pyarrow as pa

from sentimentkit.errors import BatchError, MissingColumnError  # noqa: F401  (re-exported under its old name)
from sentimentkit.io import storage
from sentimentkit.io.columns import SpreadsheetError, UnsavedFormula, input_column_renames

DELIMITERS = ",;\t|"
ONE_COLUMN = "\x1f"  # marks a one-column file, whose lines are read as they are (never split)
EXCEL_EXTENSIONS = (".xlsx", ".xlsm")
PARQUET_EXTENSIONS = (".parquet", ".pq")
TABLE_EXTENSIONS = (".csv", ".tsv", ".tab", ".txt", *EXCEL_EXTENSIONS, *PARQUET_EXTENSIONS)
TEXT_COLUMN_HINTS = ("text", "tweet", "content", "message", "comment", "review", "body", "sentence")
CLI_HINT = "python -m sentimentkit predict --input FILE.csv --output OUT.csv"
_BLOCK = 1 << 20
# A cell may hold up to 8 MiB characters (csv's default, 128 KiB, refused whole files with one long
# cell; such a text is now a row flagged "text too long"); a longer one is refused with its line. A
# quote that is never closed still fails fast: it swallows the rest of the file into one cell, which
# soon passes this limit, and the message then says which of the two it is.
FIELD_LIMIT = 8 << 20
_LINE_END = re.compile(r"(\r\n|\r|\n)")
_SAMPLE_BYTES = 64 * 1024  # non-ASCII lines handed to charset-normalizer
_SNIFF_CHARS = 20_000
_RAGGED_LINES_SHOWN = 5
# The most columns a table may have (a sheet counts the columns holding a value): beyond it a file
# is refused with one line, rather than read into rows of thousands of cells.
MAX_COLUMNS = 1000
_EMPTY_FILE = "The file is empty. Upload a CSV with a header row and one text per row."
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # old binary Office files (.xls)


@dataclass
class Chunk:
    """Consecutive rows of a table: `frame` (CSV cells are strings; Excel cells keep their type) and
    `row_errors` (position in `frame` -> why that row is not scored, e.g. a ragged CSV line)."""

    frame: pd.DataFrame
    row_errors: dict[int, str] = field(default_factory=dict)


@dataclass
class Table:
    """A whole table in memory (uploads, Excel): rows, per-row read errors, notes about renames."""

    frame: pd.DataFrame
    row_errors: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    @functools.cached_property
    def schema(self) -> pa.Schema:
        """The Arrow schema of the columns, from the values they hold (`arrow_type`): a CSV's columns
        are strings; an Excel column of numbers stays numeric, of dates a timestamp, and a column
        of mixed types is strings."""
        import pyarrow as pa

        return pa.schema([pa.field(str(c), arrow_type(self.frame[c])) for c in self.frame.columns])

    def chunks(self, chunk_rows: int) -> Iterator[Chunk]:
        """The rows in slices of `chunk_rows`, each with its own row errors (positions re-based)."""
        for start in range(0, len(self.frame), chunk_rows):
            stop = start + chunk_rows
            errors = {i - start: e for i, e in self.row_errors.items() if start <= i < stop}
            yield Chunk(self.frame.iloc[start:stop], errors)


# --- encoding ---------------------------------------------------------------------------------
@dataclass
class _Scan:
    """What one pass over the bytes found: lines that are (not) valid UTF-8, cp1252 validity,
    zero bytes, and a sample of the non-ASCII lines for charset-normalizer."""

    utf8_lines: int = 0  # non-ASCII lines that are valid UTF-8
    bad_lines: int = 0  # lines that are not valid UTF-8
    first_bad: int = 0  # line number of the first of those
    cp1252: bool = True
    nul: bool = False
    sample: bytearray = field(default_factory=bytearray)

    def add_lines(self, data: bytes, first_line: int) -> None:
        """Account for complete lines `data` (ending in \\n, or the file's last line)."""
        self.nul = self.nul or b"\x00" in data
        if data.isascii():
            return
        self.cp1252 = self.cp1252 and _decodes(codecs.getincrementaldecoder("cp1252")(), data, final=True)
        for offset, line in enumerate(data.split(b"\n")):
            if line.isascii():
                continue
            if len(self.sample) < _SAMPLE_BYTES:
                self.sample += line + b"\n"
            try:
                line.decode("utf-8")
                self.utf8_lines += 1
            except UnicodeDecodeError:
                self.first_bad = self.first_bad or first_line + offset
                self.bad_lines += 1


def detect_encoding(source: bytes | IO[bytes]) -> str:
    """The encoding of the whole of `source` (a stream is read to the end and put back where it was).

    Raises BatchError for binary data (zero bytes that are not UTF-16).
    """
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    start = stream.tell()
    try:
        return _detect(stream, start)
    finally:
        stream.seek(start)


def _detect(stream: IO[bytes], start: int) -> str:
    head = stream.read(_BLOCK)
    bom = _bom_encoding(head) or _utf16_without_bom(head)
    if bom:
        return bom
    stream.seek(start)
    scan = _scan(stream)
    if scan.nul:
        # Latin-1 decodes any bytes, so a binary file would otherwise parse into garbage rows.
        raise BatchError(
            "The file is not text (it contains binary bytes). Save it as CSV (UTF-8), or give an Excel "
            "workbook the .xlsx extension."
        )
    if not scan.bad_lines:
        return "utf-8"
    if scan.utf8_lines > scan.bad_lines:
        # Mostly UTF-8 with a few stray bytes: reading it all as cp1252 would garble every other line.
        raise BatchError(
            f"line {scan.first_bad}: bytes that are not valid UTF-8, while {scan.utf8_lines:,} other lines "
            "are UTF-8 (the file mixes encodings). Re-save it as UTF-8 CSV."
        )
    return _legacy_encoding(scan, stream, start)


def _bom_encoding(head: bytes) -> str | None:
    """The encoding a byte-order mark names; UTF-32's are checked first, as UTF-32-LE's BOM starts
    with UTF-16-LE's. The codec returned reads the BOM and drops it."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return None


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 of mostly Latin text has a zero byte in every other position."""
    if len(head) < 4:
        return None
    half = len(head) // 4
    if head[1::2].count(0) > half and not head[0::2].count(0):
        return "utf-16-le"
    if head[0::2].count(0) > half and not head[1::2].count(0):
        return "utf-16-be"
    return None


def _scan(stream: IO[bytes]) -> _Scan:
    """One pass over the whole stream, line by line where it is not plain ASCII."""
    scan = _Scan()
    carry = b""
    line = 1
    for block in iter(partial(stream.read, _BLOCK), b""):
        data = carry + block
        cut = data.rfind(b"\n") + 1
        carry = data[cut:]
        scan.add_lines(data[:cut], line)
        line += data.count(b"\n", 0, cut)
    scan.add_lines(carry, line)
    return scan


def _decodes(decoder: codecs.IncrementalDecoder, data: bytes, final: bool = False) -> bool:
    try:
        decoder.decode(data, final)
    except UnicodeDecodeError:
        return False
    return True


def _legacy_encoding(scan: _Scan, stream: IO[bytes], start: int) -> str:
    """Not UTF-8: cp1252 whenever the bytes decode as cp1252 into plausible Western text (however
    short the file); otherwise the encoding charset-normalizer finds most plausible, if it decodes
    the whole file (Cyrillic, Central European, Japanese...); cp1252 or Latin-1 last."""
    from charset_normalizer import from_bytes

    if scan.cp1252 and western_text(bytes(scan.sample).decode("cp1252")):
        return "cp1252"
    fallback = "cp1252" if scan.cp1252 else "latin-1"
    matches = from_bytes(bytes(scan.sample))
    best = matches.best()
    if best is None:
        return fallback
    # Several encodings often give the very same characters (cp1250 and cp1252 agree on curly
    # quotes, the euro sign and most accents); among the most plausible ones, cp1252 wins.
    plausible = [m for m in matches if m.chaos <= best.chaos + 0.01]
    if scan.cp1252 and any("cp1252" in m.could_be_from_charset for m in plausible):
        return "cp1252"
    stream.seek(start)
    decoder = codecs.getincrementaldecoder(best.encoding)()
    whole = all(_decodes(decoder, block) for block in iter(partial(stream.read, _BLOCK), b""))
    return best.encoding if whole and _decodes(decoder, b"", final=True) else fallback


_WORD = re.compile(r"[^\W\d_]+")
_FOREIGN_RUN = re.compile(r"[^\x00-\x7f]{3,}")
_IN_WORD_MARKS = "\u2019'\u00b7"  # don’t, l·l: marks that may stand between letters


def western_text(text: str) -> bool:
    """Whether `text` (legacy bytes decoded as cp1252) reads as Western European text: its accented
    letters sit among plain ones, and no symbol stands inside a word. Text in another single-byte
    encoding fails: Cyrillic, Greek or Hebrew read as cp1252 gives words made only of accented
    letters ("Ïðèâåò"), Polish gives symbols inside words ("Za¿ó³æ")."""
    for i, char in enumerate(text):
        between_letters = 0 < i < len(text) - 1 and text[i - 1].isalpha() and text[i + 1].isalpha()
        if between_letters and not char.isascii() and not char.isalpha() and char not in _IN_WORD_MARKS:
            return False
    accented = [word for word in _WORD.findall(text) if not word.isascii()]
    foreign = sum(1 for word in accented if _FOREIGN_RUN.search(word))
    return foreign * 4 <= len(accented)


# --- delimiter and header ---------------------------------------------------------------------
def detect_delimiter(text_sample: str, filename: str = "") -> str:
    """Tab for .tsv/.tab; else the one of `, ; tab |` the header uses (csv.Sniffer decides between
    several); ONE_COLUMN when the header has none, so each line is one text, commas and all."""
    if filename.lower().endswith((".tsv", ".tab")):
        return "\t"
    header = next(csv.reader(io.StringIO(text_sample, newline=""), delimiter=ONE_COLUMN), [""])
    used = [d for d in DELIMITERS if d in (header[0] if header else "")]
    if not used:
        return ONE_COLUMN
    if len(used) == 1:
        return used[0]
    try:
        return csv.Sniffer().sniff(text_sample[:_SNIFF_CHARS], delimiters="".join(used)).delimiter
    except csv.Error:
        return max(used, key=header[0].count)


def unique_columns(names: list[Any], positions: list[int] | None = None) -> tuple[list[str], list[str]]:
    """Column names made unique and non-empty, and a note for every one that was renamed
    (including input columns that the output will rename to keep its own columns). `positions`:
    each column's place in the file from 1 (default: 1, 2, 3...), which names a column without one."""
    columns: list[str] = []
    notes: list[str] = []
    for position, raw in zip(positions or range(1, len(names) + 1), names):
        name = "" if raw is None else str(raw)
        if not name.strip():
            new = _free(f"column_{position}", columns)
            notes.append(f"column {position} has no name in the header; it is called {new!r}.")
        elif name in columns:
            new = _free(name, columns, first=1)
            notes.append(
                f"column {position} is another {name!r}; it is called {new!r} (the first keeps {name!r})."
            )
        else:
            new = name
        columns.append(new)
    for old, new in input_column_renames(columns).items():
        notes.append(f"the input column {old!r} is written as {new!r}: the output adds its own {old!r}.")
    return columns, notes


def _free(name: str, taken: list[str], first: int | None = None) -> str:
    if first is None and name not in taken:
        return name
    k = first or 2
    while f"{name}.{k}" in taken:
        k += 1
    return f"{name}.{k}"


def guess_text_column(columns: list[str]) -> str:
    """The column most likely to hold the text (by name), else the first column."""
    lowered = [str(c).strip().lower() for c in columns]
    for hint in TEXT_COLUMN_HINTS:
        if hint in lowered:
            return columns[lowered.index(hint)]
    return columns[0]


def check_column(columns: Any, text_column: str) -> None:
    """Raise BatchError (naming the available columns) when `text_column` is not among `columns`
    (a list of names or a DataFrame)."""
    names = [str(c) for c in (columns.columns if isinstance(columns, pd.DataFrame) else columns)]
    if text_column not in names:
        raise MissingColumnError(
            f"Column {text_column!r} not found; the columns are {names}. Choose the column that holds the text."
        )


# --- CSV ----------------------------------------------------------------------------------------
class _Lines:
    """The stream's decoded text as lines (ends kept; \\n, \\r\\n and a lone \\r end a line, as in
    csv's universal newlines, but a Unicode line separator inside a text stays in its row),
    remembering the last blocks of lines so that the raw text of the final record can be checked
    for a quote that is never closed."""

    def __init__(self, stream: IO[bytes], encoding: str) -> None:
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder(encoding)()
        # Enough blocks to hold a record of FIELD_LIMIT characters (a character is at least a byte).
        self.recent: deque[list[str]] = deque(maxlen=FIELD_LIMIT // _BLOCK + 2)
        self.count = 0  # lines handed out in all blocks so far

    def __iter__(self) -> Iterator[str]:
        # Lines are handed to csv.reader through chain(), so no Python code runs per line.
        return itertools.chain.from_iterable(self._blocks())

    def _blocks(self) -> Iterator[list[str]]:
        rest = ""
        for block in iter(partial(self.stream.read, _BLOCK), b""):
            complete, rest = _split_lines(rest + self.decoder.decode(block))
            yield self._remember(complete)
        rest += self.decoder.decode(b"", final=True)
        if rest:
            yield self._remember([rest])

    def _remember(self, lines: list[str]) -> list[str]:
        self.recent.append(lines)
        self.count += len(lines)
        return lines

    def line(self, number: int) -> str:
        """Line `number` (from 1) if it is in the last block handed out, else ""."""
        last = self.recent[-1] if self.recent else []
        index = number - (self.count - len(last)) - 1
        return last[index] if 0 <= index < len(last) else ""

    def last(self, n: int) -> list[str]:
        """The last `n` lines read (a record longer than the field limit never gets here)."""
        return [line for block in self.recent for line in block][-n:]


def _split_lines(text: str) -> tuple[list[str], str]:
    """The complete lines of `text` (ends kept) and the unfinished rest."""
    if "\r" not in text:  # the common case, without a regular expression
        *complete, rest = text.split("\n")
        return [line + "\n" for line in complete], rest
    hold = "\r" if text.endswith("\r") else ""  # its \n may start the next block
    parts = _LINE_END.split(text[: len(text) - len(hold)])
    return [line + end for line, end in zip(parts[0:-1:2], parts[1::2])], parts[-1] + hold


class CsvTable:
    """A CSV/TSV opened for streaming: encoding and delimiter decided, header read and made unique.

    `chunks(n)` yields the rows n at a time; `notes` says what was renamed and which lines were
    ragged (complete once the chunks have all been read). Use it as a context manager to close a
    file it opened.
    """

    def __init__(self, stream: IO[bytes], filename: str = "", owns_stream: bool = False) -> None:
        self._stream = stream
        self._owns_stream = owns_stream
        self.filename = filename
        self.encoding = detect_encoding(stream)
        self.delimiter = detect_delimiter(_text_sample(stream, self.encoding), filename)
        self._lines = _Lines(stream, self.encoding)
        if csv.field_size_limit() < FIELD_LIMIT:
            csv.field_size_limit(FIELD_LIMIT)  # process-wide, hence only ever raised
        self._line_iter = iter(self._lines)
        self._reader = csv.reader(self._line_iter, delimiter=self.delimiter)
        self._line = self._start = 0  # physical lines consumed so far; first line of the last record
        self._notes: list[str] = []
        self.ragged: list[int] = []
        header = self._header()
        _check_width(len(header), "The header")
        self.columns, header_notes = unique_columns(header)
        self._notes += header_notes

    def close(self) -> None:
        """Close the file if this table opened it."""
        if self._owns_stream:
            self._stream.close()

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema of the columns: every CSV cell is a string."""
        import pyarrow as pa

        return pa.schema([pa.field(c, pa.string()) for c in self.columns])

    def __enter__(self) -> CsvTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def notes(self) -> list[str]:
        """What was renamed, skipped or flagged, one sentence each."""
        if not self.ragged:
            return list(self._notes)
        shown = ", ".join(str(n) for n in self.ragged[:_RAGGED_LINES_SHOWN])
        more = ", ..." if len(self.ragged) > _RAGGED_LINES_SHOWN else ""
        return [*self._notes, f"{len(self.ragged)} rows have more or fewer fields than the header (lines "
                f"{shown}{more}); they are kept, flagged in 'error' and not scored. Quote texts that contain "
                f"{_delimiter_name(self.delimiter)}."]  # fmt: skip

    def _header(self) -> list[str]:
        for start, fields in self._records():
            if fields:
                if start > 1:
                    self._notes.append(
                        f"{start - 1} blank lines before the header (line {start}) were skipped."
                    )
                return fields
        raise BatchError(_EMPTY_FILE)

    def _records(self) -> Iterator[tuple[int, list[str]]]:
        """(first line number, fields) per record; refuses a quote that is never closed."""
        if self.delimiter == ONE_COLUMN:
            yield from self._one_column_records()
            return
        while True:
            start = self._line + 1
            try:
                fields = next(self._reader)
            except StopIteration:
                self._check_last_record()
                return
            except UnicodeDecodeError:
                raise self._undecodable(start) from None
            except csv.Error as exc:
                if "field larger than field limit" in str(exc):
                    raise self._too_long(start, self._reader.line_num) from None
                raise BatchError(
                    f"line {start}: the CSV cannot be parsed ({exc}); check the quotes near that line."
                ) from None
            self._start, self._line = start, self._reader.line_num
            yield start, fields

    def _undecodable(self, line: int) -> BatchError:
        return BatchError(
            f"line {line}: bytes that are not valid {self.encoding}. Re-save the file as UTF-8 CSV."
        )

    def _too_long(self, start: int, current: int) -> BatchError:
        """A cell passed FIELD_LIMIT: a genuinely long cell (on one line, or a quote is still to come)
        or a quote never closed (no quote anywhere after it: it would swallow the rest of the file)."""
        if current > start and '"' not in self._lines.line(current):
            try:
                if not any('"' in line for line in self._line_iter):
                    return _unclosed_quote(start)
            except UnicodeDecodeError:
                return self._undecodable(current)
        return BatchError(
            f"a cell longer than the {FIELD_LIMIT >> 20} MiB limit ({FIELD_LIMIT:,} characters) at line {start}. "
            "Shorten or split that text (or remove its row) and try again."
        )

    def _one_column_records(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, [text]) per record of a one-column file: each line is one text, every
        character kept (no delimiter splits it); a line that starts with a quote is a quoted text as
        csv reads one (a doubled quote inside is one quote, line breaks inside are kept)."""
        try:
            for line in self._line_iter:
                self._line += 1
                start = self._line
                text = self._quoted(line[1:], start) if line.startswith('"') else _without_end(line)
                if len(text) > FIELD_LIMIT:
                    raise self._too_long(start, start)
                yield start, [text] if text or line.startswith('"') else []
        except UnicodeDecodeError:
            raise self._undecodable(self._line + 1) from None

    def _quoted(self, rest: str, start: int) -> str:
        """The text of a quoted one-column record whose opening quote is done; `rest` is the rest of
        its first line. Reads further lines until the closing quote."""
        parts: list[str] = []
        size = 0
        while True:
            quote = rest.find('"')
            if quote < 0:
                parts.append(rest)
                size += len(rest)
                if size > FIELD_LIMIT:
                    raise self._too_long(start, self._line)
                rest = next(self._line_iter, None)
                if rest is None:
                    raise _unclosed_quote(start)
                self._line += 1
            elif rest.startswith('"', quote + 1):  # a doubled quote: one quote of the text
                parts.append(rest[: quote + 1])
                size += quote + 1
                rest = rest[quote + 2 :]
            else:  # the closing quote; what follows it on the line is kept, as csv keeps it
                parts.append(rest[:quote])
                parts.append(_without_end(rest[quote + 1 :]))
                return "".join(parts)

    def _check_last_record(self) -> None:
        """csv.reader accepts end of file inside quotes; the last record then swallowed every line
        after an unclosed quote. Only the last record can have done that."""
        lines = self._line - self._start + 1
        if self._line and lines > 1 and _unclosed(self._lines.last(lines), self.delimiter):
            raise _unclosed_quote(self._start)

    def chunks(self, chunk_rows: int) -> Iterator[Chunk]:
        """The data rows, `chunk_rows` at a time, with a running index from 0."""
        width = len(self.columns)
        rows: list[list[str]] = []
        errors: dict[int, str] = {}
        done = 0
        for line, fields in self._records():
            if len(fields) != width:
                fields, error = _fit(fields, width, self.delimiter, line)
                if error:
                    errors[len(rows)] = error
                    self.ragged.append(line)
            rows.append(fields)
            if len(rows) == chunk_rows:
                yield self._chunk(rows, errors, done)
                done += len(rows)
                rows, errors = [], {}
        if rows:
            yield self._chunk(rows, errors, done)

    def _chunk(self, rows: list[list[str]], errors: dict[int, str], start: int) -> Chunk:
        frame = pd.DataFrame(rows, columns=self.columns, dtype=object)
        frame.index = pd.RangeIndex(start, start + len(rows))
        return Chunk(frame, errors)


def _text_sample(stream: IO[bytes], encoding: str) -> str:
    """The first characters of the text (for the delimiter); the stream is put back."""
    start = stream.tell()
    head = stream.read(_SNIFF_CHARS * 4)
    stream.seek(start)
    text = codecs.getincrementaldecoder(encoding)(errors="ignore").decode(head)
    return text.lstrip("\r\n")


def _unclosed_quote(line: int) -> BatchError:
    return BatchError(
        f"line {line}: a quote opened here is never closed, so every later line would be part of one "
        "text. Close the quote (or double it inside a quoted text) and try again."
    )


def _without_end(line: str) -> str:
    """`line` without its line end (\\r\\n, \\n or \\r)."""
    if line.endswith("\r\n"):
        return line[:-2]
    return line[:-1] if line.endswith(("\n", "\r")) else line


def _unclosed(lines: list[str], delimiter: str) -> bool:
    """True when these lines end inside a quoted field (csv.reader accepts that at end of file)."""
    try:
        list(csv.reader(lines, delimiter=delimiter, strict=True))
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _fit(fields: list[str], width: int, delimiter: str, line: int) -> tuple[list[str], str | None]:
    """The row's cells for a header of `width` columns, and why it is flagged (None when it fits)."""
    if len(fields) == width:
        return fields, None
    if not fields:  # a blank line: an empty row, flagged later as "empty text"
        return [""] * width, None
    error = f"line {line}: {len(fields)} field{'' if len(fields) == 1 else 's'}, the header has {width}"
    if len(fields) > width:
        joined = delimiter.join(fields[width - 1 :])
        return [*fields[: width - 1], joined], error
    return fields + [""] * (width - len(fields)), error


def _delimiter_name(delimiter: str) -> str:
    return {"\t": "a tab", ",": "a comma", ";": "a semicolon", "|": "a '|'"}.get(delimiter, repr(delimiter))


# --- Excel ------------------------------------------------------------------------------------
def read_excel(source: bytes | str | Path) -> Table:
    """The first sheet of an .xlsx/.xlsm workbook: first row = header; every later row kept (blank
    rows inside the data too; empty rows after the last value are not rows). The sheet is read by the
    cells it holds: its columns run from A to the last column holding a value (header or data), empty
    ones between kept as a CSV export keeps them; when that is more than MAX_COLUMNS, only the columns
    holding a value are columns (a stray cell in column XFD adds one column, not 16,000); more than
    MAX_COLUMNS of those is refused. Cells keep their type, so a number in the text column is flagged "not
    text" rather than scored as a string. A formula cell keeps the value Excel saved with it; one with
    no saved value (a workbook written by a script) is an `UnsavedFormula`, and a cell of the error
    type (#DIV/0!, #N/A...) a `SpreadsheetError`: both are flagged when scored and counted in `notes`."""
    import openpyxl

    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else source
        book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
        sheet = book.worksheets[0]
        cells, unsaved, errors = _sheet_cells(book, sheet)
        sheets = [ws.title for ws in book.worksheets]
        book.close()
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for a broken file
        raise BatchError(
            f"The Excel file could not be read ({type(exc).__name__}). Save it again as .xlsx."
        ) from None
    while cells and all(_blank_cell(v) for v in cells[-1].values()):
        cells.pop()
    if not cells:
        raise BatchError("The workbook is empty. Put a header row and one text per row in its first sheet.")
    used = sorted({col for row in cells for col in row})  # the columns holding a value somewhere
    _check_width(len(used), "The first sheet")
    if used[-1] < MAX_COLUMNS:  # empty columns between A and the last one kept, as a CSV export keeps them
        used = list(range(used[-1] + 1))
    header = cells[0]
    columns, notes = unique_columns([header.get(col) for col in used], positions=[col + 1 for col in used])
    if len(sheets) > 1:
        notes.insert(0, f"the workbook has {len(sheets)} sheets; only the first, {sheets[0]!r}, was read.")
    where = dict(zip(used, columns))
    if unsaved:
        notes.append(_unsaved_note(unsaved, where))
    if errors:
        notes.append(_error_note(errors, where))
    body = [[row.get(col) for col in used] for row in cells[1:]]
    frame = pd.DataFrame(body, columns=columns, dtype=object)
    return Table(frame.where(frame.notna(), None), {}, notes)


def _check_width(width: int, what: str) -> None:
    if width > MAX_COLUMNS:
        raise BatchError(
            f"{what} has {width:,} columns; at most {MAX_COLUMNS:,} are read (MAX_COLUMNS). Keep only the "
            "columns you need (the text and a few others) and try again."
        )


Position = tuple[int, int]  # (row, column) from 0 in the sheet


def _sheet_cells(book: Any, sheet: Any) -> tuple[list[dict[int, object]], list[Position], list[Position]]:
    """The sheet's rows from row 1, each a dict {column from 0: value} of the cells with a value (work
    and memory follow the cells the sheet holds, not its widest row), the positions of the formula
    cells without a saved value (their value an `UnsavedFormula`) and those of the error cells (a
    `SpreadsheetError`).

    One pass: the cached values (data_only) and the formulas come from the same parse, so a workbook
    with or without formulas costs what openpyxl's own read costs (see benchmarks/xlsx_read.md).
    """
    rows: list[dict[int, object]] = []
    with sheet._get_source() as xml:  # noqa: SLF001 - the sheet's XML, as iter_rows reads it
        parser = _unsaved_formula_parser()(
            xml, sheet._shared_strings, data_only=True, epoch=book.epoch,  # noqa: SLF001
            date_formats=book._date_formats, timedelta_formats=book._timedelta_formats,  # noqa: SLF001
        )  # fmt: skip
        for number, cells in parser.parse():  # rows without a cell are not in the XML
            rows.extend({} for _ in range(number - 1 - len(rows)))
            rows.append({cell["column"] - 1: cell["value"] for cell in cells if cell["value"] is not None})
    return rows, parser.unsaved, parser.errors


@functools.cache
def _unsaved_formula_parser() -> type:
    """openpyxl's sheet parser, reading saved values (data_only), which also turns a formula cell with
    no saved value into an `UnsavedFormula` (openpyxl alone gives None, the same as an empty cell) and
    a cell of the error type into a `SpreadsheetError` (openpyxl alone gives a plain string).
    Built on first use: openpyxl is imported only when a workbook is read."""
    from openpyxl.worksheet._reader import FORMULA_TAG, WorkSheetParser

    class Parser(WorkSheetParser):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.unsaved: list[Position] = []
            self.errors: list[Position] = []

        def parse_cell(self, element: Any) -> dict[str, Any]:
            cell = super().parse_cell(element)
            if cell["value"] is None and element.find(FORMULA_TAG) is not None:
                # parse_formula: the formula text as data_only=False reads it (shared formulas expanded).
                formula = self.parse_formula(element)
                cell["value"] = UnsavedFormula(getattr(formula, "text", None) or str(formula))
                self.unsaved.append((cell["row"] - 1, cell["column"] - 1))
            elif cell["data_type"] == "e" and cell["value"] is not None:
                cell["value"] = SpreadsheetError(cell["value"])
                self.errors.append((cell["row"] - 1, cell["column"] - 1))
            return cell

    return Parser


def _cells_where(cells: list[Position], columns: dict[int, str]) -> str:
    """Where `cells` are: per column name, their Excel row numbers (the first few)."""
    rows_by_column: dict[str, list[int]] = {}
    for row, col in sorted(cells, key=lambda cell: (cell[1], cell[0])):  # column by column
        rows_by_column.setdefault(columns.get(col, f"column {col + 1}"), []).append(row + 1)
    return "; ".join(
        f"column {name!r}: row{'s' if len(rows) > 1 else ''} "
        + ", ".join(map(str, rows[:_RAGGED_LINES_SHOWN]))
        + (", ..." if len(rows) > _RAGGED_LINES_SHOWN else "")
        for name, rows in rows_by_column.items()
    )


def _error_note(errors: list[Position], columns: dict[int, str]) -> str:
    """One sentence: how many cells hold a spreadsheet error value, where, and what happens to them."""
    return (
        f"{len(errors)} cell{'s hold' if len(errors) > 1 else ' holds'} a spreadsheet error value such as "
        f"#DIV/0! or #N/A ({_cells_where(errors, columns)}). In the text column such a row is flagged in "
        "'error' and not scored; other columns show the error value."
    )


def _unsaved_note(unsaved: list[Position], columns: dict[int, str]) -> str:
    """One sentence: how many formula cells have no saved value, where (Excel row numbers), what to do."""
    return (
        f"{len(unsaved)} cell{'s hold' if len(unsaved) > 1 else ' holds'} a formula with no saved value "
        f"({_cells_where(unsaved, columns)}): the workbook was written by a program that does not calculate "
        "formulas. In the text column such a row is flagged in 'error' and not scored; other columns show "
        "the formula. Open and save the workbook in Excel (it stores the results), or export it as CSV."
    )


def _blank_cell(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# --- Parquet ----------------------------------------------------------------------------------
def is_parquet(path: str | Path) -> bool:
    """True when `path` names a Parquet file (by its extension)."""
    return str(path).lower().endswith(PARQUET_EXTENSIONS)


class ParquetTable:
    """A Parquet file opened for streaming, under the same column rules as a CSV: duplicate or empty
    names are renamed and input columns named like an output column are noted, in `notes`; more
    than MAX_COLUMNS is refused. Cells keep their Arrow type (`schema`); a text column's cells are
    Python strings (a missing one None, flagged "empty text" as an empty CSV cell is)."""

    def __init__(self, source: str | Path | IO[bytes], name: str = "") -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.filename = name or str(source)
        try:
            self._file = pq.ParquetFile(source)
            found = self._file.schema_arrow
        except (pa.ArrowException, OSError) as exc:
            raise BatchError(f"{self.filename} is not a readable Parquet file ({exc}).") from None
        _check_width(len(found.names), "The Parquet file")
        self.columns, self.notes = unique_columns(found.names)
        self.schema: pa.Schema = pa.schema([f.with_name(n) for f, n in zip(found, self.columns)])

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> ParquetTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chunks(self, chunk_rows: int) -> Iterator[Chunk]:
        """The rows, `chunk_rows` at a time, with a running index from 0."""
        import pyarrow as pa

        done = 0
        try:
            for batch in self._file.iter_batches(batch_size=chunk_rows):
                frame = _frame(pa.RecordBatch.from_arrays(batch.columns, schema=self.schema))
                frame.index = pd.RangeIndex(done, done + len(frame))
                done += len(frame)
                yield Chunk(frame)
        except (pa.ArrowException, OSError) as exc:
            raise BatchError(f"{self.filename} could not be read past row {done:,} ({exc}).") from None

    def count_rows(self) -> int:
        """The rows in the file, from its footer."""
        return int(self._file.metadata.num_rows)


def _frame(batch: pa.RecordBatch) -> pd.DataFrame:
    """Text columns become Python strings, a missing text None; other columns keep their exact Arrow
    type, so a Parquet output round-trips them."""
    import pyarrow as pa

    def mapper(kind: pa.DataType) -> Any:
        return None if pa.types.is_string(kind) or pa.types.is_large_string(kind) else pd.ArrowDtype(kind)

    return batch.to_pandas(types_mapper=mapper)


def arrow_type(values: Any) -> pa.DataType:
    """The Arrow type for a column of Python values (None is missing): bool, int64, float64 (ints and
    floats), timestamp, date, time or duration when every value is of that kind; else string."""
    import datetime as dt

    import pyarrow as pa

    kinds = {type(v) for v in values if v is not None}
    if kinds and kinds <= {int} and all(-(2**63) <= v < 2**63 for v in values if v is not None):
        return pa.int64()
    for group, kind in (
        ({bool}, pa.bool_()),
        ({int, float}, pa.float64()),
        ({dt.datetime, pd.Timestamp}, pa.timestamp("us")),
        ({dt.date}, pa.date32()),
        ({dt.time}, pa.time64("us")),
        ({dt.timedelta}, pa.duration("us")),
    ):
        if kinds and kinds <= group:
            return kind
    return pa.string()


# --- opening files and uploads ------------------------------------------------------------------
def open_table(source: str | Path | IO[bytes], filename: str = "") -> CsvTable | Table | ParquetTable:
    """The one way to open a table: a CSV/TSV (streamed), an Excel workbook (in memory) or a Parquet
    file (streamed), chosen by the file name; `.xls`, zip and old Office files get a message saying
    what to do. Each has `columns`, `notes`, `schema` and `chunks(n)`, and is a context manager.
    Paths are opened here (and stay open while the returned table is read)."""
    name = (filename or str(source if isinstance(source, (str, Path)) else "")).lower()
    if isinstance(source, (str, Path)):
        _check_input_path(Path(source))
        if name.endswith(EXCEL_EXTENSIONS):
            return read_excel(Path(source))
        if is_parquet(name):
            return ParquetTable(str(source), filename or str(source))
        stream: IO[bytes] = open(source, "rb")  # noqa: SIM115 - closed by the CsvTable (or below)
        try:
            _refuse_office(stream, name)
            return CsvTable(stream, name, owns_stream=True)
        except BaseException:
            stream.close()
            raise
    if name.endswith(EXCEL_EXTENSIONS):
        return read_excel(source.read())
    if is_parquet(name):
        return ParquetTable(source, filename)
    _refuse_office(source, name)
    return CsvTable(source, name)


def _check_input_path(path: Path) -> None:
    if path.is_dir():
        raise BatchError(f"The input {str(path)!r} is a folder; give the CSV, TSV or .xlsx file in it.")
    if not path.exists():
        raise BatchError(f"The input file {str(path)!r} does not exist.")


def _refuse_office(stream: IO[bytes], name: str) -> None:
    start = stream.tell()
    head = stream.read(8)
    stream.seek(start)
    if not head.strip() and not stream.read(_BLOCK).strip():
        raise BatchError(_EMPTY_FILE)
    stream.seek(start)
    if name.endswith(".xls") or head.startswith(_OLE_MAGIC):
        raise BatchError(
            f"{name!r} is an old Excel (.xls) workbook. Save it as .xlsx or CSV (UTF-8) and use that."
        )
    if head.startswith(_ZIP_MAGIC):
        raise BatchError(
            f"{name!r} is a zip file, not text: if it is an Excel workbook, give it the .xlsx extension; "
            "otherwise export the table as CSV (UTF-8)."
        )


def read_table(data: bytes, filename: str, max_rows: int | None = None) -> Table:
    """An uploaded CSV, TSV, XLSX or Parquet file as one in-memory Table (refused by name when it is
    none of them)."""
    name = filename.lower()
    if not name.endswith((*TABLE_EXTENSIONS, ".xls")):
        raise BatchError(
            f"{filename!r} is not a CSV, TSV or Excel (.xlsx) file. Export your table as CSV (UTF-8) "
            "or .xlsx and upload that."
        )
    opened = open_table(io.BytesIO(data), filename)
    table = opened if isinstance(opened, Table) else _collect(opened, max_rows)
    if table.frame.empty:
        raise BatchError(
            "The file has a header but no rows to score. Add one text per row below the header and "
            "upload it again."
        )
    _check_rows(len(table.frame), max_rows)
    return table


def _collect(opened: CsvTable | ParquetTable, max_rows: int | None) -> Table:
    frames: list[pd.DataFrame] = []
    errors: dict[int, str] = {}
    rows = 0
    for chunk in opened.chunks(20_000):
        errors.update({rows + i: e for i, e in chunk.row_errors.items()})
        frames.append(chunk.frame)
        rows += len(chunk.frame)
        _check_rows(rows, max_rows)  # stop reading as soon as the file is known to be too big
    frame = pd.concat(frames) if frames else pd.DataFrame(columns=opened.columns, dtype=object)
    return Table(frame, errors, opened.notes)


def _check_rows(rows: int, max_rows: int | None) -> None:
    if max_rows is not None and rows > max_rows:
        raise BatchError(
            f"The file has more than {max_rows:,} rows; this app scores at most {max_rows:,}. Use the command "
            f"line for large files: {CLI_HINT}"
        )


def check_upload(filename: str, size_bytes: int, max_upload_mb: int) -> None:
    """Reject an upload by name or size before reading it; the message says what to do instead."""
    if not filename.lower().endswith((*TABLE_EXTENSIONS, ".xls")):
        raise BatchError(
            f"{filename!r} is not a CSV, TSV or Excel (.xlsx) file. Export your table as CSV (UTF-8) "
            "or .xlsx and upload that."
        )
    if size_bytes > max_upload_mb * 1024 * 1024:
        raise BatchError(
            f"The file is {size_bytes / 1024 / 1024:.1f} MB; the app accepts at most {max_upload_mb} MB. "
            f"Split it, or score it with the command line: {CLI_HINT}"
        )
    if size_bytes == 0:
        raise BatchError(_EMPTY_FILE)


# --- labelled data ----------------------------------------------------------------------------------
def read_labelled(source: str | Path, text_column: str = "text", label_column: str = "label") -> pd.DataFrame:
    """A labelled table (CSV/TSV/XLSX/Parquet, a local path or an az:// URI) read by `open_table`'s
    rules, as a frame of two string columns `text` and `label` (labels as written; the caller
    normalises them). Lines with no value at all are skipped, as blank lines between rows are; a row
    with more or fewer fields than the header, or a spreadsheet cell with an error value or a formula
    with no saved value, is refused naming its row, since training or metrics cannot flag a row."""
    name = str(source).rstrip("/").rsplit("/", 1)[-1]
    with storage.local_input(source) as local, open_table(local, name) as table:
        missing = [c for c in (text_column, label_column) if c not in table.columns]
        if missing:
            raise BatchError(
                f"{source} has no column(s) {missing}; its columns are {table.columns}. "
                "Use --text-column / --label-column to pick others."
            )
        frames = []
        for chunk in table.chunks(50_000):
            if chunk.row_errors:
                position, why = next(iter(sorted(chunk.row_errors.items())))
                raise BatchError(
                    f"{source}: data row {int(chunk.frame.index[position]) + 1}: {why}. Fix that row."
                )
            frames.append(chunk.frame[[text_column, label_column]])
    frame = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[text_column, label_column])
    )
    out = pd.DataFrame({"text": _labelled_cells(frame[text_column], source),
                        "label": _labelled_cells(frame[label_column], source)})  # fmt: skip
    return out[(out["text"] != "") | (out["label"] != "")].reset_index(drop=True)


def _labelled_cells(values: pd.Series, source: str | Path) -> pd.Series:
    """Cells as strings (a missing cell "", a number its text); a spreadsheet error value or a formula
    with no saved value is refused naming its data row."""
    for position, value in enumerate(values):
        if isinstance(value, (SpreadsheetError, UnsavedFormula)):
            what = (
                "an error value" if isinstance(value, SpreadsheetError) else "a formula with no saved value"
            )
            raise BatchError(
                f"{source}: data row {position + 1} of column {values.name!r} holds {what} ({value}). "
                "Fix the cell (or open and save the workbook in Excel) and try again."
            )
    return values.map(
        lambda v: "" if v is None or v is pd.NA else v if isinstance(v, str) else str(v)
    ).astype(object)
