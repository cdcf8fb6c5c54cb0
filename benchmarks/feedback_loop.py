"""Issue 22, item 4, the proof: does the human loop, run through the product's own commands, lift a
domain the model was not trained on? (Results: benchmarks/feedback_loop.md; raw: feedback_loop.json.)

Per seed, the labelled domain file (`--data`, default Apple tweets, ../shared/data/apple_tweets/
tweets.csv; columns `text` and `label`) is split BY TEXT: near-duplicate groups (`data.near_duplicate_key`,
re-posts and retweets share one) go wholly to the pool (60%) or to the holdout (40%); the same split as
benchmarks/domain_learning.py for the same seed. Then, per seed, once (cached in `--work`):

  registry   `sentimentkit models register model.pkl` into a throw-away MLflow store (SQLite + a local
             artifact folder): version 1, the champion. Every run below gets its own copy of it.
  log        `predict --model models:/sentimentkit-tfidf@champion --input pool.csv` with
             SENTIMENTKIT_PREDICTION_LOG (a local folder) and SENTIMENTKIT_PREDICTION_LOG_TEXT=true.
  base       `predict` of the holdout with the same champion (no log): the committed model's answers.

and per (strategy, k, seed), each step a `python -m sentimentkit ...` subprocess of this checkout:

  review     `review --log LOG --n k [--strategy S] --seed SEED --output review.csv` (strategy `default`:
             no --strategy, so whatever `review` defaults to; its name is read from the parser);
  analyst    fills the `label` column from the crowd labels (the majority label of that exact text),
             matched by the file's `text_sha256` (so a text the formula guard prefixed is still found);
  feedback   `feedback add --input labelled.csv --incoming STORE` (a local folder store);
  retrain    `retrain --incoming STORE --learner domain --data SEMEVAL [--judge J]`: the gate judges the
             recipe on the corrections first (`--judge cv`, retrain's default: 5-fold cross-validation
             over all of them, then the model fitted on all is the challenger; `holdout`: a 20% slice),
             SemEval validation as the guard; its JSON report is kept;
  holdout    `predict --model models:/sentimentkit-tfidf@champion` of the holdout when the gate promoted
             (the champion IS the challenger); otherwise the champion is still version 1, whose answers
             are the cached `base` ones, and the challenger (`@challenger`) is scored instead, to show
             what the gate refused.

Scores: AvgRec (macro recall) on the holdout rows; 95% intervals from a group bootstrap (holdout
near-duplicate groups resampled, `--boot` replicates, the same draws for every model of a seed, so gains and
strategy differences are paired; a mean over seeds takes one draw per seed per replicate).

Run (Apple, the full table; see benchmarks/feedback_loop.md for the time it takes):
    PYTHONPATH=. python benchmarks/feedback_loop.py --seeds 0 1 2 3 4 --k 100 200 500 \
        --strategies default random
    PYTHONPATH=. python benchmarks/feedback_loop.py --render      # the markdown tables from the JSON
Another labelled domain (a CSV/XLSX/Parquet file with `text` and `label` in negative/neutral/positive):
    PYTHONPATH=. python benchmarks/feedback_loop.py --data PATH --accurate --out OUT.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sentimentkit import LABELS
from sentimentkit.config import REPO_ROOT
from sentimentkit.data import near_duplicate_key

SHARED = REPO_ROOT.parent / "shared" / "data"
APPLE = SHARED / "apple_tweets" / "tweets.csv"
SEMEVAL = SHARED / "semeval2017"
MODEL = REPO_ROOT / "model.pkl"
WORK = REPO_ROOT / "benchmarks" / "_work" / "feedback_loop"  # git-ignored
OUT = Path(__file__).with_suffix(".json")
NAME = "sentimentkit-tfidf"  # sentimentkit.mlops.TFIDF_MODEL (not imported: that would need MLflow)
HOLDOUT_FRACTION = 0.4
N_BOOT = 1000
DEFAULT = "default"  # the strategy name meaning "no --strategy: whatever review defaults to"


# --- the pure pieces (tests/test_feedback_loop_bench.py) ------------------------------------------------
def group_keys(texts: Sequence[str]) -> np.ndarray:
    """One near-duplicate key per text (a text with no words is its own group)."""
    return np.asarray([near_duplicate_key(t) or f"\x00{i}" for i, t in enumerate(texts)], dtype=object)


def split_by_group(keys: np.ndarray, seed: int, fraction: float = HOLDOUT_FRACTION) -> np.ndarray:
    """Boolean mask of the holdout rows: `fraction` of the distinct keys, drawn with `seed`; every row of a
    key falls on the same side (benchmarks/domain_learning.py's split for the same seed)."""
    unique = np.unique(keys)
    rng = np.random.default_rng(seed)
    held = rng.choice(unique, int(round(fraction * len(unique))), replace=False)
    return np.isin(keys, held)


def text_sha256(text: str) -> str:
    """The digest `review` writes beside each text (sentimentkit.feedback.formats.text_sha256)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def analyst_answers(texts: Iterable[str], labels: Iterable[str]) -> dict[str, str]:
    """The analyst's label of each distinct text, by its SHA-256: the most frequent crowd label among the
    rows holding exactly that text (ties: the one seen first)."""
    votes: dict[str, Counter] = {}
    for text, label in zip(texts, labels):
        votes.setdefault(text_sha256(text), Counter())[label] += 1
    return {digest: counts.most_common(1)[0][0] for digest, counts in votes.items()}


def fill_labels(sheet: pd.DataFrame, answers: dict[str, str]) -> tuple[pd.DataFrame, int]:
    """The review sheet with its `label` column filled from `answers` (what a person would type); the
    other columns untouched. Rows found in `answers` by `text_sha256` (else by the text itself); the
    count of rows left unlabelled is returned with it."""
    digests = sheet["text_sha256"] if "text_sha256" in sheet.columns else sheet["text"].map(text_sha256)
    out = sheet.copy()
    out["label"] = [answers.get(d, "") for d in digests]
    return out, int((out["label"] == "").sum())


def boot_weights(groups: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, rows): how often each row's group was drawn in each replicate of a group bootstrap."""
    _, inverse = np.unique(groups, return_inverse=True)
    n_groups = int(inverse.max()) + 1
    counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)
    return counts[:, inverse].astype(np.float64)


