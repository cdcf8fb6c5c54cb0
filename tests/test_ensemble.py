"""The ensemble ("accurate" mode, issue 15): folder format, loader checks, and the committed
models/accurate against its members on real tweets, through the loader, CLI, API and app."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentimentkit import LABELS
from sentimentkit.cli import main
from sentimentkit.config import DEFAULT_ACCURATE_MODEL_PATH, REPO_ROOT, Settings
from sentimentkit.data import file_sha256
from sentimentkit.models.card import ENSEMBLE_FILE, ModelError
from sentimentkit.models.pipeline import build_pipeline, save_model
from sentimentkit.serving.ensemble import EnsemblePredictor, write_ensemble
from sentimentkit.serving.loader import load_predictor
from tests.conftest import TINY_LABELS, TINY_TEXTS

ACCURATE = REPO_ROOT / "models" / "accurate"
NO_KEY = Settings(signing_key=None, signing_key_file=None)


def tiny_pickle(folder: Path, c: float, version: str) -> Path:
    """A real tiny pipeline saved with its card in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    pipeline = build_pipeline({"C": c, "word_min_df": 1, "char_min_df": 1}).fit(TINY_TEXTS, TINY_LABELS)
    path = folder / "model.pkl"
    save_model(pipeline, path, {"version": version, "default_threshold": 0.5})
    return path


@pytest.fixture
def tiny_ensemble(tmp_path: Path) -> Path:
    """models/a/model.pkl + models/b/model.pkl averaged 0.25 / 0.75 in models/ens."""
    a = tiny_pickle(tmp_path / "models" / "a", 10.0, "tiny-a")
    b = tiny_pickle(tmp_path / "models" / "b", 0.5, "tiny-b")
    out = tmp_path / "models" / "ens"
    write_ensemble(out, [a, b], load_predictor, [0.25, 0.75], settings=NO_KEY)
    return out


def test_ensemble_probabilities_are_the_weighted_mean_of_its_members(tiny_ensemble: Path) -> None:
    ensemble = load_predictor(tiny_ensemble, settings=NO_KEY)
    assert isinstance(ensemble, EnsemblePredictor)
    a, b = (load_predictor(tiny_ensemble.parent / name / "model.pkl", settings=NO_KEY) for name in "ab")
    texts = ["what a wonderful day", "this is awful", "the bus leaves at noon"]
    expected = 0.25 * a.predict_proba(texts) + 0.75 * b.predict_proba(texts)
    np.testing.assert_allclose(ensemble.predict_proba(texts), expected, rtol=0, atol=1e-12)
    # one string takes the members' single-text paths (same maths, other summation order)
    np.testing.assert_allclose(ensemble.predict_proba(texts[0]), expected[0], rtol=0, atol=1e-9)
    assert ensemble.predict(texts) == [LABELS[i] for i in expected.argmax(axis=1)]
    assert ensemble.predict_proba([]).shape == (0, 3)


def test_ensemble_records_keep_every_row_and_follow_the_threshold(tiny_ensemble: Path) -> None:
    ensemble = load_predictor(tiny_ensemble, threshold=0.999, settings=NO_KEY)
    records = ensemble.score(["great and wonderful", "", 42, "awful"])
    assert [r["error"] for r in records] == [None, "empty text", "not text (got int)", None]
    assert records[0]["sentiment"] == "positive" and records[3]["sentiment"] == "negative"
    assert records[0]["confidence"] == max(records[0]["scores"].values())
    assert records[0]["uncertain"] is True  # below the 0.999 threshold asked for
    assert load_predictor(tiny_ensemble, settings=NO_KEY).threshold == 0.5  # the card's default


def test_a_retrained_member_makes_the_ensemble_refuse_to_load(tiny_ensemble: Path) -> None:
    tiny_pickle(tiny_ensemble.parent / "b", 2.0, "tiny-b-retrained")  # its own card is valid
    with pytest.raises(ModelError, match="not the model this ensemble was built and measured with"):
        load_predictor(tiny_ensemble, settings=NO_KEY)


def test_an_edited_ensemble_file_is_refused_by_its_card(tiny_ensemble: Path) -> None:
    spec = json.loads((tiny_ensemble / ENSEMBLE_FILE).read_text())
    spec["members"][0]["weight"] = 0.75
    (tiny_ensemble / ENSEMBLE_FILE).write_text(json.dumps(spec))
    with pytest.raises(ModelError, match="does not match the card"):
        load_predictor(tiny_ensemble, settings=NO_KEY)


def test_an_ensemble_cannot_be_a_member_or_have_bad_weights(tiny_ensemble: Path, tmp_path: Path) -> None:
    a = tiny_ensemble.parent / "a" / "model.pkl"
    with pytest.raises(ModelError, match="sum to 1"):
        write_ensemble(tmp_path / "bad", [a, a], load_predictor, [0.9, 0.9], settings=NO_KEY)
    with pytest.raises(ModelError, match="at least two"):
        write_ensemble(tmp_path / "bad", [a], load_predictor, settings=NO_KEY)
    nested = tmp_path / "nested"
    write_ensemble(nested, [a, a], load_predictor, settings=NO_KEY)
    spec = json.loads((nested / ENSEMBLE_FILE).read_text())
    spec["members"][1]["path"] = "../models/ens"
    (nested / ENSEMBLE_FILE).write_text(json.dumps(spec))
    card = json.loads((nested / "card.json").read_text())
    card["files"][ENSEMBLE_FILE] = file_sha256(nested / ENSEMBLE_FILE)  # a consistent, unsigned edit
    (nested / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="itself an ensemble"):
        load_predictor(nested, settings=NO_KEY)


