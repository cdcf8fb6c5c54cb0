"""Fine-tune a Hugging Face encoder for 3-class sentiment and save it with its card (and, if asked,
per-class logit offsets chosen on validation). `training.onnx_export` turns the saved folder into the
int8 ONNX model that is served.

Training needs the `[transformer]` extra (torch, transformers); serving the int8 export needs only
`[onnx]` (onnxruntime, tokenizers) through `sentimentkit.serving.transformer`. Heavy libraries are
imported inside functions, so importing this module is free.

Artifact folder (`save_artifact`): `model.safetensors`, `config.json`, the tokenizer files
(`tokenizer.json` is the one serving uses), and `card.json` (base model and its SHA-256,
hyperparameters, data hashes, metrics, selection runs, library versions, the weights' SHA-256).
"""

from __future__ import annotations

import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sentimentkit import LABELS
from sentimentkit.config import SEED
from sentimentkit.errors import OptionError
from sentimentkit.models.card import (
    CONFIG_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    ModelError,
    code_version,
    data_provenance,
    library_versions,
    new_card,
    open_card,
    sha256_file,
    write_card,
)  # fmt: skip
from sentimentkit.serving.transformer import TorchPredictor, pad_batch, softmax
from sentimentkit.training.evaluate import expected_calibration_error, metrics
from sentimentkit.training.offsets import tune_logit_offsets
from sentimentkit.training.train import clean_validation, load_splits

Log = Callable[[str], None]

LIBRARIES = ("torch", "transformers", "tokenizers", "safetensors", "onnx", "onnxruntime", "numpy")
# Official checkpoints whose weights we can vouch for (SHA-256 of model.safetensors).
KNOWN_BASE_SHA256: dict[str, str] = {
    "sentence-transformers/all-MiniLM-L6-v2": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# What resolve_base_model downloads from a hub repo: config, tokenizer files and safetensors weights.
HUB_ALLOW_PATTERNS = ("*.json", "*.txt", "*.safetensors", "*.model")
# Files copied from a tokenizer folder into an artifact (only those that exist).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


@dataclass
class TrainConfig:
    """Hyperparameters of one fine-tuning run (all recorded in the card)."""

    epochs: int = 1
    lr: float = 1e-4
    batch_size: int = 32
    max_length: int = 64
    class_weight: str = "balanced"  # "none" | "balanced" | "sqrt"
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = SEED
    max_train_rows: int | None = None
    bf16: bool = False  # bfloat16 autocast for forward/backward (fp32 master weights)
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    eval_batch_size: int = 128
    tune_bias: bool = False  # after training: per-class logit offsets chosen on validation macro recall
    # Split that picks the epoch (and lr/class weight): "validation", or "clean_validation" (validation
    # without its near-duplicates of train tweets, which reward memorising train; see train.clean_validation).
    select_on: str = "validation"
    extra: dict[str, Any] = field(default_factory=dict)


# --- base model ----------------------------------------------------------------------------------
def weights_file(folder: Path) -> Path:
    """The weights file of a Hugging Face model folder (safetensors preferred)."""
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise ModelError(f"{folder} has no {' or '.join(WEIGHT_FILES)}; is it a Hugging Face model folder?")


def resolve_base_model(
    base_model: str | Path, expected_sha256: str | None = None
) -> tuple[Path, dict[str, Any]]:
    """A local folder for `base_model` (a directory, or a hub id fetched with huggingface_hub).

    Returns the folder and its provenance (id or path, weights file, SHA-256, and `official`: the hub id
    whose known hash the weights have, if any). Refuses weights whose SHA-256 differs from
    `expected_sha256`, or from the known hash of an official hub id.
    """
    name = str(base_model)
    folder = Path(base_model).expanduser()
    if not folder.is_dir():
        if Path(name).is_absolute() or name.startswith("."):
            raise ModelError(f"Base model folder {name} not found.")
        from huggingface_hub import snapshot_download  # users with internet: hub id

        try:
            folder = Path(snapshot_download(name, allow_patterns=list(HUB_ALLOW_PATTERNS)))
        except Exception as exc:  # offline, unknown id, gated repo: hub errors have many types
            raise ModelError(
                f"{name} is not a local folder and could not be fetched from the Hugging Face hub "
                f"({type(exc).__name__}: {exc}). Pass a folder with config.json, the weights and the tokenizer."
            ) from None
    weights = weights_file(folder)
    digest = sha256_file(weights)
    expected = expected_sha256 or KNOWN_BASE_SHA256.get(name)
    if expected and digest != expected.lower():
        raise ModelError(
            f"Refusing base model {name}: {weights.name} has SHA-256 {digest[:16]}..., expected "
            f"{expected[:16]}.... Re-download the official weights."
        )
    official = next((hub_id for hub_id, known in KNOWN_BASE_SHA256.items() if known == digest), None)
    return folder, {"name": name, "weights_file": weights.name, "sha256": digest, "verified": bool(expected or official),
                    "official": official}  # fmt: skip


# --- data ----------------------------------------------------------------------------------------
def load_fast_tokenizer(folder: str | Path, max_length: int) -> Any:
    """A `tokenizers.Tokenizer` (from tokenizer.json, or built by transformers) truncating at max_length."""
    from tokenizers import Tokenizer

    folder = Path(folder)
    if (folder / TOKENIZER_FILE).is_file():
        tok = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
    else:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(folder), use_fast=True).backend_tokenizer
    configure_tokenizer(tok, max_length)
    return tok


