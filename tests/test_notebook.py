"""The notebook runs top to bottom, headless, on the shared data (it trains a model: slow)."""

import os

import nbformat
import pytest

from sentimentkit.config import REPO_ROOT

pytestmark = pytest.mark.slow


def test_notebook_executes_end_to_end(shared_data, tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.read(REPO_ROOT / "notebook.ipynb", as_version=4)
    os.environ["SENTIMENTKIT_DATA_DIR"] = str(shared_data)
    NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(REPO_ROOT)}}
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = " ".join(str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", "")) for o in outputs)
    assert "VADER" in text and "AvgRec" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)  # plots rendered
