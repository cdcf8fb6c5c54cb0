"""Which language a text is in, so that the product says when it is reading a language it cannot.

The models read English (`MODEL_LANGUAGE`). Every scored text gets a `Language`: an ISO 639-1 code
and a confidence. Asking the detector (py3langid, a maintained fork of langid.py with its model
bundled in the wheel: no download, ~97 languages) costs more than scoring, so it runs only where a
cheap test says a text may not be English (benchmarks/language_guard.md measures all of this):

- `VocabularyTest` (the default model): from the token ids the model has already read, the share of
  a text's word tokens (letters; not @user, #tags or <url>) that the model's word vocabulary knows,
  and the share of them written in a non-Latin script. A text is suspect when fewer than
  `KNOWN_SHARE` of its words are known or more than `NON_LATIN_SHARE` are non-Latin.
- `function_word_test` (any other backend): no common English word (the, and, you...) among its
  words, or mostly non-Latin letters.

A suspect text is non-English when the detector gives English a probability below `MAX_ENGLISH`
(its language is then the detector's top language, with that language's probability); otherwise it
counts as English, with the detector's probability of English.
A text the cheap test clears counts as English with confidence None (the detector was not asked),
and so does a suspect text with fewer than `MIN_WORDS` words once @mentions, URLs and #tags are
removed (too short to tell).
Non-English texts are still scored; front ends flag them and Insights leaves them out by default.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from sentimentkit.text._lookup import compiled

MODEL_LANGUAGE = "en"
# Below this share of known words a text is sent to the detector (benchmarks/language_guard.md).
KNOWN_SHARE = 0.5
# Texts with fewer words (in Latin script) are not sent to the detector: too short to tell.
MIN_WORDS = 3
# Above this share of non-Latin letters (or word tokens) a text is sent to the detector.
NON_LATIN_SHARE = 0.2
# A suspect text is non-English when the detector gives English less than this probability (its
# top language is then reported: py3langid often splits a short Spanish text between es, pt and gl,
# so the top language's own probability says less than the probability of English).
MAX_ENGLISH = 0.1
_LATIN_END = "\u024f"  # Basic Latin .. Latin Extended-B
_LATIN_EXTENDED_ADDITIONAL = ("\u1e00", "\u1eff")  # Vietnamese letters: Latin too

# Common English words that are not also common words of other Latin-script languages ("die",
# "war", "was", "will", "me", "no", "on", "is", "of", "to", "my"... are left out on purpose).
ENGLISH_WORDS = frozenset(
    """the and you your that this with just have what not but are it's i'm don't can't get about
    they when would from there their all like love know more one people time good day out how now
    only really we our it been were has had why who because very should could going want think see
    new today can if or up its im dont lol be us than then them which some any these those here
    where thank thanks got need make never always over back still even much many well last next
    right best great happy life world year years night morning tonight tomorrow yesterday ever
    every something nothing everything anyone someone let that's what's you're i've i'll he's
    she's they're isn't doesn't didn't won't wasn't aren't haven't""".split()  # noqa: SIM905
)
# Common words of other Latin-script languages that are not English words ("a", "in", "die", "de",
# "la", "los", "on", "do", "van", "met"... are left out: English tweets hold them, e.g. Los Angeles).
FOREIGN_WORDS = (
    frozenset(
        """der das und ist nicht ein eine ich mit für auf dem den des sich auch nur wird sind oder
        wenn kann noch wie bei nach aus zum zur über keine dass werden wurde
        le les et est pas une des du que qui pour dans avec sur ce cette sont mais ou vous nous
        il elle être été
        el es una por para con como más pero sus este esta está están ser puede
        che di non è per della delle sono gli nel nella questo questa essere può alla anche
        não os uma com em ao dos das pode você
        het een niet ik zijn voor maar wordt deze dit bij naar ook worden
        och att är inte ett för med på som av det till har om eller
        og ikke af til med på et skal
        jest nie się na że jak oraz lub dla czy może być
        na že jako nebo být není
        bir ve bu için ile değil veya olarak
        ei tai että kun voi
        yang tidak untuk dengan ini itu dari dapat atau""".split()  # noqa: SIM905
    )
    - ENGLISH_WORDS
)


class Language(NamedTuple):
    """A text's language: ISO 639-1 code, and the detector's probability (None: not asked)."""

    code: str
    confidence: float | None

    @property
    def readable(self) -> bool:
        """Whether the models read this language."""
        return self.code == MODEL_LANGUAGE


