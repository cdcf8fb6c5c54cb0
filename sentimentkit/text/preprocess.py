"""Tweet normalisation and tokenisation, built on NLTK's TweetTokenizer regex.

`tokenize(text)` returns the tokens that every model feature is built from:

- HTML entities unescaped, curly apostrophes straightened;
- tokens split with the TweetTokenizer regex (emoticons, hashtags, URLs and emoji stay whole);
- URLs -> ``<url>``, user mentions -> ``@user``, numbers -> ``<num>``;
- elongations reduced ("soooo" -> "soo") with an ``<elong>`` cue, SHOUTED words get ``<allcaps>``;
- hashtags give both ``#tag`` and ``tag``;
- negation scope marked: words after "not", "never", "n't"... up to clause punctuation get a
  ``_NEG`` suffix. Negation words themselves are kept.

No NLTK data is downloaded: only the tokenizer's regular expressions are used. Speed comes from
tokenising each whitespace-separated chunk once and caching it, because the TweetTokenizer regex
never matches across whitespace (for the patterns kept here; the phone pattern is not used).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

import regex
from nltk.tokenize.casual import REGEXPS

NEG_SUFFIX = "_NEG"
URL_TOKEN = "<url>"
USER_TOKEN = "@user"
NUM_TOKEN = "<num>"
ELONG_TOKEN = "<elong>"
ALLCAPS_TOKEN = "<allcaps>"
MARKERS = frozenset({URL_TOKEN, USER_TOKEN, NUM_TOKEN, ELONG_TOKEN, ALLCAPS_TOKEN})

_WORD_RE = regex.compile(f"({'|'.join(REGEXPS)})", regex.VERBOSE | regex.I | regex.UNICODE)
_URL_RE = re.compile(r"^(?:https?:|www\.|[a-z0-9.\-]+\.[a-z]{2,13}/)", re.I)
_NUM_RE = re.compile(r"^[+\-]?\d+(?:[,/.:\-]\d+)*[+\-]?(?:st|nd|rd|th|s|k|m|am|pm|%)?$", re.I)
_ELONG_RE = re.compile(r"(\w)\1{2,}")
_SIMPLE_RE = re.compile(
    r"([\"'\u201c]?)(\#[A-Za-z0-9_]{2,}|[^\W\d_]+(?:['\-][^\W\d_]+)*)([\"'\u201d]?)([.,!?\u2026]*)([:;]?)"
)
_MARKS_RE = re.compile(r"\.\.+|.")  # the regex's ellipsis (dots with no space between) or one mark
_NEGATORS = frozenset(
    [
        "never",
        "no",
        "nothing",
        "nowhere",
        "noone",
        "none",
        "not",
        "nor",
        "neither",
        "without",
        "cannot",
        "havent",
        "hasnt",
        "hadnt",
        "cant",
        "couldnt",
        "shouldnt",
        "wont",
        "wouldnt",
        "dont",
        "doesnt",
        "didnt",
        "isnt",
        "arent",
        "aint",
        "wasnt",
        "werent",
    ]
)
_SCOPE_END = frozenset([".", ",", ":", ";", "!", "?", "but", "however"])
_SETTERS = _SCOPE_END | _NEGATORS
_CHUNK_CACHE_MAX = 400_000
_chunk_cache: dict[str, tuple[tuple[str, ...], tuple[str, ...], bool, bool]] = {}


def set_chunk_cache_limit(entries: int) -> None:
    """Bound the chunk cache to `entries` (dropped when full; a result never depends on it)."""
    global _CHUNK_CACHE_MAX
    if entries < 1:
        raise ValueError("entries must be at least 1")
    _CHUNK_CACHE_MAX = entries
    if len(_chunk_cache) > entries:
        _chunk_cache.clear()


def _normalise_token(token: str) -> list[str]:
    """Map one raw TweetTokenizer token to its normalised form(s)."""
    if len(token) == 1:  # most often a mark: what _normalise_any gives one character (\d is category Nd)
        return [NUM_TOKEN] if token.isdecimal() else [token.lower()]
    return _normalise_any(token)


def _normalise_any(token: str) -> list[str]:
    """`_normalise_token` without its shortcut for one character."""
    # letters only, or a hashtag: no mention, URL (needs ":" or "." before any "#") or number
    if not token.isalpha() and token[0] != "#":
        if token.startswith("@") and len(token) > 1:
            return [USER_TOKEN]
        if _URL_RE.match(token):
            return [URL_TOKEN]
        if _NUM_RE.match(token):
            return [NUM_TOKEN]
    out: list[str] = []
    if len(token) >= 3 and token.isupper() and any(c.isalpha() for c in token):
        out.append(ALLCAPS_TOKEN)
    lowered = token.lower()
    reduced = lowered
    if _ELONG_RE.search(lowered):  # rare; sub() with a template costs far more than search()
        reduced = _ELONG_RE.sub(r"\1\1", lowered)
        out.append(ELONG_TOKEN)
    if reduced.startswith("#") and len(reduced) > 1:
        out.append(reduced)
        reduced = reduced.lstrip("#")
    out.append(reduced)
    return out


def _simple_split(chunk: str) -> list[str] | None:
    """The TweetTokenizer regex's tokens of a chunk of a common simple shape, or None.

    Shapes: an optional opening quote, a word (letters, inner ' or -) or an ASCII hashtag, an
    optional closing quote, a run of . , ! ? … and an optional final : or ;. For these the regex
    gives the quote, the word or hashtag whole, the closing quote, each mark alone except runs of
    dots (one ellipsis token), and the colon: no URL, e-mail, mention, number or emoji pattern can
    start in them, and an emoticon only where a word of at most two letters starts with a mouth
    (d, p: "D:", "Do:", "p':"), which is left to the regex. A quarter of the cost of the regex;
    `tests/test_preprocess.py` checks it against the regex.
    """
    match = _SIMPLE_RE.fullmatch(chunk)
    if match is None:
        return None
    lead, word, close, marks, colon = match.groups()
    if word[0] != "#":
        # Python's [^\W\d_] also takes numerals such as "²", which the regex does not call letters
        if not word.replace("'", "").replace("-", "").isalpha():
            return None
        if len(word) <= 2 and word[0] in "dDpP" and len(word) < len(chunk) - len(lead):
            return None  # could start an emoticon
    tokens = [lead, word, close] if lead or close else [word]
    if marks:
        tokens += _MARKS_RE.findall(marks) if ".." in marks else marks
    if colon:
        tokens.append(colon)
    return [t for t in tokens if t] if lead or close else tokens


def _tokenize_chunk(chunk: str) -> tuple[str, ...]:
    """Normalised tokens of one whitespace-free chunk (before negation marking)."""
    if chunk.isalpha():  # the TweetTokenizer regex keeps a run of letters whole: skip it (common)
        lowered = chunk.lower()
        if (len(chunk) < 3 or not chunk.isupper()) and not _ELONG_RE.search(lowered):
            return (lowered,)  # what _normalise_token gives a plain word, without its other checks
        return tuple(_normalise_token(chunk))
    if chunk[0] == "#" and len(chunk) >= 3 and chunk.isascii() and chunk[1:].isalnum():
        # an ASCII hashtag alone: _simple_split's one token, which _normalise_token gives as the
        # lowered tag with and without its "#" (unless shouted or elongated)
        lowered = chunk.lower()
        if not chunk.isupper() and not _ELONG_RE.search(lowered):
            return (lowered, lowered[1:])
        return tuple(_normalise_token(chunk))
    tokens: list[str] = []
    for raw in _simple_split(chunk) or _WORD_RE.findall(chunk):
        tokens.extend(_normalise_token(raw))
    return tuple(tokens)


def _chunk_entry(chunk: str) -> tuple[tuple[str, ...], tuple[str, ...], bool, bool]:
    """`chunk_tokens(chunk)`, cached (bounded; the cache never changes a result)."""
    entry = _chunk_cache.get(chunk)
    if entry is None:
        entry = chunk_tokens(chunk)
        if len(_chunk_cache) >= _CHUNK_CACHE_MAX:
            _chunk_cache.clear()  # bounded memory under adversarial input; refills from traffic
        _chunk_cache[chunk] = entry
    return entry


def chunk_tokens(chunk: str) -> tuple[tuple[str, ...], tuple[str, ...], bool, bool]:
    """A whitespace-free chunk's tokens as marked when entered outside / inside a negation scope,
    and the scope state after it in each case. Negation marking is a left-to-right state machine,
    so marking chunk by chunk with the carried state equals marking the whole token list; callers
    cache this per chunk."""
    plain, after = chunk_plain_tokens(chunk)
    if after is None:  # no token opens or closes a scope: the state passes through the chunk
        return plain, tuple(map(_negated, plain)), False, True
    # tokens before the first that sets the state are as raw in `plain`; from it on, the entry
    # state no longer matters
    i = _first_setter(plain)
    return plain, tuple(map(_negated, plain[:i])) + plain[i:], after, after


def chunk_plain_tokens(chunk: str) -> tuple[tuple[str, ...], bool | None]:
    """The chunk's tokens as entered outside a negation scope, and the scope state it leaves
    (None: it passes the entry state through unchanged); `chunk_tokens` adds the negated variant."""
    raw = _tokenize_chunk(chunk)
    i = _first_setter(raw)
    if i is None:
        return raw, None
    rest, state = _mark(raw[i:], False)
    return raw[:i] + tuple(rest), state


def _first_setter(tokens: tuple[str, ...]) -> int | None:
    """Index of the first token that opens or closes a negation scope, or None."""
    for i, tok in enumerate(tokens):
        if tok in _SETTERS or tok.endswith("n't"):  # a scope end or `is_negator`, inlined (hot loop)
            return i
    return None


def _negated(tok: str) -> str:
    """A token inside a negation scope (not itself a negator or scope end): words get `_NEG`."""
    return tok + NEG_SUFFIX if tok not in MARKERS and tok[0].isalpha() else tok


def is_negator(token: str) -> bool:
    """True for negation cues: "not", "never", "no", and any word ending in "n't"."""
    return token in _NEGATORS or token.endswith("n't")


def mark_negation(tokens: list[str]) -> list[str]:
    """Suffix `_NEG` to words in a negation scope (after a negator, up to clause punctuation)."""
    return _mark(tokens, False)[0]


def _mark(tokens: Iterable[str], negating: bool) -> tuple[list[str], bool]:
    """Negation marking starting in state `negating`; returns the tokens and the final state."""
    out: list[str] = []
    for tok in tokens:
        if tok in _SCOPE_END:
            negating = False
            out.append(tok)
        elif is_negator(tok):
            negating = True
            out.append(tok)
        else:
            out.append(_negated(tok) if negating else tok)
    return out, negating


def clean_text(text: str) -> str:
    """Unescape HTML entities and straighten typographic apostrophes."""
    if "&" in text:
        text = html.unescape(text)
    return text.replace("\u2019", "'").replace("\u2018", "'")


def tokenize(text: str) -> list[str]:
    """Normalise and tokenise one text into the model's tokens (see module docstring)."""
    tokens: list[str] = []
    _extend_tokens(tokens, text)
    return tokens


def tokenize_many(texts: Iterable[str]) -> tuple[list[str], list[int]]:
    """`tokenize` of each text, all tokens in one flat list, and each text's number of tokens.

    For batches: one list instead of one per text. Besides the allocations, that spares the
    cyclic garbage collector, which promotes the lists alive when it runs (mid-batch) to its
    oldest generation and, once enough have been promoted, walks every object of the process
    (measured: one such pass cost ~10 us per text of a 12k-tweet batch run).
    """
    tokens: list[str] = []
    counts: list[int] = []
    for text in texts:
        before = len(tokens)
        _extend_tokens(tokens, text)
        counts.append(len(tokens) - before)
    return tokens, counts


def _extend_tokens(tokens: list[str], text: str) -> None:
    """Append the tokens of `text` to `tokens`."""
    negating = False
    get = _chunk_cache.get
    for chunk in clean_text(text).split():
        plain, negated, after_plain, after_negated = get(chunk) or _chunk_entry(chunk)
        if negating:
            tokens += negated
            negating = after_negated
        else:
            tokens += plain
            negating = after_plain


def base_token(token: str) -> str:
    """The token without its negation suffix."""
    return token[: -len(NEG_SUFFIX)] if token.endswith(NEG_SUFFIX) else token


def tokenize_with_spans(text: str) -> list[tuple[str, int, int]]:
    """Like `tokenize`, but each token carries the (start, end) of its source chunk in `text`.

    Used to highlight explanations in the original text; `[t for t, _, _ in ...]` equals
    `tokenize(text)`.
    """
    tokens: list[str] = []
    spans: list[tuple[int, int]] = []
    for match in re.finditer(r"\S+", text):
        for chunk in clean_text(match.group()).split():
            for tok in _tokenize_chunk(chunk):
                tokens.append(tok)
                spans.append(match.span())
    return [(tok, s, e) for tok, (s, e) in zip(mark_negation(tokens), spans)]
