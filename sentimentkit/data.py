"""Load, validate and download labelled datasets.

Files are tables (CSV, TSV, XLSX or Parquet, read by `io.tables`) with a text column and a label
column (defaults `text`, `label`). Labels are
`negative` / `neutral` / `positive` in any case, with surrounding spaces allowed.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sentimentkit import LABELS
from sentimentkit.config import SPLITS, TWEETEVAL_BASE_URL, Settings
from sentimentkit.errors import DataError  # noqa: F401  (re-exported under its old name)
from sentimentkit.io.storage import is_remote
from sentimentkit.io.tables import BatchError, read_labelled

TWEETEVAL_FILES = {"train": "train", "validation": "val", "test": "test"}


def data_dir(settings: Settings | None = None) -> Path:
    """The data directory: `SENTIMENTKIT_DATA_DIR` or `data/` in the repository."""
    return (settings or Settings.from_env()).data_dir


def split_path(split: str, directory: str | Path | None = None) -> Path:
    """Path of `train.csv` / `validation.csv` / `test.csv` in the data directory."""
    if split not in SPLITS:
        raise DataError(f"Unknown split {split!r}; expected one of {', '.join(SPLITS)}.")
    return Path(directory or data_dir()) / f"{split}.csv"


def normalise_labels(labels: pd.Series) -> pd.Series:
    """Lower-case and strip labels; DataError naming bad values and their (1-based data) rows."""
    cleaned = labels.astype("string").str.strip().str.lower()
    bad = ~cleaned.isin(LABELS) | cleaned.isna()
    if bad.any():
        rows = [int(i) + 1 for i in labels.index[bad]]
        values = sorted({repr(v) for v in labels[bad].tolist()})
        shown = ", ".join(str(r) for r in rows[:10]) + (" ..." if len(rows) > 10 else "")
        raise DataError(
            f"{int(bad.sum())} row(s) have labels outside {list(LABELS)}: values {', '.join(values[:10])} "
            f"at data row(s) {shown} (row 1 is the first line after the header)."
        )
    return cleaned.astype(str)


def load_labelled_csv(
    path: str | Path, text_column: str = "text", label_column: str = "label"
) -> pd.DataFrame:
    """Read a labelled table into a frame with columns `text`, `label` (labels normalised), through
    the product's one reader (`io.tables.read_labelled`): CSV/TSV/XLSX/Parquet, any encoding it
    accepts, a local path or an az:// URI."""
    if not is_remote(path) and not Path(path).is_file():
        raise DataError(
            f"Data file {path} not found. Set SENTIMENTKIT_DATA_DIR or run `python -m sentimentkit fetch-data`."
        )
    try:
        frame = read_labelled(path, text_column, label_column)
    except BatchError as exc:
        message = str(exc)
        raise DataError(message if message.startswith(str(path)) else f"{path}: {message}") from None
    return pd.DataFrame({"text": frame["text"], "label": normalise_labels(frame["label"])})


