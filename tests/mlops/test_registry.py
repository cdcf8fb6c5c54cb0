"""The MLflow registry on a throw-away SQLite store: registration with SHA-256 tags, aliases with
who/when/why, rollback, verified `models:/` copies, and the CLI around them."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from sentimentkit.cli import main
from sentimentkit.config import REPO_ROOT
from sentimentkit.data import file_sha256
from sentimentkit.mlops import registry, tracking
from sentimentkit.models import fetch
from sentimentkit.models.card import ModelError, card_file
from sentimentkit.serving.loader import load_predictor
from tests.conftest import write_tiny_splits

pytestmark = pytest.mark.usefixtures("registry_env")


def _card(model: Path) -> dict:
    return json.loads(card_file(model).read_text())


def _register_twice(tiny_model_path: Path, tmp_path: Path) -> None:
    """Two versions: the tiny model, then a copy whose card differs (so its bytes differ)."""
    registry.register(tiny_model_path, _card(tiny_model_path), {"train": "data/train.csv"})
    second = tmp_path / "v2" / "model.pkl"
    second.parent.mkdir()
    shutil.copyfile(tiny_model_path, second)
    card = {**_card(tiny_model_path), "version": "tiny-2"}
    second.with_suffix(".json").write_text(json.dumps(card))
    registry.register(second, card)


def test_register_tags_hashes_and_sets_aliases(tiny_model_path: Path, tmp_path: Path) -> None:
    _register_twice(tiny_model_path, tmp_path)
    rows = registry.list_versions()
    assert [r["version"] for r in rows] == ["2", "1"]
    assert rows[1]["aliases"] == ["champion"] and rows[0]["aliases"] == ["challenger"]
    assert rows[1]["sha256"] == file_sha256(tiny_model_path)
    assert set(rows[1]["files"]) == {"model.pkl", "model.json"}
    events = registry.history(registry.TFIDF_MODEL)
    assert [(e["action"], e["alias"], e["version"]) for e in events] == [
        ("register", "challenger", "1"), ("register", "champion", "1"), ("register", "challenger", "2"),
    ]  # fmt: skip
    assert all(e["who"] == "tester" and e["when"] for e in events)


def test_promote_and_rollback_record_who_when_why(tiny_model_path: Path, tmp_path: Path) -> None:
    _register_twice(tiny_model_path, tmp_path)
    event = registry.promote("2", reason="better holdout")
    assert (event["previous"], event["version"], event["why"], event["who"]) == (
        "1",
        "2",
        "better holdout",
        "tester",
    )
    assert registry.current_version(registry.TFIDF_MODEL, "champion") == "2"
    back = registry.rollback(reason="complaints")
    assert (back["action"], back["version"], back["why"]) == ("rollback", "1", "complaints")
    assert registry.current_version(registry.TFIDF_MODEL, "champion") == "1"
    with pytest.raises(registry.RegistryError, match="no earlier version to roll back to"):
        registry.rollback()
    with pytest.raises(registry.RegistryError, match="has no version 9"):
        registry.promote("9")


def test_alias_stack_replays_promotions_and_rollbacks() -> None:
    events = [{"alias": "champion", "action": a, "version": v} for a, v in
              [("register", "1"), ("promote", "2"), ("promote", "3"), ("rollback", "2"), ("promote", "4")]]  # fmt: skip
    assert registry.alias_stack(events, "champion") == ["1", "2", "4"]


def test_serving_by_alias_and_by_version(tiny_model_path: Path, tmp_path: Path) -> None:
    _register_twice(tiny_model_path, tmp_path)
    champion = load_predictor("models:/sentimentkit-tfidf@champion")
    assert champion.registry == {"name": "sentimentkit-tfidf", "version": "1", "alias": "champion"}
    assert champion.predict("I love this, it is great") == "positive"
    pinned = load_predictor("models:/sentimentkit-tfidf/2")
    assert pinned.registry == {"name": "sentimentkit-tfidf", "version": "2", "alias": None}
    assert pinned.version == "tiny-2"


def _artifact(version: str, name: str = "model.pkl") -> Path:
    source = registry.describe_version(registry.TFIDF_MODEL, version)["source"]
    return Path(source) / name


def test_changed_bytes_in_the_store_are_refused(tiny_model_path: Path, tmp_path: Path) -> None:
    _register_twice(tiny_model_path, tmp_path)
    stored = _artifact("1")
    data = bytearray(stored.read_bytes())
    data[-20] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(
        ModelError, match=r"^Refusing models:/sentimentkit-tfidf@champion \(version 1\): model.pkl"
    ):
        load_predictor("models:/sentimentkit-tfidf@champion")


def test_store_and_card_changed_together_are_still_refused(tiny_model_path: Path, tmp_path: Path) -> None:
    """Rewriting model.pkl and its card consistently fools the card check, not the registry's tags."""
    _register_twice(tiny_model_path, tmp_path)
    shutil.copyfile(_artifact("2"), _artifact("1"))
    shutil.copyfile(_artifact("2", "model.json"), _artifact("1", "model.json"))
    with pytest.raises(fetch.RegistryError, match="the artifact store was changed after registration"):
        load_predictor("models:/sentimentkit-tfidf/1")


