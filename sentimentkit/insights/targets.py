"""Sentiment toward named targets ("@united", "food"), from the parts of the texts that mention them.

A text often praises one thing and blames another ("the food was great but the service was slow"):
its overall label says nothing about either. For each target, `target_sentiment` finds the parts
(`serving.parts`: sentences and contrastive clauses) that mention it (case-insensitive, not inside
a longer word: "food" matches "Food!" but not "seafood") and counts their labels. Net sentiment is
(positive parts - negative parts) / parts mentioning the target, from -1 to 1, with its 95%
interval (`net_interval`) and, when the table has dates, its trend per period.

Only texts that mention a target are split into parts, and only their texts of more than one part
cost a model call (a text of one part is its own part: its probabilities are the row's own when the
table's `p_*` columns are the model's, else one call for those texts).

Without targets, `auto_targets` picks the most frequent @mentions, #hashtags and content words.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from sentimentkit.insights.drivers import TermMatrix, is_word, term_matrix
from sentimentkit.insights.stats import Z95
from sentimentkit.insights.timeline import MIN_POINT_N
from sentimentkit.serving.base import BasePredictor
from sentimentkit.serving.parts import score_parts
from sentimentkit.text.lexicon import vader_lexicon
from sentimentkit.text.preprocess import NEG_SUFFIX, USER_TOKEN

AUTO_TOP = 10  # automatic targets: at most this many ...
AUTO_MIN_TEXTS = MIN_POINT_N  # ... each mentioned in at least this many texts (a timeline point's minimum)
EXAMPLES_PER_LABEL = 2  # texts behind a target: the most confident mentioning parts of each label
_MENTION = re.compile(r"(?<![\w@])@\w+")
_LETTERS = re.compile(r"[^\W\d_]{3,}")  # a content word: three letters or more, no digit or apostrophe


def parse_targets(raw: str) -> list[str]:
    """The comma-separated targets of `--targets "@united,food"` (blank ones dropped, order kept)."""
    return list(dict.fromkeys(t.strip() for t in raw.split(",") if t.strip()))


def _pattern(target: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(target)}(?!\w)", re.IGNORECASE)


# --- automatic targets -------------------------------------------------------------------------
def _is_content_word(token: str, lexicon: dict[str, float]) -> bool:
    """A word people talk *about*: letters only (3+), not a stop word, not a feeling word.

    Words of the sentiment lexicon ("thanks", "great", "delay"...) are left out: as a target their
    own sentiment would make their net sentiment, which says nothing about a thing."""
    return bool(_LETTERS.fullmatch(token)) and is_word(token) and token.lower() not in lexicon


def _is_hashtag(token: str, lexicon: dict[str, float]) -> bool:
    return token.startswith("#") and len(token) > 2 and token[1:].lower() not in lexicon


def auto_targets(
    texts: Sequence[str | None], matrix: TermMatrix | None = None, top: int = AUTO_TOP,
    min_texts: int = AUTO_MIN_TEXTS,
) -> tuple[list[str], str]:  # fmt: skip
    """(targets, how they were chosen, in words): the `top` most frequent @mentions, #hashtags and
    content words, each in at least `min_texts` texts, most frequent first.

    Frequency is the number of texts (a word repeated in one text counts once). @mentions are read
    from the texts (lower-cased; the anonymised `@user` is not a target); hashtags and words are the
    model's tokens (`matrix`, rows aligned with `texts`; built here when not given), "good" and
    "good (negated)" counted together. Stop words and punctuation follow the Insights' word rules
    (`drivers.is_word`); words of the VADER sentiment lexicon are left out too (see
    `_is_content_word`). `texts`: None for rows that do not count.
    """
    counts: Counter[str] = Counter()
    for text in texts:
        if text and "@" in text:
            counts.update({m.lower() for m in _MENTION.findall(text)} - {USER_TOKEN})
    if matrix is None:
        matrix = term_matrix([t or "" for t in texts])
    for token, n in _term_counts(matrix, top, min_texts, vader_lexicon()).items():
        counts[token] += n
    ranked = sorted(((n, t) for t, n in counts.items() if n >= min_texts), key=lambda nt: (-nt[0], nt[1]))
    chosen = [t for _, t in ranked[:top]]
    how = (
        f"Targets chosen automatically: the {len(chosen)} most frequent @mentions, #hashtags and content "
        f"words, each in at least {min_texts} texts (stop words, the anonymised @user and words of the "
        "sentiment lexicon left out). Name your own targets to replace them."
        if chosen
        else f"No @mention, #hashtag or content word is in {min_texts} texts or more, so no target was "
        "chosen automatically; name your own targets to see them."
    )
    return chosen, how


def _term_counts(matrix: TermMatrix, top: int, min_texts: int, lexicon: dict[str, float]) -> dict[str, int]:
    """Texts per hashtag / content word (negated forms folded in), exact for every word that can be
    among the `top` most frequent (others only get an upper bound, which is all the ranking needs)."""
    per_term = np.bincount(matrix.presence.indices, minlength=len(matrix.terms))
    present = np.flatnonzero(per_term > 0)
    names = pd.Series(matrix.terms[present], dtype=object).astype(str)
    base = names.str.removesuffix(NEG_SUFFIX)
    bound = pd.Series(per_term[present]).groupby(base.to_numpy()).sum()  # "x" and "x (negated)" summed
    bound = bound[bound >= min_texts].sort_values(ascending=False, kind="stable")
    position = pd.Index(names)
    by_column = None
    exact: dict[str, int] = {}
    for token, upper in bound.items():
        if len(exact) >= top and upper < sorted(exact.values())[-top]:
            break  # no word further down can enter the top
        token = str(token)
        if not (_is_hashtag(token, lexicon) or _is_content_word(token, lexicon)):
            continue
        found = position.get_indexer([token, token + NEG_SUFFIX])
        cols = [int(present[j]) for j in found if j >= 0]
        if len(cols) == 1:
            exact[token] = int(per_term[cols[0]])
            continue
        if by_column is None:
            by_column = matrix.presence.tocsc()
        rows = [by_column.indices[by_column.indptr[j] : by_column.indptr[j + 1]] for j in cols]
        exact[token] = len(np.unique(np.concatenate(rows)))  # a text with both forms counts once
    return exact


# --- the interval --------------------------------------------------------------------------------
def net_interval(
    d: Sequence[float], m: Sequence[float], z: float = Z95
) -> tuple[float, float] | tuple[None, None]:
    """The 95% interval of a target's net sentiment, from its texts: `d[i]` = positive minus
    negative mentioning parts of text i, `m[i]` = its mentioning parts.

    Why this interval: net = sum(d) / sum(m) is a ratio over texts (the parts of one text are not
    independent draws, so the text is the unit). Its linearised (sandwich) standard error is
    sqrt(sum((d_i - net * m_i)^2)) / sum(m). When every text has one mentioning part this is exactly
    the multinomial Wald interval the rest of the report uses (`stats.net_sentiment`:
    var = (p+ + p- - net^2) / n). Wald fails for few texts or an all-positive target (width 0), so,
    as Bonett & Price (2012) do for a difference of paired proportions (the same multinomial
    variance), one positive and one negative pseudo-text are added first: with one part per text the
    interval is their adjusted Wald interval, (P+1 - N-1)/(n+2) +- z sqrt((p+* + p-* - net*^2) /
    (n+2)), which keeps about 95% coverage down to a handful of texts, and it tends to the plain
    interval as texts grow. It is clipped to [-1, 1]. (None, None) without texts.
    """
    d_, m_ = np.asarray(d, dtype=float), np.asarray(m, dtype=float)
    if len(d_) == 0 or m_.sum() == 0:
        return None, None
    d_, m_ = np.append(d_, [1.0, -1.0]), np.append(m_, [1.0, 1.0])
    total = m_.sum()
    centre = d_.sum() / total
    half = z * float(np.sqrt(((d_ - centre * m_) ** 2).sum())) / total
    return max(-1.0, centre - half), min(1.0, centre + half)


# --- per-target sentiment ------------------------------------------------------------------------
def _whole_probas(predictor: BasePredictor, chosen: list[str], known: np.ndarray | None) -> np.ndarray:
    """The chosen texts' own probabilities: `known` (the table's p_* rows) when they are this
    model's (checked on a few texts, within rounding), else one call of the model."""
    if known is not None and not np.isnan(known).any():
        sample = min(len(chosen), 16)
        if np.allclose(predictor.predict_proba(chosen[:sample]), known[:sample], atol=1e-4):
            return known
    return predictor.predict_proba(chosen)


