"""Take docs/app.png: the real Streamlit app in headless chromium, one text analysed.

python docs/screenshot.py [OUT_DIR]      (default: docs/)

`take_screenshots` also reads what the page says at screenshot time (its tab names and the sidebar's
model lines), so a test can check that the picture shows what the app shows today.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TEXT = "Two hours on hold and the line went dead. Worst customer service ever, I'm not going back!"


@contextmanager
def app_in_chromium(env: dict[str, str] | None = None) -> Iterator[tuple[str, Any]]:
    """(url, browser): the real Streamlit app on a free loopback port and headless chromium."""
    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless=true",
            f"--server.port={port}", "--server.address=127.0.0.1", "--server.fileWatcherType=none"]  # fmt: skip
    process = subprocess.Popen(args, cwd=REPO, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
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


@dataclass
class Shot:
    """One screenshot and what the page said when it was taken."""

    path: Path
    tabs: list[str]  # the tab names, left to right
    sidebar: str  # the sidebar's text (the model lines)
    text: str  # the whole page's visible text


def take_screenshots(out_dir: Path, env: dict[str, str] | None = None) -> list[Shot]:
    """docs/app.png into `out_dir`: the "Analyze a text" tab with one text analysed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with app_in_chromium(env) as (url, browser):
        page = browser.new_page(viewport={"width": 1280, "height": 1250})
        page.set_default_timeout(120_000)
        page.goto(url)
        box = page.get_by_label("Text to analyse")
        box.fill(TEXT)
        box.press("Control+Enter")
        page.get_by_role("button", name="Analyze").click()
        page.locator(".sk-explanation").first.wait_for()
        page.wait_for_timeout(1500)  # let the chart finish drawing
        path = out_dir / "app.png"
        page.screenshot(path=str(path))
        shot = Shot(path, [t.strip() for t in page.get_by_role("tab").all_inner_texts()],
                    page.locator('[data-testid="stSidebar"]').inner_text(), page.locator("body").inner_text())  # fmt: skip
    return [shot]


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs"
    for shot in take_screenshots(out):
        print(f"{shot.path}: tabs {', '.join(shot.tabs)}")


if __name__ == "__main__":
    main()
