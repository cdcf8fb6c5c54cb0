"""Distillation record (issue 15): teacher labels for the unlabeled pool, then student candidates.

Plan and adoption rule, committed before any fit: benchmarks/distillation_plan.md.

    export SENTIMENTKIT_DATA_DIR=../shared/data/semeval2017
    python benchmarks/distillation.py teacher                 # labels the pool once (cached, git-ignored)
    python benchmarks/distillation.py fit baseline hard:0.5:0.0 hard:1.0:0.0 ...   # MODE:W:CUTOFF[:C]

Every candidate is fitted twice: on train + pool (scored on validation, clean validation and test)
and on the oldest 80% of train + pool (scored on the newest 20%, the temporal holdout). Results are
appended to benchmarks/distillation.json; benchmarks/distillation.md is rewritten from it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

from sentimentkit import LABELS
from sentimentkit.config import REPO_ROOT
from sentimentkit.serving.loader import load_predictor
from sentimentkit.training.distill import pseudo_labelled, teacher_proba
from sentimentkit.training.train import (
    CHOSEN_PARAMS,
    clean_validation,
    evaluate_pipeline,
    fit_pipeline,
    load_splits,
    temporal_split,
)

HERE = Path(__file__).resolve().parent
POOL = REPO_ROOT.parent / "shared" / "data" / "unlabeled" / "tweets.csv"
CACHE = HERE / "_work" / "teacher_pool.parquet"
RECORD = HERE / "distillation.json"
TEACHER = REPO_ROOT / "models" / "transformer-int8"


def label_pool() -> None:
    """Teacher probabilities for every pool tweet, cached as Parquet."""
    pool = pd.read_csv(POOL, keep_default_na=False)
    pool = pool[pool["text"].str.strip() != ""].reset_index(drop=True)
    teacher = load_predictor(TEACHER)
    start = time.perf_counter()
    proba = teacher_proba(teacher, pool["text"].tolist(), log=True)
    seconds = time.perf_counter() - start
    for k, label in enumerate(LABELS):
        pool[f"p_{label}"] = proba[:, k]
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    pool.to_parquet(CACHE)
    shares = pool[[f"p_{lab}" for lab in LABELS]].to_numpy().argmax(axis=1)
    print(f"labelled {len(pool):,} tweets in {seconds:.0f} s; teacher label shares "
          f"{ {lab: round(float((shares == k).mean()), 3) for k, lab in enumerate(LABELS)} }")  # fmt: skip


def parse(spec: str) -> dict:
    """`baseline` or MODE:W:CUTOFF[:C] -> candidate dict."""
    if spec == "baseline":
        return {"name": "baseline (committed recipe, no pool)", "mode": None, "C": CHOSEN_PARAMS["C"]}
    mode, weight, cutoff, *rest = spec.split(":")
    c = float(rest[0]) if rest else CHOSEN_PARAMS["C"]
    return {"name": spec, "mode": mode, "weight": float(weight), "cutoff": float(cutoff), "C": c}


def pool_rows(candidate: dict, pool: pd.DataFrame) -> pd.DataFrame | None:
    if candidate["mode"] is None:
        return None
    proba = pool[[f"p_{lab}" for lab in LABELS]].to_numpy()
    soft = candidate["mode"] == "soft"
    return pseudo_labelled(pool["text"].tolist(), proba, candidate["weight"], candidate["cutoff"], soft)


def fit_one(candidate: dict, splits: dict, clean: pd.DataFrame, pool: pd.DataFrame) -> dict:
    params = {**CHOSEN_PARAMS, "C": candidate["C"]}
    extra = pool_rows(candidate, pool)
    start = time.perf_counter()
    pipeline = fit_pipeline(splits["train"], params, extra)
    seconds = time.perf_counter() - start
    older, newest = temporal_split(splits["train"])
    record = {
        **candidate,
        "pool_rows": 0 if extra is None else int(len(extra)),
        "train_seconds": round(seconds, 1),
        "vocabulary": int(pipeline.named_steps["features"].n_features_),
        "holdout": evaluate_pipeline(fit_pipeline(older, params, extra), newest),
        "validation_clean": evaluate_pipeline(pipeline, clean),
        "validation": evaluate_pipeline(pipeline, splits["validation"]),
        "test": evaluate_pipeline(pipeline, splits["test"]),  # recorded, never used to choose
        "load_average": os.getloadavg(),
    }
    print(f"{record['name']}: holdout {record['holdout']['avg_recall']:.4f} clean-val "
          f"{record['validation_clean']['avg_recall']:.4f} test {record['test']['avg_recall']:.4f} "
          f"({seconds:.0f} s)", flush=True)  # fmt: skip
    return record


def write_table(records: list[dict]) -> None:
    lines = [
        "# Distillation candidates (issue 15)",
        "",
        "Plan and rule: [distillation_plan.md](distillation_plan.md). Chosen by the temporal holdout and",
        "clean validation together; test is recorded after the fact, never used to choose. The holdout",
        "flatters distilled rows a little: the teacher was trained on those rows' labels.",
        "",
        "| candidate | pool rows | C | holdout AvgRec | clean-val AvgRec | val AvgRec | test AvgRec | test F1^PN | features | fit s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        lines.append(
            f"| {r['name']} | {r['pool_rows']:,} | {r['C']} | {r['holdout']['avg_recall']:.4f} | "
            f"{r['validation_clean']['avg_recall']:.4f} | {r['validation']['avg_recall']:.4f} | "
            f"{r['test']['avg_recall']:.4f} | {r['test']['f1_pn']:.4f} | {r['vocabulary']:,} | {r['train_seconds']} |"
        )
    (HERE / "distillation.md").write_text("\n".join(lines) + "\n")


def fit_candidates(specs: list[str]) -> None:
    splits = load_splits()
    clean = clean_validation(splits)
    pool = pd.read_parquet(CACHE)
    records = json.loads(RECORD.read_text()) if RECORD.exists() else []
    for spec in specs:
        records.append(fit_one(parse(spec), splits, clean, pool))
        RECORD.write_text(json.dumps(records, indent=1) + "\n")
        write_table(records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True)
    sub.add_parser("teacher")
    fit = sub.add_parser("fit")
    fit.add_argument("specs", nargs="+")
    args = parser.parse_args(argv)
    if args.stage == "teacher":
        label_pool()
    else:
        fit_candidates(args.specs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
