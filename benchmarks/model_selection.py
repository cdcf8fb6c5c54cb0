"""Model selection record for the default TF-IDF model (issue: beat SemEval-2017 with a classical model).

For every candidate it records three scores:
- clean-validation AvgRec: the validation tweets that have no near-duplicate in train (18.5% of
  validation are re-posts of training tweets once URLs/mentions are dropped; see
  `sentimentkit.train.clean_validation`). This is the selection criterion;
- full-validation AvgRec (all 2,000 tweets), for reference;
- test AvgRec: recorded, never used to choose.

Features are computed once per feature configuration and reused across C values (each fit from
scratch). The first configuration gets the full C grid; the others the two best C values of it.
Usage: SENTIMENTKIT_DATA_DIR=../shared/data/semeval2017 python benchmarks/model_selection.py [--quick]
Writes benchmarks/model_selection.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from sklearn.linear_model import LogisticRegression

from sentimentkit.config import SEED
from sentimentkit.evaluate import metrics
from sentimentkit.features import TweetVectorizer
from sentimentkit.train import clean_validation, load_splits

OUT = Path(__file__).with_suffix("")
FEATURE_CONFIGS = {
    "word1-2 char2-5 vader": {},
    "word1-2 char2-5 vader+afinn": {"lexicons": ("vader", "afinn")},
    "word1-2 char2-5 vader+afinn, lex x3": {"lexicons": ("vader", "afinn"), "lexicon_weight": 3.0},
    "word1-2 char3-5 vader+afinn": {"lexicons": ("vader", "afinn"), "char_ngram_range": (3, 5)},
    "word1-3 char2-5 vader+afinn": {"lexicons": ("vader", "afinn"), "word_max_n": 3},
    "word1-2 char2-5 vader+afinn, char x0.5": {"lexicons": ("vader", "afinn"), "char_weight": 0.5},
    "word1-2 char2-5 no lexicon": {"lexicons": ()},
}
C_VALUES = [0.25, 0.5, 1.0, 2.0]


def avg_recall(clf: LogisticRegression, X, y) -> float:
    return metrics(y, clf.predict(X))["avg_recall"]


def run_config(name: str, params: dict, splits: dict, c_values: list[float], log) -> list[dict]:
    train, val, test = splits["train"], splits["validation"], splits["test"]
    clean = clean_validation(splits)
    start = time.perf_counter()
    vec = TweetVectorizer(**params)
    Xtr = vec.fit_transform(train["text"].tolist())
    Xva, Xcl, Xte = (vec.transform(f["text"].tolist()) for f in (val, clean, test))
    log(f"{name}: features in {time.perf_counter() - start:.0f}s, {Xtr.shape[1]} columns")
    rows = []
    for C in sorted(c_values):
        t0 = time.perf_counter()
        kw = {"C": C, "class_weight": "balanced", "max_iter": 3000, "random_state": SEED}
        clf = LogisticRegression(**kw).fit(Xtr, train["label"])
        row = {
            "features": name, "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
            "C": C, "fit_seconds": round(time.perf_counter() - t0, 1),
            "validation_clean": avg_recall(clf, Xcl, clean["label"]),
            "validation": avg_recall(clf, Xva, val["label"]),
            "test": avg_recall(clf, Xte, test["label"]),
        }  # fmt: skip
        log(json.dumps(row))
        rows.append(row)
    return rows


def write_table(rows: list[dict]) -> None:
    best = max(rows, key=lambda r: r["validation_clean"])
    lines = [
        "# Model selection: TF-IDF + LogisticRegression candidates",
        "",
        "AvgRec = macro recall. Chosen by **clean-validation** AvgRec (bold row): the 1,630 validation",
        "tweets with no near-duplicate in train. Full validation (2,000) shown for reference; test is",
        "recorded, never used to choose. All with `class_weight='balanced'`, lbfgs, seed 13.",
        "Command: `SENTIMENTKIT_DATA_DIR=../shared/data/semeval2017 python benchmarks/model_selection.py`",
        "",
        "| features | C | clean-validation AvgRec | validation AvgRec | test AvgRec | fit s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r["features"], f"{r['C']:g}", f"{r['validation_clean']:.4f}", f"{r['validation']:.4f}",
                 f"{r['test']:.4f}", f"{r['fit_seconds']:.0f}"]  # fmt: skip
        if r is best:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n")
    OUT.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--configs", nargs="*", default=list(FEATURE_CONFIGS))
    parser.add_argument("--C", nargs="*", type=float, default=C_VALUES)
    parser.add_argument("--append", action="store_true", help="add to the rows already in the .json")
    args = parser.parse_args()
    splits = load_splits()
    rows = json.loads(OUT.with_suffix(".json").read_text()) if args.append else []
    for name in args.configs:
        rows += run_config(
            name, FEATURE_CONFIGS[name], splits, args.C, lambda m: print(m, file=sys.stderr, flush=True)
        )
        write_table(rows)
    best = max(rows, key=lambda r: r["validation_clean"])
    print(f"chosen on clean validation: {best['features']} C={best['C']} (test {best['test']:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
