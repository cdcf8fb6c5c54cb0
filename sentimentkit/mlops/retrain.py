"""Retraining from newly labelled batches, behind a promotion gate; and the watcher that runs it.

`retrain(incoming)`:

1. New batches are the `*.csv` files directly under `incoming` (local folder or `az://`) whose SHA-256
   the manifest does not hold yet (a renamed copy of a processed file is not new).
2. Each is validated: schema and labels (a bad file is rejected whole, with the reason), blank texts
   dropped, texts already in the training data dropped, near-duplicates of the evaluation sets
   (validation, test) refused. Extra columns (the feedback store's provenance: user, when, source...)
   are ignored. The latest label wins (the feedback store's rule, sentimentkit/feedback/store.py): a
   text twice in one batch keeps its last row; a text an earlier batch already added with the same
   label is dropped as already known, with another label it is kept as a relabel and replaces the
   earlier row in the training rows and the held-out rows (batches are processed in name order, which
   for the feedback store's files is their write order). Texts of the base training split keep their
   label. A deterministic slice of each batch (by text hash, `Gate.holdout_share`) is marked held out;
   rows are kept with their provenance (batch file, its SHA-256, when).
3. A challenger is trained by the `learner` (`LEARNERS`) and registered (alias `challenger`):
   - `domain` (the default): the domain head (`training.domain.fit_domain_model`) over the champion's
     base model, fitted on every accepted row of every batch so far (with `Gate.judge` "holdout": the
     rows not held out; the base training split's texts are excluded by step 2); weights:
     class-balanced, each near-duplicate group counted once within its class; anchored on a sample of the base training split's texts (the head keeps the base
     model's answers there unless the corrections pay for a change); its strength C fixed (chosen on
     development splits, benchmarks/domain_learning_dev.py). A champion that is
     itself domain-adapted is unfolded to its base first (the new head is fitted on all corrections,
     so earlier ones are not counted twice).
   - `refit`: the champion's recipe (its card's hyperparameters) refitted on train.csv plus every
     accepted batch so far.
   benchmarks/domain_learning.md: on Apple tweets the head's gain at 200 and 500 labels, against at
   most +0.8 for appending the same rows to train.csv (refit).
4. Champion and challenger are scored on data neither was fitted on, by `decide` (the gate):
   first on the user's domain ("domain"), then on SemEval validation ("guard"). The rule is stated in
   `decide`. The domain rows are the corrections the champion was not fitted on (`_seen_by`: its card
   lists its batches and slices). With the domain learner and `Gate.judge` "cv" (the default) the
   challenger's answers there are out of fold (`training.domain.out_of_fold`: `Gate.folds` folds,
   each answered by the same recipe fitted on every other correction), and the model promoted is the
   one fitted on all of them: the gate judges the recipe on every label given, not on a 20% slice
   (with 500 corrections that slice is ~96 texts, whose AvgRec moves by +-10 points; it refused better
   challengers, benchmarks/feedback_loop.md); the rule is then non-inferiority (`Gate.domain_rule`
   "interval" by default: the champion is kept only when the corrections show the challenger worse,
   `paired_intervals`; chosen on development splits: benchmarks/gate_bias_dev.md). With "holdout"
   (always with `refit`, which would take minutes per fold) they are the held-out slices, answered by
   the challenger itself, and the challenger must be better by `Gate.margin`.
5. The decision and its numbers go to the registry (tags on the challenger version) and to a JSON report
   in the state folder; the manifest is written last: it is the commit point.

Every file is written through the one writer (`io.write`): the incoming folder and its batches are
inputs, never written over; the state folder (even inside `incoming`) is retrain's own; a report is a
new file (never overwrites an older one); the manifest is the one file replaced in place, atomically.

Crash safety: until the manifest is written nothing is recorded as done, and the champion moves only
after the gate; a crash before that leaves the champion as it was and the rerun redoes the work. With
nothing new, `retrain` does nothing (idempotent). A missing `incoming` location is an error, never
"nothing new".

Concurrency: one run at a time per state folder (`mlops.lock`: a file lock, or a lease on az://);
another run waits up to `lock_wait_s` and then stops with `LockedError` (CLI exit code 5), so two
runs never train and register the same batches twice, and a report is never written over.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sentimentkit import LABELS
from sentimentkit.config import SEED
from sentimentkit.data import DataError, load_labelled_csv, near_duplicate_key, near_duplicates_of
from sentimentkit.errors import OptionError
from sentimentkit.io import storage
from sentimentkit.io.write import Input, OutputError, OutputExistsError, same_target, write_output
from sentimentkit.mlops import CHAMPION, TFIDF_MODEL, monitor, registry, tracking
from sentimentkit.mlops.gate import Gate
from sentimentkit.mlops.lock import LockedError, state_lock
from sentimentkit.models.domain import DomainAdapted
from sentimentkit.models.pipeline import save_model
from sentimentkit.redact import redact
from sentimentkit.serving.loader import load_predictor
from sentimentkit.training.domain import fit_domain_model, out_of_fold, save_domain_model
from sentimentkit.training.evaluate import metrics
from sentimentkit.training.train import evaluate_pipeline, fit_candidate, load_splits, save_trained

STATE_DIR = "_sentimentkit"  # inside `incoming` unless --state says otherwise
MANIFEST = "manifest.json"
Log = Callable[[str], None]


LEARNERS = ("domain", "refit")
DEFAULT_LEARNER = "domain"
BOOTSTRAP_REPLICATES = 1000
_CHUNK = 100  # paired_intervals draws this many bootstrap replicates at a time


# --- the manifest ------------------------------------------------------------------------------------
def state_of(incoming: str, state: str | None = None) -> str:
    """Where the manifest, accepted batches and reports live."""
    return state or storage.join(incoming, STATE_DIR)


def read_manifest(state: str) -> dict[str, Any]:
    """{"batches": {sha256: record}}; empty when nothing was processed yet."""
    try:
        return json.loads(storage.read_bytes(storage.join(state, MANIFEST)))
    except FileNotFoundError:
        return {"batches": {}}
    except storage.StorageError as exc:
        if "no file at" in str(exc):
            return {"batches": {}}
        raise


def write_manifest(state: str, manifest: dict[str, Any], inputs: Sequence[Input] = ()) -> None:
    """Replace the manifest in one step (a local file is renamed into place; a blob upload is atomic).
    It is the file retrain exists to update, so it is replaced even inside the incoming folder."""
    target = storage.join(state, MANIFEST)
    _ensure_folder(state)
    write_output(
        target, (redact(json.dumps(manifest, indent=2)) + "\n").encode(), inputs=inputs or [], replaces=target
    )


def _ensure_folder(uri: str) -> None:
    """A local folder is created (blob storage has no folders to create)."""
    if not storage.is_remote(uri):
        Path(uri).mkdir(parents=True, exist_ok=True)


def run_inputs(incoming: str, batches: list[str]) -> list[Input]:
    """What a retrain run reads, for the writer to refuse: the incoming folder and each new batch."""
    return [(incoming, f"the incoming folder {incoming}"), *((uri, "an incoming batch") for uri in batches)]


def check_state(incoming: str, state: str) -> None:
    """Refuse a state folder whose `batches/` or `reports/` is the incoming folder: their CSVs would
    come back as new batches."""
    for sub in ("batches", "reports"):
        if same_target(storage.join(state, sub), incoming):
            raise OutputError(
                f"--state {state} puts retrain's {sub}/ in the incoming folder {incoming}; choose another --state."
            )


def check_incoming(incoming: str) -> None:
    """Raise StorageError (one line) unless `incoming` is an existing folder: a mistyped location
    must not read as "nothing new". (In Blob storage a folder exists while something is stored under it.)"""
    if not storage.is_remote(incoming):
        folder = Path(incoming)
        if folder.is_dir():
            return
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise storage.StorageError(f"the incoming location {incoming} {what}: check --incoming.")
    fs, path = storage.filesystem(incoming)
    with storage.translated(incoming):
        found = fs.isdir(path.rstrip("/"))
    if not found:
        raise storage.StorageError(
            f"the incoming location {incoming} does not exist (nothing is stored under it): check --incoming."
        )


def list_batches(incoming: str) -> list[str]:
    """The `*.csv` files directly under `incoming`, sorted by name (oldest first if named by date)."""
    if not storage.is_remote(incoming):
        folder = Path(incoming)
        return sorted(str(p) for p in folder.glob("*.csv")) if folder.is_dir() else []
    fs, path = storage.filesystem(incoming)
    with storage.translated(incoming):
        found = fs.glob(f"{path.rstrip('/')}/*.csv") if fs.exists(path) else []
    return sorted(f"{storage.protocol_of(incoming)}://{f}" for f in found)


def pending(incoming: str, manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """(URI, SHA-256) of the batches the manifest does not hold yet."""
    out = []
    for uri in list_batches(incoming):
        sha = hashlib.sha256(storage.read_bytes(uri)).hexdigest()
        if sha not in manifest["batches"] and sha not in {s for _, s in out}:
            out.append((uri, sha))
    return out


# --- validating a batch ----------------------------------------------------------------------------
def validate_batch(uri: str, sha: str, known: set[str], evaluation: pd.DataFrame, holdout_share: float,
                   labelled: dict[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:  # fmt: skip
    """(rows to train on, rows held out, the manifest record). Raises DataError for a bad file.

    `known`: texts of the base training data (dropped). `labelled`: text -> label of the rows earlier
    batches added (the same label: dropped; another label: kept, a relabel; latest wins)."""
    with storage.local_input(uri) as local:
        frame = load_labelled_csv(local)
    n = len(frame)
    frame = frame[frame["text"].str.strip() != ""]
    blank = n - len(frame)
    deduped = frame.drop_duplicates("text", keep="last")  # the latest row of a text wins
    duplicates = len(frame) - len(deduped)
    fresh = deduped[~deduped["text"].isin(known)]
    previous = fresh["text"].map(labelled or {})
    same = previous.eq(fresh["label"]).to_numpy()
    relabelled = int((previous.notna().to_numpy() & ~same).sum())
    fresh = fresh[~same]
    seen = len(deduped) - len(fresh)
    near = near_duplicates_of(fresh, evaluation).to_numpy()
    kept = fresh[~near].copy()
    kept["batch"] = Path(str(uri)).name
    kept["batch_sha256"] = sha
    kept["added_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    held = kept["text"].map(
        # by near-duplicate key: a re-post lands in the same slice as its original
        lambda t: (
            int(hashlib.sha256((near_duplicate_key(t) or t).encode()).hexdigest()[:8], 16) / 16**8
            < holdout_share
        )
    )
    record = {"file": Path(str(uri)).name, "status": "accepted", "rows": n, "blank": blank,
              "duplicates": duplicates, "already_in_training": seen, "relabelled": relabelled, "near_duplicates_of_evaluation": int(near.sum()),
              "train_rows": int((~held).sum()), "heldout_rows": int(held.sum())}  # fmt: skip
    return kept[~held.to_numpy()], kept[held.to_numpy()], record


# --- training and scoring -----------------------------------------------------------------------------
def champion_recipe(card: dict[str, Any]) -> dict[str, Any]:
    """The champion's hyperparameters as `fit_pipeline` takes them (JSON lists back to tuples); for a
    domain-adapted champion, its base model's (kept in its card by `retrain`)."""
    params = (card.get("retraining") or {}).get("base_hyperparameters") or card.get("hyperparameters") or {}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}


