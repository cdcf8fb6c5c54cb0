"""sentimentkit's Streamlit app: `streamlit run app.py`.

Widgets and layout only; the logic lives in `sentimentkit.ui` and `sentimentkit.serving.batch`, and every
prediction goes through the BasePredictor interface (local model or the REST API).
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import streamlit as st
import streamlit.components.v1 as components

from sentimentkit import palette, ui
from sentimentkit.config import Settings
from sentimentkit.errors import UserError
from sentimentkit.insights import charts
from sentimentkit.insights.build import AUTO, Insights, build_insights, finding
from sentimentkit.insights.dates import DATE_ORDERS, detect_date_column
from sentimentkit.insights.groups import group_candidates
from sentimentkit.insights.render import render_html
from sentimentkit.insights.targets import parse_targets, target_frame, trend_frame
from sentimentkit.insights.timeline import MIN_POINT_N
from sentimentkit.mlops.predlog import batch_logger
from sentimentkit.models.pipeline import ModelError
from sentimentkit.redact import redact
from sentimentkit.serving import batch
from sentimentkit.serving.base import OUTPUT_COLUMNS, BackendError, BasePredictor

PREVIEW_ROWS = 1_000
# Files up to this many times the configured limit still reach the server, so that the app can say
# clearly that the file is too big and what to do; larger ones are refused by the uploader itself.
UPLOAD_HEADROOM = 4
UNCERTAIN_FILTERS = {"All rows": None, "Only uncertain": True, "Only confident": False}


@st.cache_resource(show_spinner="Loading the model…")
def load_backends(settings_key: str, _settings: Settings) -> ui.Backends:
    """Open the model(s) once per server process (per distinct settings)."""
    return ui.open_backends(_settings)


def fail(message: str) -> None:
    """Show `message` (redacted: no secret on the page) as an error and end this run of the script."""
    st.error(redact(message))
    st.stop()


def startup() -> tuple[Settings, ui.Backends]:
    """Settings and the cached model(s); stops with a clear message when they cannot be had."""
    try:
        settings = Settings.from_env()
    except UserError as exc:
        fail(f"Configuration problem: {exc}. Fix the environment variable and restart the app.")
    try:
        backends = load_backends(repr(settings), settings)
        # The API client connects lazily: touch the card so an unreachable API fails here, clearly.
        # (Assigned, because Streamlit "magic" would print a bare expression on the page.)
        _ = backends.main.card
    except ModelError as exc:
        fail(f"The model could not be loaded. {exc}")
    except BackendError as exc:
        fail(api_problem(exc))
    except ImportError as exc:
        fail(f"This installation cannot open the configured backend ({exc}). Reinstall the requirements.")
    return settings, backends


def api_problem(exc: BackendError) -> str:
    """The user-facing message for an API failure (redacted: the API URL may carry a password)."""
    return redact(
        f"The sentiment API is not available: {exc} Check that the API server is running, then reload."
    )


# --- single text ---------------------------------------------------------------------------
def use_example(text: str) -> None:
    """Button callback: put an example in the text box and analyse it (one click)."""
    st.session_state.text = text
    st.session_state.analyzed = text


def analyze() -> None:
    """Button callback: remember the text to analyse, so results survive later reruns."""
    st.session_state.analyzed = st.session_state.get("text", "")


def text_tab(backends: ui.Backends, threshold: float, max_chars: int, store: str | None = None) -> None:
    """The single-text tab: input, examples, and each model's answer side by side."""
    st.text_area("Text to analyse", key="text", height=130, placeholder="Paste a tweet, a review, a comment…")
    text = st.session_state.get("text") or ""
    st.caption(f"{len(text):,} / {max_chars:,} characters")
    with st.container(horizontal=True, vertical_alignment="center"):
        st.button("Analyze", type="primary", on_click=analyze, key="analyze")
        st.caption("or try an example:")
        for name, example in ui.EXAMPLES.items():
            st.button(name, key=f"example_{name}", on_click=use_example, args=(example,), help=example)
    if "analyzed" not in st.session_state:
        return
    analyzed = st.session_state.analyzed
    problem = ui.input_problem(analyzed, max_chars)
    if problem:
        (st.warning if problem == ui.EMPTY_PROMPT else st.error)(problem)
        return
    models = [("Fast model", backends.main)]
    if backends.accurate is not None:
        models.append(("Accurate model", backends.accurate))
    results = []
    for col, (title, backend) in zip(st.columns(len(models)), models):
        with col:
            results.append(show_result(title if len(models) > 1 else "Result", backend, analyzed, threshold))
    if len(results) == 2 and all(results):
        note = ui.disagreement_note(results[0], results[1])
        if note:
            st.info(note)
    correction_buttons(backends.main, analyzed, threshold, store)


