"""What sentimentkit writes for later readers holds no secret: registry tags and params, alias events,
model cards, retrain reports and manifests (a throw-away SQLite registry; secrets set to markers)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sentimentkit.mlops import registry, retrain
from sentimentkit.models.card import card_file, write_card
from tests.conftest import write_tiny_splits
from tests.test_secrets import MARKERS, file_leaks, leaks

pytestmark = pytest.mark.usefixtures("registry_env")


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", MARKERS["client_secret"])
    monkeypatch.setenv("SENTIMENTKIT_API_KEY", MARKERS["api_key"])


def _model(tiny_model_path: Path, folder: Path) -> Path:
    model = folder / "model.pkl"
    folder.mkdir(parents=True)
    shutil.copyfile(tiny_model_path, model)
    shutil.copyfile(card_file(tiny_model_path), card_file(model))
    return model


def _everything_recorded(name: str) -> str:
    """Every tag, param and event the registry holds for `name`, as one text."""
    client = registry.client()
    parts = [json.dumps(client.get_registered_model(name).tags)]
    for version in client.search_model_versions(f"name='{name}'"):
        parts.append(json.dumps(version.tags))
        run = client.get_run(version.run_id)
        parts += [json.dumps(run.data.tags), json.dumps(run.data.params)]
    return "\n".join(parts)


def test_registry_tags_params_and_events_hold_no_secret(tiny_model_path: Path, tmp_path: Path) -> None:
    model = _model(tiny_model_path, tmp_path / "m")
    card = json.loads(card_file(model).read_text())
    card["hyperparameters"] = {**card.get("hyperparameters", {}),
                               "base_model": f"https://hub:{MARKERS['fetch_password']}@models.example/bert"}  # fmt: skip
    sas = f"https://acct.blob.core.windows.net/data/train.csv?sv=2024-05-04&sp=r&sig={MARKERS['sas_sig']}"
    registry.register(model, card, {"train": sas}, reason=f"pasted by mistake: {MARKERS['client_secret']}")
    registry.set_alias("sentimentkit-tfidf", "staging", "1", reason=f"key {MARKERS['api_key']}")
    recorded = _everything_recorded("sentimentkit-tfidf")
    assert not leaks(recorded), recorded
    assert "sig=***" in recorded or "?***" in recorded  # the source is still recorded, redacted


def test_cards_hold_no_secret(tiny_model_path: Path, tmp_path: Path) -> None:
    model = _model(tiny_model_path, tmp_path / "m")
    card = json.loads(card_file(model).read_text())
    card["base_model"] = f"https://hub:{MARKERS['fetch_password']}@models.example/bert"
    write_card(model, card)
    assert not leaks(card_file(model).read_text())
    assert "https://hub:***@models.example/bert" in card_file(model).read_text()


def test_retrain_reports_and_manifest_hold_no_secret(tiny_model_path: Path, tmp_path: Path) -> None:
    data = write_tiny_splits(tmp_path / "data")
    registry.register(
        _model(tiny_model_path, tmp_path / "m"), json.loads(card_file(tiny_model_path).read_text())
    )
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    # A rejected batch: its reason quotes the file, which names a secret (a user's mistake).
    (incoming / "a.csv").write_text(
        "text,label\n" + "\n".join(f"a fresh tweet number {i} about lunch,positive" for i in range(6)) + "\n"
    )
    (incoming / "b.csv").write_text(f"text,label\nhello,{MARKERS['client_secret']}\n")
    lines: list[str] = []
    report = retrain.retrain(str(incoming), data_dir=data, log=lines.append, learner="refit")
    assert report["status"] == "done"
    found = file_leaks(incoming, skip={incoming / "b.csv"})
    found = {
        path: hits for path, hits in found.items() if "/batches/" not in path
    }  # the users' rows, kept as is
    assert not found, found
    assert not leaks(_everything_recorded("sentimentkit-tfidf"))
