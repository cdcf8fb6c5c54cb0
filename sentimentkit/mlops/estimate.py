"""How good is the model now, between labels: confidence-based performance estimation (CBPE).

If the probabilities are calibrated, a text predicted j is truly class i with probability p_i, so the
expected confusion matrix of a window (rows: true class, columns: predicted class) is

    E[C_ij] = sum of p_i over the window's texts predicted j

and from it AvgRec (macro recall over negative/neutral/positive) and accuracy:

    recall_i = E[C_ii] / sum_j E[C_ij],   AvgRec = mean_i recall_i,   accuracy = trace(E[C]) / n.

(This is NannyML's CBPE for multiclass recall and accuracy; benchmarks/performance_estimate_nannyml.py
checks it against NannyML 0.13.1.) The interval is where the *realized* score of this window would lie
if the probabilities were right: labels are drawn from the probabilities (each text its own categorical
draw: a multinomial Monte Carlo of the Poisson-binomial counts), the realized metric computed for each
draw, and the 5% and 95% quantiles kept (a 90% interval); above EXACT_ROWS texts each predicted
column's true-class counts are drawn from their normal approximation instead (same mean and
covariance). It is the sampling noise of a window of this size, not the error of a wrong calibration,
and it cannot see mistakes made confidently or label shift that leaves the confidences unchanged
(docs/performance_estimate.md).

The probabilities are first mapped by the card's calibrator (training/calibrate.py) when it has one;
the served probabilities are never changed. Realized scores come from labels matched to the logged
predictions (`match_labels`: by request_id, else exact text, else the text's SHA-256).

Labels where they exist, probabilities for the rest: given the true class of some of the window's
predictions (`truth`, -1 where unknown), a labelled text counts in E[C] with its label (a one-hot row:
certain) and only the others with their calibrated probabilities; the interval then draws labels for
the unlabelled texts only. With labels this is the window's estimate `monitor --labels` judges. Why:
off domain the estimate's error is mostly a few texts repeated many times that the model gets
confidently wrong (on the Apple tweets, two retweeted texts are 12% of the rows and all of the
estimate's 7-point error); labelling the most repeated texts of a window removes it, and no
recalibration can (benchmarks/performance_estimate.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from sentimentkit import LABELS
from sentimentkit.errors import LabelsError, OptionError
from sentimentkit.io import storage
from sentimentkit.io.tables import read_table
from sentimentkit.training import calibrate
from sentimentkit.training.calibrate import apply_calibrator

PROBA_COLUMNS = tuple(f"p_{label}" for label in LABELS)
DRAWS = 1000
LEVEL = 0.90
EXACT_ROWS = 2_000  # larger windows draw each column's counts from their normal approximation


# --- the estimate ------------------------------------------------------------------------------------
def expected_confusion(proba: np.ndarray, predicted: Sequence[int]) -> np.ndarray:
    """E[C] (k x k, rows true, columns predicted): column j sums the probability rows predicted j."""
    return calibrate.expected_confusion(proba, predicted)


def scores(confusion: np.ndarray) -> dict[str, Any]:
    """AvgRec, accuracy and per-class recall of a (possibly expected, fractional) confusion matrix."""
    return calibrate.confusion_scores(confusion, LABELS)


def _draw_realized(proba: np.ndarray, predicted: np.ndarray, draws: int, seed: int) -> np.ndarray:
    """(draws x 2) realized (AvgRec, accuracy) with labels drawn from `proba`, row by row."""
    rng = np.random.default_rng(seed)
    n, k = proba.shape
    cum = np.cumsum(proba, axis=1)
    cum[:, -1] = 1.0
    out = np.empty((draws, 2))
    block = max(1, 2_000_000 // max(n, 1))  # bound memory: n x block uniforms at a time
    cell = predicted[None, :]  # predicted class of each text, broadcast over draws
    for start in range(0, draws, block):
        m = min(block, draws - start)
        u = rng.random((m, n, 1))
        truth = (u > cum[None, :, :]).sum(axis=2)  # m x n drawn true classes
        flat = (truth * k + cell).ravel() + np.repeat(np.arange(m) * k * k, n)
        conf = np.bincount(flat, minlength=m * k * k).reshape(m, k, k).astype(float)
        support = conf.sum(axis=2)
        diag = np.diagonal(conf, axis1=1, axis2=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(support > 0, diag / support, np.nan)
        out[start : start + m, 0] = np.nanmean(recall, axis=1)
        out[start : start + m, 1] = diag.sum(axis=1) / n
    return out


def _draw_realized_normal(proba: np.ndarray, predicted: np.ndarray, draws: int, seed: int) -> np.ndarray:
    """As `_draw_realized`, with each predicted column's true-class counts drawn from the normal
    distribution of the same mean and covariance (sum over its texts of p and diag(p) - p p^T): the
    central limit theorem's stand-in for the exact draw when the window is large (cost: O(draws))."""
    rng = np.random.default_rng(seed)
    n, k = proba.shape
    conf = np.empty((draws, k, k))
    for j in range(k):
        rows = proba[predicted == j]
        mean = rows.sum(axis=0)
        cov = np.diag(mean) - rows.T @ rows
        conf[:, :, j] = np.clip(rng.multivariate_normal(mean, cov, size=draws, method="eigh"), 0, None)
    support = conf.sum(axis=2)
    diag = np.diagonal(conf, axis1=1, axis2=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, diag / support, np.nan)
    return np.column_stack([np.nanmean(recall, axis=1), diag.sum(axis=1) / conf.sum(axis=(1, 2))])


