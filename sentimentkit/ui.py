"""App logic that is not widgets: opening backends, input checks, explanation HTML, card tables, and
the summaries of a scored table the batch tab shows (label counts, confidence histogram, filters).

`app.py` holds only Streamlit widgets and layout; everything here is plain Python so it can be
unit-tested without a browser. Nothing runs at import time.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sentimentkit.config import Settings
from sentimentkit.io.redact import redact
from sentimentkit.serving.base import EMPTY_TEXT, OUTPUT_COLUMNS, BasePredictor, text_error

# One click fills the text box with one of these and analyses it.
from sentimentkit.serving.loader import load_predictor, open_backend

# One click fills the text box with one of these and analyses it.
EXAMPLES: dict[str, str] = {
    "Happy": "Just got tickets for the concert tomorrow, can't wait!! :)",
    "Angry": "Two hours on hold and the line went dead. Worst customer service ever.",
    "Neutral": "The city council meets on Tuesday at 7pm to discuss the new bus routes.",
    "Mixed": "The food was great but the service was painfully slow.",
    "Negation": "I don't love this phone, the battery is not good at all",
}

# The label used in summaries for rows that could not be scored (empty, not text, too long).
NOT_SCORED = "not scored"

# Words that push toward the label are blue, those against it red (a colour-blind-safe pair).
TOWARD_RGB = "26, 133, 255"
AGAINST_RGB = "212, 17, 89"


@dataclass
class Backends:
    """The model(s) the app serves: the main backend and, optionally, the accurate one."""

    main: BasePredictor
    accurate: BasePredictor | None = None
    accurate_problem: str | None = None


def open_backends(settings: Settings) -> Backends:
    """Open the main backend (local model or API) and the accurate model when its folder exists.

    Raises ModelError / BackendError for the main backend; a broken accurate model only yields
    `accurate_problem` (shown in the model tab), so the app still works with one model.
    """
    main = open_backend(settings)
    if not settings.api_url:
        # The first prediction loads lexicons and builds caches; pay that once at start-up,
        # not on the first user's click. (The API client connects lazily, so it is left alone.)
        main.predict_proba(["warm up"])
    path = settings.accurate_model_path
    if not path.exists():
        return Backends(main)
    try:
        accurate = load_predictor(path, threshold=settings.threshold, settings=settings)
    except Exception as exc:  # noqa: BLE001 - an optional model must never take the app down
        problem = redact(f"The accurate model at {path} could not be loaded ({type(exc).__name__}: {exc}).")
        return Backends(main, accurate_problem=problem + " Only the fast model is shown.")
    return Backends(main, accurate)


def registry_caption(info: dict[str, str | None]) -> str:
    """Which registered version the app uses, e.g. 'Registry: sentimentkit-tfidf version 2 (@champion)'."""
    alias = f" (@{info['alias']}, as resolved when the app started)" if info.get("alias") else ""
    return f"Registry: {info.get('name')} version {info.get('version')}{alias}"


EMPTY_PROMPT = "Type or paste a text first (or click one of the examples)."


def input_problem(text: str | None, max_chars: int) -> str | None:
    """A message for the user when `text` cannot be analysed (None when it can); the rule is
    `text_error`, the one every front end uses."""
    error = text_error(text, max_chars)
    if error is None:
        return None
    if error == EMPTY_TEXT:
        return EMPTY_PROMPT
    return (
        f"{error[0].upper()}{error[1:]}. Shorten it, or split it into several rows of a CSV file and "
        "use the Batch (CSV) tab."
    )


def probability_frame(result: dict[str, Any], labels: tuple[str, ...]) -> pd.DataFrame:
    """One row per label with its probability, in label order (for a bar chart)."""
    scores = result.get("scores") or {}
    return pd.DataFrame({"label": list(labels), "probability": [float(scores.get(x, 0.0)) for x in labels]})


def verdict(result: dict[str, Any]) -> tuple[str, str]:
    """(headline, detail): the label, or "uncertain" with the most likely label beside it."""
    label, confidence = result["sentiment"], float(result["confidence"])
    if result.get("uncertain"):
        return "uncertain", f"most likely {label} ({confidence:.0%}), below the confidence threshold"
    return label, f"confidence {confidence:.0%}"


def merge_spans(tokens: list[dict[str, Any]]) -> list[tuple[int, int, float]]:
    """Sum the weights of tokens that share a character span; drop spans overlapping an earlier one.

    Several tokens (e.g. a word and its negation marker) can map onto the same span; overlapping
    spans are folded into the earlier span so every character is highlighted at most once.
    """
    by_span: dict[tuple[int, int], float] = {}
    for tok in tokens:
        key = (int(tok["start"]), int(tok["end"]))
        by_span[key] = by_span.get(key, 0.0) + float(tok["weight"])
    merged: list[list[Any]] = []
    for (start, end), weight in sorted(by_span.items()):
        if merged and start < merged[-1][1]:
            merged[-1][2] += weight
            merged[-1][1] = max(merged[-1][1], end)
        elif end > start:
            merged.append([start, end, weight])
    return [(s, e, w) for s, e, w in merged]


def explanation_html(text: str, explanation: dict[str, Any]) -> str:
    """The text with each word's background showing its push toward (blue) or against (red) the label.

    All user text is HTML-escaped; only our own <span> tags are markup.
    """
    spans = merge_spans(explanation.get("tokens", []))
    top = max((abs(w) for _, _, w in spans), default=0.0) or 1.0
    parts: list[str] = []
    cursor = 0
    for start, end, weight in spans:
        parts.append(html.escape(text[cursor:start]))
        rgb = TOWARD_RGB if weight > 0 else AGAINST_RGB
        alpha = 0.15 + 0.75 * abs(weight) / top if abs(weight) > 1e-9 else 0.0
        word = html.escape(text[start:end])
        title = html.escape(f"{weight:+.3f}", quote=True)
        parts.append(
            f'<span title="{title}" style="background: rgba({rgb}, {alpha:.2f}); '
            f'border-radius: 3px; padding: 0 1px;">{word}</span>'
        )
        cursor = end
    parts.append(html.escape(text[cursor:]))
    return (
        '<div class="sk-explanation" style="white-space: pre-wrap; line-height: 1.9; '
        f'font-size: 1.05rem;">{"".join(parts)}</div>'
    )


def top_words(text: str, explanation: dict[str, Any], n: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The `n` words pushing most toward the label and the `n` pushing most against it."""
    rows = [(text[s:e], w) for s, e, w in merge_spans(explanation.get("tokens", []))]
    frame = pd.DataFrame(rows, columns=["word", "weight"])
    toward = frame[frame.weight > 0].sort_values("weight", ascending=False).head(n)
    against = frame[frame.weight < 0].sort_values("weight").head(n)
    return toward.reset_index(drop=True), against.reset_index(drop=True)