ENGLISH_UNCHECKED = Language(MODEL_LANGUAGE, None)


def is_latin_letter(char: str) -> bool:
    """Whether a letter belongs to the Latin script (incl. accented and Vietnamese letters)."""
    return char <= _LATIN_END or _LATIN_EXTENDED_ADDITIONAL[0] <= char <= _LATIN_EXTENDED_ADDITIONAL[1]


def non_latin_share(text: str) -> float:
    """The share of `text`'s letters that are not Latin (0.0 for a text without letters)."""
    if text.isascii():
        return 0.0
    letters = [c for c in text if c.isalpha()]
    return sum(not is_latin_letter(c) for c in letters) / len(letters) if letters else 0.0


def function_word_test(texts: Sequence[str]) -> np.ndarray:
    """Suspect (True) where a text has no common English word or is mostly non-Latin letters; the
    cheap test for backends without a word vocabulary."""
    return np.fromiter(
        (non_latin_share(t) > NON_LATIN_SHARE or ENGLISH_WORDS.isdisjoint(t.lower().split()) for t in texts),
        dtype=bool,
        count=len(texts),
    )


_NOT_WORDS = ("@", "#", "<")


class VocabularyTest:
    """Per token id of the model's token table: is it a word, does the model's word vocabulary
    know it, is it non-Latin, is it a common English word, a common word of another language.
    Flags are computed once per distinct token (the table grows; a table rebuilt after growing too
    large starts the flags over), so the test costs a few array operations per batch on token ids
    the model has already read.

    A text is suspect when it has at least `MIN_WORDS` words and fewer than `KNOWN_SHARE` of them are
    known or it has more common foreign words than common English words, or when more than
    `NON_LATIN_SHARE` of its words are non-Latin (any length: one Chinese token is a whole clause).
    """

    def __init__(self, vocabulary: Mapping[str, int], neg_suffix: str = "_NEG") -> None:
        self.vocabulary = vocabulary
        self.neg_suffix = neg_suffix
        self._lock = threading.Lock()
        self._table: Any = None
        self._flags = np.zeros((6, 0), dtype=np.int8)  # capacity; its first columns are filled
        self._view = self._flags  # the filled columns

    def _token_flags(self, tokens: list[str]) -> np.ndarray:
        """(#tag, word, known, non-Latin, English word, foreign word) of each token: a (6, n) array.
        Each unseen text brings a few new tokens and this runs on each: the compiled loop
        (`_speedups.token_flags`) when built, else these C-level maps, which compute the same."""
        speedups = compiled()
        if speedups is not None and hasattr(speedups, "token_flags") and isinstance(self.vocabulary, dict):
            raw = speedups.token_flags(tokens, self.vocabulary, ENGLISH_WORDS, FOREIGN_WORDS, self.neg_suffix)
            return np.frombuffer(raw, dtype=np.int8).reshape(6, len(tokens)).copy()
        suffix = self.neg_suffix
        base = [t[: -len(suffix)] if suffix and t.endswith(suffix) else t for t in tokens]
        alpha = list(map(str.isalpha, base))  # most tokens: a plain word, decided in C
        # a word has a letter (of any script: str.isalpha) and is no @user, #tag or <url>
        word = [a or (b[:1] not in _NOT_WORDS and any(map(str.isalpha, b))) for a, b in zip(alpha, base)]
        non_latin = [False] * len(base)
        for i in itertools.compress(range(len(base)), [not a for a in map(str.isascii, base)]):
            non_latin[i] = word[i] and any(c.isalpha() and not is_latin_letter(c) for c in base[i])
        columns = (
            list(map(str.startswith, base, itertools.repeat("#"))),
            word,
            list(map(self.vocabulary.__contains__, base)),
            non_latin,
            list(map(ENGLISH_WORDS.__contains__, base)),
            list(map(FOREIGN_WORDS.__contains__, base)),
        )
        flags = np.array(columns, dtype=np.int8).reshape(6, len(tokens))
        flags[2:] &= flags[1:2]
        return flags

    def flags(self, table: Any, needed: int) -> np.ndarray:
        """Flags (#tag, word, known, non-Latin, English word, foreign word) of token ids 0 .. needed-1 of
        `table` (its `index` maps token -> id, ids given in insertion order)."""
        view = self._view  # one attribute read: a complete array of filled columns
        if self._table is table and view.shape[1] >= needed:
            return view
        with self._lock:
            if self._table is not table:
                self._table, self._flags = table, np.zeros((6, 0), dtype=np.int8)
                self._view = self._flags
            have, total = self._view.shape[1], len(table.index)
            if total > have:  # the newest ids are the last entries of the index
                newest = list(itertools.islice(reversed(table.index), total - have))[::-1]
                if total > self._flags.shape[1]:  # grow by half again: amortised, not per batch
                    grown = np.zeros((6, max(total, self._flags.shape[1] * 3 // 2)), dtype=np.int8)
                    grown[:, :have] = self._flags[:, :have]
                    self._flags = grown
                self._flags[:, have:total] = self._token_flags(newest)
                self._view = self._flags[:, :total]  # published once its columns are written
            return self._view

    def suspect(self, table: Any, tids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Per text (given as all its token ids and each text's count): whether it may not be English."""
        n = len(lengths)
        if n == 0 or len(tids) == 0:
            return np.zeros(n, dtype=bool)
        tids = np.asarray(tids, dtype=np.int64)
        per_token = np.take(self.flags(table, int(tids.max()) + 1), tids, axis=1)  # (6, tokens)
        # the tokenizer follows "#tag" with "tag": a hashtag's words are no evidence of the language
        per_token[1:, 1:] &= 1 - per_token[0, :-1]
        # per-text sums of each flag from one running sum (texts of no token get zeros)
        running = np.zeros((5, len(tids) + 1), dtype=np.int32)
        np.cumsum(per_token[1:], axis=1, dtype=np.int32, out=running[:, 1:])
        ends = np.cumsum(lengths)
        words, known, non_latin, english, foreign = running[:, ends] - running[:, ends - lengths]
        latin_suspect = (words >= MIN_WORDS) & ((known < KNOWN_SHARE * words) | (foreign > english))
        return latin_suspect | ((words > 0) & (non_latin > NON_LATIN_SHARE * words))


class _Detector:
    """py3langid's bundled model, loaded once on first use (about a second), shared by threads."""

    _identifier: Any = None
    _lock = threading.Lock()

    @classmethod
    def get(cls) -> Any:
        if cls._identifier is None:
            with cls._lock:
                if cls._identifier is None:
                    from py3langid.langid import MODEL_FILE, LanguageIdentifier

                    cls._identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return cls._identifier


_NOISE = re.compile(r"@\w+|https?://\S+|www\.\S+|<url>|#\w+")


def detector_text(text: str) -> str:
    """What the detector reads: `text` without @mentions, URLs and #hashtags (names and English
    compounds that say nothing of the language the text is written in), unless nothing is left."""
    cleaned = " ".join(_NOISE.sub(" ", text).split())
    return cleaned if any(c.isalpha() for c in cleaned) else text


def detect(text: str) -> Language:
    """Ask the detector. Non-English (its top language, with that language's probability) when the
    detector gives English a probability below `MAX_ENGLISH`; else English with its probability."""
    text = detector_text(text)
    words = sum(any(c.isalpha() for c in w) for w in text.split())
    if words < MIN_WORDS and non_latin_share(text) <= NON_LATIN_SHARE:
        return ENGLISH_UNCHECKED  # a name or two ("@ Murrieta, California"): too short to tell
    ranked = _Detector.get().rank(text)
    p_english = next((float(p) for code, p in ranked if code == MODEL_LANGUAGE), 0.0)
    top, p_top = ranked[0]
    if top != MODEL_LANGUAGE and p_english < MAX_ENGLISH:
        return Language(str(top), float(p_top))
    return Language(MODEL_LANGUAGE, p_english)


def identify(texts: Sequence[str], suspect: np.ndarray | None = None) -> list[Language]:
    """The `Language` of every text, asking the detector only for the suspect ones (default test:
    `function_word_test`)."""
    if suspect is None:
        suspect = function_word_test(texts)
    out = [ENGLISH_UNCHECKED] * len(texts)
    for i in np.flatnonzero(suspect).tolist():
        out[i] = detect(texts[i])
    return out


@dataclass(frozen=True)
class LanguagePolicy:
    """Which languages count in sentiment statistics (Settings.languages; default: only English)."""

    languages: tuple[str, ...] = (MODEL_LANGUAGE,)

    def counts(self, code: object) -> bool:
        """Whether a row of language `code` counts (a row without a language, e.g. an error, does)."""
        return not isinstance(code, str) or not code or code in self.languages
