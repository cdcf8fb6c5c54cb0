"""Transformer path end to end on a tiny random BERT built here: train -> save -> load -> predict ->
ONNX export -> int8 -> onnxruntime predict, plus the hash checks. No network, no downloaded weights."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentimentkit import LABELS
from sentimentkit.config import REPO_ROOT
from sentimentkit.models.pipeline import ModelError
from tests.conftest import TINY_LABELS, TINY_TEXTS, build_tiny_bert, write_tiny_splits

torch = pytest.importorskip(
    "torch", reason="needs the [transformer] extra: pip install -r requirements-transformer.txt"
)
transformers = pytest.importorskip("transformers", reason="needs the [transformer] extra (transformers)")
pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install -r requirements-onnx.txt")
pytest.importorskip("onnx", reason="ONNX export needs the onnx package (the [transformer] extra)")
pytest.importorskip("tokenizers", reason="needs the tokenizers library")

from sentimentkit.cli import main  # noqa: E402
from sentimentkit.serving.loader import load_predictor  # noqa: E402
from sentimentkit.serving.transformer import (  # noqa: E402
    OnnxPredictor,
    TorchPredictor,
    pad_batch,
    softmax,
    token_windows,
)
from sentimentkit.training.offsets import tune_logit_offsets  # noqa: E402
from sentimentkit.training.onnx_export import export_onnx  # noqa: E402
from sentimentkit.training.transformer import (  # noqa: E402
    TrainConfig,
    class_weights,
    length_batches,
    resolve_base_model,
)

COMMITTED_INT8 = REPO_ROOT / "models" / "transformer-int8"


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT with a vocabulary of the inline texts' words."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


# Texts the tiny model never trains on, made of its vocabulary's words: three per class.
HELD_OUT = {
    "validation": ["great and wonderful movie", "so happy, best day", "I love this fantastic movie",
                   "terrible and awful day", "I hate this, so bad", "worst movie, disgusting",
                   "the report is on tuesday", "she leaves at noon", "the meeting is this morning"],
    "test": ["what a great day", "this is so good", "wonderful, I love it",
             "what a sad day", "this is so terrible", "awful, I hate it",
             "the train is at noon", "she posted it on tuesday", "the platform is two"],
}  # fmt: skip
HELD_OUT_LABELS = ["positive"] * 3 + ["negative"] * 3 + ["neutral"] * 3


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train.csv of the inline texts; validation.csv and test.csv of other texts, so that choosing the
    learning rate and the epoch on validation differs from choosing them on train or test."""
    folder = write_tiny_splits(tmp_path_factory.mktemp("tiny-data"))
    for split, texts in HELD_OUT.items():
        pd.DataFrame({"text": texts, "label": HELD_OUT_LABELS}).to_csv(folder / f"{split}.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def trained(tiny_base: Path, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CLI's train-transformer on the tiny model: two learning rates compared, ten epochs."""
    out = tmp_path_factory.mktemp("trained") / "model"
    code = main(["train-transformer", "--base-model", str(tiny_base), "--data", str(tiny_data),
                 "--out", str(out), "--epochs", "10", "--lr", "1e-2", "1e-3", "--search-rows", "27",
                 "--batch-size", "4", "--max-length", "32", "--threads", "1", "--tune-bias"])  # fmt: skip
    assert code == 0
    return out


@pytest.fixture(scope="module")
def exported(trained: Path, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exported") / "int8"
    export_onnx(trained, out, data_dir=tiny_data, log=lambda m: None)
    return out


def test_training_writes_a_complete_card(trained: Path, tiny_base: Path) -> None:
    card = json.loads((trained / "card.json").read_text())
    assert {"model.safetensors", "tokenizer.json", "config.json", "card.json"} <= {
        p.name for p in trained.iterdir()
    }
    assert card["labels"] == list(LABELS) and card["format"] == "torch"
    assert len(card["logit_offsets"]) == 3 and set(card["metrics_without_offsets"]) == {"validation", "test"}
    assert card["base_model"]["name"] == str(tiny_base) and len(card["base_model"]["sha256"]) == 64
    assert {row["lr"] for row in card["selection"]} == {1e-2, 1e-3}
    assert card["hyperparameters"]["lr"] in (1e-2, 1e-3) and card["hyperparameters"]["epochs"] == 10
    assert [e["epoch"] for e in card["training"]["epochs"]] == list(range(1, 11))
    assert set(card["training_data"]) == {"train", "validation", "test"}
    assert all(len(d["sha256"]) == 64 for d in card["training_data"].values())
    assert {"torch", "transformers", "tokenizers"} <= set(card["libraries"])
    for split in ("validation", "test"):
        assert 0.0 <= card["metrics"][split]["avg_recall"] <= 1.0
    # Selection really ran on validation (a split apart from train and test): the learning rate with the
    # best validation score of the search, then the epoch with the best validation score, was kept.
    best_search = max(card["selection"], key=lambda row: row["avg_recall"])
    assert card["hyperparameters"]["lr"] == best_search["lr"]
    epochs = [e["avg_recall"] for e in card["training"]["epochs"]]
    assert card["training"]["best_epoch"] == epochs.index(max(epochs)) + 1
    assert card["metrics_without_offsets"]["validation"]["avg_recall"] == pytest.approx(max(epochs), abs=1e-9)
    assert card["metrics"]["validation"]["n"] == card["metrics"]["test"]["n"] == len(HELD_OUT_LABELS)
    # The tiny model generalises from the inline texts to held-out ones: better than chance (1/3).
    assert card["metrics"]["validation"]["avg_recall"] > 0.5
    # One card schema for both model kinds (models.card), and every file serving reads is hashed.
    assert set(card["files"]) == {"model.safetensors", "tokenizer.json", "config.json"}
    assert card["model_file"] == "model.safetensors" and card["default_threshold"] == 0.5
    assert {"name", "version", "created_at", "task", "train_seconds"} <= set(card)


def test_with_a_signing_key_the_export_of_a_signed_folder_is_signed_and_loads(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every card export_onnx writes is signed, so it can open its own candidates under the key; an
    unsigned source is refused."""
    source = tmp_path / "torch"
    shutil.copytree(trained, source)
    monkeypatch.delenv("SENTIMENTKIT_SIGNING_KEY_FILE", raising=False)
    monkeypatch.setenv("SENTIMENTKIT_SIGNING_KEY", "s" * 32)
    with pytest.raises(ModelError, match="not signed"):
        export_onnx(source, tmp_path / "refused", log=lambda m: None)
    assert main(["sign", "--model", str(source)]) == 0
    export_onnx(source, tmp_path / "int8", log=lambda m: None)
    card = json.loads((tmp_path / "int8" / "card.json").read_text())
    assert card["signature"]["algorithm"] == "HMAC-SHA256"
    assert isinstance(load_predictor(tmp_path / "int8"), OnnxPredictor)


def test_torch_predictor_answers_in_the_shape_it_was_asked(trained: Path) -> None:
    predictor = load_predictor(trained)
    assert isinstance(predictor, TorchPredictor)
    one = predictor.predict_proba("what a fantastic happy day")
    many = predictor.predict_proba(TINY_TEXTS[:5])
    assert one.shape == (3,) and many.shape == (5, 3) and predictor.predict_proba([]).shape == (0, 3)
    np.testing.assert_allclose(many.sum(axis=1), 1.0, atol=1e-6)
    assert predictor.predict(TINY_TEXTS[0]) in LABELS
    records = predictor.score(["I love this", "", None])
    assert records[0]["error"] is None and records[1]["error"] == "empty text" and records[2]["error"]


def test_int8_onnx_matches_torch_and_records_the_quantisation_loss(trained: Path, exported: Path) -> None:
    assert {p.name for p in exported.iterdir()} == {"model.int8.onnx", "tokenizer.json", "card.json"}
    onnx_predictor = load_predictor(exported)
    assert isinstance(onnx_predictor, OnnxPredictor)
    torch_proba = load_predictor(trained).predict_proba(TINY_TEXTS)
    onnx_proba = onnx_predictor.predict_proba(TINY_TEXTS)
    assert onnx_proba.shape == (len(TINY_TEXTS), 3)
    assert np.abs(onnx_proba - torch_proba).max() < 0.1
    assert (onnx_proba.argmax(axis=1) == torch_proba.argmax(axis=1)).mean() >= 0.9
    card = json.loads((exported / "card.json").read_text())
    assert (
        card["format"] == "onnx-int8" and card["size_bytes"] == (exported / "model.int8.onnx").stat().st_size
    )
    assert set(card["quantisation"]["avg_recall_lost"]) == {"validation", "test"}
    assert {c["per_channel"] for c in card["quantisation"]["candidates"]} == {False, True}
    frame = onnx_predictor.score_frame(pd.DataFrame({"text": TINY_TEXTS[:4]}), "text")
    assert list(frame["sentiment"]) == onnx_predictor.predict(TINY_TEXTS[:4])


def test_onnx_serving_needs_neither_torch_nor_transformers(exported: Path) -> None:
    # A meta-path hook makes `import torch` / `import transformers` fail, as on a serving-only install.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'transformers'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from sentimentkit.serving.loader import load_predictor\n"
        f"p = load_predictor({str(exported)!r})\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
        "print(type(p).__name__, p.predict('best movie ever'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    name, label = result.stdout.split()
    assert name == "OnnxPredictor" and label in LABELS


def test_a_changed_onnx_file_is_refused(exported: Path, tmp_path: Path) -> None:
    copy = tmp_path / "int8"
    copy.mkdir()
    for p in exported.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    with open(copy / "model.int8.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelError, match="does not match the card"):
        load_predictor(copy)


def test_a_folder_without_card_hashes_is_refused(exported: Path, tmp_path: Path) -> None:
    copy = tmp_path / "int8"
    copy.mkdir()
    for p in exported.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    card = json.loads((copy / "card.json").read_text())
    del card["files"]
    (copy / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="SHA-256"):
        load_predictor(copy)
    (copy / "card.json").unlink()
    with pytest.raises(ModelError, match="card"):
        load_predictor(copy)


def test_base_weights_with_the_wrong_hash_are_refused(tiny_base: Path) -> None:
    folder, info = resolve_base_model(tiny_base)
    assert folder == tiny_base and info["verified"] is False
    with pytest.raises(ModelError, match="Refusing base model"):
        resolve_base_model(tiny_base, expected_sha256="0" * 64)


def test_weights_with_a_known_hash_name_the_model_after_the_official_checkpoint(
    tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wheel unpacks its weights into a folder called "model"; the card names the checkpoint instead."""
    from sentimentkit.training import transformer

    assert resolve_base_model(tiny_base)[1]["official"] is None
    assert transformer.model_name({"name": "/x/model", "official": None}) == "sentimentkit-transformer-model"
    digest = resolve_base_model(tiny_base)[1]["sha256"]
    monkeypatch.setitem(transformer.KNOWN_BASE_SHA256, "org/tiny-bert", digest)
    info = resolve_base_model(tiny_base)[1]
    assert info["official"] == "org/tiny-bert" and info["verified"] is True
    assert transformer.model_name(info) == "sentimentkit-transformer-tiny-bert"


def test_length_batches_cover_every_row_once_and_class_weights_balance() -> None:
    import random

    lengths = [5, 1, 9, 3, 7, 2, 8, 4, 6, 10, 11]
    batches = length_batches(lengths, batch_size=4, rng=random.Random(0), pool=2)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    weights = class_weights(["negative"] + ["neutral"] * 3 + ["positive"] * 2, "balanced")
    np.testing.assert_allclose(weights, [2.0, 2 / 3, 1.0])
    assert TrainConfig().seed == 13


def test_logit_offsets_are_chosen_for_macro_recall_and_applied_by_the_predictor(
    exported: Path, tmp_path: Path
) -> None:
    # Logits that under-predict "positive": an offset on positive recovers it.
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 1.0, 0.6], [0.0, 1.0, 0.7]])
    offsets, value = tune_logit_offsets(logits, ["negative", "neutral", "positive", "positive"])
    assert value == 1.0 and offsets[1] == 0.0 and offsets[2] > 0.4
    assert tune_logit_offsets(np.eye(3), list(LABELS))[0].tolist() == [0.0, 0.0, 0.0]
    copy = tmp_path / "int8"
    copy.mkdir()
    for p in exported.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    card = json.loads((copy / "card.json").read_text())
    (copy / "card.json").write_text(json.dumps({**card, "logit_offsets": [50.0, 0.0, 0.0]}))
    assert set(load_predictor(copy).predict(TINY_TEXTS)) == {"negative"}