def score(predictor: Any, frame: pd.DataFrame) -> dict[str, Any]:
    """metrics() of `predictor` on a labelled frame."""
    return metrics(frame["label"].tolist(), predictor.predict(frame["text"].tolist()))


def decide(champion: dict[str, Any], challenger: dict[str, Any], gate: Gate,
           guard: dict[str, dict[str, Any]] | None = None, non_inferior: bool = False,
           interval: Sequence[float] | None = None,
           class_intervals: dict[str, Sequence[float]] | None = None) -> tuple[bool, str]:  # fmt: skip
    """(promote?, the reason in words) by the gate's rule.

    `champion`/`challenger`: `metrics()` of each on the judged corrections (the user's domain);
    `guard`: {"champion": ..., "challenger": ...} metrics on SemEval validation (None: no guard).
    The challenger is promoted when all three hold:

    1. domain: its `gate.metric` (AvgRec) on the judged corrections is at least `gate.margin` above the
       champion's (the point estimate: with 20 judged rows a paired bootstrap interval spans about
       +-10 points, so requiring it to clear 0 would refuse nearly every challenger below ~500
       corrections; `paired_interval` reports it beside the decision). With `non_inferior` (the
       cross-validated gate, whose challenger was fitted on every label the user gave) the rule is
       instead "keep the champion only when the corrections show the challenger worse": with
       `gate.domain_rule` "interval" (the default), when the whole 95% paired `interval` of the gain
       lies below 0; with "tolerance", when the gain is more than `gate.domain_tolerance` below 0. On
       development splits of the Apple tweets the cross-validated gain on 200-500 corrections was
       pessimistic by 4 points on average and hardly correlated with the gain on unlabelled texts
       (r = 0.02-0.24), while 39 of 40 challengers were better there; at 100 corrections (about 10 of
       them positive) one text moves the estimate by 3 points, and the tolerance kept champions
       whose challengers were better (benchmarks/gate_bias_dev.md, sections 1 and 6);
    2. no class's `gate.class_metric` (F1 by default: precision and recall together, so a class the
       challenger stops over-predicting is not counted as a loss) on the judged corrections falls by
       more than `gate.max_class_drop` (with `non_inferior`: `gate.class_tolerance`), among the
       classes with at least `gate.min_class_rows` judged rows (50 by default: with fewer, one text
       moves the class's score by more than a few-point limit; the guard below still checks general
       skill). With the interval rule and `class_intervals` (each class's 95% interval of the drop,
       `paired_intervals`), a class keeps the champion only when its whole interval lies above the
       limit: on about 50 positives the 95% interval of an F1 drop spans 17 points on average
       (benchmarks/gate_bias_dev.md, section 7);
    3. guard: its AvgRec on SemEval validation is at most `gate.guard_tolerance` below the champion's
       (a model much better on the user's domain is not refused for a small loss on 2016 tweets, but
       one that forgets general sentiment is).

    And it is judged on at least `gate.min_heldout` corrections (`challenger["n"]`; 10 by default: with
    `judge` "cv", 10 the champion has not seen; with "holdout" and `holdout_share` 0.2, about 50
    corrections); with fewer, the champion is kept."""
    gain = challenger[gate.metric] - champion[gate.metric]
    kind = gate.class_metric
    limit = gate.class_tolerance if non_inferior else gate.max_class_drop
    drops = {label: champion["per_class"][label][kind] - challenger["per_class"][label][kind]
             for label in champion["per_class"]}  # fmt: skip
    judged = {label: drop for label, drop in drops.items()
              if champion["per_class"][label].get("support", gate.min_class_rows) >= gate.min_class_rows}  # fmt: skip
    worst_label = max(judged or drops, key=drops.__getitem__)
    by_interval = gate.by_interval(non_inferior)
    if by_interval and (interval is None or len(interval) != 2):
        raise ValueError("the interval rule needs the gain's interval (paired_interval): (low, high)")
    if by_interval and class_intervals is not None:
        missing = [label for label in judged if label not in class_intervals]
        if missing:
            raise ValueError(
                f"the class rule by interval needs each judged class's interval; none for {missing}"
            )
    need = -gate.domain_tolerance if non_inferior else gate.margin
    rule = (f"95% interval [{interval[0]:+.4f}, {interval[1]:+.4f}]" if by_interval and interval is not None
            else f"tolerance {gate.domain_tolerance}" if non_inferior else f"margin {gate.margin}")  # fmt: skip
    by_class_interval = by_interval and class_intervals is not None
    shown_as = (f"95% interval [{class_intervals[worst_label][0]:+.4f}, {class_intervals[worst_label][1]:+.4f}], "
                f"refused only when wholly above the limit {limit}" if by_class_interval and worst_label in judged
                else f"limit {limit}")  # fmt: skip
    numbers = (f"{gate.metric} {champion[gate.metric]:.4f} -> {challenger[gate.metric]:.4f} ({gain:+.4f}, "
               f"{rule}); largest {kind} drop {worst_label} {drops[worst_label]:+.4f} ({shown_as})")  # fmt: skip
    if len(judged) < len(drops):
        small = ", ".join(f"{label} {champion['per_class'][label].get('support')}" for label in drops
                          if label not in judged)  # fmt: skip
        numbers += (
            f"; {kind} drops not judged for classes with under {gate.min_class_rows} judged rows ({small})"
        )
    guard_drop = 0.0
    if guard is not None:
        guard_drop = guard["champion"]["avg_recall"] - guard["challenger"]["avg_recall"]
        numbers += (f"; guard (validation) avg_recall {guard['champion']['avg_recall']:.4f} -> "
                    f"{guard['challenger']['avg_recall']:.4f} (loss {guard_drop:+.4f}, tolerance {gate.guard_tolerance})")  # fmt: skip
    if by_interval and interval is not None and not all(math.isfinite(x) for x in interval):
        return False, f"kept the champion: the interval of the gain could not be computed; {numbers}"
    if by_interval and interval is not None and interval[1] < 0:
        return (
            False,
            f"kept the champion: the corrections show it worse (its whole 95% interval is below 0); {numbers}",
        )
    if not by_interval and gain < need:
        if non_inferior:
            return False, f"kept the champion: worse on the corrections by more than the tolerance; {numbers}"
        return False, f"kept the champion: not better by the margin; {numbers}"
    if by_class_interval:  # shown to drop by more than the limit (an interval that is not a number: kept)
        shown = [label for label in judged if not class_intervals[label][0] <= limit]
        if shown:
            label = max(
                shown, key=lambda c: -math.inf if math.isnan(class_intervals[c][0]) else class_intervals[c][0]
            )
            low, high = class_intervals[label]
            return False, (f"kept the champion: {label} {kind} is shown to drop by more than the limit "
                           f"(95% interval of the drop [{low:+.4f}, {high:+.4f}]); {numbers}")  # fmt: skip
    elif judged and drops[worst_label] > limit:
        return False, f"kept the champion: {worst_label} {kind} would drop too much; {numbers}"
    if guard_drop > gate.guard_tolerance:
        return (
            False,
            f"kept the champion: the guard refused it (it loses too much on SemEval validation); {numbers}",
        )
    n = challenger.get("n")
    if n is not None and n < gate.min_heldout:
        return False, (f"kept the champion: too few judged corrections ({n}; the gate needs "
                       f"{gate.min_heldout}): add corrections and run retrain again; {numbers}")  # fmt: skip
    told = ("not shown worse on the corrections" if by_interval else
            "not worse than the tolerance" if non_inferior else "better by the margin")  # fmt: skip
    classes = ("no class's {kind} is shown to drop by more than the limit" if by_class_interval
               else "no class's {kind} drops too much").format(kind=kind)  # fmt: skip
    return True, f"promoted: {told} and {classes}; {numbers}"


