"""Real servers and a real browser for end-to-end tests.

`start_server` runs a command (Streamlit, uvicorn) on a free loopback port and waits until an
HTTP URL answers; `browser` is Playwright driving Debian's chromium (/usr/bin/chromium).
`free_port` hands each port out once, also across the processes of `pytest -n N` (pytest-xdist) and
other test runs of the same user, so two servers never race for one port.
Tests here are skipped with a clear reason when chromium or playwright is missing.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from sentimentkit.config import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]  # fmt: skip

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


# Ports handed out by `free_port`, one file per port, shared by this user's test processes.
PORT_CLAIMS = Path(tempfile.gettempdir()) / f"sentimentkit-test-ports-{os.getuid()}"
STALE_CLAIM_S = 3 * 3600  # a claim this old is from a run that died without cleaning up
_claimed: list[Path] = []


def _claim(port: int) -> bool:
    """Record `port` as this process's (True), unless a live test process claimed it first."""
    claim = PORT_CLAIMS / str(port)
    for _ in range(2):
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _stale(claim):
                return False
            with contextlib.suppress(FileNotFoundError):
                claim.unlink()
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        _claimed.append(claim)
        return True
    return False


def _stale(claim: Path) -> bool:
    """A claim whose process is gone, or older than STALE_CLAIM_S."""
    try:
        owner = int(claim.read_text() or 0)
        if time.time() - claim.stat().st_mtime > STALE_CLAIM_S:
            return True
    except (OSError, ValueError):
        return False  # being written right now, or just removed: not ours to take
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # another user's live process
    return False


@atexit.register
def _release_claims() -> None:
    for claim in _claimed:
        with contextlib.suppress(OSError):
            claim.unlink()


def screenshot_script() -> ModuleType:
    """docs/screenshot.py, the one script that takes the docs' screenshots, as a module."""
    spec = importlib.util.spec_from_file_location("docs_screenshot", REPO_ROOT / "docs" / "screenshot.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A loopback port nobody listens on, never handed out twice while its taker runs: the kernel picks
    a free one, and a claim file (PORT_CLAIMS) keeps a parallel test worker from getting it too before
    the server that is meant for it binds it."""
    PORT_CLAIMS.mkdir(exist_ok=True)
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if _claim(port):
            return port
    raise RuntimeError(f"no free loopback port could be claimed under {PORT_CLAIMS}")


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_ready(url: str, process: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited with {process.returncode}:\n{log_path.read_text(errors='replace')}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
                if response.status < 500:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"server at {url} not ready after {timeout}s:\n{log_path.read_text(errors='replace')}")


@contextmanager
def run_server(
    args: list[str], ready_path: str, port: int, env: dict[str, str] | None = None,
    log_dir: Path | None = None, timeout: float = 60.0,
) -> Iterator[Server]:  # fmt: skip
    """Start `args` (which must listen on `port`), wait for GET `ready_path`, stop it afterwards."""
    log_path = (log_dir or Path(os.environ.get("TMPDIR", "/tmp"))) / f"server-{port}.log"
    full_env = {**os.environ, **(env or {})}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(args, cwd=REPO_ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url + ready_path, process, log_path, timeout)
        yield Server(url, process, log_path)
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """Terminate a server process, killing it if it does not stop within 10 seconds."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def streamlit_command(port: int, script: str = "app.py") -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", script, "--server.headless=true",
        f"--server.port={port}", "--server.address=127.0.0.1", "--browser.gatherUsageStats=false",
        "--server.fileWatcherType=none",
    ]  # fmt: skip


def uvicorn_command(port: int) -> list[str]:
    return [sys.executable, "-m", "sentimentkit", "serve", "--host", "127.0.0.1", "--port", str(port)]


def _server_factory(
    command: Callable[[int], list[str]], ready_path: str, log_dir: Path
) -> Iterator[Callable]:
    """Yield a function that starts a server with extra environment variables; stop them all after."""
    running: list = []

    def start(env: dict[str, str] | None = None) -> Server:
        port = free_port()
        ctx = run_server(command(port), ready_path, port, env, log_dir)
        server = ctx.__enter__()
        running.append(ctx)
        return server

    yield start
    for ctx in reversed(running):
        ctx.__exit__(None, None, None)


@pytest.fixture
def start_streamlit(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Factory: start the real Streamlit app with extra environment variables."""
    yield from _server_factory(streamlit_command, "/_stcore/health", tmp_path)


@pytest.fixture
def start_api(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Factory: start the real uvicorn API server with extra environment variables."""
    yield from _server_factory(uvicorn_command, "/healthz", tmp_path)


@pytest.fixture(scope="module")
def browser():
    """Playwright's chromium API driving Debian's /usr/bin/chromium, headless.

    Module-scoped: Playwright's sync API keeps an event loop running while it is open, which
    would break later tests that call asyncio.run().
    """
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian chromium is not installed (apt-get install chromium); .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()
