"""Issue 22, "Teach it your domain": how much do a few hundred corrections of Apple tweets buy?

Protocol (results: benchmarks/domain_learning.md, raw numbers: domain_learning.json):
- Apple tweets (../shared/data/apple_tweets/tweets.csv) split BY TEXT: near-duplicate groups
  (`data.near_duplicate_key`: re-posts and retweets share one) go wholly to the pool (60%) or the holdout
  (40%), per seed (`SEEDS`).
- From the pool, k = 100 / 200 / 500 texts are chosen by each review strategy (`feedback.review`:
  representative = the default then, diverse, uncertain, random) using the committed model's
  probabilities; their crowd labels play the corrections.
- Learners, each fitted on the corrections (the holdout is never seen; every hyperparameter was frozen
  on development splits, seeds 100-109, by benchmarks/domain_learning_dev.py before this ran):
  * `base`: the committed model.pkl, unchanged;
  * `head` (the product, `training.domain.fit_domain_model` as `retrain` calls it): M @ base logits +
    V @ x + c, L2 towards the base, class-balanced weights, C = DEFAULT_C, anchored on N_ANCHOR texts
    of SemEval train (the base training split) with the base model's probabilities as targets;
  * `head_no_anchor`: the same head without the anchor (the ablation);
  * `small`: a LogisticRegression on the base features fitted on the corrections alone (balanced, C=1);
  * `average`: mean of the base and `small` probabilities (the colleague's recipe).
- Scores: AvgRec (macro recall) on the holdout, with 95% intervals from a group bootstrap (near-duplicate
  groups resampled, 1,000 draws; the mean over seeds takes one draw per seed per replicate); paired
  differences use the same draws for both models. Guard: AvgRec on SemEval validation (2,000 rows).

Run: OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python benchmarks/domain_learning.py [--seeds 0-4]
(about 8 minutes per 5 seeds on 2 busy cores; the rows of each run are kept in domain_learning.json,
so seeds 0-4 and 5-9 can run one after the other; `--render` prints the tables from the JSON).
"""

from __future__ import annotations

import hashlib
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
from sentimentkit.models.pipeline import load_model
from sentimentkit.training.domain import fit_domain_model

DATA = REPO_ROOT.parent / "shared" / "data"
APPLE = DATA / "apple_tweets" / "tweets.csv"
VALIDATION = DATA / "semeval2017" / "validation.csv"
TRAIN = DATA / "semeval2017" / "train.csv"
SEEDS = (0, 1, 2, 3, 4)
SIZES = (100, 200, 500)
if os.environ.get("DOMAIN_SMOKE"):  # a quick check that the script runs end to end
    SEEDS, SIZES = (0, 1), (100,)
STRATEGIES = ("representative", "diverse", "uncertain", "random")
HOLDOUT_FRACTION = 0.4
GUARD_TOLERANCE = 0.03  # retrain's default --guard-tolerance
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


def main(seeds: tuple[int, ...]) -> None:
    started = time.time()
    model_path = REPO_ROOT / "model.pkl"
    base, card = load_model(model_path)
    vec, base_clf = base.named_steps["features"], base.named_steps["clf"]
    apple = pd.read_csv(APPLE)
    val = pd.read_csv(VALIDATION)
    anchor_texts = pd.read_csv(TRAIN)["text"].tolist()  # what `retrain` passes: the base training split
    texts = apple["text"].tolist()
    y = apple["label"].to_numpy(dtype=str)
    keys = np.asarray([near_duplicate_key(t) or f"\x00{i}" for i, t in enumerate(texts)], dtype=object)
    X = vec.transform(texts).tocsr()
    Xv = vec.transform(val["text"].tolist()).tocsr()
    yv = val["label"].to_numpy(dtype=str)
    base_proba = linear_proba(base_clf, X)
    base_val = linear_proba(base_clf, Xv)
    labels = np.asarray(LABELS)
    rows = []  # one per (seed, strategy, k, learner)
    preds: dict[tuple, np.ndarray] = {}
    for seed in seeds:
        hold = split_by_text(keys, seed)
        pool_idx, hold_idx = np.flatnonzero(~hold), np.flatnonzero(hold)
        preds[(seed, "-", 0, "base")] = labels[base_proba[hold_idx].argmax(axis=1)]
        base_holdout = avg_recall(y[hold_idx], preds[(seed, "-", 0, "base")])
        rows.append({"seed": seed, "strategy": "-", "k": 0, "learner": "base", "holdout": base_holdout,
                     "validation": avg_recall(yv, labels[base_val.argmax(axis=1)])})  # fmt: skip
        for strategy in STRATEGIES:
            for k in SIZES:
                pick = pool_idx[select_for_review([texts[i] for i in pool_idx], base_proba[pool_idx], k,
                                                  strategy, seed=seed)]  # fmt: skip
                corrections = pd.DataFrame({"text": [texts[i] for i in pick], "label": y[pick]})
                t0 = time.time()
                model, report = fit_domain_model(base, corrections, seed=seed, anchor_texts=anchor_texts)
                fit_s = time.time() - t0
                free, _ = fit_domain_model(base, corrections, seed=seed)
                head, free = model.named_steps["clf"], free.named_steps["clf"]
                small = LogisticRegression(C=1.0, class_weight="balanced", max_iter=3000).fit(
                    X[pick], y[pick]
                )
                probas = {
                    "head": (linear_proba(head, X[hold_idx]), linear_proba(head, Xv)),
                    "head_no_anchor": (linear_proba(free, X[hold_idx]), linear_proba(free, Xv)),
                    "small": (small.predict_proba(X[hold_idx]), small.predict_proba(Xv)),
                }
                probas["average"] = tuple(
                    (b + q) / 2 for b, q in zip((base_proba[hold_idx], base_val), probas["small"])
                )
                for learner, (ph, pv) in probas.items():
                    preds[(seed, strategy, k, learner)] = labels[ph.argmax(axis=1)]
                    rows.append({"seed": seed, "strategy": strategy, "k": k, "learner": learner,
                                 "holdout": avg_recall(y[hold_idx], labels[ph.argmax(axis=1)]),
                                 "validation": avg_recall(yv, labels[pv.argmax(axis=1)]),
                                 "C": report["chosen"]["C"] if learner == "head" else None,
                                 "fit_seconds": round(fit_s, 1) if learner == "head" else None,
                                 "label_counts": report["label_counts"], "groups": report["n_groups"]})  # fmt: skip
                print(f"seed {seed} {strategy:9s} k={k:3d} head {rows[-4]['holdout']:.3f} "
                      f"(val {rows[-4]['validation']:.3f}, {fit_s:.0f}s) base {base_holdout:.3f}"
                      f"  [{time.time() - started:.0f}s]", flush=True)  # fmt: skip
    frame = pd.DataFrame(rows)
    summary = summarise(frame, preds, y, keys, seeds)
    name = f"{seeds[0]}-{seeds[-1]}"
    out = json.loads(OUT.with_suffix(".json").read_text()) if OUT.with_suffix(".json").exists() else {}
    out = out if "runs" in out else {"runs": {}}  # the first version's layout is replaced
    out["model"] = {"file": "model.pkl", "sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
                    "version": card.get("version"), "test_avg_recall": card["metrics"]["test"]["avg_recall"]}  # fmt: skip
    out["runs"][name] = {"seeds": list(seeds), "rows": rows, "summary": summary,
                         "seconds": round(time.time() - started)}  # fmt: skip
    OUT.with_suffix(".json").write_text(json.dumps(out, indent=1, default=float))
    print(render(summary))
    print(f"done in {time.time() - started:.0f}s", file=sys.stderr)


