"""Development runs for issue 22's learner and review strategy (the choices, made on DEVELOPMENT splits).

Nothing here looks at the splits benchmarks/domain_learning.py reports (seeds 0-9): every variant is
scored on `DEV_SEEDS` (100-109) of the same split-by-text of the Apple tweets, and the product's choices
were frozen from these numbers before the reported run (results: domain_learning_dev.json, the story:
benchmarks/domain_learning.md, "How the choices were made").

Stages (each prints one line per cell and writes its rows to domain_learning_dev.json):
- `strategies`: review strategies screened with one fixed learner (the head at C = 1, no
  cross-validation, so the screen is cheap), k = 200 and 500;
- `learners`: learner variants on the strategies kept, all read off one set of cross-validation fits
  per cell (out-of-fold logits for every C are kept, so choosing C by AvgRec or by log-loss, or shrinking
  the head towards the base, costs no extra fit);
- `fixed`: the head at fixed (C, mixing penalty) pairs, holdout gain and SemEval validation loss;
- `anchor`: the head anchored on N_ANCHOR SemEval train tweets (base probabilities as targets) at
  (C, anchor weight) pairs (`anchors=C:W,...`), then the strategies again under the chosen pair.

The runs behind benchmarks/domain_learning.md, in order:
  strategies 200 500 random uncertain diverse cluster cluster_unweighted cluster_central mix_diverse
      mix_cluster density
  learners 500 random diverse mix_cluster
  fixed 100 200 500 random diverse
  anchor 200 500 diverse random                      (ANCHORS as below)
  anchor 200 500 anchors=2.0:1.0 diverse random cluster cluster_central mix_cluster density uncertain
(`cluster_central` is the product's `representative`: feedback.review.select_representative gives the
same picks.) Each run appends its rows to domain_learning_dev.json.

Run: OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python benchmarks/domain_learning_dev.py STAGE [k ...] [names]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from sentimentkit import LABELS
from sentimentkit.config import REPO_ROOT
from sentimentkit.data import near_duplicate_key
from sentimentkit.feedback import review
from sentimentkit.models.domain import base_scores, class_balanced_weights, fit_head_on_features
from sentimentkit.models.pipeline import load_model

DATA = REPO_ROOT.parent / "shared" / "data"
APPLE = DATA / "apple_tweets" / "tweets.csv"
VALIDATION = DATA / "semeval2017" / "validation.csv"
DEV_SEEDS = tuple(range(100, 110))
HOLDOUT_FRACTION = 0.4
OUT = Path(__file__).with_suffix(".json")
LAB = np.asarray(LABELS)


def split_by_text(keys: np.ndarray, seed: int) -> np.ndarray:
    """Boolean mask of holdout rows (the same rule as domain_learning.py)."""
    unique = np.unique(keys)
    rng = np.random.default_rng(seed)
    held = rng.choice(unique, int(round(HOLDOUT_FRACTION * len(unique))), replace=False)
    return np.isin(keys, held)


def avg_recall(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean([np.mean(pred[y == c] == c) for c in LABELS]))


def head_logits(head, scores: np.ndarray, X) -> np.ndarray:
    return head.logits(scores, X)


class Bench:
    """The data, features and base scores, computed once."""

    def __init__(self) -> None:
        self.base, _ = load_model(REPO_ROOT / "model.pkl")
        vec = self.base.named_steps["features"]
        apple = pd.read_csv(APPLE)
        val = pd.read_csv(VALIDATION)
        self.texts = apple["text"].tolist()
        self.y = apple["label"].to_numpy(dtype=object)
        self.keys = np.asarray(
            [near_duplicate_key(t) or f"\x00{i}" for i, t in enumerate(self.texts)], dtype=object
        )
        self.X = vec.transform(self.texts).tocsr()
        self.S = base_scores(self.base, self.X)
        self.Xv = vec.transform(val["text"].tolist()).tocsr()
        self.Sv = base_scores(self.base, self.Xv)
        self.yv = val["label"].to_numpy(dtype=object)
        z = np.exp(self.S - self.S.max(axis=1, keepdims=True))
        self.proba = z / z.sum(axis=1, keepdims=True)

    def split(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        hold = split_by_text(self.keys, seed)
        return np.flatnonzero(~hold), np.flatnonzero(hold)

    def pick(self, strategy: str, pool: np.ndarray, k: int, seed: int) -> np.ndarray:
        texts = [self.texts[i] for i in pool]
        if strategy in STRATEGY_FUNCS:
            return pool[STRATEGY_FUNCS[strategy](texts, self.proba[pool], k, seed)]
        return pool[review.select_for_review(texts, self.proba[pool], k, strategy, seed=seed)]


# --- candidate strategies (development versions; the kept one moves into feedback/review.py) -------
def _representatives(texts: list[str], margin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the least certain text of each near-duplicate group, the group's size)."""
    order = np.argsort(margin, kind="stable")
    reps: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for i in order.tolist():
        key = near_duplicate_key(texts[i]) or f"\x00{i}"
        reps.setdefault(key, i)
        sizes[key] = sizes.get(key, 0) + 1
    keys = list(reps)
    return np.asarray([reps[k] for k in keys]), np.asarray([sizes[k] for k in keys], dtype=float)