# --- feedback ------------------------------------------------------------------------------
def feedback_user() -> str:
    return str(st.session_state.get("feedback_user") or "")


def show_feedback_message(key: str) -> None:
    """The outcome of the last save under `key` (set by a button callback), shown once."""
    outcome = st.session_state.pop(key, None)
    if outcome:
        (st.success if outcome[0] else st.warning)(outcome[1])


def save_single(backend: BasePredictor, text: str, label: str, threshold: float, store: str | None) -> None:
    """Button callback: save `label` as the right one for `text`."""
    try:
        result = backend.score([text], threshold)[0]
    except BackendError:
        result = None
    row = ui.correction(text, label, result, backend.version, feedback_user())
    st.session_state.single_feedback = ui.save_corrections(store, [row])


def correction_buttons(backend: BasePredictor, text: str, threshold: float, store: str | None) -> None:
    """The "Wrong? choose the right label" buttons: one click saves a correction (only with a store)."""
    if not store:
        return
    with st.container(horizontal=True, vertical_alignment="center"):
        st.markdown("**Wrong? choose the right label:**")
        for label in backend.labels:
            st.button(
                label,
                key=f"correct_{label}",
                on_click=save_single,
                args=(backend, text, label, threshold, store),
            )
    show_feedback_message("single_feedback")


def corrections_editor(backend: BasePredictor, result: dict[str, Any], column: str, threshold: float,
                       store: str | None) -> None:  # fmt: skip
    """The batch results with an editable `correct label` column and a "Save corrections" button."""
    st.markdown("**Correct labels** (choose the right label where the model was wrong, then save)")
    if not store:
        st.caption(ui.FEEDBACK_OFF)
        return
    scored = ui.apply_threshold(result["frame"], threshold)
    rows = scored[scored["error"].isna()].head(PREVIEW_ROWS)
    table = pd.DataFrame({column: rows[column], "sentiment": rows["sentiment"], "confidence": rows["confidence"],
                          "correct label": pd.Series([None] * len(rows), index=rows.index, dtype=object)})  # fmt: skip
    edited = st.data_editor(
        table, key="corrections_editor", hide_index=True, width="stretch", disabled=[column, "sentiment", "confidence"],
        column_config={"correct label": st.column_config.SelectboxColumn(options=list(backend.labels))},
    )  # fmt: skip
    if st.button("Save corrections", key="save_corrections"):
        saved = ui.save_corrections(
            store, ui.batch_corrections(edited, column, backend.version, feedback_user())
        )
        (st.success if saved[0] else st.warning)(saved[1])


def review_tab(settings: Settings, labels: tuple[str, ...]) -> None:
    """One logged text at a time, the least certain first; buttons (and keys 1/2/3/s) label or skip."""
    state = st.session_state.get("review")
    if state is None or st.button("Reload the queue", key="review_reload"):
        try:
            fresh = ui.review_round(settings.prediction_log, settings.prediction_log_text, settings.feedback)
        except (ValueError, OSError) as exc:
            st.info(redact(str(exc)))
            return
        state = st.session_state.review = {**fresh, "pos": 0, "saved": 0}
    queue, pos = state["queue"], state["pos"]
    st.markdown(
        f"**{ui.progress_line(state['labelled'] + state['saved'], state['to_go'] - state['saved'])}**"
    )
    show_feedback_message("review_feedback")
    if pos >= len(queue):
        st.success("Nothing left in this round: reload the queue for the next texts.")
        return
    row = queue.iloc[pos]
    st.caption(f"Text {pos + 1} of {len(queue)} in this round; the model said {row['predicted']} "
               f"({float(row['confidence']):.0%})")  # fmt: skip
    st.text(row["text"])
    with st.container(horizontal=True):
        for label in labels:
            st.button(f"{label} [{ui.REVIEW_KEYS[label]}]", key=f"review_{label}", on_click=review_label,
                      args=(settings.feedback, label))  # fmt: skip
        st.button(f"skip [{ui.REVIEW_KEYS['skip']}]", key="review_skip", on_click=review_next)
    components.html(ui.review_keys_html(), height=0)
    st.caption("Keys: 1 negative, 2 neutral, 3 positive, s skip (or click the buttons).")


