"""The app as README's command 1 starts it in a fresh checkout (`streamlit run app.py`: the committed
model, no SENTIMENTKIT_DATA_DIR, no mlops services), walked tab by tab in Debian's chromium: every tab
shows its sentence, none shows a traceback. With the prediction log unset, set but empty, and holding
rows (the Monitoring tab then reports against the reference stored in the committed card)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sentimentkit.mlops.predlog import PredictionLog
from sentimentkit.serving.predictor import Predictor

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TEXTS = ["I love this, it is great", "worst day ever :(", "the train leaves at noon"] * 20


def fresh_checkout_env(tmp_path: Path, log: str) -> dict[str, str]:
    """Every SENTIMENTKIT_* variable of this process cleared (a fresh shell), the data folder pointing
    at one that does not exist, and the prediction log as given ("" for unset)."""
    env = {name: "" for name in os.environ if name.startswith("SENTIMENTKIT_")}
    return {**env, "SENTIMENTKIT_DATA_DIR": str(tmp_path / "no-data"), "SENTIMENTKIT_PREDICTION_LOG": log}


EXCEPTION = '[data-testid="stException"]'  # Streamlit's element for an uncaught exception


def assert_no_traceback(page, tab: str) -> None:
    """Nothing visible in the open tab is an exception or a traceback."""
    assert page.locator(f"{EXCEPTION}:visible").count() == 0, f"the {tab} tab shows an exception"
    assert "Traceback" not in page.locator("body").inner_text(), f"the {tab} tab shows a traceback"


@pytest.mark.parametrize("log_state", ["unset", "empty", "rows"])
def test_every_tab_shows_its_sentence_and_no_traceback_without_data(
    page, start_streamlit, tmp_path: Path, predictor: Predictor, log_state: str
) -> None:
    log = tmp_path / "predictions"
    if log_state == "empty":
        log.mkdir()
    elif log_state == "rows":
        with PredictionLog(log) as writer:
            writer.submit(predictor, TEXTS, predictor.score(TEXTS), source="api")
    server = start_streamlit(fresh_checkout_env(tmp_path, "" if log_state == "unset" else str(log)))
    page.goto(server.url)
    page.get_by_text("sentimentkit: tweet sentiment").wait_for()

    monitoring = {
        "unset": ["No prediction log: set SENTIMENTKIT_PREDICTION_LOG"],
        "empty": [f"Nothing logged yet at {log}; score some texts"],
        "rows": ["Status: ", "reference: stored in the card of sentimentkit-tfidf-lr"],
    }[log_state]
    sentences = {
        "Analyze a text": ["Text to analyse", "or try an example:"],
        "Batch (CSV)": ["Upload a CSV, TSV or Excel (.xlsx) file with one text per row"],
        "Model information": ["Fast model: sentimentkit-tfidf-lr"],
        "Monitoring": monitoring,
    }
    for tab, expected in sentences.items():
        page.get_by_role("tab", name=tab).click()
        for text in expected:
            sentence = page.get_by_text(text).first
            sentence.or_(page.locator(f"{EXCEPTION}:visible")).first.wait_for()  # whichever comes first
            assert_no_traceback(page, tab)
            assert sentence.is_visible(), f"{tab} does not show {text!r}"
    assert page.locator(EXCEPTION).count() == 0 and "Traceback" not in page.content()  # hidden ones too
    assert "Traceback" not in server.log()  # nothing failed behind the page either