def _embed(texts: list[str], seed: int, dims: int = 100) -> np.ndarray:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    from sentimentkit.text.preprocess import MARKERS, base_token, tokenize

    docs = [" ".join(base_token(t) for t in tokenize(x) if t not in MARKERS) for x in texts]
    tfidf = TfidfVectorizer(token_pattern=r"\S+", sublinear_tf=True, min_df=1).fit_transform(docs)
    dims = max(2, min(dims, tfidf.shape[1] - 1, tfidf.shape[0] - 1))
    return normalize(TruncatedSVD(dims, random_state=seed).fit_transform(tfidf))


def cluster_pick(texts: list[str], proba: np.ndarray, k: int, seed: int, weighted: bool = True,
                 central: bool = False) -> np.ndarray:  # fmt: skip
    """k-means (k clusters) over the group representatives (weighted by group size); the least certain
    member of each cluster (or the one nearest the centre), clusters in order of their weight."""
    from sklearn.cluster import KMeans

    margin = review.margins(proba)
    reps, sizes = _representatives(texts, margin)
    k = min(k, len(reps))
    emb = _embed([texts[i] for i in reps], seed)
    km = KMeans(k, n_init=1, random_state=seed).fit(emb, sample_weight=sizes if weighted else None)
    picks, weights = [], []
    for c in range(k):
        members = np.flatnonzero(km.labels_ == c)
        if not len(members):
            continue
        if central:
            best = members[np.argmax(emb[members] @ km.cluster_centers_[c])]
        else:
            best = members[np.argmin(margin[reps[members]])]
        picks.append(reps[best])
        weights.append(sizes[members].sum())
    order = np.argsort(-np.asarray(weights), kind="stable")
    return np.asarray(picks)[order]


def mix_pick(texts: list[str], proba: np.ndarray, k: int, seed: int, share: float = 0.5,
             inner: str = "diverse") -> np.ndarray:  # fmt: skip
    """`share` of k drawn at random, the rest by `inner` among the texts not drawn."""
    n_random = int(round(share * k))
    drawn = review.select_random(len(texts), n_random, seed)
    rest = np.setdiff1d(np.arange(len(texts)), drawn)
    inner_pick = review.select_for_review([texts[i] for i in rest], proba[rest], k - len(drawn), inner)
    return np.concatenate([drawn, rest[inner_pick]])


def density_pick(texts: list[str], proba: np.ndarray, k: int, seed: int, beta: float = 1.0) -> np.ndarray:
    """Information density: (1 - margin) x (mean cosine similarity to the pool, weighted by group
    size) ** beta over the group representatives; highest first."""
    margin = review.margins(proba)
    reps, sizes = _representatives(texts, margin)
    emb = _embed([texts[i] for i in reps], seed)
    density = np.clip((emb @ (emb.T @ sizes)) / sizes.sum(), 1e-6, None)
    score = (1.0 - margin[reps]) * density**beta
    return reps[np.argsort(-score, kind="stable")[:k]]


