"""The "accurate" ensemble mode (issue 15): scores, the decision by the written rule, then test.

Plan and rule, committed before this ran: benchmarks/accurate_plan.md. The ensemble's probabilities
are 0.5 * transformer + 0.5 * fast model (fixed weight). In order, in one process:

1. clean validation (validation minus its near-duplicates of train): fast, transformer, ensemble;
2. batched throughput on distinct unseen unlabeled tweets (neither in train nor in test, selected by
   `throughput.unseen_slices`), transformer alone and ensemble taking turns call by call, after a
   warm-up on train tweets;
3. the decision by the rule (clean-validation gain > 0.5 points, >= 200 texts/s, no new weights);
4. test (12,284 tweets), recorded after the decision, never used to choose.

    SENTIMENTKIT_DATA_DIR=../shared/data/semeval2017 python benchmarks/accurate_mode.py
    -> benchmarks/accurate_mode.json and benchmarks/accurate_mode.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from throughput import side_by_side, unseen_slices  # noqa: E402

from sentimentkit import LABELS  # noqa: E402
from sentimentkit.config import REPO_ROOT  # noqa: E402
from sentimentkit.serving.base import BasePredictor  # noqa: E402
from sentimentkit.serving.ensemble import EnsemblePredictor, is_ensemble  # noqa: E402
from sentimentkit.serving.loader import load_predictor  # noqa: E402
from sentimentkit.training.evaluate import expected_calibration_error, metrics  # noqa: E402
from sentimentkit.training.train import clean_validation, load_splits  # noqa: E402

HERE = Path(__file__).resolve().parent
FAST = REPO_ROOT / "model.pkl"
TRANSFORMER = REPO_ROOT / "models" / "transformer-int8"
ACCURATE = REPO_ROOT / "models" / "accurate"  # the mode as shipped, once adopted (`sentimentkit ensemble`)
MIN_GAIN = 0.005  # the rule: more than 0.5 points of clean-validation AvgRec
MIN_TEXTS_PER_S = 200.0  # the batched-throughput target for the accurate model
ROWS = ("fast", "transformer", "ensemble")


def scored(y_true: list[str], proba: np.ndarray) -> dict[str, Any]:
    """`metrics` of the argmax labels plus top-label ECE."""
    y_pred = [LABELS[i] for i in np.argmax(proba, axis=1)]
    return {**metrics(y_true, y_pred), "ece": expected_calibration_error(proba, y_true)}


def open_ensemble() -> EnsemblePredictor:
    """The shipped folder when it exists (loaded as users load it), else the same ensemble built from
    the two committed members; either way members are [fast, transformer], weights 0.5 / 0.5."""
    if not is_ensemble(ACCURATE):
        return EnsemblePredictor([load_predictor(FAST), load_predictor(TRANSFORMER)])
    ensemble = load_predictor(ACCURATE)
    assert isinstance(ensemble, EnsemblePredictor)
    formats = [m.card.get("format") for m in ensemble.members]
    if formats != ["sklearn-pickle", "onnx-int8"] or list(ensemble.weights) != [0.5, 0.5]:
        raise SystemExit(
            f"{ACCURATE} is not the planned mode (members {formats}, weights {ensemble.weights})"
        )
    return ensemble


def evaluate(ensemble: EnsemblePredictor, frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Scores of each member and of the ensemble on `frame` (each member scores every text once), and
    the 95% paired-bootstrap interval of the ensemble's AvgRec gain over the transformer."""
    texts, y_true = frame["text"].tolist(), frame["label"].tolist()
    fast, transformer = (member.predict_proba(texts) for member in ensemble.members)
    mixed = ensemble.combine([fast, transformer])
    record = {name: scored(y_true, p) for name, p in zip(ROWS, (fast, transformer, mixed))}
    record["ensemble"]["gain_interval"] = gain_interval(y_true, transformer, mixed)
    return record


def gain_interval(y_true: list[str], base: np.ndarray, new: np.ndarray, draws: int = 2_000) -> list[float]:
    """2.5th and 97.5th percentiles of AvgRec(new) - AvgRec(base) over paired bootstrap resamples of
    the rows (seed 13): how far the gain could move on another sample of the same size. Recorded for
    the reader; the rule does not use it."""
    truth = np.array([LABELS.index(y) for y in y_true])
    rows = np.random.default_rng(13).integers(0, len(truth), size=(draws, len(truth)))
    gains = np.zeros(draws)
    for sign, proba in ((-1, base), (1, new)):
        hit = np.argmax(proba, axis=1) == truth
        recalls = [(hit & (truth == k))[rows].sum(1) / (truth == k)[rows].sum(1) for k in range(len(LABELS))]
        gains += sign * np.mean(recalls, axis=0)
    return [float(x) for x in np.percentile(gains, [2.5, 97.5])]


def throughput(transformer: BasePredictor, ensemble: BasePredictor, texts: list[str], warm: list[str],
               batch: int) -> dict[str, float]:  # fmt: skip
    """Texts/s of one pass of each over `texts`, in turns, after a warm-up pass over `warm`."""
    run: Callable[[list[str]], tuple[float, float]] = lambda t: side_by_side(  # noqa: E731
        transformer.predict_proba, ensemble.predict_proba, t, batch
    )
    run(warm)
    alone, both = run(texts)
    return {"transformer": alone, "ensemble": both, "texts": len(texts), "batch": batch}


def artifact_bytes() -> dict[str, int]:
    """Bytes of every file a process serving the ensemble reads (members' weights, tokenizer, cards)."""
    files = [FAST, FAST.with_suffix(".json"), *sorted(p for p in TRANSFORMER.iterdir() if p.is_file())]
    return {str(p.relative_to(REPO_ROOT)): p.stat().st_size for p in files}


