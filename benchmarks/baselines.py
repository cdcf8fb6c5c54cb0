"""The committed model beside the baselines, all evaluated in one run on validation and test.

Rows: majority class, VADER (compound +-0.05), the unigram TF-IDF + LogisticRegression prototype
(trained here on train), and the committed model.pkl. Usage:
    python benchmarks/baselines.py   -> benchmarks/baselines.md
"""

from __future__ import annotations

import time
from pathlib import Path

from sentimentkit.config import REPO_ROOT
from sentimentkit.models.baselines import MajorityBaseline, VaderBaseline, unigram_prototype
from sentimentkit.serving.predictor import Predictor
from sentimentkit.training.evaluate import metrics
from sentimentkit.training.train import clean_validation, load_splits

DATA = REPO_ROOT.parent / "shared" / "data" / "semeval2017"
OUT = Path(__file__).with_suffix(".md")


def main() -> int:
    splits = load_splits(DATA)
    train = splits["train"]
    prototype = unigram_prototype().fit(train["text"], train["label"])
    predictor = Predictor.load(REPO_ROOT / "model.pkl")
    models = {
        "majority class": MajorityBaseline().fit(train["text"], train["label"]).predict,
        "VADER (compound ±0.05)": VaderBaseline().predict,
        "unigram TF-IDF + LR (the original prototype)": lambda t: prototype.predict(t),
        f"**sentimentkit default model** (`model.pkl`, {predictor.version})": predictor.predict,
    }
    evaluation = {"clean validation": clean_validation(splits), "test": splits["test"]}
    lines = [
        "# The default model beside its baselines",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} in one run by `python benchmarks/baselines.py`. Test = SemEval-2017",
        "Task 4A (12,284 tweets); clean validation = the 1,630 TweetEval validation tweets that are not",
        "re-posts of training tweets. AvgRec (macro recall) is the official metric.",
        "",
        "| model | test AvgRec | test F1^PN | test macro-F1 | test accuracy | clean-validation AvgRec |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, predict in models.items():
        m = {k: metrics(f["label"], predict(f["text"].tolist())) for k, f in evaluation.items()}
        t = m["test"]
        lines.append(
            f"| {name} | {t['avg_recall']:.4f} | {t['f1_pn']:.4f} | {t['macro_f1']:.4f} | {t['accuracy']:.4f} "
            f"| {m['clean validation']['avg_recall']:.4f} |"
        )
    lines += [
        "",
        "Published on the same test set (AvgRec): TweetEval SVM 0.629, FastText 0.629, BLSTM 0.583,",
        "best feature-based SemEval-2017 entries about 0.645-0.649, SemEval-2017 winners 0.681,",
        "RoBERTa-base 0.713, BERTweet 0.734.",
    ]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