def review_label(store: str | None, label: str) -> None:
    """Button callback: save the current text's label and move on (stay on it if saving failed)."""
    state = st.session_state.review
    row = state["queue"].iloc[state["pos"]]
    result = {"sentiment": row["predicted"], "confidence": row["confidence"]}
    saved = ui.save_corrections(
        store, [ui.correction(row["text"], label, result, "", feedback_user(), row["request_id"])]
    )
    if saved[0]:
        state["saved"] += 1
        review_next()
    else:
        st.session_state.review_feedback = saved


def review_next() -> None:
    st.session_state.review["pos"] += 1


def show_result(title: str, backend: BasePredictor, text: str, threshold: float) -> dict[str, Any] | None:
    """One model's answer: label (or uncertain), confidence, probability chart, explanation; returns the
    result (None when the model could not answer)."""
    st.subheader(title)
    try:
        result = backend.score([text], threshold, parts=True)[0]
    except BackendError as exc:
        st.error(api_problem(exc))
        return None
    if result["error"]:
        st.error(f"This text cannot be analysed: {result['error']}.")
        return None
    headline, detail = ui.verdict(result)
    st.metric("Sentiment", headline)
    st.caption(detail)
    note = ui.language_note(result)
    if note:
        st.warning(note)
    if result.get("mixed"):
        st.info("Mixed feelings: one part of this text is positive and another negative.")
    if len(result.get("parts") or []) > 1:
        st.markdown("**Parts**, each scored on its own:")
        st.markdown(ui.parts_html(text, result["parts"]), unsafe_allow_html=True)
    st.altair_chart(ui.probability_chart(ui.probability_frame(result, backend.labels)), width="stretch")
    show_explanation(backend, text)
    return result


def show_explanation(backend: BasePredictor, text: str) -> None:
    """The text with words highlighted by their exact contribution, plus the top words each way."""
    if not backend.can_explain:
        st.caption("This model does not give word-level explanations.")
        return
    try:
        explanation = backend.explain(text)
    except (UserError, NotImplementedError) as exc:
        st.caption(redact(f"No explanation available: {exc}"))
        return
    label = explanation["label"]
    st.markdown(f"**Why {label}?** {ui.explanation_summary(text, explanation)}")
    st.markdown(ui.explanation_html(text, explanation), unsafe_allow_html=True)
    st.caption(ui.EXPLANATION_LEGEND.format(label=label))
    toward, against = ui.top_words(text, explanation)
    left, right = st.columns(2)
    narrow = {
        "word": st.column_config.TextColumn(width="small"),
        "times": st.column_config.NumberColumn(width=40),
    }
    left.caption(f"Toward {label}")
    left.dataframe(toward, hide_index=True, width="stretch", column_config=narrow)
    right.caption(f"Away from {label}")
    right.dataframe(against, hide_index=True, width="stretch", column_config=narrow)


# --- batch ---------------------------------------------------------------------------------
def read_upload(uploaded: Any, settings: Settings) -> batch.Table:
    """The uploaded table, parsed once per file (reruns reuse it)."""
    cached = st.session_state.get("upload_table")
    if cached and cached["file_id"] == uploaded.file_id:
        return cached["table"]
    batch.check_upload(uploaded.name, uploaded.size, settings.max_upload_mb)
    table = batch.read_table(uploaded.getvalue(), uploaded.name, max_rows=settings.max_rows)
    st.session_state.upload_table = {"file_id": uploaded.file_id, "table": table}
    return table


