"""Parts of a text: its sentences and contrastive clauses, each scored by the same model.

"The food was great but the service was painfully slow" holds two feelings; one three-way label
cannot say so. `split_parts` cuts a text at sentence ends (. ! ? … and line breaks) and before
contrastive words (but, however, although, though, yet, whereas: "yet"/"though" only where they
open a clause, after a comma or at a sentence start; a clause opened by although/though/while runs
to its comma), keeping every part's character offsets into the original text: `text[start:end]`
is the part, exactly (offsets count Unicode code points, Python's `str` indices; no cut falls
inside a grapheme, since cuts fall only at white space or after punctuation).

A text is `mixed` when one part is confidently positive and another confidently negative:
the part's label is positive (negative) and its probability is at least `MIXED_CONFIDENCE`, the
model card's own "uncertain" threshold (0.5 for the default model), fixed before measuring
(benchmarks/mixed.md). The three-way label stays the main answer; `mixed` is an extra boolean.

Texts longer than `LONG_TEXT_CHARS` (a tweet) are scored by parts: the text's probabilities are
the length-weighted mean of its parts' probabilities (each part weighs its number of characters),
so a long review is neither cut nor blurred into one bag of words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

MIXED_CONFIDENCE = 0.5
LONG_TEXT_CHARS = 280
_POLAR = ("negative", "positive")

# A sentence ends after . ! ? … (runs of them, closing quotes/brackets) followed by white space,
# or at a line break.
_SENTENCE_END = re.compile(r"""(?<=[.!?…])["'”’)\]]*\s+|\s*\n\s*""")
# Contrast markers; "yet", "though" and "while" open a clause only after a comma (or as "even though").
_CONTRAST = re.compile(r"\b(but|however|whereas|although|though|yet|while)\b", re.IGNORECASE)
_WEAK = {"yet", "though", "while"}
_CLAUSE_PUNCT = {",", ";", ":", "–", "—", "-"}
_OPENERS = re.compile(r"(?:although|though|even though|while|whereas)\b", re.IGNORECASE)
_WORD = re.compile(r"\w")
# The two shortcuts below give what the full rules give (tests/test_parts.py checks it with _FAST off).
_FAST = True
# Anything that could start a cut (a superset of the rules above): a text without it is one part,
# decided by one search in C (most tweets).
_MAY_CUT = re.compile(
    r"""[.!?…]["'”’)\]]*\s|\n|\b(?:but|however|whereas|although|though|yet|while)\b""", re.IGNORECASE
)


class Span(NamedTuple):
    """A part of a text: `text[start:end]` (a tuple: made by the thousand, cheaply)."""

    start: int
    end: int


def _trimmed(text: str, start: int, end: int) -> Span | None:
    """The span without surrounding white space (None when nothing is left)."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end) if end > start else None


def _cuts(text: str, start: int, end: int) -> list[int]:
    """Cut positions inside one sentence: before contrast words that open a clause, and after the
    comma that ends a clause opened by although/though/while."""
    sentence = text[start:end]
    cuts = set()
    for m in _CONTRAST.finditer(sentence):
        before = sentence[: m.start()].rstrip()
        if not before:
            continue  # the sentence starts with it ("But it broke."): already a part
        cut = m.start()
        if m.group(1).lower() in _WEAK and before[-1] not in _CLAUSE_PUNCT:
            if m.group(1).lower() == "though" and before.lower().endswith("even"):
                cut = len(before) - 4  # "..., even though ...": the clause starts at "even"
            else:
                continue  # "not yet", "it was good though", "a while": not a new clause
        cuts.add(start + cut)
    opener = _OPENERS.match(sentence)
    if opener:
        comma = sentence.find(",", opener.end())
        if comma > 0:
            cuts.add(start + comma + 1)
    return sorted(c for c in cuts if start < c < end)


def split_parts(text: str) -> list[Span]:
    """The parts of `text`, in order; a text with no cut is one part. Parts with no letter or
    digit (an emoji, "!!!") join the part before them (or after, for a first part)."""
    if _FAST and not _MAY_CUT.search(text):
        return [_trimmed(text, 0, len(text)) or Span(0, len(text))]
    spans: list[Span] = []
    bounds = [0]
    for m in _SENTENCE_END.finditer(text):
        bounds += [m.start(), m.end()]
    bounds.append(len(text))
    contrast = not _FAST or _CONTRAST.search(text) is not None  # else the sentences are the parts
    for s, e in zip(bounds[0::2], bounds[1::2]):
        edges = [s, *_cuts(text, s, e), e] if contrast else [s, e]
        for a, b in zip(edges, edges[1:]):
            span = _trimmed(text, a, b)
            if span:
                spans.append(span)
    merged: list[Span] = []
    for span in spans:
        if (
            merged
            and not _WORD.search(text[span.start : span.end])
            or merged
            and not _WORD.search(text[merged[-1].start : merged[-1].end])
        ):
            merged[-1] = Span(merged[-1].start, span.end)
        else:
            merged.append(span)
    return merged or [Span(0, len(text))]


def is_mixed(labels: Sequence[str], probas: np.ndarray, label_names: Sequence[str]) -> bool:
    """Whether the parts hold a confidently positive part and a confidently negative one."""
    found = set()
    for label, row in zip(labels, probas):
        if label in _POLAR and float(row[list(label_names).index(label)]) >= MIXED_CONFIDENCE:
            found.add(label)
    return len(found) == 2


def length_weighted(spans: Sequence[Span], probas: np.ndarray) -> np.ndarray:
    """The probabilities of a whole text from its parts': their mean weighted by part length."""
    weights = np.array([s.end - s.start for s in spans], dtype=np.float64)
    return (probas * weights[:, None]).sum(axis=0) / weights.sum()


