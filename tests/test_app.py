"""The Streamlit app driven in-process with `streamlit.testing.v1.AppTest` (real models, no mocks)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from sentimentkit import palette
from sentimentkit.config import REPO_ROOT
from sentimentkit.models.pipeline import build_pipeline, save_model
from sentimentkit.serving.base import OUTPUT_COLUMNS, UNSAVED_FORMULA

APP = str(REPO_ROOT / "app.py")
# Inline training texts (as in conftest.py's tiny model), kept here so this module imports alone.
TINY_TEXTS = [
    "I love this, it is great and wonderful", "what a fantastic happy day :)", "best movie ever, so good",
    "I hate this, it is terrible and awful", "worst day ever, so sad :(", "this is bad and disgusting",
    "the meeting is on tuesday at noon", "the train leaves from platform two",
    "she posted the report this morning",
] * 3  # fmt: skip
TINY_LABELS = (["positive"] * 3 + ["negative"] * 3 + ["neutral"] * 3) * 3
COMMITTED_MODEL = REPO_ROOT / "model.pkl"
CARD = {
    "name": "tiny-carded",
    "version": "0.0.1-test",
    "task": "3-class test model",
    "default_threshold": 0.5,
    "training_data": {"train": {"file": "inline", "rows": len(TINY_TEXTS), "sha256": "abc123"}},
    "hyperparameters": {"C": 10.0},
    "metrics": {
        split: {
            "avg_recall": 0.9, "f1_pn": 0.8, "macro_f1": 0.85, "accuracy": 0.875,
            "labels": ["negative", "neutral", "positive"],
            "confusion_matrix": [[5, 1, 0], [0, 6, 1], [1, 0, 7]],
        }
        for split in ("validation", "test")
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def carded_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tiny pipeline (trained on inline texts with the current code) with a full model card."""
    pipeline = build_pipeline({"C": 10.0, "word_min_df": 1, "char_min_df": 1}).fit(TINY_TEXTS, TINY_LABELS)
    path = tmp_path_factory.mktemp("carded") / "model.pkl"
    save_model(pipeline, path, dict(CARD))
    return path


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, carded_model_path: Path) -> Callable[..., AppTest]:
    """Factory: run app.py with SENTIMENTKIT_* variables (a tiny carded model, no accurate model)."""

    def start(**env: str) -> AppTest:
        defaults = {
            "SENTIMENTKIT_MODEL": str(carded_model_path),
            "SENTIMENTKIT_ACCURATE_MODEL": str(tmp_path / "no-accurate-model"),
            "SENTIMENTKIT_API_URL": "",
            "SENTIMENTKIT_THRESHOLD": "",
        }
        for name, value in {**defaults, **env}.items():
            monkeypatch.setenv(name, value)
        at = AppTest.from_file(APP, default_timeout=60).run()
        assert not at.exception, at.exception
        return at

    return start


def analyse(at: AppTest, text: str) -> AppTest:
    at.text_area(key="text").input(text)
    return at.button(key="analyze").click().run()


def preview(at: AppTest) -> pd.DataFrame:
    """The batch results preview table (the only table with an `error` column)."""
    return next(d.value for d in at.dataframe if "error" in d.value.columns)


def texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


# --- single text -----------------------------------------------------------------------------
def test_analyse_shows_label_confidence_chart_and_explanation(app) -> None:
    at = analyse(app(), "I love this, what a wonderful day!")
    assert not at.exception
    assert texts(at.metric) == ["positive"]
    assert any(c.startswith("confidence ") for c in texts(at.caption))
    assert at.get("vega_lite_chart"), "probability chart missing"
    html = next(m for m in texts(at.markdown) if "sk-explanation" in m)
    assert "love" in html and "rgba(26, 133, 255" in html  # "love" pushes toward positive (blue)


def test_explanation_escapes_user_html(app) -> None:
    at = analyse(app(), "<script>alert('x')</script> <b>I hate</b> this & that")
    html = next(m for m in texts(at.markdown) if "sk-explanation" in m)
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html and "&amp;" in html


def test_example_button_fills_the_box_and_analyses(app) -> None:
    at = app()
    at.button(key="example_Angry").click().run()
    assert "Worst customer service" in at.text_area(key="text").value
    assert texts(at.metric) == ["negative"]


