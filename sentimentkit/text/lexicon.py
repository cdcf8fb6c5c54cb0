"""Sentiment lexicon valences from the VADER lexicon that ships inside `vaderSentiment`.

Loaded lazily (never at import time) from the package's own files; no download.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from sentimentkit.errors import OptionError

NEGATION_SCALAR = -0.74  # VADER's own factor for a negated word

# VADER scores an emoji by the words of its name, which misses or misreads common ones
# ("pouting face", "thumbs down", "broken heart" -> +1.1). Hand-set valences on VADER's -4..4 scale.
EMOJI_OVERRIDES: dict[str, float] = {
    "😡": -3.0, "🤬": -3.2, "😤": -2.0, "👎": -2.0, "💔": -2.5,
    "🙄": -1.5, "😒": -2.0, "🤮": -3.0, "🤢": -2.5, "😩": -2.0,
    "😫": -2.0, "😔": -2.0, "😕": -1.5, "💩": -2.0, "👍": 2.0,
    "🔥": 1.5, "💯": 2.0, "🙌": 2.0, "👏": 2.0, "🎉": 2.5,
    "😊": 2.5, "🥰": 3.0, "😘": 2.5, "💙": 2.5, "💜": 2.5,
}  # fmt: skip


def _vader_dir() -> Path:
    import vaderSentiment

    return Path(vaderSentiment.__file__).resolve().parent


@lru_cache(maxsize=1)
def vader_lexicon() -> dict[str, float]:
    """Token -> mean valence (-4..4) for VADER words, emoticons, and emoji (via their names)."""
    lexicon: dict[str, float] = {}
    for line in (_vader_dir() / "vader_lexicon.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            lexicon[parts[0]] = float(parts[1])
    emoji_file = _vader_dir() / "emoji_utf8_lexicon.txt"
    for line in emoji_file.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) == 2:
            words = [lexicon.get(w, 0.0) for w in parts[1].split()]
            score = sum(words)
            if score:
                lexicon.setdefault(parts[0], max(-4.0, min(4.0, score)))
    lexicon.update(EMOJI_OVERRIDES)
    return lexicon


@lru_cache(maxsize=1)
def afinn_lexicon() -> dict[str, float]:
    """AFINN-165 words and AFINN emoticons (from the `afinn` package's data), rescaled to -4..4."""
    import afinn

    folder = Path(afinn.__file__).resolve().parent / "data"
    lexicon: dict[str, float] = {}
    for name in ("AFINN-en-165.txt", "AFINN-emoticon-8.txt"):
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            word, _, score = line.rpartition("\t")
            if word and " " not in word:
                lexicon[word] = float(score) * 0.8
    return lexicon


LEXICONS = {"vader": vader_lexicon, "afinn": afinn_lexicon}


def load_lexicons(names: tuple[str, ...]) -> list[dict[str, float]]:
    """The named lexicons, in order; ValueError for an unknown name."""
    unknown = [n for n in names if n not in LEXICONS]
    if unknown:
        raise OptionError(f"unknown lexicon(s) {unknown}; known: {sorted(LEXICONS)}")
    return [LEXICONS[n]() for n in names]