STRATEGY_FUNCS = {
    "cluster": cluster_pick,
    "cluster_unweighted": lambda t, p, k, s: cluster_pick(t, p, k, s, weighted=False),
    "cluster_central": lambda t, p, k, s: cluster_pick(t, p, k, s, central=True),
    "mix_diverse": mix_pick,
    "mix_cluster": lambda t, p, k, s: _mix_cluster(t, p, k, s),
    "density": density_pick,
}


def _mix_cluster(texts: list[str], proba: np.ndarray, k: int, seed: int) -> np.ndarray:
    n_random = int(round(0.5 * k))
    drawn = review.select_random(len(texts), n_random, seed)
    rest = np.setdiff1d(np.arange(len(texts)), drawn)
    inner = cluster_pick([texts[i] for i in rest], proba[rest], k - len(drawn), seed)
    return np.concatenate([drawn, rest[inner]])


# --- stages -------------------------------------------------------------------------------------
def stage_strategies(bench: Bench, sizes: list[int], strategies: list[str], seeds=DEV_SEEDS) -> list[dict]:
    rows = []
    started = time.time()
    for seed in seeds:
        pool, hold = bench.split(seed)
        base_h = avg_recall(bench.y[hold], LAB[bench.S[hold].argmax(axis=1)])
        for k in sizes:
            for strategy in strategies:
                pick = bench.pick(strategy, pool, k, seed)
                y = bench.y[pick]
                w = class_balanced_weights(y, bench.keys[pick])
                head = fit_head_on_features(bench.base, bench.X[pick], y, 1.0, w)
                h = avg_recall(bench.y[hold], LAB[head.logits(bench.S[hold], bench.X[hold]).argmax(axis=1)])
                counts = {c: int((y == c).sum()) for c in LABELS}
                rows.append({"stage": "strategies", "seed": seed, "k": k, "strategy": strategy,
                             "learner": "head_C1", "holdout": h, "base": base_h, "counts": counts})  # fmt: skip
                print(f"{seed} k={k} {strategy:18s} {100 * (h - base_h):+5.1f}  {counts}  [{time.time() - started:.0f}s]",
                      flush=True)  # fmt: skip
    return rows


GRID = (0.03, 0.1, 0.3, 1.0, 3.0)
ALPHAS = (0.25, 0.5, 0.75, 1.0)


def _oof(bench: Bench, pick: np.ndarray, seed: int) -> dict[float, np.ndarray]:
    """Out-of-fold head logits for every C in GRID (grouped, stratified 5 folds, like the product)."""
    y, groups = bench.y[pick], bench.keys[pick]
    per_class = min(len(set(groups[y == c])) for c in LABELS)
    folds = list(StratifiedGroupKFold(n_splits=max(2, min(5, per_class)), shuffle=True,
                                      random_state=seed).split(pick, y, groups))  # fmt: skip
    out = {C: bench.S[pick].copy() for C in GRID}
    for C in GRID:
        for train, test in folds:
            tr, te = pick[train], pick[test]
            try:
                head = fit_head_on_features(bench.base, bench.X[tr], bench.y[tr], C,
                                            class_balanced_weights(bench.y[tr], bench.keys[tr]))  # fmt: skip
            except ValueError:
                continue
            out[C][test] = head.logits(bench.S[te], bench.X[te])
    return out


def _balanced_logloss(y: np.ndarray, logits: np.ndarray, w: np.ndarray) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    idx = np.searchsorted(LAB, y.astype(str))
    return float(-(w * logp[np.arange(len(y)), idx]).sum() / w.sum())