def avg_recall(y: np.ndarray, pred: np.ndarray, weights: np.ndarray | None = None) -> Any:
    """AvgRec: the mean recall over the LABELS present in `y` (a label with no row is left out, not
    counted as 0); with `weights` (replicates x rows) one value per replicate, over the labels each
    replicate draws."""
    y, pred = np.asarray(y, dtype=object), np.asarray(pred, dtype=object)
    present = [c for c in LABELS if (y == c).any()]
    if weights is None:
        return float(np.mean([np.mean(pred[y == c] == c) for c in present]))
    recalls = []
    for c in present:
        mask = y == c
        with np.errstate(invalid="ignore", divide="ignore"):  # a replicate may draw none of a label
            recalls.append((weights[:, mask] @ (pred[mask] == c)) / weights[:, mask].sum(axis=1))
    return np.nanmean(np.vstack(recalls), axis=0)


def interval(values: np.ndarray) -> list[float]:
    """The 95% percentile interval."""
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def seed_mean(per_seed: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]]) -> dict:
    """Mean over seeds of AvgRec(a) - AvgRec(b) (or of AvgRec(a) when b is None), from
    {seed: (y, pred_a, pred_b, weights)}: the point value, its 95% interval (one bootstrap draw per seed
    per replicate, the same draws for a and b: paired) and the per-seed values."""
    points, replicates = [], []
    for y, a, b, w in per_seed.values():
        point, reps = avg_recall(y, a), avg_recall(y, a, w)
        if b is not None:
            point, reps = point - avg_recall(y, b), reps - avg_recall(y, b, w)
        points.append(point)
        replicates.append(reps)
    mean = np.mean(np.vstack(replicates), axis=0)
    return {"mean": float(np.mean(points)), "ci": interval(mean), "per_seed": [round(p, 4) for p in points]}