def decide(clean: dict[str, dict[str, Any]], speed: dict[str, float]) -> dict[str, Any]:
    """The written rule, applied to clean validation and throughput only."""
    gain = clean["ensemble"]["avg_recall"] - clean["transformer"]["avg_recall"]
    checks = {
        "clean_validation_gain_over_0.5_points": gain > MIN_GAIN,
        "at_least_200_texts_per_s": speed["ensemble"] >= MIN_TEXTS_PER_S,
        "no_new_weights": True,  # the mode reads the two committed, hash-checked member files only
    }
    return {"gain": gain, "checks": checks, "adopted": all(checks.values())}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--unlabeled", type=int, default=5_000, help="unseen unlabeled tweets, one pass each")
    parser.add_argument("--warm", type=int, default=1_000, help="train tweets scored first (warm-up)")
    parser.add_argument("--batch", type=int, default=500, help="texts per predict_proba call")
    args = parser.parse_args()
    began, load_before = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()
    splits = load_splits()
    clean = clean_validation(splits)
    ensemble = open_ensemble()
    transformer = ensemble.members[1]
    record: dict[str, Any] = {"measured": began, "clean_validation": evaluate(ensemble, clean)}
    fresh, _ = unseen_slices(
        splits["train"]["text"].tolist(), splits["test"]["text"].tolist(), (args.unlabeled, 0)
    )
    warm = splits["train"]["text"].tolist()[: args.warm]
    record["throughput"] = throughput(transformer, ensemble, fresh, warm, args.batch)
    record["decision"] = decide(record["clean_validation"], record["throughput"])
    record["test"] = evaluate(ensemble, splits["test"])  # after the decision; recorded, never used to choose
    record["artifact_bytes"] = artifact_bytes()
    record["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                         "load_average_before": load_before, "load_average_after": os.getloadavg()}  # fmt: skip
    record["command"] = (
        f"python benchmarks/accurate_mode.py --unlabeled {args.unlabeled} --warm {args.warm} --batch {args.batch}"
    )
    (HERE / "accurate_mode.json").write_text(json.dumps(record, indent=2) + "\n")
    (HERE / "accurate_mode.md").write_text(render(record))
    print(render(record))
    return 0


def metric_rows(split: dict[str, dict[str, Any]]) -> list[str]:
    """One table row per model: AvgRec, F1^PN, macro-F1, accuracy, ECE, confusion matrix."""
    names = {
        "fast": "fast (model.pkl)",
        "transformer": "transformer (int8 ONNX)",
        "ensemble": "ensemble 0.5/0.5",
    }
    return [
        f"| {names[k]} | {m['avg_recall']:.4f} | {m['f1_pn']:.4f} | {m['macro_f1']:.4f} | {m['accuracy']:.4f} "
        f"| {m['ece']:.3f} | {m['confusion_matrix']} |"
        for k, m in split.items()
    ]


def render(record: dict[str, Any]) -> str:
    """The markdown record."""
    head = "| model | AvgRec | F1^PN | macro-F1 | accuracy | ECE | confusion matrix (rows true neg/neu/pos) |"
    rule = "|---|---:|---:|---:|---:|---:|---|"
    d, s, m = record["decision"], record["throughput"], record["machine"]
    total = sum(record["artifact_bytes"].values())
    low, high = record["clean_validation"]["ensemble"]["gain_interval"]
    t_low, t_high = record["test"]["ensemble"]["gain_interval"]
    checks = "; ".join(f"{k}: {'yes' if v else 'no'}" for k, v in d["checks"].items())
    load = lambda a: " / ".join(f"{x:.2f}" for x in a)  # noqa: E731
    return "\n".join([
        "# Accurate mode: transformer + fast model, probabilities averaged 0.5 / 0.5 (issue 15)",
        "",
        f"Plan and rule, committed before this run: [accurate_plan.md](accurate_plan.md). Measured {record['measured']}",
        f"by `{record['command']}`, Python {m['python']}, {m['cpus']} CPUs shared with other work, load average",
        f"(1/5/15 min) {load(m['load_average_before'])} before, {load(m['load_average_after'])} after.",
        "",
        f"## Clean validation ({record['clean_validation']['fast']['n']:,} tweets): the criterion",
        "",
        head, rule, *metric_rows(record["clean_validation"]),
        "",
        f"## Throughput on unseen text ({s['texts']:,} distinct unlabeled tweets, calls of {s['batch']})",
        "",
        "| model | texts/s (batched, one pass) |",
        "|---|---:|",
        f"| transformer alone | {s['transformer']:,.0f} |",
        f"| ensemble | {s['ensemble']:,.0f} |",
        "",
        "Both took turns call by call on the same texts after a warm-up on train tweets; none of the measured",
        "tweets is in train or test.",
        "",
        "## Decision",
        "",
        f"Ensemble minus transformer on clean validation: {d['gain'] * 100:+.2f} points. Checks: {checks}.",
        f"**{'Adopted' if d['adopted'] else 'Not adopted'}.** Files a process serving the mode reads: "
        f"{total / 1e6:.1f} MB in all (no new weights).",
        "",
        "Recorded for the reader, not part of the rule: the 95% paired-bootstrap interval of the gain (2,000",
        "resamples of the rows, seed 13) is "
        f"[{low * 100:+.2f}, {high * 100:+.2f}] points on clean validation and",
        f"[{t_low * 100:+.2f}, {t_high * 100:+.2f}] on test.",
        "",
        f"## Test ({record['test']['fast']['n']:,} tweets): scored after the decision, never used to choose",
        "",
        head, rule, *metric_rows(record["test"]),
        "",
    ])  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
