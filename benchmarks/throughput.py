"""Prediction speed of the default model vs VADER on texts the process has never seen, in one run.

Both are warmed up on a different, named set (the SemEval-2017 train tweets: the model's per-chunk
and per-token caches fill with them), then each measured text is scored exactly once:

- the 12,284 SemEval-2017 test tweets;
- a slice of distinct tweets from `../shared/data/unlabeled/tweets.csv` that are neither in train nor
  in test (checked here), standing in for new traffic;
- single-text latency (one call per text) on another, disjoint slice of the unlabeled tweets.

Model and VADER take turns batch by batch (and text by text for latency), so both see the same texts
under the same machine load; the load average is recorded. For the language guard, the default output
(with `language` and `mixed`) and the output with `SENTIMENTKIT_MIXED=off`, each slice is dealt into
four shares, one per copy of the model (they share the tokenizer's chunk cache, so no copy may read a
text another has read), VADER scoring every share beside them; the guard's own code is also timed
inside its calls (the steadier figure of its cost).
Raw strings in, probabilities out (VADER: its `polarity_scores`). A last row shows the caches at work (the test tweets scored a second
time); it is not a figure for new text.

Usage: python benchmarks/throughput.py [--unlabeled 20000] [--latency 3000] -> benchmarks/throughput.md
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sentimentkit.config import REPO_ROOT
from sentimentkit.models.baselines import VaderBaseline
from sentimentkit.serving import predictor as predictor_module
from sentimentkit.serving.predictor import Predictor
from sentimentkit.text import language

SHARED = REPO_ROOT.parent / "shared" / "data"
Score = Callable[[list[str]], object]


def unseen_slices(train: list[str], test: list[str], sizes: tuple[int, int]) -> tuple[list[str], list[str]]:
    """Two disjoint slices of distinct unlabeled tweets that appear in neither train nor test."""
    seen = set(train) | set(test)
    fresh: list[str] = []
    for text in pd.read_csv(SHARED / "unlabeled" / "tweets.csv", dtype=str, keep_default_na=False)["text"]:
        if text.strip() and text not in seen:
            seen.add(text)  # distinct within the slices too
            fresh.append(text)
            if len(fresh) == sum(sizes):
                break
    return fresh[: sizes[0]], fresh[sizes[0] :]


GUARD_CPU = [0.0]  # CPU seconds spent in the language guard's own code (the vocabulary test, the detector)


def _timed(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, adding its CPU time to GUARD_CPU (the benchmark's instrument of the guard's own code)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            GUARD_CPU[0] += time.process_time() - began

    return wrapper


def side_by_side(model: Score, vader: Score, texts: list[str], batch: int) -> tuple[float, float]:
    """Texts/second of one pass of each over `texts`, taking turns batch by batch."""
    spent = [0.0, 0.0]
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        for k, fn in enumerate((model, vader)):
            began = time.perf_counter()
            fn(chunk)
            spent[k] += time.perf_counter() - began
    return len(texts) / spent[0], len(texts) / spent[1]


def variants_beside_vader(
    variants: list[Score], vader: Score, texts: list[str], batch: int
) -> dict[str, Any]:
    """Each variant (a copy of the model) on its own share of `texts` (texts[k::len(variants)]), VADER on
    every share, batch by batch, the variants' order rotating: per variant its texts/s and VADER's
    texts/s on the same share (the copies share the tokenizer's chunk cache, so no copy may read a
    text another copy has read; VADER shares nothing with them). Also the guard's own CPU share in the
    variant that runs it (GUARD_CPU, measured around the variant at index 1)."""
    shares = [texts[k :: len(variants)] for k in range(len(variants))]
    spent = [[0.0, 0.0] for _ in variants]
    guard_cpu, guard_total = 0.0, 0.0
    for n in range(max(-(-len(t) // batch) for t in shares)):
        order = list(range(len(variants)))
        order = order[n % len(order) :] + order[: n % len(order)]
        for k in order:
            chunk = shares[k][n * batch : (n + 1) * batch]
            if not chunk:
                continue
            pair = ((0, variants[k]), (1, vader)) if n % 2 == 0 else ((1, vader), (0, variants[k]))
            for slot, fn in pair:
                before_guard, began_cpu, began = GUARD_CPU[0], time.process_time(), time.perf_counter()
                fn(chunk)
                spent[k][slot] += time.perf_counter() - began
                if k == 1 and slot == 0:
                    guard_cpu += GUARD_CPU[0] - before_guard
                    guard_total += time.process_time() - began_cpu
    speeds = [(len(t) / m, len(t) / v) for t, (m, v) in zip(shares, spent)]
    return {"speeds": speeds, "guard_cpu_share": guard_cpu / (guard_total - guard_cpu)}


def latencies(model: Callable[[str], object], vader: Callable[[str], object], texts: list[str]) -> np.ndarray:
    """Milliseconds per single-text call, shape (texts, 2): model, VADER, alternating text by text."""
    out = np.zeros((len(texts), 2))
    for i, text in enumerate(texts):
        for k, fn in enumerate((model, vader)):
            began = time.perf_counter()
            fn(text)
            out[i, k] = (time.perf_counter() - began) * 1000
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "model.pkl")
    parser.add_argument(
        "--unlabeled", type=int, default=20_000, help="unseen unlabeled tweets per batch pass"
    )
    parser.add_argument(
        "--slices", type=int, default=3, help="batch passes, each over other unseen unlabeled tweets"
    )
    parser.add_argument("--latency", type=int, default=3_000, help="unseen unlabeled tweets, one call each")
    parser.add_argument("--batch", type=int, default=1_000, help="texts per predict_proba call")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".md"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    train = pd.read_csv(SHARED / "semeval2017" / "train.csv")["text"].tolist()
    test = pd.read_csv(SHARED / "semeval2017" / "test.csv")["text"].tolist()
    fresh, single = unseen_slices(train, test, (args.unlabeled * args.slices, args.latency))

    began = time.perf_counter()
    predictor = Predictor.load(args.model)
    load_ms = (time.perf_counter() - began) * 1000
    began = time.perf_counter()
    vader = VaderBaseline().analyzer
    vader_load_ms = (time.perf_counter() - began) * 1000
    model_batch = predictor.predict_proba
    vader_batch = lambda texts: [vader.polarity_scores(t) for t in texts]  # noqa: E731
    side_by_side(model_batch, vader_batch, train, args.batch)  # warm-up on train only
    guarded = Predictor.load(args.model)  # its own token caches, warmed up the same way
    language.VocabularyTest.suspect = _timed(language.VocabularyTest.suspect)  # the guard's own code
    predictor_module.identify = _timed(predictor_module.identify)
    guarded.proba_language(train)  # (and the detector's one-off load)
    default = Predictor.load(args.model)  # the records of every front end, `mixed` included
    default.score(train)
    bulk = Predictor.load(args.model)
    bulk.find_mixed = False  # SENTIMENTKIT_MIXED=off
    bulk.score(train)
    variants = [model_batch, guarded.proba_language, default.score, bulk.score]

    rows = [
        (
            f"SemEval-2017 test tweets ({len(test):,}), unseen",
            variants_beside_vader(variants, vader_batch, test, args.batch),
        )
    ]
    for k in range(args.slices):  # other unseen tweets each time: how much the ratio moves run to run
        part = fresh[k * args.unlabeled : (k + 1) * args.unlabeled]
        name = f"unlabeled in-domain tweets, slice {k + 1} of {args.slices} ({len(part):,}), unseen"
        rows.append((name, variants_beside_vader(variants, vader_batch, part, args.batch)))
    lat = latencies(predictor.predict_proba, vader.polarity_scores, single)
    again = side_by_side(model_batch, vader_batch, test, args.batch)  # caches now hold these texts
    report = render(args, rows, again, lat, load_ms, vader_load_ms, load_before, os.getloadavg())
    args.out.write_text(report)
    print(report)
    return 0


def render(args: argparse.Namespace, rows: list, again: tuple[float, float], lat: np.ndarray, load_ms: float,
           vader_load_ms: float, load_before: tuple, load_after: tuple) -> str:  # fmt: skip
    """The markdown report."""
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    p50, p99 = np.percentile(lat, 50, axis=0), np.percentile(lat, 99, axis=0)
    table = [
        "| texts (one pass each) | model texts/s | VADER texts/s | model / VADER | model + language guard / VADER "
        "| guard's cost, via VADER | guard's cost, its own code | default output (language + mixed) / VADER "
        "| output with SENTIMENTKIT_MIXED=off / VADER |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    figures = []
    for name, r in rows:
        (m, v), (g, gv), (d, dv), (b, bv) = r["speeds"]
        via = (m / v) / (g / gv) - 1
        figures.append((name, m / v, via, r["guard_cpu_share"], d / dv, b / bv))
        table.append(f"| {name} | {m:,.0f} | {v:,.0f} | {_ratio(m, v)} | {_ratio(g, gv)} | {via:.1%} "
                     f"| {r['guard_cpu_share']:.1%} | {_ratio(d, dv)} | {_ratio(b, bv)} |")  # fmt: skip
    table.append(
        f"| *not new text:* the test tweets a second time (caches hold them) | {again[0]:,.0f} | {again[1]:,.0f} "
        f"| {_ratio(*again)} | | | | | |"
    )
    unl = [f for f in figures if f[0].startswith("unlabeled")]
    unlabeled, guard_cost, guard_cpu = [f[1] for f in unl], [f[2] for f in unl], [f[3] for f in unl]
    default, bulk = [f[4] for f in unl], [f[5] for f in unl]
    load = lambda a: " / ".join(f"{x:.2f}" for x in a)  # noqa: E731
    return "\n".join([
        "# Prediction speed on unseen text: default model vs VADER (one process, one run)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs shared with other work; load average (1/5/15 min) "
        f"{load(load_before)} before, {load(load_after)} after. Command: `python benchmarks/throughput.py "
        f"--unlabeled {args.unlabeled} --slices {args.slices} --latency {args.latency} --batch {args.batch}`.",
        "",
        "All were first warmed up on the 48,286 SemEval-2017 train tweets; every text below is then scored",
        f"once, in calls of {args.batch:,} raw strings. Each slice is dealt into four interleaved shares (texts",
        "k, k+4, ...): the model alone (`Predictor.predict_proba`), the model + language guard",
        "(`proba_language`), the default output (`score`: the records every front end returns, with",
        "`language` and `mixed`) and the output with `SENTIMENTKIT_MIXED=off` each score their own share, in",
        "a rotating order, each a copy of the model with token caches of its own (the copies share the",
        "tokenizer's chunk cache, so none may read a text another has read); VADER (`polarity_scores` per",
        "text) scores every share right before or after, so each ratio compares both on the same texts.",
        "The guard's cost via VADER: (model / VADER) / (guard / VADER) - 1, across two shares; its own code:",
        "the CPU time inside the guard's vocabulary test and detector as a share of the rest of those calls",
        "(one copy, the same texts: the steadier figure). The unlabeled tweets are distinct, and none is in",
        "train or test; each slice is other tweets.",
        "",
        *table,
        "",
        f"Unlabeled slices: model / VADER from {_ratio(min(unlabeled), 1)} to {_ratio(max(unlabeled), 1)}, "
        f"median {_ratio(float(np.median(unlabeled)), 1)}. The language guard's cost on them: from "
        f"{min(guard_cost):.1%} to {max(guard_cost):.1%} of the model's time per text, median "
        f"{float(np.median(guard_cost)):.1%} via VADER; its own code: from {min(guard_cpu):.1%} to "
        f"{max(guard_cpu):.1%}, median {float(np.median(guard_cpu)):.1%} (budget: 10%). The default output (records with language and "
        f"`mixed`) / VADER: from {_ratio(min(default), 1)} to {_ratio(max(default), 1)}, median "
        f"{_ratio(float(np.median(default)), 1)}; with `SENTIMENTKIT_MIXED=off`: from {_ratio(min(bulk), 1)} to "
        f"{_ratio(max(bulk), 1)}, median {_ratio(float(np.median(bulk)), 1)}.",
        "",
        f"Single-text calls on {len(lat):,} other unseen unlabeled tweets (one call each, alternating):",
        "",
        "| | p50 ms | p99 ms |",
        "|---|---:|---:|",
        f"| default model `predict_proba(text)` | {p50[0]:.3f} | {p99[0]:.3f} |",
        f"| VADER `polarity_scores(text)` | {p50[1]:.3f} | {p99[1]:.3f} |",
        "",
        f"- load time: model {load_ms:.0f} ms (read + SHA-256 check + unpickle), VADER {vader_load_ms:.0f} ms",
        f"- `{args.model.name}` size: {args.model.stat().st_size / 1e6:.1f} MB",
        f"- peak RSS of this process (both models, all data, caches): {peak_mib:,.0f} MiB",
        "",
        "The machine is shared, so absolute figures move from run to run; the ratio is the robust figure,",
        "because both ran in turns under the same load.",
        "",
    ])  # fmt: skip


def _ratio(a: float, b: float) -> str:
    """a / b with two decimals, rounded down (a ratio is never rounded up to a target)."""
    return f"{np.floor(a / b * 100) / 100:.2f}x"


if __name__ == "__main__":
    raise SystemExit(main())