def batch_tab(backends: ui.Backends, threshold: float, settings: Settings) -> None:
    """The batch tab: upload, column choice, scoring, results."""
    uploaded = st.file_uploader(
        "Upload a CSV, TSV or Excel (.xlsx) file with one text per row",
        # No `type=` filter and a transfer cap above the app's limit: Streamlit's own rejections are a
        # small red mark that does not say what to do; check_upload's messages do.
        max_upload_size=settings.max_upload_mb * UPLOAD_HEADROOM, key="upload",
    )  # fmt: skip
    st.caption(
        f"Up to {settings.max_upload_mb} MB and {settings.max_rows:,} rows. For bigger files use the "
        f"command line: `{batch.CLI_HINT}`"
    )
    if uploaded is None:
        return
    try:
        table = read_upload(uploaded, settings)
    except UserError as exc:
        st.error(str(exc))
        return
    columns = table.columns
    st.write(f"**{uploaded.name}**: {len(table.frame):,} rows, {len(columns)} columns.")
    for note in table.notes:
        st.info(f"Note: {note}")
    column = st.selectbox(
        "Column with the text", columns, index=columns.index(str(batch.guess_text_column(columns)))
    )
    backend, model_name = backends.main, "fast"
    if backends.accurate is not None:
        choice = st.radio("Model", ["Fast model", "Accurate model (slower)"], horizontal=True)
        if choice.startswith("Accurate"):
            backend, model_name = backends.accurate, "accurate"
    job = (uploaded.file_id, column, model_name)
    if st.button(f"Score {len(table.frame):,} rows", type="primary", key="score"):
        run_batch(backend, table, column, threshold, job, uploaded.name)
    result = st.session_state.get("batch_result")
    if result and result["job"] == job:
        show_batch_results(backend, result, threshold, settings.formula_guard)
        corrections_editor(backend, result, column, threshold, settings.feedback)
        insights_section(backends, result, column)


def run_batch(
    backend: BasePredictor, table: batch.Table, column: str, threshold: float, job: tuple, name: str
) -> None:
    """Score `table` with a progress bar and keep the result in the session (for reruns)."""
    bar = st.progress(0.0, text="Scoring…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Scored {done:,} of {total:,} rows")

    try:
        scored = batch.score_table(backend, table, column, threshold, progress_callback=progress)
    except BackendError as exc:
        bar.empty()
        st.error(api_problem(exc) + " Nothing was scored.")
        return
    except UserError as exc:
        bar.empty()
        st.error(str(exc))
        return
    bar.empty()
    with batch_logger(backend, column, "app") as log:  # the prediction log, when configured
        if log is not None:
            log(scored)
    st.session_state.batch_result = {"job": job, "frame": scored, "name": name}


def show_batch_results(
    backend: BasePredictor, result: dict[str, Any], threshold: float, formula_guard: str = "auto"
) -> None:
    """Counts, shares, confidence histogram, filterable preview and the full download."""
    scored = ui.apply_threshold(result["frame"], threshold)
    summary = ui.label_summary(scored, backend.labels)
    not_scored = int(scored["error"].notna().sum())
    uncertain = int((scored["uncertain"] == True).sum())  # noqa: E712 - object column with None
    cols = st.columns(4)
    cols[0].metric("Rows", f"{len(scored):,}")
    cols[1].metric("Scored", f"{len(scored) - not_scored:,}")
    cols[2].metric("Not scored (see `error`)", f"{not_scored:,}")
    cols[3].metric(f"Uncertain (< {threshold:.2f})", f"{uncertain:,}")
    note = batch.language_note(scored["language"].value_counts()) if "language" in scored else None
    if note:
        st.warning(note)
    left, right = st.columns(2)
    with left:
        st.markdown("**Rows per label**")
        st.altair_chart(ui.label_count_chart(summary), width="stretch")
        st.dataframe(
            summary, hide_index=True, width="stretch",
            column_config={"share": st.column_config.NumberColumn(format="percent")},
        )  # fmt: skip
    with right:
        st.markdown("**Confidence of the scored rows**")
        st.bar_chart(ui.confidence_histogram(scored), x="confidence", y="rows", height=240)
    shown = show_preview(scored, summary["label"].tolist(), result["job"][1])
    name = result["name"].rsplit(".", 1)[0] + "-sentiment.csv"
    guards = list(ui.FORMULA_GUARD_CHOICES)
    guard = st.radio("Formula guard", guards, index=guards.index(formula_guard), horizontal=True,
                     format_func=ui.FORMULA_GUARD_CHOICES.get, key="formula_guard",
                     help="Spreadsheets run a cell that starts with = (and Excel also + - @) as a formula.")  # fmt: skip
    st.download_button(
        f"Download all {len(scored):,} rows (CSV)", data=lambda: batch.result_csv_bytes(scored, guard),
        file_name=name, mime="text/csv", on_click="ignore", type="primary", key="download",
    )  # fmt: skip
    if len(shown) != len(scored):  # the rows the filters above show, in their original order
        st.download_button(
            ui.download_label(len(shown)), data=lambda: batch.result_csv_bytes(shown, guard),
            file_name=name.replace("-sentiment.csv", "-sentiment-filtered.csv"), mime="text/csv",
            on_click="ignore", key="download_filtered",
        )  # fmt: skip
    st.caption(ui.formula_guard_caption(guard))


