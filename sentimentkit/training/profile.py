"""What monitoring measures on each text and the reference profile a model is compared against.

`text_stats` turns one text into the numbers the prediction log keeps instead of the text itself
(length, token count, share of tokens the model never saw in training, hashed unknown tokens).
`reference_profile` summarises a model's predictions on held-out data at training time (label shares,
confidence histogram and quantiles, text-length and unknown-token profile); it is stored in the model
card under `reference` and logged with the registered version, and `monitor` compares live traffic to it.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sentimentkit.config import Settings
from sentimentkit.data import DataError, file_sha256, load_split, split_path
from sentimentkit.errors import NoReferenceError  # noqa: F401  (re-exported under its old name)
from sentimentkit.models.card import card_file, configured_key, read_json_card, write_card
from sentimentkit.models.pipeline import ModelError
from sentimentkit.models.signing import SIGNATURE_FIELD
from sentimentkit.serving.loader import load_predictor
from sentimentkit.serving.predictor import Predictor
from sentimentkit.text.preprocess import base_token

# Confidence of a 3-class model lies in [1/3, 1]; fixed edges so every profile is comparable.
CONFIDENCE_EDGES: tuple[float, ...] = (0.0, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
UNKNOWN_EDGES: tuple[float, ...] = (0.0, 0.001, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
LENGTH_BINS = 10
QUANTILES = 101  # confidence quantiles kept for the KS test (0%, 1%, ..., 100%)
FREQUENT_SHARE = 0.01  # an unknown token is "frequent" when at least this share of texts holds it
FREQUENT_MIN_TEXTS = 5
TOKEN_HASH_CHARS = 12
PROFILE_VERSION = 1


def model_vocabulary(predictor: Any) -> frozenset[str] | None:
    """The word unigrams the model learned in training (TF-IDF model), or None when it has none we
    can read (the transformer's subword vocabulary knows every word, so "unknown" means nothing)."""
    pipeline = getattr(predictor, "pipeline", None)
    steps = getattr(pipeline, "named_steps", {}) if pipeline is not None else {}
    words = getattr(steps.get("features"), "word_vectorizer_", None)
    if words is None:
        return None
    return frozenset(base_token(k) for k in words.vocabulary_ if " " not in k)


def token_hash(token: str) -> str:
    """A short stable hash of a token: the log counts new words without storing them."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:TOKEN_HASH_CHARS]


_URL_RE = re.compile(r"https?://\S+|www\.\S+")
_WORD_RE = re.compile(r"(?<![@\w])[a-z][a-z'_]*")  # words; @mentions, URLs and numbers are not


def words(text: str) -> list[str]:
    """The lower-cased words of `text` (no mentions, URLs or numbers): a cheap stand-in for the model's
    tokenizer (a regex pass instead of a second full tokenisation on the serving path's CPU)."""
    return _WORD_RE.findall(_URL_RE.sub(" ", text.lower()))


def text_stats(text: str, vocabulary: frozenset[str] | None) -> tuple[int, int, float | None, list[str]]:
    """(characters, whitespace-separated tokens, share of `words` unknown to `vocabulary`, those words).

    The share is None without a vocabulary. Reference and log use this same function, so the
    comparison is like for like even where it differs from the model's own tokens (e.g. elongations).
    """
    n_tokens = len(text.split())
    if vocabulary is None:
        return len(text), n_tokens, None, []
    found = words(text)
    unknown = [w for w in found if w not in vocabulary]
    return len(text), n_tokens, (len(unknown) / len(found) if found else 0.0), unknown


def shares(values: Sequence[float], edges: Sequence[float]) -> list[float]:
    """Share of `values` in each bin of `edges` (bins are [a, b), the last closed; values outside
    fall in the first or last bin; an edge may be infinite)."""
    inner = np.asarray(edges[1:-1], dtype=float)
    index = np.searchsorted(inner, np.asarray(values, dtype=float), side="right")
    counts = np.bincount(index, minlength=len(edges) - 1)
    return (counts / counts.sum()).tolist() if len(values) else [0.0] * (len(edges) - 1)


def length_edges(lengths: Sequence[int], bins: int = LENGTH_BINS) -> list[float]:
    """Decile edges of the reference text lengths (first 0, last +inf) for the PSI."""
    inner = np.unique(np.quantile(np.asarray(lengths, dtype=float), np.linspace(0, 1, bins + 1)[1:-1]))
    return [0.0, *inner.tolist(), float("inf")]


def frequent_tokens(unknown_per_text: Sequence[Sequence[str]]) -> dict[str, int]:
    """Unknown tokens held by at least FREQUENT_SHARE of the texts (and FREQUENT_MIN_TEXTS): count."""
    held = Counter(t for tokens in unknown_per_text for t in set(tokens))
    floor = max(FREQUENT_MIN_TEXTS, FREQUENT_SHARE * len(unknown_per_text))
    return {t: n for t, n in held.most_common() if n >= floor}


def reference_profile(predictor: Any, texts: Sequence[str], source: str) -> dict[str, Any]:
    """The reference distribution of `predictor` on held-out `texts` (never its training data).

    `source` says which data it was computed on (e.g. "validation.csv"), for the reader of the card.
    """
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    records = predictor.score(texts)
    kept = [(t, r) for t, r in zip(texts, records) if not r["error"]]
    vocabulary = model_vocabulary(predictor)
    stats = [text_stats(t, vocabulary) for t, _ in kept]
    confidence = np.array([r["confidence"] for _, r in kept], dtype=float)
    labels = Counter(r["sentiment"] for _, r in kept)
    lengths = [s[0] for s in stats]
    edges = length_edges(lengths)
    unknown = [s[2] for s in stats if s[2] is not None]
    frequent = frequent_tokens([[token_hash(w) for w in s[3]] for s in stats])
    return {
        "profile_version": PROFILE_VERSION,
        "source": source,
        "n": len(kept),
        "label_shares": {label: labels.get(label, 0) / len(kept) for label in predictor.labels},
        "confidence_edges": list(CONFIDENCE_EDGES),
        "confidence_shares": shares(confidence, CONFIDENCE_EDGES),
        "confidence_quantiles": np.quantile(confidence, np.linspace(0, 1, QUANTILES)).round(6).tolist(),
        "confidence_mean": float(confidence.mean()),
        "uncertain_share": float(np.mean([bool(r["uncertain"]) for _, r in kept])),
        "length_edges": [e if np.isfinite(e) else None for e in edges],  # JSON has no infinity
        "length_shares": shares(lengths, edges),
        "length_mean": float(np.mean(lengths)),
        "unknown_share_mean": float(np.mean(unknown)) if unknown else None,
        "unknown_edges": list(UNKNOWN_EDGES),
        "unknown_shares": shares(unknown, UNKNOWN_EDGES) if unknown else None,
        "frequent_unknown_tokens": len(frequent),
    }


def pipeline_reference(
    pipeline: Any, card: dict[str, Any], texts: Sequence[str], source: str
) -> dict[str, Any]:
    """`reference_profile` of a freshly trained pipeline (training calls this to fill the card)."""
    return reference_profile(Predictor(pipeline, card), texts, source)


def model_reference(predictor: Any, data_dir: str | Path | None = None) -> tuple[dict[str, Any], str]:
    """(reference profile, where it came from) for a loaded model.

    The card's own `reference` (training stores one; the committed model.pkl's card carries one too), so
    no data is needed. Only for a card without one (a model trained before references existed) is it
    computed now from the validation split, and the note says so; when that split is not there either,
    NoReferenceError says what to do in one sentence.
    """
    card = getattr(predictor, "card", {}) or {}
    name = f"{card.get('name', 'the model')} {card.get('version', '')}".strip()
    reference = card.get("reference")
    if reference:
        late = reference.get("stored_after_training")  # by store_reference, for an older card
        when = "after training, from the same validation split" if late else "at training time"
        return reference, f"stored in the card of {name} {when}"

    path = split_path("validation", data_dir)
    if not path.is_file():
        raise NoReferenceError(
            f"The card of {name} holds no reference profile to compare the log with, and {path} is not "
            "there to compute one: set SENTIMENTKIT_DATA_DIR to the folder holding the validation.csv the "
            "model was trained with, or retrain it with `python -m sentimentkit train` (which stores the "
            "profile in the card)."
        )
    frame = load_split("validation", data_dir)
    reference = reference_profile(predictor, frame["text"].tolist(), path.name)
    return (
        reference,
        f"computed now from {path.name} ({reference['n']:,} tweets): the card of {name} has none",
    )


def store_reference(
    model: str | Path, data_dir: str | Path | None = None, settings: Settings | None = None
) -> dict[str, Any]:
    """Compute the reference profile of an existing model and store it in its card; returns the card.

    For models trained before cards carried one. The model files are not touched, so the card's
    SHA-256s still hold. Refuses (DataError / ModelError, one line) when `data_dir`'s validation.csv is
    not the file the card says the model was trained with, or when the card is signed and no key is
    configured to sign it again (dropping the signature would make the model unloadable where a key
    is required).
    """

    predictor = load_predictor(model, settings=settings)  # checks the card and the files first
    path = split_path("validation", data_dir)
    recorded = ((predictor.card.get("training_data") or {}).get("validation") or {}).get("sha256")
    if not path.is_file():
        raise DataError(f"{path} not found: set the data folder to the one the model was trained with.")
    if recorded and file_sha256(path) != recorded:
        raise DataError(
            f"{path} is not the validation split the card of {model} records (SHA-256 {recorded[:12]}...); "
            "use the data folder the model was trained with."
        )
    raw = read_json_card(card_file(model), f"Model card {card_file(model)} not found.")
    if SIGNATURE_FIELD in raw and configured_key(settings) is None:
        raise ModelError(
            f"The card of {model} is signed: configure its signing key (SENTIMENTKIT_SIGNING_KEY or "
            "SENTIMENTKIT_SIGNING_KEY_FILE) so the card can be signed again with its reference."
        )
    texts = load_split("validation", data_dir)["text"].tolist()
    raw["reference"] = {**reference_profile(predictor, texts, path.name), "stored_after_training": True}
    return write_card(model, raw, settings)
