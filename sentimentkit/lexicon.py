"""Sentiment lexicon valences from the VADER lexicon that ships inside `vaderSentiment`.

Loaded lazily (never at import time) from the package's own files; no download.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

NEGATION_SCALAR = -0.74  # VADER's own factor for a negated word


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
    return lexicon
