"""The notebook runs top to bottom, headless, on the shared data (it trains a model: slow), saves the
model it trained where SENTIMENTKIT_NOTEBOOK_MODEL_OUT says (never over the committed files), and that
model is byte for byte the committed model.pkl."""

import hashlib
import json
import os

import nbformat
import pytest

from sentimentkit.config import REPO_ROOT
from sentimentkit.serving.loader import load_predictor

pytestmark = pytest.mark.slow
NOTEBOOK = REPO_ROOT / "notebook.ipynb"


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_notebook_executes_end_to_end(shared_data, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    committed = {name: sha256(REPO_ROOT / name) for name in ("model.pkl", "model.json")}
    out = tmp_path / "saved" / "model.pkl"
    nb = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("SENTIMENTKIT_DATA_DIR", str(shared_data))
    monkeypatch.setenv("SENTIMENTKIT_NOTEBOOK_MODEL_OUT", str(out))
    NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(REPO_ROOT)}}
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = " ".join(str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", "")) for o in outputs)
    assert "VADER" in text and "AvgRec" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)  # plots rendered

    # It saved the model it trained, with its card, where it was told; the committed files are untouched.
    assert {name: sha256(REPO_ROOT / name) for name in committed} == committed
    card = json.loads(out.with_suffix(".json").read_text())
    committed_card = json.loads((REPO_ROOT / "model.json").read_text())
    assert sha256(out) == card["files"]["model.pkl"] == committed_card["files"]["model.pkl"]
    assert "the same bytes as the committed model.pkl" in text
    assert card["reference"] and card["metrics"]["test"]["n"] == committed_card["metrics"]["test"]["n"]
    assert load_predictor(out).predict("I love this, it is great") == "positive"


def test_notebook_words_and_committed_outputs():
    """What the notebook says: choices on the temporal holdout; no pasted benchmark markdown."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    intro = nb.cells[0].source
    assert "temporal holdout" in intro and "Choices are made on **validation**" not in intro
    sources = "\n".join(cell.source for cell in nb.cells)
    assert "SENTIMENTKIT_NOTEBOOK_MODEL_OUT" in sources and "save_trained" in sources
    assert "Markdown(" not in sources and "(issue 15)" not in sources
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            assert "(issue 15)" not in json.dumps(output)
    # The confusion matrix's numbers: white on the dark cells.
    assert 'color="white" if dark else "black"' in sources
    assert os.path.getsize(NOTEBOOK) < 1_000_000
