"""Insights for 100,000 rows: how long after scoring until they are ready (target: 10 s).

Rows: 100,000 distinct tweets from ../shared/data/unlabeled/tweets.csv (the first 100,000 distinct
texts), with synthetic columns: `created` (day-first `24-02-2015 11.35` strings spread over 60 days,
so the day-first evidence rule runs on every row) and `brand` (30 brands, Zipf-like sizes). Warm-up:
the next 2,000 distinct tweets (a different set) go through the same steps first, like an app that
has served one file. Then, in the same process and on the unseen 100,000:

- baseline: `batch.score_table` with the fast model (what the app does when "Score" is clicked);
- insights: `build_insights` (dates, over time, spikes, groups + chi-square, exact per-term
  contributions for every row, drivers overall and per group, distinctive terms, examples);
- report: `render_html` + `summary_json` (the "Download report" button; the first call in a process
  also bundles the Vega JavaScript, measured separately).

Peak memory is the process's maximum resident set size.

Usage: python benchmarks/insights_100k.py [--rows 100000]  -> benchmarks/insights_100k.md
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sentimentkit.config import REPO_ROOT
from sentimentkit.insights.build import build_insights
from sentimentkit.insights.render import render_html, summary_json, vega_bundle
from sentimentkit.serving import batch
from sentimentkit.serving.predictor import Predictor

TWEETS = REPO_ROOT.parent / "shared" / "data" / "unlabeled" / "tweets.csv"
WARMUP_ROWS = 2_000


def synthetic_rows(texts: list[str], seed: int) -> pd.DataFrame:
    """The texts with a day-first date/time column and a brand column (all strings, like a CSV)."""
    rng = np.random.default_rng(seed)
    minutes = rng.integers(0, 60 * 24 * 60, len(texts))
    created = pd.Timestamp("2015-02-01") + pd.to_timedelta(np.sort(minutes), unit="m")
    brands = [f"brand {i:02d}" for i in range(30)]
    weights = 1 / np.arange(1, 31)
    return pd.DataFrame({
        "text": texts, "brand": rng.choice(brands, len(texts), p=weights / weights.sum()),
        "created": created.strftime("%d-%m-%Y %H.%M"),
    })  # fmt: skip


def timed(fn):
    """(result, wall seconds, CPU seconds of this process): CPU time is what the work costs when the
    shared machine is busy with other work (wall time then includes waiting for a core)."""
    start, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - start, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".md"))
    args = parser.parse_args()
    distinct = pd.read_csv(TWEETS, dtype=str, keep_default_na=False)["text"].drop_duplicates().tolist()
    rows = synthetic_rows(distinct[: args.rows], seed=1)
    warmup = synthetic_rows(distinct[args.rows : args.rows + WARMUP_ROWS], seed=2)
    predictor = Predictor.load(REPO_ROOT / "model.pkl")

    _, bundle_s, _ = timed(vega_bundle)
    scored = batch.score_table(predictor, warmup, "text")
    render_html(build_insights(scored, "text", predictor))

    load = os.getloadavg()[0]
    scored, score_s, score_cpu = timed(lambda: batch.score_table(predictor, rows, "text"))
    ins, insights_s, insights_cpu = timed(lambda: build_insights(scored, "text", predictor))
    (page, text), report_s, report_cpu = timed(lambda: (render_html(ins), summary_json(ins)))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    lines = [
        "# Insights for 100,000 rows",
        "",
        f"`python benchmarks/insights_100k.py` on {platform.processor() or platform.machine()}, "
        f"{len(rows):,} distinct unseen tweets, fast model, one process, on the 2-core machine shared with "
        f"other work (1-minute load average {load:.1f} at the start).",
        "",
        "| step | wall seconds | CPU seconds | rows/s (wall) |",
        "|---|---:|---:|---:|",
        f"| baseline: scoring (`batch.score_table`) | {score_s:.2f} | {score_cpu:.2f} | {len(rows) / score_s:,.0f} |",
        f"| **insights after scoring** (`build_insights`) | **{insights_s:.2f}** | **{insights_cpu:.2f}** | "
        f"{len(rows) / insights_s:,.0f} |",
        f"| report: HTML ({len(page) / 1e6:.1f} MB) + JSON ({len(text) / 1e3:.0f} kB) | {report_s:.2f} | "
        f"{report_cpu:.2f} | |",
        f"| once per process: bundling the Vega JavaScript | {bundle_s:.2f} | | |",
        "",
        f"Target: insights ready at most 10 s after scoring: **{'met' if insights_s <= 10 else 'NOT met'}** "
        f"({insights_s:.1f} s wall, {insights_cpu:.1f} s CPU; insights cost {insights_cpu / score_cpu:.2f}x the "
        f"CPU time of scoring). Peak memory of the process: {peak_mb:,.0f} MB.",
        "",
        f"What was found: over time per {ins.timeline.granularity} ({len(ins.timeline.table)} periods, "
        f"{len(ins.timeline.spikes)} spikes), {len(ins.groups.table)} groups ({ins.groups.test_in_words()}), "
        f"{len(ins.terms.terms):,} distinct terms; warnings: {len(ins.warnings)}.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