def estimate(proba: np.ndarray, predicted: Sequence[int] | None = None, calibrator: dict[str, Any] | None = None,
             draws: int = DRAWS, level: float = LEVEL, seed: int = 0,
             truth: Sequence[int] | None = None) -> dict[str, Any]:  # fmt: skip
    """The CBPE estimate of one window: avg_recall, accuracy, per-class recall, each score's `level`
    interval ([low, high] of the realized score's Monte Carlo distribution), n, n_labelled, and whether
    a calibrator was applied. `predicted` (class indices) defaults to the argmax of the served `proba`.
    `truth` (class indices, -1 where unknown): the labelled rows count with their label instead of
    their probabilities (the module doc); with every row labelled the estimate is the realized score."""
    served = np.asarray(proba, dtype=float)
    if served.ndim != 2 or len(served) == 0:
        return {"n": 0, "n_labelled": 0, "avg_recall": None, "accuracy": None, "recall": None, "interval": None,
                "level": level, "calibrated": False}  # fmt: skip
    pred = served.argmax(axis=1) if predicted is None else np.asarray(predicted, dtype=int)
    p = apply_calibrator(served, calibrator)
    p = p / p.sum(axis=1, keepdims=True)
    known = np.zeros(len(p), dtype=bool)
    if truth is not None:
        truth = np.asarray(truth, dtype=int)
        if truth.shape != (len(p),) or truth.max(initial=-1) >= p.shape[1]:
            raise ValueError(f"truth must be {len(p)} class indices below {p.shape[1]} (-1: unknown)")
        known = truth >= 0
        p[known] = np.eye(p.shape[1])[truth[known]]
    point = scores(expected_confusion(p, pred))
    simulate = _draw_realized if len(p) <= EXACT_ROWS else _draw_realized_normal
    sims = simulate(p, pred, draws, seed) if draws else None
    tail = (1 - level) / 2
    interval = None
    if sims is not None:
        interval = {
            name: [float(np.nanquantile(sims[:, i], tail)), float(np.nanquantile(sims[:, i], 1 - tail))]
            for i, name in enumerate(("avg_recall", "accuracy"))
        }
    return {"n": len(p), "n_labelled": int(known.sum()), **point, "interval": interval, "level": level,
            "calibrated": bool(calibrator and calibrator.get("method", "none") != "none")}  # fmt: skip


def _class_index(values: pd.Series) -> np.ndarray:
    index = {label: i for i, label in enumerate(LABELS)}
    return values.astype(object).map(index).fillna(-1).to_numpy(dtype=int)