def test_threshold_defaults_to_the_card_and_marks_uncertain(app) -> None:
    at = app()
    assert at.slider(key="threshold").value == pytest.approx(0.5)  # model.json default_threshold
    analyse(at, "I love this, it is great and wonderful")
    assert texts(at.metric) != ["uncertain"]
    at.slider(key="threshold").set_value(1.0).run()
    assert texts(at.metric) == ["uncertain"]
    detail = next(c for c in texts(at.caption) if c.startswith("most likely "))
    assert detail.split()[2] in ("negative", "neutral", "positive")
    at.slider(key="threshold").set_value(0.0).run()
    assert texts(at.metric) != ["uncertain"]


def test_threshold_setting_overrides_the_card(app) -> None:
    assert app(SENTIMENTKIT_THRESHOLD="0.8").slider(key="threshold").value == pytest.approx(0.8)


def test_empty_input_gets_a_clear_message(app) -> None:
    at = analyse(app(), "   ")
    assert texts(at.warning) == ["Type or paste a text first (or click one of the examples)."]
    assert not at.metric


def test_too_long_input_gets_a_clear_message(app) -> None:
    at = analyse(app(SENTIMENTKIT_MAX_CHARS="40"), "I love it " * 5)
    assert texts(at.error) == [
        "Text too long: 50 characters, the limit is 40. Shorten it, or split it into several rows of a "
        "CSV file and use the Batch (CSV) tab."
    ]
    assert not at.metric


def test_accurate_model_is_shown_beside_the_fast_one(app, tiny_model_path: Path) -> None:
    at = analyse(app(SENTIMENTKIT_ACCURATE_MODEL=str(tiny_model_path)), "I love this, great day")
    assert {"Fast model", "Accurate model"} <= set(texts(at.subheader))
    assert texts(at.metric) == ["positive", "positive"]
    assert any("tiny-test" in s for s in texts(at.subheader))  # its card is in the model tab


def test_broken_accurate_model_leaves_the_fast_one_working(app, tmp_path: Path) -> None:
    folder = tmp_path / "transformer"
    folder.mkdir()  # exists, but holds no model
    at = analyse(app(SENTIMENTKIT_ACCURATE_MODEL=str(folder)), "I love this, great day")
    assert not at.exception and texts(at.metric) == ["positive"]
    assert any("could not be loaded" in w and "Only the fast model" in w for w in texts(at.warning))


def test_missing_model_is_a_message_not_a_traceback(app, tmp_path: Path) -> None:
    at = app(SENTIMENTKIT_MODEL=str(tmp_path / "missing.pkl"))
    assert not at.exception
    assert len(at.error) == 1 and at.error[0].value.startswith("The model could not be loaded.")


def test_unreachable_api_is_a_message_not_a_traceback(app) -> None:
    pytest.importorskip(
        "sentimentkit.serving.remote", reason="RemotePredictor (issue: REST API) not written yet"
    )
    at = app(SENTIMENTKIT_API_URL="http://127.0.0.1:9", SENTIMENTKIT_API_TIMEOUT_S="2")
    if not at.error:  # the client may connect lazily: the first request then fails
        analyse(at, "I love it")
    assert not at.exception
    assert any("The sentiment API is not available" in e for e in texts(at.error))


# --- batch -------------------------------------------------------------------------------------
TRICKY_CSV = (
    "id,tweet,note\n"
    '1,"I love this, best day ever",a\n'
    "2,,empty\n"
    '3,"multi\nline: I hate this awful day",b\n'
    "4,=1+1,formula\n"
    "5,café au lait this morning,latin\n"
).encode("latin-1")


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    return at.file_uploader(key="upload").set_value((name, data, "application/octet-stream")).run()


def test_batch_flow_scores_every_row_and_offers_the_download(app) -> None:
    at = upload(app(), "tweets.csv", TRICKY_CSV)
    assert not at.error and not at.exception
    assert at.selectbox[0].value == "tweet"  # the likely text column is preselected
    at.button(key="score").click().run()
    assert not at.exception
    assert texts(at.metric)[:3] == ["5", "4", "1"]  # rows, scored, not scored
    assert at.download_button(key="download").label == "Download all 5 rows (CSV)"
    table = preview(at)
    assert list(table.columns) == ["id", "tweet", "note", *OUTPUT_COLUMNS]
    assert table["id"].tolist() == ["1", "2", "3", "4", "5"]
    assert table.loc[1, "error"] == "empty text"
    assert table["tweet"].tolist()[4] == "café au lait this morning"