def target_sentiment(
    texts: Sequence[str | None], targets: Sequence[str], predictor: BasePredictor,
    probas: np.ndarray | None = None, periods: Sequence[str | None] | None = None,
    rows_out: dict[str, np.ndarray] | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Per target, in order: texts and parts that mention it, the parts' label counts, net sentiment
    with its 95% interval (`net_interval`), its trend and the texts behind it.

    `texts`: the rows that count (None for a row left out: an error, another language). `probas`:
    the rows' probabilities in `predictor.labels` order (the table's p_* columns), reused when they
    are the model's. `periods`: each row's period label (sortable, e.g. "2015-02-24"; None: no date)
    for the trend: per period the texts, parts and net sentiment, the net only where the period has
    at least MIN_POINT_N mentioning parts (the timeline's rule). `rows_out`: filled with each
    target's row positions. Each target's `examples`: per label, the EXAMPLES_PER_LABEL most
    confident mentioning parts (distinct texts), with their row (1-based) and offsets in the text.
    """
    labels = list(predictor.labels)
    patterns = [_pattern(t) for t in targets]
    folded = [t.casefold() for t in targets]
    candidates: list[tuple[int, str, list[int]]] = []  # (row, text, targets whose letters it holds)
    for i, text in enumerate(texts):
        if text:
            low = text.casefold()
            hits = [k for k, t in enumerate(folded) if t in low]  # C-level filter before the regex
            if hits:
                candidates.append((i, text, hits))
    found: list[tuple[int, str, list[tuple[int, list[tuple[int, int]]]]]] = []
    for i, text, hits in candidates:
        matched = [(k, [(m.start(), m.end()) for m in patterns[k].finditer(text)]) for k in hits]
        matched = [(k, spots) for k, spots in matched if spots]
        if matched:
            found.append((i, text, matched))
    rows = np.array([i for i, _, _ in found], dtype=int)
    chosen = [text for _, text, _ in found]
    n_targets = len(targets)
    counts = [dict.fromkeys(labels, 0) for _ in targets]
    per_text: list[list[tuple[int, float, float]]] = [[] for _ in targets]  # (row, d, m)
    examples: list[dict[str, list[tuple[float, int, int, int]]]] = [{x: [] for x in labels} for _ in targets]
    pos = labels.index("positive") if "positive" in labels else -1
    neg = labels.index("negative") if "negative" in labels else -1
    if chosen:
        known = None if probas is None else np.asarray(probas, dtype=float)[rows]
        parted = score_parts(predictor.predict_proba, chosen, _whole_probas(predictor, chosen, known))
        for (i, _, matched), spans, part_probas in zip(found, parted.spans, parted.probas):
            assert part_probas is not None
            winners = np.argmax(part_probas, axis=1)
            for k, spots in matched:
                d = m = 0
                for s, span in enumerate(spans):
                    if not any(span.start <= a and b <= span.end for a, b in spots):
                        continue
                    label = int(winners[s])
                    counts[k][labels[label]] += 1
                    m += 1
                    d += (label == pos) - (label == neg)
                    examples[k][labels[label]].append(
                        (-float(part_probas[s, label]), i, span.start, span.end)
                    )
                if m:
                    per_text[k].append((i, d, m))
    out = []
    for k in range(n_targets):
        entries = np.array(per_text[k], dtype=float).reshape(-1, 3)
        mentioned = entries[:, 0].astype(int)
        if rows_out is not None:
            rows_out[targets[k]] = mentioned
        n = int(entries[:, 2].sum())
        net = float(entries[:, 1].sum() / n) if n else None
        low, high = net_interval(entries[:, 1], entries[:, 2])
        out.append({
            "target": targets[k], "texts": len(entries), "mentions": n, "counts": counts[k], "net": net,
            "ci_low": low, "ci_high": high,
            "trend": None if periods is None else _trend(entries, periods),
            "examples": _examples(examples[k], texts),
        })  # fmt: skip
    return out


def _trend(entries: np.ndarray, periods: Sequence[str | None]) -> list[dict[str, Any]]:
    """Per period (in order) with a mentioning text: texts, parts, net and interval (None where the
    period has fewer than MIN_POINT_N parts: too few to say anything)."""
    by_period: dict[str, list[int]] = {}
    for e, row in enumerate(entries[:, 0].astype(int)):
        period = periods[row]
        if period is not None:
            by_period.setdefault(str(period), []).append(e)
    points = []
    for period in sorted(by_period):
        part = entries[by_period[period]]
        n = int(part[:, 2].sum())
        enough = n >= MIN_POINT_N
        low, high = net_interval(part[:, 1], part[:, 2]) if enough else (None, None)
        points.append({"period": period, "texts": len(part), "mentions": n,
                       "net": float(part[:, 1].sum() / n) if enough else None, "ci_low": low, "ci_high": high})  # fmt: skip
    return points


def _examples(
    candidates: dict[str, list[tuple[float, int, int, int]]], texts: Sequence[str | None]
) -> list[dict]:
    """The most confident mentioning parts of each label (one per text), as JSON-ready dicts."""
    out = []
    for label, items in candidates.items():
        seen: set[int] = set()
        for negative_p, row, start, end in sorted(items):
            if row in seen:
                continue
            seen.add(row)
            out.append({"row": row + 1, "text": str(texts[row]), "start": start, "end": end,
                        "sentiment": label, "probability": round(-negative_p, 4)})  # fmt: skip
            if len(seen) == EXAMPLES_PER_LABEL:
                break
    return out


def trend_words(target: dict[str, Any]) -> str:
    """The trend in a few words: the first and last periods with a net sentiment, e.g.
    "-0.40 (2015-02-17) to +0.10 (2015-02-24), 6 periods"; "" without dates or points."""
    points = [p for p in target.get("trend") or [] if p["net"] is not None]
    if not points:
        return ""
    first, last = points[0], points[-1]
    if len(points) == 1:
        return f"{first['net']:+.2f} ({first['period']}), one period"
    return f"{first['net']:+.2f} ({first['period']}) to {last['net']:+.2f} ({last['period']}), {len(points)} periods"


def target_frame(targets: Sequence[dict[str, Any]], labels: Sequence[str] | None = None) -> pd.DataFrame:
    """The target table (one row per target): texts, parts, parts per label, net, interval, trend."""
    rows = []
    for t in targets:
        shown = labels or list(t["counts"])
        rows.append({
            "target": t["target"], "texts": t["texts"], "parts": t["mentions"],
            **{f"{label} parts": t["counts"].get(label, 0) for label in shown},
            "net": t["net"], "95% low": t["ci_low"], "95% high": t["ci_high"], "trend": trend_words(t),
        })  # fmt: skip
    return pd.DataFrame(rows)


def trend_frame(targets: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Long table of the drawn trend points: target, period, net, ci_low, ci_high, mentions."""
    rows = [
        {"target": t["target"], **p} for t in targets for p in t.get("trend") or [] if p["net"] is not None
    ]
    return pd.DataFrame(rows, columns=["target", "period", "texts", "mentions", "net", "ci_low", "ci_high"])