def preview_order(frame: pd.DataFrame, text_column: str) -> list[str]:
    """The text, then the model's columns, then the file's other columns: what the model said is in
    view without scrolling sideways, whatever else the file holds."""
    ours = [c for c in OUTPUT_COLUMNS if c in frame.columns]
    return [text_column, *ours, *[str(c) for c in frame.columns if c != text_column and c not in ours]]


def preview_columns(frame: pd.DataFrame, text_column: str) -> dict[str, Any]:
    """Narrow progress bars for confidence and the probabilities, a wide text column: no scrolling."""
    config: dict[str, Any] = {text_column: st.column_config.TextColumn(width="large")}
    for column in ("confidence", *[c for c in frame.columns if str(c).startswith("p_")]):
        label = column.removeprefix("p_")  # a label's probability in its colour (the one palette)
        colour = palette.colour(label) if label in palette.LABEL_COLOURS else palette.AWAY_FROM_NEUTRAL
        config[column] = st.column_config.ProgressColumn(
            label, format="%.2f", min_value=0.0, max_value=1.0, width="small", color=colour
        )
    return config


def show_preview(scored: pd.DataFrame, labels: list[str], text_column: str) -> pd.DataFrame:
    """The first PREVIEW_ROWS rows matching the label, uncertain, group and text filters; returns
    every matching row (for the filtered download)."""
    left, right = st.columns([2, 1])
    chosen = left.multiselect("Show labels", labels, default=labels, key="filter_labels")
    flag = right.radio("Uncertain", list(UNCERTAIN_FILTERS), horizontal=True, key="filter_uncertain")
    shown = ui.filter_results(scored, chosen, UNCERTAIN_FILTERS[flag])
    search, by, values = st.columns([2, 1, 2])
    query = search.text_input("Search the text", key="filter_search", placeholder="a word or phrase")
    columns = [str(c) for c in scored.columns if c not in OUTPUT_COLUMNS and c != text_column]
    candidates = group_candidates(scored[columns]) if columns else []
    group = by.selectbox("Group column", [NO_COLUMN, *candidates], key="filter_group")
    if group != NO_COLUMN:
        options = sorted(ui.display_frame(scored[[group]])[group].unique().tolist())
        groups = values.multiselect(f"Only these {group} values", options, key="filter_group_values")
        shown = ui.group_rows(shown, group, groups)
    shown = ui.search_rows(shown, text_column, query)
    st.caption(
        f"{len(shown):,} matching rows; the preview shows the first {min(len(shown), PREVIEW_ROWS):,}."
    )
    preview = ui.display_frame(shown.head(PREVIEW_ROWS))
    st.dataframe(preview, width="stretch", height=320, column_config=preview_columns(preview, text_column),
                 column_order=preview_order(preview, text_column))  # fmt: skip
    return shown


# --- insights ------------------------------------------------------------------------------
NO_COLUMN = "(none)"