@pytest.mark.skipif(not (COMMITTED_INT8 / "card.json").is_file(), reason="no committed int8 model")
def test_committed_accurate_model_loads_and_reads_obvious_tweets() -> None:
    predictor = load_predictor(COMMITTED_INT8)
    assert isinstance(predictor, OnnxPredictor)
    assert predictor.predict(["I love this, best day ever!", "I hate this, worst service ever"]) == [
        "positive",
        "negative",
    ]
    assert predictor.card["metrics"]["test"]["avg_recall"] >= 0.65


def test_epochs_can_be_chosen_on_validation_without_its_reposts_of_train(
    tiny_base: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """--select-on clean_validation: the epoch is picked on validation rows with no near-duplicate in
    train, and the card reports that split beside validation and test."""
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "test"):
        (data / f"{split}.csv").write_bytes((tiny_data / f"{split}.csv").read_bytes())
    fresh = ["such a lovely sunny morning", "this is awful and I am angry", "the meeting is on tuesday"]
    pd.DataFrame({"text": TINY_TEXTS[:9] + fresh, "label": TINY_LABELS[:9] + list(LABELS)}).to_csv(
        data / "validation.csv", index=False
    )
    from sentimentkit.training import transformer

    chooser_texts: list[list[str]] = []
    real_fit = transformer.fit

    def spy_fit(base_folder, train, validation, cfg, log=print):  # type: ignore[no-untyped-def]
        chooser_texts.append(validation["text"].tolist())
        return real_fit(base_folder, train, validation, cfg, log=log)

    monkeypatch.setattr(transformer, "fit", spy_fit)
    out = tmp_path / "model"
    code = main(["train-transformer", "--base-model", str(tiny_base), "--data", str(data), "--out", str(out),
                 "--epochs", "2", "--lr", "1e-2", "--batch-size", "8", "--max-length", "32", "--threads", "1",
                 "--select-on", "clean_validation", "--tune-bias"])  # fmt: skip
    assert code == 0
    # The epoch was chosen on exactly the validation rows that are not re-posts of training rows.
    assert chooser_texts == [fresh]
    assert "logit offsets chosen on clean_validation" in capsys.readouterr().err
    card = json.loads((out / "card.json").read_text())
    assert set(card["metrics_without_offsets"]) == {"validation", "clean_validation", "test"}
    assert card["hyperparameters"]["select_on"] == "clean_validation"
    assert card["training"]["selected_on"] == "clean_validation"
    assert set(card["metrics"]) == {"validation", "clean_validation", "test"}
    chosen = card["training"]["epochs"][card["training"]["best_epoch"] - 1]["avg_recall"]
    assert chosen == max(e["avg_recall"] for e in card["training"]["epochs"])
    assert card["metrics_without_offsets"]["clean_validation"]["avg_recall"] == pytest.approx(
        chosen, abs=1e-9
    )

    # Data where every validation tweet is a re-post of a training tweet: a one-line error, no training.
    reposts = write_tiny_splits(tmp_path / "reposts")  # validation = train
    code = main(["train-transformer", "--base-model", str(tiny_base), "--data", str(reposts), "--out",
                 str(tmp_path / "x"), "--epochs", "1", "--threads", "1", "--select-on", "clean_validation"])  # fmt: skip
    assert code != 0 and "near-duplicate in train" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# --- long texts: windows, not truncation ----------------------------------------------------------
