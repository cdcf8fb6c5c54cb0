"""`mixed` (sentimentkit.serving.parts): precision and recall on tests/data/mixed.csv, and whether the
parts should also decide the three-way label. One run.

1. tests/data/mixed.csv (181 short texts, labelled before any tuning: 100 real tweets read and
   labelled by hand, 81 written) scored with the default model; `mixed` with the threshold fixed in
   parts.py beforehand (MIXED_CONFIDENCE, the card's "uncertain" threshold). No tuning on it.
2. Three-way label, whole text vs the parts' length-weighted mean (texts of one part are the same
   either way), decided on the temporal holdout (the model refitted on the older 80% of train with
   the card's hyperparameters, scored on the newest 20%) and on clean validation (validation minus
   re-posts of train, shipped model). Parts decide the label only if they win on both; test is
   then scored once, with the decided rule.

3. `--cost`: what `mixed` costs per unseen tweet (its parts are scored too) beside the model alone;
   printed, not written.

Usage: python benchmarks/mixed.py -> benchmarks/mixed.md; python benchmarks/mixed.py --cost
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sentimentkit.config import REPO_ROOT
from sentimentkit.serving import parts
from sentimentkit.serving.predictor import Predictor
from sentimentkit.training.evaluate import metrics
from sentimentkit.training.train import clean_validation, fit_pipeline, temporal_split

SHARED = REPO_ROOT.parent / "shared" / "data" / "semeval2017"


def two_ways(predictor: Predictor, frame: pd.DataFrame) -> dict[str, dict]:
    """AvgRec / macro-F1 / accuracy of the whole-text label and of the parts' weighted mean."""
    texts = frame["text"].tolist()
    whole = predictor.predict_proba(texts)
    scored = parts.score_parts(predictor.predict_proba, texts, whole)
    by_parts = np.stack([parts.length_weighted(s, p) for s, p in zip(scored.spans, scored.probas)])
    labels = np.asarray(predictor.labels)
    multi = np.array([len(s) > 1 for s in scored.spans])
    out = {}
    for name, proba in (("whole text", whole), ("parts, length-weighted", by_parts)):
        out[name] = metrics(frame["label"], labels[proba.argmax(axis=1)])
        out[name]["multi"] = metrics(frame["label"][multi], labels[proba[multi].argmax(axis=1)])
    out["multi_share"] = float(multi.mean())
    return out


def row(name: str, result: dict) -> str:
    r, m = result, result["multi"]
    return (
        f"| {name} | {r['avg_recall']:.4f} | {r['f1_pn']:.4f} | {r['accuracy']:.4f} "
        f"| {m['avg_recall']:.4f} | {m['accuracy']:.4f} |"
    )