def insights_section(backends: ui.Backends, result: dict[str, Any], text_column: str) -> None:
    """Over time, by group, drivers and a report download for the scored table."""
    scored = result["frame"]
    st.header("Insights")
    date_column, group_column, order = insights_pickers(scored, text_column)
    raw_targets = st.text_input(
        "Targets", key="insights_targets", placeholder="e.g. @united, food, service (blank: chosen automatically)",
        help="Comma-separated: each target's sentiment from the parts of the texts that mention it",
    )  # fmt: skip
    targets = parse_targets(raw_targets) or AUTO
    key = (result["job"], date_column, group_column, order, str(targets))
    cached = st.session_state.get("insights")
    if not cached or cached["key"] != key:
        with st.spinner("Finding what drives the sentiment…"):
            try:
                ins = build_insights(scored, text_column, backends.main, date_column, group_column, order,
                                     source="scored in the app", targets=targets)  # fmt: skip
            except UserError as exc:
                st.error(str(exc))
                return
        cached = st.session_state.insights = {"key": key, "insights": ins}
    show_insights(cached["insights"], scored, result["name"])


def insights_pickers(scored: pd.DataFrame, text_column: str) -> tuple[str | None, str | None, str]:
    """The date column, group column and date order pickers (defaults: detected columns)."""
    columns = [str(c) for c in scored.columns if c not in OUTPUT_COLUMNS and c != text_column]
    detected = st.session_state.get("insights_detected")
    if not detected or detected["columns"] != columns:
        frame = scored[columns]
        detected = {"columns": columns, "date": detect_date_column(frame),
                    "group": next(iter(group_candidates(frame)), None)}  # fmt: skip
        st.session_state.insights_detected = detected
    options = [NO_COLUMN, *columns]
    left, middle, right = st.columns([2, 2, 1])
    date = left.selectbox("Date column", options, index=options.index(detected["date"] or NO_COLUMN),
                          key="insights_date")  # fmt: skip
    group = middle.selectbox("Group column", options, index=options.index(detected["group"] or NO_COLUMN),
                             key="insights_group")  # fmt: skip
    order = right.selectbox("Date order", DATE_ORDERS, key="insights_order",
                            help="auto reads the day/month order from the values, or says why it cannot")  # fmt: skip
    return (None if date == NO_COLUMN else date), (None if group == NO_COLUMN else group), order


def show_insights(ins: Insights, scored: pd.DataFrame, name: str) -> None:
    """Warnings, charts, clickable terms with their texts, and the report download."""
    st.markdown(f"**{finding(ins)}**")
    for warning in ins.warnings:
        st.warning(warning)
    for note in ins.notes:
        st.caption(note)
    if ins.timeline is not None:
        st.subheader(f"Over time (per {ins.timeline.granularity})")
        st.altair_chart(charts.timeline_chart(ins.timeline), width="content")
        for spike in ins.timeline.spikes:
            terms = ", ".join(t["term"] for t in spike.terms) or "no clear terms"
            st.markdown(
                f"- **Spike** {spike.in_words(ins.timeline.period_label(spike.period))} Terms: *{terms}*"
            )
    if ins.groups is not None:
        st.subheader(f"By {ins.groups.column}")
        st.write(ins.groups.test_in_words())
        if len(ins.groups.drawn()):  # no empty chart when every group holds a handful of texts
            st.altair_chart(charts.group_chart(ins.groups), width="content")
        if ins.groups.thin_note():
            st.caption(ins.groups.thin_note())
    if ins.drivers:
        st.subheader("What drives each label")
        st.altair_chart(charts.drivers_chart(ins.drivers), width="content")
    if ins.distinctive.get("negative") or ins.distinctive.get("positive"):
        st.altair_chart(charts.distinctive_chart(ins.distinctive), width="content")
    show_term_texts(ins, scored)
    show_targets(ins, scored)
    st.download_button(
        "Download report", data=lambda: render_html(ins, f"Sentiment report: {name}").encode("utf-8"),
        file_name=name.rsplit(".", 1)[0] + "-report.html", mime="text/html", on_click="ignore", key="download_report",
    )  # fmt: skip


def show_term_texts(ins: Insights, scored: pd.DataFrame) -> None:
    """Clickable terms (drivers and distinctive terms); a click filters the preview to their texts."""
    terms = list(dict.fromkeys(
        t["term"] for source in (ins.drivers, ins.distinctive) for entries in source.values() for t in entries[:8]
    ))  # fmt: skip
    if not terms or ins.terms is None:
        return
    term = st.pills("Click a term to see its texts", terms, key="insights_term")
    if term is None:
        return
    rows = ins.terms.rows_with(term)
    st.caption(
        f"{len(rows):,} texts contain “{term}”; the preview shows the first {min(len(rows), PREVIEW_ROWS):,}."
    )
    preview = ui.display_frame(scored.iloc[rows[:PREVIEW_ROWS]])
    st.dataframe(preview, width="stretch", height=320, key="term_preview",  # no horizontal scrolling
                 column_config=preview_columns(preview, ins.text_column),
                 column_order=preview_order(preview, ins.text_column))  # fmt: skip