def summarise(
    frame: pd.DataFrame, preds: dict, y: np.ndarray, keys: np.ndarray, seeds: tuple[int, ...]
) -> dict:
    """Mean over seeds of each learner's holdout AvgRec, its gain over base and the 95% intervals."""
    rng = np.random.default_rng(12345)
    draws = {}
    for seed in seeds:
        hold_idx = np.flatnonzero(split_by_text(keys, seed))
        draws[seed] = (hold_idx, boot_draws(keys[hold_idx], rng))

    def boot(a: tuple, b: tuple | None) -> np.ndarray:
        """Per replicate: mean over seeds of AvgRec(a) - AvgRec(b) (b None: AvgRec(a))."""
        out = np.zeros(N_BOOT)
        for seed in seeds:
            hold_idx, w = draws[seed]
            value = avg_recall(y[hold_idx], preds[(seed, *a)], w)
            if b is not None:
                value = value - avg_recall(y[hold_idx], preds[(seed, *b)], w)
            out += value / len(seeds)
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
            cell["fit_seconds"] = float(group["fit_seconds"].mean())
        if learner != "base":  # the seeds on which retrain's guard (validation, 0.03) lets it through
            base_val = float(frame.loc[frame["learner"] == "base", "validation"].iloc[0])
            cell["guard_passes"] = int((base_val - group["validation"] <= GUARD_TOLERANCE).sum())
        out["cells"].append(cell)
    out["strategy_vs_random"] = []
    for k in SIZES:
        for strategy in STRATEGIES[:-1]:
            diff = boot((strategy, k, "head"), ("random", k, "head"))
            per_seed = [float(avg_recall(y[draws[s][0]], preds[(s, strategy, k, "head")])
                              - avg_recall(y[draws[s][0]], preds[(s, "random", k, "head")])) for s in seeds]  # fmt: skip
            out["strategy_vs_random"].append({"k": k, "strategy": strategy, "diff": float(np.mean(per_seed)),
                                              "ci": interval(diff), "per_seed": per_seed})  # fmt: skip
    return out


def render(summary: dict) -> str:
    """The markdown tables of benchmarks/domain_learning.md from the summary."""
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    lines = [
        "| strategy | labels | learner | holdout AvgRec (95% CI) | gain vs base, points (95% CI) | SemEval val AvgRec | guard passes |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in summary["cells"]:
        gain = f"{pct(c['gain']):>5} [{pct(c['gain_ci'][0])}, {pct(c['gain_ci'][1])}]" if "gain" in c else "-"
        lines.append(
            f"| {c['strategy']} | {c['k'] or '-'} | {c['learner']} | {pct(c['holdout'])} "
            f"[{pct(c['holdout_ci'][0])}, {pct(c['holdout_ci'][1])}] | {gain} | {pct(c['validation'])} | "
            f"{c.get('guard_passes', '-')} |"
        )
    lines += ["", "| labels | strategy | minus random, points (95% CI) | per seed |", "|---|---|---|---|"]
    for d in summary["strategy_vs_random"]:
        seeds = ", ".join(pct(v) for v in d["per_seed"])
        lines.append(
            f"| {d['k']} | {d['strategy']} | {pct(d['diff'])} [{pct(d['ci'][0])}, {pct(d['ci'][1])}] | {seeds} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--render"]:
        runs = json.loads(OUT.with_suffix(".json").read_text())["runs"]
        for name, run in runs.items():
            print(f"### seeds {name}\n\n{render(run['summary'])}\n")
    else:
        chosen = SEEDS
        if sys.argv[1:2] == ["--seeds"]:
            lo, hi = sys.argv[2].split("-")
            chosen = tuple(range(int(lo), int(hi) + 1))
        if any(seed >= 100 for seed in chosen):
            raise SystemExit("seeds 100 and up are the development splits (domain_learning_dev.py)")
        main(chosen)
