"""The one output writer (`sentimentkit.io.write`): each promise of its docstring, then the commands
that write files through it (the regression tests of the defects testers found)."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from sentimentkit.config import REPO_ROOT
from sentimentkit.io import storage
from sentimentkit.io.tables import BatchError
from sentimentkit.io.write import (
    OutputError,
    OutputExistsError,
    check_target,
    normalise_uri,
    open_output,
    refuse_inputs,
    remove_leftovers,
    same_target,
    write_output,
)
from sentimentkit.mlops import retrain
from tests.mlops.conftest import azurite, blob_env, make_container  # noqa: F401 - fixtures

from .conftest import write_tiny_splits

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def cli(*args: str, env: dict | None = None, **kw: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sentimentkit", *args], capture_output=True, cwd=REPO_ROOT,
                          env={**os.environ, **(env or {})}, timeout=300, **kw)  # fmt: skip


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def char_device(path: Path) -> Path:
    """A copy of /dev/null's node (1, 3) at `path`: a character device a test may point a command at
    without touching the system's /dev/null if the command misbehaves. Root only."""
    if not IS_ROOT:
        pytest.skip("making a device node needs root")
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError as exc:
        pytest.skip(f"cannot make a device node here ({exc})")
    return path


# --- promise 1: never over an input ------------------------------------------------------------
def test_refuses_an_input_by_resolved_path_symlink_and_hard_link(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(b"text\nkeep me\n")
    (tmp_path / "link.csv").symlink_to(src)
    os.link(src, tmp_path / "hard.csv")
    for target in (src, tmp_path / "." / "in.csv", tmp_path / "sub" / ".." / "in.csv", tmp_path / "link.csv",
                   tmp_path / "hard.csv"):  # fmt: skip
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(OutputError, match="is the input file; writing it would destroy it") as info:
            write_output(target, b"scores", inputs=[(src, "the input file")])
        assert "\n" not in str(info.value)
    assert src.read_bytes() == b"text\nkeep me\n" and leftovers(tmp_path) == []
    assert isinstance(info.value, BatchError)  # every front end already shows it as one line
    write_output(tmp_path / "other.csv", b"scores", inputs=[src])  # a different file is fine


def test_refuses_files_inside_an_input_folder_except_owned_folders_and_the_replaced_file(
    tmp_path: Path,
) -> None:
    log = tmp_path / "log"
    (log / "day=1").mkdir(parents=True)
    part = log / "day=1" / "part-0.parquet"
    part.write_bytes(b"PAR1 data")
    inputs = [(log, "the prediction log folder")]
    for target in (part, log / "day=1" / "new.html", log / "report.html"):
        with pytest.raises(OutputError, match="is inside the prediction log folder"):
            write_output(target, b"<html>", inputs=inputs)
    os.link(part, tmp_path / "outside.parquet")  # a hard link elsewhere is still the log's file
    with pytest.raises(OutputError, match="is inside the prediction log folder"):
        write_output(tmp_path / "outside.parquet", b"<html>", inputs=inputs)
    assert part.read_bytes() == b"PAR1 data"
    # retrain: the state folder inside incoming is its own, but an input file inside it is not
    state = log / "_state"
    state.mkdir()
    write_output(state / "report.json", b"{}", inputs=inputs, owned=[state])
    (state / "batch.csv").write_bytes(b"text,label\n")
    with pytest.raises(OutputError, match="is an incoming batch"):
        write_output(state / "batch.csv", b"x", inputs=[*inputs, (state / "batch.csv", "an incoming batch")],
                     owned=[state])  # fmt: skip
    # sign: the card is the one file of the model folder the command exists to update
    write_output(log / "card.json", b"{}", inputs=inputs, replaces=log / "card.json")
    assert (log / "card.json").read_bytes() == b"{}"


def test_refuses_uris_by_their_normalised_form_without_touching_storage() -> None:
    assert normalise_uri("abfs://data/a/./x/../b.csv") == normalise_uri("az://data//a/b.csv")
    assert normalise_uri("abfss://data@acct.dfs.core.windows.net/a/b.csv") == "azure://data/a/b.csv"
    for target in ("az://data/a/b.csv", "AZ://data/a//b.csv", "abfs://data/a/c/../b.csv"):
        with pytest.raises(OutputError, match="is the input file"):
            check_target(target, inputs=[("az://data/a/b.csv", "the input file")])
    with pytest.raises(OutputError, match="is inside the prediction log folder"):
        check_target(
            "az://logs/pred/day=2026-01-01/part.parquet",
            inputs=[("az://logs/pred/", "the prediction log folder")],
        )
    with pytest.raises(OutputError, match="is the input"):  # Spark's output folder spelled with a slash
        refuse_inputs(
            "wasbs://c@acct.blob.core.windows.net/in/",
            inputs=[("abfss://c@acct.dfs.core.windows.net/in", "the input")],
        )
    check_target("az://logs/predictions-report.html", inputs=["az://logs/pred"])  # a sibling is fine
    check_target("az://data/a/b.csv", inputs=["/local/a/b.csv"])  # local and remote never collide
    assert same_target("-", "-") and not same_target("-", "out.csv")


def test_exclusive_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    write_output(target, b"first", exclusive=True)
    with pytest.raises(OutputExistsError, match="already exists; it is not overwritten"):
        write_output(target, b"second", exclusive=True)
    assert target.read_bytes() == b"first" and leftovers(tmp_path) == []


# --- promise 2: standard output ----------------------------------------------------------------
def test_dash_writes_bytes_and_text_to_standard_output_unchanged(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import sys
        from sentimentkit.io.write import open_output, write_output
        print("before", flush=False)
        write_output("-", b"\\x00\\xff\\xfe bin\\r\\n")
        with open_output("-") as out:
            out.write("caf\\u00e9 \\u20ac\\r\\nline\\rend\\n")
        print("after")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"before\n\x00\xff\xfe bin\r\ncaf\xc3\xa9 \xe2\x82\xac\r\nline\rend\nafter\n"
    assert list(tmp_path.iterdir()) == []  # no file named "-"


# --- promises 3 and 4: symlinks, FIFOs, devices --------------------------------------------------
def test_a_symlink_stays_a_link_and_its_target_is_replaced(tmp_path: Path) -> None:
    real = tmp_path / "shared" / "latest.csv"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "out.csv"
    link.symlink_to(real)
    write_output(link, b"new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == b"new" and leftovers(real.parent) == [] and leftovers(tmp_path) == []
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "shared" / "created.csv")
    write_output(dangling, b"made")
    assert dangling.is_symlink() and (tmp_path / "shared" / "created.csv").read_bytes() == b"made"


def _read_fifo(fifo: Path, into: list[bytes]) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.append(fifo.read_bytes()), daemon=True)
    thread.start()
    return thread


def test_a_fifo_with_a_reader_gets_the_bytes_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = _read_fifo(fifo, got)
    write_output(fifo, b"a,b\r\n1,2\n" * 1000)
    reader.join(10)
    assert got == [b"a,b\r\n1,2\n" * 1000]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and list(tmp_path.iterdir()) == [fifo]


def test_dev_null_and_other_character_devices_are_written_in_place(tmp_path: Path) -> None:
    before = os.stat("/dev/null")
    write_output("/dev/null", b"x" * 100_000)
    with open_output("/dev/null") as out:
        out.write("text")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino
    if IS_ROOT:
        node = char_device(tmp_path / "null")
        write_output(node, b"scores")
        assert stat.S_ISCHR(os.lstat(node).st_mode) and leftovers(tmp_path) == []


def test_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(OutputError, match="not a regular file; it is never written over"):
            write_output(path, b"x")
        assert stat.S_ISSOCK(os.lstat(path).st_mode)


# --- promise 5: atomic -------------------------------------------------------------------------
def test_an_exception_or_ctrl_c_keeps_the_previous_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_bytes(b"yesterday")
    for error in (RuntimeError("scoring failed"), KeyboardInterrupt()):
        with pytest.raises(type(error)), open_output(target) as out:
            out.write("partial " * 100_000)
            assert leftovers(tmp_path)  # written beside the target meanwhile
            raise error
        assert target.read_bytes() == b"yesterday" and leftovers(tmp_path) == []


@pytest.fixture
def full_disk_on_part_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """os.write and os.fsync fail with ENOSPC on the writer's temporary files, as on a full disk."""
    real_write, real_fsync = os.write, os.fsync

    def is_part(fd: int) -> bool:
        try:
            return os.readlink(f"/proc/self/fd/{fd}").endswith(".part")
        except OSError:
            return False

    def write(fd: int, data: bytes) -> int:
        if is_part(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    def fsync(fd: int) -> None:
        if is_part(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to tell the writer's files from others")
    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "fsync", fsync)


def test_a_full_disk_keeps_the_previous_file(tmp_path: Path, full_disk_on_part_files: None) -> None:
    target = tmp_path / "report.html"
    target.write_bytes(b"last week's report")
    for data in (b"<html>" * 300_000, b"small"):  # fails while writing / at the flush to disk
        with pytest.raises(OutputError, match="the disk is full; .*report.html' is unchanged") as info:
            write_output(target, data)
        assert "\n" not in str(info.value)
        assert target.read_bytes() == b"last week's report" and leftovers(tmp_path) == []


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB tmpfs (root only; skipped elsewhere)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if not IS_ROOT or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                                     capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_really_full_disk_keeps_the_previous_file(small_tmpfs: Path) -> None:
    target = small_tmpfs / "out.csv"
    target.write_bytes(b"old scores\n")
    with pytest.raises(OutputError, match="the disk is full"):
        write_output(target, b"x" * (1 << 20))
    assert target.read_bytes() == b"old scores\n" and leftovers(small_tmpfs) == []


_HOLDER = """
import sys, time
from sentimentkit.io.write import open_output
with open_output(sys.argv[1]) as out:
    out.write("partial" * 1000)
    out.flush()
    print("writing", flush=True)
    time.sleep(600)
"""


def _start_holder(target: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", _HOLDER, str(target)], stdout=subprocess.PIPE,
                               env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})  # fmt: skip
    assert process.stdout is not None and process.stdout.readline() == b"writing\n"
    return process


def test_leftovers_of_a_killed_run_are_removed_but_never_a_running_ones(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_bytes(b"old")
    killed = _start_holder(target)
    killed_temp = leftovers(tmp_path)
    assert len(killed_temp) == 1 and f".out.csv.{killed.pid}." in killed_temp[0]
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(30)
    assert leftovers(tmp_path) == killed_temp  # SIGKILL leaves it: nothing could clean up
    running = _start_holder(target)
    try:
        running_temp = [n for n in leftovers(tmp_path) if n not in killed_temp]
        write_output(target, b"new")
        assert target.read_bytes() == b"new"
        assert leftovers(tmp_path) == running_temp  # the killed run's file is gone, the live one's kept
        assert remove_leftovers(target) == []
    finally:
        running.kill()
        running.wait(30)


# --- promise 6: the mode ------------------------------------------------------------------------
def test_the_mode_of_an_existing_file_is_kept_and_new_files_follow_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "scores.csv"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_output(target, b"new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    umask = os.umask(0o027)
    try:
        write_output(tmp_path / "new.csv", b"x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "new.csv").stat().st_mode) == 0o640


# --- promise 7: Azure Blob ----------------------------------------------------------------------
def test_blob_is_uploaded_only_when_the_block_and_the_upload_succeed(
    blob_env: str,  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_container("writer")
    uri = "az://writer/out/report.html"
    write_output(uri, b"old report")
    with pytest.raises(RuntimeError), open_output(uri) as out:
        out.write("half a report")
        raise RuntimeError("rendering failed")
    assert storage.read_bytes(uri) == b"old report"

    def failing_upload(local: object, target: object) -> None:
        raise storage.StorageError("storage operation on az://writer/out/report.html failed (Timeout).")

    monkeypatch.setattr(storage, "upload", failing_upload)
    with pytest.raises(storage.StorageError):
        write_output(uri, b"new report")
    monkeypatch.undo()
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", blob_env)
    assert storage.read_bytes(uri) == b"old report"
    with pytest.raises(OutputError, match="is the input file"):
        write_output("abfs://writer/out//report.html", b"x", inputs=[(uri, "the input file")])
    write_output(uri, b"new report")
    assert storage.read_bytes(uri) == b"new report"


# --- the commands --------------------------------------------------------------------------------
@pytest.fixture
def scored_input(tmp_path: Path) -> Path:
    src = tmp_path / "in.csv"
    src.write_bytes(b"text,day\nI love it,2024-01-01\nI hate it,2024-01-02\nthe train,2024-01-03\n")
    return src


def test_report_refuses_to_write_over_its_input(tiny_model_path: Path, scored_input: Path) -> None:
    before = scored_input.read_bytes()
    for flag in ("--output", "--json"):
        args = ["--output", str(scored_input.parent / "r.html")] if flag == "--json" else []
        result = cli("report", "--model", str(tiny_model_path), "--input", str(scored_input), *args,
                     flag, str(scored_input), text=True)  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert "is the input file" in result.stderr and "Traceback" not in result.stderr
        assert scored_input.read_bytes() == before  # was: turned into HTML, exit 0
    result = cli("report", "--model", str(tiny_model_path), "--input", str(scored_input), "--output",
                 str(scored_input.parent / "r.html"), "--json", str(scored_input.parent / "r.html"), text=True)  # fmt: skip
    assert result.returncode == 2 and "name the same file" in result.stderr


def test_report_to_standard_output(tiny_model_path: Path, scored_input: Path) -> None:
    result = cli("report", "--model", str(tiny_model_path), "--input", str(scored_input), "--output", "-")
    assert result.returncode == 0, result.stderr
    assert b"<html" in result.stdout[:1000] and result.stdout.rstrip().endswith(b"</html>")
    assert b"wrote standard output" in result.stderr and not (scored_input.parent / "-").exists()


def test_report_on_a_full_disk_keeps_the_previous_report(
    tiny_model_path: Path, scored_input: Path, full_disk_on_part_files: None, capsys: pytest.CaptureFixture
) -> None:
    from sentimentkit.cli import main

    old = scored_input.parent / "report.html"
    old.write_bytes(b"last week's report")
    code = main(
        ["report", "--model", str(tiny_model_path), "--input", str(scored_input), "--output", str(old)]
    )
    assert code == 2 and "the disk is full" in capsys.readouterr().err
    assert old.read_bytes() == b"last week's report" and leftovers(old.parent) == []


def test_report_on_a_really_full_disk_keeps_the_previous_report(
    tiny_model_path: Path, scored_input: Path, small_tmpfs: Path
) -> None:
    old = small_tmpfs / "report.html"
    old.write_bytes(b"last week's report")
    filler = small_tmpfs / "filler"
    filler.write_bytes(b"f" * (256 * 1024 - 2 * 4096 - 4096))  # leaves about a page free
    result = cli("report", "--model", str(tiny_model_path), "--input", str(scored_input), "--output", str(old),
                 text=True)  # fmt: skip
    assert result.returncode == 2 and "the disk is full" in result.stderr, result.stderr
    assert old.read_bytes() == b"last week's report"  # was: truncated by Path.write_text
    assert leftovers(small_tmpfs) == []


def test_monitor_html_refuses_a_path_in_the_prediction_log(tiny_log: Path, tiny_model_path: Path,
                                                           tmp_path: Path) -> None:  # fmt: skip
    env = {"SENTIMENTKIT_DATA_DIR": str(write_tiny_splits(tmp_path / "data"))}
    part = next(p for p in tiny_log.rglob("*") if p.is_file())
    before = part.read_bytes()
    for target in (part, part.parent / "report.html"):
        result = cli("monitor", "--log", str(tiny_log), "--model", str(tiny_model_path), "--html", str(target),
                     env=env, text=True)  # fmt: skip
        assert result.returncode == 2 and "inside the prediction log folder" in result.stderr, result.stderr
    assert part.read_bytes() == before  # was: the part file became HTML and every later monitor failed
    result = cli(
        "monitor", "--log", str(tiny_log), "--model", str(tiny_model_path), "--json", env=env, text=True
    )
    assert result.returncode == 0 and json.loads(result.stdout)["n"] == 300


def predict_to(model: Path, src: Path, target: Path | str, *extra: str) -> subprocess.CompletedProcess:
    return cli("predict", "--model", str(model), "--input", str(src), "--output", str(target), "--jobs", "1",
               *extra, text=True)  # fmt: skip


def test_predict_keeps_a_symlink_a_fifo_and_a_device(
    tiny_model_path: Path, scored_input: Path, tmp_path: Path
) -> None:
    real = tmp_path / "real.csv"
    real.write_bytes(b"old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    result = predict_to(tiny_model_path, scored_input, link)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and real.read_bytes().startswith(b"text,day,sentiment")  # was: link replaced

    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = _read_fifo(fifo, got)
    result = predict_to(tiny_model_path, scored_input, fifo)
    reader.join(30)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # was: a regular file, and the reader got nothing
    assert got and got[0].startswith(b"text,day,sentiment") and got[0].count(b"\n") == 4

    node = char_device(tmp_path / "null")  # a device node like /dev/null (the real one is tested below)
    result = predict_to(tiny_model_path, scored_input, node)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISCHR(os.lstat(node).st_mode)  # was: replaced by a regular file
    assert leftovers(tmp_path) == []


def test_predict_to_dev_null_and_to_standard_output(tiny_model_path: Path, scored_input: Path) -> None:
    result = predict_to(tiny_model_path, scored_input, "/dev/null")
    assert result.returncode == 0 and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    result = predict_to(tiny_model_path, scored_input, "-")
    assert result.returncode == 0, result.stderr
    scored = pd.read_csv(__import__("io").StringIO(result.stdout), dtype=str)
    assert scored["text"].tolist() == ["I love it", "I hate it", "the train"]
    assert "wrote 3 rows to standard output" in result.stderr


def test_predict_refuses_the_model_and_the_prediction_log(tiny_model_path: Path, scored_input: Path,
                                                          tmp_path: Path) -> None:  # fmt: skip
    result = predict_to(tiny_model_path, scored_input, tiny_model_path)
    assert result.returncode == 2 and "is the model" in result.stderr
    log = tmp_path / "log"
    log.mkdir()
    result = cli("predict", "--model", str(tiny_model_path), "--input", str(scored_input), "--output",
                 str(log / "x.csv"), env={"SENTIMENTKIT_PREDICTION_LOG": str(log)}, text=True)  # fmt: skip
    assert result.returncode == 2 and "inside the prediction log folder" in result.stderr


def test_train_refuses_to_write_over_a_data_file(tmp_path: Path) -> None:
    data = write_tiny_splits(tmp_path / "data")
    before = (data / "train.csv").read_bytes()
    result = cli("train", "--data", str(data), "--out", str(data / "train.csv"), text=True)
    assert result.returncode == 2 and "is the data file train.csv" in result.stderr, result.stderr
    assert (data / "train.csv").read_bytes() == before


def test_ensemble_refuses_an_out_folder_that_is_a_member(tiny_model_path: Path, tmp_path: Path) -> None:
    from sentimentkit.serving.ensemble import write_ensemble
    from sentimentkit.serving.loader import load_predictor

    member = tmp_path / "accurate"
    write_ensemble(member, [tiny_model_path, tiny_model_path], load_predictor)  # a loadable folder model
    before = {p.name: p.read_bytes() for p in member.iterdir()}
    result = cli("ensemble", str(tiny_model_path), str(member), "--out", str(member), text=True)
    assert result.returncode == 2 and "is inside the member" in result.stderr, result.stderr
    assert {p.name: p.read_bytes() for p in member.iterdir()} == before  # was: its own files rewritten


def test_spark_predict_refuses_its_input_as_output_before_spark_starts(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for output in (src, src / "scored", "abfss://c@acct.dfs.core.windows.net/x/y"):
        given = "abfss://c@acct.dfs.core.windows.net/x/" if isinstance(output, str) else str(src)
        result = cli("spark-predict", "--input", given, "--output", str(output), text=True)
        assert result.returncode == 2 and (
            "is the input" in result.stderr or "is inside the input" in result.stderr
        )


def test_evaluate_writes_its_json_through_the_writer(tiny_model_path: Path, tmp_path: Path) -> None:
    data = write_tiny_splits(tmp_path / "data")
    out = tmp_path / "metrics.json"
    result = cli("evaluate", "--model", str(tiny_model_path), "--data", str(data / "test.csv"), "--output", str(out),
                 text=True)  # fmt: skip
    assert result.returncode == 0 and "recall" in result.stdout
    assert 0 <= json.loads(out.read_text())["avg_recall"] <= 1
    result = cli("evaluate", "--model", str(tiny_model_path), "--data", str(data / "test.csv"), "--output",
                 str(data / "test.csv"), text=True)  # fmt: skip
    assert result.returncode == 2 and "is the data file" in result.stderr


def test_sign_updates_the_card_inside_a_model_folder(tmp_path: Path) -> None:
    from sentimentkit.models.card import write_card

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"w")
    card = {"name": "x", "format": "onnx", "files": {"weights.bin": {"sha256": "0" * 64, "bytes": 1}}}
    write_card(folder, card)  # the card is inside the model (an input): replaced as the file it updates
    write_card(folder, {**card, "name": "y"})
    assert json.loads((folder / "card.json").read_text())["name"] == "y" and leftovers(folder) == []


def test_retrain_reports_never_overwrite_and_its_state_stays_out_of_incoming(tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "b1.csv").write_text("text,label\nhi,positive\n")
    state = retrain.state_of(str(incoming))
    inputs = retrain.run_inputs(str(incoming), [str(incoming / "b1.csv")])
    first = retrain.write_report(state, "2026-01-01T000000+0000", {"n": 1}, inputs, (state,))
    second = retrain.write_report(state, "2026-01-01T000000+0000", {"n": 2}, inputs, (state,))
    assert first != second and json.loads(Path(first).read_text()) == {"n": 1}
    retrain.write_manifest(state, {"batches": {}}, inputs)
    retrain.write_manifest(state, {"batches": {"x": {}}}, inputs)  # the file it updates, replaced
    assert retrain.read_manifest(state) == {"batches": {"x": {}}}
    with pytest.raises(OutputError, match="is an incoming batch"):
        retrain.save_frame(str(incoming / "b1.csv"), pd.DataFrame({"text": ["x"]}), inputs, (state,))
    with pytest.raises(OutputError, match="in the incoming folder"):  # its batches/ would be incoming
        retrain.check_state(str(tmp_path / "batches"), str(tmp_path))
    assert (incoming / "b1.csv").read_text() == "text,label\nhi,positive\n"


def test_downloads_and_the_api_use_the_same_csv_function() -> None:
    from sentimentkit.api import csv_route
    from sentimentkit.io import write
    from sentimentkit.serving import batch

    assert batch.csv_text is write.csv_text and batch.result_csv_bytes is write.result_csv_bytes
    assert csv_route.csv_text is write.csv_text
    app_source = (REPO_ROOT / "app.py").read_text()
    assert "batch.result_csv_bytes(scored" in app_source


def test_leftover_clean_up_touches_only_the_targets_own_temporary_files(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    mine, other = tmp_path / f".out.csv.{gone.pid}.k2j_x.part", tmp_path / f".other.csv.{gone.pid}.abc.part"
    mine.write_bytes(b"x")
    other.write_bytes(b"x")
    write_output(tmp_path / "out.csv", b"y")
    assert not mine.exists() and other.exists()
