"""The formula guard: a cell a spreadsheet would run as a formula is written so that it will not.

Neutralising a cell means prefixing it with an apostrophe ("'=1+1"), the OWASP CSV-injection advice.
Three modes (`FORMULA_GUARDS`), chosen by `--formula-guard`, `SENTIMENTKIT_FORMULA_GUARD`, the API's
`formula_guard` field and the app:

- `auto` (the default): only the cells a spreadsheet would really evaluate or link (`is_live_formula`
  says exactly which), so ordinary text such as "@united thanks for nothing", "-5 degrees",
  "+1 great service", "- so true", "@user :)" and "-- end" comes back byte-identical;
- `all`: every text cell starting with = + - @ TAB or CR that is not a plain number (the blanket
  OWASP rule; on tweets it changes every reply that starts with @user);
- `off`: nothing is changed (for files that are never opened in a spreadsheet).

How the spreadsheets decide (checked for `auto`, see `is_live_formula`):
- Excel, opening a CSV, treats each field as typed input: "=" starts a formula; "+" and "-" start
  one too (Lotus-style entry: "+A1" becomes "=+A1") and "@" starts a Lotus function ("@SUM(A1:A2)"
  becomes "=SUM(A1:A2)"); a field that does not parse as a formula stays text (typed by hand, Excel
  refuses it with "There's a problem with this formula"). The published CSV-injection payloads
  ("=HYPERLINK(...)", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0") rely on this.
- LibreOffice Calc (7.4, its CSV filter with "Evaluate formulas" on) and Gnumeric (1.12, ssconvert),
  tried here, evaluate a field only when it starts with "=" ("=)" and "==1" included); "+A1", "-A1",
  "@SUM(...)", " =1+1" and TAB "=1+1" stay text (tests/test_formula.py converts files with Calc).
- Google Sheets turns "=" fields into formulas when its import converts text to numbers, dates and
  formulas. OWASP (CSV Injection) lists = + - @ TAB CR as the risky first characters; TAB and CR
  because a reader that trims them would then see the formula behind them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sentimentkit.config import (  # the modes live with the settings that choose them
    DEFAULT_FORMULA_GUARD,
    FORMULA_GUARDS,
    FormulaGuard,
    check_formula_guard,
)

if TYPE_CHECKING:  # pandas is imported where frames are handled, so that Settings can import this
    import pandas as pd

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def neutralise_formulas(frame: pd.DataFrame, mode: str = DEFAULT_FORMULA_GUARD) -> pd.DataFrame:
    """A copy of `frame` in which every text cell (and column name) the guard `mode` selects is
    prefixed with ' (see the module docstring for the modes). The input is not modified."""
    mode = check_formula_guard(mode)
    out = frame.copy()
    if mode == "off":
        return out
    for column in out.columns:
        if _may_hold_text(out[column]):
            out[column] = _neutralise_column(out[column], mode)
    out.columns = [neutralise_cell(c, mode) for c in out.columns]
    return out


def _may_hold_text(values: pd.Series) -> bool:
    import pandas as pd

    return values.dtype == object or pd.api.types.is_string_dtype(values)


def _neutralise_column(values: pd.Series, mode: str) -> pd.Series:
    """Only the cells whose first character could start a formula are looked at one by one."""
    try:
        starts = values.str.match(r"[=+\-@\t\r]", na=False)
    except AttributeError:  # no strings in this column
        return values
    if not starts.any():
        return values
    out = values.copy()
    out[starts] = values[starts].map(lambda v: neutralise_cell(v, mode))
    return out


def neutralise_cell(value: Any, mode: str = DEFAULT_FORMULA_GUARD) -> Any:
    """`value` with a ' in front when it is text the guard `mode` selects; anything else unchanged."""
    if isinstance(value, str) and needs_neutralising(value, mode):
        return "'" + value
    return value


def needs_neutralising(text: str, mode: str = DEFAULT_FORMULA_GUARD) -> bool:
    """Whether the guard `mode` prefixes `text` with '.

    - `all`: `text` starts with = + - @ TAB or CR and is not a plain number ("-12.5", "+3").
    - `auto`: `text` starts with "=", TAB or CR; or it starts with + - or @, is not a plain number,
      and `is_live_formula(text)`.
    - `off`: never.
    """
    if mode == "off" or not text.startswith(_FORMULA_START):
        return False
    if text[0] in "=\t\r":
        return True
    if _NUMBER_RE.match(text):
        return False
    return mode == "all" or is_live_formula(text)


