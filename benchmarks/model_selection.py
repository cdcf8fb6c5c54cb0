"""Model selection record for the default TF-IDF model (issue: beat SemEval-2017 with a classical model).

For every candidate it records three scores:
- validation AvgRec (TweetEval val, 2,000 tweets): the selection criterion;
- blocked-holdout AvgRec: trained on the first 80% of train.csv, scored on the last 20% (a
  contiguous block, so topic clusters are not shared) — reported to show how much validation,
  which shares topics and period with train, rewards memorisation;
- test AvgRec: recorded, never used to choose.

Features are computed once per feature configuration and reused across C values.
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
from sentimentkit.train import load_splits

OUT = Path(__file__).with_suffix("")
FEATURE_CONFIGS = {
    "word1-2 char2-5 lex": {},
    "word1-2 char2-5 lex x3": {"lexicon_weight": 3.0},
    "word1-3 char2-5 lex": {"word_max_n": 3},
    "word1-2 char1-4 lex": {"char_ngram_range": (1, 4)},
    "word1-2 char2-5 no-lex": {"lexicons": ()},
    "word1-2 char2-5 vader+afinn": {"lexicons": ("vader", "afinn")},
    "word1-2 char2-5 vader+afinn x3": {"lexicons": ("vader", "afinn"), "lexicon_weight": 3.0},
    "word1-2 char2-5 lex, char x0.5": {"char_weight": 0.5},
}
C_VALUES = [0.25, 0.5, 1.0, 2.0, 4.0]


def avg_recall(clf: LogisticRegression, X, y) -> float:
    return metrics(y, clf.predict(X))["avg_recall"]


def run_config(name: str, params: dict, splits: dict, c_values: list[float], log) -> list[dict]:
    train, val, test = splits["train"], splits["validation"], splits["test"]
    cut = int(len(train) * 0.8)
    head, tail = train.iloc[:cut], train.iloc[cut:]
    start = time.perf_counter()
    vec = TweetVectorizer(**params)
    Xtr = vec.fit_transform(train["text"].tolist())
    Xva, Xte = vec.transform(val["text"].tolist()), vec.transform(test["text"].tolist())
    hvec = TweetVectorizer(**params)
    Xh = hvec.fit_transform(head["text"].tolist())
    Xt = hvec.transform(tail["text"].tolist())
    log(f"{name}: features in {time.perf_counter() - start:.0f}s, {Xtr.shape[1]} columns")
    rows = []
    for C in c_values:
        t0 = time.perf_counter()
        kw = {"C": C, "class_weight": "balanced", "max_iter": 3000, "random_state": SEED}
        clf = LogisticRegression(**kw).fit(Xtr, train["label"])
        seconds = time.perf_counter() - t0
        hold = LogisticRegression(**kw).fit(Xh, head["label"])
        row = {
            "features": name, "params": params, "C": C, "fit_seconds": round(seconds, 1),
            "validation": avg_recall(clf, Xva, val["label"]),
            "holdout": avg_recall(hold, Xt, tail["label"]),
            "test": avg_recall(clf, Xte, test["label"]),
        }  # fmt: skip
        log(json.dumps(row))
        rows.append(row)
    return rows


def write_table(rows: list[dict]) -> None:
    best = max(rows, key=lambda r: r["validation"])
    lines = [
        "# Model selection: TF-IDF + LogisticRegression candidates",
        "",
        "AvgRec = macro recall. Chosen by **validation** AvgRec (bold row); blocked-holdout = trained on",
        "the first 80% of train.csv, scored on its last 20%; test is recorded, never used to choose.",
        "All with `class_weight='balanced'`, lbfgs, seed 13. Command: "
        "`SENTIMENTKIT_DATA_DIR=../shared/data/semeval2017 python benchmarks/model_selection.py`",
        "",
        "| features | C | validation AvgRec | blocked-holdout AvgRec | test AvgRec | fit s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r["features"], f"{r['C']:g}", f"{r['validation']:.4f}", f"{r['holdout']:.4f}",
                 f"{r['test']:.4f}", f"{r['fit_seconds']:.0f}"]  # fmt: skip
        line = "| " + " | ".join(cells) + " |"
        lines.append(line.replace("| ", "| **", 1).replace(" |", "** |", 1) if r is best else line)
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
    best = max(rows, key=lambda r: r["validation"])
    print(f"chosen on validation: {best['features']} C={best['C']} (test {best['test']:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
