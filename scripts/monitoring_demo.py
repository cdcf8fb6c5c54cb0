"""Demonstrate monitoring on replayed traffic (writes docs/monitoring_example.{html,json}).

    python scripts/monitoring_demo.py [--out docs]

Two prediction logs, scored by the committed model.pkl and written, with their texts (so new words are
named, not coded), by the real PredictionLog:

1. "in distribution": six days of SemEval validation tweets (300 a day) -> expected OK;
2. "shifted": the same six days, then a seventh day of political tweets, about Hillary Clinton and
   climate change (the `stance/hillary` and `stance/climate` sources of
   ../shared/data/unlabeled/tweets.csv, each tagged #SemST) -> expected ALERT on labels, confidence, text
   length, unknown words and the estimated AvgRec, WARN on new frequent words (semst, hillaryclinton...),
   OK on volume and other languages. (Not the hate-speech and offensive-language sources: the docs would
   name their slurs as new frequent words.)

model.pkl's card carries its reference profile, computed on the validation split; note that the
in-distribution replay then uses the very tweets of the reference (tests/mlops/test_monitor.py checks
the no-false-alarm case on disjoint halves instead).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from sentimentkit.config import REPO_ROOT
from sentimentkit.mlops import monitor
from sentimentkit.mlops.monitor_report import render_html
from sentimentkit.mlops.predlog import PredictionLog
from sentimentkit.serving.loader import load_predictor

SHARED = REPO_ROOT.parent / "shared" / "data"
DAY = 86_400
SHIFTED_SOURCES = "/stance/hillary/|/stance/climate/"  # the shifted day's sources in unlabeled/tweets.csv


def replay(log_dir: Path, days: list[list[str]], now: datetime, margin: float = 60.0) -> None:
    """Score each day's texts in requests of 20 and log them, with their text, backdated to that day
    (the last is today): day k's requests spread over its window, `margin` seconds from either end."""
    predictor = load_predictor(REPO_ROOT / "model.pkl")
    with PredictionLog(log_dir, log_text=True) as log:
        for k, texts in enumerate(days):
            day_start = now.timestamp() - (len(days) - k) * DAY + margin
            for i in range(0, len(texts), 20):
                part = texts[i : i + 20]
                at = day_start + i * (DAY - 2 * margin) / max(1, len(texts))
                log.submit(
                    predictor, part, predictor.score(part), source="replay", request_id=f"d{k}-{i}", at=at
                )


def demo_days() -> tuple[list[list[str]], list[list[str]]]:
    """(in distribution, shifted): six days of 300 validation tweets, then a seventh day of 200 more
    validation tweets or of 600 tweets about Hillary Clinton and climate change (SHIFTED_SOURCES)."""
    validation = pd.read_csv(SHARED / "semeval2017" / "validation.csv")["text"].tolist()
    tweets = pd.read_csv(SHARED / "unlabeled" / "tweets.csv")
    shifted = tweets[tweets["source"].str.contains(SHIFTED_SOURCES)]["text"].sample(600, random_state=13)
    normal_days = [validation[300 * k : 300 * (k + 1)] for k in range(6)]
    return [*normal_days, validation[1800:2000]], [*normal_days, shifted.tolist()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs")
    args = parser.parse_args()
    in_distribution, shifted = demo_days()
    now = datetime.now(UTC)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, days in (("in_distribution", in_distribution), ("shifted", shifted)):
            log = Path(tmp) / name
            started = time.perf_counter()
            replay(log, days, now)
            report, reference = monitor.run(str(log), timedelta(days=7), timedelta(days=1), REPO_ROOT / "model.pkl",
                                            SHARED / "semeval2017", now=now)  # fmt: skip
            results[name] = report
            print(f"{name}: {report['status']} ({time.perf_counter() - started:.0f} s) - {report['summary']}")
            for signal_name, signal in report["signals"].items():
                print(f"  {signal['status']:5} {signal_name}: {signal['reason']}")
            if name == "shifted":
                (args.out / "monitoring_example.html").write_text(
                    render_html(report, reference), encoding="utf-8"
                )
    summary = {name: {"status": r["status"], "signals": {k: s["status"] for k, s in r["signals"].items()},
                      "n": r["n"]} for name, r in results.items()}  # fmt: skip
    (args.out / "monitoring_example.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