def paired_interval(truth: Sequence[str], champion: Sequence[str], challenger: Sequence[str],
                    texts: Sequence[str], replicates: int = BOOTSTRAP_REPLICATES, seed: int = 0) -> list[float]:  # fmt: skip
    """95% interval of challenger minus champion AvgRec: a paired bootstrap over near-duplicate groups
    (a re-post and its original are drawn together; both models see the same replicates). A label
    absent from a replicate is left out of both models' AvgRec."""
    return paired_intervals(truth, champion, challenger, texts, replicates=replicates, seed=seed)["gain"]


def paired_intervals(truth: Sequence[str], champion: Sequence[str], challenger: Sequence[str],
                     texts: Sequence[str], class_metric: str = "f1", replicates: int = BOOTSTRAP_REPLICATES,
                     seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """`paired_interval`'s bootstrap (the same draws), with each class's drop as well:
    {"gain": 95% interval of challenger minus champion AvgRec, "drops": {label: 95% interval of champion
    minus challenger `class_metric` (f1 or recall)}} over the LABELS in `truth`. A replicate that draws
    no text of a label leaves that label out of that replicate (an F1 with nothing predicted or true
    is 0, as in `metrics`). Memory grows with the near-duplicate groups, not replicates x rows: the
    replicates are drawn in chunks of `_CHUNK` and counted per group."""
    import numpy as np

    if class_metric not in ("f1", "recall"):
        raise ValueError(f"class_metric must be f1 or recall, not {class_metric!r}")
    if not len(truth) == len(champion) == len(challenger) == len(texts):
        raise ValueError("truth, champion, challenger and texts must be the same length")
    y = np.asarray(truth, dtype=object)
    a, b = np.asarray(champion, dtype=object), np.asarray(challenger, dtype=object)
    keys = [near_duplicate_key(t) or f"\x00{i}" for i, t in enumerate(texts)]
    _, inverse = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
    n_groups = int(inverse.max()) + 1 if len(inverse) else 0
    labels = [label for label in LABELS if (y == label).any()]
    if not n_groups or not labels:
        return {"gain": [0.0, 0.0], "drops": {}}

    def per_group(mask: np.ndarray) -> np.ndarray:  # rows of each group where `mask` holds
        return np.bincount(inverse, weights=mask.astype(float), minlength=n_groups)

    counts = {label: {"true": per_group(y == label),
                      **{f"hit_{m}": per_group((y == label) & (p == label)) for m, p in (("a", a), ("b", b))},
                      **{f"said_{m}": per_group(p == label) for m, p in (("a", a), ("b", b))}}
              for label in labels}  # fmt: skip
    rng = np.random.default_rng(seed)
    gains, drops = [], {label: [] for label in labels}
    for start in range(0, replicates, _CHUNK):
        draws = np.vstack([np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
                           for _ in range(min(_CHUNK, replicates - start))]).astype(float)  # fmt: skip
        recall_gain = []
        for label in labels:
            c = {name: draws @ v for name, v in counts[label].items()}
            with np.errstate(invalid="ignore", divide="ignore"):
                recall = {m: np.where(c["true"] > 0, c[f"hit_{m}"] / c["true"], np.nan) for m in "ab"}
                f1 = {m: np.where(c["true"] + c[f"said_{m}"] > 0,
                                  2 * c[f"hit_{m}"] / (c["true"] + c[f"said_{m}"]), 0.0) for m in "ab"}  # fmt: skip
            recall_gain.append(recall["b"] - recall["a"])
            score = f1 if class_metric == "f1" else recall
            drops[label].append(np.where(c["true"] > 0, score["a"] - score["b"], np.nan))
        gains.append(np.nanmean(np.vstack(recall_gain), axis=0))
    low, high = np.percentile(np.concatenate(gains), [2.5, 97.5])
    return {
        "gain": [round(float(low), 4), round(float(high), 4)],
        "drops": {label: [round(float(x), 4) for x in np.nanpercentile(np.concatenate(d), [2.5, 97.5])]
                  for label, d in drops.items()},
    }  # fmt: skip


def load_accepted(state: str, manifest: dict[str, Any], kind: str) -> pd.DataFrame:
    """The rows of every committed batch (`kind`: "train" or "heldout"), in processing order."""
    frames = []
    for sha, record in manifest["batches"].items():
        if record.get("status") == "accepted":
            with storage.local_input(storage.join(state, f"batches/{sha}.{kind}.csv")) as local:
                frames.append(pd.read_csv(local, dtype=str, keep_default_na=False))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["text", "label"])


