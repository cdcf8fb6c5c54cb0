"""`EnsemblePredictor`: the weighted average of other predictors' probabilities, and its folder format.

The "accurate" mode (issue 15, `models/accurate`) averages the int8 transformer and the fast TF-IDF
model 0.5 / 0.5; the weight was fixed before it was scored (benchmarks/accurate_plan.md). Labels,
confidence and `uncertain` follow the same rule as every predictor (`BasePredictor.record`: argmax,
max, below the threshold).

An ensemble folder holds no weights, only two JSON files: `ensemble.json` names each member (its path
relative to the folder, its weight, and the SHA-256 of each of its files) and `card.json` is a card like
any other, vouching for ensemble.json (hash, and signature when a key is configured). Each member is
opened by `load_predictor` with its own card's checks, and must be exactly the files ensemble.json
names: a retrained member makes the ensemble refuse to load until it is rebuilt (`sentimentkit
ensemble`), so the mode never silently mixes a model it was not measured with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sentimentkit import LABELS
from sentimentkit.config import Settings
from sentimentkit.models.card import (
    ENSEMBLE_FILE,
    ModelError,
    atomic_write,
    file_hashes,
    library_versions,
    model_threshold,
    new_card,
    open_card,
    read_json_card,
    require_files,
    write_card,
)
from sentimentkit.serving.base import BasePredictor

ENSEMBLE_FORMAT = "ensemble"
# How members are opened: `loader.load_predictor`, passed in by the loader (which imports this module).
LoadModel = Callable[..., BasePredictor]

__all__ = ["ENSEMBLE_FORMAT", "EnsemblePredictor", "is_ensemble", "load_ensemble_predictor", "write_ensemble"]


class EnsemblePredictor(BasePredictor):
    """Probabilities = sum of weight_i * member_i's, each member's columns put in `LABELS` order."""

    def __init__(
        self,
        members: Sequence[BasePredictor],
        weights: Sequence[float] | None = None,
        card: dict[str, Any] | None = None,
        threshold: float | None = None,
        max_chars: int = Settings.max_chars,
    ) -> None:
        if len(members) < 2:
            raise ModelError("An ensemble needs at least two member models.")
        weights = [1.0 / len(members)] * len(members) if weights is None else [float(w) for w in weights]
        if len(weights) != len(members) or min(weights) < 0 or not np.isclose(sum(weights), 1.0):
            raise ModelError(
                f"Ensemble weights must be {len(members)} numbers >= 0 that sum to 1, got {weights}."
            )
        self.members = list(members)
        self.weights = np.asarray(weights)
        # Each member's column order (the TF-IDF model's comes from its classifier, the transformer's from its card).
        self._columns = [[tuple(m.labels).index(label) for label in LABELS] for m in self.members]
        self.labels = LABELS
        self.card = card or {"name": "ensemble", "version": "+".join(m.version for m in self.members)}
        self.threshold = model_threshold(self.card, threshold)
        self.max_chars = max_chars

    def combine(self, probas: Sequence[np.ndarray]) -> np.ndarray:
        """The weighted average of the members' probabilities (same order as `members`), in `LABELS` order."""
        aligned = [np.asarray(p)[..., cols] for p, cols in zip(probas, self._columns)]
        return sum(w * p for w, p in zip(self.weights, aligned))

    def predict_proba(self, texts: str | Sequence[str]) -> np.ndarray:
        """Class probabilities in `LABELS` order: shape (3,) for a string, (n, 3) for a list."""
        if not isinstance(texts, str) and len(texts) == 0:
            return np.zeros((0, len(self.labels)))
        return self.combine([m.predict_proba(texts) for m in self.members])


def is_ensemble(path: str | Path) -> bool:
    """True for an ensemble folder (one holding ensemble.json)."""
    return (Path(path) / ENSEMBLE_FILE).is_file()


