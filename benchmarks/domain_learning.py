"""Issue 22, "Teach it your domain": how much do a few hundred corrections of Apple tweets buy?

Protocol (results: benchmarks/domain_learning.md, raw numbers: domain_learning.json):
- Apple tweets (../shared/data/apple_tweets/tweets.csv) split BY TEXT: near-duplicate groups
  (`data.near_duplicate_key`: re-posts and retweets share one) go wholly to the pool (60%) or the holdout
  (40%), per seed (`SEEDS`).
- From the pool, k = 100 / 200 / 500 texts are chosen by each review strategy (`feedback.review`:
  diverse, uncertain, random) using the committed model's probabilities; their crowd labels play
  the corrections.
- Learners, each fitted on the corrections only (the holdout is never seen; every hyperparameter the
  product uses is chosen by cross-validation inside the corrections):
  * `base`: the committed model.pkl, unchanged;
  * `head` (the product, `training.domain.fit_domain_model`): M @ base logits + V @ x + c, L2 towards
    the base, class-balanced weights, C by grouped 5-fold CV within the corrections;
  * `recalibrate`: the same head without the word block (M and c only: priors and temperature), C=1;
  * `small`: a LogisticRegression on the base features fitted on the corrections alone (balanced, C=1);
  * `average`: mean of the base and `small` probabilities (the colleague's recipe).
- Scores: AvgRec (macro recall) on the holdout, with 95% intervals from a group bootstrap (near-duplicate
  groups resampled, 1,000 draws; the mean over seeds takes one draw per seed per replicate); paired
  differences use the same draws for both models. Guard: AvgRec on SemEval validation (2,000 rows).

Run: PYTHONPATH=. python benchmarks/domain_learning.py  (about 15 minutes on 2 busy cores).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from sentimentkit import LABELS
from sentimentkit.config import REPO_ROOT
from sentimentkit.data import near_duplicate_key
from sentimentkit.feedback.review import select_for_review
from sentimentkit.models.domain import class_balanced_weights, fit_head_on_features, fold
from sentimentkit.models.pipeline import load_model
from sentimentkit.training.domain import fit_domain_model

DATA = REPO_ROOT.parent / "shared" / "data"
APPLE = DATA / "apple_tweets" / "tweets.csv"
VALIDATION = DATA / "semeval2017" / "validation.csv"
SEEDS = (0, 1, 2, 3, 4)
SIZES = (100, 200, 500)
if os.environ.get("DOMAIN_SMOKE"):  # a quick check that the script runs end to end
    SEEDS, SIZES = (0, 1), (100,)
STRATEGIES = ("diverse", "uncertain", "random")
HOLDOUT_FRACTION = 0.4
N_BOOT = 1000
OUT = Path(__file__).with_suffix("")


def split_by_text(keys: np.ndarray, seed: int) -> np.ndarray:
    """Boolean mask of holdout rows: HOLDOUT_FRACTION of the distinct near-duplicate keys."""
    unique = np.unique(keys)
    rng = np.random.default_rng(seed)
    held = rng.choice(unique, int(round(HOLDOUT_FRACTION * len(unique))), replace=False)
    return np.isin(keys, held)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def linear_proba(clf, X) -> np.ndarray:
    return softmax(np.asarray(X @ clf.coef_.T) + clf.intercept_)


def boot_draws(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N_BOOT, rows) weights: how often each row's group was drawn in each replicate."""
    _, inverse = np.unique(groups, return_inverse=True)
    n_groups = inverse.max() + 1
    counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=N_BOOT)
    return counts[:, inverse].astype(np.float64)