# --- model card ----------------------------------------------------------------------------
METRIC_NAMES = {
    "avg_recall": "Average recall (official)",
    "f1_pn": "F1 (positive/negative)",
    "macro_f1": "Macro F1",
    "accuracy": "Accuracy",
}


def metrics_table(card: dict[str, Any]) -> pd.DataFrame:
    """Rows: metric; columns: evaluation split (validation, test). Empty when the card has none."""
    metrics = card.get("metrics") or {}
    splits = [s for s in ("validation", "test") if isinstance(metrics.get(s), dict)]
    data = {
        split: [metrics[split].get(key) for key in METRIC_NAMES] for split in splits
    }  # fmt: skip
    table = pd.DataFrame(data, index=list(METRIC_NAMES.values()))
    return table.dropna(how="all")


def confusion_frame(card: dict[str, Any], split: str = "test") -> pd.DataFrame | None:
    """The confusion matrix of `split` as a labelled table (rows: true label), or None."""
    block = (card.get("metrics") or {}).get(split) or {}
    matrix = block.get("confusion_matrix")
    if not matrix:
        return None
    labels = block.get("labels") or card.get("labels") or [str(i) for i in range(len(matrix))]
    return pd.DataFrame(
        matrix, index=[f"true {x}" for x in labels], columns=[f"predicted {x}" for x in labels]
    )