def test_an_extra_file_in_the_store_is_refused(tiny_model_path: Path, tmp_path: Path) -> None:
    _register_twice(tiny_model_path, tmp_path)
    (_artifact("1").parent / "evil.py").write_text("print('x')")
    with pytest.raises(fetch.RegistryError, match=r"files differ from the registered ones \(evil.py\)"):
        load_predictor("models:/sentimentkit-tfidf/1")


def test_a_tampered_cache_is_downloaded_again(tiny_model_path: Path, tmp_path: Path) -> None:
    _register_twice(tiny_model_path, tmp_path)
    first = fetch.resolve("models:/sentimentkit-tfidf/1")
    first.path.write_bytes(b"not a pickle")
    again = fetch.resolve("models:/sentimentkit-tfidf/1")
    assert file_sha256(again.path) == file_sha256(tiny_model_path)


def test_unknown_uris_are_one_line() -> None:
    with pytest.raises(fetch.RegistryError, match="is not in the registry"):
        load_predictor("models:/sentimentkit-tfidf@champion")
    with pytest.raises(fetch.RegistryError, match="use models:/NAME@ALIAS or models:/NAME/VERSION"):
        load_predictor("models:/sentimentkit-tfidf")


def test_without_mlflow_the_message_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what an install without the extra looks like
    with pytest.raises(ModelError, match="needs MLflow: pip install -r requirements-mlops.txt"):
        load_predictor("models:/sentimentkit-tfidf@champion")


def test_cli_train_register_list_promote_rollback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_tiny_splits(tmp_path / "data")
    for n in (1, 2):
        argv = ["train", "--data", str(data), "--out", str(tmp_path / f"m{n}" / "model.pkl"), "--register"]
        assert main([*argv, "--C", str(n), "--reason", f"run {n}"]) == 0
    out = capsys.readouterr().out
    assert "registered sentimentkit-tfidf version 1 (aliases: challenger, champion)" in out
    assert "registered sentimentkit-tfidf version 2 (aliases: challenger)" in out
    assert main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["version"] for r in rows} == {"1", "2"}
    assert rows[0]["metrics"]["test.avg_recall"] > 0 and rows[0]["created"]
    assert main(["models", "promote", "2", "--reason", "better"]) == 0
    assert "sentimentkit-tfidf@champion: version 1 -> 2 (promote by tester" in capsys.readouterr().out
    assert main(["models", "rollback"]) == 0
    assert "version 2 -> 1 (rollback" in capsys.readouterr().out
    assert main(["models", "promote", "7"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    run = registry.client().get_run(rows[0]["source"].split("/")[-3])  # .../<run id>/artifacts/model
    assert {"data.train.sha256", "data.train.source", "git_commit"} <= set(run.data.tags)
    artifacts = {a.path for a in registry.client().list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {"plots/confusion_matrix_validation.png", "plots/reliability_validation.png"}


def test_register_an_onnx_folder_and_serve_it(capsys: pytest.CaptureFixture[str]) -> None:
    folder = REPO_ROOT / "models" / "transformer-int8"
    if not (folder / "card.json").is_file():
        pytest.skip("the committed int8 ONNX model is not in this checkout")
    assert main(["models", "register", str(folder), "--reason", "accurate model"]) == 0
    assert (
        "registered sentimentkit-transformer version 1 (aliases: challenger, champion)"
        in capsys.readouterr().out
    )
    predictor = load_predictor("models:/sentimentkit-transformer@champion")
    assert predictor.registry == {"name": "sentimentkit-transformer", "version": "1", "alias": "champion"}
    assert predictor.predict("I love this so much, what a great day") == "positive"


def test_registering_a_tampered_file_is_refused(tiny_model_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bad" / "model.pkl"
    copy.parent.mkdir()
    shutil.copyfile(tiny_model_path.with_suffix(".json"), copy.with_suffix(".json"))
    copy.write_bytes(tiny_model_path.read_bytes()[:-10])
    with pytest.raises(ModelError, match="does not match the card"):
        tracking.register_existing(copy)
    assert registry.list_versions() == []


def test_concurrent_first_loads_share_one_verified_copy(tiny_model_path: Path, tmp_path: Path) -> None:
    """API workers starting together all download; none may delete the copy another is loading."""
    from concurrent.futures import ThreadPoolExecutor

    _register_twice(tiny_model_path, tmp_path)
    registry.client()  # open the store once, as a server has before its workers resolve
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: fetch.resolve("models:/sentimentkit-tfidf/1").path, range(4)))
    assert len(set(paths)) == 1 and file_sha256(paths[0]) == file_sha256(tiny_model_path)
    assert [p.name for p in paths[0].parent.parent.iterdir()] == ["1"]  # no download folders left behind


def test_a_refused_download_is_not_cached(tiny_model_path: Path, tmp_path: Path) -> None:
    _register_twice(tiny_model_path, tmp_path)
    _artifact("2").write_bytes(b"changed")
    with pytest.raises(fetch.RegistryError):
        fetch.resolve("models:/sentimentkit-tfidf/2")
    assert not (fetch.cache_root() / "sentimentkit-tfidf" / "2").exists()