def stage_learners(bench: Bench, sizes: list[int], strategies: list[str], seeds=DEV_SEEDS) -> list[dict]:
    rows = []
    started = time.time()
    for seed in seeds:
        pool, hold = bench.split(seed)
        yh = bench.y[hold]
        base_h = avg_recall(yh, LAB[bench.S[hold].argmax(axis=1)])
        base_v = avg_recall(bench.yv, LAB[bench.Sv.argmax(axis=1)])
        for k in sizes:
            for strategy in strategies:
                pick = bench.pick(strategy, pool, k, seed)
                y = bench.y[pick]
                w = class_balanced_weights(y, bench.keys[pick])
                oof = _oof(bench, pick, seed)
                # every (C, alpha) candidate: logits = alpha * head + (1 - alpha) * base
                cv_rec, cv_ll = {}, {}
                for C in GRID:
                    for a in ALPHAS:
                        lg = a * oof[C] + (1 - a) * bench.S[pick]
                        cv_rec[(C, a)] = avg_recall(y, LAB[lg.argmax(axis=1)])
                        cv_ll[(C, a)] = _balanced_logloss(y, lg, w)
                heads = {C: fit_head_on_features(bench.base, bench.X[pick], y, C, w) for C in GRID}
                hl = {C: heads[C].logits(bench.S[hold], bench.X[hold]) for C in GRID}
                vl = {C: heads[C].logits(bench.Sv, bench.Xv) for C in GRID}

                def score(C: float, a: float, hl=hl, vl=vl, hold=hold, yh=yh) -> tuple[float, float]:
                    h = a * hl[C] + (1 - a) * bench.S[hold]
                    v = a * vl[C] + (1 - a) * bench.Sv
                    return avg_recall(yh, LAB[h.argmax(axis=1)]), avg_recall(bench.yv, LAB[v.argmax(axis=1)])

                def smallest_best(table: dict, sign: float, keep) -> tuple[float, float]:
                    cands = {key: v for key, v in table.items() if keep(key)}
                    best = max(sign * v for v in cands.values())
                    return min((key for key, v in cands.items() if sign * v >= best - 1e-12),
                               key=lambda key: (key[0], key[1]))  # fmt: skip

                choices = {
                    "cv_rec": smallest_best(cv_rec, 1, lambda key: key[1] == 1.0),  # the product today
                    "cv_ll": smallest_best(cv_ll, -1, lambda key: key[1] == 1.0),
                    "cv_rec_alpha": smallest_best(cv_rec, 1, lambda key: True),
                    "cv_ll_alpha": smallest_best(cv_ll, -1, lambda key: True),
                    "cv_rec_half": smallest_best(cv_rec, 1, lambda key: key[1] == 0.5),
                    "cv_ll_half": smallest_best(cv_ll, -1, lambda key: key[1] == 0.5),
                }
                for C in GRID:
                    choices[f"C{C}"] = (C, 1.0)
                for name, (C, a) in choices.items():
                    h, v = score(C, a)
                    rows.append({"stage": "learners", "seed": seed, "k": k, "strategy": strategy,
                                 "learner": name, "C": C, "alpha": a, "holdout": h, "base": base_h,
                                 "validation": v, "base_validation": base_v})  # fmt: skip
                line = " ".join(f"{n}={100 * (r['holdout'] - base_h):+.1f}" for n, r in
                                zip(choices, rows[-len(choices):]) if not n.startswith("C"))  # fmt: skip
                print(f"{seed} k={k} {strategy:12s} {line} [{time.time() - started:.0f}s]", flush=True)
    return rows


def _sweep(bench: Bench, stage: str, variants: dict[str, Any], sizes: list[int], strategies: list[str],
           seeds: Any) -> list[dict]:  # fmt: skip
    """Per seed, size and strategy: fit each variant (name -> a function of (pick, y, weights) giving a
    head) on the picked corrections; its holdout and SemEval validation AvgRec beside the base's."""
    rows = []
    started = time.time()
    base_v = avg_recall(bench.yv, LAB[bench.Sv.argmax(axis=1)])
    for seed in seeds:
        pool, hold = bench.split(seed)
        base_h = avg_recall(bench.y[hold], LAB[bench.S[hold].argmax(axis=1)])
        for k in sizes:
            for strategy in strategies:
                pick = bench.pick(strategy, pool, k, seed)
                y = bench.y[pick]
                w = class_balanced_weights(y, bench.keys[pick])
                line = []
                for name, fit in variants.items():
                    head = fit(pick, y, w)
                    h = avg_recall(
                        bench.y[hold], LAB[head.logits(bench.S[hold], bench.X[hold]).argmax(axis=1)]
                    )
                    v = avg_recall(bench.yv, LAB[head.logits(bench.Sv, bench.Xv).argmax(axis=1)])
                    rows.append({"stage": stage, "seed": seed, "k": k, "strategy": strategy,
                                 "learner": name, "holdout": h, "base": base_h,
                                 "validation": v, "base_validation": base_v})  # fmt: skip
                    line.append(f"{100 * (h - base_h):+.1f}/{100 * (v - base_v):+.1f}")
                print(
                    f"{seed} k={k} {strategy:12s} {' '.join(line)} [{time.time() - started:.0f}s]", flush=True
                )
    return rows


