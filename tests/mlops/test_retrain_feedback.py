"""retrain reads the feedback store: its provenance columns are ignored, and the latest label of a
text wins within a batch and across batches (a relabel replaces the earlier row)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sentimentkit.feedback.store import write_corrections
from sentimentkit.mlops import retrain
from sentimentkit.mlops.retrain import validate_batch
from tests.conftest import TINY_LABELS, TINY_TEXTS
from tests.mlops.test_retrain import batch_frame, champion  # noqa: F401 - the fixture

pytestmark = pytest.mark.usefixtures("registry_env")
EVALUATION = pd.DataFrame({"text": TINY_TEXTS, "label": TINY_LABELS})


def test_within_a_batch_the_last_row_of_a_text_wins(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    pd.DataFrame({"text": ["the gig was odd", "the gig was odd"], "label": ["positive", "negative"]}).to_csv(
        path, index=False
    )
    train, held, record = validate_batch(str(path), "sha", set(), EVALUATION, 0.0)
    assert train["label"].tolist() == ["negative"] and record["duplicates"] == 1


def test_an_earlier_batch_text_with_another_label_is_a_relabel(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    frame = pd.DataFrame({"text": ["same again", "changed mind", "brand new"],
                          "label": ["positive", "negative", "neutral"]})  # fmt: skip
    frame.to_csv(path, index=False)
    labelled = {"same again": "positive", "changed mind": "positive"}
    train, _, record = validate_batch(str(path), "sha", set(), EVALUATION, 0.0, labelled)
    assert dict(zip(train["text"], train["label"])) == {"changed mind": "negative", "brand new": "neutral"}
    assert (record["already_in_training"], record["relabelled"]) == (1, 1)


def test_retrain_on_the_feedback_store_keeps_the_latest_label(
    champion: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    incoming = tmp_path / "incoming"
    first = batch_frame(0)
    write_corrections(incoming, [{"text": t, "label": lab, "user": "ann", "source": "app", "note": "x,y"}
                                 for t, lab in zip(first["text"], first["label"])])  # fmt: skip
    report = retrain.retrain(str(incoming), log=lambda *a: None)
    assert report["status"] == "done"
    record = next(iter(report["batches"].values()))
    assert record["status"] == "accepted" and record["train_rows"] + record["heldout_rows"] == len(first)
    flipped = {"positive": "negative", "negative": "neutral", "neutral": "positive"}
    text, old = first["text"][0], first["label"][0]
    write_corrections(incoming, [{"text": text, "label": flipped[old]},
                                 {"text": first["text"][1], "label": first["label"][1]}])  # fmt: skip
    second = retrain.retrain(str(incoming), log=lambda *a: None)
    record = next(iter(second["batches"].values()))
    assert (record["relabelled"], record["already_in_training"]) == (1, 1)
    state = incoming / "_sentimentkit"
    manifest = retrain.read_manifest(str(state))
    rows = pd.concat([retrain.load_accepted(str(state), manifest, kind) for kind in ("train", "heldout")])
    latest = retrain._latest(rows)
    assert latest.set_index("text").loc[text, "label"] == flipped[old]