def training_data_table(card: dict[str, Any]) -> pd.DataFrame | None:
    """One row per training-data split: file, rows, SHA-256 (None when the card does not say)."""
    data = card.get("training_data")
    if not isinstance(data, dict) or not data:
        return None
    rows = [
        {"split": split, **{k: v for k, v in info.items() if k in ("file", "rows", "sha256")}}
        for split, info in data.items()
        if isinstance(info, dict)
    ]
    return pd.DataFrame(rows) if rows else None


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy safe for st.dataframe: mixed-type input columns (from Excel) shown as text."""
    out = frame.copy()
    for column in out.columns:
        if column not in OUTPUT_COLUMNS and out[column].dtype == object:
            out[column] = out[column].map(lambda v: "" if v is None else str(v))
    return out


def describe_backend(backend: BasePredictor, api_url: str | None) -> str:
    """A short line saying which model answers and where it runs (`api_url`: None when local)."""
    name = backend.card.get("name", type(backend).__name__)
    where = f"via the API at {api_url}" if api_url else "in this app"
    return f"{name} {backend.version}, running {where}"


# --- monitoring tab and tab-level errors ----------------------------------------------------
NO_LOG_MESSAGE = (
    "No prediction log: set SENTIMENTKIT_PREDICTION_LOG (a folder or az:// URI) before starting the app "
    "(and the API or CLI) to record predictions; this tab then compares them with the model's reference."
)


def nothing_logged_message(log: str, latest: Any = None) -> str:
    """What the Monitoring tab says while the log at `log` holds nothing to report on (`latest`: the day
    of the newest predictions when there are only older ones)."""
    if latest is not None:
        return (
            f"Nothing logged at {log} in the chosen period; the latest predictions are from {latest}: "
            "choose a longer 'Trends over' period, or score some texts and come back."
        )
    return (
        f"Nothing logged yet at {log}; score some texts (in the Batch (CSV) tab, through the API or with "
        "`python -m sentimentkit predict`) and come back: this tab then compares them with the model's "
        "reference."
    )


def monitoring_problem(exc: Exception, log: str) -> tuple[str, str] | None:
    """(level, sentence) the Monitoring tab shows instead of a report when `exc` stopped it: level
    "info" when there is simply nothing to report on yet, "warning" for something to fix; None for an
    error that is not the user's to fix (the tab-level handler reports those)."""
    from sentimentkit.data import DataError
    from sentimentkit.mlops.predlog import NothingLoggedError
    from sentimentkit.models.pipeline import ModelError

    if isinstance(exc, NothingLoggedError):
        return "info", nothing_logged_message(log, exc.latest)
    if isinstance(exc, (DataError, ModelError)):  # e.g. a card without a reference and no data to make one
        return "warning", str(exc)
    if isinstance(exc, (OSError, ValueError)):
        return (
            "warning",
            f"No monitoring report: {exc}. Check SENTIMENTKIT_PREDICTION_LOG ({log}) and reload.",
        )
    return None