def load_ensemble_predictor(
    path: str | Path, load: LoadModel, threshold: float | None = None, settings: Settings | None = None
) -> EnsemblePredictor:
    """Open an ensemble folder: its card and ensemble.json checked, then each member through `load`
    (`load_predictor`) and pinned to the file hashes ensemble.json records. Raises ModelError."""
    settings = settings or Settings.from_env()
    folder = Path(path)
    card = open_card(folder, settings=settings)  # signature and ensemble.json's hash, before reading it
    require_files(card, folder, [ENSEMBLE_FILE])
    members, weights = [], []
    for entry in _member_entries(folder):
        members.append(_load_member(folder, entry, load, settings))
        weights.append(entry["weight"])
    chosen = threshold if threshold is not None else settings.threshold
    return EnsemblePredictor(members, weights, card, threshold=chosen, max_chars=settings.max_chars)


def _member_entries(folder: Path) -> list[dict[str, Any]]:
    """ensemble.json's member list, each entry checked for the fields the loader needs."""
    spec = read_json_card(folder / ENSEMBLE_FILE, f"{folder / ENSEMBLE_FILE} not found.")
    entries = spec.get("members")
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("path"), str) and isinstance(e.get("files"), dict)
        and isinstance(e.get("weight"), (int, float)) and not isinstance(e.get("weight"), bool)
        for e in entries
    ):  # fmt: skip
        raise ModelError(f"{folder / ENSEMBLE_FILE} must list members as {{path, weight, files}} objects.")
    return entries


def _load_member(folder: Path, entry: dict[str, Any], load: LoadModel, settings: Settings) -> BasePredictor:
    """One member, loaded by its own loader, refused unless its card vouches for exactly `entry['files']`."""
    path = folder / entry["path"]
    if is_ensemble(path):
        raise ModelError(
            f"{folder}: member {entry['path']} is itself an ensemble; members must be single models."
        )
    member = load(path, settings=settings)
    if member.card.get("files") != entry["files"]:
        raise ModelError(
            f"{folder}: member {entry['path']} is not the model this ensemble was built and measured with "
            "(its files' SHA-256s differ from ensemble.json). Rebuild it with `python -m sentimentkit "
            "ensemble` and measure it again (benchmarks/accurate_mode.py)."
        )
    return member


def write_ensemble(
    out: str | Path, members: Sequence[str | Path], load: LoadModel, weights: Sequence[float] | None = None,
    metrics: dict[str, Any] | None = None, settings: Settings | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Write an ensemble folder naming `members` (each must open with `load`, i.e. `load_predictor`);
    returns its card (signed when a key is configured). `metrics` (split -> metrics dict) goes into the
    card as measured elsewhere (benchmarks/accurate_mode.json)."""
    settings = settings or Settings.from_env()
    out = Path(out)
    loaded = [load(m, settings=settings) for m in members]
    ensemble = EnsemblePredictor(loaded, weights)  # checks count and weights
    out.mkdir(parents=True, exist_ok=True)
    spec = {"members": [
        {"path": os.path.relpath(Path(m).resolve(), out.resolve()), "weight": float(w),
         "name": p.card.get("name"), "version": p.version, "files": p.card["files"]}
        for m, w, p in zip(members, ensemble.weights, loaded)
    ]}  # fmt: skip
    atomic_write(out / ENSEMBLE_FILE, (json.dumps(spec, indent=2) + "\n").encode("utf-8"))
    card = new_card(
        "sentimentkit-accurate-ensemble", ENSEMBLE_FORMAT, "ens",
        {"weights": [float(w) for w in ensemble.weights], "combination": "weighted mean of probabilities"},
        loaded[0].card.get("training_data", {}), 0.0, library_versions(["numpy"]), metrics or {},
    )  # fmt: skip
    card["files"] = file_hashes({ENSEMBLE_FILE: out / ENSEMBLE_FILE})
    return write_card(out, card, settings)