def configure_tokenizer(tok: Any, max_length: int) -> Any:
    """Truncate at max_length, no padding (batches are padded to their longest text)."""
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)
    return tok


def encode(tok: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text (special tokens included, truncated)."""
    return [e.ids for e in tok.encode_batch([str(t) for t in texts])]


def length_batches(
    lengths: Sequence[int], batch_size: int, rng: random.Random, pool: int = 50
) -> list[list[int]]:
    """Shuffled batches of indices with similar lengths (less padding): sort within pools, shuffle."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    step = batch_size * pool
    for start in range(0, len(order), step):
        chunk = sorted(order[start : start + step], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def class_weights(labels: Sequence[str], mode: str) -> np.ndarray:
    """Loss weight per class in LABELS order: none (1), balanced (n / (k * count)), or its sqrt."""
    counts = np.array([sum(1 for y in labels if y == label) for label in LABELS], dtype=float)
    if mode == "none":
        return np.ones(len(LABELS))
    balanced = counts.sum() / (len(LABELS) * np.maximum(counts, 1))
    if mode == "balanced":
        return balanced
    if mode == "sqrt":
        return np.sqrt(balanced)
    raise OptionError(f"class_weight must be none, balanced or sqrt, got {mode!r}")


def subsample(frame: pd.DataFrame, rows: int | None, seed: int) -> pd.DataFrame:
    """A stratified random subset of `rows` rows (the whole frame when rows is None or larger)."""
    if rows is None or rows >= len(frame):
        return frame
    fraction = rows / len(frame)
    parts = [g.sample(frac=fraction, random_state=seed) for _, g in frame.groupby("label", sort=True)]
    return pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)


# --- training ------------------------------------------------------------------------------------
def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_model(folder: str | Path) -> Any:
    """A sequence-classification model with our three labels on top of the encoder in `folder`."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the "classifier newly initialised" report is expected here
    return AutoModelForSequenceClassification.from_pretrained(
        str(folder), num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)},
    )  # fmt: skip


def make_optimizer(model: Any, cfg: TrainConfig, total_steps: int) -> tuple[Any, Any]:
    """AdamW (no decay on biases and LayerNorm) with linear warmup then linear decay to zero."""
    import torch

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    warmup = max(1, int(cfg.warmup_ratio * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _autocast(enabled: bool) -> Any:
    import contextlib

    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def train_epoch(
    model: Any, ids: list[list[int]], y: np.ndarray, cfg: TrainConfig, state: dict[str, Any]
) -> float:
    """One pass over the training data; returns the mean loss."""
    import torch
    from tqdm.auto import tqdm

    model.train()
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(state["weights"], dtype=torch.float32))
    batches = length_batches([len(r) for r in ids], cfg.batch_size, state["rng"])
    total, bar = 0.0, tqdm(batches, desc=f"epoch {state['epoch'] + 1}/{cfg.epochs}", unit="batch")
    for n, batch in enumerate(bar, start=1):
        input_ids, mask = pad_batch([ids[i] for i in batch])
        with _autocast(cfg.bf16):
            logits = model(
                input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask)
            ).logits
        loss = loss_fn(logits.float(), torch.from_numpy(y[batch]))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        state["optimizer"].step()
        state["scheduler"].step()
        state["optimizer"].zero_grad(set_to_none=True)
        total += loss.item()
        if n % 20 == 0:
            bar.set_postfix(loss=f"{total / n:.4f}")
    return total / max(1, len(batches))


def torch_proba(model: Any, tok: Any, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
    """Softmax probabilities (n, 3) of a torch model, batched by length (order preserved)."""
    import torch

    ids = encode(tok, texts)
    out = np.zeros((len(ids), len(LABELS)), dtype=np.float32)
    order = np.argsort([len(r) for r in ids], kind="stable")
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            input_ids, mask = pad_batch([ids[i] for i in rows])
            logits = model(
                input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask)
            ).logits
            out[rows] = torch.softmax(logits.float(), dim=-1).numpy()
    return out


def score_proba(proba: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """metrics() plus top-label ECE for a probability matrix against true labels."""
    pred = np.asarray(LABELS)[np.argmax(proba, axis=1)]
    result = metrics(list(labels), pred.tolist())
    result["ece"] = expected_calibration_error(proba, list(labels))
    return result


def fit(
    base_folder: Path, train: pd.DataFrame, validation: pd.DataFrame, cfg: TrainConfig, log: Log = print
) -> tuple[Any, Any, dict[str, Any]]:
    """Fine-tune on `train`; after each epoch score validation and keep the best epoch's weights.

    Returns (model, tokenizer, record) with per-epoch validation scores and the training seconds.
    """
    import copy

    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)
    train = subsample(train, cfg.max_train_rows, cfg.seed)
    tok = load_fast_tokenizer(base_folder, cfg.max_length)
    model = load_model(base_folder)
    ids = encode(tok, train["text"].tolist())
    y = np.array([LABELS.index(label) for label in train["label"]], dtype=np.int64)
    steps = cfg.epochs * math.ceil(len(ids) / cfg.batch_size)
    optimizer, scheduler = make_optimizer(model, cfg, steps)
    state = {"optimizer": optimizer, "scheduler": scheduler, "rng": random.Random(cfg.seed),
             "weights": class_weights(train["label"].tolist(), cfg.class_weight)}  # fmt: skip
    epochs, best, best_state, train_seconds, cpu_seconds = [], -1.0, None, 0.0, 0.0
    load_before = os.getloadavg()[0]
    for epoch in range(cfg.epochs):
        state["epoch"] = epoch
        start, cpu_start = time.perf_counter(), time.process_time()
        loss = train_epoch(model, ids, y, cfg, state)
        train_seconds += time.perf_counter() - start
        # CPU seconds do not grow when other processes share the cores; wall seconds do.
        cpu_seconds += time.process_time() - cpu_start
        val = score_proba(
            torch_proba(model, tok, validation["text"].tolist(), cfg.eval_batch_size), validation["label"]
        )
        epochs.append({"epoch": epoch + 1, "train_loss": round(loss, 5), "avg_recall": val["avg_recall"],
                       "f1_pn": val["f1_pn"], "accuracy": val["accuracy"], "train_seconds": round(train_seconds, 1)})  # fmt: skip
        log(
            f"epoch {epoch + 1}: loss {loss:.4f}, {cfg.select_on} AvgRec {val['avg_recall']:.4f} ({train_seconds:.0f}s)"
        )
        if val["avg_recall"] > best:
            best = val["avg_recall"]
            best_state = copy.deepcopy(model.state_dict()) if cfg.epochs > 1 else None
            best_epoch = epoch + 1
    if best_state is not None:
        model.load_state_dict(best_state)
    record = {"epochs": epochs, "best_epoch": best_epoch, "validation_avg_recall": best,
              "train_rows": len(ids), "train_seconds": round(train_seconds, 1),
              "train_cpu_seconds": round(cpu_seconds, 1), "torch_threads": torch.get_num_threads(),
              "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}  # fmt: skip
    return model, tok, record


# --- selection -----------------------------------------------------------------------------------
def select_config(
    base_folder: Path, splits: dict[str, pd.DataFrame], cfg: TrainConfig,
    lrs: Sequence[float], class_modes: Sequence[str], search_rows: int, log: Log = print,
) -> tuple[TrainConfig, list[dict[str, Any]]]:  # fmt: skip
    """Try every (lr, class_weight) pair for one epoch on a `search_rows` subset of train; pick the best
    on validation macro recall. Returns the chosen config and a table of every run."""
    from dataclasses import replace

    table = []
    for lr in lrs:
        for mode in class_modes:
            trial = replace(cfg, lr=lr, class_weight=mode, epochs=1, max_train_rows=search_rows)
            _, _, record = fit(base_folder, splits["train"], splits["validation"], trial, log=log)
            table.append({"lr": lr, "class_weight": mode, "train_rows": record["train_rows"],
                          **{k: record["epochs"][0][k] for k in ("avg_recall", "f1_pn", "accuracy", "train_seconds")}})  # fmt: skip
            log(f"search lr={lr:g} class_weight={mode}: validation AvgRec {table[-1]['avg_recall']:.4f}")
    best = max(table, key=lambda row: row["avg_recall"])
    return replace(cfg, lr=best["lr"], class_weight=best["class_weight"]), table


# --- artifact ------------------------------------------------------------------------------------
def save_artifact(model: Any, tok: Any, tok_folder: Path, out: Path, card: dict[str, Any]) -> dict[str, Any]:
    """Write weights (safetensors), config, tokenizer files and card.json (with the files' SHA-256s).

    `tokenizer.json` is the configured `tokenizers.Tokenizer` (truncation at max_length, no padding),
    the exact tokenisation training used; the other tokenizer files are copied for transformers.
    """
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (tok_folder / name).is_file() and tok_folder.resolve() != out.resolve():
            shutil.copyfile(tok_folder / name, out / name)
    tok.save(str(out / TOKENIZER_FILE))
    # config.json too: transformers reads it when serving the folder with torch.
    names = (WEIGHTS_FILE, TOKENIZER_FILE, CONFIG_FILE)
    files = {name: sha256_file(out / name) for name in names}
    size = (out / WEIGHTS_FILE).stat().st_size
    return write_card(out, {**card, "model_file": WEIGHTS_FILE, "size_bytes": size, "files": files})


def reported_splits(splits: dict[str, pd.DataFrame]) -> list[str]:
    """The splits a card reports metrics for: validation, clean_validation when it was used, test."""
    return [s for s in ("validation", "clean_validation", "test") if s in splits]


def model_name(base: dict[str, Any]) -> str:
    """The artifact's name from its base: the official checkpoint's when the weights' hash is a known one
    (a folder unpacked from a wheel is often just "model"), else the folder or hub id's last part."""
    return f"sentimentkit-transformer-{Path(base.get('official') or base['name']).name}"


def transformer_card(
    base: dict[str, Any], cfg: TrainConfig, record: dict[str, Any], scores: dict[str, Any],
    data: dict[str, Any], selection: list[dict[str, Any]],
) -> dict[str, Any]:  # fmt: skip
    """The transformer model card (format "torch"; export_onnx derives the "onnx-int8" one): the common
    schema of `models.card` plus the base model, max_length, selection runs and training record."""
    hyperparameters = {k: v for k, v in asdict(cfg).items() if k != "extra"} | cfg.extra
    card = new_card(model_name(base), "torch", "tr", hyperparameters, data, record["train_seconds"],
                    library_versions(LIBRARIES), scores, code=code_version())  # fmt: skip
    return {
        **card,
        "max_length": cfg.max_length,
        "base_model": base,
        "selection": selection,
        "training": record,
    }


def train_transformer(
    base_model: str | Path, data_dir: str | Path | None, out: str | Path, cfg: TrainConfig,
    lrs: Sequence[float] = (), class_modes: Sequence[str] = (), search_rows: int = 8000,
    base_sha256: str | None = None, log: Log = print, selection: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Select (lr, class weighting) on validation if several are given, fine-tune, score validation and
    test (reported only), and write the artifact folder `out`. Returns its card.

    `selection` records an earlier selection run (its table) in the card when no search runs here."""
    if cfg.select_on not in ("validation", "clean_validation"):
        raise OptionError(f"select_on must be 'validation' or 'clean_validation', not {cfg.select_on!r}")
    base_folder, base = resolve_base_model(base_model, base_sha256)
    splits = load_splits(data_dir)
    if cfg.select_on == "clean_validation":
        splits["clean_validation"] = clean_validation(splits)
        if splits["clean_validation"].empty:  # every validation tweet is re-posted in train (tiny data)
            raise OptionError(
                "select_on='clean_validation': every validation text has a near-duplicate in train"
            )
        log(
            f"choosing on clean validation: {len(splits['clean_validation'])} of {len(splits['validation'])} rows"
        )
    chooser = {**splits, "validation": splits[cfg.select_on]}
    selection = list(selection or [])
    if len(lrs) > 1 or len(class_modes) > 1:
        cfg, selection = select_config(base_folder, chooser, cfg, lrs or [cfg.lr],
                                       class_modes or [cfg.class_weight], search_rows, log)  # fmt: skip
        log(f"chosen on {cfg.select_on}: lr={cfg.lr:g}, class_weight={cfg.class_weight}")
    model, tok, record = fit(base_folder, splits["train"], chooser["validation"], cfg, log=log)
    record["selected_on"] = cfg.select_on
    scores = {split: score_proba(torch_proba(model, tok, splits[split]["text"].tolist(), cfg.eval_batch_size),
                                 splits[split]["label"]) for split in reported_splits(splits)}  # fmt: skip
    data = data_provenance(Path(data_dir) if data_dir else None, splits)  # train, validation, test
    card = transformer_card(base, cfg, record, scores, data, selection)
    card = save_artifact(model, tok, base_folder, Path(out), card)
    return tune_bias(Path(out), splits, log, on=cfg.select_on) if cfg.tune_bias else card


# --- class bias (logit offsets) chosen on validation ----------------------------------------------
def tune_bias(
    folder: Path, splits: dict[str, pd.DataFrame], log: Log = print, on: str = "validation"
) -> dict[str, Any]:
    """Choose logit offsets on split `on` for the torch model in `folder`, then rewrite its card: the
    offsets (applied by every predictor), metrics with them, and the metrics without them, for every
    reported split (validation, clean_validation when present, test). Among equally good offsets
    the smallest win (`offsets.tune_logit_offsets`)."""
    predictor = TorchPredictor(folder)
    predictor.offsets = None
    raw = {
        split: predictor.predict_proba(splits[split]["text"].tolist()) for split in reported_splits(splits)
    }
    offsets, value = tune_logit_offsets(np.log(raw[on]), splits[on]["label"])
    log(f"logit offsets chosen on {on}: {offsets.tolist()} ({on} AvgRec {value:.4f})")
    card = open_card(folder)
    card["logit_offsets"] = offsets.tolist()
    card["metrics_without_offsets"] = {s: score_proba(p, splits[s]["label"]) for s, p in raw.items()}
    card["metrics"] = {
        s: score_proba(softmax(np.log(p) + offsets), splits[s]["label"]) for s, p in raw.items()
    }
    card["hyperparameters"]["tune_bias"] = True
    return write_card(folder, card)