def save_frame(
    uri: str, frame: pd.DataFrame, inputs: Sequence[Input] = (), owned: Sequence[str] = ()
) -> None:
    """Write an accepted batch's rows (retrain's own state file; an input is refused)."""
    _ensure_folder(uri.rsplit("/", 1)[0] if storage.is_remote(uri) else str(Path(uri).parent))
    write_output(uri, frame.to_csv(index=False).encode("utf-8"), inputs=inputs, owned=owned)


def write_report(
    state: str, stamp: str, report: dict[str, Any], inputs: Sequence[Input], owned: Sequence[str]
) -> str:
    """Write the run's report as a new file `reports/STAMP.json` (`STAMP-2.json`... when that name is
    taken: a report never overwrites another). Returns where it went."""
    folder = storage.join(state, "reports")
    _ensure_folder(folder)
    data = (redact(json.dumps(report, indent=2)) + "\n").encode()
    for n in range(1, 1000):
        target = storage.join(folder, f"{stamp}.json" if n == 1 else f"{stamp}-{n}.json")
        try:
            write_output(target, data, inputs=inputs, owned=owned, exclusive=True)
        except OutputExistsError:
            continue
        return target
    raise OutputError(f"{folder} holds 999 reports stamped {stamp}; remove some.")


def retrain(incoming: str, *, data_dir: str | Path | None = None, state: str | None = None,
            name: str = TFIDF_MODEL, gate: Gate | None = None, log: Log = print,
            lock_wait_s: float = 0.0, learner: str = DEFAULT_LEARNER) -> dict[str, Any]:  # fmt: skip
    """Process the new batches under `incoming` (see the module docstring); returns the report.
    `learner`: how the challenger is trained, "domain" (default) or "refit" (`LEARNERS`).

    One run at a time per state folder (`lock.state_lock`): another run waits up to `lock_wait_s`
    seconds for the lock, then raises `lock.LockedError`; after waiting it finds the batches done."""
    if learner not in LEARNERS:
        raise OptionError(f"unknown learner {learner!r}: choose one of {', '.join(LEARNERS)}")
    gate = (gate or Gate()).check()
    check_incoming(incoming)
    state = state_of(incoming, state)
    check_state(incoming, state)
    with state_lock(state, lock_wait_s):
        return _retrain_locked(incoming, data_dir, state, name, gate, log, learner)


