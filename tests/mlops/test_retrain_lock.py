"""Two `retrain` runs at once (`sentimentkit.mlops.lock`): one trains, the other waits or stops with
one line; never two challengers from the same batches, never a report overwritten. Local folders
(flock) and Azure Blob (a lease, on Azurite); a missing incoming location is an error, not "nothing new"."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sentimentkit.config import REPO_ROOT
from sentimentkit.io import storage
from sentimentkit.mlops import CHAMPION, TFIDF_MODEL, registry, retrain
from sentimentkit.mlops.lock import LockedError, state_lock
from tests.mlops.conftest import make_container
from tests.mlops.test_retrain import batch_frame, champion  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("registry_env")

HOLD_SCRIPT = """
import sys, time
from sentimentkit.mlops import lock
lock.LEASE_S = 15  # Azure's shortest lease, so the test waits little for a dead holder's to lapse
with lock.state_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def two_runs_at_once(incoming: str) -> list[dict]:
    """Two real retrain runs started together in threads; the second waits for the first."""
    start = threading.Barrier(2)

    def run(_: int) -> dict:
        start.wait()
        return retrain.retrain(incoming, log=lambda *a: None, lock_wait_s=300)

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(run, range(2), timeout=600))


def test_two_local_runs_at_once_train_one_challenger(champion: Path, tmp_path: Path) -> None:  # noqa: F811
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    batch_frame(0).to_csv(incoming / "b1.csv", index=False)
    reports = two_runs_at_once(str(incoming))
    assert sorted(r["status"] for r in reports) == ["done", "nothing new"]
    assert [v["version"] for v in registry.list_versions()] in (["1", "2"], ["2", "1"])
    assert registry.current_version(TFIDF_MODEL, CHAMPION) in ("1", "2")
    assert len(list((incoming / "_sentimentkit" / "reports").glob("*.json"))) == 1


def hold_lock(state: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD_SCRIPT, state], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_a_held_lock_is_one_line_and_exit_5_and_a_dead_holder_frees_it(
    champion: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sentimentkit.cli import main

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    batch_frame(0).to_csv(incoming / "b1.csv", index=False)
    holder = hold_lock(str(incoming / "_sentimentkit"))
    try:
        assert main(["retrain", "--incoming", str(incoming)]) == 5
        err = capsys.readouterr().err
        assert err.startswith("error: another retrain is running on") and err.count("\n") == 1
        assert f"pid {holder.pid}" in err and "--wait" in err
        started = time.monotonic()
        with pytest.raises(LockedError, match=r"waited 1\.5 s"):
            retrain.retrain(str(incoming), log=lambda *a: None, lock_wait_s=1.5)
        assert time.monotonic() - started >= 1.5
    finally:
        holder.send_signal(signal.SIGKILL)  # dies holding the lock: no clean-up runs
        holder.wait(30)
    assert retrain.retrain(str(incoming), log=lambda *a: None)["status"] == "done"  # taken over
    assert len(registry.list_versions()) == 2


def test_a_missing_incoming_location_is_an_error_not_nothing_new(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sentimentkit.cli import main

    missing = tmp_path / "no-such-folder"
    assert main(["retrain", "--incoming", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: the incoming location {missing} does not exist: check --incoming.\n"
    assert not missing.exists()  # and no state folder made there
    (tmp_path / "a-file.csv").write_text("text,label\n")
    assert main(["watch", "--incoming", str(tmp_path / "a-file.csv"), "--cycles", "1"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


@pytest.mark.slow
def test_blob_two_runs_at_once_and_a_missing_location(
    champion: Path,  # noqa: F811
    blob_env: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sentimentkit.cli import main

    make_container("locks")
    incoming = "az://locks/labelled"
    storage.write_bytes(f"{incoming}/b1.csv", batch_frame(0).to_csv(index=False).encode())
    reports = two_runs_at_once(incoming)
    assert sorted(r["status"] for r in reports) == ["done", "nothing new"]
    assert len(registry.list_versions()) == 2
    fs, path = storage.filesystem(incoming)
    assert len(fs.glob(f"{path}/_sentimentkit/reports/*.json")) == 1
    # While one run holds the lease, another stops with one line naming it.
    with state_lock(f"{incoming}/_sentimentkit"):
        assert main(["retrain", "--incoming", incoming]) == 5
        err = capsys.readouterr().err
        assert err.startswith("error: another retrain is running on az://locks/labelled/_sentimentkit (pid ")
    assert retrain.retrain(incoming, log=lambda *a: None)["status"] == "nothing new"  # released
    assert main(["retrain", "--incoming", "az://locks/no-such-folder"]) == 2
    assert "az://locks/no-such-folder does not exist" in capsys.readouterr().err
    # A run killed while holding the lease blocks the next one only until the lease lapses.
    holder = hold_lock(f"{incoming}/_sentimentkit")
    holder.send_signal(signal.SIGKILL)
    holder.wait(30)
    with pytest.raises(LockedError):
        retrain.retrain(incoming, log=lambda *a: None)
    started = time.monotonic()
    assert retrain.retrain(incoming, log=lambda *a: None, lock_wait_s=60)["status"] == "nothing new"
    assert time.monotonic() - started < 30