# --- the subprocesses -------------------------------------------------------------------------------------
class StepError(RuntimeError):
    """A CLI step failed: its command and the last lines it printed."""


def clean_env(threads: int | None = None) -> dict[str, str]:
    """This process's environment without any sentimentkit/MLflow/Azure setting (each step sets its own),
    with this checkout first on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SENTIMENTKIT_", "MLFLOW_", "AZURE_STORAGE_"))}  # fmt: skip
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env["SENTIMENTKIT_USER"] = "analyst"
    if threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    return env


def cli(args: Sequence[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """`python -m sentimentkit ARGS` in `cwd`; StepError with its output's tail when it fails."""
    done = subprocess.run([sys.executable, "-m", "sentimentkit", *args], env=env, cwd=cwd,
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        raise StepError(f"sentimentkit {' '.join(args[:2])} exited with {done.returncode} in {cwd}:\n{tail}")
    return done


def registry_env(folder: Path, base: dict[str, str]) -> dict[str, str]:
    """The environment of a registry kept in `folder` (mlflow.db, artifacts/, cache/)."""
    return {**base, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
            "SENTIMENTKIT_MLFLOW_ARTIFACTS": str(folder / "artifacts"),
            "SENTIMENTKIT_REGISTRY_CACHE": str(folder / "cache")}  # fmt: skip


def make_template(work: Path, model: Path, env: dict[str, str]) -> Path:
    """A registry holding `model` as version 1 (champion), registered by `models register`; made once per
    model file (cached under `work`)."""
    folder = work / f"registry-{file_sha256(model)[:12]}"
    if (folder / "done").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    cli(["models", "register", str(model), "--reason", "feedback_loop benchmark: the base model"],
        registry_env(folder, env), folder)  # fmt: skip
    (folder / "done").write_text(str(model))
    return folder


def clone_registry(template: Path, dest: Path) -> Path:
    """A private copy of the template registry in `dest`: the files copied, and every absolute path the
    SQLite store keeps (artifact locations, model sources) moved to the copy's folder."""
    shutil.copytree(template, dest, ignore=shutil.ignore_patterns("cache", "done"))
    old, new = str(template), str(dest)
    with sqlite3.connect(dest / "mlflow.db") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for column in [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]:
                db.execute(f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                           f'WHERE typeof("{column}") = \'text\' AND instr("{column}", ?) > 0', (old, new, old))  # fmt: skip
    return dest


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and the finished steps it ran: with the wall time, it
    tells how long the same runs take on an idle machine."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def default_strategy() -> str:
    """What `sentimentkit review` uses without --strategy, read from the CLI's own parser."""
    from sentimentkit.cli import build_parser
    from sentimentkit.config import Settings

    args = build_parser(Settings.from_env()).parse_args(["review", "--log", "L", "--n", "1", "--output", "O"])
    return str(args.strategy)


def predicted_labels(path: Path) -> np.ndarray:
    """The `sentiment` column of a `predict` output, in row order ("" where a row was flagged)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return frame["sentiment"].to_numpy(dtype=object)


# --- per seed: the pool's log and the base model's holdout answers (cached) -------------------------------
def prepare_seed(work: Path, template: Path, frame: pd.DataFrame, keys: np.ndarray, seed: int,
                 key: str, env: dict[str, str], accurate: bool) -> dict[str, Any]:  # fmt: skip
    """The seed's folder: pool.csv and holdout.csv (the `text` column only), the prediction log of the pool
    scored by the champion, and the holdout answers of the champion (and of models/accurate)."""
    folder = work / f"seed-{seed}-{key}"
    done = folder / "prepared.json"
    if done.exists():
        info = json.loads(done.read_text())
        if accurate and "accurate_seconds" not in info:
            info.update(_score_accurate(folder, env))
            done.write_text(json.dumps(info))
        return info
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    hold = split_by_group(keys, seed)
    frame.loc[~hold, ["text"]].to_csv(folder / "pool.csv", index=False)
    frame.loc[hold, ["text"]].to_csv(folder / "holdout.csv", index=False)
    registry = clone_registry(template, folder / "registry")
    renv = registry_env(registry, env)
    started = time.perf_counter()
    cli(["predict", "--model", f"models:/{NAME}@champion", "--input", "pool.csv", "--output", "pool_scored.csv",
         "--jobs", "1"], {**renv, "SENTIMENTKIT_PREDICTION_LOG": str(folder / "log"),
                          "SENTIMENTKIT_PREDICTION_LOG_TEXT": "true"}, folder)  # fmt: skip
    pool_s = time.perf_counter() - started
    started = time.perf_counter()
    cli(["predict", "--model", f"models:/{NAME}@champion", "--input", "holdout.csv", "--output", "holdout_base.csv",
         "--jobs", "1"], renv, folder)  # fmt: skip
    info = {"seed": seed, "pool_rows": int((~hold).sum()), "holdout_rows": int(hold.sum()),
            "holdout_groups": int(len(np.unique(keys[hold]))), "pool_seconds": round(pool_s, 1),
            "holdout_seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    if accurate:
        info.update(_score_accurate(folder, env))
    done.write_text(json.dumps(info))
    return info


def _score_accurate(folder: Path, env: dict[str, str]) -> dict[str, float]:
    """The holdout scored by the accurate mode off the shelf (models/accurate), the bar to pass."""
    started = time.perf_counter()
    cli(["predict", "--model", str(REPO_ROOT / "models" / "accurate"), "--input", "holdout.csv", "--output",
         "holdout_accurate.csv", "--jobs", "1"], env, folder)  # fmt: skip
    return {"accurate_seconds": round(time.perf_counter() - started, 1)}


# --- per run: review -> analyst -> feedback add -> retrain -> gate -> champion ------------------------------
def run_one(work: Path, seed_folder: Path, template: Path, answers: dict[str, str], strategy: str, k: int,
            seed: int, semeval: Path, env: dict[str, str], resume: bool = False,
            gate_args: Sequence[str] = ()) -> dict[str, Any]:  # fmt: skip
    """One pass of the loop in its own folder with its own registry copy and feedback store; the record.
    `resume`: a run whose record a previous invocation left is not run again. `gate_args`: extra
    `retrain` options (e.g. `--judge holdout`)."""
    folder = work / "runs" / f"{strategy}-k{k}-seed{seed}-{seed_folder.name.rsplit('-', 1)[-1]}"
    if resume and (folder / "record.json").exists():
        return json.loads((folder / "record.json").read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    renv = registry_env(clone_registry(template, folder / "registry"), env)
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}  # the steps' CPU seconds (exact with --jobs 1; mixed with parallel runs)

    def step(name: str, args: list[str]) -> subprocess.CompletedProcess:
        started, cpu_before = time.perf_counter(), cpu_seconds()
        done = cli(args, renv, folder)
        seconds[name] = round(time.perf_counter() - started, 1)
        cpu[name] = round(cpu_seconds() - cpu_before, 1)
        return done

    chosen = [] if strategy == DEFAULT else ["--strategy", strategy]
    done = step("review", ["review", "--log", str(seed_folder / "log"), "--n", str(k), *chosen,
                           "--seed", str(seed), "--output", "review.csv"])  # fmt: skip
    said = re.search(r"to review \(([^)]+)\)", done.stderr)
    sheet = pd.read_csv(folder / "review.csv", dtype=str, keep_default_na=False)
    labelled, missing = fill_labels(sheet, answers)
    labelled.to_csv(folder / "labelled.csv", index=False)
    step("feedback", ["feedback", "add", "--input", "labelled.csv", "--incoming", "store"])
    done = step("retrain", ["retrain", "--incoming", "store", "--learner", "domain", "--data", str(semeval),
                            *gate_args])  # fmt: skip
    report = json.loads(done.stdout)
    (folder / "report.json").write_text(done.stdout)
    promoted = report.get("decision") == "promoted"
    record: dict[str, Any] = {
        "strategy": strategy, "review_strategy": said.group(1) if said else strategy, "k": k, "seed": seed,
        "queued": len(sheet), "unlabelled": missing,
        "labels": dict(Counter(x for x in labelled["label"] if x)),
        "status": report.get("status"), "decision": report.get("decision"), "reason": report.get("reason"),
        "domain": report.get("domain"), "guard": report.get("guard"),
        "learner": {x: report.get("learner", {}).get(x) for x in ("C", "rows", "groups")},
    }  # fmt: skip
    if report.get("challenger_version"):
        alias = "champion" if promoted else "challenger"
        step("holdout", ["predict", "--model", f"models:/{NAME}@{alias}", "--input", str(seed_folder / "holdout.csv"),
                         "--output", "holdout.csv", "--jobs", "1"])  # fmt: skip
        record["challenger_pred"] = "".join(label_code(predicted_labels(folder / "holdout.csv")))
    record["promoted"] = promoted
    record["seconds"], record["cpu_seconds"] = seconds, cpu
    (folder / "record.json").write_text(json.dumps(record))
    for heavy in ("artifacts", "cache"):  # the models and their verified copies, ~20 MB a run: not kept
        shutil.rmtree(folder / "registry" / heavy, ignore_errors=True)
    return record


CODES = {"negative": "n", "neutral": "u", "positive": "p"}
DECODE = {v: k for k, v in CODES.items()}


def label_code(labels: Iterable[str]) -> list[str]:
    """One letter per label (n/u/p; "x" for a flagged row), so a run's answers fit in the JSON."""
    return [CODES.get(x, "x") for x in labels]


def label_decode(codes: str) -> np.ndarray:
    return np.asarray([DECODE.get(c, "") for c in codes], dtype=object)


# --- the summary ----------------------------------------------------------------------------------------
def summarise(result: dict[str, Any], n_boot: int = N_BOOT) -> dict[str, Any]:
    """Per (strategy, k): the champion's holdout AvgRec after the loop (mean over seeds, 95% interval), its
    gain over the base model and its difference from `random` at the same k (both paired), how often the
    gate promoted, the gate's figures; and the base (and accurate) rows."""
    seeds = result["seeds"]
    y = {s["seed"]: label_decode(s["truth"]) for s in seeds}
    base = {s["seed"]: label_decode(s["base"]) for s in seeds}
    rng = np.random.default_rng(12345)
    weights = {s["seed"]: boot_weights(np.asarray(s["groups"]), n_boot, rng) for s in seeds}

    def champion_of(run: dict[str, Any]) -> np.ndarray:
        return label_decode(run["challenger_pred"]) if run["promoted"] else base[run["seed"]]

    runs = {(r["strategy"], r["k"], r["seed"]): r for r in result["runs"]}
    out: dict[str, Any] = {"base": seed_mean({s: (y[s], base[s], None, weights[s]) for s in y}), "cells": []}
    if all("accurate" in s for s in seeds):
        accurate = {s["seed"]: label_decode(s["accurate"]) for s in seeds}
        out["accurate"] = seed_mean({s: (y[s], accurate[s], None, weights[s]) for s in y})
    cells = sorted(
        {(r["strategy"], r["k"]) for r in result["runs"]}, key=lambda c: (c[1], c[0] == "random", c[0])
    )
    for strategy, k in cells:
        these = [runs[(strategy, k, s)] for s in y if (strategy, k, s) in runs]
        mine = {r["seed"]: champion_of(r) for r in these}
        cell: dict[str, Any] = {
            "strategy": strategy, "review_strategy": these[0]["review_strategy"], "k": k,
            "seeds": [r["seed"] for r in these], "promoted": sum(r["promoted"] for r in these),
            "holdout": seed_mean({s: (y[s], mine[s], None, weights[s]) for s in mine}),
            "gain": seed_mean({s: (y[s], mine[s], base[s], weights[s]) for s in mine}),
            "domain_gain": _mean(r["domain"].get("gain") for r in these if r.get("domain")),
            "domain_rows": _mean(r["domain"].get("rows") for r in these if r.get("domain")),
            "guard_loss": _mean(r["guard"].get("loss") for r in these if r.get("guard")),
            "guard_challenger": _mean(r["guard"].get("challenger") for r in these if r.get("guard")),
            "labels": {c: _mean(r["labels"].get(c, 0) for r in these) for c in LABELS},
        }  # fmt: skip
        trained = {r["seed"]: label_decode(r["challenger_pred"]) for r in these if r.get("challenger_pred")}
        if trained:
            cell["challenger_gain"] = seed_mean({s: (y[s], trained[s], base[s], weights[s]) for s in trained})
        if "accurate" in out:
            cell["minus_accurate"] = seed_mean({s: (y[s], mine[s], accurate[s], weights[s]) for s in mine})
        rand = {s: champion_of(runs[("random", k, s)]) for s in mine if ("random", k, s) in runs}
        if strategy != "random" and rand:
            cell["minus_random"] = seed_mean({s: (y[s], mine[s], rand[s], weights[s]) for s in rand})
        out["cells"].append(cell)
    return out


def _mean(values: Iterable[Any]) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def render(result: dict[str, Any], summary: dict[str, Any]) -> str:
    """The markdown tables of benchmarks/feedback_loop.md."""
    pts = lambda v: f"{100 * v:.1f}"  # noqa: E731
    ci = lambda d: f"{pts(d['mean'])} [{pts(d['ci'][0])}, {pts(d['ci'][1])}]"  # noqa: E731
    n_seeds = len(result["seeds"])
    lines = [f"Holdout AvgRec, points, mean over {n_seeds} seed(s) (95% group-bootstrap interval).", "",
             f"- base (the committed model): **{ci(summary['base'])}**"]  # fmt: skip
    if "accurate" in summary:
        lines.append(f"- the accurate mode off the shelf (models/accurate): **{ci(summary['accurate'])}**")
    lines += ["", "| labels | strategy | promoted | champion holdout AvgRec | gain vs base (paired) "
              "| minus random (paired) | challenger's gain vs base | gate: domain gain (judged rows) "
              "| gate: SemEval guard loss |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in summary["cells"]:
        name = c["strategy"] if c["strategy"] != DEFAULT else f"default ({c['review_strategy']})"
        domain = "-" if c["domain_gain"] is None else f"{pts(c['domain_gain'])} ({c['domain_rows']:.0f})"
        guard = "-" if c["guard_loss"] is None else pts(c["guard_loss"])
        lines.append(f"| {c['k']} | {name} | {c['promoted']}/{len(c['seeds'])} | {ci(c['holdout'])} | "
                     f"{ci(c['gain'])} | {ci(c['minus_random']) if 'minus_random' in c else '-'} | "
                     f"{ci(c['challenger_gain']) if 'challenger_gain' in c else '-'} | {domain} | {guard} |")  # fmt: skip
    if "accurate" in summary:
        lines += ["", "| labels | strategy | champion minus accurate mode (paired) |", "|---|---|---|"]
        lines += [f"| {c['k']} | {c['strategy']} | {ci(c['minus_accurate'])} |" for c in summary["cells"]]
    lines += ["", "Per run (gate figures from the retrain report: domain = the corrections the gate judged on, AvgRec "
              "champion -> challenger; guard = SemEval validation AvgRec champion -> challenger):", "",
              "| labels | strategy | seed | given n/u/p | decision | domain (rows) | domain 95% CI of gain "
              "| guard | holdout: base -> champion | minutes |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    base = {s["seed"]: (label_decode(s["truth"]), label_decode(s["base"])) for s in result["seeds"]}
    for r in sorted(
        result["runs"], key=lambda r: (r["k"], r["strategy"] == "random", r["strategy"], r["seed"])
    ):
        y, b = base[r["seed"]]
        champ = label_decode(r["challenger_pred"]) if r["promoted"] else b
        d, g = r.get("domain") or {}, r.get("guard") or {}
        dom = f"{pts(d['champion'])} -> {pts(d['challenger'])} ({d['rows']})" if "champion" in d else "-"
        dci = f"[{pts(d['interval95'][0])}, {pts(d['interval95'][1])}]" if d.get("interval95") else "-"
        grd = f"{pts(g['champion'])} -> {pts(g['challenger'])}" if "champion" in g else "-"
        counts = "/".join(str(r["labels"].get(c, 0)) for c in LABELS)
        lines.append(f"| {r['k']} | {r['strategy']} | {r['seed']} | {counts} | {r['decision'] or r['status']} | "
                     f"{dom} | {dci} | {grd} | {pts(avg_recall(y, b))} -> {pts(avg_recall(y, champ))} | "
                     f"{sum(r['seconds'].values()) / 60:.1f} |")  # fmt: skip
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument(
        "--data", type=Path, default=APPLE, help="labelled domain file (text, label); default Apple"
    )
    p.add_argument("--text-column", default="text", help="the text column of --data")
    p.add_argument("--label-column", default="label", help="the label column of --data")
    p.add_argument("--semeval", type=Path, default=SEMEVAL, help="SemEval splits folder (retrain --data)")
    p.add_argument("--model", type=Path, default=MODEL, help="the base model registered as champion")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--k", type=int, nargs="+", default=[100, 200, 500], help="labels per run")
    p.add_argument("--strategies", nargs="+", default=[DEFAULT, "random"],
                   help=f"review strategies; '{DEFAULT}' = whatever review defaults to")  # fmt: skip
    p.add_argument("--accurate", action="store_true", help="also score the holdout with models/accurate")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (each step is one process)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS/OpenMP threads per step (1: no spinning threads on a shared machine; 0: the library's default)")  # fmt: skip
    p.add_argument(
        "--judge",
        choices=("cv", "holdout"),
        default="cv",
        help="retrain's --judge: cv (its default) or holdout (the gate before 2026-12-06 evening)",
    )
    p.add_argument("--resume", action="store_true",
                   help="keep the runs an interrupted invocation finished (same --work; same code!)")  # fmt: skip
    p.add_argument("--boot", type=int, default=N_BOOT, help="bootstrap replicates")
    p.add_argument("--work", type=Path, default=WORK, help="cache and run folders (git-ignored by default)")
    p.add_argument("--out", type=Path, default=OUT, help="the JSON result (runs, answers, summary)")
    p.add_argument("--render", action="store_true", help="print the markdown tables of --out and exit")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        result = json.loads(args.out.read_text())
        print(render(result, result["summary"]))
        return 0
    from sentimentkit.feedback import QUEUE_STRATEGIES

    unknown = sorted(set(args.strategies) - {DEFAULT, *QUEUE_STRATEGIES})
    if unknown:
        raise SystemExit(
            f"unknown strategies {unknown}: choose from {DEFAULT}, {', '.join(QUEUE_STRATEGIES)}"
        )
    started, cpu_at_start = time.perf_counter(), cpu_seconds()
    from sentimentkit.io.tables import read_labelled  # the product's reader (CSV/TSV/XLSX/Parquet)

    frame = read_labelled(args.data, args.text_column, args.label_column)
    frame["label"] = frame["label"].str.strip().str.lower()
    frame = frame.reset_index(drop=True)
    bad = sorted(set(frame["label"]) - set(LABELS))
    if bad:
        raise SystemExit(f"{args.data}: labels outside {', '.join(LABELS)}: {bad[:5]}")
    texts = frame["text"].tolist()
    keys = group_keys(texts)
    answers = analyst_answers(texts, frame["label"])
    env = clean_env(threads=args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    template = make_template(args.work, args.model, env)
    data_key = hashlib.sha256(
        f"{file_sha256(args.data)} {file_sha256(args.model)} {HOLDOUT_FRACTION}".encode()
    ).hexdigest()[:12]
    resolved = default_strategy()
    print(
        f"review's default strategy: {resolved}; base model {args.model} registered in {template}", flush=True
    )
    seeds = []
    for seed in args.seeds:
        info = prepare_seed(args.work, template, frame, keys, seed, data_key, env, args.accurate)
        folder = args.work / f"seed-{seed}-{data_key}"
        hold = split_by_group(keys, seed)
        entry = {**info, "truth": "".join(label_code(frame["label"][hold])),
                 "base": "".join(label_code(predicted_labels(folder / "holdout_base.csv"))),
                 "groups": np.unique(keys[hold], return_inverse=True)[1].tolist()}  # fmt: skip
        if args.accurate:
            entry["accurate"] = "".join(label_code(predicted_labels(folder / "holdout_accurate.csv")))
        seeds.append(entry)
        print(f"seed {seed}: pool {info['pool_rows']} rows logged, holdout {info['holdout_rows']} rows "
              f"({info['holdout_groups']} groups); base AvgRec {avg_recall(label_decode(entry['truth']), label_decode(entry['base'])):.4f}"
              f"  [{time.perf_counter() - started:.0f}s]", flush=True)  # fmt: skip
    strategies = list(dict.fromkeys(args.strategies))
    if DEFAULT in strategies and resolved in strategies:  # the same runs twice: keep them once, as default
        strategies.remove(resolved)
        print(f"{resolved} is review's default: its runs are the '{DEFAULT}' ones", flush=True)
    plan = [(strategy, k, seed) for k in args.k for strategy in strategies for seed in args.seeds]

    def one(cell: tuple[str, int, int]) -> dict[str, Any]:
        strategy, k, seed = cell
        record = run_one(args.work, args.work / f"seed-{seed}-{data_key}", template, answers, strategy, k,
                         seed, args.semeval, env, args.resume, ["--judge", args.judge])  # fmt: skip
        gain = record["domain"].get("gain") if record.get("domain") else None
        print(f"{strategy:>9} k={k:<4} seed {seed}: {record['decision'] or record['status']}"
              f" (domain gain {gain}, guard loss {(record.get('guard') or {}).get('loss')}),"
              f" {sum(record['seconds'].values()):.0f}s  [{time.perf_counter() - started:.0f}s]", flush=True)  # fmt: skip
        return record

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        runs = list(pool.map(one, plan))
    result = {"data": str(args.data), "data_sha256": file_sha256(args.data), "model_sha256": file_sha256(args.model),
              "default_strategy": resolved, "judge": args.judge, "holdout_fraction": HOLDOUT_FRACTION, "boot": args.boot,
              "jobs": args.jobs, "seeds": seeds, "runs": runs,
              "seconds": round(time.perf_counter() - started, 1), "cpu_seconds": round(cpu_seconds() - cpu_at_start, 1),
              "cores": os.cpu_count(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
    result["summary"] = summarise(result, args.boot)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(render(result, result["summary"]))
    print(f"done in {result['seconds']:.0f}s ({result['cpu_seconds']:.0f}s of CPU in the steps); wrote {args.out}",
          file=sys.stderr)  # fmt: skip
    return 0


def run(argv: Sequence[str] | None = None) -> int:
    """`main`, with a failed step or a bad --data file told in a few lines instead of a traceback."""
    from sentimentkit.errors import UserError

    try:
        return main(argv)
    except StepError as exc:
        print(f"error: {exc}\n(the runs that finished are kept: the same command with --resume goes on)",
              file=sys.stderr)  # fmt: skip
        return 2
    except (UserError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(run())
