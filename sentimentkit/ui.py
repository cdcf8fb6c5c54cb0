"""App logic that is not widgets: opening backends, input checks, explanation HTML, card tables, and
the summaries of a scored table the batch tab shows (label counts, confidence histogram, filters).

`app.py` holds only Streamlit widgets and layout; everything here is plain Python so it can be
unit-tested without a browser. Nothing runs at import time.
"""

from __future__ import annotations

import html
import json
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sentimentkit import LABELS, palette
from sentimentkit.config import Settings
from sentimentkit.data import DataError
from sentimentkit.feedback import DEFAULT_STRATEGY
from sentimentkit.feedback.queue import logged_predictions, review_queue
from sentimentkit.feedback.store import FeedbackError, read_feedback, write_corrections
from sentimentkit.mlops.predlog import NothingLoggedError
from sentimentkit.models.pipeline import ModelError
from sentimentkit.redact import redact
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


LANGUAGE_NAMES = {
    "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "pt": "Portuguese", "nl": "Dutch",
    "sv": "Swedish", "da": "Danish", "no": "Norwegian", "fi": "Finnish", "pl": "Polish", "cs": "Czech",
    "tr": "Turkish", "ru": "Russian", "uk": "Ukrainian", "el": "Greek", "ar": "Arabic", "he": "Hebrew",
    "hi": "Hindi", "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "id": "Indonesian", "vi": "Vietnamese",
}  # fmt: skip


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
    """The text with each word's background showing its push toward or away from the label.

    Colours come from the one palette: a word pushing toward the label has the label's colour (toward
    negative: the negative colour, as in Insights), a word pushing away has `palette.against_colour`.
    All user text is HTML-escaped; only our own <span> tags are markup.
    """
    label = str(explanation.get("label", ""))
    toward_rgb, against_rgb = palette.rgb(palette.colour(label)), palette.rgb(palette.against_colour(label))
    spans = merge_spans(explanation.get("tokens", []))
    top = max((abs(w) for _, _, w in spans), default=0.0) or 1.0
    parts: list[str] = []
    cursor = 0
    for start, end, weight in spans:
        parts.append(html.escape(text[cursor:start]))
        rgb = toward_rgb if weight > 0 else against_rgb
        alpha = 0.15 + 0.75 * abs(weight) / top if abs(weight) > 1e-9 else 0.0
        word = html.escape(text[start:end])
        title = html.escape(strength_words(weight, label), quote=True)
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


# How a word's contribution (its weight, in log-odds of the label) is put into words. A weight of 0.5
# multiplies the odds of the label by about 1.65: "strongly"; from 0.1 (about 1.1x) "slightly"; below
# 0.1 the word barely matters and is left out of the word lists.
STRONG_WEIGHT = 0.5
NOTICEABLE_WEIGHT = 0.1
EXPLANATION_LEGEND = (
    "A word shaded in {label}'s colour pushed the text toward {label}, the other shading away from it; the "
    "stronger the shade, the stronger the push (hover a word to read it). Strongly: the word alone multiplies "
    "the odds of {label} by 1.65 or more; slightly: by 1.1 to 1.65."
)
PUNCTUATION = string.punctuation + "“”‘’«»…–—¡¿"


def strength(weight: float) -> str:
    """'strongly', 'slightly' or 'barely' (the thresholds above)."""
    size = abs(weight)
    return "strongly" if size >= STRONG_WEIGHT else "slightly" if size >= NOTICEABLE_WEIGHT else "barely"


def strength_words(weight: float, label: str) -> str:
    """'strongly toward negative', 'slightly away from positive', 'barely matters' (thresholds above)."""
    how = strength(weight)
    if how == "barely":
        return "barely matters"
    return f"{how} {'toward' if weight > 0 else 'away from'} {label}"


def clean_word(word: str) -> str:
    """The word without surrounding punctuation, lower-cased ('"Good!!' -> 'good'; '!!' -> '')."""
    return word.strip(PUNCTUATION + string.whitespace).lower()


