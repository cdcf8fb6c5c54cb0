"""Prediction speed of the default model vs VADER on texts the process has never seen, in one run.

Both are warmed up on a different, named set (the SemEval-2017 train tweets: the model's per-chunk
and per-token caches fill with them), then each measured text is scored exactly once:

- the 12,284 SemEval-2017 test tweets;
- a slice of distinct tweets from `../shared/data/unlabeled/tweets.csv` that are neither in train nor
  in test (checked here), standing in for new traffic;
- single-text latency (one call per text) on another, disjoint slice of the unlabeled tweets.

Model and VADER take turns batch by batch (and text by text for latency), so both see the same texts
under the same machine load; the load average is recorded. Two more copies of the model, each loaded
and warmed up the same way with caches of its own (so each reads every text for the first time), take
their turns on the same batches, the order rotating batch by batch:
- model + language guard (`Predictor.proba_language`: probabilities plus each text's language);
- the default output (`Predictor.score`: the records every front end returns, with label,
  probabilities, language and `mixed`, each text's parts scored; `SENTIMENTKIT_MIXED=off` leaves
  `mixed` out (null) and scores no parts: its own column).
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

import numpy as np
import pandas as pd

from sentimentkit.config import REPO_ROOT
from sentimentkit.models.baselines import VaderBaseline
from sentimentkit.serving.predictor import Predictor

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


CPU_SECONDS: dict[int, list[float]] = {}  # per function (its position in a side_by_side call): CPU time


def side_by_side(*fns: Score, texts: list[str], batch: int) -> tuple[float, ...]:
    """Texts/second of one pass of each of `fns` over `texts`, taking turns batch by batch (the
    order rotates by one each batch, so no one always goes first). Each call's CPU time (this
    process's) is added to CPU_SECONDS too: on a shared machine it moves less than wall time."""
    spent = [0.0] * len(fns)
    cpu = [0.0] * len(fns)
    for n, start in enumerate(range(0, len(texts), batch)):
        chunk = texts[start : start + batch]
        order = list(enumerate(fns))
        order = order[n % len(order) :] + order[: n % len(order)]
        for k, fn in order:
            began, began_cpu = time.perf_counter(), time.process_time()
            fn(chunk)
            spent[k] += time.perf_counter() - began
            cpu[k] += time.process_time() - began_cpu
    CPU_SECONDS[len(CPU_SECONDS)] = cpu
    return tuple(len(texts) / s for s in spent)


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
    side_by_side(model_batch, vader_batch, texts=train, batch=args.batch)  # warm-up on train only
    guard_batch = Predictor.load(args.model).proba_language  # its own caches: it too reads each text once
    guard_batch(train)  # the same warm-up (and the detector's one-off load)
    default_batch = Predictor.load(args.model).score  # the records of every front end, `mixed` included
    default_batch(train)
    bulk = Predictor.load(args.model)
    bulk.find_mixed = False  # SENTIMENTKIT_MIXED=off
    bulk.score(train)
    fns = (model_batch, vader_batch, guard_batch, default_batch, bulk.score)

    rows = [
        (
            f"SemEval-2017 test tweets ({len(test):,}), unseen",
            side_by_side(*fns, texts=test, batch=args.batch),
        )
    ]
    for k in range(args.slices):  # other unseen tweets each time: how much the ratio moves run to run
        part = fresh[k * args.unlabeled : (k + 1) * args.unlabeled]
        name = f"unlabeled in-domain tweets, slice {k + 1} of {args.slices} ({len(part):,}), unseen"
        rows.append((name, side_by_side(*fns, texts=part, batch=args.batch)))
    lat = latencies(predictor.predict_proba, vader.polarity_scores, single)
    again = side_by_side(model_batch, vader_batch, texts=test, batch=args.batch)  # caches hold these texts
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
        "| texts (one pass each) | model texts/s | VADER texts/s | model / VADER "
        "| model + language guard texts/s | guard's cost (of the model's time) "
        "| default output (language + mixed) texts/s | default output / VADER "
        "| output with SENTIMENTKIT_MIXED=off texts/s | that / VADER |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    table += [
        f"| {name} | {m:,.0f} | {v:,.0f} | {_ratio(m, v)} | {g:,.0f} | {m / g - 1:.1%} | {d:,.0f} | {_ratio(d, v)} "
        f"| {b:,.0f} | {_ratio(b, v)} |"
        for name, (m, v, g, d, b) in rows
    ]
    table.append(
        f"| *not new text:* the test tweets a second time (caches hold them) | {again[0]:,.0f} | {again[1]:,.0f} "
        f"| {_ratio(*again)} | | | | | | |"
    )
    unlabeled = [m / v for name, (m, v, *_) in rows if name.startswith("unlabeled")]
    guard_cost = [m / g - 1 for name, (m, _, g, *_) in rows if name.startswith("unlabeled")]
    # the same in CPU time: the calls of rows[k] are CPU_SECONDS[k + 1] (0: the warm-up)
    guard_cpu = [CPU_SECONDS[k + 1][2] / CPU_SECONDS[k + 1][0] - 1 for k, (name, _) in enumerate(rows)
                 if name.startswith("unlabeled")]  # fmt: skip
    default = [d / v for name, (_, v, _, d, _) in rows if name.startswith("unlabeled")]
    bulk = [b / v for name, (_, v, _, _, b) in rows if name.startswith("unlabeled")]
    load = lambda a: " / ".join(f"{x:.2f}" for x in a)  # noqa: E731
    return "\n".join([
        "# Prediction speed on unseen text: default model vs VADER (one process, one run)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs shared with other work; load average (1/5/15 min) "
        f"{load(load_before)} before, {load(load_after)} after. Command: `python benchmarks/throughput.py "
        f"--unlabeled {args.unlabeled} --slices {args.slices} --latency {args.latency} --batch {args.batch}`.",
        "",
        "Both were first warmed up on the 48,286 SemEval-2017 train tweets; every text below is then scored",
        f"once, in calls of {args.batch:,} raw strings (model: `Predictor.predict_proba`; VADER: `polarity_scores`",
        "per text), model and VADER taking turns call by call on the same texts. The unlabeled tweets are",
        "distinct, and none is in train or test; each slice is other tweets.",
        "",
        *table,
        "",
        f"Unlabeled slices: model / VADER from {_ratio(min(unlabeled), 1)} to {_ratio(max(unlabeled), 1)}, "
        f"median {_ratio(float(np.median(unlabeled)), 1)}. The language guard's cost on them: from "
        f"{min(guard_cost):.1%} to {max(guard_cost):.1%} of the model's time per text, median "
        f"{float(np.median(guard_cost)):.1%} (budget: 10%); in CPU time (what this process itself spent, "
        f"less moved by other work on the machine): from {min(guard_cpu):.1%} to {max(guard_cpu):.1%}, "
        f"median {float(np.median(guard_cpu)):.1%}. The default output (records with language and "
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