def test_token_windows_cover_every_token_within_max_length(exported: Path) -> None:
    predictor = load_predictor(exported)
    tok, max_length = predictor.tokenizer, predictor.max_length
    short = tok.encode("I love this")
    assert token_windows(short, max_length) == [short.ids]
    encoding = tok.encode(" ".join(TINY_TEXTS))  # about 200 tokens, max_length 32
    body = encoding.ids[1:-1]
    windows = token_windows(encoding, max_length)
    assert len(windows) > 2 and all(len(w) == max_length for w in windows)
    assert all(w[0] == encoding.ids[0] and w[-1] == encoding.ids[-1] for w in windows)  # [CLS] ... [SEP]
    # Consecutive windows overlap, the first starts at the body's start and the last ends at its end.
    assert windows[0][1:-1] == body[: max_length - 2] and windows[-1][1:-1] == body[-(max_length - 2) :]
    joined = windows[0][1:-1]
    for window in windows[1:]:
        inner = window[1:-1]
        overlap = next(k for k in range(len(inner), 0, -1) if joined[-k:] == inner[:k])
        assert overlap >= (max_length - 2) // 2
        joined += inner[overlap:]
    assert joined == body


def test_short_texts_get_exactly_the_unwindowed_probabilities(exported: Path) -> None:
    """A text within max_length tokens is one window: softmax(logits + offsets) of its own ids, bit for
    bit, as before windowing existed."""
    predictor = load_predictor(exported)
    texts = TINY_TEXTS[:9]
    ids = [e.ids for e in predictor.tokenizer.encode_batch(texts)]
    assert max(len(row) for row in ids) <= predictor.max_length
    order = np.argsort([len(row) for row in ids], kind="stable")
    raw = predictor._logits(*pad_batch([ids[i] for i in order], predictor.pad_id))
    expected = np.zeros((len(texts), 3))
    # The tiny model was trained with --tune-bias: its card's logit offsets apply.
    expected[order] = softmax(raw if predictor.offsets is None else raw + predictor.offsets)
    assert np.array_equal(predictor.predict_proba(texts), expected)
    assert [r["windows"] for r in predictor.score(texts)] == [1] * len(texts)