def show_targets(ins: Insights, scored: pd.DataFrame) -> None:
    """The target table (net sentiment, interval, trend), the trend chart and the texts behind a target."""
    if ins.targets_how:
        st.subheader("Targets")
        st.caption(ins.targets_how)
    if not ins.targets:
        return
    st.caption("Net sentiment from the parts (sentences, clauses) that mention each target, not the whole text, "
               f"with its 95% interval over the texts; trend: per period with at least {MIN_POINT_N} mentioning parts.")  # fmt: skip
    number = st.column_config.NumberColumn(format="%+.2f")
    st.dataframe(target_frame(ins.targets), hide_index=True, width="stretch", key="targets_table",
                 column_config={"net": number, "95% low": number, "95% high": number})  # fmt: skip
    trend = trend_frame(ins.targets)
    if len(trend):
        st.altair_chart(charts.targets_trend_chart(trend), width="content")
    names = [t["target"] for t in ins.targets]
    name = st.selectbox("Texts behind a target", names, key="insights_target_texts")
    target = ins.targets[names.index(name)]
    for example in target["examples"]:
        st.markdown(ui.mentioning_part_html(example), unsafe_allow_html=True)
    rows = ins.target_rows.get(name, [])
    st.caption(
        f"{len(rows):,} texts mention “{name}”; the table shows the first {min(len(rows), PREVIEW_ROWS):,}."
    )
    st.dataframe(
        ui.display_frame(scored.iloc[rows[:PREVIEW_ROWS]]), width="stretch", height=320, key="target_preview"
    )


# --- model information ----------------------------------------------------------------------
def model_tab(backends: ui.Backends) -> None:
    """The model card(s): version, metrics, confusion matrix, training data."""
    models = [("Fast model", backends.main)]
    if backends.accurate is not None:
        models.append(("Accurate model", backends.accurate))
    for title, backend in models:
        show_card(title, backend.card)
        if backend.registry:  # served from the model registry (SENTIMENTKIT_MODEL=models:/...)
            st.caption(ui.registry_caption(backend.registry))
    if backends.accurate_problem:
        st.warning(backends.accurate_problem)


def show_card(title: str, card: dict[str, Any]) -> None:
    """One model card as tables."""
    st.subheader(f"{title}: {card.get('name', 'model')} {card.get('version', '')}")
    if card.get("task"):
        st.write(card["task"])
    metrics = ui.metrics_table(card)
    if not metrics.empty:
        st.markdown(ui.selection_note(card))
        st.dataframe(metrics.round(3), width="content")
    confusion = ui.confusion_frame(card, "test")
    if confusion is not None:
        st.markdown("**Confusion matrix** (test set)")
        st.dataframe(confusion, width="content")
    data = ui.training_data_table(card)
    if data is not None:
        st.markdown("**Training data**")
        st.dataframe(data, hide_index=True, width="content")
    if card.get("hyperparameters"):
        with st.expander("Hyperparameters"):
            st.json(card["hyperparameters"])
    with st.expander("Full model card (model.json)"):
        st.json(card, expanded=1)


# --- monitoring -------------------------------------------------------------------------------
@st.cache_data(ttl=60, show_spinner="Reading the prediction log…")
def monitoring_report(log: str, since: str, window: str, model: str, data_dir: str) -> tuple[dict, str]:
    """The monitoring report and its HTML page (cached for a minute: the log only grows)."""
    from sentimentkit.mlops import monitor
    from sentimentkit.mlops.monitor_report import render_html
    from sentimentkit.mlops.predlog import parse_age

    report, reference = monitor.run(log, parse_age(since), parse_age(window), model, data_dir)
    return report, render_html(report, reference)


