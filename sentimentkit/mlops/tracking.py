"""Recording a model in MLflow: a freshly trained one (its run with data sources and plots, then a new
registered version) or one already on disk (loaded first, then registered).

Training (`sentimentkit.training`) only writes model.pkl and its card; what happens to the artifact
afterwards lives here, so the training code never imports MLflow or the registry. Callers: the CLI's
`train --register` and `models register`, the notebook, and `retrain`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sentimentkit.config import SPLITS
from sentimentkit.data import load_split
from sentimentkit.io import storage
from sentimentkit.mlops import TFIDF_MODEL, registry
from sentimentkit.models.card import ModelError
from sentimentkit.serving.ensemble import EnsemblePredictor
from sentimentkit.serving.loader import load_predictor
from sentimentkit.training.evaluate import metrics, reliability_table


def training_plots(model_path: str | Path, frame: pd.DataFrame) -> dict[str, Any]:
    """Confusion matrix and reliability diagram of the saved model on `frame` (matplotlib figures).

    Empty when matplotlib is not installed: the run is still logged, without pictures.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on servers and in CI
        import matplotlib.pyplot as plt
    except ImportError:
        return {}
    predictor = load_predictor(model_path)
    proba = predictor.predict_proba(frame["text"].tolist())
    pred = np.asarray(predictor.labels)[proba.argmax(axis=1)]
    matrix = np.asarray(metrics(frame["label"], pred, labels=predictor.labels)["confusion_matrix"])
    cm_fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(matrix, cmap="Blues")
    ax.set(
        xticks=range(3),
        yticks=range(3),
        xticklabels=predictor.labels,
        yticklabels=predictor.labels,
        xlabel="predicted",
        ylabel="true",
    )
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center")
    table = reliability_table(proba, frame["label"].tolist())
    rel_fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.plot(table["confidence"], table["accuracy"], "o-")
    ax.set(xlabel="confidence", ylabel="accuracy", title="reliability (validation)")
    plt.close("all")  # the figures stay usable; pyplot just forgets them
    return {"confusion_matrix_validation": cm_fig, "reliability_validation": rel_fig}


def register_model(
    model_path: str | Path,
    card: dict[str, Any],
    sources: dict[str, str],
    *,
    plots_on: pd.DataFrame | None = None,
    name: str = TFIDF_MODEL,
    reason: str = "",
) -> dict[str, Any]:
    """Log a run for a freshly trained model.pkl and register it as a new version of `name`.

    `sources` are recorded as the run's data tags; with `plots_on` (a labelled frame) the run also
    gets the confusion matrix and reliability diagram on it. Returns the new version's row.
    """
    plots = training_plots(model_path, plots_on) if plots_on is not None else None
    return registry.register(model_path, card, sources, plots, name=name, reason=reason)


def register_trained(
    model_path: str | Path, card: dict[str, Any], data_dir: str | Path, data_uri: str | Path, reason: str = ""
) -> dict[str, Any]:
    """Log the training run to MLflow and register the model as a new `sentimentkit-tfidf` version.

    `data_dir` is the local copy that was trained on, `data_uri` where it came from (recorded).
    """
    validation = load_split("validation", data_dir)
    sources = {split: storage.join(data_uri, f"{split}.csv") for split in SPLITS}
    return register_model(model_path, card, sources, plots_on=validation, name=TFIDF_MODEL, reason=reason)


def register_existing(model: str | Path, name: str | None = None, reason: str = "") -> dict[str, Any]:
    """Register a model already on disk (model.pkl, or a transformer/ONNX folder) with its own card.

    It is loaded first, through the same checks as serving, so only a model that loads gets a version.
    """
    predictor = load_predictor(model)
    if isinstance(predictor, EnsemblePredictor):  # its members live outside the folder a version copies
        raise ModelError(
            f"{model} is an ensemble; register its members instead (the registry copies one folder)."
        )
    return registry.register(model, predictor.card, {}, name=name, reason=reason or "registered from disk")