# --- auto: does a cell that starts with + - or @ read as a live formula? -----------------------------
def is_live_formula(text: str) -> bool:
    """Whether Excel could read `text`, a cell starting with + - or @, as a formula that evaluates
    something or links somewhere. The rule, precisely:

    1. The cell is read as a formula (Excel: "=" + cell; a leading "@" is the Lotus function prefix,
       read as the prefix operator "@"). It must parse, whole, under a grammar that accepts at least
       what Excel accepts (Excel is the spreadsheet that reads + - @ cells as formulas), and the
       notations of Calc and Sheets too, so that when in doubt, it parses:
       - operands: numbers ("1", ".5", "1e5"); strings ("x", with "" inside); TRUE and FALSE; error
         values (#N/A, #REF!...); cell references and ranges in every notation (A1, $A$1, A1:B2,
         A:A, $1:$1, R1C1, R[1]C[-1], RC, R, C, Sheet1!A1, 'My sheet'!A1, Sheet1.A1 of Calc,
         [1]Sheet1!A1 and [Book.xlsx]Sheet1!A1, Table1[Col]); names (any other word, with the
         characters Excel allows: letters, digits, _ . ? \\); function calls (a word directly followed
         by "(", as Excel requires; empty arguments allowed; LAMBDA(x,x)(1)); quoted names 'x';
         array constants {1,2;3,4}; parentheses;
       - operators: prefix + - @; postfix % and # (spill); infix + - * / ^ & = <> < > <= >= : , ; ! ~
         and the DDE link "app|topic!item" (| then a topic followed by ! and an item); spaces around
         all of them; a space between two reference-like operands (references, names, calls,
         parentheses) is Excel's intersection operator, so a run of words parses.
    2. The parsed formula is live when it has a function call or a DDE link anywhere (these run
       commands, open links or send data: HYPERLINK, WEBSERVICE, IMPORTXML, cmd|...), or when every
       word in it is a reference, TRUE/FALSE or a function (it computes a value: "+A1", "-2+3",
       "-true", "- 1", "-UA123", "@A1").

    Left as text, therefore: a cell that does not parse ("-5 degrees", "+1 great service",
    "@user :)", "+44 20 7946 0958"), and one that parses only thanks to plain words that are not
    references or functions ("-- end", "- so true", "-hello", "@united thanks for nothing",
    "@united flight UA123 delayed"). Such words are names no CSV defines: Excel shows the cell as
    #NAME? at worst, and without a function call or a link nothing is run, fetched or sent.
    (Calc and Gnumeric do not read + - @ cells as formulas at all.) A word followed by a space and
    "(" ("@user thanks (again)", "- SUM (A1)") is a name and a parenthesis, as in Excel's syntax,
    where the space between them is the intersection operator, not a call: text.
    """
    # Without "(" or "|" there is no call and no link, so the first plain name settles it: text.
    parsed = _parse(text, stop_at_name="(" not in text and "|" not in text)
    if parsed is None:
        return False
    return parsed.has_call or parsed.has_link or not parsed.has_name


