"""Serve a fine-tuned transformer folder through the common `BasePredictor` interface.

`OnnxPredictor` needs only `onnxruntime` and `tokenizers` (the `[onnx]` extra): no torch, no
transformers. `TorchPredictor` serves the fp32 training artifact and needs the `[transformer]` extra.
`load_transformer_predictor` picks one by what the folder holds; `load_predictor` calls it for any
directory, so the CLI, the API and the app serve either model through SENTIMENTKIT_MODEL=DIR.

Texts longer than the card's `max_length` tokens are not truncated: they are scored as overlapping
windows of `max_length` tokens, pooled (`token_windows`, `_TransformerPredictor._proba`); `score` says
per record how many windows a text took.

Every file a predictor reads is checked against the SHA-256 its `card.json` records (and the card's
signature, when a signing key is configured) before it is opened, like model.pkl (`models.card`).
Threads: SENTIMENTKIT_TRANSFORMER_THREADS (default: onnxruntime's / torch's own choice).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sentimentkit import LABELS
from sentimentkit.config import Settings
from sentimentkit.models.card import (
    ONNX_INT8_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    ModelError,
    model_threshold,
    open_card,
    require_files,
)
from sentimentkit.serving.base import BasePredictor

DEFAULT_MAX_LENGTH = 128
DEFAULT_BATCH_SIZE = 64

__all__ = ["OnnxPredictor", "TorchPredictor", "load_transformer_predictor"]


def threads_from_env() -> int | None:
    """SENTIMENTKIT_TRANSFORMER_THREADS as a positive int, or None (library default)."""
    return Settings.from_env().transformer_threads


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    return z / z.sum(axis=1, keepdims=True)


def pad_batch(ids: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic padding: (input_ids, attention_mask) int64 arrays padded to the longest row."""
    width = max((len(row) for row in ids), default=1)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return input_ids, mask


