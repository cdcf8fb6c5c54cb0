"""Prediction throughput of the default model vs VADER, in one process, side by side.

Raw strings in, probabilities out (VADER: its polarity scores). Texts: the 12,284 SemEval-2017 test
tweets. Reported for the default model:
- "cold": the first pass in a fresh process (empty token caches);
- "warm": after the caches have seen the training tweets once (a server after some traffic),
  measured on the test tweets it has not seen whole.
Also: model load time (including the SHA-256 check) and model.pkl size; the plain sklearn
`pipeline.predict_proba` path as a reference.

Usage: python benchmarks/throughput.py [--model model.pkl] [--repeats 3]  -> benchmarks/throughput.md
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import pandas as pd

from sentimentkit.config import REPO_ROOT
from sentimentkit.models.baselines import VaderBaseline
from sentimentkit.serving.predictor import Predictor

DATA = REPO_ROOT.parent / "shared" / "data" / "semeval2017"


def rate(fn, texts: list[str], repeats: int) -> float:
    """Median texts/second over `repeats` passes of fn(texts)."""
    speeds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(texts)
        speeds.append(len(texts) / (time.perf_counter() - start))
    return statistics.median(speeds)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "model.pkl")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".md"))
    args = parser.parse_args()
    test = pd.read_csv(DATA / "test.csv")["text"].tolist()
    train = pd.read_csv(DATA / "train.csv")["text"].tolist()

    start = time.perf_counter()
    predictor = Predictor.load(args.model)
    load_s = time.perf_counter() - start
    cold = rate(predictor.predict_proba, test, 1)
    predictor.predict_proba(train)
    warm = rate(predictor.predict_proba, test, args.repeats)
    single = rate(lambda ts: [predictor.predict_proba(t) for t in ts], test[:3000], args.repeats)
    sklearn_path = rate(predictor.pipeline.predict_proba, test, args.repeats)
    vader = VaderBaseline()
    vader_rate = rate(lambda ts: [vader.analyzer.polarity_scores(t) for t in ts], test, args.repeats)

    size_mb = args.model.stat().st_size / 1e6
    rows = [
        ("sentimentkit default model, batch, warm caches", warm),
        ("sentimentkit default model, batch, cold process (first pass)", cold),
        ("sentimentkit default model, one text per call, warm", single),
        ("same model via sklearn `pipeline.predict_proba` (reference)", sklearn_path),
        ("VADER `polarity_scores` (baseline)", vader_rate),
    ]
    lines = [
        "# Prediction throughput (one process, raw strings in, probabilities out)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, 2-core machine (`nproc` = 2); median of {args.repeats} passes "
        f"over the {len(test):,} SemEval-2017 test tweets. Command: `python benchmarks/throughput.py`.",
        "",
        "| what | tweets / second | vs VADER |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {r:,.0f} | {r / vader_rate:.1f}x |" for name, r in rows]
    lines += [
        "",
        f"- model load time (read + SHA-256 check + unpickle): {load_s * 1000:.0f} ms",
        f"- `model.pkl` size: {size_mb:.1f} MB",
        "",
        "Warm = after the per-token caches have seen the training tweets once; the test tweets themselves",
        "are new. Other processes may have been running on the machine; rerun to compare like with like.",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
