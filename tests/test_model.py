import json
import shutil

import pytest

from sentimentkit.models.pipeline import ModelError, card_path, load_model, save_model, sha256_file
from sentimentkit.serving.predictor import Predictor


@pytest.fixture
def model_copy(tiny_model_path, tmp_path):
    dest = tmp_path / "model.pkl"
    shutil.copy(tiny_model_path, dest)
    shutil.copy(card_path(tiny_model_path), card_path(dest))
    return dest


def test_round_trip_keeps_predictions_and_card(tiny_predictor, tmp_path):
    path = tmp_path / "again.pkl"
    card = save_model(tiny_predictor.pipeline, path, {"version": "x"})
    pipeline, loaded = load_model(path)
    assert loaded == card == json.loads(card_path(path).read_text())
    assert loaded["files"] == {"again.pkl": sha256_file(path)} and loaded["format"] == "sklearn-pickle"
    texts = ["I love it", "I hate it"]
    assert list(pipeline.predict(texts)) == list(tiny_predictor.pipeline.predict(texts))


def test_tampered_pickle_is_refused_before_unpickling(model_copy):
    data = bytearray(model_copy.read_bytes())
    data[-10] ^= 0xFF
    model_copy.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match the card"):
        Predictor.load(model_copy)


def test_missing_model_says_how_to_get_one(tmp_path):
    with pytest.raises(ModelError, match="not found.*train"):
        load_model(tmp_path / "nope.pkl")


def test_missing_card_is_refused(model_copy):
    card_path(model_copy).unlink()
    with pytest.raises(ModelError, match="card .* not found"):
        load_model(model_copy)


def test_corrupt_pickle_with_matching_card_gives_clear_error(model_copy):
    model_copy.write_bytes(b"not a pickle at all")
    card = json.loads(card_path(model_copy).read_text())
    card["files"]["model.pkl"] = sha256_file(model_copy)
    card_path(model_copy).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="corrupt"):
        load_model(model_copy)


def test_garbled_card_is_refused(model_copy):
    card_path(model_copy).write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_model(model_copy)


def test_committed_card_carries_its_reference_profile_and_still_vouches_for_model_pkl(predictor, shared_data):
    """Monitoring needs no training data for the committed model: its card holds the reference profile,
    computed by the package's own code on the validation split the card records; model.pkl's bytes are
    the ones the card's SHA-256 names."""
    from sentimentkit.config import REPO_ROOT
    from sentimentkit.data import load_split
    from sentimentkit.training.profile import reference_profile

    card = json.loads((REPO_ROOT / "model.json").read_text())
    assert sha256_file(REPO_ROOT / "model.pkl") == card["files"]["model.pkl"]
    reference = card["reference"]
    assert reference["source"] == card["training_data"]["validation"]["file"] == "validation.csv"
    assert reference["n"] == card["training_data"]["validation"]["rows"]
    assert sha256_file(shared_data / "validation.csv") == card["training_data"]["validation"]["sha256"]
    again = reference_profile(
        predictor, load_split("validation", shared_data)["text"].tolist(), "validation.csv"
    )
    # `train` writes it with the card; a profile added to an older card later says so instead.
    assert "stored_after_training" not in reference
    assert again.keys() == reference.keys() - {"performance"}
    assert again["label_shares"] == reference["label_shares"]
    for key in ("confidence_quantiles", "confidence_shares", "length_shares", "unknown_shares"):
        assert again[key] == pytest.approx(reference[key], abs=1e-6), key
