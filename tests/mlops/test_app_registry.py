"""The Streamlit app serves a registered version and says which one (AppTest, real registry)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sentimentkit.config import REPO_ROOT
from tests.mlops.test_registry import _register_twice


@pytest.mark.usefixtures("registry_env")
def test_app_shows_the_registry_version(
    tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register_twice(tiny_model_path, tmp_path)
    monkeypatch.setenv("SENTIMENTKIT_MODEL", "models:/sentimentkit-tfidf@champion")
    monkeypatch.setenv("SENTIMENTKIT_ACCURATE_MODEL", str(tmp_path / "no-accurate-model"))
    monkeypatch.setenv("SENTIMENTKIT_API_URL", "")
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    captions = [str(c.value) for c in at.caption]
    assert "Registry: sentimentkit-tfidf version 1 (@champion, as resolved when the app started)" in captions