def test_a_signing_key_requires_a_signed_ensemble_card(
    tiny_ensemble: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "k" * 32
    keyed = Settings(signing_key=key)
    with pytest.raises(ModelError, match="not signed"):  # the members are unsigned too; the card fails first
        load_predictor(tiny_ensemble, settings=keyed)
    monkeypatch.setenv("SENTIMENTKIT_SIGNING_KEY", key)
    folder = tiny_ensemble.parent
    for model in (folder / "a" / "model.pkl", folder / "b" / "model.pkl", tiny_ensemble):
        assert main(["sign", "--model", str(model)]) == 0
    assert isinstance(load_predictor(tiny_ensemble, settings=keyed), EnsemblePredictor)


def test_cli_builds_an_ensemble_and_reports_a_bad_record_in_one_line(
    tiny_ensemble: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENTIMENTKIT_SIGNING_KEY", raising=False)
    a, b = (tiny_ensemble.parent / name / "model.pkl" for name in "ab")
    record = tmp_path / "record.json"
    record.write_text(json.dumps({"test": {"ensemble": {"avg_recall": 0.5}}}))
    assert main(["ensemble", str(a), str(b), "--out", str(tmp_path / "e"), "--record", str(record)]) == 0
    assert json.loads((tmp_path / "e" / "card.json").read_text())["metrics"] == {"test": {"avg_recall": 0.5}}
    assert main(["predict", "--model", str(tmp_path / "e"), "--text", "great and wonderful"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["sentiment"] == "positive"
    record.write_text(json.dumps({"test": {"fast": {}}}))
    assert main(["ensemble", str(a), str(b), "--out", str(tmp_path / "f"), "--record", str(record)]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


# --- the committed accurate mode, on real tweets ---------------------------------------------------
@pytest.fixture(scope="module")
def committed(shared_data: Path) -> tuple[EnsemblePredictor, list[str]]:
    pytest.importorskip("onnxruntime", reason="the int8 transformer member needs onnxruntime")
    if not (ACCURATE / ENSEMBLE_FILE).is_file():
        pytest.skip("no committed models/accurate")
    ensemble = load_predictor(ACCURATE)
    texts = pd.read_csv(shared_data / "test.csv")["text"].head(200).tolist()
    return ensemble, texts


def test_committed_accurate_mode_averages_fast_and_transformer_on_real_tweets(committed) -> None:
    ensemble, texts = committed
    assert isinstance(ensemble, EnsemblePredictor) and DEFAULT_ACCURATE_MODEL_PATH == ACCURATE
    fast = load_predictor(REPO_ROOT / "model.pkl")
    transformer = load_predictor(REPO_ROOT / "models" / "transformer-int8")
    expected = 0.5 * fast.predict_proba(texts) + 0.5 * transformer.predict_proba(texts)
    np.testing.assert_allclose(ensemble.predict_proba(texts), expected, rtol=0, atol=1e-9)
    assert ensemble.card["metrics"]["clean_validation"]["avg_recall"] > 0.76


def test_api_serves_the_accurate_mode(committed) -> None:
    from fastapi.testclient import TestClient

    from sentimentkit.api import create_app

    ensemble, texts = committed
    with TestClient(create_app(Settings(model_path=ACCURATE))) as client:
        assert client.get("/v1/model").json()["model_version"] == ensemble.version
        body = client.post("/v1/predict", json={"text": texts[0]}).json()
    expected = ensemble.predict_proba(texts[0])
    assert body["scores"] == pytest.approx(dict(zip(LABELS, expected)))
    assert body["model_version"] == ensemble.version


def test_app_shows_the_accurate_mode_beside_the_fast_model(
    committed, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    for name, value in {"SENTIMENTKIT_MODEL": str(REPO_ROOT / "model.pkl"), "SENTIMENTKIT_API_URL": "",
                        "SENTIMENTKIT_ACCURATE_MODEL": str(ACCURATE), "SENTIMENTKIT_THRESHOLD": ""}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run()
    at.text_area(key="text").input("I love this, best day ever!")
    at = at.button(key="analyze").click().run()
    assert not at.exception, at.exception
    subheaders = [str(s.value) for s in at.subheader]
    assert {"Fast model", "Accurate model"} <= set(subheaders)
    assert [str(m.value) for m in at.metric] == ["positive", "positive"]
    assert any("sentimentkit-accurate-ensemble" in s for s in subheaders)  # its card in the model tab


def test_copied_folder_without_members_is_a_clear_error(tmp_path: Path) -> None:
    if not (ACCURATE / ENSEMBLE_FILE).is_file():
        pytest.skip("no committed models/accurate")
    copy = tmp_path / "accurate"
    shutil.copytree(ACCURATE, copy)
    with pytest.raises(ModelError, match="not found"):
        load_predictor(copy, settings=NO_KEY)


def test_registering_an_ensemble_folder_is_refused_in_one_line(tiny_ensemble: Path) -> None:
    pytest.importorskip("mlflow", reason="the registry needs the mlops extra")
    from sentimentkit.mlops.tracking import register_existing

    with pytest.raises(ModelError, match="is an ensemble; register its members instead"):
        register_existing(tiny_ensemble)
