"""Export a fine-tuned transformer folder (`training.transformer.save_artifact`) to int8 ONNX.

`export_onnx` traces the torch model to fp32 ONNX (dynamic batch and sequence axes), checks the graph
against torch on other shapes, quantises it to int8 (dynamic: MatMul weights and embedding tables;
per-tensor and per-channel both tried when data is given, the better on validation kept) and writes
the served folder: `model.int8.onnx`, `tokenizer.json` and `card.json` (the source card's provenance,
its own file hashes, the fp32 metrics, the int8 metrics and the macro recall lost). Needs the
`[transformer]` extra plus onnx and onnxruntime; heavy libraries are imported inside functions, so
importing this module is free.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sentimentkit.data import load_split
from sentimentkit.models.card import (
    ONNX_INT8_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    ModelError,
    library_versions,
    open_card,
    require_files,
    sha256_file,
    write_card,
)
from sentimentkit.serving.transformer import OnnxPredictor
from sentimentkit.training.transformer import LIBRARIES, Log, score_proba

ONNX_FP32_FILE = "model.onnx"


class _LogitsOnly:
    """Wraps a sequence-classification model so the ONNX graph has one output: logits."""

    @staticmethod
    def wrap(model: Any) -> Any:
        import torch

        class LogitsOnly(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, input_ids: Any, attention_mask: Any) -> Any:
                return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

        return LogitsOnly(model).eval()


def export_fp32(model_dir: Path, path: Path, opset: int = 17) -> None:
    """Export the fine-tuned model to fp32 ONNX with dynamic batch and sequence axes."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), attn_implementation="eager")
    wrapped = _LogitsOnly.wrap(model.eval())
    # Any in-vocabulary ids do: the graph is traced once, batch and sequence stay dynamic.
    ids = torch.randint(1, model.config.vocab_size, (2, 8), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "logits": {0: "batch"}}  # fmt: skip
    with torch.inference_mode():
        torch.onnx.export(wrapped, (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["logits"], dynamic_axes=axes, opset_version=opset, dynamo=False)  # fmt: skip


def check_export(model_dir: Path, fp32: Path, tolerance: float = 1e-3) -> float:
    """Compare the fp32 ONNX graph with torch on shapes other than the traced one (ModelError if they
    differ): the export must not have frozen the batch size, the length or the padding pattern."""
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    session = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    gen, worst = torch.Generator().manual_seed(1), 0.0
    for batch, length in ((1, 5), (3, 17), (5, 40)):
        ids = torch.randint(1, model.config.vocab_size, (batch, length), generator=gen)
        mask = torch.ones_like(ids)
        mask[-1, length // 2 :] = 0
        with torch.inference_mode():
            expected = model(input_ids=ids, attention_mask=mask).logits.numpy()
        got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    if worst > tolerance:
        raise ModelError(f"The ONNX export differs from torch by {worst:.2g} in logits; not writing it.")
    return worst


def quantise_int8(fp32: Path, int8: Path, per_channel: bool = False) -> dict[str, Any]:
    """Dynamic int8 quantisation of the MatMul weights and the embedding tables (Gather)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    settings = {
        "weight_type": "QInt8",
        "op_types_to_quantize": ["MatMul", "Gather"],
        "per_channel": per_channel,
    }
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8,
                     op_types_to_quantize=settings["op_types_to_quantize"], per_channel=per_channel)  # fmt: skip
    return settings


def export_onnx(
    model_dir: str | Path, out: str | Path, data_dir: str | Path | None = None, opset: int = 17,
    log: Log = print,
) -> dict[str, Any]:  # fmt: skip
    """Export a train-transformer folder to int8 ONNX in `out` (model.int8.onnx, tokenizer.json, card.json).

    With data, per-tensor and per-channel quantisation are both tried and the one with the better
    validation macro recall is kept; validation and test are scored and the macro recall lost against
    the fp32 torch metrics of the source card is recorded. Without data, per-tensor is used."""
    import tempfile

    model_dir, out = Path(model_dir), Path(out)
    # Read the data first: a wrong --data should fail before anything is written.
    frames = {split: load_split(split, data_dir) for split in ("validation", "test")} if data_dir else None
    source = open_card(model_dir)
    require_files(source, model_dir, [WEIGHTS_FILE, TOKENIZER_FILE])
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / ONNX_FP32_FILE
        export_fp32(model_dir, fp32, opset)
        error = check_export(model_dir, fp32)
        log(f"fp32 ONNX matches torch (max logit difference {error:.1e})")
        extra = {"opset": opset, "fp32_onnx_bytes": fp32.stat().st_size, "fp32_onnx_max_logit_error": error}
        tried = [quantised_candidate(model_dir, source, fp32, Path(tmp), pc, extra, frames, log)
                 for pc in ((False, True) if frames else (False,))]  # fmt: skip
        folder, card = max(tried, key=lambda t: t[1]["quantisation"].get("validation_avg_recall", 0.0))[:2]
        out.mkdir(parents=True, exist_ok=True)
        for name in (ONNX_INT8_FILE, TOKENIZER_FILE):
            shutil.copyfile(folder / name, out / name)
    card["quantisation"]["candidates"] = [
        {k: c["quantisation"].get(k) for k in ("per_channel", "validation_avg_recall")} | {"size_bytes": c["size_bytes"]}
        for _, c in tried
    ]  # fmt: skip
    card = write_card(out, card)
    if frames is not None:
        card = write_card(out, score_int8(OnnxPredictor(out), card, frames, log))
    log(
        f"wrote {out / ONNX_INT8_FILE} ({card['size_bytes'] / 1e6:.1f} MB, fp32 ONNX {extra['fp32_onnx_bytes'] / 1e6:.1f} MB)"
    )
    return card


def quantised_candidate(
    model_dir: Path, source: dict[str, Any], fp32: Path, tmp: Path, per_channel: bool,
    extra: dict[str, Any], frames: dict[str, pd.DataFrame] | None, log: Log,
) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    """One int8 folder (model, tokenizer, card) in `tmp`, with its validation macro recall when data is given."""
    folder = tmp / ("int8-per-channel" if per_channel else "int8-per-tensor")
    folder.mkdir()
    quant = quantise_int8(fp32, folder / ONNX_INT8_FILE, per_channel)
    shutil.copyfile(model_dir / TOKENIZER_FILE, folder / TOKENIZER_FILE)
    card = write_card(folder, int8_card(source, folder, {**quant, **extra}))
    if frames is not None:
        val = frames["validation"]
        score = score_proba(OnnxPredictor(folder).predict_proba(val["text"].tolist()), val["label"])[
            "avg_recall"
        ]
        card["quantisation"]["validation_avg_recall"] = score
        card = write_card(folder, card)
        log(f"int8 per_channel={per_channel}: validation AvgRec {score:.4f}")
    return folder, card


def int8_card(source: dict[str, Any], out: Path, quant: dict[str, Any]) -> dict[str, Any]:
    """The int8 folder's card: the source card's provenance, its own file hashes and the fp32 metrics."""
    files = {name: sha256_file(out / name) for name in (ONNX_INT8_FILE, TOKENIZER_FILE)}
    keep = ("name", "task", "labels", "default_threshold", "max_length", "base_model", "hyperparameters",
            "selection", "training", "training_data", "train_seconds", "logit_offsets")  # fmt: skip
    return {
        **{k: source[k] for k in keep if k in source},
        "version": f"{source.get('version', 'unknown')}-int8",
        "format": "onnx-int8",
        "created_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "model_file": ONNX_INT8_FILE,
        "size_bytes": (out / ONNX_INT8_FILE).stat().st_size,
        "files": files,
        "source": {"version": source.get("version"), "weights_sha256": source["files"][WEIGHTS_FILE]},
        "quantisation": quant,
        "fp32_metrics": source.get("metrics", {}),
        "libraries": library_versions(LIBRARIES),
    }


def score_int8(
    predictor: Any, card: dict[str, Any], frames: dict[str, pd.DataFrame], log: Log
) -> dict[str, Any]:
    """Validation and test metrics of the int8 model, and the macro recall lost against fp32."""
    scores, lost = {}, {}
    for split, frame in frames.items():
        scores[split] = score_proba(predictor.predict_proba(frame["text"].tolist()), frame["label"])
        fp32 = card["fp32_metrics"].get(split, {}).get("avg_recall")
        if fp32 is not None:
            lost[split] = round(fp32 - scores[split]["avg_recall"], 5)
        log(f"int8 {split}: AvgRec {scores[split]['avg_recall']:.4f} (fp32 {fp32})")
    quant = {**card["quantisation"], "avg_recall_lost": lost}
    return {**card, "metrics": scores, "quantisation": quant}
