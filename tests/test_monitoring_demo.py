"""scripts/monitoring_demo.py: the drifted day it replays holds no hate-speech or offensive tweets (the
committed docs name its new frequent words), and the committed example report was made from it."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from sentimentkit.config import REPO_ROOT

OFFENSIVE_SOURCES = "/hate/|/offensive/"  # tweeteval's hate-speech and offensive-language sources


def demo_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "monitoring_demo", REPO_ROOT / "scripts" / "monitoring_demo.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def shifted_day(shared_data: Path) -> list[str]:
    if not (shared_data.parent / "unlabeled" / "tweets.csv").is_file():
        pytest.skip("the demo replays ../shared/data/unlabeled/tweets.csv, absent here")
    return demo_script().demo_days()[1][-1]


def test_the_shifted_day_has_no_hate_speech_or_offensive_tweets(
    shared_data: Path, shifted_day: list[str]
) -> None:
    tweets = pd.read_csv(shared_data.parent / "unlabeled" / "tweets.csv")
    offensive = set(tweets.loc[tweets["source"].str.contains(OFFENSIVE_SOURCES), "text"])
    assert len(shifted_day) == 600
    overlap = len(offensive & set(shifted_day))  # a count: a failure prints no offensive tweet
    assert overlap == 0, f"{overlap} of the shifted day's tweets are hate-speech or offensive tweets"


def test_the_committed_example_names_words_of_the_shifted_day(shifted_day: list[str]) -> None:
    """docs/monitoring_example.html was regenerated from the demo as it is: every new frequent word it
    names occurs in the replayed day's tweets."""
    html = (REPO_ROOT / "docs" / "monitoring_example.html").read_text(encoding="utf-8")
    named = re.search(r"unknown words each in at least 1% of texts[^<]*?most frequent: ([^<]*)", html)
    assert named, "the example report names no new frequent words"
    words = re.findall(r"([^\s,(]+) \(\d+%\)", named[1])
    assert len(words) >= 3, named[1]
    day = " ".join(shifted_day).lower()
    assert all(word in day for word in words), (words, named[1])