def frame_arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities n x 3, predicted class indices) of prediction-log rows (rows without
    probabilities are left out)."""
    if not set(PROBA_COLUMNS) <= set(frame.columns):  # rows from before probabilities were logged
        return np.empty((0, len(LABELS))), np.empty(0, dtype=int)
    kept = frame.dropna(subset=list(PROBA_COLUMNS))
    proba = kept[list(PROBA_COLUMNS)].to_numpy(dtype=float)
    predicted = _class_index(kept["label"])
    predicted = np.where(predicted < 0, proba.argmax(axis=1) if len(proba) else predicted, predicted)
    return proba, predicted


def estimate_frame(frame: pd.DataFrame, calibrator: dict[str, Any] | None = None, draws: int = DRAWS,
                   seed: int = 0, use_labels: bool = False) -> dict[str, Any]:  # fmt: skip
    """`estimate` of the prediction-log rows `frame` (columns p_negative/p_neutral/p_positive, label).
    With `use_labels`, rows whose `true_label` column (from `match_labels`) holds a label count with it."""
    proba, predicted = frame_arrays(frame)
    truth = None
    if use_labels and "true_label" in frame.columns and len(proba):
        truth = _class_index(frame.dropna(subset=list(PROBA_COLUMNS))["true_label"])
    return estimate(proba, predicted, calibrator, draws=draws, seed=seed, truth=truth)


# --- realized scores from labels ---------------------------------------------------------------------
def realized(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """AvgRec, accuracy and per-class recall of labels against predictions (strings), with n."""
    index = {label: i for i, label in enumerate(LABELS)}
    c = np.zeros((len(LABELS), len(LABELS)))
    for t, p in zip(truth, predicted):
        c[index[t], index[p]] += 1
    return {"n": int(c.sum()), **scores(c)}


def text_sha256(text: str) -> str:
    """The prediction log's text hash (predlog stores the same)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def match_labels(log: pd.DataFrame, labels: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """(log rows with a `true_label` column, only those matched; how they were matched).

    By `request_id` when both sides have it: the request id and the text's SHA-256 together (a batch
    request logs several texts under one id), or the request id alone where it names a single logged
    prediction (the labelling tool may have touched the text). Else by exact text when the log holds
    text (SENTIMENTKIT_PREDICTION_LOG_TEXT=true), else by the SHA-256 of the label file's text against
    the log's `text_sha256`. A text logged several times gets its label on each row; when a label file
    gives one key two different labels, the last one wins.
    """
    labels = labels.dropna(subset=["label"])
    hashes = labels["text"].map(lambda t: text_sha256(str(t))).astype("string")
    has_ids = (
        "request_id" in labels.columns
        and labels["request_id"].notna().any()
        and log["request_id"].notna().any()
    )
    if has_ids:
        ids = labels["request_id"].astype("string")
        by_pair = dict(zip(ids + "\x1f" + hashes, labels["label"]))
        log_ids = log["request_id"].astype("string")
        single = log_ids.map(log_ids.value_counts()) == 1
        by_id = dict(zip(ids, labels["label"]))
        true = (log_ids + "\x1f" + log["text_sha256"].astype("string")).map(by_pair)
        true = true.where(true.notna(), log_ids.map(by_id).where(single))
        matched = log.assign(true_label=true)
        return matched[matched["true_label"].notna()].copy(), "request_id"
    if "text" in log.columns and log["text"].notna().any():
        key_log, key_lab, how = log["text"].astype("string"), labels["text"].astype("string"), "exact text"
    else:
        key_log, key_lab, how = log["text_sha256"].astype("string"), hashes, "text SHA-256"
    lookup = dict(zip(key_lab, labels["label"]))
    matched = log.assign(true_label=key_log.map(lookup))
    return matched[matched["true_label"].notna()].copy(), how


def _read_one(path: str) -> pd.DataFrame:
    with storage.local_input(path) as local:
        if str(path).lower().endswith(".parquet"):
            return pd.read_parquet(local)
        return read_table(local.read_bytes(), str(path)).frame


def read_labels(source: str) -> pd.DataFrame:
    """text + label (+ request_id when present) from a CSV/TSV/XLSX/Parquet file or a local folder of
    them (the feedback store: labelled batches, as retrain reads them; files under folders starting
    with `_` or `.`, e.g. retrain's state, are skipped). Labels are normalised to negative/neutral/positive;
    rows with another label are dropped (counted in `attrs['dropped']`)."""
    from pathlib import Path

    suffixes = (".csv", ".tsv", ".txt", ".xlsx", ".parquet")
    if not storage.is_remote(source) and Path(source).is_dir():
        root = Path(source)
        files = sorted(str(p) for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes and
                       not any(part.startswith(("_", ".")) for part in p.relative_to(root).parts))  # fmt: skip
        if not files:
            raise FileNotFoundError(
                f"no CSV, XLSX or Parquet files in {source}: give a labelled file or folder"
            )
    elif not storage.is_remote(source) and not Path(source).exists():
        raise FileNotFoundError(
            f"labels file {source} not found: give a CSV/XLSX/Parquet file or a folder of them"
        )
    else:
        files = [source]
    frames = []
    for path in files:
        table = _read_one(path)
        missing = [c for c in ("text", "label") if c not in table.columns]
        if missing:
            raise LabelsError(
                f"{path} has no {' or '.join(missing)} column: label files need text and label columns"
            )
        keep = [c for c in ("text", "label", "request_id") if c in table.columns]
        frames.append(table[keep])
    out = pd.concat(frames, ignore_index=True)
    label = out["label"].astype("string").str.strip().str.lower()
    good = label.isin(LABELS).fillna(False).to_numpy(dtype=bool)
    out = out.assign(label=label)[good].reset_index(drop=True)
    out.attrs["dropped"] = int((~good).sum())
    out.attrs["files"] = len(files)
    return out


# --- the monitoring signal -----------------------------------------------------------------------------
OK, WARN, ALERT = "OK", "WARN", "ALERT"  # the monitor's levels (mlops/monitor.py)


BASELINES = ("measured", "estimated")


def reference_performance(
    reference: dict[str, Any], baseline: str = "measured"
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the reference's scores on validation, the calibrator) from a reference profile: its `measured`
    scores (from the labels) or its `estimated` ones (this estimator); None when the card has no
    `performance` block (a model trained before it existed: training.performance adds one)."""
    if baseline not in BASELINES:
        raise OptionError(f"estimate_baseline must be one of {BASELINES}, not {baseline!r}")
    block = reference.get("performance") or {}
    return block.get(baseline), block.get("calibration")


REPEATED = 10  # the performance signal lists the window's most repeated texts, this many
REPEATED_SHARE = 0.05  # and points at them in its reason when they are at least this share of the window


def most_repeated(frame: pd.DataFrame, n: int = REPEATED) -> tuple[list[dict[str, Any]], float]:
    """(the `n` texts logged most often in `frame`, twice or more, most first; the share of its rows they
    are). Each: `text` (None unless the log keeps texts), `text_sha256`, `predictions`, `share`,
    `predicted` (the latest label) and `labelled` (a label matched it: `true_label`). These are the texts
    to label first for the estimate: a label makes every logged copy exact (module doc)."""
    if frame.empty or "text_sha256" not in frame.columns:
        return [], 0.0
    counts = frame["text_sha256"].value_counts(sort=False)
    counts = counts[counts >= 2]
    top = counts.sort_values(ascending=False, kind="stable").head(n)
    if top.empty:
        return [], 0.0
    last = frame.drop_duplicates("text_sha256", keep="last").set_index("text_sha256")
    has_text = "text" in last.columns
    labelled = (
        last["true_label"].notna() if "true_label" in last.columns else pd.Series(False, index=last.index)
    )
    out = [{"text": (last.at[sha, "text"] if has_text and pd.notna(last.at[sha, "text"]) else None),
            "text_sha256": str(sha), "predictions": int(count), "share": float(count / len(frame)),
            "predicted": str(last.at[sha, "label"]), "labelled": bool(labelled.get(sha, False))}
           for sha, count in top.items()]  # fmt: skip
    return out, float(top.sum() / len(frame))


def _num(value: Any) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _finite(value: Any) -> bool:
    return value is not None and bool(np.isfinite(value))


def performance_signal(frame: pd.DataFrame, reference: dict[str, Any], t: Any,
                       use_labels: bool = False) -> dict[str, Any]:  # fmt: skip
    """The `performance` signal of the monitor: the window's estimated AvgRec (90% interval) and
    accuracy, WARN / ALERT when the AvgRec estimate is `t.estimate_drop_warn` / `t.estimate_drop_alert`
    (absolute, 0.03 = 3 points) or more below the reference's AvgRec on validation (its `measured` or
    `estimated` one, `t.estimate_baseline`). With `use_labels` (rows carry `true_label` from
    `match_labels`) the labelled rows count with their labels (`estimate`'s `truth`); the estimate
    from the probabilities alone stays in `estimated_avg_recall_probabilities`."""
    base, calibrator = reference_performance(reference, getattr(t, "estimate_baseline", "measured"))
    est = estimate_frame(frame, calibrator, use_labels=use_labels)
    low, high = (est["interval"] or {}).get("avg_recall", [None, None])
    values: dict[str, Any] = {
        "estimated_avg_recall": _num(est["avg_recall"]), "estimated_accuracy": _num(est["accuracy"]),
        "avg_recall_low": low, "avg_recall_high": high,
        "accuracy_low": (est["interval"] or {}).get("accuracy", [None, None])[0],
        "accuracy_high": (est["interval"] or {}).get("accuracy", [None, None])[1],
        "estimated_recall": est["recall"], "calibrated": est["calibrated"], "n": est["n"],
    }  # fmt: skip
    repeated, repeated_share = most_repeated(frame)
    values.update(most_repeated=repeated, most_repeated_share=repeated_share)
    if use_labels:
        alone = estimate_frame(frame, calibrator, draws=0)
        values.update(labels_used=est["n_labelled"], estimated_avg_recall_probabilities=_num(alone["avg_recall"]),
                      estimated_accuracy_probabilities=_num(alone["accuracy"]))  # fmt: skip
    if not _finite(est["avg_recall"]):
        return {
            "status": OK,
            "reason": "no probabilities logged to estimate from",
            "values": values,
        }
    how = ""
    if est["n_labelled"]:
        how = (f" (labels for {est['n_labelled']:,} of the {est['n']:,} predictions, calibrated probabilities "
               f"for the rest; from the probabilities alone {alone['avg_recall']:.3f})")  # fmt: skip
    shown = (
        f"estimated AvgRec {est['avg_recall']:.3f}{how} (90% interval {low:.3f}-{high:.3f}), "
        f"accuracy {est['accuracy']:.3f}"
    )
    advice = ""
    unlabelled = [r for r in repeated if not r["labelled"]]
    if repeated_share >= REPEATED_SHARE and unlabelled:
        where = ("`review --strategy frequent` writes them to label; `monitor --json` lists them"
                 if any(r["text"] for r in unlabelled)
                 else "set SENTIMENTKIT_PREDICTION_LOG_TEXT=true to see them")  # fmt: skip
        advice = (
            f"; the {len(repeated)} most repeated texts are {repeated_share:.0%} of the predictions "
            f"({len(unlabelled)} unlabelled): label them and pass --labels to make the estimate exact on them "
            f"({where})"
        )
    if not base:
        values["status_note"] = "no reference estimate"
        reason = (f"{shown}; the card holds no reference estimate to compare with "
                  f"(`python -m sentimentkit.training.performance MODEL DATA_DIR` adds one){advice}")  # fmt: skip
        return {"status": OK, "reason": reason, "values": values}
    drop = float(base["avg_recall"]) - float(est["avg_recall"])
    status = ALERT if drop >= t.estimate_drop_alert else WARN if drop >= t.estimate_drop_warn else OK
    values.update(reference_avg_recall=float(base["avg_recall"]), reference_accuracy=float(base["accuracy"]),
                  avg_recall_drop=drop)  # fmt: skip
    reason = (
        f"{shown}; reference ({t.estimate_baseline} on validation) {base['avg_recall']:.3f}, "
        f"{'down' if drop >= 0 else 'up'} {abs(drop) * 100:.1f} points (WARN at a drop of "
        f"{t.estimate_drop_warn * 100:g}, ALERT at {t.estimate_drop_alert * 100:g}){advice}"
    )
    return {"status": status, "reason": reason, "values": values}


def trend_estimate(
    bucket: pd.DataFrame, reference: dict[str, Any], use_labels: bool = False
) -> dict[str, Any]:
    """The point estimate (no interval: cheap) of one trend window, for the trend table (with
    `use_labels`, labelled rows count with their labels, as in `performance_signal`)."""
    est = estimate_frame(bucket, reference_performance(reference)[1], draws=0, use_labels=use_labels)
    return {"estimated_avg_recall": _num(est["avg_recall"]), "estimated_accuracy": _num(est["accuracy"])}


def add_realized(report: dict[str, Any], frame: pd.DataFrame, labels: pd.DataFrame, window: Any,
                 reference: dict[str, Any], source: str = "") -> dict[str, Any]:  # fmt: skip
    """Add realized scores from `labels` (`read_labels`) to a monitor `report` of the log rows `frame`:
    per trend window and for the latest window (in the performance signal), beside the estimate, with
    n labelled and the estimate on just the labelled rows (like for like). Every window holding labelled
    predictions is then estimated again with labels where they exist and probabilities for the rest
    (`estimate`'s `truth`): that estimate is the window's `estimated_avg_recall` and the one the
    performance signal's status judges (the report's thresholds); the estimate from the probabilities
    alone is kept as `estimated_avg_recall_probabilities`. Returns the report (the caller recomputes
    the overall status)."""
    frame = frame.reset_index(drop=True)
    matched, how = match_labels(frame, labels)
    frame = frame.assign(true_label=matched["true_label"].reindex(frame.index))
    calibrator = reference_performance(reference)[1]
    report["labels"] = {"source": source, "files": labels.attrs.get("files"), "rows": int(len(labels)),
                        "dropped_rows": labels.attrs.get("dropped", 0), "matched_predictions": int(len(matched)),
                        "matched_by": how}  # fmt: skip

    def scored(part: pd.DataFrame) -> dict[str, Any]:
        if part.empty:
            return {"n_labelled": 0, "realized_avg_recall": None, "realized_accuracy": None,
                    "estimated_avg_recall_labelled": None}  # fmt: skip
        real = realized(part["true_label"].tolist(), part["label"].tolist())
        est = estimate_frame(part, calibrator, draws=0)
        return {"n_labelled": real["n"], "realized_avg_recall": _num(real["avg_recall"]),
                "realized_accuracy": _num(real["accuracy"]),
                "estimated_avg_recall_labelled": _num(est["avg_recall"])}  # fmt: skip

    for row in report["trend"]:
        start = pd.Timestamp(row["start"])
        row.update(scored(matched[(matched["ts"] > start) & (matched["ts"] <= start + window)]))
        if row["n_labelled"] and row.get("estimated_avg_recall") is not None:
            bucket = frame[(frame["ts"] > start) & (frame["ts"] <= start + window)]
            row.update(estimated_avg_recall_probabilities=row["estimated_avg_recall"],
                       estimated_accuracy_probabilities=row.get("estimated_accuracy"),
                       **trend_estimate(bucket, reference, use_labels=True))  # fmt: skip
    end = pd.Timestamp(report["window"]["end"])
    latest = scored(matched[(matched["ts"] > end - window) & (matched["ts"] <= end)])
    signal = report["signals"].get("performance")
    if signal is not None and latest["n_labelled"] and "estimated_avg_recall" in signal["values"]:
        rows = frame[(frame["ts"] > end - window) & (frame["ts"] <= end)]
        thresholds = SimpleNamespace(**report["thresholds"])
        signal = report["signals"]["performance"] = performance_signal(
            rows, reference, thresholds, use_labels=True
        )
    if signal is not None:
        signal["values"].update(latest)
        if latest["n_labelled"]:
            signal["reason"] += (
                f"; realized on {latest['n_labelled']:,} labelled texts (matched by {how}): AvgRec "
                f"{latest['realized_avg_recall']:.3f}, accuracy {latest['realized_accuracy']:.3f} "
                f"(estimate on those texts {latest['estimated_avg_recall_labelled']:.3f})"
            )
        else:
            signal["reason"] += f"; none of the {len(labels):,} labels match a prediction in this window"
    return report
