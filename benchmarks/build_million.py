"""Build the high-volume benchmark corpus: N distinct tweet-like texts (default 1,000,000).

Each text joins the first half (by words) of one random tweet with the second half of another, drawn
with a fixed seed from `../shared/data/unlabeled/tweets.csv` and the SemEval train split. Every text
is distinct (asserted), so no per-text cache can flatter a throughput figure; the words are real
tweet words, so per-token work is realistic. The file is written to `benchmarks/_work/` (git-ignored);
only this script is committed.

Usage: python benchmarks/build_million.py [--rows 1000000] [--seed 13] [--out benchmarks/_work/million.csv]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
SOURCES = (SHARED / "unlabeled" / "tweets.csv", SHARED / "semeval2017" / "train.csv")
DEFAULT_OUT = HERE / "_work" / "million.csv"


def load_halves(paths: tuple[Path, ...] = SOURCES) -> tuple[np.ndarray, np.ndarray]:
    """First and second halves (by words) of every tweet with at least two words."""
    texts = pd.concat([pd.read_csv(p, usecols=["text"], dtype=str)["text"] for p in paths]).dropna()
    words = texts.str.split()
    words = words[words.str.len() >= 2]
    middle = words.str.len() // 2
    heads = [" ".join(w[:m]) for w, m in zip(words, middle)]
    tails = [" ".join(w[m:]) for w, m in zip(words, middle)]
    return np.array(heads, dtype=object), np.array(tails, dtype=object)


def build(rows: int, seed: int) -> list[str]:
    """`rows` distinct texts, each head(a) + tail(b) for random tweets a, b (fixed seed)."""
    heads, tails = load_halves()
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < rows:
        need = rows - len(out)
        a = rng.integers(0, len(heads), size=need + need // 10 + 10)
        b = rng.integers(0, len(tails), size=len(a))
        for i, j in zip(a, b):
            text = f"{heads[i]} {tails[j]}"
            if text not in seen:
                seen.add(text)
                out.append(text)
                if len(out) == rows:
                    break
    assert len(set(out)) == rows, "texts are not distinct"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    start = time.perf_counter()
    texts = build(args.rows, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"id": np.arange(len(texts)), "text": texts}).to_csv(args.out, index=False)
    size_mb = args.out.stat().st_size / 1e6
    print(
        f"wrote {args.out}: {len(texts):,} distinct texts, {size_mb:.0f} MB, {time.perf_counter() - start:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
