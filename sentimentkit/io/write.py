"""The one output writer: every file a command writes, and every download, goes through here."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pandas as pd

from sentimentkit.io.formula import DEFAULT_FORMULA_GUARD, _may_hold_text, neutralise_formulas
from sentimentkit.io.tables import BatchError


def csv_text(scored: pd.DataFrame, header: bool = True, formula_guard: str = DEFAULT_FORMULA_GUARD) -> str:
    """A scored chunk as CSV text, formulas neutralised as `formula_guard` says (auto, all, off; see
    `sentimentkit.io.formula`): the one writer of every CSV we hand out."""
    safe = neutralise_formulas(scored, formula_guard)
    # The csv writer quotes a cell only for the characters of its line end, so with "\n" a lone "\r"
    # inside a text (old Mac line ends) would be written bare and split the row for every reader.
    # Such a chunk is written with "\r\n" line ends, which quotes it; all others keep "\n".
    end = "\r\n" if _has_carriage_return(safe) else "\n"
    return safe.to_csv(index=False, header=header, lineterminator=end)


def _has_carriage_return(frame: pd.DataFrame) -> bool:
    if any("\r" in str(c) for c in frame.columns):
        return True
    for column in frame.columns:
        if _may_hold_text(frame[column]):
            try:
                if frame[column].str.contains("\r", regex=False, na=False).any():
                    return True
            except AttributeError:  # no strings in this column
                continue
    return False


def result_csv_bytes(scored: pd.DataFrame, formula_guard: str = DEFAULT_FORMULA_GUARD) -> bytes:
    """The full result as UTF-8 CSV with a BOM (so Excel shows accents), formulas neutralised as
    `formula_guard` says."""
    return csv_text(scored, formula_guard=formula_guard).encode("utf-8-sig")


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[IO[str]]:
    """A text file that becomes `path` only when the block ends without an exception.

    It is written beside `path` (same folder, so the final rename is atomic) and removed on
    failure: a failed run never leaves a partial file and never replaces an existing one.
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise BatchError(
            f"The output folder {str(target.parent)!r} does not exist. Create it or choose another."
        )
    if target.is_dir():
        raise BatchError(
            f"The output {str(target)!r} is a folder. Give a file name, e.g. {str(target / 'scored.csv')!r}."
        )
    mode = target.stat().st_mode & 0o777 if target.exists() else _default_mode()
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with open(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file (also through links), so writing one would destroy the other."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()
