"""The README and the documentation site: they build, their links resolve, and they stay honest."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
COMMAND_2 = "bash scripts/setup-dev.sh && .venv/bin/python -m pytest -n 2 --dist loadfile"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _relative_links(text: str) -> list[str]:
    """Every link target in Markdown text that is not a URL or a same-page anchor."""
    return [t for t in LINK.findall(text) if not re.match(r"^(https?:|mailto:|#)", t)]


def _anchors(markdown: str) -> set[str]:
    """The anchors MkDocs (Python-Markdown's toc) gives the headings of a Markdown page."""
    anchors = set()
    fence = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fence = not fence
        match = None if fence else re.match(r"^#{1,6} (.*)$", line)
        if match:
            title = re.sub(r"[`*]", "", match.group(1)).strip().lower()
            slug = re.sub(r"[^\w\s-]", "", title)
            anchors.add(re.sub(r"[-\s]+", "-", slug).strip("-"))
    return anchors


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    """The site builds with --strict: a broken link, anchor or nav entry fails the suite."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "benchmarks" / "throughput" / "index.html").is_file()


def test_readme_is_short() -> None:
    """The README is a quick start with links, not the manual (the manual is docs/)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < 250, f"README.md has {len(lines)} lines; move depth into docs/"


def test_readme_relative_links_resolve() -> None:
    """Every relative link (and image) in README.md names a file that exists, and its anchor too."""
    text = README.read_text(encoding="utf-8")
    links = _relative_links(text)
    assert links, "README.md has no relative links at all"
    broken = []
    for target in links:
        path, _, anchor = target.partition("#")
        file = ROOT / path
        missing_anchor = (
            file.is_file() and bool(anchor) and file.suffix == ".md"
        ) and anchor not in _anchors(file.read_text(encoding="utf-8"))
        if not file.exists() or missing_anchor:
            broken.append(target)
    assert not broken, f"README.md links to missing files or anchors: {broken}"


def test_quick_start_commands_are_the_ci_command() -> None:
    """Command 2 of the quick start is exactly what .ci/run runs."""
    readme = README.read_text(encoding="utf-8")
    assert COMMAND_2 in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1].strip() == COMMAND_2
    assert "pip install -r requirements.txt && pip install --no-deps -e . && streamlit run app.py" in readme


def test_readme_figures_are_quoted_from_benchmarks() -> None:
    """Every measured figure in the README (a decimal or a thousands-separated number) is in benchmarks/*.md."""
    readme = README.read_text(encoding="utf-8")
    prose = re.sub(r"```.*?```", "", readme, flags=re.S)
    source = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "benchmarks").glob("*.md")))
    figures = set(re.findall(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.])\d+\.\d+", prose))
    figures -= {"3.11"}  # the Python version the quick start needs, not a measurement
    missing = sorted(f for f in figures if f not in source)
    assert not missing, f"README.md figures not found in benchmarks/*.md: {missing}"


def test_requirements_pin_each_package_once() -> None:
    """requirements.txt pins every package once (pyarrow was pinned twice)."""
    names = []
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.append(re.split(r"[\[=<>!~ ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    twice = sorted({n for n in names if names.count(n) > 1})
    assert not twice, f"pinned more than once in requirements.txt: {twice}"


def test_docs_tools_are_pinned_for_the_tests() -> None:
    """The docs build in the tests needs MkDocs and Material, pinned in requirements-dev.txt."""
    dev = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8")
    assert re.search(r"^mkdocs==\S+$", dev, re.M)
    assert re.search(r"^mkdocs-material==\S+$", dev, re.M)


@pytest.mark.parametrize(
    "card_path, expected",
    [("model.json", "temporal holdout"), ("models/transformer-int8/card.json", "validation was used")],
)
def test_app_metrics_caption_says_how_the_model_was_chosen(card_path: str, expected: str) -> None:
    """The Model tab's caption: the default model's settings came from a temporal holdout, not validation."""
    from sentimentkit import ui

    card = json.loads((ROOT / card_path).read_text(encoding="utf-8"))
    note = ui.selection_note(card)
    assert expected in note
    if card_path == "model.json":
        assert "validation was used" not in note
        app = (ROOT / "app.py").read_text(encoding="utf-8")
        assert "ui.selection_note(card)" in app
        assert "validation was used for model choice" not in app


def _committed_test_avgrec() -> str:
    card = json.loads((ROOT / "model.json").read_text(encoding="utf-8"))
    return f"{card['metrics']['test']['avg_recall']:.4f}"


def test_readme_and_docs_quote_the_committed_models_test_score() -> None:
    """The README's and docs/benchmarks.md's default-model rows are the committed card's test AvgRec."""
    current = _committed_test_avgrec()
    for page in (README, ROOT / "docs" / "benchmarks.md"):
        row = next(
            line
            for line in page.read_text(encoding="utf-8").splitlines()
            if "**sentimentkit default**" in line
        )
        assert f"**{current}**" in row, f"{page.name}: {row}"


def test_benchmark_pages_of_an_older_model_say_so_at_the_top() -> None:
    """A page that quotes another test AvgRec for model.pkl than the committed card's says, in its first
    lines, which model it measured and what the committed one scores now (history is not rewritten)."""
    current = _committed_test_avgrec()
    old = {"0.6566"}  # model.pkl's test AvgRec before the 2026-12-06 retrain by the current code
    for page in sorted((ROOT / "benchmarks").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        if old & set(re.findall(r"\d\.\d{4}", text)):
            top = "\n".join(text.splitlines()[:5])
            assert "0.6566" in top and current in top and "model.json" in top, (
                f"{page.name} has no note at its top"
            )
