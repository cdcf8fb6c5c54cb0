"""App logic that is not widgets: opening backends, input checks, explanation HTML, card tables.

`app.py` holds only Streamlit widgets and layout; everything here is plain Python so it can be
unit-tested without a browser. Nothing runs at import time.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sentimentkit import LABELS
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

# Words that push toward the label are blue, those against it red (a colour-blind-safe pair).
TOWARD_RGB = "26, 133, 255"
AGAINST_RGB = "212, 17, 89"


# Parts are shaded by their label (Okabe-Ito colours, told apart with colour-blindness too).
LABEL_RGB = {"positive": "0, 158, 115", "negative": "213, 94, 0", "neutral": "153, 153, 153"}
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
    from sentimentkit.feedback.store import FeedbackError, write_corrections

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
    from sentimentkit.feedback.queue import logged_predictions, review_queue
    from sentimentkit.feedback.store import read_feedback

    if not store:
        raise ValueError(FEEDBACK_OFF)
    if not log or not log_text:
        raise ValueError(REVIEW_NEEDS_LOG)
    logged = set(logged_predictions(log)["text"])
    done = [t for t in read_feedback(store)["text"] if t in logged]
    to_go = len(logged) - len(done)
    queue = review_queue(log, n, "uncertain", exclude=done) if to_go else pd.DataFrame(columns=["text"])
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
        rgb = LABEL_RGB.get(label, LABEL_RGB["neutral"])
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
        for label, rgb in LABEL_RGB.items()
    )
    return (
        '<div class="sk-parts" style="white-space: pre-wrap; line-height: 1.9; font-size: 1.05rem;">'
        f'{"".join(out)}</div><div style="font-size: 0.8rem; margin-top: 4px;">{legend}</div>'
    )
