"""The reference a performance estimate is compared with, stored in the model card.

`performance_reference` fits the estimator's calibrator (training/calibrate.py: method chosen by
cross-validated NLL on the clean validation split, never test) and records, on validation.csv (the
split the reference profile describes), both the estimated AvgRec/accuracy (CBPE with that
calibrator: like for like with what monitoring estimates on live windows) and the measured ones.
Everything is plain numbers under `card["reference"]["performance"]`; `store_performance` adds it to
an existing model's card (the model files are not touched, so the card's SHA-256s still hold).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sentimentkit.data import DataError, load_split, near_duplicates_of
from sentimentkit.errors import NoProfileError
from sentimentkit.models.card import card_file, read_json_card, write_card
from sentimentkit.models.pipeline import ModelError
from sentimentkit.serving.loader import load_predictor
from sentimentkit.training.calibrate import (
    apply_calibrator,
    calibration_errors,
    choose_calibrator,
    confusion_scores,
    expected_confusion,
)


def performance_reference(predictor: Any, validation: pd.DataFrame, clean: pd.DataFrame,
                          source: str = "validation.csv") -> dict[str, Any]:  # fmt: skip
    """Calibrator (fitted on `clean`) and the estimated and measured scores on `validation`."""
    labels = list(predictor.labels)
    index = {label: i for i, label in enumerate(labels)}

    def arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return predictor.predict_proba(frame["text"].tolist()), frame["label"].map(index).to_numpy(dtype=int)

    p_clean, y_clean = arrays(clean)
    calibrator, cv_nll = choose_calibrator(p_clean, y_clean, labels)
    p_val, y_val = arrays(validation)
    predicted = p_val.argmax(axis=1)
    estimated = confusion_scores(expected_confusion(apply_calibrator(p_val, calibrator), predicted), labels)
    measured = confusion_scores(expected_confusion(np.eye(len(labels))[y_val], predicted), labels)
    raw = calibration_errors(p_val, y_val, labels)
    after = calibration_errors(apply_calibrator(p_val, calibrator), y_val, labels)
    return {
        "source": source,
        "n": int(len(validation)),
        "estimated": {k: round(estimated[k], 6) for k in ("avg_recall", "accuracy")},
        "measured": {k: round(measured[k], 6) for k in ("avg_recall", "accuracy")},
        "calibration": {
            **calibrator,
            "fitted_on": f"clean validation ({len(clean):,} tweets)",
            "cv_nll": {k: round(v, 6) for k, v in cv_nll.items()},
        },  # fmt: skip
        "ece_top_label": {"raw": round(raw["top_label"], 6), "calibrated": round(after["top_label"], 6)},
    }


def store_performance(model: str | Path, data_dir: str | Path | None = None) -> dict[str, Any]:
    """Add `performance_reference` to the reference in the card of an existing `model`; returns the card.

    Needs the card's reference profile (store_reference) and the data folder the model was trained with.
    """
    predictor = load_predictor(model)
    splits = {split: load_split(split, data_dir) for split in ("train", "validation")}
    raw = read_json_card(card_file(model), f"Model card {card_file(model)} not found.")
    if not raw.get("reference"):
        raise NoProfileError(f"the card of {model} has no reference profile: run store_reference first")
    validation = splits["validation"]  # the rows with no near-duplicate in train (train.clean_validation)
    clean = validation[~near_duplicates_of(validation, splits["train"]).to_numpy()].reset_index(drop=True)
    if clean.empty:  # every validation tweet is re-posted in train (tiny or synthetic data), as train.py does
        clean = splits["validation"]
    raw["reference"]["performance"] = performance_reference(predictor, splits["validation"], clean)
    return write_card(model, raw)


def main(argv: list[str] | None = None) -> int:
    """`python -m sentimentkit.training.performance MODEL DATA_DIR`: store the performance reference."""
    import argparse

    parser = argparse.ArgumentParser(description="add the performance-estimate reference to a model's card")
    parser.add_argument("model", help="model.pkl (its card model.json is rewritten; the model files are not)")
    parser.add_argument(
        "data_dir", help="the folder with the train/validation splits the model was trained on"
    )
    args = parser.parse_args(argv)

    try:
        card = store_performance(args.model, args.data_dir)
    except (OSError, ValueError, DataError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    block = card["reference"]["performance"]
    print(f"stored: estimated AvgRec {block['estimated']['avg_recall']:.3f} on {block['source']} (measured "
          f"{block['measured']['avg_recall']:.3f}); calibrator {block['calibration']['method']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
