"""One `retrain` at a time per state folder: a lock that also works in Azure Blob storage.

`state_lock(state)` holds the lock for the block; a second holder waits up to `wait_s` seconds and
then raises `LockedError` (one line naming the holder). A holder that dies never blocks for long:

- a local folder: `retrain.lock` locked with `fcntl.flock`; the kernel releases it when the holder's
  process ends, however it ends. The file keeps the holder's pid, host and start time for the message.
- `az://`: a lease on the blob `retrain.lock` (created once, empty), taken for `LEASE_S` seconds and
  renewed every `LEASE_S / 3` seconds by a daemon thread while the block runs; a crashed run's lease
  lapses within `LEASE_S`. The holder is written in the blob's metadata.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentimentkit.errors import LockedError  # noqa: F401  (re-exported under its old name)
from sentimentkit.io import storage

LOCK_NAME = "retrain.lock"
LEASE_S = 30  # Azure allows 15-60 seconds (or infinite, which a crash would leave behind)
POLL_S = 1.0

__all__ = ["LEASE_S", "LOCK_NAME", "LockedError", "state_lock"]


def _holder() -> dict[str, str]:
    return {
        "pid": str(os.getpid()),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _busy(state: str, holder: dict[str, Any] | None, wait_s: float) -> LockedError:
    who = (
        f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('since', '?')}"
        if holder
        else "another process"
    )
    waited = f" (waited {wait_s:g} s)" if wait_s > 0 else ""
    return LockedError(
        f"another retrain is running on {state} ({who}){waited}: let it finish, or pass --wait SECONDS."
    )


@contextlib.contextmanager
def state_lock(state: str, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the retrain lock of `state` (a local folder or an az:// URI) for the block."""
    if storage.is_remote(state):
        with _blob_lock(state, wait_s):
            yield
    else:
        with _file_lock(Path(state), wait_s):
            yield


# --- local folders -----------------------------------------------------------------------------------
@contextlib.contextmanager
def _file_lock(state: Path, wait_s: float) -> Iterator[None]:
    import fcntl

    state.mkdir(parents=True, exist_ok=True)
    path = state / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _busy(str(state), _read_holder(path), wait_s) from None
                time.sleep(POLL_S)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(_holder()) + "\n").encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # the file stays (removing it would race with a waiter's open)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_holder(path: Path) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text())
    return None


# --- Azure Blob ------------------------------------------------------------------------------------
def _blob_client(uri: str) -> Any:
    """A synchronous azure-storage-blob client for the blob `uri`, credentials from the environment."""
    storage.filesystem(uri)  # the storage layer's checks: credentials set, endpoint reachable
    from azure.storage.blob import BlobClient

    options = storage.storage_options(storage.protocol_of(uri))
    container, _, name = uri.split("://", 1)[1].partition("/")
    if "connection_string" in options:
        return BlobClient.from_connection_string(options["connection_string"], container, name)
    account = options["account_name"]
    return BlobClient(
        f"https://{account}.blob.core.windows.net", container, name, credential=options["credential"]
    )


@contextlib.contextmanager
def _blob_lock(state: str, wait_s: float) -> Iterator[None]:
    from azure.core.exceptions import HttpResponseError, ResourceExistsError

    uri = storage.join(state, LOCK_NAME)
    blob = _blob_client(uri)
    # Exists already (or another run created it just now): either is fine.
    with storage.translated(uri), contextlib.suppress(ResourceExistsError):
        blob.upload_blob(b"", overwrite=False)
    deadline = time.monotonic() + wait_s
    while True:
        with storage.translated(uri):
            try:
                lease = blob.acquire_lease(lease_duration=LEASE_S)
                break
            except HttpResponseError as exc:
                if exc.status_code != 409:  # 409: leased by another run
                    raise
        if time.monotonic() >= deadline:
            holder = None
            with contextlib.suppress(Exception):
                holder = blob.get_blob_properties().metadata
            raise _busy(state, holder, wait_s)
        time.sleep(POLL_S)
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(lease, stop), name="retrain-lease", daemon=True)
    try:
        with storage.translated(uri):
            blob.set_blob_metadata(_holder(), lease=lease)
        renewer.start()
        yield
    finally:
        stop.set()
        if renewer.is_alive():
            renewer.join()
        with contextlib.suppress(Exception):  # if this fails the lease lapses by itself
            lease.release()


def _renew(lease: Any, stop: threading.Event) -> None:
    while not stop.wait(LEASE_S / 3):
        with contextlib.suppress(Exception):  # a missed renewal is retried; the lease lasts LEASE_S
            lease.renew()