def load_split(split: str, directory: str | Path | None = None) -> pd.DataFrame:
    """Load one of the standard splits from the data directory."""
    return load_labelled_csv(split_path(split, directory))


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file read in blocks, or of a folder's files (each one's relative name, then
    its bytes, in sorted order)."""
    digest = hashlib.sha256()
    root = Path(path)
    for item in sorted(root.rglob("*")) if root.is_dir() else [root]:
        if root.is_dir():
            if not item.is_file():
                continue
            digest.update(str(item.relative_to(root)).encode())
        with open(item, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@dataclass
class DatasetReport:
    """What `validate` found in one dataset."""

    name: str
    rows: int
    label_counts: dict[str, int]
    empty_texts: int
    duplicate_texts: int
    conflicting_duplicates: int
    overlap: dict[str, int] = field(default_factory=dict)
    near_overlap: dict[str, int] = field(default_factory=dict)  # rows with a near-duplicate there

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def validate(frame: pd.DataFrame, name: str = "data") -> DatasetReport:
    """Row count, label distribution, empty and duplicate texts (and duplicates with other labels)."""
    text = frame["text"].astype(str)
    key = text.str.strip().str.lower()
    dup = key.duplicated(keep=False) & (key != "")
    conflicts = frame[dup].assign(key=key[dup]).groupby("key")["label"].nunique()
    return DatasetReport(
        name=name,
        rows=len(frame),
        label_counts={label: int((frame["label"] == label).sum()) for label in LABELS},
        empty_texts=int((key == "").sum()),
        duplicate_texts=int(key[key != ""].duplicated().sum()),
        conflicting_duplicates=int((conflicts > 1).sum()),
    )


def overlap(a: pd.DataFrame, b: pd.DataFrame) -> int:
    """Number of distinct texts (case/space-insensitive) present in both frames: leakage."""
    norm = lambda f: set(f["text"].astype(str).str.strip().str.lower()) - {""}  # noqa: E731
    return len(norm(a) & norm(b))


def near_duplicate_key(text: str) -> str:
    """The text as the model sees it, minus URLs, @mentions and case/elongation cues.

    Retweets and re-posts of one tweet share this key.
    """
    # lazy: the tokenizer loads nltk and scikit-learn (seconds), which fetch-data and `feedback add`
    # (reading labelled files) never need
    from sentimentkit.text.preprocess import MARKERS, tokenize

    return " ".join(t for t in tokenize(text) if t not in MARKERS)


def near_duplicates_of(frame: pd.DataFrame, reference: pd.DataFrame) -> pd.Series:
    """Boolean mask over `frame`: rows whose near-duplicate key also occurs in `reference`."""
    keys = set(reference["text"].astype(str).map(near_duplicate_key)) - {""}
    return frame["text"].astype(str).map(near_duplicate_key).isin(keys)


def validate_splits(splits: dict[str, pd.DataFrame]) -> list[DatasetReport]:
    """Validate each split; record its exact and near-duplicate overlap with every other split."""
    reports = [validate(frame, name) for name, frame in splits.items()]
    for report in reports:
        frame = splits[report.name]
        for other in splits:
            if other != report.name:
                report.overlap[other] = overlap(frame, splits[other])
                report.near_overlap[other] = int(near_duplicates_of(frame, splits[other]).sum())
    return reports


# --- download ------------------------------------------------------------------------------
def _download(url: str, dest: Path, timeout: float) -> None:
    from tqdm import tqdm

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed https/local URL
            total = int(response.headers.get("Content-Length") or 0) or None
            tmp = dest.with_suffix(dest.suffix + ".part")
            with open(tmp, "wb") as fh, tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    fh.write(block)
                    bar.update(len(block))
            os.replace(tmp, dest)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DataError(
            f"Could not download {url} ({getattr(exc, 'reason', exc)}). Are you offline? Copy the "
            "TweetEval files by hand, or point SENTIMENTKIT_DATA_DIR at a folder that has "
            "train.csv, validation.csv and test.csv."
        ) from None


def _read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def fetch_tweeteval(
    directory: str | Path | None = None,
    base_url: str = TWEETEVAL_BASE_URL,
    force: bool = False,
    timeout: float = 30.0,
) -> dict[str, Path]:
    """Download TweetEval sentiment into `directory` as train/validation/test CSV (cached)."""
    directory = Path(directory or data_dir())
    raw = directory / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for split, remote in TWEETEVAL_FILES.items():
        out = directory / f"{split}.csv"
        if out.is_file() and not force:
            written[split] = out  # cached
            continue
        files = {}
        for kind in ("text", "labels"):
            dest = raw / f"{remote}_{kind}.txt"
            if force or not dest.is_file():
                _download(f"{base_url.rstrip('/')}/{remote}_{kind}.txt", dest, timeout)
            files[kind] = _read_lines(dest)
        written[split] = _write_split(files["text"], files["labels"], out)
    return written


def _write_split(texts: list[str], labels: list[str], out: Path) -> Path:
    if len(texts) != len(labels):
        raise DataError(f"Downloaded {out.stem}: {len(texts)} texts but {len(labels)} labels.")
    try:
        names = [LABELS[int(v)] for v in labels]
    except (ValueError, IndexError):
        raise DataError(f"Downloaded {out.stem} labels are not all 0, 1 or 2.") from None
    pd.DataFrame({"text": texts, "label": names}).to_csv(out, index=False)
    return out