def test_mixed_lengths_keep_their_order_and_report_their_windows(trained: Path) -> None:
    # Torch (fp32) so that a text's scores do not depend on which other texts share its batch.
    predictor = load_predictor(trained)
    long_a = " ".join(TINY_TEXTS[:9]) + " " + TINY_TEXTS[3]  # well over max_length (32) tokens
    long_b = "the meeting is on tuesday at noon " * 8 + "what a fantastic happy day"
    texts = ["I love this", long_a, "", TINY_TEXTS[7], long_b, "worst day ever"]
    alone = [predictor.predict_proba(t) for t in texts if t]
    predictor.batch_size = 3  # windows of one text land in different chunks, out of text order
    records = predictor.score(texts)
    assert records[2]["error"] == "empty text" and "windows" not in records[2]
    scored = [r for r in records if r["error"] is None]
    np.testing.assert_allclose([[r["scores"][c] for c in LABELS] for r in scored], alone, atol=1e-5)
    windows = [r["windows"] for r in scored]
    assert windows[0] == windows[2] == windows[4] == 1 and windows[1] > 2 and windows[3] > 2
    assert predictor.score(["", None]) == [
        {
            "sentiment": None,
            "confidence": None,
            "scores": None,
            "uncertain": None,
            "error": e,
            "language": None,
            "language_confidence": None,
            "mixed": None,
        }
        for e in ("empty text", "empty text")
    ]


@pytest.mark.skipif(not (COMMITTED_INT8 / "card.json").is_file(), reason="no committed int8 model")
def test_words_after_the_first_window_change_the_score() -> None:
    """Regression: the int8 model read only the first 64 tokens, so a long neutral preamble hid the
    sentiment after it (the API accepts 5,120 characters)."""
    predictor = load_predictor(COMMITTED_INT8)
    preamble = "the meeting about the quarterly report is on tuesday at noon in room four and " * 8
    words = preamble.split()[: predictor.max_length - 2]
    filler = " ".join(words)
    while len(predictor.tokenizer.encode(filler).ids) > predictor.max_length:  # exactly one full window
        filler = " ".join(words := words[:-1])
    ending = filler + " I hate this, awful, terrible"
    truncated, full = predictor.predict_proba(filler), predictor.predict_proba(ending)
    negative = LABELS.index("negative")
    # Truncation at 64 tokens gave `ending` exactly the scores of `filler`; scored in full, the
    # negative words count.
    assert full[negative] > truncated[negative] + 0.2
    assert predictor.score([ending])[0]["windows"] == 2