def test_batch_download_has_a_formula_guard_choice(app) -> None:
    at = upload(app(SENTIMENTKIT_FORMULA_GUARD="all"), "tweets.csv", TRICKY_CSV)
    at.button(key="score").click().run()
    choice = at.radio(key="formula_guard")
    assert choice.value == "all" and choice.options == [
        "Only real formulas", "Every cell starting with = + - @", "Off",
    ]  # fmt: skip
    assert any(c.startswith("Every text cell starting with = + - @") for c in texts(at.caption))
    choice.set_value("auto").run()
    assert not at.exception and at.download_button(key="download").label == "Download all 5 rows (CSV)"
    assert any("@replies included, is exactly as in your file" in c for c in texts(at.caption))


def test_batch_filters_the_preview_by_label_and_uncertain(app) -> None:
    at = upload(app(), "tweets.csv", TRICKY_CSV)
    at.button(key="score").click().run()
    at.multiselect(key="filter_labels").set_value(["not scored"]).run()
    assert preview(at)["id"].tolist() == ["2"]
    at.multiselect(key="filter_labels").set_value(["negative", "neutral", "positive"]).run()
    at.slider(key="threshold").set_value(1.0).run()
    at.radio(key="filter_uncertain").set_value("Only uncertain").run()
    assert preview(at)["id"].tolist() == ["1", "3", "4", "5"]
    at.radio(key="filter_uncertain").set_value("Only confident").run()
    assert preview(at).empty


GROUPED_CSV = (
    b"id,tweet,brand\n"
    b'1,"I love this, best day ever",acme\n'
    b"2,I hate this awful day,acme\n"
    b"3,what a great day,zeta\n"
    b"4,awful awful service,zeta\n"
    b"5,the bus leaves at noon,acme\n"
    b"6,love the new phone,zeta\n"
)


def test_batch_search_group_filter_and_filtered_download(app) -> None:
    """The defect: the download was always "all N rows", whatever the filters showed; and the preview
    could not be searched or narrowed to a group."""
    at = upload(app(), "tweets.csv", GROUPED_CSV)
    at.button(key="score").click().run()
    assert not at.exception
    assert at.download_button(key="download").label == "Download all 6 rows (CSV)"
    assert not [b for b in at.get("download_button") if "filtered" in str(b.proto.label)]
    at.text_input(key="filter_search").set_value("DAY").run()  # case-insensitive, literal
    assert preview(at)["id"].tolist() == ["1", "2", "3"]
    at.selectbox(key="filter_group").set_value("brand").run()
    at.multiselect(key="filter_group_values").set_value(["zeta"]).run()
    assert preview(at)["id"].tolist() == ["3"]
    labels = [str(b.proto.label) for b in at.get("download_button")]
    assert "Download the 1 filtered row (CSV)" in labels and "Download all 6 rows (CSV)" in labels


def test_batch_preview_shows_probabilities_as_narrow_bars(app) -> None:
    at = upload(app(), "tweets.csv", GROUPED_CSV)
    at.button(key="score").click().run()
    configs = [json.loads(d.proto.columns or "{}") for d in at.dataframe]
    config = next(c for c in configs if "p_negative" in c)  # the preview's
    for column in ("confidence", "p_negative", "p_neutral", "p_positive"):
        assert config[column]["type_config"]["type"] == "progress" and config[column]["width"] == "small"
    for label in ("negative", "neutral", "positive"):  # each label's probability in its colour
        assert config[f"p_{label}"]["type_config"]["color"] == palette.colour(label)
    order = next(
        d for d in at.dataframe if "p_negative" in json.loads(d.proto.columns or "{}")
    ).proto.column_order
    assert (
        order[:3] == ["tweet", "sentiment", "confidence"] and order[-1] == "brand"
    )  # the model's answer in view


def test_insights_term_preview_shows_probabilities_as_narrow_bars(app) -> None:
    """The defect: the texts of a clicked Insights term were shown with wide number columns, so
    confidence and the probabilities were off to the right, behind a horizontal scroll."""
    at = upload(app(), "tweets.csv", GROUPED_CSV)
    at.button(key="score").click().run()
    term = at.pills(key="insights_term").options[0]
    at.pills(key="insights_term").set_value(term).run()
    assert not at.exception
    frames = [d for d in at.dataframe if "tweet" in d.value.columns]
    term_preview = next(d for d in frames if len(d.value) < 6 and d.value["tweet"].str.contains(term).all())
    config = json.loads(term_preview.proto.columns or "{}")
    assert config["tweet"]["width"] == "large"
    for column in ("confidence", "p_negative", "p_neutral", "p_positive"):
        assert config[column]["type_config"]["type"] == "progress" and config[column]["width"] == "small"
    assert term_preview.proto.column_order[:3] == ["tweet", "sentiment", "confidence"]  # in view first