def avg_recall(y: np.ndarray, pred: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray | float:
    """AvgRec; with `weights` (replicates x rows) one value per replicate."""
    if weights is None:
        return float(np.mean([np.mean(pred[y == c] == c) for c in LABELS]))
    recalls = []
    for c in LABELS:
        mask = y == c
        recalls.append((weights[:, mask] @ (pred[mask] == c)) / weights[:, mask].sum(axis=1))
    return np.mean(recalls, axis=0)


def interval(values: np.ndarray) -> list[float]:
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def main() -> None:
    started = time.time()
    base, _ = load_model(REPO_ROOT / "model.pkl")
    vec, base_clf = base.named_steps["features"], base.named_steps["clf"]
    apple = pd.read_csv(APPLE)
    val = pd.read_csv(VALIDATION)
    texts = apple["text"].tolist()
    y = apple["label"].to_numpy(dtype=str)
    keys = np.asarray([near_duplicate_key(t) or f"\x00{i}" for i, t in enumerate(texts)], dtype=object)
    X = vec.transform(texts).tocsr()
    Xv = vec.transform(val["text"].tolist()).tocsr()
    yv = val["label"].to_numpy(dtype=str)
    base_proba = linear_proba(base_clf, X)
    labels = np.asarray(LABELS)
    rows = []  # one per (seed, strategy, k, learner)
    preds: dict[tuple, np.ndarray] = {}
    for seed in SEEDS:
        hold = split_by_text(keys, seed)
        pool_idx, hold_idx = np.flatnonzero(~hold), np.flatnonzero(hold)
        preds[(seed, "-", 0, "base")] = labels[base_proba[hold_idx].argmax(axis=1)]
        base_holdout = avg_recall(y[hold_idx], preds[(seed, "-", 0, "base")])
        rows.append({"seed": seed, "strategy": "-", "k": 0, "learner": "base", "holdout": base_holdout,
                     "validation": avg_recall(yv, labels[linear_proba(base_clf, Xv).argmax(axis=1)])})  # fmt: skip
        for strategy in STRATEGIES:
            for k in SIZES:
                pick = pool_idx[select_for_review([texts[i] for i in pool_idx], base_proba[pool_idx], k,
                                                  strategy, seed=seed)]  # fmt: skip
                corrections = pd.DataFrame({"text": [texts[i] for i in pick], "label": y[pick]})
                t0 = time.time()
                model, report = fit_domain_model(base, corrections, seed=seed)
                fit_s = time.time() - t0
                head = model.named_steps["clf"]
                weights = class_balanced_weights(y[pick], keys[pick])
                recal = fold(base, fit_head_on_features(base, X[pick], y[pick], 1.0, weights, words=False),
                             1.0, len(pick)).named_steps["clf"]  # fmt: skip
                small = LogisticRegression(C=1.0, class_weight="balanced", max_iter=3000).fit(
                    X[pick], y[pick]
                )
                probas = {
                    "head": (linear_proba(head, X[hold_idx]), linear_proba(head, Xv)),
                    "recalibrate": (linear_proba(recal, X[hold_idx]), linear_proba(recal, Xv)),
                    "small": (small.predict_proba(X[hold_idx]), small.predict_proba(Xv)),
                }
                probas["average"] = tuple(
                    (b + s) / 2
                    for b, s in zip((base_proba[hold_idx], linear_proba(base_clf, Xv)), probas["small"])
                )
                for learner, (ph, pv) in probas.items():
                    preds[(seed, strategy, k, learner)] = labels[ph.argmax(axis=1)]
                    rows.append({"seed": seed, "strategy": strategy, "k": k, "learner": learner,
                                 "holdout": avg_recall(y[hold_idx], labels[ph.argmax(axis=1)]),
                                 "validation": avg_recall(yv, labels[pv.argmax(axis=1)]),
                                 "chosen_C": report["chosen"]["C"] if learner == "head" else None,
                                 "cv_avg_recall": report["chosen"]["cv_avg_recall"] if learner == "head" else None,
                                 "fit_seconds": round(fit_s, 1) if learner == "head" else None,
                                 "label_counts": report["label_counts"], "groups": report["n_groups"]})  # fmt: skip
                print(f"seed {seed} {strategy:9s} k={k:3d} head {rows[-4]['holdout']:.3f} "
                      f"(C={report['chosen']['C']}, {fit_s:.0f}s) base {base_holdout:.3f}"
                      f"  [{time.time() - started:.0f}s]", flush=True)  # fmt: skip
    frame = pd.DataFrame(rows)
    summary = summarise(frame, preds, y, keys)
    OUT.with_suffix(".json").write_text(
        json.dumps({"rows": rows, "summary": summary}, indent=1, default=float)
    )
    print(json.dumps(summary, indent=1, default=float))
    print(f"done in {time.time() - started:.0f}s", file=sys.stderr)


def summarise(frame: pd.DataFrame, preds: dict, y: np.ndarray, keys: np.ndarray) -> dict:
    """Mean over seeds of each learner's holdout AvgRec, its gain over base and the 95% intervals."""
    rng = np.random.default_rng(12345)
    draws = {}
    for seed in SEEDS:
        hold_idx = np.flatnonzero(split_by_text(keys, seed))
        draws[seed] = (hold_idx, boot_draws(keys[hold_idx], rng))

    def boot(a: tuple, b: tuple | None) -> np.ndarray:
        """Per replicate: mean over seeds of AvgRec(a) - AvgRec(b) (b None: AvgRec(a))."""
        out = np.zeros(N_BOOT)
        for seed in SEEDS:
            hold_idx, w = draws[seed]
            value = avg_recall(y[hold_idx], preds[(seed, *a)], w)
            if b is not None:
                value = value - avg_recall(y[hold_idx], preds[(seed, *b)], w)
            out += value / len(SEEDS)
        return out

    out: dict = {"cells": []}
    for (strategy, k, learner), group in frame.groupby(["strategy", "k", "learner"], sort=False):
        cell = {"strategy": strategy, "k": int(k), "learner": learner,
                "holdout": float(group["holdout"].mean()), "holdout_ci": interval(boot((strategy, k, learner), None)),
                "validation": float(group["validation"].mean()),
                "per_seed": [round(v, 4) for v in group["holdout"]]}  # fmt: skip
        if learner != "base":
            gain = boot((strategy, k, learner), ("-", 0, "base"))
            cell["gain"] = float(gain.mean())
            cell["gain_ci"] = interval(gain)
        if learner == "head":
            cell["chosen_C"] = group["chosen_C"].tolist()
            cell["fit_seconds"] = float(group["fit_seconds"].mean())
        out["cells"].append(cell)
    out["strategy_vs_random"] = []
    for k in SIZES:
        for strategy in ("diverse", "uncertain"):
            diff = boot((strategy, k, "head"), ("random", k, "head"))
            per_seed = [float(avg_recall(y[draws[s][0]], preds[(s, strategy, k, "head")])
                              - avg_recall(y[draws[s][0]], preds[(s, "random", k, "head")])) for s in SEEDS]  # fmt: skip
            out["strategy_vs_random"].append({"k": k, "strategy": strategy, "diff": float(np.mean(per_seed)),
                                              "ci": interval(diff), "per_seed": per_seed})  # fmt: skip
    return out


def render(summary: dict) -> str:
    """The markdown tables of benchmarks/domain_learning.md from the summary."""
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    lines = [
        "| strategy | labels | learner | holdout AvgRec (95% CI) | gain vs base, points (95% CI) | SemEval val AvgRec |",
        "|---|---|---|---|---|---|",
    ]
    for c in summary["cells"]:
        gain = f"{pct(c['gain']):>5} [{pct(c['gain_ci'][0])}, {pct(c['gain_ci'][1])}]" if "gain" in c else "-"
        lines.append(
            f"| {c['strategy']} | {c['k'] or '-'} | {c['learner']} | {pct(c['holdout'])} "
            f"[{pct(c['holdout_ci'][0])}, {pct(c['holdout_ci'][1])}] | {gain} | {pct(c['validation'])} |"
        )
    lines += ["", "| labels | strategy | minus random, points (95% CI) | per seed |", "|---|---|---|---|"]
    for d in summary["strategy_vs_random"]:
        seeds = ", ".join(pct(v) for v in d["per_seed"])
        lines.append(
            f"| {d['k']} | {d['strategy']} | {pct(d['diff'])} [{pct(d['ci'][0])}, {pct(d['ci'][1])}] | {seeds} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--render"]:
        print(render(json.loads(OUT.with_suffix(".json").read_text())["summary"]))
    else:
        main()