def word_effects(text: str, explanation: dict[str, Any]) -> pd.DataFrame:
    """One row per distinct word: word, times (how often it occurs), weight (summed over its
    occurrences), effect (in words). Punctuation-only tokens are dropped; a word's punctuation is not
    part of it (so "good" and '"good"' are one word). Sorted by the size of the weight."""
    label = str(explanation.get("label", ""))
    totals: dict[str, list[float]] = {}
    for start, end, weight in merge_spans(explanation.get("tokens", [])):
        word = clean_word(text[start:end])
        if word:
            entry = totals.setdefault(word, [0, 0.0])
            entry[0] += 1
            entry[1] += weight
    frame = pd.DataFrame(
        [(w, int(n), float(wt)) for w, (n, wt) in totals.items()], columns=["word", "times", "weight"]
    )
    frame["effect"] = [strength_words(w, label) for w in frame["weight"]]
    order = frame["weight"].abs().sort_values(ascending=False, kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def top_words(text: str, explanation: dict[str, Any], n: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The `n` words pushing most toward the label and the `n` pushing most away from it, each a table
    of word, times and push ("strongly" / "slightly": the table's title says which way; repeats merged,
    punctuation and negligible words left out)."""
    frame = word_effects(text, explanation)
    frame = frame[frame["weight"].abs() >= NOTICEABLE_WEIGHT]
    frame = frame.assign(push=frame["weight"].map(strength))
    columns = ["word", "times", "push"]
    toward = frame[frame["weight"] > 0].head(n)[columns]
    against = frame[frame["weight"] < 0].head(n)[columns]
    return toward.reset_index(drop=True), against.reset_index(drop=True)


def explanation_summary(text: str, explanation: dict[str, Any], n: int = 3) -> str:
    """One plain sentence: which words pushed the text toward its label, and which away from it."""
    label = str(explanation.get("label", ""))
    toward, against = top_words(text, explanation, n)

    def listed(frame: pd.DataFrame) -> str:
        words = [f"“{w}”" + (f" (×{t})" if t > 1 else "") for w, t in zip(frame["word"], frame["times"])]
        return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]

    if toward.empty and against.empty:
        return f"No single word pushed this text clearly toward or away from {label}."
    parts = []
    if not toward.empty:
        parts.append(f"{listed(toward)} pushed it toward {label}")
    if not against.empty:
        parts.append(f"{listed(against)} pushed it away from {label}")
    return "; ".join(parts)[0].upper() + "; ".join(parts)[1:] + "."


def disagreement_note(fast: dict[str, Any], accurate: dict[str, Any]) -> str | None:
    """What it means when the fast and the accurate model give different labels (None when they agree
    or one of them could not score the text)."""
    if fast.get("error") or accurate.get("error"):
        return None
    a, b = fast.get("sentiment"), accurate.get("sentiment")
    if a == b:
        return None
    return (
        f"The two models disagree: the fast model says {a} ({float(fast['confidence']):.0%}), the accurate "
        f"model says {b} ({float(accurate['confidence']):.0%}). The text is ambiguous or unusual for the "
        "models: trust the accurate model's answer more, and read the text yourself before acting on it."
    )


def probability_chart(frame: pd.DataFrame, height: int = 180) -> Any:
    """Horizontal bars of a `probability_frame`, each label in its palette colour (an Altair chart)."""
    import altair as alt

    labels = frame["label"].tolist()
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=alt.Y("label:N", sort=labels, title=None),
            x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"), title=None),
            color=alt.Color(
                "label:N", scale=alt.Scale(domain=labels, range=palette.colours(labels)), legend=None
            ),
            tooltip=["label:N", alt.Tooltip("probability:Q", format=".1%")],
        )
        .properties(height=height)
    )


def label_count_chart(summary: pd.DataFrame, height: int = 240) -> Any:
    """Bars of rows per label (a `label_summary`), each label in its palette colour; "not scored" grey."""
    import altair as alt

    labels = summary["label"].astype(str).tolist()
    return (
        alt.Chart(summary)
        .mark_bar()
        .encode(
            x=alt.X("label:N", sort=labels, title=None),
            y=alt.Y("rows:Q", title="rows"),
            color=alt.Color(
                "label:N", scale=alt.Scale(domain=labels, range=palette.colours(labels)), legend=None
            ),
            tooltip=["label:N", "rows:Q"],
        )
        .properties(height=height)
    )


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


def selection_note(card: dict[str, Any]) -> str:
    """The caption over a card's metrics: which data the model's choices were made on.

    A card with a ``holdout`` block (the default TF-IDF model) had its settings chosen on a temporal
    holdout of train (fitted on the oldest 80%, scored on the newest 20%); validation and test are
    only reported. Other cards (the transformer, the accurate mode) were chosen on validation.
    """
    if isinstance((card.get("metrics") or {}).get("holdout"), dict):
        return (
            "**Metrics** (settings chosen on a temporal holdout of train: fitted on its oldest 80%, "
            "scored on its newest 20%; validation and test are reported, not used to choose)"
        )
    return "**Metrics** (validation was used for model choice; test is reported once)"


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


def search_rows(frame: pd.DataFrame, column: str, query: str | None) -> pd.DataFrame:
    """The rows whose `column` contains `query` (case-insensitive, literal: no pattern); all when empty."""
    query = (query or "").strip()
    if not query or column not in frame.columns:
        return frame
    values = frame[column].map(lambda v: "" if v is None else str(v))
    return frame[values.str.contains(query, case=False, regex=False, na=False)]


def group_rows(frame: pd.DataFrame, column: str | None, groups: list[str] | None) -> pd.DataFrame:
    """The rows whose `column` (shown as text) is one of `groups`; all when no column or no choice."""
    if not column or not groups or column not in frame.columns:
        return frame
    values = frame[column].map(lambda v: "" if v is None or v != v else str(v))
    return frame[values.isin([str(g) for g in groups])]


def download_label(n_rows: int) -> str:
    """The filtered download's button text, e.g. 'Download the 3 filtered rows (CSV)'."""
    return f"Download the {n_rows:,} filtered row{'' if n_rows == 1 else 's'} (CSV)"


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


# --- feedback: corrections and the review queue (the app's widgets are in app.py) ---------------------
FEEDBACK_OFF = (
    "Corrections are not saved on this server: set SENTIMENTKIT_FEEDBACK to a folder or az:// URI "
    "(normally the `retrain --incoming` location) and restart the app."
)
REVIEW_NEEDS_LOG = (
    "The review queue is built from the prediction log, with its texts: set SENTIMENTKIT_PREDICTION_LOG "
    "and SENTIMENTKIT_PREDICTION_LOG_TEXT=true, score some texts (batch tab, API), then come back."
)
REVIEW_KEYS = {"negative": "1", "neutral": "2", "positive": "3", "skip": "s"}
REVIEW_BATCH = 20


def correction(text: str, label: str, result: dict[str, Any] | None, model_version: str, user: str = "",
               request_id: str = "") -> dict[str, Any]:  # fmt: skip
    """One correction as the feedback store takes it, with what the model said (`result`: a scored record)."""
    result = result or {}
    return {"text": text, "label": label, "user": user, "source": "app", "model_version": model_version,
            "predicted": result.get("sentiment") or "", "confidence": result.get("confidence"),
            "request_id": request_id}  # fmt: skip


def save_corrections(store: str | None, rows: list[dict[str, Any]]) -> tuple[bool, str]:
    """(saved?, one line for the page). Never raises for what a user or the storage can cause."""
    if not store:
        return False, FEEDBACK_OFF
    if not rows:
        return False, "Nothing to save: choose a label in the `correct label` column first."
    try:
        _, stored = write_corrections(store, rows)
    except (FeedbackError, OSError) as exc:
        return False, redact(f"Not saved: {exc}")
    return (
        True,
        f"Saved {stored} correction{'s' if stored != 1 else ''}. Thank you: retraining will learn from it.",
    )


def batch_corrections(edited: pd.DataFrame, text_column: str, model_version: str, user: str = "") -> list[dict[str, Any]]:  # fmt: skip
    """The corrections in the batch tab's editable table: rows whose `correct label` was chosen."""
    chosen = edited[edited["correct label"].isin(LABELS)]
    return [correction(str(row[text_column]), row["correct label"],
                       {"sentiment": row.get("sentiment"), "confidence": row.get("confidence")}, model_version, user)
            for _, row in chosen.iterrows() if isinstance(row[text_column], str) and row[text_column].strip()]  # fmt: skip


def progress_line(labelled: int, to_go: int) -> str:
    """'132 labelled, 68 to go'."""
    return f"{labelled:,} labelled, {to_go:,} to go"


def review_round(log: str | None, log_text: bool, store: str | None, n: int = REVIEW_BATCH) -> dict[str, Any]:
    """The next `n` logged predictions to label (not yet in the store), with the counts for the
    progress line: {"queue": frame, "labelled": texts of the log already labelled, "to_go": the rest}.
    Raises ValueError with the sentence to show when the log or the store is missing."""
    if not store:
        raise ValueError(FEEDBACK_OFF)
    if not log or not log_text:
        raise ValueError(REVIEW_NEEDS_LOG)
    logged = set(logged_predictions(log)["text"])
    done = [t for t in read_feedback(store)["text"] if t in logged]
    to_go = len(logged) - len(done)
    queue = review_queue(log, n, DEFAULT_STRATEGY, exclude=done) if to_go else pd.DataFrame(columns=["text"])
    return {"queue": queue.reset_index(drop=True), "labelled": len(done), "to_go": to_go}


def review_keys_html() -> str:
    """A key listener for the Review tab (in a components.html frame): 1/2/3 click the label buttons,
    s clicks skip. Only visible buttons are clicked and typing in a text box is left alone; without
    JavaScript the buttons work as they are. The listener is installed once, in the page itself (a
    listener owned by the frame would stop working when Streamlit replaces the frame)."""
    keys = json.dumps({key: f"{name} [{key}]" for name, key in REVIEW_KEYS.items()})
    listener = f"""
(function () {{
  if (window.__sentimentkitReviewKeys) return;
  window.__sentimentkitReviewKeys = true;
  const keys = {keys};
  document.addEventListener("keydown", function (event) {{
    const target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))) return;
    const label = keys[String(event.key).toLowerCase()];
    if (!label) return;
    const button = Array.from(document.querySelectorAll("button")).find(
      (b) => b.innerText.trim() === label && b.offsetParent !== null);
    if (button) {{ event.preventDefault(); button.click(); }}
  }});
}})();"""
    return f"""<script>
(function () {{
  const doc = window.parent.document;
  if (window.parent.__sentimentkitReviewKeys) return;
  const script = doc.createElement("script");
  script.textContent = {json.dumps(listener)};
  doc.head.appendChild(script);
}})();
</script>"""


def language_note(result: dict[str, Any]) -> str | None:
    """A warning for a text the language guard found in a language the model does not read."""
    code = result.get("language")
    if not code or code == "en":
        return None
    name = LANGUAGE_NAMES.get(code, f"language '{code}'")
    sure = result.get("language_confidence")
    how = f" ({sure:.0%} sure)" if isinstance(sure, float) else ""
    return (
        f"This text looks like {name}{how}. The model reads English only: its answer is shown, but do "
        "not trust it; rows like this are left out of Insights' statistics."
    )


def parts_html(text: str, parts: list[dict[str, Any]]) -> str:
    """The text with each part shaded in its label's colour (title: label and probability).

    All user text is HTML-escaped; only our own <span> tags are markup.
    """
    out: list[str] = []
    cursor = 0
    for part in parts:
        start, end, label = int(part["start"]), int(part["end"]), str(part["sentiment"])
        out.append(html.escape(text[cursor:start]))
        rgb = palette.rgb(palette.colour(label))
        title = html.escape(f"{label} {part['scores'][label]:.0%}", quote=True)
        out.append(
            f'<span class="sk-part sk-{html.escape(label, quote=True)}" title="{title}" '
            f'style="background: rgba({rgb}, 0.30); border-radius: 3px; padding: 0 2px;">'
            f"{html.escape(text[start:end])}</span>"
        )
        cursor = end
    out.append(html.escape(text[cursor:]))
    legend = " ".join(
        f'<span style="background: rgba({rgb}, 0.30); padding: 0 4px; border-radius: 3px;">{label}</span>'
        for label, rgb in ((name, palette.rgb(palette.colour(name))) for name in LABELS)
    )
    return (
        '<div class="sk-parts" style="white-space: pre-wrap; line-height: 1.9; font-size: 1.05rem;">'
        f'{"".join(out)}</div><div style="font-size: 0.8rem; margin-top: 4px;">{legend}</div>'
    )


def mentioning_part_html(example: dict[str, Any]) -> str:
    """A text behind a target (`insights.targets` example) with the part that mentions the target
    shaded in its label's colour, then its row, label and probability. All user text is escaped."""
    text, start, end, label = (
        str(example["text"]),
        int(example["start"]),
        int(example["end"]),
        str(example["sentiment"]),
    )
    rgb = palette.rgb(palette.colour(label))
    return (
        f'<div class="sk-target-text">{html.escape(text[:start])}<span class="sk-part sk-{html.escape(label, quote=True)}" '
        f'style="background: rgba({rgb}, 0.30); border-radius: 3px; padding: 0 2px;">{html.escape(text[start:end])}'
        f"</span>{html.escape(text[end:])} <small>(row {int(example['row'])}: this part {html.escape(label)}, "
        f"p = {float(example['probability']):.2f})</small></div>"
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
