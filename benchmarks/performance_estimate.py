"""Does the performance estimate track the real AvgRec? Replay labelled tweets through the real
prediction log and run the monitor on it, window by window.

Each scenario scores its tweets with the committed model, writes them with `PredictionLog` (synthetic
timestamps, one window of WINDOW tweets per hour), reads the log back with `read_log`, and runs
`monitor.compare` + `estimate.add_realized` (the code `monitor --labels` runs) for every window. Per
window: estimated AvgRec (card calibrator) with its 90% interval, the raw (uncalibrated) estimate,
the realized AvgRec from the labels, and the monitor's performance status.

Scenarios (pools: SemEval-2017 test, Apple tweets; windows drawn with a fixed seed):
- semeval_test: test shuffled, in domain, a later period than validation.
- apple: the Apple tweets (another domain and period).
- easy: test windows drawn with weight confidence^6 (easier than usual: should not alarm).
- hard: test windows drawn with weight (1 - confidence)^2 (harder, and visibly so).
- apple_mix: half Apple, half test.
- label_shift: test windows whose true class mix is 60% one class (no change in how hard each class is).
- confident_wrong: 75% test + 25% tweets the model gets wrong with confidence >= 0.6 (concept shift
  the probabilities cannot see).
- apple_by_time: the Apple tweets in the order they were posted, windows of WINDOW consecutive tweets
  (retweet storms stay in the windows where they happened).

With labels (`monitor --labels`: labelled predictions count with their label, the rest with their
probabilities): for semeval_test, apple and apple_by_time, the k texts repeated most often in each
window and not yet labelled (or k random ones) are labelled, once each, with the label of one of their
rows drawn at random (one person's label; the crowd disagrees on some), the labels are matched to the
log by the text's SHA-256 and accumulate from window to window; estimated vs realized as before.

The calibration studies (calibrator family and split without Apple labels, the calibrator refitted on
N labelled Apple rows, the two retweeted texts) are in benchmarks/performance_estimate_calibration.py.

A "real drop" is a realized AvgRec at least 5 points below the reference's measured AvgRec on
validation; "no drop" is within 3 points of it (or above). Flagged = the performance signal is ALERT
(WARN counted separately). Writes benchmarks/performance_estimate.md (+ .json).

    PYTHONPATH=. python benchmarks/performance_estimate.py [--data /work/shared/data] [--holdout-cache F.npz]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from sentimentkit import LABELS
from sentimentkit.mlops import monitor
from sentimentkit.mlops.estimate import add_realized, estimate_frame, reference_performance
from sentimentkit.mlops.predlog import PredictionLog, read_log
from sentimentkit.serving.loader import load_predictor
from sentimentkit.training.profile import model_reference

sys.path.insert(0, str(Path(__file__).parent))
import performance_estimate_calibration as calstudy  # noqa: E402

WINDOW = 500
HOUR = timedelta(hours=1)
START = datetime(2026, 12, 1, tzinfo=UTC)
OUT = Path(__file__).with_suffix(".md")


def draw(rng: np.random.Generator, n: int, size: int, weight: np.ndarray | None = None) -> np.ndarray:
    p = None if weight is None else weight / weight.sum()
    return rng.choice(n, size=size, replace=False, p=p)


LABEL_K = (5, 10, 20)
LABEL_DRAWS = 5


def scenarios(test: pd.DataFrame, apple: pd.DataFrame, seed: int = 0) -> dict[str, list[pd.DataFrame]]:
    """name -> windows (frames with text, label, confidence, correct)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[pd.DataFrame]] = {}
    order = rng.permutation(len(test))
    out["semeval_test"] = [test.iloc[order[i : i + WINDOW]] for i in range(0, len(test) - WINDOW + 1, WINDOW)]
    order = rng.permutation(len(apple))
    out["apple"] = [apple.iloc[order[i : i + WINDOW]] for i in range(0, len(apple) - WINDOW + 1, WINDOW)]
    conf = test["confidence"].to_numpy()
    out["easy"] = [test.iloc[draw(rng, len(test), WINDOW, conf**6)] for _ in range(6)]
    out["hard"] = [test.iloc[draw(rng, len(test), WINDOW, (1 - conf) ** 2)] for _ in range(6)]
    out["apple_mix"] = [
        pd.concat(
            [apple.iloc[draw(rng, len(apple), WINDOW // 2)], test.iloc[draw(rng, len(test), WINDOW // 2)]]
        )
        for _ in range(6)
    ]
    out["label_shift"] = []
    for major in (*LABELS, *LABELS):
        parts = []
        for label in LABELS:
            pool = test[test["label"] == label]
            k = int(WINDOW * (0.6 if label == major else 0.2))
            parts.append(pool.iloc[draw(rng, len(pool), k)])
        out["label_shift"].append(pd.concat(parts))
    wrong = test[(~test["correct"]) & (test["confidence"] >= 0.6)]
    out["confident_wrong"] = [
        pd.concat(
            [test.iloc[draw(rng, len(test), WINDOW * 3 // 4)], wrong.iloc[draw(rng, len(wrong), WINDOW // 4)]]
        )
        for _ in range(6)
    ]
    by_time = apple.sort_values("created_at", kind="stable")
    out["apple_by_time"] = [by_time.iloc[i : i + WINDOW] for i in range(0, len(by_time) - WINDOW + 1, WINDOW)]
    return out


def replay(predictor: object, windows: list[pd.DataFrame], reference: dict, folder: Path,
           thresholds: monitor.Thresholds) -> tuple[list[dict], pd.DataFrame, list[dict]]:  # fmt: skip
    """Log the windows, read the log back, run the monitor on every window; (one row per window, the
    log, each window's report before labels)."""
    labelled = []
    with PredictionLog(folder, log_text=False, batch_rows=100_000, flush_s=3600) as log:
        for w, frame in enumerate(windows):
            at = (START + w * HOUR + timedelta(minutes=30)).timestamp()
            for i, (text, record, label) in enumerate(zip(frame["text"], frame["record"], frame["label"])):
                request_id = f"w{w}-{i}"  # one request per tweet, as the API logs them
                labelled.append((request_id, text, label))
                while not log.submit(
                    predictor, [text], [record], source="replay", request_id=request_id, at=at
                ):
                    time.sleep(0.05)
    frame = read_log(str(folder))
    labels = pd.DataFrame(labelled, columns=["request_id", "text", "label"])
    labels.attrs.update(files=1, dropped=0)
    rows, reports = [], []
    for w in range(len(windows)):
        now = START + (w + 1) * HOUR
        report = monitor.compare(frame, reference, HOUR, HOUR, thresholds, now)
        reports.append(report)
        labelled_report = add_realized(copy.deepcopy(report), frame, labels, HOUR, reference, "replay labels")
        perf = report["signals"]["performance"]  # the estimate from the probabilities alone
        est = perf["values"]
        real = labelled_report["signals"]["performance"]["values"]  # every row labelled: the realized score
        bucket = frame[(frame["ts"] > pd.Timestamp(now - HOUR)) & (frame["ts"] <= pd.Timestamp(now))]
        raw = estimate_frame(bucket, None, draws=0)
        rows.append({
            "window": w, "n": int(report["n"]), "status": perf["status"],
            "estimated": est["estimated_avg_recall"], "low": est["avg_recall_low"], "high": est["avg_recall_high"],
            "raw_estimate": raw["avg_recall"], "realized": real["realized_avg_recall"],
            "n_labelled": real["n_labelled"], "estimated_accuracy": est["estimated_accuracy"],
            "realized_accuracy": real["realized_accuracy"],
        })  # fmt: skip
        # The same rule against the reference's *estimated* AvgRec (thresholds' estimate_baseline="estimated").
        drop = reference["performance"]["estimated"]["avg_recall"] - est["estimated_avg_recall"]
        rows[-1]["status_estimated_baseline"] = (
            "ALERT"
            if drop >= thresholds.estimate_drop_alert
            else "WARN"
            if drop >= thresholds.estimate_drop_warn
            else "OK"
        )
    return rows, frame, reports


def text_sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def with_labels(windows: list[pd.DataFrame], base: list[dict], frame: pd.DataFrame, reports: list[dict],
                reference: dict, k: int, strategy: str, seed: int) -> list[dict]:  # fmt: skip
    """The monitor with `--labels` holding, by each window, k more labelled texts per window: the most
    repeated ones not yet labelled (`frequent`) or random ones (`random`), each with one of its rows'
    labels; one row per window (estimated with labels, realized, labels used, status)."""
    rng = np.random.default_rng(seed)
    chosen: dict[str, str] = {}
    out = []
    for w, (window, row) in enumerate(zip(windows, base)):
        counts = window["text"].value_counts()
        counts = counts[~counts.index.isin(chosen)]
        order = rng.permutation(len(counts))  # random order, then (frequent) a stable sort by count
        if strategy == "frequent":
            order = order[np.argsort(-counts.to_numpy()[order], kind="stable")]
        for text in counts.index[order[:k]]:
            chosen[text] = str(rng.choice(window.loc[window["text"] == text, "label"].to_numpy()))
        labels = pd.DataFrame({"text": list(chosen), "label": list(chosen.values())})
        labels.attrs.update(files=1, dropped=0)
        report = add_realized(copy.deepcopy(reports[w]), frame, labels, HOUR, reference, "labels")
        perf = report["signals"]["performance"]
        covered = int(window["text"].isin(chosen).sum())
        out.append({"window": w, "estimated": perf["values"]["estimated_avg_recall"], "realized": row["realized"],
                    "labels_used": perf["values"].get("labels_used", 0), "covered": covered / len(window),
                    "texts_labelled": len(chosen), "status": perf["status"]})  # fmt: skip
    return out


def labels_study(results: dict[str, list[dict]], windows: dict[str, list[pd.DataFrame]],
                 logs: dict[str, tuple[pd.DataFrame, list[dict]]], reference: dict) -> list[dict]:  # fmt: skip
    """MAE of the estimate with labels per scenario, k and strategy, over LABEL_DRAWS draws; 90%
    interval of the MAE by a bootstrap over windows."""
    rows = []
    for name in ("semeval_test", "apple", "apple_by_time"):
        frame, reports = logs[name]
        for k in LABEL_K:
            for strategy in ("frequent", "random"):
                start = time.perf_counter()
                runs = [with_labels(windows[name], results[name], frame, reports, reference, k, strategy, seed)
                        for seed in range(LABEL_DRAWS)]  # fmt: skip
                seconds = (time.perf_counter() - start) / LABEL_DRAWS
                err = np.array(
                    [[r["estimated"] - r["realized"] for r in run] for run in runs]
                )  # draws x windows
                per_window = np.abs(err).mean(axis=0)
                rng = np.random.default_rng(0)
                boot = rng.choice(per_window, size=(2000, len(per_window))).mean(axis=1)
                rows.append({
                    "scenario": name, "k": k, "strategy": strategy, "windows": err.shape[1],
                    "mae": float(np.abs(err).mean() * 100), "bias": float(err.mean() * 100),
                    "low": float(np.percentile(boot, 5) * 100), "high": float(np.percentile(boot, 95) * 100),
                    "covered": float(np.mean([r["covered"] for run in runs for r in run])),
                    "texts_labelled": float(np.mean([run[-1]["texts_labelled"] for run in runs])),
                    "alerts": float(np.mean([sum(r["status"] == "ALERT" for r in run) for run in runs])),
                    "warns": float(np.mean([sum(r["status"] == "WARN" for r in run) for run in runs])),
                    "seconds": seconds, "per_window": [[r for r in run] for run in runs[:1]],
                })  # fmt: skip
        print(name, "labels done")
    return rows


def holdout_probabilities(data: str, cache: str | None) -> tuple[np.ndarray, np.ndarray, float]:
    """(probabilities, labels, fit seconds) on the temporal holdout (newest 20% of train) of the
    committed recipe refitted on the older 80%; `cache` (.npz) is reused when it exists, else written."""
    from sentimentkit.training.train import CHOSEN_PARAMS, fit_pipeline, load_splits, temporal_split

    if cache and Path(cache).is_file():
        stored = np.load(cache)
        return stored["p"], stored["y"], float(stored["seconds"])
    start = time.perf_counter()
    older, newest = temporal_split(load_splits(Path(data, "semeval2017"))["train"])
    pipeline = fit_pipeline(older, CHOSEN_PARAMS)
    seconds = time.perf_counter() - start
    assert list(pipeline.classes_) == list(LABELS)
    proba = pipeline.predict_proba(newest["text"].tolist())
    y = newest["label"].map({label: i for i, label in enumerate(LABELS)}).to_numpy(dtype=int)
    if cache:
        np.savez(cache, p=proba, y=y, seconds=seconds)
    return proba, y, seconds


def calibration_study(predictor: object, data: str, apple: pd.DataFrame, test: pd.DataFrame,
                      card: dict, holdout_cache: str | None) -> dict:  # fmt: skip
    """ECE and whole-set CBPE error of the product's calibration methods (fitted on clean validation,
    never test), then the studies of benchmarks/performance_estimate_calibration.py."""
    from sentimentkit.data import near_duplicate_key
    from sentimentkit.training import calibrate
    from sentimentkit.training.train import clean_validation, load_splits

    index = {label: i for i, label in enumerate(LABELS)}
    clean = clean_validation(load_splits(Path(data, "semeval2017")))

    def arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return predictor.predict_proba(frame["text"].tolist()), frame["label"].map(index).to_numpy(dtype=int)

    sets = {"clean validation (fit, 5-fold CV NLL)": arrays(clean), "SemEval test": arrays(test),
            "Apple": arrays(apple)}  # fmt: skip
    p_fit, y_fit = sets["clean validation (fit, 5-fold CV NLL)"]
    chosen, cv = calibrate.choose_calibrator(p_fit, y_fit, LABELS)
    rows = []
    for method in calibrate.METHODS:
        cal = calibrate.fit_calibrator(p_fit, y_fit, method, LABELS)
        for name, (p, y) in sets.items():
            q = calibrate.apply_calibrator(p, cal)
            errors = calibrate.calibration_errors(q, y, LABELS)
            pred = p.argmax(axis=1)
            estimated = calibrate.confusion_scores(calibrate.expected_confusion(q, pred), LABELS)[
                "avg_recall"
            ]
            real = calibrate.confusion_scores(calibrate.expected_confusion(np.eye(3)[y], pred), LABELS)[
                "avg_recall"
            ]
            rows.append({"method": method, "data": name, "ece_top": errors["top_label"],
                         **{f"ece_{k}": v for k, v in errors["per_class"].items()}, "nll": errors["nll"],
                         "estimated": estimated, "realized": real, "cv_nll": cv[method]})  # fmt: skip
    p_apple, y_apple = sets["Apple"]
    texts = apple["text"].astype(str).to_numpy()
    groups = calstudy.group_ids(np.array([near_duplicate_key(t) for t in texts]))
    p_hold, y_hold, hold_s = holdout_probabilities(data, holdout_cache)
    data_sets = {"clean": (p_fit, y_fit), "test": sets["SemEval test"], "apple": (p_apple, y_apple)}
    started = time.perf_counter()
    label_free = calstudy.label_free(data_sets, card, groups, (p_hold, y_hold))
    print(f"label-free calibration study: {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    domain = calstudy.domain_refit(p_apple, y_apple, groups, card)
    print(f"domain refit study: {time.perf_counter() - started:.0f} s")
    return {"chosen": chosen["method"], "rows": rows, "label_free": label_free, "holdout_fit_s": hold_s,
            "domain_refit": domain, "two_texts": calstudy.two_texts(p_apple, y_apple, texts, groups, card)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--model", default="model.pkl")
    parser.add_argument("--holdout-cache", default=None,
                        help="an .npz to reuse (or store) the 80%%-refit's holdout probabilities (a 7-minute fit)")  # fmt: skip
    args = parser.parse_args()
    started = time.perf_counter()
    predictor = load_predictor(args.model)
    reference, _ = model_reference(predictor)
    base, calibrator = reference_performance(reference, "estimated")
    measured = reference["performance"]["measured"]["avg_recall"]
    thresholds = monitor.Thresholds()
    pools = {}
    for name, path, columns in (("test", Path(args.data, "semeval2017", "test.csv"), ["text", "label"]),
                                ("apple", Path(args.data, "apple_tweets", "tweets.csv"),
                                 ["text", "label", "created_at"])):  # fmt: skip
        frame = pd.read_csv(path)[columns]  # repeated texts (retweets) kept: traffic has them
        records = predictor.score(frame["text"].tolist())
        frame["record"] = records
        frame["confidence"] = [r["confidence"] for r in records]
        frame["correct"] = [r["sentiment"] == y for r, y in zip(records, frame["label"])]
        pools[name] = frame
    results: dict[str, list[dict]] = {}
    logs: dict[str, tuple[pd.DataFrame, list[dict]]] = {}
    windows = scenarios(pools["test"], pools["apple"])
    with tempfile.TemporaryDirectory() as tmp:
        for name, frames in windows.items():
            results[name], frame, reports = replay(predictor, frames, reference, Path(tmp, name), thresholds)
            logs[name] = (frame, reports)
            print(name, "done")
    labelled = labels_study(results, windows, logs, reference)
    study = calibration_study(
        predictor, args.data, pools["apple"], pools["test"], calibrator, args.holdout_cache
    )
    model_sha = hashlib.sha256(Path(args.model).read_bytes()).hexdigest()
    meta = {"date": datetime.now(UTC).strftime("%Y-%m-%d"), "model_sha256": model_sha,
            "model_version": predictor.card.get("version"), "seconds": time.perf_counter() - started}  # fmt: skip
    Path(OUT.with_suffix(".json")).write_text(
        json.dumps(
            {"meta": meta, "windows": results, "with_labels": labelled, "calibration": study}, indent=1
        )
        + "\n"
    )
    OUT.write_text(
        render(results, base, measured, calibrator, thresholds, meta)
        + render_labels(labelled, results, thresholds)
        + render_study(study)
        + calstudy.render(study)
    )
    print(OUT.read_text())


def render(results: dict[str, list[dict]], base: dict, measured: float, calibrator: dict,
           t: monitor.Thresholds, meta: dict) -> str:  # fmt: skip
    lines = [
        "# Performance estimate: estimated vs realized AvgRec, window by window",
        "",
        f"Measured on {meta['date']} with model.pkl {meta['model_version']} (SHA-256 "
        f"{meta['model_sha256'][:12]}...), in {meta['seconds'] / 60:.0f} minutes on 2 shared cores.",
        "",
        "`python benchmarks/performance_estimate.py` (committed model.pkl; windows of "
        f"{WINDOW} tweets written through the real prediction log, read back, monitor run per window). "
        f"Reference: estimated AvgRec {base['avg_recall']:.3f} on validation (measured {measured:.3f}); "
        f"calibrator `{calibrator['method']}` (scale {calibrator['scale']}, bias {calibrator['bias']}), "
        f"fitted on {calibrator['fitted_on']}. WARN at an estimated drop of {t.estimate_drop_warn * 100:g} "
        f"points, ALERT at {t.estimate_drop_alert * 100:g}.",
        "",
        "## Summary per scenario",
        "",
        "| scenario | windows | realized AvgRec (mean) | estimated (mean) | MAE estimated | MAE raw | "
        "realized in 90% interval | ALERT | WARN | accuracy realized | accuracy estimated | MAE accuracy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in results.items():
        real = np.array([r["realized"] for r in rows])
        est = np.array([r["estimated"] for r in rows])
        raw = np.array([r["raw_estimate"] for r in rows])
        inside = np.mean([r["low"] <= r["realized"] <= r["high"] for r in rows])
        lines.append(
            f"| {name} | {len(rows)} | {real.mean():.3f} | {est.mean():.3f} | {np.abs(est - real).mean() * 100:.1f} "
            f"| {np.abs(raw - real).mean() * 100:.1f} | {inside:.0%} | {sum(r['status'] == 'ALERT' for r in rows)} "
            f"| {sum(r['status'] == 'WARN' for r in rows)} | {np.mean([r['realized_accuracy'] for r in rows]):.3f} "
            f"| {np.mean([r['estimated_accuracy'] for r in rows]):.3f} "
            f"| {np.mean([abs(r['estimated_accuracy'] - r['realized_accuracy']) for r in rows]) * 100:.1f} |"
        )
    every = [r for rows in results.values() for r in rows]
    drop = [r for r in every if measured - r["realized"] >= 0.05]
    fine = [r for r in every if measured - r["realized"] <= 0.03]
    period = results["semeval_test"]
    period_real = float(np.mean([r["realized"] for r in period]))
    period_est = float(np.mean([r["estimated"] for r in period]))
    others = [(name, r) for name, rows in results.items() if name != "semeval_test" for r in rows]

    def level_b(r: dict) -> str:
        gap = period_est - r["estimated"]
        return "ALERT" if gap >= t.estimate_drop_alert else "WARN" if gap >= t.estimate_drop_warn else "OK"

    drop_b = [(n, r) for n, r in others if period_real - r["realized"] >= 0.05]
    fine_b = [(n, r) for n, r in others if period_real - r["realized"] <= 0.03]
    missed_b = [f"{n} {r['window']}" for n, r in drop_b if level_b(r) == "OK"]

    def count(rows: list, status: str) -> int:
        return sum(level_b(r) == status for _, r in rows)

    lines += [
        "",
        "MAE in AvgRec points (100 x mean |estimated - realized|); raw = the same estimate without the calibrator. "
        "No labels are used here (the estimate from the probabilities alone); with labels: the next sections.",
        "",
        "## Detection of a real drop of 5 points",
        "",
        f"**In short, without labels:** of the {len(drop)} windows whose realized AvgRec was 5 or more points "
        f"below the card's reference, {sum(r['status'] != 'OK' for r in drop)} "
        f"({sum(r['status'] != 'OK' for r in drop) / max(len(drop), 1):.0%}) were flagged, "
        f"{sum(r['status'] == 'ALERT' for r in drop)} of them ALERT; "
        f"{sum(r['status'] != 'OK' for r in fine)} of the {len(fine)} windows without a drop were flagged too. "
        "Nearly every window is a real drop against validation, so the sharper test is against the in-domain "
        f"period as baseline: {sum(level_b(r) != 'OK' for _, r in drop_b)} of {len(drop_b)} real drops "
        f"({sum(level_b(r) != 'OK' for _, r in drop_b) / max(len(drop_b), 1):.0%}) flagged, "
        f"{count(fine_b, 'ALERT') + count(fine_b, 'WARN')} of {len(fine_b)} windows without a drop flagged "
        "(the misses: Apple and confidently wrong windows, which the probabilities cannot see; with labels on "
        "the most repeated texts: the section after the window table). Details:",
        "",
        f"Real drop: realized AvgRec at least 5 points below the reference's measured {measured:.3f}; "
        "no drop: within 3 points of it or above.",
        "",
        f"- windows with a real drop: {len(drop)}; flagged ALERT {sum(r['status'] == 'ALERT' for r in drop)}, "
        f"WARN {sum(r['status'] == 'WARN' for r in drop)}, missed (OK) {sum(r['status'] == 'OK' for r in drop)}",
        f"- windows without a drop: {len(fine)}; false ALERT {sum(r['status'] == 'ALERT' for r in fine)}, "
        f"false WARN {sum(r['status'] == 'WARN' for r in fine)}",
        "",
        f'Against the reference\'s estimated AvgRec ({base["avg_recall"]:.3f}; `estimate_baseline: "estimated"`): '
        f"real drops flagged ALERT {sum(r['status_estimated_baseline'] == 'ALERT' for r in drop)}, "
        f"WARN {sum(r['status_estimated_baseline'] == 'WARN' for r in drop)}, "
        f"missed {sum(r['status_estimated_baseline'] == 'OK' for r in drop)}; "
        f"false ALERT {sum(r['status_estimated_baseline'] == 'ALERT' for r in fine)}, "
        f"false WARN {sum(r['status_estimated_baseline'] == 'WARN' for r in fine)}.",
        "",
        "The whole SemEval test period is already about 7 points below validation (a later period), so against "
        "the card's reference nearly every window is a real drop. To test discrimination as well, the same rule "
        "against the in-domain period itself: baseline = the mean over the semeval_test windows (realized "
        f"{period_real:.3f}, estimated {period_est:.3f}); real drop = realized at least 5 points below "
        f"{period_real:.3f}, no drop = within 3 points of it or above; flagged = estimated at least 5 (ALERT) or 3 "
        f"(WARN) points below {period_est:.3f}. Windows of the other scenarios:",
        "",
        f"- windows with a real drop: {len(drop_b)}; flagged ALERT {count(drop_b, 'ALERT')}, WARN "
        f"{count(drop_b, 'WARN')}, missed (OK) {count(drop_b, 'OK')}"
        + (f" (missed: {', '.join(missed_b)})" if missed_b else ""),
        f"- windows without a drop: {len(fine_b)}; false ALERT {count(fine_b, 'ALERT')}, false WARN "
        f"{count(fine_b, 'WARN')}",
        "",
        "## Every window",
        "",
        "| scenario | window | n | realized | estimated | 90% interval | raw | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in results.items():
        for r in rows:
            lines.append(
                f"| {name} | {r['window']} | {r['n']} | {r['realized']:.3f} | {r['estimated']:.3f} | "
                f"{r['low']:.3f}-{r['high']:.3f} | {r['raw_estimate']:.3f} | {r['status']} |"
            )
    return "\n".join(lines) + "\n"


def render_study(study: dict) -> str:
    lines = [
        "",
        "## Calibration of the committed model (ECE, equal-width bins of 0.1)",
        "",
        "Each method fitted on clean validation (the validation tweets with no near-duplicate in train; never "
        f"test); chosen by 5-fold cross-validated NLL there: **{study['chosen']}**. Estimated / realized: CBPE "
        "AvgRec over the whole set.",
        "",
        "| method | data | ECE top-label | ECE negative | ECE neutral | ECE positive | NLL | estimated AvgRec | "
        "realized AvgRec | error (points) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in study["rows"]:
        lines.append(
            f"| {r['method']} | {r['data']} | {r['ece_top']:.3f} | {r['ece_negative']:.3f} | {r['ece_neutral']:.3f} "
            f"| {r['ece_positive']:.3f} | {r['nll']:.3f} | {r['estimated']:.3f} | {r['realized']:.3f} "
            f"| {(r['estimated'] - r['realized']) * 100:+.1f} |"
        )
    return "\n".join(lines) + "\n"


def render_labels(rows: list[dict], results: dict[str, list[dict]], t: monitor.Thresholds) -> str:
    lines = [
        "",
        "## With labels: the k most repeated texts of each window labelled (`monitor --labels`)",
        "",
        f"Through the log and `estimate.add_realized` (what `monitor --labels` runs): in each window, k more "
        "texts are labelled, once each, with one of their rows' labels drawn at random (the crowd disagrees on "
        "some retweets); labels are matched by the text's SHA-256 and accumulate from window to window; the "
        "labelled predictions count with their label, the others with their calibrated probabilities. "
        f"`frequent`: the k texts repeated most often in the window and not yet labelled; `random`: k random "
        f"texts of the window. {LABEL_DRAWS} draws; 90% interval of the MAE by a bootstrap over windows. Cost: "
        "k labels per window of 500 predictions (a person's few minutes) and the share of predictions they cover.",
        "",
        "| scenario | k per window | texts | windows | MAE [90%] | bias | predictions covered | ALERT | WARN | "
        "texts labelled in all | time per pass |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['k']} | {r['strategy']} | {r['windows']} | {r['mae']:.1f} "
            f"[{r['low']:.1f}, {r['high']:.1f}] | {r['bias']:+.1f} | {r['covered']:.0%} | {r['alerts']:.1f} | "
            f"{r['warns']:.1f} | {r['texts_labelled']:.0f} | {r['seconds']:.1f} s |"
        )
    lines += ["", "k = 0 (no labels) is the summary table above.", ""]
    period_real = float(np.mean([r["realized"] for r in results["semeval_test"]]))
    period_est = float(np.mean([r["estimated"] for r in results["semeval_test"]]))
    for r in rows:
        if r["scenario"] == "semeval_test" or r["strategy"] != "frequent" or r["k"] != 10:
            continue
        windows = r["per_window"][0]  # the first draw
        drops = [w for w in windows if period_real - w["realized"] >= 0.05]
        flagged = [w for w in drops if period_est - w["estimated"] >= t.estimate_drop_warn]
        before = [w for w in results[r["scenario"]] if period_real - w["realized"] >= 0.05]
        before_flagged = [w for w in before if period_est - w["estimated"] >= t.estimate_drop_warn]
        lines.append(
            f"- Detection against the in-domain period ({r['scenario']}, k = 10 most repeated, first draw): "
            f"{len(flagged)} of {len(drops)} real 5-point drops flagged (WARN or ALERT), against "
            f"{len(before_flagged)} of {len(before)} without labels."
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