# One pattern for every token; the order of the alternatives decides (ranges before numbers and words).
_ERRORS = r"NULL!|DIV/0!|VALUE!|REF!|NAME\?|NUM!|N/A|GETTING_DATA|SPILL!|CALC!|FIELD!|BLOCKED!|CONNECT!|BUSY!|UNKNOWN!|EXTERNAL!|PYTHON!"
_TOKEN = re.compile(
    r"(?P<space>[ \t\r\n]+)"
    r'|(?P<string>"(?:[^"]|"")*")'
    r"|(?P<quoted>'(?:[^']|'')*')"
    rf"|(?P<error>#(?:{_ERRORS}))"
    r"|(?P<rows>\$?\d+:\$?\d+(?![\w.]))"  # $1:$3
    r"|(?P<columns>\$?[A-Za-z]{1,3}:\$?[A-Za-z]{1,3}(?![\w.(\[!]))"  # A:C, $A:$XFD
    # R1C1 with relative parts (R[1]C[-1], RC[2], R[-1]); the plain forms (R1C1, RC, R, C) are words
    r"|(?P<r1c1>[Rr](?:\[-?\d+\]|\d*)[Cc](?:\[-?\d+\]|\d*)(?![\w.])|[RrCc]\[-?\d+\](?![\w.]))"
    r"|(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<word>[$\\]*[^\W\d][\w.?\\$]*)"
    r"|(?P<op><>|<=|>=|[-+*/^&=<>:,;!~|@%#])"
    r"|(?P<punct>[(){}])"
    r"|(?P<bracket>\[)",
    re.IGNORECASE,
)
_WORD = re.compile(r"[$\\]*[^\W\d][\w.?\\$]*")
_A1 = re.compile(r"\$?[A-Za-z]{1,3}\$?\d+")
_R1C1 = re.compile(r"[Rr]\d*[Cc]\d*|[Rr]\d*|[Cc]\d*")
_KIND = {
    "string": "value",
    "error": "value",
    "number": "value",
    "rows": "ref",
    "columns": "ref",
    "r1c1": "ref",
}
_PREFIX = frozenset("+-@")
_NOT_INFIX = frozenset("@%#")
_POSTFIX = frozenset("%#")
_LIST_SEPARATORS = frozenset(",;")


class _Parsed:
    """What a parse found: function calls, DDE links, plain names."""

    __slots__ = ("has_call", "has_link", "has_name")

    def __init__(self) -> None:
        self.has_call = self.has_link = self.has_name = False


class _Token:
    __slots__ = ("kind", "text", "spaced")

    def __init__(self, kind: str, text: str, spaced: bool) -> None:
        self.kind = kind  # "ref", "name", "value", "call", "sheet", "bracket", "op", "(", ")", "{", "}"
        self.text = text
        self.spaced = spaced  # whitespace came before it


def _word_kind(word: str) -> str:
    """A word's kind: "value" (TRUE/FALSE), "ref" (a cell reference in any notation) or "name"."""
    bare = word.replace("$", "")
    if bare.upper() in ("TRUE", "FALSE"):
        return "value"
    if _A1.fullmatch(word) or _R1C1.fullmatch(bare):
        return "ref"
    if "." in word and _A1.fullmatch(word.rsplit(".", 1)[1]):  # Calc's Sheet1.A1, $Sheet1.$A$1
        return "ref"
    return "name"