def _retrain_locked(incoming: str, data_dir: str | Path | None, state: str, name: str, gate: Gate,
                    log: Log, learner: str = DEFAULT_LEARNER) -> dict[str, Any]:  # fmt: skip
    manifest = read_manifest(state)
    new = pending(incoming, manifest)
    if not new:
        log(f"nothing new under {incoming}: {len(manifest['batches'])} batch(es) already processed")
        return {"status": "nothing new", "batches": []}
    splits = load_splits(data_dir)
    known = set(splits["train"]["text"])
    accepted = (load_accepted(state, manifest, "train"), load_accepted(state, manifest, "heldout"))
    earlier = _latest(_every_row(manifest, {}, *accepted))
    labelled = dict(zip(earlier["text"], earlier["label"]))
    evaluation = pd.concat([splits["validation"], splits["test"]], ignore_index=True)
    records: dict[str, dict[str, Any]] = {}
    parts: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    for uri, sha in new:
        try:
            train_part, held_part, record = validate_batch(
                uri, sha, known, evaluation, gate.holdout_share, labelled
            )
        except DataError as exc:
            records[sha] = {"file": Path(str(uri)).name, "status": "rejected", "reason": redact(str(exc))}
            log(f"rejected {uri}: {exc}")
            continue
        labelled.update(zip(train_part["text"], train_part["label"]))
        labelled.update(zip(held_part["text"], held_part["label"]))
        records[sha], parts[sha] = record, (train_part, held_part)
        log(
            f"accepted {uri}: {record['train_rows'] + record['heldout_rows']} rows"
            + (
                ""
                if cross_validates(gate, learner)
                else f" ({record['train_rows']} to train on, {record['heldout_rows']} held out)"
            )
        )
    train_parts = [t for t, _ in parts.values()]
    held_parts = [h for _, h in parts.values()]
    report = _train_and_gate(
        name, splits, data_dir, accepted, manifest, train_parts, held_parts, records, gate, log, learner
    )
    # Commit: the batches' rows and the report first, the manifest last (a crash before it redoes the run).
    inputs, owned = run_inputs(incoming, [uri for uri, _ in new]), (state,)
    for sha, (train_part, held_part) in parts.items():
        save_frame(storage.join(state, f"batches/{sha}.train.csv"), train_part, inputs, owned)
        save_frame(storage.join(state, f"batches/{sha}.heldout.csv"), held_part, inputs, owned)
        records[sha].update(processed_at=report["finished_at"], decision=report.get("decision"))
    write_report(state, report["finished_at"].replace(":", ""), report, inputs, owned)
    manifest["batches"].update(records)
    write_manifest(state, manifest, inputs)
    return report