def load_tokenizer(path: Path) -> Any:
    """The `tokenizers.Tokenizer` in tokenizer.json, without padding or truncation: long texts are
    split into windows by `token_windows`, never cut."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ModelError(
            "Serving a transformer needs the `tokenizers` library: pip install -r requirements-onnx.txt"
        ) from None
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    # tokenizer.json may carry the truncation the model was trained with; serving must see every token.
    tok.no_truncation()
    return tok


def token_windows(encoding: Any, max_length: int) -> list[list[int]]:
    """The ids of one encoded text as windows of at most `max_length` ids, so no token is dropped.

    A text that fits is one window, its ids unchanged. A longer one keeps its own leading/trailing
    special tokens ([CLS] ... [SEP]) in every window, around equally long slices of the body that
    overlap by half a window (the last slice ends at the text's end), so every token is scored, and
    a phrase cut by one window's edge is seen whole in the next.
    """
    ids = encoding.ids
    if len(ids) <= max_length:
        return [ids]
    special = encoding.special_tokens_mask
    head = next((i for i, s in enumerate(special) if not s), len(ids))
    tail = next((i for i, s in enumerate(reversed(special)) if not s), 0)
    prefix, body, suffix = ids[:head], ids[head : len(ids) - tail], ids[len(ids) - tail :]
    width = max(1, max_length - head - tail)
    step = max(1, width // 2)
    starts = [*range(0, len(body) - width, step), len(body) - width]
    return [prefix + body[s : s + width] + suffix for s in starts]


class _TransformerPredictor(BasePredictor):
    """Shared part: tokenise, split long texts into windows, sort by length, run fixed-size chunks,
    pool each text's windows, softmax, restore order."""

    batch_size: int = DEFAULT_BATCH_SIZE

    def __init__(
        self, folder: str | Path, threshold: float | None = None, max_chars: int = Settings.max_chars,
        threads: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE, settings: Settings | None = None,
    ) -> None:  # fmt: skip
        folder = Path(folder)
        card = open_card(folder, settings=settings)  # signature and hashes, before any file is opened
        require_files(card, folder, [self._model_file(card), TOKENIZER_FILE])
        self._setup(folder, card, threshold, max_chars)
        self.batch_size = batch_size
        self._local = threading.local()
        self._load(folder, card, threads)

    def _model_file(self, card: dict[str, Any]) -> str:
        """The weights file this predictor serves (its SHA-256 is checked against the card)."""
        raise NotImplementedError

    def _load(self, folder: Path, card: dict[str, Any], threads: int | None) -> None:
        """Open the verified weights."""
        raise NotImplementedError

    def _setup(self, folder: Path, card: dict[str, Any], threshold: float | None, max_chars: int) -> None:
        self.folder = folder
        self.card = card
        self.labels = tuple(card.get("labels") or LABELS)
        if set(self.labels) != set(LABELS):
            raise ModelError(f"The card of {folder} has labels {list(self.labels)}, expected {list(LABELS)}.")
        self.threshold = model_threshold(card, threshold)
        self.max_chars = max_chars
        self.max_length = int(card.get("max_length", DEFAULT_MAX_LENGTH))
        self.tokenizer = load_tokenizer(folder / TOKENIZER_FILE)
        self.pad_id = int(self.tokenizer.token_to_id("[PAD]") or 0)
        # Per-class logit offsets chosen on validation at training time (none: plain softmax).
        offsets = card.get("logit_offsets")
        self.offsets = None if offsets is None else np.asarray(offsets, dtype=np.float64)
        if self.offsets is not None and self.offsets.shape != (len(self.labels),):
            raise ModelError(
                f"The card of {folder} has logit_offsets {offsets}; expected {len(self.labels)} numbers."
            )

    def predict_proba(self, texts: str | Sequence[str]) -> np.ndarray:
        """Class probabilities in `self.labels` order: shape (3,) for a string, (n, 3) for a list."""
        if isinstance(texts, str):
            return self._proba([texts])[0]
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)))
        return self._proba([str(t) for t in texts])

    def score(
        self,
        texts: Sequence[object],
        threshold: float | None = None,
        max_chars: int | None = None,
        parts: bool = False,
    ) -> list[dict[str, Any]]:
        """`BasePredictor.score`, each scored record adding `windows`: how many `max_length`-token
        windows its text took (1: it fit whole; more: every window scored and pooled, none cut)."""
        self._local.windows = []  # predict_proba is not called when no text is valid
        records = super().score(texts, threshold, max_chars, parts)
        scored = (record for record in records if record["error"] is None)
        for record, count in zip(scored, self._local.windows):
            record["windows"] = int(count)
        return records

    def _proba(self, texts: list[str]) -> np.ndarray:
        windows = [token_windows(e, self.max_length) for e in self.tokenizer.encode_batch(texts)]
        counts = np.fromiter((len(w) for w in windows), dtype=np.int64, count=len(windows))
        # Per thread, for `score` to report (the API calls one predictor from several threads).
        self._local.windows = counts
        logits = self._window_logits([ids for text in windows for ids in text])
        # A text's score is the mean of its windows' logits (log-linear pooling), then the card's
        # offsets and softmax, as for one window: the offsets were tuned on logits, each window is
        # a full max_length slice (token_windows), so equal weights are length weights, and a text
        # of one window gets exactly the probabilities it got before windowing (x + 0.0) / 1 == x.
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        pooled = np.add.reduceat(logits, starts, axis=0) / counts[:, None]
        return softmax(pooled if self.offsets is None else pooled + self.offsets)

    def _window_logits(self, ids: list[list[int]]) -> np.ndarray:
        """Raw float64 logits of each id list (all texts' windows batched together), in input order."""
        out = np.zeros((len(ids), len(self.labels)))
        # Sorting by length before chunking keeps padding (wasted compute) small.
        order = np.argsort([len(row) for row in ids], kind="stable")
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._logits(*pad_batch([ids[i] for i in rows], self.pad_id))
        return out

    def _logits(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class OnnxPredictor(_TransformerPredictor):
    """The int8 ONNX export run with onnxruntime + tokenizers (no torch)."""

    def _model_file(self, card: dict[str, Any]) -> str:
        return str(card.get("model_file", ONNX_INT8_FILE))

    def _load(self, folder: Path, card: dict[str, Any], threads: int | None) -> None:
        self.session = _onnx_session(folder / self._model_file(card), threads)
        self._inputs = {i.name for i in self.session.get_inputs()}

    def _logits(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        return self.session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]


def _onnx_session(path: Path, threads: int | None) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError(
            "Serving the int8 transformer needs onnxruntime: pip install -r requirements-onnx.txt "
            "(or pip install 'sentimentkit[onnx]')."
        ) from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Busy-waiting threads cost latency and throughput on machines shared with other processes
    # (measured: 116 vs 281 texts/s on 2 busy cores), and buy little on idle ones.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
        raise ModelError(f"onnxruntime could not open {path}: {exc}") from None


class TorchPredictor(_TransformerPredictor):
    """The fp32 fine-tuned model (safetensors) run with torch + transformers."""

    def _model_file(self, card: dict[str, Any]) -> str:
        return WEIGHTS_FILE

    def _load(self, folder: Path, card: dict[str, Any], threads: int | None) -> None:
        try:
            import torch
            from transformers import AutoModelForSequenceClassification
        except ImportError:
            raise ModelError(
                f"{folder} holds torch weights only; serving them needs the training extra "
                "(pip install -r requirements-transformer.txt), or export an int8 ONNX folder with "
                "`python -m sentimentkit export-onnx` and serve that with onnxruntime."
            ) from None
        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        # safetensors only (the hashed file), never a pickled pytorch_model.bin placed beside it.
        self.model = AutoModelForSequenceClassification.from_pretrained(
            str(folder), use_safetensors=True
        ).eval()
        order = [self.model.config.id2label[i] for i in range(len(self.labels))]
        if tuple(order) != self.labels:
            raise ModelError(
                f"{folder}: model label order {order} differs from the card's {list(self.labels)}."
            )

    def _logits(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            out = self.model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask))
        return out.logits.float().numpy()


def load_transformer_predictor(
    path: str | Path, threshold: float | None = None, settings: Settings | None = None
) -> BasePredictor:
    """Open a transformer folder: onnxruntime when it holds model.int8.onnx + tokenizer.json, else torch."""
    settings = settings or Settings.from_env()
    folder = Path(path)
    if not folder.is_dir():
        raise ModelError(f"Transformer model folder {folder} not found.")
    chosen = threshold if threshold is not None else settings.threshold
    threads = threads_from_env()
    if (folder / ONNX_INT8_FILE).is_file() and (folder / TOKENIZER_FILE).is_file():
        return OnnxPredictor(
            folder, threshold=chosen, max_chars=settings.max_chars, threads=threads, settings=settings
        )
    if (folder / WEIGHTS_FILE).is_file():
        return TorchPredictor(
            folder, threshold=chosen, max_chars=settings.max_chars, threads=threads, settings=settings
        )
    raise ModelError(
        f"{folder} holds neither {ONNX_INT8_FILE} + {TOKENIZER_FILE} nor {WEIGHTS_FILE}; "
        "train one with `python -m sentimentkit train-transformer` (and `export-onnx`)."
    )
