"""Shared fixtures: the committed model, a tiny model trained on inline data, the shared data."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentimentkit.config import REPO_ROOT
from sentimentkit.mlops.predlog import PredictionLog
from sentimentkit.models.pipeline import build_pipeline, save_model
from sentimentkit.serving.predictor import Predictor

SHARED_DATA = (REPO_ROOT.parent / "shared" / "data" / "semeval2017").resolve()
COMMITTED_MODEL = REPO_ROOT / "model.pkl"

TINY_TEXTS = [
    "I love this, it is great and wonderful",
    "what a fantastic happy day :)",
    "best movie ever, so good",
    "I hate this, it is terrible and awful",
    "worst day ever, so sad :(",
    "this is bad and disgusting",
    "the meeting is on tuesday at noon",
    "the train leaves from platform two",
    "she posted the report this morning",
] * 3
TINY_LABELS = (["positive"] * 3 + ["negative"] * 3 + ["neutral"] * 3) * 3


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The SemEval-2017 splits beside the checkout; tests needing them skip where absent."""
    if not (SHARED_DATA / "test.csv").is_file():
        pytest.skip(
            f"shared data not found at {SHARED_DATA} (only present in the project's checkouts and CI)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real pipeline trained in a second on inline texts, saved with its card."""
    pipeline = build_pipeline({"C": 10.0, "word_min_df": 1, "char_min_df": 1}).fit(TINY_TEXTS, TINY_LABELS)
    path = tmp_path_factory.mktemp("tiny") / "model.pkl"
    save_model(pipeline, path, {"version": "tiny-test", "default_threshold": 0.5})
    return path


@pytest.fixture(scope="session")
def tiny_predictor(tiny_model_path: Path) -> Predictor:
    return Predictor.load(tiny_model_path)


@pytest.fixture(scope="session")
def predictor() -> Predictor:
    """The committed default model (model.pkl + model.json at the repository root)."""
    return Predictor.load(COMMITTED_MODEL)


def build_tiny_bert(folder: Path) -> Path:
    """A randomly initialised 2-layer BERT (safetensors, config, WordPiece tokenizer) in `folder`, with a
    vocabulary of TINY_TEXTS' words. Needs torch, transformers and tokenizers (callers importorskip them)."""
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted({w for t in TINY_TEXTS for w in t.lower().replace(",", " , ").split()})
    (folder / "vocab.txt").write_text("\n".join(specials + words) + "\n", encoding="utf-8")
    BertWordPieceTokenizer(str(folder / "vocab.txt"), lowercase=True).save(str(folder / "tokenizer.json"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(specials) + len(words), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # fmt: skip
    BertModel(config).save_pretrained(str(folder), safe_serialization=True)
    return folder


def write_tiny_splits(folder: Path) -> Path:
    """train.csv, validation.csv and test.csv in `folder`, each holding TINY_TEXTS with TINY_LABELS."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"text": TINY_TEXTS, "label": TINY_LABELS})
    for split in ("train", "validation", "test"):
        frame.to_csv(folder / f"{split}.csv", index=False)
    return folder


@pytest.fixture
def tiny_log(tiny_predictor: Predictor, tmp_path: Path) -> Path:
    """A prediction log of 300 rows scored by the tiny model (three texts, 100 times each)."""
    texts = ["I love this, it is great", "worst day ever :(", "the train leaves at noon"] * 100
    with PredictionLog(tmp_path / "log") as log:
        log.submit(tiny_predictor, texts, tiny_predictor.score(texts), source="api")
    return tmp_path / "log"