def _train_and_gate(name: str, splits: dict[str, pd.DataFrame], data_dir: str | Path | None,
                    accepted: tuple[pd.DataFrame, pd.DataFrame], manifest: dict[str, Any], train_parts: list[pd.DataFrame], held_parts: list[pd.DataFrame],
                    records: dict[str, Any], gate: Gate, log: Log, learner: str = DEFAULT_LEARNER) -> dict[str, Any]:  # fmt: skip
    """Train, register and score the challenger; promote it if the gate says so. The report.
    `accepted`: the train and held-out rows of the batches the manifest holds (`load_accepted`)."""
    import tempfile

    started = time.perf_counter()
    cv = cross_validates(gate, learner)
    # Every accepted row, oldest batch first, so the latest row of a relabelled text is the one kept.
    every = _every_row(manifest, records, pd.concat([accepted[0], *train_parts]),
                       pd.concat([accepted[1], *held_parts]))  # fmt: skip
    latest = _latest(every)
    additions = latest if cv else latest[latest["slice"] == "train"].reset_index(drop=True)
    heldout = latest[latest["slice"] == "heldout"].reset_index(drop=True)
    report: dict[str, Any] = {"batches": records, "gate": {**asdict(gate), "judge": "cv" if cv else "holdout"},
                              "added_rows": len(additions)}  # fmt: skip
    if not sum(len(p) for p in [*train_parts, *(held_parts if cv else [])]):
        report.update(status="no new rows", finished_at=_now())
        log("no new training rows in the new batches: no challenger trained")
        return report
    champion = load_predictor(f"models:/{name}@{CHAMPION}")
    base_version = champion.registry["version"] if champion.registry else "?"
    if cv:
        additions = additions[~additions["text"].isin(set(splits["train"]["text"]))].reset_index(drop=True)
    with tempfile.TemporaryDirectory(prefix="sentimentkit-challenger-") as tmp:
        path = Path(tmp) / "model.pkl"
        try:
            pipeline, card, about = (_fit_domain if learner == "domain" else _fit_refit)(
                champion, splits, additions, data_dir, path
            )
        except ValueError as exc:  # the domain learner's "too few corrections of ..." (one line)
            report.update(status="too few corrections", reason=redact(str(exc)), finished_at=_now())
            log(f"no challenger trained: {exc}")
            return report
        card["retraining"] = {"base": f"{name} {base_version}", "learner": learner,
                              "added_rows": len(additions),
                              "batches": sorted({*additions.get("batch_sha256", pd.Series(dtype=str))}),
                              "slices": ["train", "heldout"] if cv else ["train"],
                              **card.get("retraining", {})}  # fmt: skip
        card = save_model(pipeline, path, card)
        row = tracking.register_model(path, card, {"incoming": "retrain"}, name=name,
                                      reason=f"retrained on new batches ({learner})")  # fmt: skip
    version = str(row["version"])
    challenger = load_predictor(f"models:/{name}/{version}")
    report.update(learner=about, champion_version=champion.registry["version"] if champion.registry else None,
                  challenger_version=version)  # fmt: skip
    if cv:
        fresh = ~_seen_by(champion.card, every, additions)
        answers, folds = out_of_fold(base_of(champion.pipeline), additions[["text", "label"]], fresh, seed=SEED,
                                     anchor_texts=splits["train"]["text"].tolist(), n_folds=gate.folds)  # fmt: skip
        answered = np.asarray([a is not None for a in answers], dtype=bool)
        judged = additions[fresh].reset_index(drop=True)[answered].reset_index(drop=True)
        judging = {"set": "corrections the champion was not fitted on, answered out of fold",
                   "method": f"{folds}-fold cross-validation of the domain learner over all {len(additions)} "
                             "corrections, grouped by near-duplicate text, stratified by label; the promoted "
                             "model is the one fitted on all of them" if folds else
                             "no cross-validation: no correction the champion was not fitted on",
                   "folds": folds, "not_judged": int((~fresh).sum()),
                   "unanswered": int((~answered).sum())}  # fmt: skip
        promote, reason = _judge(champion, judged, [a for a in answers if a is not None], splits["validation"],
                                 gate, report, judging, challenger, non_inferior=True)  # fmt: skip
    else:  # the held-out slices, less any the champion was fitted on (a cross-validated champion was)
        fresh = ~_seen_by(champion.card, every, heldout)
        judging = {"set": "held-out corrections", "method": "the held-out slices of all batches so far, less "
                   "those the champion was fitted on", "not_judged": int((~fresh).sum())}  # fmt: skip
        promote, reason = _judge(champion, heldout[fresh].reset_index(drop=True), None, splits["validation"],
                                 gate, report, judging, challenger)  # fmt: skip
    report.update(decision="promoted" if promote else "kept champion", reason=reason)
    _record_decision(name, version, report)
    if promote:
        registry.promote(version, name=name, reason=reason)
    report.update(status="done", seconds=round(time.perf_counter() - started, 1), finished_at=_now())
    log(f"challenger {name} {version} ({learner}): {reason}")
    return report


def cross_validates(gate: Gate, learner: str) -> bool:
    """Whether the gate judges by cross-validation: `Gate.judge` "cv" with the domain learner (the refit
    learner is always judged on the held-out slices: refitting its recipe per fold would take minutes)."""
    return learner == "domain" and gate.judge == "cv"


