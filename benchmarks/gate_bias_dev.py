"""Development splits only (seeds 100-109, never the reported seeds 0-4): how well does the retrain
gate's estimate of a challenger's gain on the user's domain track its gain on texts nobody labelled?

benchmarks/feedback_loop.md found the cross-validated gate, judging on the corrections themselves,
kept champions whose challengers were clearly better on the holdout, more often with `representative`
picks (cluster centres: not a random sample of the domain) than with random ones. This script measures,
per development seed, strategy and k, on the feedback-loop protocol (split by near-duplicate group:
60% pool, 40% holdout; the review queue over the pool's distinct texts with the base model's
probabilities; the analyst's label = the crowd majority of that text; the domain learner with its
anchor, exactly as `retrain` fits it):

- `holdout`: the challenger's AvgRec gain over the base model on the holdout rows (the truth);
- `cv`: the gate's estimate, out-of-fold AvgRec gain on the corrections (`training.domain.out_of_fold`);
- `cv_weighted`: the same, each correction weighted by how many pool texts it stands for
  (`review.representative_picks`: its cluster's size; 1 for random picks) - the candidate fix.

Run: PYTHONPATH=. python benchmarks/gate_bias_dev.py [--seeds 100 ... 109] [--k 200 500]
Writes benchmarks/gate_bias_dev.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import recall_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

from feedback_loop import APPLE, MODEL, SEMEVAL, analyst_answers, group_keys, split_by_group, text_sha256  # noqa: E402

from sentimentkit import LABELS  # noqa: E402
from sentimentkit.config import SEED  # noqa: E402
from sentimentkit.feedback.review import (  # noqa: E402
    _embed,
    _group_representatives,
    margins,
    representative_picks,
    select_for_review,
)
from sentimentkit.mlops.retrain import Gate, decide, paired_intervals  # noqa: E402
from sentimentkit.models.pipeline import load_model  # noqa: E402
from sentimentkit.training.domain import fit_domain_model, out_of_fold  # noqa: E402
from sentimentkit.training.evaluate import metrics  # noqa: E402

OUT = Path(__file__).with_suffix(".json")
DEV_SEEDS = tuple(range(100, 110))


def avg_recall(y: Any, pred: Any, weights: Any = None) -> float:
    labels = [c for c in LABELS if c in set(y)]
    return float(
        recall_score(y, pred, labels=labels, average="macro", sample_weight=weights, zero_division=0)
    )


def _clusters(texts: list[str], proba: np.ndarray, k: int, seed: int) -> tuple[Any, ...]:
    """`representative`'s k-means over near-duplicate groups (each weighing its size): (group
    representatives, their embedding, the fitted k-means, their margins, their weights)."""
    from sklearn.cluster import KMeans

    margin = margins(proba)
    reps, sizes = _group_representatives(texts, margin)
    emb = _embed([texts[i] for i in reps.tolist()], seed)
    km = KMeans(min(k, len(reps)), n_init=1, random_state=seed).fit(emb, sample_weight=sizes)
    return reps, emb, km, margin[reps], sizes


def _centre_uncertain(texts: list[str], proba: np.ndarray, k: int, seed: int, near: int = 3) -> np.ndarray:
    """Candidate: representative's clusters; from each, the least certain of the `near` texts nearest
    its centre."""
    reps, emb, km, margin, weight = _clusters(texts, proba, k, seed)
    picks, mass = [], []
    for c in range(km.n_clusters):
        members = np.flatnonzero(km.labels_ == c)
        if len(members):
            nearest = members[np.argsort(-(emb[members] @ km.cluster_centers_[c]), kind="stable")[:near]]
            picks.append(reps[nearest[np.argmin(margin[nearest])]])
            mass.append(weight[members].sum())
    return np.asarray(picks, dtype=np.int64)[np.argsort(-np.asarray(mass), kind="stable")]


# Section 5's candidates. `uncertainty_weighted` (size x (1 - margin) weighted clustering, Zhdanov 2019)
# was adopted as the product's `balanced` strategy (section 6) and is now run from there, picks unchanged.
CANDIDATES = {
    "uncertainty_weighted": lambda texts, proba, k, seed: select_for_review(
        texts, proba, k, "balanced", seed=seed
    ),
    "centre_uncertain": _centre_uncertain,
}


def one(
    base: Any,
    frame: pd.DataFrame,
    anchor: list[str],
    seed: int,
    strategy: str,
    k: int,
    validation: pd.DataFrame,
) -> dict[str, Any]:
    keys = group_keys(frame["text"].tolist())
    held = split_by_group(keys, seed)
    pool = frame[~held].drop_duplicates("text", keep="last").reset_index(drop=True)
    holdout = frame[held].reset_index(drop=True)
    answers = analyst_answers(frame["text"], frame["label"])
    texts = pool["text"].tolist()
    proba = base.predict_proba(texts)
    if strategy == "representative":
        picks, stands_for = representative_picks(texts, proba, k, seed=seed)
    elif strategy == "mixed":  # half representative, half random among the rest (a candidate)
        first = select_for_review(texts, proba, (k + 1) // 2, "representative", seed=seed)
        rest = [
            i for i in select_for_review(texts, proba, len(texts), "random", seed=seed) if i not in set(first)
        ]
        picks = np.concatenate([first, np.asarray(rest[: k - len(first)], dtype=np.int64)])
        stands_for = np.ones(len(picks))
    elif strategy in CANDIDATES:
        picks = CANDIDATES[strategy](texts, proba, k, seed)
        stands_for = np.ones(len(picks))
    else:
        picks = select_for_review(texts, proba, k, strategy, seed=seed)
        stands_for = np.ones(len(picks))
    corrections = pd.DataFrame({"text": [texts[i] for i in picks]})
    corrections["label"] = [answers[text_sha256(t)] for t in corrections["text"]]
    model, _ = fit_domain_model(base, corrections, seed=SEED, anchor_texts=anchor)
    y_hold = holdout["label"].tolist()
    gain_holdout = avg_recall(y_hold, model.predict(holdout["text"])) - avg_recall(
        y_hold, base.predict(holdout["text"])
    )
    oof, folds = out_of_fold(
        base, corrections, np.ones(len(corrections), bool), seed=SEED, anchor_texts=anchor
    )
    ok = np.asarray([a is not None for a in oof])
    y = corrections["label"].to_numpy()[ok]
    champion = np.asarray(base.predict(corrections["text"]))[ok]
    challenger = np.asarray([a for a in oof if a is not None])
    w = np.asarray(stands_for, dtype=float)[ok]
    # The whole gate as `retrain` runs it (domain rule, class F1 rule, SemEval guard): promoted?
    present = [c for c in LABELS if c in set(y)]
    guard = {"champion": metrics(validation["label"].tolist(), base.predict(validation["text"])),
             "challenger": metrics(validation["label"].tolist(), model.predict(validation["text"]))}  # fmt: skip
    judged = {
        "champion": metrics(y, champion, labels=present),
        "challenger": metrics(y, challenger, labels=present),
    }
    # `gate_promoted`: the tolerance rule (the gate of sections 2-5); `interval_gate_promoted`: the domain
    # rule by interval (section 6, now the default): the champion is kept only when the whole 95% paired
    # interval of the gain lies below 0. The class rule and the guard as `decide` has them.
    promoted, reason = decide(judged["champion"], judged["challenger"], Gate(domain_rule="tolerance"), guard,
                              non_inferior=True)  # fmt: skip
    intervals = paired_intervals(y, champion, challenger, corrections["text"].to_numpy()[ok].tolist())
    low, high = intervals["gain"]
    by_interval, _ = decide(judged["champion"], judged["challenger"], Gate(domain_rule="interval"), guard,
                            non_inferior=True, interval=(low, high))  # fmt: skip
    # Section 7: the class rule by interval too (kept only when a class's F1 is shown to drop by more
    # than the limit: the whole 95% interval of its drop above it).
    both, _ = decide(judged["champion"], judged["challenger"], Gate(domain_rule="interval"), guard,
                     non_inferior=True, interval=(low, high), class_intervals=intervals["drops"])  # fmt: skip
    return {
        "seed": seed, "strategy": strategy, "k": k, "folds": folds,
        "holdout": round(gain_holdout, 4),
        "cv": round(avg_recall(y, challenger) - avg_recall(y, champion), 4),
        "cv_weighted": round(avg_recall(y, challenger, w) - avg_recall(y, champion, w), 4),
        "labels": {c: int((corrections["label"] == c).sum()) for c in LABELS},
        "gate_promoted": bool(promoted), "gate_reason": reason.split(";")[0],
        "interval95": [low, high], "interval_gate_promoted": bool(by_interval),
        "class_drop_intervals": intervals["drops"], "interval_class_gate_promoted": bool(both),
        "class_f1": {c: [round(judged["champion"]["per_class"][c]["f1"], 4),
                         round(judged["challenger"]["per_class"][c]["f1"], 4),
                         judged["champion"]["per_class"][c]["support"]] for c in present},
        "guard_loss": round(guard["champion"]["avg_recall"] - guard["challenger"]["avg_recall"], 4),
    }  # fmt: skip


TOLERANCES = (0.0, 0.01, 0.02, 0.03, 0.05)


def tolerance_sweep(rows: list[dict[str, Any]], estimate: str = "cv") -> list[dict[str, Any]]:
    """Per k and candidate tolerance: promoted when the estimate >= -tolerance; the champion's mean
    holdout gain over the runs (0 when kept), and how many promoted challengers were worse there.
    The rule: the smallest tolerance whose champion gain is within 0.2 points of promoting all."""
    out = []
    for k in sorted({r["k"] for r in rows}):
        runs = [r for r in rows if r["k"] == k]
        everything = float(np.mean([r["holdout"] for r in runs]))
        for tol in (*TOLERANCES, float("inf")):
            promoted = [r for r in runs if r[estimate] >= -tol]
            gain = float(np.sum([r["holdout"] for r in promoted]) / len(runs))
            out.append({"k": k, "tolerance": tol if tol != float("inf") else "all", "promoted": len(promoted),
                        "runs": len(runs), "champion_gain_mean": round(gain, 4),
                        "within_0.2_points_of_all": bool(everything - gain <= 0.002 + 1e-12),
                        "worse_promoted": sum(r["holdout"] < 0 for r in promoted)})  # fmt: skip
    return out


CLASS_LIMITS = (0.02, 0.03, 0.05, 0.1, 1.0)


def _passes(r: dict[str, Any], tolerance: float, limit: float) -> bool:
    drops = [a - b for a, b, n in r["class_f1"].values() if n >= Gate().min_class_rows]
    return (r["cv"] >= -tolerance and (not drops or max(drops) <= limit)
            and r["guard_loss"] <= Gate().guard_tolerance)  # fmt: skip


def class_limit_sweep(rows: list[dict[str, Any]], tolerance: float = 0.03) -> list[dict[str, Any]]:
    """Per k and candidate `max_class_drop` (with the domain tolerance fixed): the whole gate's
    champion gain (runs with `class_f1` only). A class is judged with 50 judged rows, as `decide` does."""
    out = []
    rows = [r for r in rows if "class_f1" in r]
    for k in sorted({r["k"] for r in rows}):
        runs = [r for r in rows if r["k"] == k]
        for limit in CLASS_LIMITS:
            promoted = [r for r in runs if _passes(r, tolerance, limit)]
            out.append({"k": k, "max_class_drop": limit, "promoted": len(promoted), "runs": len(runs),
                        "champion_gain_mean": round(float(np.sum([r["holdout"] for r in promoted]) / len(runs)), 4),
                        "worse_promoted": sum(r["holdout"] < 0 for r in promoted)})  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=list(DEV_SEEDS))
    p.add_argument("--k", type=int, nargs="+", default=[200, 500])
    p.add_argument("--strategies", nargs="+", default=["representative", "random"])
    p.add_argument("--summarise", action="store_true", help="the tables again from --out")
    p.add_argument("--out", type=Path, default=OUT, help="results (default benchmarks/gate_bias_dev.json)")
    args = p.parse_args(argv)
    if args.summarise:
        runs = json.loads(args.out.read_text())["runs"]
        print(pd.DataFrame(tolerance_sweep(runs)).to_string(index=False))
        if any("class_f1" in r for r in runs):
            print(pd.DataFrame(class_limit_sweep(runs)).to_string(index=False))
        return 0
    if set(args.seeds) & {0, 1, 2, 3, 4}:
        p.error("seeds 0-4 are the reported ones (benchmarks/feedback_loop.md): develop on others")
    started = time.perf_counter()
    base, _ = load_model(MODEL)
    frame = pd.read_csv(APPLE, dtype=str, keep_default_na=False)[["text", "label"]]
    anchor = pd.read_csv(SEMEVAL / "train.csv", dtype=str, keep_default_na=False)["text"].tolist()
    validation = pd.read_csv(SEMEVAL / "validation.csv", dtype=str, keep_default_na=False)
    rows = []
    for seed in args.seeds:
        for k in args.k:
            for strategy in args.strategies:
                rows.append(one(base, frame, anchor, seed, strategy, k, validation))
                r = rows[-1]
                print(f"seed {seed} k {k} {strategy:>14}: holdout {r['holdout']:+.4f}  cv {r['cv']:+.4f}  "
                      f"weighted {r['cv_weighted']:+.4f}  [{time.perf_counter() - started:.0f}s]", flush=True)  # fmt: skip
    table = pd.DataFrame(rows)
    summary = []
    for (strategy, k), g in table.groupby(["strategy", "k"]):
        entry = {
            "strategy": strategy,
            "k": int(k),
            "runs": len(g),
            "holdout_mean": round(g["holdout"].mean(), 4),
        }
        for est in ("cv", "cv_weighted"):
            entry[f"{est}_mean"] = round(g[est].mean(), 4)
            entry[f"{est}_sign_agrees"] = int((np.sign(g[est]) == np.sign(g["holdout"])).sum())
            entry[f"{est}_corr"] = (
                round(float(np.corrcoef(g[est], g["holdout"])[0, 1]), 3) if len(g) > 2 else None
            )
            promote = g[est] >= 0.002  # the gate's margin
            entry[f"{est}_promoted"] = int(promote.sum())
            entry[f"{est}_champion_gain_mean"] = round(float(np.where(promote, g["holdout"], 0.0).mean()), 4)
        entry["gate_promoted"] = int(g["gate_promoted"].sum())
        entry["gate_champion_gain_mean"] = round(
            float(np.where(g["gate_promoted"], g["holdout"], 0.0).mean()), 4
        )
        summary.append(entry)
    print(pd.DataFrame(summary).to_string(index=False))
    sweep = tolerance_sweep(rows)
    print(pd.DataFrame(sweep).to_string(index=False))
    classes = class_limit_sweep(rows)
    print(pd.DataFrame(classes).to_string(index=False))
    args.out.write_text(json.dumps({"seeds": args.seeds, "runs": rows, "summary": summary, "tolerances": sweep, "class_limits": classes,
                               "seconds": round(time.perf_counter() - started, 1)}, indent=1) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
