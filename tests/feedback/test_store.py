"""The feedback store: one new file per write, byte-identical texts, the read rules (the same text and
label once, the latest label wins), concurrent writers, and a writer killed midway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from sentimentkit.feedback.store import (
    COLUMNS,
    FeedbackError,
    list_files,
    read_feedback,
    summary,
    write_corrections,
)
from sentimentkit.mlops.retrain import list_batches

AWKWARD = [
    "a,b",
    "x\ry",
    "x\r\ny",
    "line\nbreak",
    "=1+1",
    'q"uote',
    "  lead and trail  ",
    "é😀\u200b",
    "\t@tab",
]


def test_each_write_adds_one_new_file_with_every_column_and_texts_byte_identical(tmp_path: Path) -> None:
    store = tmp_path / "incoming"
    first, n = write_corrections(store, [{"text": t, "label": "positive", "user": "ann"} for t in AWKWARD])
    before = Path(first).read_bytes()
    second, _ = write_corrections(store, [{"text": "other", "label": "neutral", "source": "cli"}])
    assert n == len(AWKWARD) and first != second
    assert Path(first).read_bytes() == before  # never appended to
    assert sorted(list_files(store)) == sorted([first, second]) == list_batches(str(store))
    frame = read_feedback(store)
    assert list(frame.columns) == [*COLUMNS, "file"]
    assert sorted(frame["text"]) == sorted([*AWKWARD, "other"])  # every character kept
    row = frame[frame["text"] == "other"].iloc[0]
    assert (row["source"], row["user"]) == ("cli", "")
    assert pd.Timestamp(row["when"]).tzinfo is not None  # UTC ISO


def test_the_same_text_and_label_count_once_and_the_latest_label_wins(tmp_path: Path) -> None:
    write_corrections(tmp_path, [{"text": "meh", "label": "neutral"}, {"text": "ok", "label": "positive"}])
    write_corrections(tmp_path, [{"text": "ok", "label": "positive"}])  # again: counts once
    write_corrections(tmp_path, [{"text": "meh", "label": "negative"}])  # changed mind: latest wins
    frame = read_feedback(tmp_path)
    assert dict(zip(frame["text"], frame["label"])) == {"ok": "positive", "meh": "negative"}
    assert summary(tmp_path) == {
        "texts": 2,
        "rows": 4,
        "by_label": {"negative": 1, "neutral": 0, "positive": 1},
    }
    assert len(read_feedback(tmp_path, all_rows=True)) == 4


def test_latest_is_decided_by_when_not_by_file_order(tmp_path: Path) -> None:
    write_corrections(tmp_path, [{"text": "t", "label": "negative", "when": "2026-12-06T10:00:00+00:00"}])
    write_corrections(tmp_path, [{"text": "t", "label": "positive", "when": "2026-12-01T10:00:00+00:00"}])
    assert read_feedback(tmp_path)["label"].tolist() == ["negative"]
    # within one write the last item of a text wins
    write_corrections(tmp_path, [{"text": "u", "label": "negative"}, {"text": "u", "label": "neutral"}])
    frame = read_feedback(tmp_path)
    assert frame.set_index("text").loc["u", "label"] == "neutral"


@pytest.mark.parametrize(
    ("item", "message"),
    [({"text": "  ", "label": "positive"}, "text is empty"), ({"text": "x", "label": "good"}, "label must be one of"),
     ({"text": 3, "label": "positive"}, "text must be a string"), ({"text": "\ud800", "label": "neutral"}, "lone surrogates")],
)  # fmt: skip
def test_an_invalid_correction_writes_nothing(tmp_path: Path, item: dict, message: str) -> None:
    with pytest.raises(FeedbackError, match=message):
        write_corrections(tmp_path, [{"text": "fine", "label": "positive"}, item])
    assert not list(tmp_path.iterdir())


def test_concurrent_threads_and_processes_lose_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"

    def thread_writer(k: int) -> None:
        for i in range(20):
            write_corrections(store, [{"text": f"thread {k} item {i}", "label": "neutral"}])

    script = textwrap.dedent(f"""
        import sys
        from sentimentkit.feedback.store import write_corrections
        k = int(sys.argv[1])
        for i in range(20):
            write_corrections({str(store)!r}, [{{"text": f"process {{k}} item {{i}}", "label": "positive"}}])
    """)
    processes = [subprocess.Popen([sys.executable, "-c", script, str(k)]) for k in range(3)]
    threads = [threading.Thread(target=thread_writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.wait(60) for p in processes] == [0, 0, 0]
    frame = read_feedback(store)
    assert len(list_files(store)) == 4 * 20 + 3 * 20
    assert len(frame) == 140 and frame["text"].is_unique


def test_a_writer_killed_midway_leaves_no_visible_file(tmp_path: Path) -> None:
    write_corrections(tmp_path, [{"text": "kept", "label": "positive"}])
    script = textwrap.dedent(f"""
        import os, sys, time
        from sentimentkit.feedback import store
        def hang(fd):
            print("writing", flush=True)
            time.sleep(60)
        os.fsync = hang  # the data is in the temporary file, not yet in place
        store.write_corrections({str(tmp_path)!r}, [{{"text": "lost", "label": "negative"}}])
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "writing"
        assert any(p.name.endswith(".part") for p in tmp_path.iterdir())  # killed midway indeed
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    time.sleep(0.1)
    assert read_feedback(tmp_path)["text"].tolist() == ["kept"]
    assert len(list_files(tmp_path)) == 1


def test_a_missing_store_reads_as_empty(tmp_path: Path) -> None:
    assert read_feedback(tmp_path / "nowhere").empty