def test_batch_choose_another_column(app) -> None:
    at = upload(app(), "tweets.csv", TRICKY_CSV)
    at.selectbox[0].set_value("note").run()
    at.button(key="score").click().run()
    assert preview(at)["error"].isna().all()


def test_batch_xlsx_flags_non_text_cells(app) -> None:
    book = openpyxl.Workbook()
    for row in (["n", "text"], [1, "good day"], [2, 12345], [3, None], [4, "=B2"]):
        book.active.append(row)  # "=B2": a formula with no saved value (openpyxl does not calculate)
    buffer = io.BytesIO()
    book.save(buffer)
    at = upload(app(), "book.xlsx", buffer.getvalue())
    assert any(n.startswith("Note: 1 cell holds a formula with no saved value") for n in texts(at.info))
    at.button(key="score").click().run()
    assert not at.exception
    assert preview(at)["error"].tolist()[1:] == ["not text (got int)", "empty text", UNSAVED_FORMULA]
    assert texts(at.metric)[2] == "3"  # not scored


def test_batch_keeps_blank_and_ragged_rows_and_notes_renamed_columns(app) -> None:
    data = b"id,text,text\n1,I love it,a\n\n3,hello, world,b\n4,caf\xe9,c\n"  # Latin-1 after UTF-8-valid rows
    at = upload(app(), "tweets.csv", data)
    assert not at.error and not at.exception
    notes = texts(at.info)
    assert any("'text.1'" in n for n in notes) and any("(lines 4)" in n for n in notes)
    at.button(key="score").click().run()
    table = preview(at)
    assert table["id"].tolist() == ["1", "", "3", "4"]  # the blank line is a row, in its place
    assert table["error"].tolist()[1:3] == ["empty text", "line 4: 4 fields, the header has 3"]
    assert table["text"].tolist()[3] == "caf\u00e9"


@pytest.mark.parametrize(
    ("name", "data", "env", "message"),
    [
        ("report.pdf", b"%PDF-1.4", {}, "is not a CSV, TSV or Excel (.xlsx) file. Export your table"),
        ("old.xls", b"\xd0\xcf\x11\xe0", {}, "Save it as .xlsx or CSV"),
        ("empty.csv", b"", {}, "The file is empty. Upload a CSV with a header row"),
        ("header.csv", b"id,text\n", {}, "has a header but no rows to score. Add one text per row"),
        ("binary.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", {}, "The file is not text"),
        ("broken.xlsx", b"PK\x03\x04 broken", {}, "The Excel file could not be read"),
        (
            "unclosed.csv",
            b'text\nfine\n"never closed\nmore\n',
            {},
            "line 3: a quote opened here is never closed",
        ),
        ("big.csv", b"text\n" + b"x" * 1_100_000, {"SENTIMENTKIT_MAX_UPLOAD_MB": "1"}, "at most 1 MB"),
        ("rows.csv", b"text\na\nb\nc\nd\n", {"SENTIMENTKIT_MAX_ROWS": "3"}, "scores at most 3"),
    ],
)
def test_batch_errors_say_what_to_do(app, name: str, data: bytes, env: dict, message: str) -> None:
    at = upload(app(**env), name, data)
    assert not at.exception
    errors = texts(at.error)
    assert len(errors) == 1 and message in errors[0], errors
    if name in ("big.csv", "rows.csv"):
        assert "python -m sentimentkit predict --input FILE.csv --output OUT.csv" in errors[0]
    assert all(b.key != "score" for b in at.button)  # nothing to score


def target_table(at: AppTest) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if "95% low" in d.value.columns)


