"""docs/screenshot.py regenerates the app screenshot from a real Streamlit server in headless chromium,
and the picture shows what the app shows today: its tabs (as the app itself lists them) and the model."""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sentimentkit.config import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def load_script():
    spec = importlib.util.spec_from_file_location("docs_screenshot", REPO_ROOT / "docs" / "screenshot.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium at /usr/bin/chromium"
)
def test_screenshot_shows_the_apps_tabs_and_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"SENTIMENTKIT_API_URL": "", "SENTIMENTKIT_PREDICTION_LOG": ""}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app_tabs = [t.label for t in AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run().tabs]
    card = json.loads((REPO_ROOT / "model.json").read_text())
    shots = load_script().take_screenshots(tmp_path, env)
    assert [s.path.name for s in shots] == ["app.png"]
    for shot in shots:
        width, height = png_size(shot.path)
        assert width >= 1000 and height >= 800 and shot.path.stat().st_size > 50_000
        assert shot.tabs == app_tabs  # the picture's tabs are the app's tabs today
        assert card["name"] in shot.sidebar  # and the model it names is the one the app serves
    assert "Why negative?" in shots[0].text


def test_committed_screenshot_is_a_sensible_png() -> None:
    width, height = png_size(REPO_ROOT / "docs" / "app.png")
    assert width >= 1000 and height >= 800