def performance_summary(report: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(label, value, delta) for the Monitoring tab's performance metrics: the latest window's estimated
    AvgRec (delta against the reference, in points) and its 90% interval, and the realized AvgRec when
    labels matched; empty when there is no estimate."""
    values = report["signals"].get("performance", {}).get("values", {})
    estimated = values.get("estimated_avg_recall")
    if estimated is None:
        return []
    reference = values.get("reference_avg_recall")
    delta = f"{(estimated - reference) * 100:+.1f} points vs reference" if reference is not None else None
    out = [("Estimated AvgRec", f"{estimated:.3f}", delta)]
    if values.get("avg_recall_low") is not None:
        out.append(
            ("90% interval", f"{values['avg_recall_low']:.3f} - {values['avg_recall_high']:.3f}", None)
        )
    if values.get("n_labelled"):
        out.append((f"Realized AvgRec ({values['n_labelled']:,} labelled)", f"{values['realized_avg_recall']:.3f}",
                    None))  # fmt: skip
    return out


def tab_problem(tab: str, exc: BaseException) -> str:
    """One sentence for an unexpected error inside a tab (the other tabs keep working). Only the error's
    type is shown: its text may hold paths or URLs with credentials; the server log has the rest."""
    return (
        f"The {tab} tab could not be shown because of an unexpected error ({type(exc).__name__}). "
        "Reload the page; if it happens again, restart the app and report the error printed in its console."
    )


# The batch download's formula guard (sentimentkit.io.formula): mode -> what the radio shows.
FORMULA_GUARD_CHOICES = {
    "auto": "Only real formulas",
    "all": "Every cell starting with = + - @",
    "off": "Off",
}


def formula_guard_caption(mode: str) -> str:
    """One line under the download saying what the chosen formula guard does to the file."""
    if mode == "off":
        return "Nothing is changed: open this file in a spreadsheet only if you trust every cell."
    if mode == "all":
        return "Every text cell starting with = + - @ (tweets replying to @user too) gets a leading '."
    return (
        "Cells a spreadsheet would run as formulas (=..., +A1, -2+3, @SUM(...)) get a leading '; "
        "every other text, @replies included, is exactly as in your file."
    )


# --- summaries of a scored table (the batch tab) ---------------------------------------------
def apply_threshold(scored: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Recompute `uncertain` for a new threshold without scoring again (scored rows only)."""
    out = scored.copy()
    confidence = pd.to_numeric(out["confidence"], errors="coerce")
    flags = (confidence < threshold).astype(object)
    flags[confidence.isna()] = None
    out["uncertain"] = flags
    return out


def outcome_labels(scored: pd.DataFrame) -> pd.Series:
    """Each row's label, or NOT_SCORED for rows with an error."""
    return scored["sentiment"].astype(object).where(scored["error"].isna(), NOT_SCORED).fillna(NOT_SCORED)


def label_summary(scored: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    """Rows per label (plus NOT_SCORED when any) with their share of all rows, in label order."""
    counts = outcome_labels(scored).value_counts()
    order = [*labels, NOT_SCORED] if counts.get(NOT_SCORED, 0) else list(labels)
    rows = [int(counts.get(label, 0)) for label in order]
    total = max(len(scored), 1)
    return pd.DataFrame({"label": order, "rows": rows, "share": [r / total for r in rows]})


def confidence_histogram(scored: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """Scored rows per confidence bin of equal width over [1/3, 1] (a 3-class top probability)."""
    confidence = pd.to_numeric(scored["confidence"], errors="coerce").dropna().to_numpy(dtype=float)
    edges = np.linspace(1 / 3, 1.0, bins + 1)
    counts, _ = np.histogram(np.clip(confidence, edges[0], edges[-1]), bins=edges)
    names = [f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(edges[:-1], edges[1:])]
    return pd.DataFrame({"confidence": names, "rows": counts.astype(int)})


def filter_results(
    scored: pd.DataFrame, labels: Sequence[str] | None = None, uncertain: bool | None = None
) -> pd.DataFrame:
    """Rows whose outcome label is in `labels` (None: all) and whose `uncertain` flag matches."""
    mask = pd.Series(True, index=scored.index)
    if labels is not None:
        mask &= outcome_labels(scored).isin(list(labels))
    if uncertain is not None:
        mask &= scored["uncertain"].map(lambda v: v is not None and not pd.isna(v) and bool(v) == uncertain)
    return scored[mask]
