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
   label. A deterministic slice of each batch (by text hash,
   `Gate.holdout_share`) is held out for evaluation; the rest is appended to the training data with its
   provenance (batch file, its SHA-256, when).
3. A challenger is trained with the champion's recipe (its card's hyperparameters) on train.csv plus
   every accepted batch so far, and registered (alias `challenger`).
4. Champion and challenger are scored on data neither was fitted on: the held-out slices of all batches
   so far plus the validation split. The challenger is promoted only if its `Gate.metric` beats the
   champion's by `Gate.margin` and no class's recall drops by more than `Gate.max_recall_drop`.
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
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from sentimentkit.io import storage
from sentimentkit.io.redact import redact
from sentimentkit.io.write import Input, OutputError, OutputExistsError, same_target, write_output
from sentimentkit.mlops import CHAMPION, TFIDF_MODEL
from sentimentkit.mlops.lock import LockedError, state_lock

STATE_DIR = "_sentimentkit"  # inside `incoming` unless --state says otherwise
MANIFEST = "manifest.json"
Log = Callable[[str], None]


@dataclass(frozen=True)
class Gate:
    """The promotion rule (README: "Monitoring and retraining")."""

    metric: str = "avg_recall"  # SemEval-2017's primary metric (macro recall)
    margin: float = 0.002  # the challenger must beat the champion by at least this much
    max_recall_drop: float = 0.02  # and no class's recall may fall by more than this (absolute)
    holdout_share: float = 0.2  # of each batch, kept for evaluation


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
    from sentimentkit.data import load_labelled_csv, near_duplicates_of

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
        lambda t: int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) / 16**8 < holdout_share
    )
    record = {"file": Path(str(uri)).name, "status": "accepted", "rows": n, "blank": blank,
              "duplicates": duplicates, "already_in_training": seen, "relabelled": relabelled, "near_duplicates_of_evaluation": int(near.sum()),
              "train_rows": int((~held).sum()), "heldout_rows": int(held.sum())}  # fmt: skip
    return kept[~held.to_numpy()], kept[held.to_numpy()], record


# --- training and scoring -----------------------------------------------------------------------------
def champion_recipe(card: dict[str, Any]) -> dict[str, Any]:
    """The champion's hyperparameters as `fit_pipeline` takes them (JSON lists back to tuples)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in (card.get("hyperparameters") or {}).items()}


def score(predictor: Any, frame: pd.DataFrame) -> dict[str, Any]:
    """metrics() of `predictor` on a labelled frame."""
    from sentimentkit.training.evaluate import metrics

    return metrics(frame["label"].tolist(), predictor.predict(frame["text"].tolist()))


def decide(champion: dict[str, Any], challenger: dict[str, Any], gate: Gate) -> tuple[bool, str]:
    """(promote?, the reason in words) by the gate's rule."""
    gain = challenger[gate.metric] - champion[gate.metric]
    drops = {label: champion["per_class"][label]["recall"] - challenger["per_class"][label]["recall"]
             for label in champion["per_class"]}  # fmt: skip
    worst_label = max(drops, key=drops.__getitem__)
    numbers = (f"{gate.metric} {champion[gate.metric]:.4f} -> {challenger[gate.metric]:.4f} ({gain:+.4f}, "
               f"margin {gate.margin}); largest recall drop {worst_label} {drops[worst_label]:+.4f} "
               f"(limit {gate.max_recall_drop})")  # fmt: skip
    if gain < gate.margin:
        return False, f"kept the champion: not better by the margin; {numbers}"
    if drops[worst_label] > gate.max_recall_drop:
        return False, f"kept the champion: {worst_label} recall would drop too much; {numbers}"
    return True, f"promoted: better by the margin and no class's recall drops too much; {numbers}"


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
            lock_wait_s: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """Process the new batches under `incoming` (see the module docstring); returns the report.

    One run at a time per state folder (`lock.state_lock`): another run waits up to `lock_wait_s`
    seconds for the lock, then raises `lock.LockedError`; after waiting it finds the batches done."""
    check_incoming(incoming)
    state = state_of(incoming, state)
    check_state(incoming, state)
    with state_lock(state, lock_wait_s):
        return _retrain_locked(incoming, data_dir, state, name, gate or Gate(), log)