def monitoring_tab(settings: Settings) -> None:
    """The latest monitoring report of the prediction log, and the trends window by window."""
    from sentimentkit.mlops.monitor_report import (
        ONE_WINDOW_NOTE,
        signals_table,
        summary_in_words,
        trend_charts,
        windows_with_data,
    )

    if not settings.prediction_log:
        st.info(ui.NO_LOG_MESSAGE)
        return
    cols = st.columns(2)
    since = cols[0].selectbox("Trends over", ["1d", "7d", "30d"], index=1, key="monitor_since")
    window = cols[1].selectbox("Window", ["1h", "1d"], index=1, key="monitor_window")
    try:
        report, page = monitoring_report(settings.prediction_log, since, window, str(settings.model_path),
                                         str(settings.data_dir))  # fmt: skip
    except Exception as exc:
        problem = ui.monitoring_problem(exc, settings.prediction_log)
        if problem is None:
            raise  # not the user's to fix: the tab-level handler says so
        level, message = problem
        (st.info if level == "info" else st.warning)(redact(message))
        return
    st.subheader(f"Status: {report['status']}")
    st.caption(f"{summary_in_words(report).rstrip('.')}. {report['n']:,} predictions in the latest window; reference: "
               f"{report['reference']['note']}.")  # fmt: skip
    st.table(signals_table(report).set_index("signal"))  # a table wraps the reasons: none is cut off
    several = windows_with_data(report) >= 2  # one point is no trend: no empty-looking charts
    if not several:
        st.caption(ONE_WINDOW_NOTE)
    charts_by_title = (
        {title: (frame, colours) for title, frame, colours in trend_charts(report)} if several else {}
    )
    for title in ("Predictions per window", "Label shares per window", "Confidence per window"):
        if title in charts_by_title:
            st.markdown(f"**{title}**")
            frame, colours = charts_by_title[title]
            st.line_chart(frame, height=200, color=colours)
    performance = ui.performance_summary(report)
    if performance:
        st.markdown("**Performance (estimated from the probabilities)**")
        for col, (label, value, delta) in zip(st.columns(len(performance)), performance):
            col.metric(label, value, delta)
        frame, colours = charts_by_title.get("Estimated and realized AvgRec per window", (None, None))
        if frame is not None:
            st.line_chart(frame, height=200, color=colours)
    st.download_button("Download the HTML report", page, "monitoring_report.html", "text/html")


# --- page ------------------------------------------------------------------------------------
def guarded(tab: str, render: Any, *args: Any) -> None:
    """Run one tab; an unexpected error becomes one sentence in that tab (the full traceback goes to
    the server's console), never a traceback on the page, and the other tabs still render."""
    try:
        render(*args)
    except Exception as exc:  # Streamlit's stop/rerun are BaseExceptions and pass through
        logging.getLogger("sentimentkit.app").exception("the %s tab failed", tab)
        st.error(ui.tab_problem(tab, exc))


def main() -> None:
    """The page: sidebar threshold, then the three tabs."""
    st.set_page_config(page_title="sentimentkit", page_icon="💬", layout="wide")
    st.title("sentimentkit: tweet sentiment")
    settings, backends = startup()
    main_backend = backends.main
    with st.sidebar:
        st.header("Settings")
        threshold = st.slider(
            "Confidence threshold", 0.0, 1.0, float(main_backend.threshold), 0.01, key="threshold",
            help="Answers whose confidence is below this are shown as 'uncertain' with the most "
            "likely label beside them. The default comes from the model card.",
        )  # fmt: skip
        st.caption(f"Model: {ui.describe_backend(main_backend, settings.api_url)}")
        if backends.accurate is not None:
            st.caption(f"Accurate model: {ui.describe_backend(backends.accurate, None)}")
        if settings.feedback:
            st.text_input("Your name (saved with corrections)", key="feedback_user")
    single, many, info, monitoring, review = st.tabs(
        ["Analyze a text", "Batch (CSV)", "Model information", "Monitoring", "Review"]
    )
    with single:
        guarded("Analyze a text", text_tab, backends, threshold, settings.max_chars, settings.feedback)
    with many:
        guarded("Batch (CSV)", batch_tab, backends, threshold, settings)
    with info:
        guarded("Model information", model_tab, backends)
    with monitoring:
        guarded("Monitoring", monitoring_tab, settings)
    with review:
        guarded("Review", review_tab, settings, main_backend.labels)


main()
