"""Multi-process scoring of large files (`sentimentkit.scale.multiproc`, `predict --jobs`)."""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sentimentkit.config import REPO_ROOT
from sentimentkit.models.pipeline import card_path
from sentimentkit.scale import multiproc
from sentimentkit.scale.multiproc import can_fork, score_file
from sentimentkit.serving.batch import BatchError
from sentimentkit.serving.predictor import Predictor

from .conftest import TINY_TEXTS

TOO_LONG = "good " * 2000  # over the 5,120-character limit


def cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sentimentkit", *args], cwd=REPO_ROOT, **kwargs)


def counts(result) -> tuple[int, int]:
    return result.rows, result.flagged


def mixed_texts(n: int) -> list[object]:
    """`n` texts, every seventh one unscorable (empty, blank, too long) in turn."""
    bad = ["", "   ", TOO_LONG]
    return [bad[(i // 7) % 3] if i % 7 == 3 else f"{TINY_TEXTS[i % len(TINY_TEXTS)]} #{i}" for i in range(n)]


@pytest.fixture
def mixed_csv(tmp_path: Path) -> Path:
    path = tmp_path / "in.csv"
    texts = mixed_texts(60)
    pd.DataFrame({"id": range(len(texts)), "text": texts, "sentiment": "x"}).to_csv(path, index=False)
    return path


def test_two_jobs_write_the_same_bytes_as_one_process(tiny_model_path, mixed_csv, tmp_path):
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    assert counts(score_file(tiny_model_path, mixed_csv, one, jobs=1, chunk_rows=7)) == (60, 9)
    assert counts(score_file(tiny_model_path, mixed_csv, two, jobs=2, chunk_rows=7)) == (60, 9)
    assert two.read_bytes() == one.read_bytes()  # jobs=1: one process, no pool
    scored = pd.read_csv(two, dtype=str, keep_default_na=False)
    assert scored["id"].tolist() == [str(i) for i in range(60)]  # input order across 9 chunks
    assert scored["sentiment_input"].eq("x").all()  # an input column named like an output is kept
    assert scored["error"][3] == "empty text" and scored["error"][17].startswith("text too long")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def worker_command_lines(others: frozenset[int] = frozenset()) -> list[list[str]]:
    """Command lines of this process's children, except `others` (servers other tests started)."""
    return [child.cmdline() for child in psutil.Process().children() if child.pid not in others]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked on Linux only")
def test_workers_are_forked_after_the_model_is_loaded_and_share_it(tiny_model_path, mixed_csv, tmp_path):
    seen: list[list[list[str]]] = []
    others = frozenset(child.pid for child in psutil.Process().children())
    gc.unfreeze()  # an in-process API of an earlier test may have frozen its model (harmless to undo)
    score_file(tiny_model_path, mixed_csv, tmp_path / "out.csv", jobs=2, chunk_rows=7,
               on_scored=lambda _: seen.append(worker_command_lines(others)))  # fmt: skip
    # A forked worker runs this very command line (pytest); a spawned one `python -c ... spawn_main`.
    assert seen and all(len(workers) == 2 for workers in seen)
    assert all(cmd == psutil.Process().cmdline() for workers in seen for cmd in workers)
    assert gc.get_freeze_count() == 0  # the objects frozen for the fork are thawed afterwards
    assert can_fork(Predictor.load(tiny_model_path))


def test_backends_with_native_threads_are_not_forked():
    from sentimentkit.serving.transformer import OnnxPredictor, TorchPredictor

    assert not OnnxPredictor.fork_safe and not TorchPredictor.fork_safe


def test_spawned_and_forked_workers_write_the_same_bytes(tiny_model_path, mixed_csv, tmp_path, monkeypatch):
    forked, spawned = tmp_path / "forked.csv", tmp_path / "spawned.csv"
    assert counts(score_file(tiny_model_path, mixed_csv, forked, jobs=2, chunk_rows=7)) == (60, 9)
    # The path a non-fork-safe backend (or macOS/Windows) takes: each spawned worker loads the model.
    monkeypatch.setattr(multiproc, "can_fork", lambda predictor: False)
    seen: list[list[list[str]]] = []
    result = score_file(tiny_model_path, mixed_csv, spawned, jobs=2, chunk_rows=7,
                        on_scored=lambda _: seen.append(worker_command_lines()))  # fmt: skip
    assert counts(result) == (60, 9) and spawned.read_bytes() == forked.read_bytes()
    assert any("spawn_main" in " ".join(cmd) for workers in seen for cmd in workers)


def test_a_bad_line_found_while_reading_stops_the_workers_and_writes_nothing(tiny_model_path, tmp_path):
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    lines = [f"{TINY_TEXTS[i % 9]} {i}" for i in range(100)]
    source.write_text("text\n" + "\n".join(lines) + '\n"a quote never closed\nmore\n', encoding="utf-8")
    before = set(psutil.Process().children())
    with pytest.raises(BatchError, match="never closed"):
        score_file(tiny_model_path, source, out, jobs=2, chunk_rows=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]
    _, alive = psutil.wait_procs(set(psutil.Process().children()) - before, timeout=30)
    assert not alive


def test_parquet_in_and_out_keeps_types_order_and_flags_nulls(tiny_model_path, tmp_path):
    source, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    texts = mixed_texts(30)
    texts[5] = None
    table = pa.table({"id": pa.array(range(30), pa.int64()), "text": pa.array(texts, pa.string()),
                      "when": pa.array([1.5] * 30)})  # fmt: skip
    pq.write_table(table, source, row_group_size=8)
    assert counts(score_file(tiny_model_path, source, out, jobs=2, chunk_rows=8)) == (30, 5)
    result = pq.read_table(out)
    assert (
        result.schema.field("id").type == pa.int64()
        and result.schema.field("confidence").type == pa.float64()
    )
    assert result.schema.field("uncertain").type == pa.bool_()
    frame = result.to_pandas()
    assert frame["id"].tolist() == list(range(30))
    assert frame["error"][5] == "empty text" and pd.isna(frame["sentiment"][5])
    # The same rows as CSV give the same labels.
    csv_in, csv_out = tmp_path / "in.csv", tmp_path / "out.csv"
    table.to_pandas().fillna("").to_csv(csv_in, index=False)
    score_file(tiny_model_path, csv_in, csv_out, jobs=1)
    expected = pd.read_csv(csv_out, dtype=str, keep_default_na=False)["sentiment"]
    assert frame["sentiment"].fillna("").tolist() == expected.tolist()


def test_csv_in_parquet_out_has_every_input_column_as_text(tiny_model_path, mixed_csv, tmp_path):
    out = tmp_path / "out.parquet"
    score_file(tiny_model_path, mixed_csv, out, jobs=2, chunk_rows=25)
    result = pq.read_table(out)
    assert result.num_rows == 60 and result.schema.field("id").type == pa.string()
    assert result.column_names[:3] == ["id", "text", "sentiment_input"]


def test_a_tampered_model_is_one_error_line_from_the_workers(tiny_model_path, mixed_csv, tmp_path):
    model = tmp_path / "model.pkl"
    model.write_bytes(tiny_model_path.read_bytes()[:-1] + b"\x00")
    card_path(model).write_bytes(card_path(tiny_model_path).read_bytes())
    out = tmp_path / "out.csv"
    proc = cli("predict", "--model", str(model), "--input", str(mixed_csv), "--output", str(out),
               "--jobs", "2", "--chunk-rows", "10", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2 and stderr.startswith("error: ") and "Traceback" not in stderr
    assert not out.exists()


@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C"])
def test_an_interrupted_run_leaves_no_output_and_no_workers(tiny_model_path, tmp_path, how):
    source, out = tmp_path / "big.csv", tmp_path / "out.csv"
    pd.DataFrame({"text": [f"{TINY_TEXTS[i % 9]} {i}" for i in range(200_000)]}).to_csv(source, index=False)
    # A shell without job control starts background commands with SIGINT ignored, and children
    # inherit that (a CI runner may do the same): give the CLI the terminal's default, as a user has.
    proc = cli("predict", "--model", str(tiny_model_path), "--input", str(source), "--output", str(out),
               "--jobs", "2", "--chunk-rows", "500", start_new_session=True,
               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while (
        not any(p.name.endswith(".part") for p in tmp_path.iterdir())
        or len(psutil.Process(proc.pid).children()) < 2
    ):
        assert proc.poll() is None and time.monotonic() < deadline, (
            "the run ended before it could be interrupted"
        )
        time.sleep(0.05)
    workers = psutil.Process(proc.pid).children(recursive=True)
    if how == "SIGTERM":
        proc.send_signal(signal.SIGTERM)
    else:  # a terminal sends SIGINT to the whole foreground process group
        os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv"]  # no output, no .part
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive


HALF_MESSAGE_SCRIPT = """
import multiprocessing, os, struct, sys, time
from concurrent.futures import ProcessPoolExecutor
from sentimentkit.scale.multiproc import _stop_workers

queues = []

def write_half_a_result():  # what a worker killed while sending its result leaves in the pipe
    os.write(queues[0]._writer.fileno(), struct.pack("!i", 1000) + b"x" * 10)
    time.sleep(60)

if __name__ == "__main__":
    before = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    queues.append(pool._result_queue)
    pool.submit(os.getpid).result()  # the worker is forked now, with `queues` filled
    manager = pool._executor_manager_thread
    pool.submit(write_half_a_result)
    time.sleep(1)
    _stop_workers(pool, set(multiprocessing.active_children()) - before, grace_s=0.5)
    manager.join(10)
    print("manager alive:", manager.is_alive())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked on Linux only")
def test_a_worker_stopped_mid_result_does_not_hang_the_run(tmp_path):
    """Stopping a worker that had written half a result left the pool's manager thread waiting for
    the rest, and the interpreter joined it at exit: interrupted runs hung (1 in 6)."""
    script = tmp_path / "half.py"
    script.write_text(HALF_MESSAGE_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})  # fmt: skip
    assert done.returncode == 0 and "manager alive: False" in done.stdout, done.stderr


def test_progress_bar_only_on_a_terminal(tiny_model_path, mixed_csv, tmp_path):
    quiet = cli("predict", "--model", str(tiny_model_path), "--input", str(mixed_csv), "--output",
                str(tmp_path / "a.csv"), "--jobs", "1", stderr=subprocess.PIPE, text=True)  # fmt: skip
    stderr = quiet.communicate(timeout=120)[1]
    assert quiet.returncode == 0 and "rows/s" not in stderr and "%|" not in stderr
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    shown = cli("predict", "--model", str(tiny_model_path), "--input", str(mixed_csv), "--output",
                str(tmp_path / "b.csv"), "--jobs", "1", stderr=follower)  # fmt: skip
    os.close(follower)
    assert shown.wait(timeout=120) == 0
    screen = b""
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the terminal closed
            break
        if not data:
            break
        screen += data
    assert b"100%" in screen and b"60.0/60.0" in screen and b" rows/s" in screen


def _start_big_run(model: Path, tmp_path: Path, out: Path, rows: int = 200_000) -> subprocess.Popen:
    """A `predict --jobs 2` run long enough to be caught with both workers running."""
    source = tmp_path / "big.csv"
    pd.DataFrame({"text": [f"{TINY_TEXTS[i % 9]} {i}" for i in range(rows)]}).to_csv(source, index=False)
    proc = cli("predict", "--model", str(model), "--input", str(source), "--output", str(out),
               "--jobs", "2", "--chunk-rows", "500", start_new_session=True,
               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while len(psutil.Process(proc.pid).children()) < 2 or not any(
        p.name.endswith(".part") for p in tmp_path.iterdir()
    ):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be caught"
        time.sleep(0.05)
    return proc


def _gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The processes still running after `timeout` seconds (a zombie nobody reaped counts as ended)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for p in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked on Linux only")
def test_a_killed_worker_is_one_error_line_exit_4_and_the_old_output_is_kept(tiny_model_path, tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("the old scores\n")
    proc = _start_big_run(tiny_model_path, tmp_path, out)
    workers = psutil.Process(proc.pid).children()
    workers[0].send_signal(signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 4, stderr
    assert stderr.startswith("error: a worker process died") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr and "BrokenProcessPool" not in stderr
    assert out.read_text() == "the old scores\n"  # kept, byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv", "out.csv"]  # no partial file
    assert not _gone(workers, timeout=30)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked on Linux only")
def test_workers_end_within_seconds_when_the_cli_process_is_killed(tiny_model_path, tmp_path):
    proc = _start_big_run(tiny_model_path, tmp_path, tmp_path / "out.csv")
    workers = psutil.Process(proc.pid).children()
    proc.kill()  # SIGKILL: no clean-up code runs in the parent
    proc.wait(timeout=30)  # not communicate(): workers still running would hold its pipes open
    alive = _gone(workers, timeout=5)  # they used to score on for ~20 s, then wait forever for chunks
    for p in alive:
        p.kill()
    assert not alive, [p.pid for p in alive]


ORPHAN_SCRIPT = """
import multiprocessing, os, sys, time
from sentimentkit.scale import multiproc

def worker(parent):
    sys.platform = "darwin"  # as where there is no prctl: the worker must notice by itself
    multiproc.PARENT_POLL_S = 0.1
    multiproc._die_with_parent(parent)
    open(sys.argv[1], "w").close()  # armed
    time.sleep(120)

if __name__ == "__main__":
    child = multiprocessing.get_context("fork").Process(target=worker, args=(os.getpid(),))
    child.start()
    print(child.pid, flush=True)
    time.sleep(120)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="no fork")
def test_without_the_kernel_signal_a_worker_polls_for_its_parent(tmp_path):
    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN_SCRIPT)
    armed = tmp_path / "armed"
    parent = subprocess.Popen([sys.executable, str(script), str(armed)], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})  # fmt: skip
    worker = psutil.Process(int(parent.stdout.readline()))
    deadline = time.monotonic() + 30
    while not armed.exists():
        assert time.monotonic() < deadline and worker.is_running(), "the worker did not start watching"
        time.sleep(0.05)
    parent.kill()
    parent.wait(30)
    alive = _gone([worker], timeout=5)
    for p in alive:
        p.kill()
    assert not alive
