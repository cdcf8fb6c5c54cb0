"""One table: VADER, the default TF-IDF model, the fine-tuned transformer (torch fp32, onnxruntime int8).

Each model is measured in its own subprocess, so its peak memory (max RSS) is its own:
- accuracy: macro recall (AvgRec), F1^PN and accuracy on the test split (all rows unless --max-rows);
- batch throughput: texts/s of `predict_proba` over those rows in one call (the predictors chunk
  internally), timed after a warm-up;
- single-text latency: p50/p99 of `predict_proba(text)` on --latency-n test texts, one at a time;
- artifact size, training time (from the model cards), peak RSS of the process.
Cost per million predictions = price_per_hour / (3600 * throughput) * 1e6, at a stated on-demand
2-vCPU VM price (--price-per-hour).

Usage:
  SENTIMENTKIT_DATA_DIR=../shared/data/semeval2017 python benchmarks/transformer_comparison.py \
      --torch-model artifacts/minilm-2ep --onnx-model models/transformer-int8
Writes benchmarks/transformer_comparison.md (the table, then transformer_comparison_notes.md: how the
model was trained and chosen) and benchmarks/_work/transformer_comparison.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from sentimentkit.config import REPO_ROOT, Settings
from sentimentkit.data import load_split
from sentimentkit.training.evaluate import metrics

OUT_MD = Path(__file__).with_suffix(".md")
NOTES_MD = Path(__file__).with_name("transformer_comparison_notes.md")
OUT_JSON = Path(__file__).parent / "_work" / "transformer_comparison.json"
# Assumed list price of an on-demand 2-vCPU general-purpose VM (AWS c6i.large, us-east-1, Linux).
DEFAULT_PRICE_PER_HOUR = 0.085
ROWS = [
    ("vader", "VADER (lexicon, no training)"),
    ("tfidf", "TF-IDF + LR (model.pkl, default)"),
    ("torch", "MiniLM-L6 fine-tuned, torch fp32"),
    ("onnx", "MiniLM-L6 fine-tuned, onnxruntime int8"),
]


# --- child: measure one model ---------------------------------------------------------------------
def open_model(kind: str, path: str | None, threads: int) -> tuple[Any, dict[str, Any]]:
    """A callable texts -> labels or probabilities, plus its size and training time."""
    if kind == "vader":
        import vaderSentiment

        from sentimentkit.models.baselines import VaderBaseline

        lexicon = Path(vaderSentiment.__file__).parent / "vader_lexicon.txt"
        return VaderBaseline(), {"size_bytes": lexicon.stat().st_size, "train_seconds": None,
                                 "size_note": "vader_lexicon.txt"}  # fmt: skip
    if kind == "tfidf":
        from sentimentkit.serving.predictor import Predictor

        p = Predictor.load(path)
        return p, {"size_bytes": Path(path).stat().st_size, "train_seconds": p.card.get("train_seconds"),
                   "size_note": "model.pkl"}  # fmt: skip
    from sentimentkit.serving.transformer import OnnxPredictor, TorchPredictor

    cls = TorchPredictor if kind == "torch" else OnnxPredictor
    p = cls(path, threads=threads)
    files = (
        ["model.safetensors", "tokenizer.json"] if kind == "torch" else ["model.int8.onnx", "tokenizer.json"]
    )
    size = sum((Path(path) / f).stat().st_size for f in files)
    return p, {
        "size_bytes": size,
        "train_seconds": p.card.get("train_seconds"),
        "size_note": " + ".join(files),
    }


def labels_of(model: Any, texts: list[str]) -> list[str]:
    """Predicted labels (VADER has no probabilities; the others go through predict_proba)."""
    if hasattr(model, "predict_proba"):
        from sentimentkit import LABELS

        return [LABELS[i] for i in np.argmax(model.predict_proba(texts), axis=1)]
    return model.predict(texts)


def measure(
    kind: str, path: str | None, data_dir: str, max_rows: int | None, latency_n: int, threads: int
) -> dict:
    """Everything for one model, in this process."""
    test = load_split("test", data_dir)
    if max_rows:
        test = test.sample(n=min(max_rows, len(test)), random_state=13)
    texts, y = test["text"].tolist(), test["label"].tolist()
    start = time.perf_counter()
    model, info = open_model(kind, path, threads)
    info["load_seconds"] = time.perf_counter() - start
    labels_of(model, texts[:64])  # warm-up (lazy caches, thread pools)
    start = time.perf_counter()
    pred = labels_of(model, texts)
    info["throughput"] = len(texts) / (time.perf_counter() - start)
    single = [t for t in texts[:latency_n]]
    for t in single[:20]:
        labels_of(model, [t]) if kind == "vader" else model.predict_proba(t)
    times = []
    for t in single:
        s = time.perf_counter()
        labels_of(model, [t]) if kind == "vader" else model.predict_proba(t)
        times.append(time.perf_counter() - s)
    m = metrics(y, pred)
    info.update({"rows": len(texts), "avg_recall": m["avg_recall"], "f1_pn": m["f1_pn"], "accuracy": m["accuracy"],
                 "p50_ms": float(np.percentile(times, 50) * 1e3), "p99_ms": float(np.percentile(times, 99) * 1e3),
                 "latency_n": len(times), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})  # fmt: skip
    return info


# --- parent: run every child, write the table -----------------------------------------------------
def run_child(kind: str, path: str | None, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, "--data", str(args.data), "--latency-n", str(args.latency_n),
           "--threads", str(args.threads)]  # fmt: skip
    if path:
        cmd += ["--path", path]
    if args.max_rows.get(kind):
        cmd += ["--max-rows", str(args.max_rows[kind])]
    # Passive OpenMP waiting: spinning threads only steal the shared cores (same idea as the ONNX
    # predictor's allow_spinning=0).
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(REPO_ROOT)}
    print(f"measuring {kind} ...", file=sys.stderr, flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {json.dumps(result)}", file=sys.stderr, flush=True)
    return result


def cost_per_million(throughput: float, price: float) -> float:
    """Dollars per 1e6 predictions when the VM does nothing else at `throughput` texts/s."""
    return price / (3600 * throughput) * 1e6


def fmt_train(seconds: float | None) -> str:
    return "none" if seconds is None else f"{seconds / 60:.1f} min"


def table(results: dict[str, dict[str, Any]], price: float) -> list[str]:
    lines = ["| model | macro recall | F1^PN | accuracy | p50 ms | p99 ms | texts/s (batch) | artifact | "
             "peak RSS | training | $ per 1M predictions |", "|" + "---|" * 11]  # fmt: skip
    for kind, name in ROWS:
        r = results.get(kind)
        if r is None:
            continue
        rows = "" if r["rows"] == results_rows(results) else f" ({r['rows']} rows)"
        lines.append(
            f"| {name}{rows} | {r['avg_recall']:.4f} | {r['f1_pn']:.4f} | {r['accuracy']:.4f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['throughput']:,.0f} | {r['size_bytes'] / 1e6:.1f} MB | {r['peak_rss_mb']:.0f} MB | "
            f"{fmt_train(r['train_seconds'])} | ${cost_per_million(r['throughput'], price):.4f} |"
        )
    return lines


def results_rows(results: dict[str, dict[str, Any]]) -> int:
    return max(r["rows"] for r in results.values())


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "python": platform.python_version(),
    }


def write_markdown(
    results: dict[str, dict[str, Any]], args: argparse.Namespace, before: dict, after: dict
) -> None:
    price = args.price_per_hour
    onnx_card = json.loads((Path(args.onnx_model) / "card.json").read_text()) if "onnx" in results else {}
    lines = [
        "# Transformer vs TF-IDF: accuracy, latency, memory and cost",
        "",
        f"Measured {dt.date.today().isoformat()} by `benchmarks/transformer_comparison.py`, all rows in one run, on "
        f"{before['cpu']} with {before['cores']} cores, no GPU; 1-minute load average {before['load_avg'][0]:.1f} at "
        f"the start and {after['load_avg'][0]:.1f} at the end (the run's own processes count in it). Latencies and "
        "throughputs vary with what else runs on the machine; the accuracy columns are exact.",
        "",
        *table(results, price),
        "",
        "- Accuracy columns: test split (SemEval-2017 Task 4A, "
        f"{results_rows(results):,} tweets){' unless the row says otherwise' if len({r['rows'] for r in results.values()}) > 1 else ''}. "
        "Macro recall (AvgRec) is the task's official metric.",
        "- texts/s (batch): one `predict_proba` call over all those test tweets (the transformer predictors sort by "
        f"length and run chunks of 64); {args.threads} threads for torch and onnxruntime (the machine's cores), "
        "VADER and TF-IDF are single-threaded Python/NumPy.",
        f"- Latency: `predict_proba(text)` on the first {args.latency_n} test tweets one at a time after 20 warm-up calls.",
        "- Peak RSS: `ru_maxrss` of a fresh subprocess per model (interpreter, libraries, model, data and the test run).",
        "- Artifact: what serving reads (VADER: its lexicon file; TF-IDF: model.pkl; torch: model.safetensors + "
        "tokenizer.json; int8: model.int8.onnx + tokenizer.json).",
        f"- Cost: `$/hour / (3600 x texts/s) x 1e6` at an assumed **${price:.3f}/hour** (on-demand 2-vCPU VM, AWS c6i.large "
        "list price, us-east-1, Linux; change with `--price-per-hour`), i.e. the VM kept busy with batch scoring.",
    ]
    if onnx_card:
        q = onnx_card.get("quantisation", {})
        fp32 = onnx_card.get("fp32_metrics", {}).get("test", {}).get("avg_recall")
        lost = q.get("avg_recall_lost", {})
        lines += [
            f"- Quantisation: dynamic int8 ({', '.join(q.get('op_types_to_quantize', []))}, "
            f"{'per-channel' if q.get('per_channel') else 'per-tensor'}) of the "
            f"fp32 ONNX export (opset {q.get('opset')}); macro recall lost: "
            + ", ".join(f"{k} {v * 100:+.2f} points" for k, v in lost.items())
            + f" (fp32 test {fp32:.4f})."
            if fp32 is not None
            else "",
        ]
    lines += ["", *args.notes]
    if args.notes_file:
        lines += ["", Path(args.notes_file).read_text(encoding="utf-8").rstrip()]
    OUT_MD.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--path", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=str(Settings.from_env().data_dir))
    parser.add_argument("--tfidf-model", default=str(REPO_ROOT / "model.pkl"))
    parser.add_argument("--torch-model", default=str(REPO_ROOT / "artifacts" / "minilm-2ep"))
    parser.add_argument("--onnx-model", default=str(REPO_ROOT / "models" / "transformer-int8"))
    parser.add_argument("--latency-n", type=int, default=500)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--max-rows", type=int, default=None, help="child: test rows to use")
    parser.add_argument("--torch-max-rows", type=int, default=None, help="cap the torch fp32 row (slow)")
    parser.add_argument("--price-per-hour", type=float, default=DEFAULT_PRICE_PER_HOUR)
    parser.add_argument("--only", nargs="+", default=[k for k, _ in ROWS])
    parser.add_argument(
        "--note", dest="notes", action="append", default=[], help="extra line for the markdown"
    )
    parser.add_argument(
        "--notes-file", default=str(NOTES_MD), help="markdown appended to the report (how it was trained)"
    )
    parser.add_argument("--render-only", action="store_true", help="rewrite the markdown from the last JSON")
    args = parser.parse_args()
    if args.child:
        print(
            json.dumps(measure(args.child, args.path, args.data, args.max_rows, args.latency_n, args.threads))
        )
        return 0
    if args.render_only:
        saved = json.loads(OUT_JSON.read_text())
        write_markdown(saved["results"], args, *saved["machine"])
        return 0
    args.max_rows = {"torch": args.torch_max_rows}
    paths = {"vader": None, "tfidf": args.tfidf_model, "torch": args.torch_model, "onnx": args.onnx_model}
    before = machine()
    results = {kind: run_child(kind, paths[kind], args) for kind in args.only}
    after = machine()
    OUT_JSON.parent.mkdir(parents=True, exist_ok=True)
    OUT_JSON.write_text(json.dumps({"machine": [before, after], "results": results}, indent=2))
    write_markdown(results, args, before, after)
    print("\n".join(table(results, args.price_per_hour)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