def _bracket_end(text: str, start: int) -> int | None:
    """The index after the "]" closing the "[" at `start` (nested brackets allowed), or None."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "[":
            depth += 1
        elif text[i] == "]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _tokens(text: str, stop_at_name: bool = False) -> list[_Token] | None:
    """`text` as tokens, or None at the first character no formula grammar has (`stop_at_name`: also
    at the first plain name)."""
    out: list[_Token] = []
    i, n, spaced = 0, len(text), False
    while i < n:
        m = _TOKEN.match(text, i)
        if m is None:
            return None
        group, token, i = m.lastgroup, m.group(), m.end()
        if group == "space":
            spaced = True
            continue
        if group == "bracket":
            end = _bracket_end(text, i - 1)
            if end is None:
                return None
            token, i = text[i - 1 : end], end
        kind = _KIND.get(group) or ("op" if group == "op" else token if group == "punct" else group)
        if group in ("quoted", "word") and text.startswith("!", i):  # Sheet1!A1, 'My sheet'!A1, cmd|'x'!A0
            kind, i = "sheet", i + 1
        elif group == "quoted":
            kind = "name"
        elif group == "word":
            kind = "call" if text.startswith("(", i) else _word_kind(token)
        if stop_at_name and kind == "name" and not text.startswith("[", i):
            return None
        out.append(_Token(kind, token, spaced))
        spaced = False
    return out


class _Parser:
    """A permissive recursive-descent reading of a token list as one formula expression."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.found = _Parsed()

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def expression(self, in_list: bool = False) -> bool:
        """operand (infix operand | space reference-like-operand)*; `in_list`: , and ; end it."""
        left = self.operand()
        if left is None:
            return False
        while (token := self.peek()) is not None:
            if token.kind == "op" and token.text not in _NOT_INFIX:
                if in_list and token.text in _LIST_SEPARATORS:
                    return True
                self.i += 1
                if token.text == "|":  # DDE: app|topic!item, the topic followed by "!"
                    nxt = self.peek()
                    if nxt is None or nxt.kind != "sheet":
                        return False
                    self.found.has_link = True
                left = self.operand()
                if left is None:
                    return False
            elif token.spaced and left and self._starts_reference():  # Excel's intersection: A1:B9 B2
                left = self.operand()
                if left is None:
                    return False
            else:
                return True
        return True

    def _starts_reference(self) -> bool:
        token = self.peek()
        if token is not None and token.kind == "op" and token.text == "@":  # Excel's A1:A9 @B1:B9
            return True
        return token is not None and token.kind in ("ref", "name", "call", "sheet", "bracket", "(")

    def operand(self) -> bool | None:
        """One operand with its prefix and postfix operators: True when it is reference-like
        (may take part in an intersection), False when it is a value, None when there is none."""
        while (token := self.peek()) is not None and token.kind == "op" and token.text in _PREFIX:
            self.i += 1
        token = self.peek()
        if token is None:
            return None
        self.i += 1
        kind = token.kind
        if kind == "value":
            reference = False
        elif kind in ("ref", "name"):
            nxt = self.peek()  # Table1[Col] is a reference, not a name
            table = nxt is not None and nxt.kind == "bracket" and not nxt.spaced
            self.found.has_name |= kind == "name" and not table
            reference = True
            if not self._structured():
                return None
        elif kind == "sheet":  # Sheet1!A1, 'x'!A1, the topic!item of cmd|'topic'!item
            nxt = self.peek()
            if nxt is None or nxt.kind not in ("ref", "name", "value") or nxt.spaced:
                return None
            self.i += 1
            reference = True
        elif kind == "bracket":  # [1]Sheet1!A1, [Book.xlsx]Sheet1!A1, [@Col], [[#This Row],[Col]]
            nxt = self.peek()
            if nxt is not None and nxt.kind in ("sheet", "ref", "name") and not nxt.spaced:
                self.operand()
            reference = True
        elif kind == "call":
            self.found.has_call = True
            if not self._group("(", ")"):
                return None
            reference = True
            if not self._structured():
                return None
        elif kind in ("(", "{"):
            self.i -= 1
            if not self._group(kind, ")" if kind == "(" else "}"):
                return None
            reference = kind == "("
        else:
            return None
        while (token := self.peek()) is not None and token.kind == "op" and token.text in _POSTFIX:
            self.i += 1
        return reference

    def _structured(self) -> bool:
        """Table1[Col] and LAMBDA(x, x)(1): brackets or parentheses right after an operand."""
        while (token := self.peek()) is not None and not token.spaced:
            if token.kind == "bracket":
                self.i += 1
            elif token.kind == "(":
                self.found.has_call = True
                if not self._group("(", ")"):
                    return False
            else:
                break
        return True

    def _group(self, opening: str, closing: str) -> bool:
        """( items ) or { items }, items separated by , or ; and possibly empty: f(), f(1,,2)."""
        token = self.peek()
        if token is None or token.kind != opening:
            return False
        self.i += 1
        while True:
            token = self.peek()
            if token is None:
                return False
            if token.kind == closing:
                self.i += 1
                return True
            if token.kind == "op" and token.text in _LIST_SEPARATORS:
                self.i += 1
                continue
            if not self.expression(in_list=True):
                return False


def _parse(text: str, stop_at_name: bool = False) -> _Parsed | None:
    """What the formula reading of `text` holds, or None when `text` is not one formula (or, with
    `stop_at_name`, has a plain name)."""
    tokens = _tokens(text, stop_at_name)
    if not tokens:
        return None
    parser = _Parser(tokens)
    if not parser.expression() or parser.i != len(tokens):
        return None
    return parser.found


__all__ = [
    "DEFAULT_FORMULA_GUARD",
    "FORMULA_GUARDS",
    "FormulaGuard",
    "check_formula_guard",
    "is_live_formula",
    "needs_neutralising",
    "neutralise_cell",
    "neutralise_formulas",
]
