"""Loading never runs code from a model file, and with a signing key only signed models load.

The attack of issue 10: a pickle whose `__reduce__` runs a command, with the card's SHA-256 updated to
match, used to run that command before the "not a sentimentkit pipeline" error. Each malicious pickle
here is first shown to be live (plain `pickle.loads` runs it) where that is harmless to do.
"""

from __future__ import annotations

import copyreg
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentimentkit.cli import main
from sentimentkit.config import REPO_ROOT, Settings
from sentimentkit.models import safe_pickle
from sentimentkit.models.card import ModelError, card_file, normalise_card, sign_model
from sentimentkit.models.domain import fit_head
from sentimentkit.models.pipeline import build_pipeline, load_model, save_model, sha256_file
from sentimentkit.serving.loader import load_predictor
from sentimentkit.training.train import CHOSEN_PARAMS, fit_pipeline
from tests.conftest import COMMITTED_MODEL, TINY_LABELS, TINY_TEXTS

KEY = "k" * 8 + "0123456789abcdef0123456789abcdef"
OTHER_KEY = "z" * 40
COMMITTED_INT8 = REPO_ROOT / "models" / "transformer-int8"


# --- helpers -------------------------------------------------------------------------------------
class RunsCommand:
    """Unpickling this runs `touch MARKER` (the issue's exploit, via os.system)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant(model: Path, blob: bytes) -> Path:
    """Replace a copied model.pkl by `blob` and update its card's SHA-256 to match (what an attacker
    who can write the folder does)."""
    model.write_bytes(blob)
    card = json.loads(card_file(model).read_text())
    card["files"] = {model.name: sha256_file(model)}
    card_file(model).write_text(json.dumps(card))
    return model


def call_pickle(module: str, name: str, arg: str, proto: int = 4) -> bytes:
    """A pickle that calls module.name(arg) while loading, naming the global exactly as given:
    protocol 0 with the GLOBAL opcode, protocol 4 with STACK_GLOBAL."""
    if proto == 0:
        return b"c%s\n%s\n(V%s\ntR." % (module.encode(), name.encode(), arg.encode())

    def text(value: str) -> bytes:  # SHORT_BINUNICODE
        data = value.encode()
        return b"\x8c" + bytes([len(data)]) + data

    return b"\x80\x04" + text(module) + text(name) + b"\x93" + text(arg) + b"\x85R."


@pytest.fixture
def model_copy(tiny_model_path: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "model.pkl"
    shutil.copy(tiny_model_path, dest)
    shutil.copy(card_file(tiny_model_path), card_file(dest))
    return dest


@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTIMENTKIT_SIGNING_KEY", raising=False)
    monkeypatch.delenv("SENTIMENTKIT_SIGNING_KEY_FILE", raising=False)


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch, no_key: None) -> str:
    monkeypatch.setenv("SENTIMENTKIT_SIGNING_KEY", KEY)
    return KEY


# --- no code runs from a pickle ------------------------------------------------------------------
def test_the_issue_exploit_is_live_but_loading_it_runs_nothing(
    model_copy: Path, tmp_path: Path, no_key
) -> None:
    live = tmp_path / "live-marker"
    pickle.loads(pickle.dumps(RunsCommand(live)))  # the exploit works on a plain unpickler
    assert live.exists()
    marker = tmp_path / "marker"
    plant(model_copy, pickle.dumps(RunsCommand(marker)))
    with pytest.raises(ModelError) as caught:
        load_predictor(model_copy)
    message = str(caught.value)
    assert not marker.exists()
    assert "\n" not in message and "system" in message and "Nothing from the file was run" in message


def test_the_cli_refuses_it_with_one_line_and_no_traceback(model_copy: Path, tmp_path: Path, no_key) -> None:
    marker = tmp_path / "marker"
    plant(model_copy, pickle.dumps(RunsCommand(marker)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIMENTKIT_SIGNING")}
    result = subprocess.run(
        [sys.executable, "-m", "sentimentkit", "predict", "--model", str(model_copy), "--text", "hi"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, env={**env, "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    assert result.returncode == 2 and not marker.exists()
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: Refusing to load")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "module,name",
    [("builtins", "eval"), ("builtins", "exec"), ("os", "system"), ("posix", "system"),
     ("subprocess", "Popen"), ("importlib", "import_module"), ("builtins", "getattr"),
     ("sklearn.pipeline", "Pipeline.__init__.__globals__"), ("numpy", "load")],
)  # fmt: skip
@pytest.mark.parametrize("proto", [0, 4])
def test_any_global_outside_the_allow_list_is_refused_before_it_is_called(
    module: str, name: str, proto: int, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    blob = call_pickle(module, name, f"touch {marker}" if "system" in name else "1", proto)
    assert pickle.loads(call_pickle("builtins", "str", "1", proto)) == "1"  # the pickle format is right
    with pytest.raises(safe_pickle.UnsafePickleError, match="never contains"):
        safe_pickle.safe_loads(blob)
    assert not marker.exists()


def test_the_inst_opcode_and_copyreg_extensions_go_through_the_allow_list(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    inst = b"(V" + f"touch {marker}".encode() + b"\nios\nsystem\n."  # protocol 0 INST
    with pytest.raises(safe_pickle.UnsafePickleError):
        safe_pickle.safe_loads(inst)
    copyreg.add_extension("posix", "system", 240)
    try:
        text = f"touch {marker}".encode()
        ext = b"\x80\x02\x82\xf0X" + struct.pack("<I", len(text)) + text + b"\x85R."  # EXT1 240
        with pytest.raises(safe_pickle.UnsafePickleError):
            safe_pickle.safe_loads(ext)
    finally:
        copyreg.remove_extension("posix", "system", 240)
    assert not marker.exists()


def test_an_exploit_nested_inside_a_real_pipeline_is_refused(tiny_predictor, model_copy: Path, tmp_path: Path, no_key) -> None:  # fmt: skip
    marker = tmp_path / "marker"
    pipeline = pickle.loads(pickle.dumps(tiny_predictor.pipeline))
    pipeline.named_steps["clf"].payload = RunsCommand(marker)
    plant(model_copy, pickle.dumps(pipeline, protocol=5))
    with pytest.raises(ModelError, match="system"):
        load_model(model_copy)
    assert not marker.exists()


def test_numpy_reconstruction_cannot_smuggle_objects() -> None:
    """_frombuffer is allowed (numpy pickles arrays with it) but refuses object dtypes."""

    class ObjectArray:
        def __reduce__(self):
            from numpy._core.numeric import _frombuffer

            return (_frombuffer, (b"\0" * 8, np.dtype("O"), (1,), "C"))

    with pytest.raises(ValueError, match="OBJECT"):
        safe_pickle.safe_loads(pickle.dumps(ObjectArray(), protocol=5))


def _globals_of(blob: bytes) -> set[tuple[str, str]]:
    """The (module, name) globals a pickle we wrote resolves, after the old-path mapping."""
    seen: set[tuple[str, str]] = set()

    class Recording(safe_pickle.SafeUnpickler):
        def find_class(self, module: str, name: str):
            seen.add(safe_pickle._MOVED.get((module, name), (module, name)))
            return super().find_class(module, name)

    Recording(io.BytesIO(blob), fix_imports=False).load()
    return seen


def test_the_allow_list_is_exactly_what_our_pipelines_contain() -> None:
    """Union of the committed model.pkl, a pipeline trained now with the chosen parameters (both
    lexicons, recency weights, float32 features) and a domain-adapted one: nothing missing, nothing extra."""
    frame = pd.DataFrame({"text": TINY_TEXTS, "label": TINY_LABELS})
    fresh = fit_pipeline(frame, {**CHOSEN_PARAMS, "word_min_df": 1, "char_min_df": 1})
    used = _globals_of(pickle.dumps(fresh, protocol=5))
    adapted = fit_head(fresh, TINY_TEXTS, TINY_LABELS, C=1.0)  # a domain-adapted model (models.domain)
    used |= _globals_of(pickle.dumps(adapted, protocol=5))
    if COMMITTED_MODEL.is_file():
        used |= _globals_of(COMMITTED_MODEL.read_bytes())
    assert used == set(safe_pickle.ALLOWED)


def test_allowed_classes_in_the_wrong_shape_are_not_served(model_copy: Path, no_key) -> None:
    pipeline = build_pipeline({"word_min_df": 1, "char_min_df": 1}).fit(TINY_TEXTS, TINY_LABELS)
    pipeline.steps.reverse()
    plant(model_copy, pickle.dumps(pipeline, protocol=5))
    with pytest.raises(ModelError, match="not a sentimentkit pipeline: its steps"):
        load_model(model_copy)
    plant(model_copy, pickle.dumps(pipeline.named_steps["features"], protocol=5))
    with pytest.raises(ModelError, match="holds a TweetVectorizer"):
        load_model(model_copy)
    pipeline.steps.reverse()
    pipeline.named_steps["clf"].coef_ = pipeline.named_steps["clf"].coef_[:, :5]
    plant(model_copy, pickle.dumps(pipeline, protocol=5))
    with pytest.raises(ModelError, match="weights do not fit"):
        load_model(model_copy)
    pipeline.steps = [1, 2]
    plant(model_copy, pickle.dumps(pipeline, protocol=5))
    with pytest.raises(ModelError, match="malformed"):
        load_model(model_copy)


def test_a_card_cannot_point_outside_the_model_folder(model_copy: Path, no_key) -> None:
    card = json.loads(card_file(model_copy).read_text())
    card["files"] = {"../model.pkl": card["files"]["model.pkl"]}
    card_file(model_copy).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="plain file names"):
        load_model(model_copy)


# --- cards written before the schema was unified -------------------------------------------------
def test_an_old_style_card_still_loads_and_reads_in_the_new_schema(model_copy: Path, key: str) -> None:
    card = json.loads(card_file(model_copy).read_text())
    old = {k: v for k, v in card.items() if k not in ("files", "format")}
    old["sha256"] = card["files"]["model.pkl"]
    old["metrics"] = {"validation_clean": {"avg_recall": 0.5}}
    card_file(model_copy).write_text(json.dumps(old, indent=2) + "\n")
    loaded = load_model(model_copy, settings=Settings())[1]  # Settings(): no key
    assert loaded["files"] == {"model.pkl": old["sha256"]} and "clean_validation" in loaded["metrics"]
    signed = sign_model(model_copy)  # signing keeps the stored schema, adds the signature
    assert signed["sha256"] == old["sha256"] and "files" not in signed and "signature" in signed
    assert load_model(model_copy)[1]["metrics"]["clean_validation"] == {"avg_recall": 0.5}
    assert normalise_card(signed)["files"] == loaded["files"]


# --- signing -------------------------------------------------------------------------------------
def test_with_a_key_training_signs_and_a_signed_model_loads(tiny_predictor, tmp_path: Path, key: str) -> None:
    path = tmp_path / "signed.pkl"
    card = save_model(tiny_predictor.pipeline, path, {"version": "signed"})
    assert card["signature"]["algorithm"] == "HMAC-SHA256" and len(card["signature"]["value"]) == 64
    assert load_predictor(path).predict("I love it") in ("positive", "neutral", "negative")


def test_a_tampered_artifact_is_refused_before_unpickling(
    tiny_predictor, tmp_path: Path, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "signed.pkl"
    save_model(tiny_predictor.pipeline, path, {"version": "signed"})
    marker = tmp_path / "marker"
    card = json.loads(card_file(path).read_text())
    path.write_bytes(pickle.dumps(RunsCommand(marker)))
    card["files"] = {path.name: sha256_file(path)}  # the attacker fixes the hash, cannot fix the signature
    card_file(path).write_text(json.dumps(card))
    monkeypatch.setattr("sentimentkit.models.pipeline.safe_loads", _never_called)
    with pytest.raises(ModelError, match="signature does not match") as caught:
        load_predictor(path)
    assert "\n" not in str(caught.value) and not marker.exists()


def _never_called(blob: bytes):
    raise AssertionError("a model file was unpickled before its signature was checked")


def test_a_tampered_card_is_refused(tiny_predictor, tmp_path: Path, key: str) -> None:
    path = tmp_path / "signed.pkl"
    save_model(tiny_predictor.pipeline, path, {"version": "signed"})
    card = json.loads(card_file(path).read_text())
    card["default_threshold"] = 0.99
    card_file(path).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="signature does not match"):
        load_predictor(path)


def test_a_model_signed_with_another_key_is_refused(
    tiny_predictor, tmp_path: Path, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "signed.pkl"
    save_model(tiny_predictor.pipeline, path, {"version": "signed"})
    monkeypatch.setenv("SENTIMENTKIT_SIGNING_KEY", OTHER_KEY)
    with pytest.raises(ModelError, match="signed with a different key"):
        load_predictor(path)


def test_an_unsigned_model_is_refused_when_a_key_is_required_and_loads_without_one(
    model_copy: Path, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        m.setattr("sentimentkit.models.pipeline.safe_loads", _never_called)
        with pytest.raises(ModelError, match="not signed .*sentimentkit sign") as caught:
            load_predictor(model_copy)
    assert "\n" not in str(caught.value)
    monkeypatch.delenv("SENTIMENTKIT_SIGNING_KEY")
    assert load_predictor(model_copy).version == "tiny-test"  # no key: as before


def test_sign_command_signs_a_model_that_loads_and_only_with_a_key(
    model_copy: Path, key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = model_copy.read_bytes()
    assert main(["sign", "--model", str(model_copy)]) == 0
    assert "signed" in capsys.readouterr().out and model_copy.read_bytes() == before
    assert load_predictor(model_copy).version == "tiny-test"
    monkeypatch.delenv("SENTIMENTKIT_SIGNING_KEY")
    assert main(["sign", "--model", str(model_copy)]) == 2
    assert capsys.readouterr().err.startswith("error: no signing key")


def test_sign_refuses_files_that_no_longer_match_their_card(model_copy: Path, key: str, capsys) -> None:
    with open(model_copy, "ab") as fh:
        fh.write(b"\0")
    assert main(["sign", "--model", str(model_copy)]) == 2
    assert "does not match the card" in capsys.readouterr().err
    assert "signature" not in json.loads(card_file(model_copy).read_text())


def test_key_settings_are_checked_and_kept_out_of_repr(tmp_path: Path, monkeypatch, no_key) -> None:
    from sentimentkit.models.card import configured_key

    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    monkeypatch.setenv("SENTIMENTKIT_SIGNING_KEY_FILE", str(key_file))
    assert configured_key() == KEY.encode()
    monkeypatch.setenv("SENTIMENTKIT_SIGNING_KEY", KEY)
    with pytest.raises(ModelError, match="not both"):
        configured_key()
    monkeypatch.delenv("SENTIMENTKIT_SIGNING_KEY_FILE")
    assert KEY not in repr(Settings.from_env())
    monkeypatch.setenv("SENTIMENTKIT_SIGNING_KEY", "short")
    with pytest.raises(ModelError, match="at least 16"):
        configured_key()
    monkeypatch.delenv("SENTIMENTKIT_SIGNING_KEY")
    monkeypatch.setenv("SENTIMENTKIT_SIGNING_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ModelError, match="cannot be read"):
        configured_key()


# --- the transformer folder (int8 ONNX) ----------------------------------------------------------
@pytest.fixture
def int8_copy(tmp_path: Path) -> Path:
    pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install -r requirements-onnx.txt")
    pytest.importorskip("tokenizers", reason="needs the tokenizers library")
    if not (COMMITTED_INT8 / "card.json").is_file():
        pytest.skip("no committed int8 model")
    dest = tmp_path / "int8"
    shutil.copytree(COMMITTED_INT8, dest)
    return dest


def test_a_transformer_folder_is_signed_and_checked_before_onnx_opens_it(
    int8_copy: Path, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_session(path, threads):
        raise AssertionError("the ONNX file was opened before the signature was checked")

    with monkeypatch.context() as m:
        m.setattr("sentimentkit.serving.transformer._onnx_session", no_session)
        with pytest.raises(ModelError, match="not signed"):
            load_predictor(int8_copy)
    assert main(["sign", "--model", str(int8_copy)]) == 0
    assert load_predictor(int8_copy).predict("I love this, best day ever!") == "positive"
    tokenizer = int8_copy / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text().replace('"[UNK]"', '"[UNK2]"', 1))
    card = json.loads((int8_copy / "card.json").read_text())
    card["files"]["tokenizer.json"] = sha256_file(tokenizer)
    (int8_copy / "card.json").write_text(json.dumps(card))
    with monkeypatch.context() as m:
        m.setattr("sentimentkit.serving.transformer._onnx_session", no_session)
        with pytest.raises(ModelError, match="signature does not match"):
            load_predictor(int8_copy)


# --- adversarial review: other pipelines, non-finite weights, swapped cards, bad thresholds -------
def test_another_sklearn_pipeline_with_a_matching_hash_is_not_served(model_copy: Path, no_key) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    other = Pipeline([("features", TfidfVectorizer(dtype=np.float32)), ("clf", LogisticRegression())])
    plant(model_copy, pickle.dumps(other.fit(TINY_TEXTS, TINY_LABELS), protocol=5))
    with pytest.raises(ModelError, match="not a sentimentkit pipeline: its steps"):
        load_model(model_copy)


def test_non_finite_weights_are_not_served(model_copy: Path, no_key) -> None:
    # Was: loaded, and every answer was NaN (not even valid JSON on the CLI).
    pipeline = build_pipeline({"word_min_df": 1, "char_min_df": 1}).fit(TINY_TEXTS, TINY_LABELS)
    pipeline.named_steps["clf"].coef_[0, 0] = np.nan
    plant(model_copy, pickle.dumps(pipeline, protocol=5))
    with pytest.raises(ModelError, match="weights are not all finite"):
        load_model(model_copy)


def test_a_card_swapped_in_from_another_model_is_refused(model_copy: Path, tmp_path: Path, no_key) -> None:
    other = tmp_path / "other" / "model.pkl"
    pipeline = build_pipeline({"word_min_df": 1, "char_min_df": 1}).fit(TINY_TEXTS[::-1], TINY_LABELS[::-1])
    save_model(pipeline, other, {"name": "other"}, Settings.from_env())
    shutil.copy(card_file(other), card_file(model_copy))
    with pytest.raises(ModelError, match="does not match the card"):
        load_predictor(model_copy)


@pytest.mark.parametrize("value", ["abc", 7, -0.1, None, True])
def test_a_card_threshold_that_is_not_a_probability_is_one_line(model_copy: Path, no_key, value) -> None:
    # Was: "could not convert string to float: 'abc'", and 7 silently made every answer uncertain.
    card = json.loads(card_file(model_copy).read_text())
    card["default_threshold"] = value
    card_file(model_copy).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="default_threshold must be a number from 0 to 1"):
        load_predictor(model_copy)
    with pytest.raises(ModelError, match=r"The threshold \(--threshold"):
        load_predictor(COMMITTED_MODEL, threshold=1.5)
