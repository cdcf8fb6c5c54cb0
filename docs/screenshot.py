"""Take docs/app.png: the real Streamlit app in headless chromium, one text analysed.

python docs/screenshot.py
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TEXT = "Two hours on hold and the line went dead. Worst customer service ever, I'm not going back!"


@contextmanager
def app_in_chromium() -> Iterator[tuple[str, Any]]:
    """(url, browser): the real Streamlit app on a free loopback port and headless chromium."""
    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless=true",
            f"--server.port={port}", "--server.address=127.0.0.1", "--server.fileWatcherType=none"]  # fmt: skip
    process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=2)  # noqa: S310 - loopback
                break
            except OSError:
                time.sleep(0.3)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                         args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
            yield url, browser
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    with app_in_chromium() as (url, browser):
        page = browser.new_page(viewport={"width": 1280, "height": 1250})
        page.goto(url)
        box = page.get_by_label("Text to analyse")
        box.fill(TEXT)
        box.press("Control+Enter")
        page.get_by_role("button", name="Analyze").click()
        page.locator(".sk-explanation").wait_for()
        page.wait_for_timeout(1500)  # let the chart finish drawing
        page.screenshot(path=str(REPO / "docs" / "app.png"))


if __name__ == "__main__":
    main()
