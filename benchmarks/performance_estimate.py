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

A "real drop" is a realized AvgRec at least 5 points below the reference's measured AvgRec on
validation; "no drop" is within 3 points of it (or above). Flagged = the performance signal is ALERT
(WARN counted separately). Writes benchmarks/performance_estimate.md (+ .json).

    PYTHONPATH=. python benchmarks/performance_estimate.py [--data /work/shared/data]
"""

from __future__ import annotations

import argparse
import json
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

WINDOW = 500
HOUR = timedelta(hours=1)
START = datetime(2026, 12, 1, tzinfo=UTC)
OUT = Path(__file__).with_suffix(".md")


def draw(rng: np.random.Generator, n: int, size: int, weight: np.ndarray | None = None) -> np.ndarray:
    p = None if weight is None else weight / weight.sum()
    return rng.choice(n, size=size, replace=False, p=p)


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
    return out


def replay(predictor: object, windows: list[pd.DataFrame], reference: dict, folder: Path,
           thresholds: monitor.Thresholds) -> list[dict]:  # fmt: skip
    """Log the windows, read the log back, run the monitor on every window; one row per window."""
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
    rows = []
    for w in range(len(windows)):
        now = START + (w + 1) * HOUR
        report = monitor.compare(frame, reference, HOUR, HOUR, thresholds, now)
        add_realized(report, frame, labels, HOUR, reference, "replay labels")
        perf = report["signals"]["performance"]["values"]
        bucket = frame[(frame["ts"] > pd.Timestamp(now - HOUR)) & (frame["ts"] <= pd.Timestamp(now))]
        raw = estimate_frame(bucket, None, draws=0)
        rows.append({
            "window": w, "n": int(report["n"]), "status": report["signals"]["performance"]["status"],
            "estimated": perf["estimated_avg_recall"], "low": perf["avg_recall_low"], "high": perf["avg_recall_high"],
            "raw_estimate": raw["avg_recall"], "realized": perf["realized_avg_recall"],
            "n_labelled": perf["n_labelled"], "estimated_accuracy": perf["estimated_accuracy"],
            "realized_accuracy": perf["realized_accuracy"],
        })  # fmt: skip
        # The same rule against the reference's *estimated* AvgRec (thresholds' estimate_baseline="estimated").
        drop = reference["performance"]["estimated"]["avg_recall"] - perf["estimated_avg_recall"]
        rows[-1]["status_estimated_baseline"] = (
            "ALERT"
            if drop >= thresholds.estimate_drop_alert
            else "WARN"
            if drop >= thresholds.estimate_drop_warn
            else "OK"
        )
    return rows


def calibration_study(predictor: object, data: str, apple: pd.DataFrame, test: pd.DataFrame) -> dict:
    """ECE and whole-set CBPE error of each calibration method (fitted on clean validation, never test),
    and a temperature fitted on a few hundred labelled Apple tweets (split by text), scored on the rest."""
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
    texts = apple["text"].to_numpy()
    unique = np.unique(texts)
    rng = np.random.default_rng(0)
    domain = []
    for n in (100, 300, 600):
        errs = []
        for _ in range(20):
            chosen_texts = set(rng.choice(unique, size=n, replace=False))
            fit = np.array([t in chosen_texts for t in texts])
            cal = calibrate.fit_calibrator(p_apple[fit], y_apple[fit], "temperature", LABELS)
            q, pred = calibrate.apply_calibrator(p_apple[~fit], cal), p_apple[~fit].argmax(axis=1)
            estimated = calibrate.confusion_scores(calibrate.expected_confusion(q, pred), LABELS)[
                "avg_recall"
            ]
            real = calibrate.confusion_scores(calibrate.expected_confusion(np.eye(3)[y_apple[~fit]], pred),
                                              LABELS)["avg_recall"]  # fmt: skip
            errs.append(estimated - real)
        domain.append(
            {"labelled_texts": n, "mean_error": float(np.mean(errs)), "mae": float(np.mean(np.abs(errs)))}
        )
    return {"chosen": chosen["method"], "rows": rows, "domain_temperature": domain}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--model", default="model.pkl")
    args = parser.parse_args()
    predictor = load_predictor(args.model)
    reference, _ = model_reference(predictor)
    base, calibrator = reference_performance(reference, "estimated")
    measured = reference["performance"]["measured"]["avg_recall"]
    thresholds = monitor.Thresholds()
    pools = {}
    for name, path in (("test", Path(args.data, "semeval2017", "test.csv")),
                       ("apple", Path(args.data, "apple_tweets", "tweets.csv"))):  # fmt: skip
        frame = pd.read_csv(path)[["text", "label"]]  # repeated texts (retweets) kept: traffic has them
        records = predictor.score(frame["text"].tolist())
        frame["record"] = records
        frame["confidence"] = [r["confidence"] for r in records]
        frame["correct"] = [r["sentiment"] == y for r, y in zip(records, frame["label"])]
        pools[name] = frame
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, windows in scenarios(pools["test"], pools["apple"]).items():
            results[name] = replay(predictor, windows, reference, Path(tmp, name), thresholds)
            print(name, "done")
    study = calibration_study(predictor, args.data, pools["apple"], pools["test"])
    Path(OUT.with_suffix(".json")).write_text(
        json.dumps({"windows": results, "calibration": study}, indent=1) + "\n"
    )
    OUT.write_text(render(results, base, measured, calibrator, thresholds) + render_study(study))
    print(OUT.read_text())


def render(results: dict[str, list[dict]], base: dict, measured: float, calibrator: dict,
           t: monitor.Thresholds) -> str:  # fmt: skip
    lines = [
        "# Performance estimate: estimated vs realized AvgRec, window by window",
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
        "MAE in AvgRec points (100 x mean |estimated - realized|); raw = the same estimate without the calibrator.",
        "",
        "## Detection of a real drop of 5 points",
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
    lines += [
        "",
        "## Off domain: a temperature fitted on labelled Apple tweets",
        "",
        "Temperature scaling fitted on N labelled Apple texts (drawn by text, so retweets stay on one side), "
        "the estimate then scored on the remaining Apple tweets; 20 draws each.",
        "",
        "| labelled texts | mean error (points) | mean absolute error (points) |",
        "|---|---|---|",
    ]
    for r in study["domain_temperature"]:
        lines.append(f"| {r['labelled_texts']} | {r['mean_error'] * 100:+.1f} | {r['mae'] * 100:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