FIXED = tuple((C, mix) for C in (0.5, 1.0, 2.0) for mix in (0.01, 0.1, 1.0))


def stage_fixed(bench: Bench, sizes: list[int], strategies: list[str], seeds=DEV_SEEDS) -> list[dict]:
    """The head at fixed (C, mixing penalty) pairs, no cross-validation: holdout and guard."""
    from sentimentkit.models import domain

    def fit(C: float, mix: float) -> Any:
        def head(pick: Any, y: Any, w: Any) -> Any:
            domain.MIX_PENALTY = mix
            try:
                return fit_head_on_features(bench.base, bench.X[pick], y, C, w)
            finally:
                domain.MIX_PENALTY = 0.01

        return head

    variants = {f"C{C}_mix{mix}": fit(C, mix) for C, mix in FIXED}
    return _sweep(bench, "fixed", variants, sizes, strategies, seeds)


ANCHORS = ((1.0, 0.3), (1.0, 1.0), (1.0, 3.0), (2.0, 1.0))
N_ANCHOR = 1000


def stage_anchor(bench: Bench, sizes: list[int], strategies: list[str], seeds=DEV_SEEDS) -> list[dict]:
    """The head with general texts (a sample of SemEval train) anchored to the base's answers."""
    train = pd.read_csv(DATA / "semeval2017" / "train.csv")
    sample = train["text"].sample(N_ANCHOR, random_state=0).tolist()
    A = bench.base.named_steps["features"].transform(sample).tocsr()

    def fit(C: float, aw: float) -> Any:
        return lambda pick, y, w: fit_head_on_features(
            bench.base, bench.X[pick], y, C, w, anchor=A, anchor_weight=aw
        )

    variants = {f"C{C}_anchor{aw}": fit(C, aw) for C, aw in ANCHORS}
    return _sweep(bench, "anchor", variants, sizes, strategies, seeds)


def save(rows: list[dict]) -> None:
    old = json.loads(OUT.read_text()) if OUT.exists() else []
    OUT.write_text(json.dumps(old + rows, indent=0, default=float))


if __name__ == "__main__":
    stage, args = sys.argv[1], sys.argv[2:]
    sizes = [int(a) for a in args if a.isdigit()]
    names = [a for a in args if not a.isdigit() and not a.startswith(("seeds=", "anchors="))]
    seeds = DEV_SEEDS
    for a in args:
        if a.startswith("seeds="):
            lo, hi = a[6:].split("-")
            seeds = tuple(range(int(lo), int(hi) + 1))
    for a in args:
        if a.startswith("anchors="):  # e.g. anchors=2.0:1.0,1.0:0.3 (C:weight pairs)
            ANCHORS = tuple(tuple(float(x) for x in pair.split(":")) for pair in a[8:].split(","))
    assert all(s >= 100 for s in seeds), "development seeds only (the reported ones are 0-9)"
    bench = Bench()
    if stage == "strategies":
        save(stage_strategies(bench, sizes, names, seeds))
    elif stage == "anchor":
        save(stage_anchor(bench, sizes, names, seeds))
    elif stage == "fixed":
        save(stage_fixed(bench, sizes, names, seeds))
    elif stage == "learners":
        save(stage_learners(bench, sizes, names, seeds))
