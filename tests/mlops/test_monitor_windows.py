"""`monitor`'s --since/--window: nonsense durations and too many windows are one line each, the rows
are grouped into windows in one pass (the same trend as filtering each window), and a log folder
whose date= name is not a date is named in the error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentimentkit.cli import main
from sentimentkit.mlops import monitor
from sentimentkit.mlops.predlog import PredictionLog, parse_age
from sentimentkit.serving.predictor import Predictor
from tests.mlops.test_monitor import REFERENCE, synthetic_log

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--window", "0s"], "error: --window '0s' is not a duration longer than 0"),
        (["--since", "0d"], "error: --since '0d' is not a duration longer than 0"),
        (["--since", "99999999w"], "error: --since '99999999w' is longer than 100 years"),
        (["--since", "30d", "--window", "1m"],
         "error: --since/--window gives 43,200 windows; the limit is 500: widen --window (at least 2h)"),
    ],
)  # fmt: skip
@pytest.mark.timeout(60)  # liveness: refused before the log is read, not after 43,200 windows
def test_bad_since_or_window_is_one_line(
    args: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["monitor", "--log", str(tmp_path / "log"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1, err


def test_parse_age_limits() -> None:
    assert parse_age("1.5h") == timedelta(minutes=90) and parse_age("2w") == timedelta(days=14)
    assert parse_age("36600d") == timedelta(days=36600)
    with pytest.raises(ValueError, match="longer than 100 years"):
        parse_age("36700d")


def naive_counts(frame: pd.DataFrame, since: timedelta, window: timedelta) -> list[int]:
    """The windows' row counts by filtering the rows once per window (what compare did before)."""
    n = -(-since // window)
    starts = [NOW - window * (k + 1) for k in reversed(range(n))]
    return [int(((frame["ts"] > s) & (frame["ts"] <= s + window)).sum()) for s in starts]


@pytest.mark.timeout(120)
def test_500_windows_group_the_rows_once_and_match_per_window_filtering() -> None:
    frame = synthetic_log(2000, start=NOW - timedelta(hours=40))
    rng = np.random.default_rng(1)
    frame["ts"] = (NOW - pd.to_timedelta(rng.integers(0, 50 * 3600, len(frame)), unit="s")).sort_values()
    frame.loc[0, "ts"] = NOW - timedelta(minutes=6)  # exactly at a window's end: belongs to that window
    frame.loc[1, "ts"] = NOW  # the latest row counts in the latest window
    since, window = timedelta(hours=50), timedelta(minutes=6)  # 500 windows, the limit
    report = monitor.compare(frame, REFERENCE, window, since, now=NOW)
    counts = [row["n"] for row in report["trend"]]
    assert len(counts) == 500 and counts == naive_counts(frame, since, window)
    assert report["n"] == counts[-1] and sum(counts) == int((frame["ts"] > NOW - since).sum())
    with pytest.raises(ValueError, match="gives 501 windows; the limit is 500"):
        monitor.compare(frame, REFERENCE, window, since + window, now=NOW)


def test_a_log_folder_whose_date_is_not_a_date_is_named(
    tiny_predictor: Predictor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with PredictionLog(tmp_path / "log") as log:
        log.submit(tiny_predictor, ["I love it"] * 10, tiny_predictor.score(["I love it"] * 10), source="api")
    (folder,) = (tmp_path / "log").glob("date=*")
    folder.rename(folder.with_name("date=2026-13-45"))
    assert main(["monitor", "--log", str(tmp_path / "log")]) == 2
    err = capsys.readouterr().err
    assert "date=2026-13-45" in err and err.startswith("error: ") and err.count("\n") == 1, err
