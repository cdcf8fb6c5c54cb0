"""Where monitoring gets its reference profile: the model card, never the training data when the card
carries one (the committed model.json does); one clear sentence when a card has none and no data is
there; `store_reference` for older cards; the CLI and the app's Monitoring tab before anything is
logged and without SENTIMENTKIT_DATA_DIR."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sentimentkit.config import REPO_ROOT
from sentimentkit.data import DataError, file_sha256
from sentimentkit.mlops import predlog
from sentimentkit.mlops.predlog import PredictionLog, read_log
from sentimentkit.models.card import card_file
from sentimentkit.models.pipeline import ModelError
from sentimentkit.serving.loader import load_predictor
from sentimentkit.serving.predictor import Predictor
from sentimentkit.training import profile
from sentimentkit.training.profile import model_reference
from tests.conftest import COMMITTED_MODEL, write_tiny_splits

TEXTS = ["I love this, it is great", "worst day ever :(", "the train leaves at noon"] * 100


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sentimentkit", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, env={**os.environ, **env}, timeout=300)  # fmt: skip


def _write_log(predictor: Predictor, folder: Path) -> Path:
    with PredictionLog(folder) as log:
        log.submit(predictor, TEXTS, predictor.score(TEXTS), source="api")
    return folder


@pytest.fixture
def no_data(tmp_path: Path) -> dict[str, str]:
    """The environment of a fresh checkout: no data folder (it points at one that does not exist)."""
    return {"SENTIMENTKIT_DATA_DIR": str(tmp_path / "no-data"), "SENTIMENTKIT_MODEL": "",
            "SENTIMENTKIT_PREDICTION_LOG": "", "SENTIMENTKIT_API_URL": ""}  # fmt: skip


@pytest.fixture
def model_copy(tiny_model_path: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "old" / "model.pkl"
    dest.parent.mkdir()
    shutil.copy(tiny_model_path, dest)
    shutil.copy(card_file(tiny_model_path), card_file(dest))
    return dest


# --- the committed card ------------------------------------------------------------------------------
def test_committed_model_reference_comes_from_its_card_without_any_data(tmp_path: Path) -> None:
    predictor = load_predictor(COMMITTED_MODEL)
    reference, note = model_reference(predictor, tmp_path / "no-data")
    assert note.startswith("stored in the card of sentimentkit-tfidf-lr")
    assert reference["source"] == "validation.csv" and reference["n"] == 2000


# --- a card without a reference ----------------------------------------------------------------------
def test_a_card_without_reference_and_no_data_is_one_sentence_saying_what_to_do(
    tiny_predictor: Predictor, tmp_path: Path
) -> None:
    with pytest.raises(profile.NoReferenceError) as caught:
        model_reference(tiny_predictor, tmp_path / "no-data")
    message = str(caught.value)
    assert "holds no reference profile" in message and "SENTIMENTKIT_DATA_DIR" in message
    assert "python -m sentimentkit train" in message and "\n" not in message
    assert isinstance(caught.value, DataError)  # every front end already reports these in one line


def test_store_reference_fills_an_old_card_and_leaves_the_model_bytes_alone(
    model_copy: Path, tmp_path: Path
) -> None:
    data = write_tiny_splits(tmp_path / "data")
    before = model_copy.read_bytes()
    card = profile.store_reference(model_copy, data)
    assert model_copy.read_bytes() == before and card["files"]["model.pkl"] == file_sha256(model_copy)
    assert json.loads(card_file(model_copy).read_text())["reference"] == card["reference"]
    reference, note = model_reference(load_predictor(model_copy), tmp_path / "no-data")  # still loads
    assert note.endswith("after training, from the same validation split") and reference["n"] == 27


def test_store_reference_refuses_data_other_than_the_cards(model_copy: Path, tmp_path: Path) -> None:
    data = write_tiny_splits(tmp_path / "data")
    card = json.loads(card_file(model_copy).read_text())
    card["training_data"] = {"validation": {"file": "validation.csv", "rows": 27, "sha256": "0" * 64}}
    card_file(model_copy).write_text(json.dumps(card))
    with pytest.raises(DataError, match="is not the validation split the card"):
        profile.store_reference(model_copy, data)
    assert "reference" not in json.loads(card_file(model_copy).read_text())


def test_store_reference_keeps_a_signed_card_signed(
    model_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentimentkit.models.card import sign_model

    data = write_tiny_splits(tmp_path / "data")
    monkeypatch.setenv("SENTIMENTKIT_SIGNING_KEY", "k" * 32)
    sign_model(model_copy)
    card = profile.store_reference(model_copy, data)
    assert card["reference"]["n"] == 27 and "signature" in card
    assert "reference" in load_predictor(model_copy).card  # the new signature verifies
    monkeypatch.delenv("SENTIMENTKIT_SIGNING_KEY")
    with pytest.raises(ModelError, match="is signed"):
        profile.store_reference(model_copy, data)  # without the key it would drop the signature: refused


# --- the prediction log before anything is logged ---------------------------------------------------------
def test_an_empty_log_says_nothing_is_logged_yet_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(predlog.NothingLoggedError, match="nothing logged yet; score some texts") as caught:
        read_log(tmp_path)
    assert caught.value.latest is None and str(tmp_path) in str(caught.value)


# --- the command line without a data folder --------------------------------------------------------------
def test_cli_empty_log_without_data_dir_is_one_clear_line(no_data: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.mkdir()
    result = _cli("monitor", env={**no_data, "SENTIMENTKIT_PREDICTION_LOG": str(log)})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert f"{log}: nothing logged yet; score some texts" in result.stderr


def test_cli_report_of_the_committed_model_needs_no_data_dir(
    predictor: Predictor, no_data: dict[str, str], tmp_path: Path
) -> None:
    log = _write_log(predictor, tmp_path / "log")
    result = _cli("monitor", "--json", env={**no_data, "SENTIMENTKIT_PREDICTION_LOG": str(log)})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 300 and report["reference"]["source"] == "validation.csv"
    assert report["reference"]["note"].startswith("stored in the card of sentimentkit-tfidf-lr")


def test_cli_card_without_reference_and_no_data_dir_says_what_to_do(
    tiny_predictor: Predictor, tiny_model_path: Path, no_data: dict[str, str], tmp_path: Path
) -> None:
    log = _write_log(tiny_predictor, tmp_path / "log")
    result = _cli("monitor", "--log", str(log), "--model", str(tiny_model_path), env=no_data)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "holds no reference profile" in result.stderr and "SENTIMENTKIT_DATA_DIR" in result.stderr


# --- the app's Monitoring tab without a data folder -----------------------------------------------------
def _app(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> object:
    from streamlit.testing.v1 import AppTest

    for name, value in {**env, "SENTIMENTKIT_ACCURATE_MODEL": str(REPO_ROOT / "no-accurate")}.items():
        monkeypatch.setenv(name, value)
    return AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run()


def test_app_monitoring_tab_before_anything_is_logged(
    no_data: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "log"
    at = _app(monkeypatch, {**no_data, "SENTIMENTKIT_PREDICTION_LOG": str(log)})
    assert not at.exception, at.exception
    assert [i.value for i in at.info if "logged" in i.value] == [
        f"Nothing logged yet at {log}; score some texts (in the Batch (CSV) tab, through the API or with "
        "`python -m sentimentkit predict`) and come back: this tab then compares them with the model's "
        "reference."
    ]
    assert not at.warning and not at.error


def test_app_monitoring_tab_of_the_committed_model_needs_no_data_dir(
    predictor: Predictor, no_data: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _write_log(predictor, tmp_path / "log")
    at = _app(monkeypatch, {**no_data, "SENTIMENTKIT_PREDICTION_LOG": str(log)})
    assert not at.exception, at.exception
    assert any(h.value.startswith("Status: ") for h in at.subheader)
    assert "reference: stored in the card of sentimentkit-tfidf-lr" in " ".join(c.value for c in at.caption)


def test_an_unexpected_error_in_a_tab_is_one_sentence_and_the_other_tabs_still_work(
    predictor: Predictor, no_data: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentimentkit.mlops import monitor

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("internal detail that must not reach the page")

    monkeypatch.setattr(monitor, "run", broken)
    log = _write_log(predictor, tmp_path / "log")
    at = _app(monkeypatch, {**no_data, "SENTIMENTKIT_PREDICTION_LOG": str(log)})
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [
        "The Monitoring tab could not be shown because of an unexpected error (RuntimeError). Reload the "
        "page; if it happens again, restart the app and report the error printed in its console."
    ]
    assert any(h.value.startswith("Fast model: sentimentkit-tfidf-lr") for h in at.subheader)