def _retrain_locked(incoming: str, data_dir: str | Path | None, state: str, name: str, gate: Gate,
                    log: Log) -> dict[str, Any]:  # fmt: skip
    from sentimentkit.data import DataError
    from sentimentkit.training.train import load_splits

    manifest = read_manifest(state)
    new = pending(incoming, manifest)
    if not new:
        log(f"nothing new under {incoming}: {len(manifest['batches'])} batch(es) already processed")
        return {"status": "nothing new", "batches": []}
    splits = load_splits(data_dir)
    known = set(splits["train"]["text"])
    earlier = pd.concat([load_accepted(state, manifest, "heldout"), load_accepted(state, manifest, "train")])
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
        log(f"accepted {uri}: {record['train_rows']} rows to train on, {record['heldout_rows']} held out")
    train_parts = [t for t, _ in parts.values()]
    held_parts = [h for _, h in parts.values()]
    report = _train_and_gate(
        name, splits, data_dir, state, manifest, train_parts, held_parts, records, gate, log
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


def _train_and_gate(name: str, splits: dict[str, pd.DataFrame], data_dir: str | Path | None, state: str,
                    manifest: dict[str, Any], train_parts: list[pd.DataFrame], held_parts: list[pd.DataFrame],
                    records: dict[str, Any], gate: Gate, log: Log) -> dict[str, Any]:  # fmt: skip
    """Train, register and score the challenger; promote it if the gate says so. The report."""
    import tempfile

    from sentimentkit.mlops import registry, tracking
    from sentimentkit.models.pipeline import save_model
    from sentimentkit.serving.loader import load_predictor
    from sentimentkit.training.train import evaluate_pipeline, fit_candidate, save_trained

    started = time.perf_counter()
    # Oldest first, so the latest row of a relabelled text is the one kept.
    additions = _latest(pd.concat([load_accepted(state, manifest, "train"), *train_parts], ignore_index=True))
    heldout = _latest(pd.concat([load_accepted(state, manifest, "heldout"), *held_parts], ignore_index=True))
    report: dict[str, Any] = {"batches": records, "gate": asdict(gate), "added_rows": len(additions)}
    if not sum(len(p) for p in train_parts):
        report.update(status="no new rows", finished_at=_now())
        log("no new training rows in the new batches: no challenger trained")
        return report
    champion = load_predictor(f"models:/{name}@{CHAMPION}")
    recipe = champion_recipe(champion.card)
    train = pd.concat([splits["train"], additions[["text", "label"]]], ignore_index=True)  # newest last
    challenger_splits = {**splits, "train": train}
    pipeline, record = fit_candidate(challenger_splits, recipe)
    record["test"] = evaluate_pipeline(
        pipeline, splits["test"]
    )  # recorded in the card as train does; never gated on
    with tempfile.TemporaryDirectory(prefix="sentimentkit-challenger-") as tmp:
        path = Path(tmp) / "model.pkl"
        card = save_trained(pipeline, record, challenger_splits, data_dir, path)
        card["retraining"] = {"base": f"{name} {champion.registry['version'] if champion.registry else '?'}",
                              "added_rows": len(additions),
                              "batches": sorted({*additions.get("batch_sha256", pd.Series(dtype=str))})}  # fmt: skip
        card = save_model(pipeline, path, card)
        row = tracking.register_model(
            path, card, {"incoming": "retrain"}, name=name, reason="retrained on new batches"
        )
    version = str(row["version"])
    challenger = load_predictor(f"models:/{name}/{version}")
    evaluation = pd.concat([heldout[["text", "label"]], splits["validation"]], ignore_index=True)
    scores = {"champion": score(champion, evaluation), "challenger": score(challenger, evaluation)}
    promote, reason = decide(scores["champion"], scores["challenger"], gate)
    report.update(champion_version=champion.registry["version"] if champion.registry else None,
                  challenger_version=version, evaluation_rows=len(evaluation),
                  evaluation=f"{len(heldout)} held-out rows of the incoming batches + validation.csv ({len(splits['validation'])})",
                  scores={k: {m: v[m] for m in ("avg_recall", "f1_pn", "macro_f1", "accuracy")} |
                          {"recall": {c: x["recall"] for c, x in v["per_class"].items()}} for k, v in scores.items()},
                  decision="promoted" if promote else "kept champion", reason=reason)  # fmt: skip
    _record_decision(registry, name, version, report)
    if promote:
        registry.promote(version, name=name, reason=reason)
    report.update(status="done", seconds=round(time.perf_counter() - started, 1), finished_at=_now())
    log(f"challenger {name} {version}: {reason}")
    return report


def _latest(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per text: its last (latest) one."""
    return frame.drop_duplicates("text", keep="last").reset_index(drop=True)


def _record_decision(registry: Any, name: str, version: str, report: dict[str, Any]) -> None:
    """The gate's decision and numbers as tags of the challenger version (the registry's own record)."""
    mlflow_client = registry.client()
    with registry.registry_errors(f"recording the gate decision on {name} {version}"):
        mlflow_client.set_model_version_tag(name, version, "gate.decision", report["decision"])
        mlflow_client.set_model_version_tag(name, version, "gate.reason", redact(report["reason"])[:5000])
        mlflow_client.set_model_version_tag(name, version, "gate.scores", json.dumps(report["scores"])[:5000])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- the watcher -------------------------------------------------------------------------------------
def watch(incoming: str, every_s: float, *, cycles: int | None = None, min_rows: int = 1,
          monitor_log: str | None = None, sleep: Callable[[float], None] = time.sleep, log: Log = print,
          **retrain_args: Any) -> list[dict[str, Any]]:  # fmt: skip
    """Poll `incoming` every `every_s` seconds; retrain when new batches hold `min_rows` rows, or any
    rows while the monitor reports ALERT on `monitor_log`. `cycles` bounds the loop (None: forever)."""
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

    from sentimentkit.mlops import monitor

    try:
        report, _ = monitor.run(log_uri, timedelta(days=1), timedelta(days=1))
    except (OSError, ValueError):
        return False
    return report["status"] == monitor.ALERT
