"""Compare the prediction log with the reference profile of the model that served it.

Signals (each OK / WARN / ALERT with its reason in words; the overall status is the worst):

- `labels`: predicted label shares vs the reference: chi-square goodness of fit (is the change real?)
  and Jensen-Shannon distance (base 2, 0..1: how large is it?).
- `confidence`: Kolmogorov-Smirnov test of the confidences against the CDF interpolated from the
  reference's 101 stored quantiles, the drop of the mean confidence, the rise of the uncertain share.
- `text_length`: population stability index (PSI) of text length over the reference's deciles.
- `unknown_tokens`: rise (ratio) of the mean share of words the model never saw in training.
- `new_tokens`: unknown words held by at least 1% of the texts (more than the reference had).
- `volume`: predictions in the latest window vs the median of the earlier windows.
- `non_english`: the share of texts the language guard found in a language the model does not read
  (`language` other than English), above the reference's share (0 when it has none).
- `performance`: the estimated AvgRec (and accuracy) of the latest window from the probabilities
  (mlops/estimate.py, CBPE, with its 90% interval) against the reference's AvgRec on validation;
  realized scores beside it when labels are given (`run(..., labels=...)`), and then the labelled
  predictions count with their labels, the rest with their probabilities.

The trend splits `--since` into windows of `--window`, at most `MAX_WINDOWS` of them (more is refused:
widen the window); the rows are grouped into windows in one pass, so the work grows with the rows.

Statistical signals need `min_n` predictions; fewer is a WARN saying so. Thresholds are the fields of
`Thresholds` (README: "Monitoring and retraining"); `--thresholds FILE.json` overrides any of them.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sentimentkit import LABELS
from sentimentkit.errors import ConfigError, OptionError
from sentimentkit.mlops import estimate
from sentimentkit.mlops.predlog import model_identity, read_log
from sentimentkit.redact import redact_obj
from sentimentkit.serving.loader import load_predictor
from sentimentkit.training.profile import frequent_tokens, model_reference, shares, token_hash, words

OK, WARN, ALERT = "OK", "WARN", "ALERT"
ORDER = {OK: 0, WARN: 1, ALERT: 2}
EPS = 1e-4  # floor for empty bins (PSI, chi-square expectations): log(0) is undefined
MAX_WINDOWS = 500  # --since / --window: more trend rows than a report can show or a reader compare


@dataclass(frozen=True)
class Thresholds:
    """WARN / ALERT levels of every signal (documented in the README)."""

    min_n: int = 200  # fewer predictions in the window: the statistics are not trusted (WARN)
    p_value: float = 0.01  # a distance counts only when its test says the change is real
    label_js_warn: float = 0.10  # Jensen-Shannon distance (base 2) of the label shares
    label_js_alert: float = 0.20
    confidence_ks_warn: float = 0.10  # KS statistic of the confidences
    confidence_ks_alert: float = 0.20
    confidence_drop_warn: float = 0.03  # fall of the mean confidence (absolute)
    confidence_drop_alert: float = 0.06
    uncertain_rise_warn: float = 0.05  # rise of the share of uncertain predictions (absolute)
    uncertain_rise_alert: float = 0.10
    length_psi_warn: float = 0.10  # PSI of text length (0.1 / 0.25: the usual rule of thumb)
    length_psi_alert: float = 0.25
    # Mean share of words unknown to the model, relative to the reference's (vocabularies differ in
    # size, so a ratio compares across models); rises under 1 point are ignored (tiny bases).
    unknown_ratio_warn: float = 1.5
    unknown_ratio_alert: float = 2.0
    unknown_min_rise: float = 0.01
    new_tokens_warn: int = 5  # frequent unknown words beyond the reference's count
    new_tokens_alert: int = 15
    volume_low_warn: float = 0.5  # latest window / median of the earlier ones
    volume_low_alert: float = 0.1
    volume_high_warn: float = 3.0
    volume_high_alert: float = 10.0
    # Share of texts in other languages than English, above the reference's (absolute).
    non_english_warn: float = 0.05
    non_english_alert: float = 0.15
    # Estimated AvgRec of the window below the reference's AvgRec on validation (absolute: 0.03 = 3
    # points); the reference is its "measured" AvgRec (from labels) or its "estimated" one (same estimator).
    estimate_drop_warn: float = 0.03
    estimate_drop_alert: float = 0.05
    estimate_baseline: str = "measured"

    def __post_init__(self) -> None:
        if self.estimate_baseline not in ("measured", "estimated"):
            raise ConfigError(
                f"estimate_baseline must be 'measured' or 'estimated', not {self.estimate_baseline!r}"
            )

    @classmethod
    def load(cls, path: str | Path | None) -> Thresholds:
        """Defaults, overridden by the keys of a JSON file; an unknown key is a ValueError naming it."""
        if path is None:
            return cls()
        values = json.loads(Path(path).read_text(encoding="utf-8"))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown threshold(s) {unknown} in {path}; known: {sorted(known)}")
        return cls(**values)


# --- statistics (tested against scipy and hand-computed values) ------------------------------------
def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index: sum (a - e) * ln(a / e) over bins, empty bins floored at EPS."""
    e = np.maximum(np.asarray(expected, dtype=float), EPS)
    a = np.maximum(np.asarray(actual, dtype=float), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def label_test(counts: list[int], reference: list[float]) -> tuple[float, float, float]:
    """(chi-square statistic, its p-value, Jensen-Shannon distance base 2) of observed label counts
    against reference shares."""
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chisquare

    observed = np.asarray(counts, dtype=float)
    ref = np.maximum(np.asarray(reference, dtype=float), EPS)
    ref = ref / ref.sum()
    chi = chisquare(observed, f_exp=ref * observed.sum())
    js = float(jensenshannon(observed / observed.sum(), ref, base=2))
    return float(chi.statistic), float(chi.pvalue), js


def reference_cdf(quantiles: list[float]) -> Any:
    """The reference's cumulative distribution, interpolated from its stored quantiles."""
    q = np.asarray(quantiles, dtype=float)
    probs = np.linspace(0, 1, len(q))
    return lambda x: np.interp(x, q, probs, left=0.0, right=1.0)


def ks_test(values: np.ndarray, quantiles: list[float]) -> tuple[float, float]:
    """(KS statistic, p-value) of `values` against the reference quantile function."""
    from scipy.stats import kstest

    result = kstest(values, reference_cdf(quantiles))
    return float(result.statistic), float(result.pvalue)


# --- levels and signals ------------------------------------------------------------------------------
def level(value: float, warn: float, alert: float) -> str:
    """ALERT at or above `alert`, WARN at or above `warn`, else OK."""
    return ALERT if value >= alert else WARN if value >= warn else OK


def worst(statuses: list[str]) -> str:
    return max(statuses, key=ORDER.__getitem__, default=OK)


def signal(status: str, reason: str, **values: Any) -> dict[str, Any]:
    return {"status": status, "reason": reason, "values": {k: _round(v) for k, v in values.items()}}


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


def label_signal(frame: pd.DataFrame, ref: dict[str, Any], t: Thresholds) -> dict[str, Any]:
    labels = list(ref["label_shares"])
    counts = [int((frame["label"] == label).sum()) for label in labels]
    chi2, p, js = label_test(counts, [ref["label_shares"][label] for label in labels])
    live = {label: c / len(frame) for label, c in zip(labels, counts)}
    status = level(js, t.label_js_warn, t.label_js_alert) if p < t.p_value else OK
    moved = max(labels, key=lambda label: abs(live[label] - ref["label_shares"][label]))
    reason = (
        f"label shares: Jensen-Shannon distance {js:.3f} (WARN at {t.label_js_warn}, ALERT at "
        f"{t.label_js_alert}; chi-square p={p:.2g}); most changed: {moved} "
        f"{ref['label_shares'][moved]:.0%} -> {live[moved]:.0%}"
    )
    return signal(status, reason, chi2=chi2, p_value=p, js=js, shares=live, reference=ref["label_shares"])


def confidence_signal(frame: pd.DataFrame, ref: dict[str, Any], t: Thresholds) -> dict[str, Any]:
    conf = frame["confidence"].to_numpy(dtype=float)
    ks, p = ks_test(conf, ref["confidence_quantiles"])
    mean, uncertain = float(conf.mean()), float(frame["uncertain"].mean())
    drop, rise = ref["confidence_mean"] - mean, uncertain - ref["uncertain_share"]
    parts = [
        (level(ks, t.confidence_ks_warn, t.confidence_ks_alert) if p < t.p_value else OK,
         f"KS {ks:.3f} (WARN at {t.confidence_ks_warn}, ALERT at {t.confidence_ks_alert}; p={p:.2g})"),
        (level(drop, t.confidence_drop_warn, t.confidence_drop_alert),
         f"mean confidence {ref['confidence_mean']:.3f} -> {mean:.3f} (WARN at a drop of "
         f"{t.confidence_drop_warn}, ALERT at {t.confidence_drop_alert})"),
        (level(rise, t.uncertain_rise_warn, t.uncertain_rise_alert),
         f"uncertain share {ref['uncertain_share']:.1%} -> {uncertain:.1%} (WARN at a rise of "
         f"{t.uncertain_rise_warn:.0%}, ALERT at {t.uncertain_rise_alert:.0%})"),
    ]  # fmt: skip
    status = worst([s for s, _ in parts])
    reason = (
        "; ".join(text for s, text in parts if s == status)
        if status != OK
        else "; ".join(p for _, p in parts)
    )
    live_shares = shares(conf, ref["confidence_edges"])
    return signal(status, reason, ks=ks, p_value=p, mean=mean, uncertain_share=uncertain,
                  shares=live_shares, reference_shares=ref["confidence_shares"])  # fmt: skip


def length_signal(frame: pd.DataFrame, ref: dict[str, Any], t: Thresholds) -> dict[str, Any]:
    edges = [e if e is not None else float("inf") for e in ref["length_edges"]]
    live = shares(frame["n_chars"].to_numpy(dtype=float), edges)
    value = psi(ref["length_shares"], live)
    mean = float(frame["n_chars"].mean())
    reason = (
        f"text length PSI {value:.3f} (WARN at {t.length_psi_warn}, ALERT at {t.length_psi_alert}); "
        f"mean length {ref['length_mean']:.0f} -> {mean:.0f} characters"
    )
    return signal(level(value, t.length_psi_warn, t.length_psi_alert), reason, psi=value, mean=mean,
                  shares=live, reference_shares=ref["length_shares"])  # fmt: skip


def unknown_signal(frame: pd.DataFrame, ref: dict[str, Any], t: Thresholds) -> dict[str, Any]:
    values = frame["unknown_share"].dropna().to_numpy(dtype=float)
    if ref.get("unknown_share_mean") is None or len(values) == 0:
        return signal(OK, "unknown words: not measured for this model (no word vocabulary)")
    mean = float(values.mean())
    ratio = mean / max(ref["unknown_share_mean"], EPS)
    reason = (
        f"share of words unknown to the model {ref['unknown_share_mean']:.1%} -> {mean:.1%}, {ratio:.1f}x "
        f"(WARN at {t.unknown_ratio_warn}x, ALERT at {t.unknown_ratio_alert}x, if up by at least "
        f"{t.unknown_min_rise:.0%})"
    )
    status = level(ratio, t.unknown_ratio_warn, t.unknown_ratio_alert)
    status = status if mean - ref["unknown_share_mean"] >= t.unknown_min_rise else OK
    return signal(status, reason, mean=mean, ratio=ratio,
                  reference_mean=ref["unknown_share_mean"], shares=shares(values, ref["unknown_edges"]),
                  reference_shares=ref["unknown_shares"])  # fmt: skip


def new_token_signal(frame: pd.DataFrame, ref: dict[str, Any], t: Thresholds) -> dict[str, Any]:
    frequent = frequent_tokens(list(frame["unknown_tokens"]))
    names = _token_names(frame, set(frequent))
    extra = len(frequent) - int(ref.get("frequent_unknown_tokens") or 0)
    top = [
        {"token": names.get(h, h), "texts": n, "share": n / len(frame)}
        for h, n in list(frequent.items())[:10]
    ]
    shown = ", ".join(f"{x['token']} ({x['share']:.0%})" for x in top[:5]) or "none"
    reason = (
        f"{len(frequent)} unknown words each in at least 1% of texts (reference: "
        f"{ref.get('frequent_unknown_tokens', 0)}; WARN at {t.new_tokens_warn} more, ALERT at "
        f"{t.new_tokens_alert} more); most frequent: {shown}"
    )
    if any(h not in names for h in list(frequent)[:5]):
        reason += (
            " (codes stand for words the log does not hold: set SENTIMENTKIT_PREDICTION_LOG_TEXT=1 to log "
            "the texts and see the words)"
        )
    return signal(level(extra, t.new_tokens_warn, t.new_tokens_alert), reason, count=len(frequent), top=top)


def _token_names(frame: pd.DataFrame, hashes: set[str]) -> dict[str, str]:
    """Hash -> word, recovered from the logged text when text logging was on (else hashes are shown)."""
    names: dict[str, str] = {}
    for text in frame["text"].dropna().head(20_000):
        for word in words(text):
            if token_hash(word) in hashes:
                names[token_hash(word)] = word
    return names


def language_signal(frame: pd.DataFrame, ref: dict[str, Any], t: Thresholds) -> dict[str, Any]:
    """Share of texts the language guard found in other languages than English, vs the reference."""
    codes = frame["language"].dropna() if "language" in frame.columns else pd.Series(dtype=object)
    if codes.empty:
        return signal(OK, "languages: not measured (the log rows have no language; written before the guard)")
    share = float((codes != "en").mean())
    base = float(ref.get("non_english_share") or 0.0)
    counts = codes[codes != "en"].value_counts()
    top = {str(code): int(n) for code, n in counts.head(5).items()}
    shown = ", ".join(f"{code} {n:,}" for code, n in top.items()) or "none"
    reason = (
        f"share of texts in other languages than English {base:.1%} -> {share:.1%} (WARN at a rise of "
        f"{t.non_english_warn:.0%}, ALERT at {t.non_english_alert:.0%}); most frequent: {shown}"
    )
    status = level(share - base, t.non_english_warn, t.non_english_alert)
    return signal(status, reason, share=share, reference_share=base, measured=len(codes), top=top)


def volume_signal(counts: list[int], t: Thresholds) -> dict[str, Any]:
    """`counts`: predictions per window, oldest first, the latest last."""
    latest = counts[-1] if counts else 0
    earlier = [c for c in counts[:-1]]
    if latest == 0:
        return signal(ALERT, "no predictions in the latest window", latest=0)
    if not earlier or float(np.median(earlier)) == 0:
        return signal(OK, f"{latest:,} predictions; no earlier window to compare with", latest=latest)
    ratio = latest / float(np.median(earlier))
    if ratio < 1:
        status = ALERT if ratio <= t.volume_low_alert else WARN if ratio <= t.volume_low_warn else OK
    else:
        status = level(ratio, t.volume_high_warn, t.volume_high_alert)
    reason = (
        f"{latest:,} predictions in the latest window, {ratio:.2f}x the median of the earlier "
        f"windows (WARN below {t.volume_low_warn}x or above {t.volume_high_warn}x, ALERT below "
        f"{t.volume_low_alert}x or above {t.volume_high_alert}x)"
    )
    return signal(status, reason, latest=latest, ratio=ratio, median_earlier=float(np.median(earlier)))


def performance_signal(frame: pd.DataFrame, ref: dict[str, Any], t: Thresholds) -> dict[str, Any]:
    return _round(estimate.performance_signal(frame, ref, t))


STATISTICAL = {"labels": label_signal, "confidence": confidence_signal, "text_length": length_signal,
               "unknown_tokens": unknown_signal, "new_tokens": new_token_signal,
               "non_english": language_signal, "performance": performance_signal}  # fmt: skip


# --- the report ----------------------------------------------------------------------------------------
def count_windows(since: timedelta, window: timedelta) -> int:
    """How many windows of `window` cover `since`; ValueError (one line, what to change) unless
    `window` is positive and that is at most MAX_WINDOWS."""
    if window <= timedelta(0):
        raise OptionError(f"--window must be longer than 0 (got {window}): e.g. 1h or 1d")
    if since <= timedelta(0):
        raise OptionError(f"--since must be longer than 0 (got {since}): e.g. 7d")
    n = max(1, math.ceil(since / window))
    if n > MAX_WINDOWS:
        raise OptionError(
            f"--since/--window gives {n:,} windows; the limit is {MAX_WINDOWS}: widen --window "
            f"(at least {_shortest_window(since)}) or shorten --since"
        )
    return n


def _shortest_window(since: timedelta) -> str:
    """The shortest window giving at most MAX_WINDOWS, rounded up to a whole number of a unit."""
    seconds = since.total_seconds() / MAX_WINDOWS
    for unit, size in (("s", 1), ("m", 60), ("h", 3600), ("d", 86400)):
        if math.ceil(seconds / size) <= 60:
            return f"{math.ceil(seconds / size)}{unit}"
    return f"{math.ceil(seconds / 604800)}w"


def _windows(frame: pd.DataFrame, start: datetime, window: timedelta, n: int) -> list[pd.DataFrame]:
    """The rows of each window (start + k*window, start + (k+1)*window], k < n, grouped in one pass."""
    step = pd.Timedelta(window).value  # nanoseconds
    offset = (frame["ts"] - pd.Timestamp(start)).to_numpy().astype("timedelta64[ns]").astype(np.int64)
    index = (offset + step - 1) // step - 1  # ceil(offset / step) - 1: a row at a window's end is in it
    inside = (offset > 0) & (index < n)
    groups = dict(tuple(frame[inside].groupby(index[inside], sort=False)))
    empty = frame.iloc[0:0]
    return [groups.get(k, empty) for k in range(n)]


def compare(frame: pd.DataFrame, reference: dict[str, Any], window: timedelta, since: timedelta,
            thresholds: Thresholds | None = None, now: datetime | None = None,
            reference_note: str = "") -> dict[str, Any]:  # fmt: skip
    """The monitoring report of the log rows `frame` (from `read_log`) against `reference`.

    The signals judge the latest `window` (ending `now`); the trends cover `since`, window by window.
    """
    t = thresholds or Thresholds()
    now = now or datetime.now(UTC)
    n = count_windows(since, window)
    starts = [now - window * (k + 1) for k in reversed(range(n))]
    buckets = _windows(frame, starts[0], window, n)
    latest = buckets[-1]
    signals: dict[str, dict[str, Any]] = {}
    for name, fn in STATISTICAL.items():
        if len(latest) < t.min_n:
            signals[name] = signal(WARN, f"only {len(latest):,} predictions in the latest window; at least "
                                         f"{t.min_n} are needed to judge {name.replace('_', ' ')}")  # fmt: skip
        else:
            signals[name] = fn(latest, reference, t)
    signals["volume"] = volume_signal([len(b) for b in buckets], t)
    status = worst([s["status"] for s in signals.values()])
    return {
        "status": status,
        "summary": _summary(status, signals),
        "n": len(latest),
        "window": {"start": (now - window).isoformat(), "end": now.isoformat(), "length": str(window)},
        "models": _models(latest),
        "reference": {"source": reference.get("source"), "n": reference.get("n"), "note": reference_note},
        "thresholds": asdict(t),
        "signals": signals,
        "trend": [_trend_row(s, b, reference) for s, b in zip(starts, buckets)],
    }


def _summary(status: str, signals: dict[str, dict[str, Any]]) -> str:
    if status == OK:
        return "OK: every signal is within its thresholds."
    moved = [f"{name} ({s['status']})" for name, s in signals.items() if s["status"] != OK]
    return f"{status}: " + ", ".join(moved)


def _models(frame: pd.DataFrame) -> list[dict[str, Any]]:
    counts = Counter(zip(frame["model_name"], frame["model_version"]))
    return [{"name": n, "version": v, "predictions": c} for (n, v), c in counts.most_common()]


def _trend_row(start: datetime, bucket: pd.DataFrame, ref: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"start": start.isoformat(), "n": len(bucket)}
    if len(bucket):
        edges = [e if e is not None else float("inf") for e in ref["length_edges"]]
        row.update(
            {f"share_{label}": float((bucket["label"] == label).mean()) for label in LABELS},
            confidence_mean=float(bucket["confidence"].mean()),
            uncertain_share=float(bucket["uncertain"].mean()),
            length_psi=psi(ref["length_shares"], shares(bucket["n_chars"].to_numpy(dtype=float), edges)),
            unknown_share=float(bucket["unknown_share"].mean())
            if bucket["unknown_share"].notna().any()
            else None,
            versions=sorted(set(bucket["model_version"])),
        )
        row.update(estimate.trend_estimate(bucket, ref))
    return _round(row)


# --- from a log URI to a report ------------------------------------------------------------------
def served_reference(frame: pd.DataFrame, model: str | Path | None, data_dir: str | Path | None,
                     window: timedelta, now: datetime) -> tuple[dict[str, Any], str]:  # fmt: skip
    """The reference of the model that served the latest window: that registry version when the log
    names one (`models:/NAME/VERSION`), else `model` (default: SENTIMENTKIT_MODEL), saying which."""
    latest = frame[frame["ts"] > pd.Timestamp(now - window)]
    served = _models(latest)[0] if len(latest) else None
    predictor = load_predictor(model)
    note = ""
    if served and (served["name"], served["version"]) != model_identity(predictor):
        try:  # a registered model: its own card, verified, from the registry
            predictor = load_predictor(f"models:/{served['name']}/{served['version']}")
        except Exception as exc:  # not a registry name, or the registry is out of reach
            note = (f"; the log was served by {served['name']} {served['version']}, which could not be "
                    f"loaded ({exc}), so this is the reference of {model_identity(predictor)[0]} "
                    f"{model_identity(predictor)[1]}")  # fmt: skip
    reference, source = model_reference(predictor, data_dir)
    return reference, source + note


def run(log_uri: str, since: timedelta, window: timedelta, model: str | Path | None = None,
        data_dir: str | Path | None = None, thresholds: Thresholds | None = None,
        now: datetime | None = None, labels: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """(report, reference) for the log at `log_uri` over the last `since`; with `labels` (a labelled
    CSV/XLSX/Parquet file or folder of them) realized scores are added beside the estimate, and windows
    with labelled predictions are estimated with those labels (estimate.add_realized). The report's texts are redacted
    (`sentimentkit.redact`), so its JSON and HTML never show a secret."""
    now = now or datetime.now(UTC)
    count_windows(since, window)  # before reading anything
    frame = read_log(log_uri, since=now - since)
    reference, note = served_reference(frame, model, data_dir, window, now)
    report = compare(frame, reference, window, since, thresholds, now, note)
    if labels:
        estimate.add_realized(report, frame, estimate.read_labels(labels), window, reference, str(labels))
        report["trend"] = _round(report["trend"])
        report["signals"]["performance"] = _round(report["signals"]["performance"])
        report["status"] = worst([s["status"] for s in report["signals"].values()])  # labels may move it
        report["summary"] = _summary(report["status"], report["signals"])
    return redact_obj(report), reference


# --- the live window inside the API -------------------------------------------------------------------
class LiveMonitor:
    """The signals over the API's most recent predictions, for Prometheus gauges.

    Fed by the prediction log's writer thread after each write (never on a request's path). The
    reference comes from `reference_of()`, asked again whenever the serving model version changes;
    `prime(version)` asks it up front (the API does at start-up: computing a reference for a card
    without one scores the validation split, which must not stall requests later).
    """

    def __init__(self, reference_of: Any, rows: int = 5_000, thresholds: Thresholds | None = None,
                 every_s: float = 30.0) -> None:  # fmt: skip
        self.reference_of = reference_of
        self.max_rows = rows
        self.tables: list[Any] = []  # the written pyarrow Tables, newest last, about max_rows in all
        self.thresholds = thresholds or Thresholds()
        self.report: dict[str, Any] | None = None
        self.error: str | None = None
        self._reference: tuple[str, dict[str, Any]] | None = None
        self.every_s = every_s  # recompute at most this often: it costs ~20 us a row on the writer thread
        self._computed = float("-inf")

    def prime(self, version: str) -> None:
        """Fetch the reference of `version` now (errors kept in `error`)."""
        try:
            self._reference = (version, self.reference_of())
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def update(self, table: Any) -> None:
        """Add a freshly written table of log rows; recompute the report at most every `every_s` seconds
        (errors are kept in `error`, never raised)."""
        import time

        import pyarrow as pa

        self.tables.append(table)
        while sum(len(t) for t in self.tables[1:]) >= self.max_rows:
            self.tables.pop(0)
        if time.monotonic() - self._computed < self.every_s:
            return
        self._computed = time.monotonic()
        try:
            frame = pa.concat_tables(self.tables).to_pandas().tail(self.max_rows)
            version = str(frame["model_version"].iloc[-1])
            if self._reference is None or self._reference[0] != version:
                self._reference = (version, self.reference_of())
            span = frame["ts"].max() - frame["ts"].min() + timedelta(seconds=1)
            now = frame["ts"].max().to_pydatetime()
            frame = frame[frame["model_version"] == version]
            self.report = compare(frame, self._reference[1], span, span, self.thresholds, now)
            self.error = None
        except Exception as exc:  # e.g. no validation data to compute a reference: no gauges, said why
            self.error = f"{type(exc).__name__}: {exc}"

    def gauges(self) -> dict[tuple[str, str], float]:
        """{(signal, statistic): value} with 'status' as 0 (OK), 1 (WARN), 2 (ALERT)."""
        if self.report is None:
            return {}
        out: dict[tuple[str, str], float] = {("overall", "status"): ORDER[self.report["status"]],
                                             ("overall", "n"): self.report["n"]}  # fmt: skip
        for name, sig in self.report["signals"].items():
            out[(name, "status")] = ORDER[sig["status"]]
            for stat, value in sig["values"].items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and value is not None:
                    out[(name, stat)] = float(value)
        return out