def test_insights_show_a_target_table_and_the_texts_behind_a_target(app) -> None:
    """Issue 24: the app's Insights pick targets automatically (or as typed) and show each target's net
    sentiment from the parts that mention it, with the texts behind it (escaped)."""
    rows = ["The food was great but the service was painfully slow"] * 12 + [
        "<b>service</b> is awful today"
    ] * 2
    data = pd.DataFrame({"text": rows}).to_csv(index=False).encode()
    at = upload(app(SENTIMENTKIT_MODEL=str(COMMITTED_MODEL)), "reviews.csv", data)
    at.button(key="score").click().run()
    assert not at.exception and not at.error
    assert "Targets" in texts(at.subheader)
    assert any("chosen automatically" in c for c in texts(at.caption))
    table = target_table(at)
    assert {"food", "service"} <= set(table["target"])
    food = table.set_index("target").loc["food"]
    assert (
        food["net"] == 1.0 and food["texts"] == 12 and {"95% low", "95% high", "trend"} <= set(table.columns)
    )
    at.text_input(key="insights_targets").input("service").run()
    table = target_table(at)
    assert table["target"].tolist() == ["service"] and table.loc[0, "net"] == -1.0
    shown = [m for m in texts(at.markdown) if "sk-target-text" in m]
    assert shown and all("<b>service</b>" not in m for m in shown)
    assert any("&lt;b&gt;service&lt;/b&gt;" in m for m in shown)
    # the batch preview and, below the examples, every text that mentions the target
    assert [len(d.value) for d in at.dataframe if "error" in d.value.columns] == [14, 14]


# --- model information ----------------------------------------------------------------------
def test_model_tab_shows_card_metrics_and_confusion_matrix(app) -> None:
    at = app()
    assert len(at.json) == 2  # hyperparameters + full card; nothing leaked onto the page by "magic"
    assert any("tiny-carded 0.0.1-test" in s for s in texts(at.subheader))
    frames = [d.value for d in at.dataframe]
    metrics = next(f for f in frames if "test" in f.columns and "Macro F1" in f.index)
    assert metrics.loc["Macro F1", "test"] == pytest.approx(0.85)
    assert metrics.loc["Average recall (official)", "validation"] == pytest.approx(0.9)
    assert any(s.startswith("**Metrics**") for s in texts(at.markdown))  # wording: tests/test_docs.py
    confusion = next(f for f in frames if "predicted negative" in f.columns)
    assert confusion.to_numpy().tolist() == CARD["metrics"]["test"]["confusion_matrix"]
    data = next(f for f in frames if "sha256" in f.columns)
    assert data.to_dict("records") == [{"split": "train", "file": "inline", "rows": 27, "sha256": "abc123"}]


def test_committed_model_end_to_end(app) -> None:
    """The product as shipped: the committed model.pkl answers and its card fills the model tab."""
    at = analyse(app(SENTIMENTKIT_MODEL=str(COMMITTED_MODEL)), "I love this, what a wonderful day!")
    assert not at.exception and not at.error
    assert texts(at.metric) == ["positive"]
    card = json.loads((REPO_ROOT / "model.json").read_text())
    assert any(card["version"] in s for s in texts(at.subheader))
    confusion = next(d.value for d in at.dataframe if "predicted negative" in d.value.columns)
    assert confusion.to_numpy().tolist() == card["metrics"]["test"]["confusion_matrix"]


def test_mixed_text_shows_its_parts_in_their_labels_colours_and_foreign_text_a_note(app) -> None:
    """Issue 24: the committed model marks "great but painfully slow" as mixed and shades each part;
    a German text gets a note that the model reads English only."""
    at = analyse(
        app(SENTIMENTKIT_MODEL=str(COMMITTED_MODEL)), "The food was great but the service was painfully slow"
    )
    assert not at.exception and not at.error
    assert any("Mixed feelings" in i for i in texts(at.info))
    html = next(m for m in texts(at.markdown) if "sk-parts" in m)
    assert 'class="sk-part sk-positive"' in html and 'class="sk-part sk-negative"' in html
    assert "but the service was painfully slow</span>" in html
    at = analyse(at, "Der Flug war eine Katastrophe")
    assert any("looks like German" in w for w in texts(at.warning))
    assert not any("sk-parts" in m for m in texts(at.markdown))  # one part: nothing to shade


def test_batch_warns_about_rows_in_other_languages(app) -> None:
    data = b"text\nI love this phone so much\nDer Flug war eine Katastrophe\n"
    at = upload(app(), "tweets.csv", data)
    at.button(key="score").click().run()
    assert not at.exception
    assert any("1 row looks like a language the model does not read (de 1)" in w.value for w in at.warning)