class Parted:
    """Every text's parts and their probabilities (one model call for all parts of all texts of
    more than one part; a text of one part is its own part, given its whole-text row by `fill`).
    Only the texts of several parts are visited one by one: most tweets have one."""

    def __init__(self, spans: list[list[Span]], multi: list[int], scored: np.ndarray | None) -> None:
        self.spans = spans
        self.multi = multi  # indices of the texts of more than one part, in order
        self._part_probas: dict[int, np.ndarray] = {}
        start = 0
        for i in multi:
            self._part_probas[i] = scored[start : start + len(spans[i])]  # type: ignore[index]
            start += len(spans[i])
        self._whole: np.ndarray | None = None

    @property
    def probas(self) -> list[np.ndarray]:
        """Per text, (parts, classes): the parts' rows, or the whole-text row for a one-part text."""
        if self._whole is None:
            raise ValueError("fill() the one-part texts first")
        return [self._part_probas.get(i, self._whole[i : i + 1]) for i in range(len(self.spans))]

    def fill(self, whole: np.ndarray) -> np.ndarray:
        """Give one-part texts their whole-text row; return the texts' probabilities: `whole`, with
        texts longer than LONG_TEXT_CHARS replaced by their parts' length-weighted mean."""
        out = np.array(whole, dtype=np.float64, copy=True)
        self._whole = out
        for i in self.multi:
            spans = self.spans[i]
            if spans[-1].end > LONG_TEXT_CHARS:
                out[i] = length_weighted(spans, self._part_probas[i])
        return out

    def mixed(self, labels: Sequence[str]) -> list[bool]:
        """`is_mixed` of every text (False for a text of one part)."""
        out = [False] * len(self.spans)
        for i in self.multi:
            probas = self._part_probas[i]
            out[i] = is_mixed([labels[k] for k in np.argmax(probas, axis=1)], probas, labels)
        return out

    def records(self, texts: Sequence[str], labels: Sequence[str]) -> list[list[dict[str, Any]]]:
        """Per text, its parts as JSON-ready dicts: text, start, end, sentiment, scores."""
        out = []
        for text, spans, probas in zip(texts, self.spans, self.probas):
            out.append([
                {
                    "text": text[s.start : s.end],
                    "start": s.start,
                    "end": s.end,
                    "sentiment": labels[int(np.argmax(row))],
                    "scores": {label: float(p) for label, p in zip(labels, row)},
                }
                for s, row in zip(spans, probas)
            ])  # fmt: skip
        return out


def long_texts(texts: Sequence[str]) -> np.ndarray:
    """Which texts are longer than LONG_TEXT_CHARS (scored by parts whatever else is asked)."""
    return np.fromiter((len(t) > LONG_TEXT_CHARS for t in texts), dtype=bool, count=len(texts))


def score_parts(
    predict_proba: Callable[[list[str]], np.ndarray],
    texts: Sequence[str],
    whole: np.ndarray | None = None,
) -> Parted:
    """Split every text and score the parts of the texts of more than one part with one call of
    `predict_proba` (a list of strings -> (n, classes) probabilities: any backend's). With `whole`
    (the texts' own probabilities) the one-part texts are filled in at once, else call `fill`."""
    spans = [split_parts(t) for t in texts]
    multi = [i for i, ss in enumerate(spans) if len(ss) > 1]
    flat = [texts[i][s.start : s.end] for i in multi for s in spans[i]]
    parted = Parted(spans, multi, predict_proba(flat) if flat else None)
    if whole is not None:
        parted.fill(whole)
    return parted