def cost(predictor: Predictor, n: int = 10_000) -> str:
    """Microseconds per unseen tweet: the model alone (texts A), its parts scored for `mixed` (the
    same texts A: their whole-text chunks are cached, the parts are new strings), `score` records
    with language and mixed (other texts B), calls of 1,000 taking turns."""
    tweets = pd.read_csv(REPO_ROOT.parent / "shared" / "data" / "unlabeled" / "tweets.csv", dtype=str,
                         keep_default_na=False)["text"].tolist()  # fmt: skip
    predictor.score(tweets[-n:])  # warm-up
    a, b = tweets[:n], tweets[n : 2 * n]
    spent = [0.0, 0.0, 0.0]
    for start in range(0, n, 1000):
        for k, (fn, texts) in enumerate(
            ((predictor.predict_proba, a), (lambda t: parts.score_parts(predictor.predict_proba, t), a),
             (predictor.score, b))
        ):  # fmt: skip
            t0 = time.perf_counter()
            fn(texts[start : start + 1000])
            spent[k] += time.perf_counter() - t0
    us = [s / n * 1e6 for s in spent]
    return (
        f"model alone {us[0]:.1f} us/text; scoring the parts of the multi-part texts (for `mixed`) {us[1]:.1f} "
        f"({us[1] / us[0]:.0%} of the model); `score` records (model, language guard, mixed) {us[2]:.1f}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".md"))
    parser.add_argument("--cost", action="store_true", help="only print what `mixed` costs per text")
    args = parser.parse_args()
    predictor = Predictor.load()
    if args.cost:
        print(cost(predictor))
        return 0
    data = pd.read_csv(REPO_ROOT / "tests" / "data" / "mixed.csv", dtype={"text": str})
    texts = data["text"].tolist()
    scored = parts.score_parts(predictor.predict_proba, texts, predictor.predict_proba(texts))
    predicted = np.array(scored.mixed(predictor.labels))
    truth = data["mixed"].to_numpy().astype(bool)
    tp = int((predicted & truth).sum())

    def pr(mask: np.ndarray) -> str:
        t, p = truth[mask], predicted[mask]
        hit = int((t & p).sum())
        prec = hit / p.sum() if p.sum() else float("nan")
        rec = hit / t.sum() if t.sum() else float("nan")
        return f"| {mask.sum()} | {t.sum()} | {p.sum()} | {prec:.2f} | {rec:.2f} |"

    real = data["source"].str.startswith("tweet").to_numpy()
    mistakes = [
        f"- {'missed' if t else 'false alarm'}: `{text}` -> parts "
        + " / ".join(f"{r['text']!r} {r['sentiment']} {max(r['scores'].values()):.2f}" for r in recs)
        for text, t, p, recs in zip(
            data["text"], truth, predicted, scored.records(data["text"], predictor.labels)
        )
        if t != p
    ]

    splits = {s: pd.read_csv(SHARED / f"{s}.csv") for s in ("train", "validation", "test")}
    began = time.perf_counter()
    older, newest = temporal_split(splits["train"])
    holdout_model = Predictor(fit_pipeline(older, dict(predictor.card["hyperparameters"])), predictor.card)
    fit_s = time.perf_counter() - began
    holdout = two_ways(holdout_model, newest)
    clean = two_ways(predictor, clean_validation(splits))
    wins = all(
        r["parts, length-weighted"]["avg_recall"] > r["whole text"]["avg_recall"] for r in (holdout, clean)
    )
    decided = "parts, length-weighted" if wins else "whole text"
    test = two_ways(predictor, splits["test"])[decided]

    head = "| rule | AvgRec | F1^PN | accuracy | AvgRec, multi-part texts only | accuracy, multi-part only |"
    report = "\n".join([
        "# `mixed`: precision and recall; should parts decide the three-way label?",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; command `python benchmarks/mixed.py`; "
        f"load average {os.getloadavg()[0]:.2f}. Default model `{predictor.version}`.",
        "",
        "## `mixed` on tests/data/mixed.csv",
        "",
        f"A text is mixed when one part is positive and another negative, each with probability >= "
        f"{parts.MIXED_CONFIDENCE} (fixed before measuring; the model card's uncertain threshold). "
        "The set was written and labelled before this was run, and nothing was tuned on it.",
        "",
        "| texts | n | truly mixed | called mixed | precision | recall |",
        "|---|---:|---:|---:|---:|---:|",
        "| all " + pr(np.ones(len(data), dtype=bool)),
        "| real tweets " + pr(real),
        "| written " + pr(~real),
        "",
        f"({tp} true positives.) Mistakes, with each text's parts:",
        "",
        *mistakes,
        "",
        "## Three-way label: whole text or the parts' length-weighted mean?",
        "",
        f"Temporal holdout: the model refitted on the older {len(older):,} train tweets (card hyperparameters, "
        f"{fit_s:.0f} s), scored on the newest {len(newest):,}; {holdout['multi_share']:.1%} of them have more "
        "than one part.",
        "",
        head,
        "|---|---:|---:|---:|---:|---:|",
        row("whole text", holdout["whole text"]),
        row("parts, length-weighted", holdout["parts, length-weighted"]),
        "",
        f"Clean validation (shipped model): {clean['multi_share']:.1%} have more than one part.",
        "",
        head,
        "|---|---:|---:|---:|---:|---:|",
        row("whole text", clean["whole text"]),
        row("parts, length-weighted", clean["parts, length-weighted"]),
        "",
        f"**Decision** (parts only if they win AvgRec on both): **{decided}** decides the three-way label "
        f"of texts up to {parts.LONG_TEXT_CHARS} characters. Longer texts are always scored by parts "
        "(length-weighted mean): they are what the parts are for, and the tweet sets hold none.",
        "",
        "Test (SemEval-2017, scored once, after the decision, with the decided rule):",
        "",
        head,
        "|---|---:|---:|---:|---:|---:|",
        row(decided, test),
        "",
    ])  # fmt: skip
    args.out.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