def _every_row(manifest: dict[str, Any], records: dict[str, Any], train: pd.DataFrame,
               heldout: pd.DataFrame) -> pd.DataFrame:  # fmt: skip
    """The accepted rows of both slices (column `slice`: "train" or "heldout"), in the order their
    batches were processed (the manifest's, then this run's `records`): `_latest` of it keeps each
    text's latest label whichever slice a batch put it in (the share may change between runs)."""
    order = {sha: rank for rank, sha in enumerate([*manifest["batches"], *records])}
    both = pd.concat([train.assign(slice="train"), heldout.assign(slice="heldout")], ignore_index=True)
    if "batch_sha256" not in both:  # nothing accepted yet
        return both.assign(batch_sha256=pd.Series(dtype=str))
    return both.sort_values("batch_sha256", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def _seen_by(card: dict[str, Any], every: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """Which `rows` the model of `card` was fitted on, as (text, label): it learnt the latest label of
    each text among the slices ("train", and "heldout" when its gate cross-validated) of the batches its
    card lists (`every`: all accepted rows, `_every_row`). A text relabelled since is not seen; one
    relabelled back to what the model learnt is."""
    retraining = card.get("retraining") or {}
    batches, slices = set(retraining.get("batches") or ()), set(retraining.get("slices") or ("train",))
    fitted = _latest(every[every["batch_sha256"].isin(batches) & every["slice"].isin(slices)])
    pairs = set(zip(fitted["text"], fitted["label"]))
    return np.asarray([pair in pairs for pair in zip(rows["text"], rows["label"])], dtype=bool)


def _fit_refit(champion: Any, splits: dict[str, pd.DataFrame], additions: pd.DataFrame,
               data_dir: str | Path | None, path: Path) -> tuple[Any, dict[str, Any], dict[str, Any]]:  # fmt: skip
    """The `refit` learner: the champion's recipe on train.csv plus the accepted rows.
    (pipeline, card, about)."""
    recipe = champion_recipe(champion.card)
    train = pd.concat([splits["train"], additions[["text", "label"]]], ignore_index=True)  # newest last
    challenger_splits = {**splits, "train": train}
    pipeline, record = fit_candidate(challenger_splits, recipe)
    record["test"] = evaluate_pipeline(pipeline, splits["test"])  # recorded in the card; never gated on
    card = save_trained(pipeline, record, challenger_splits, data_dir, path)
    about = {
        "name": "refit",
        "rows": len(train),
        "weighting": "the champion's recipe (recency and class weights)",
    }
    return pipeline, card, about


def base_of(pipeline: Any) -> Any:
    """The base model under a domain-adapted pipeline (a plain LogisticRegression with the base
    weights it keeps); any other pipeline is its own base."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    clf = pipeline.named_steps["clf"]
    if not isinstance(clf, DomainAdapted):
        return pipeline
    base = LogisticRegression()
    base.classes_ = clf.classes_.copy()
    base.coef_, base.intercept_ = clf.base_coef_.copy(), clf.base_intercept_.copy()
    base.n_features_in_ = clf.n_features_in_
    return Pipeline([("features", pipeline.named_steps["features"]), ("clf", base)])


def _fit_domain(champion: Any, splits: dict[str, pd.DataFrame], additions: pd.DataFrame,
                data_dir: str | Path | None, path: Path) -> tuple[Any, dict[str, Any], dict[str, Any]]:  # fmt: skip
    """The `domain` learner: the head over the champion's base, on every accepted correction (texts of
    the base training split excluded). (pipeline, card, about); ValueError (one line) for too few corrections."""
    pipeline = getattr(champion, "pipeline", None)
    if pipeline is None or "clf" not in getattr(pipeline, "named_steps", {}):
        raise OptionError(
            "the champion is not a TF-IDF pipeline; the domain learner needs one (use --learner refit)"
        )
    corrections = additions[~additions["text"].isin(set(splits["train"]["text"]))]
    model, fitted = fit_domain_model(base_of(pipeline), corrections[["text", "label"]], seed=SEED,
                                     anchor_texts=splits["train"]["text"].tolist())  # fmt: skip
    card = save_domain_model(model, path, fitted)
    card["retraining"] = {"base_hyperparameters": champion_recipe(champion.card) or None}
    about = {"name": "domain", "rows": fitted["n_corrections"], "groups": fitted["n_groups"],
             "weighting": fitted["weighting"], "C": fitted["chosen"]["C"], "anchor": fitted["anchor"],
             "cv_avg_recall": fitted["cv_avg_recall"], "selection": fitted["selection"],
             "base_avg_recall_on_corrections": fitted["base_avg_recall_on_corrections"]}  # fmt: skip
    return model, card, about


def _judge(champion: Any, judged: pd.DataFrame, answers: Sequence[str] | None, validation: pd.DataFrame,
           gate: Gate, report: dict[str, Any], judging: dict[str, Any], challenger: Any,
           non_inferior: bool = False) -> tuple[bool, str]:  # fmt: skip
    """Score both models on the `judged` corrections (the domain; the challenger's `answers` there
    when given, its own predictions otherwise) and the challenger itself on validation (the guard);
    add the numbers to `report` ("domain", "guard", "scores") and apply `decide`."""
    texts, truth = judged["text"].tolist(), judged["label"].tolist()
    present = [label for label in LABELS if label in set(truth)]
    predicted = {"champion": list(champion.predict(texts)) if texts else [],
                 "challenger": list(answers) if answers is not None else
                 list(challenger.predict(texts)) if texts else []}  # fmt: skip
    guard = {k: score(m, validation) for k, m in (("champion", champion), ("challenger", challenger))}
    report["guard"] = {"set": "validation.csv", "rows": len(validation), "metric": "avg_recall",
                       "champion": round(guard["champion"]["avg_recall"], 4),
                       "challenger": round(guard["challenger"]["avg_recall"], 4),
                       "loss": round(guard["champion"]["avg_recall"] - guard["challenger"]["avg_recall"], 4),
                       "tolerance": gate.guard_tolerance}  # fmt: skip
    report["evaluation"] = (
        f"{len(judged)} {judging['set']} (domain), then validation.csv ({len(validation)}) as the guard"
    )
    report["evaluation_rows"] = len(judged)
    by_interval = gate.by_interval(non_inferior)
    rule = ("non-inferiority: kept only when the whole 95% interval of the gain is below 0" if by_interval
            else f"non-inferiority: gain >= -{gate.domain_tolerance}" if non_inferior
            else f"superiority: gain >= {gate.margin}")  # fmt: skip
    limits = ({"class_limit": gate.class_tolerance, "class_rule": "interval"} if by_interval
              else {"tolerance": gate.domain_tolerance, "class_limit": gate.class_tolerance} if non_inferior
              else {"margin": gate.margin, "class_limit": gate.max_class_drop})  # fmt: skip
    if not len(judged):
        report["domain"] = {**judging, "rows": 0, "rule": rule, **limits, "needed": gate.min_heldout}
        report["guard"]["passed"] = report["guard"]["loss"] <= gate.guard_tolerance
        return False, "kept the champion: no corrections it was not fitted on to judge it on; add corrections"
    scores = {k: metrics(truth, p, labels=present) for k, p in predicted.items()}
    gain = scores["challenger"]["avg_recall"] - scores["champion"]["avg_recall"]
    intervals = paired_intervals(
        truth, predicted["champion"], predicted["challenger"], texts, gate.class_metric
    )
    interval = intervals["gain"]
    report["domain"] = {**judging, "rows": len(judged), "labels": present,
                        "metric": "avg_recall", "champion": round(scores["champion"]["avg_recall"], 4),
                        "challenger": round(scores["challenger"]["avg_recall"], 4), "gain": round(gain, 4),
                        "rule": rule, **limits, "needed": gate.min_heldout,
                        "interval95": interval, f"{gate.class_metric}_drop_interval95": intervals["drops"],
                        "interval": f"paired bootstrap over near-duplicate groups, {BOOTSTRAP_REPLICATES} replicates; "
                                    + ("gated on" if by_interval else "reported, not gated on")}  # fmt: skip
    report["scores"] = {k: {m: v[m] for m in ("avg_recall", "f1_pn", "macro_f1", "accuracy")} |
                        {m: {c: x[m] for c, x in v["per_class"].items()} for m in ("recall", "f1")}
                        for k, v in scores.items()}  # fmt: skip
    report["scores"]["guard"] = {k: round(v["avg_recall"], 4) for k, v in guard.items()}
    promote, reason = decide(scores["champion"], scores["challenger"], gate, guard, non_inferior, interval,
                             intervals["drops"] if by_interval else None)  # fmt: skip
    report["guard"]["passed"] = report["guard"]["loss"] <= gate.guard_tolerance
    return promote, reason


def _latest(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per text: its last (latest) one."""
    return frame.drop_duplicates("text", keep="last").reset_index(drop=True)


def _record_decision(name: str, version: str, report: dict[str, Any]) -> None:
    """The gate's decision and numbers as tags of the challenger version (the registry's own record)."""
    mlflow_client = registry.client()
    with registry.registry_errors(f"recording the gate decision on {name} {version}"):
        mlflow_client.set_model_version_tag(name, version, "gate.decision", report["decision"])
        mlflow_client.set_model_version_tag(name, version, "gate.reason", redact(report["reason"])[:5000])
        for key in ("scores", "domain", "guard", "learner"):
            if key in report:
                mlflow_client.set_model_version_tag(
                    name, version, f"gate.{key}", json.dumps(report[key])[:5000]
                )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- the watcher -------------------------------------------------------------------------------------
def watch(incoming: str, every_s: float, *, cycles: int | None = None, min_rows: int = 1,
          monitor_log: str | None = None, sleep: Callable[[float], None] = time.sleep, log: Log = print,
          **retrain_args: Any) -> list[dict[str, Any]]:  # fmt: skip
    """Poll `incoming` every `every_s` seconds; retrain when new batches hold `min_rows` rows, or any
    rows while the monitor reports ALERT on `monitor_log`. `cycles` bounds the loop (None: forever)."""
    (retrain_args.get("gate") or Gate()).check()  # a bad option stops the watcher now, not at its first batch
    check_incoming(incoming)
    reports = []
    done = 0
    while cycles is None or done < cycles:
        state = state_of(incoming, retrain_args.get("state"))
        new = pending(incoming, read_manifest(state))
        rows = sum(_row_count(uri) for uri, _ in new)
        alert = bool(new) and monitor_log is not None and _monitor_alerts(monitor_log)
        if new and (rows >= min_rows or alert):
            log(f"{len(new)} new batch(es), {rows} rows{' (monitor: ALERT)' if alert else ''}: retraining")
            try:
                reports.append(retrain(incoming, log=log, **retrain_args))
            except LockedError as exc:  # another run is on it: look again next cycle
                log(str(exc))
        done += 1
        if cycles is None or done < cycles:
            sleep(every_s)
    return reports


def _row_count(uri: str) -> int:
    return max(0, storage.read_bytes(uri).count(b"\n") - 1)


def _monitor_alerts(log_uri: str) -> bool:
    from datetime import timedelta

    try:
        report, _ = monitor.run(log_uri, timedelta(days=1), timedelta(days=1))
    except (OSError, ValueError):
        return False
    return report["status"] == monitor.ALERT
