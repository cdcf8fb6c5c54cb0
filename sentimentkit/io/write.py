"""The one output writer: every file a command writes goes through `open_output` / `write_output`,
and every CSV we hand out (file, app download, API response) is made by `csv_text`.

Promises (each one is checked in tests/test_write.py and repeated in the README):

1. **Never over an input.** A target that is an input of the same run is refused with one
   `OutputError` line before anything is written. Local paths are compared by their resolved path
   (symlinks and `..` followed) and by (st_dev, st_ino), so a hard link or a bind mount of an input
   is caught too; `az://` (also `abfs(s)://`, `wasb(s)://`) URIs by their normalised form. An input
   may be a folder (the prediction log, retrain's incoming folder, a model folder): every file
   inside it is an input. Exceptions are explicit: `replaces` names the one file the command exists
   to update (`sign`'s card, `retrain`'s manifest), and `owned` names folders inside an input that
   the command owns (retrain's state folder); an input *file* inside an owned folder stays refused.
2. **`-` is standard output**, written binary-safe (the bytes as given; text as UTF-8 with its line
   ends untouched); nothing is created on disk.
3. **A symlink stays a link**: the file it points to is replaced (atomically, as any file is), so a
   link kept in a shared folder keeps pointing where its owner put it. A dangling link's target is
   created.
4. **A FIFO or character device** (`/dev/null`, `/dev/stdout`, a named pipe) is written in place,
   streamed, with no temporary file and no rename: it is never replaced by a regular file. A block
   device or socket is refused. Streams (these and `-`) cannot be taken back: a run that fails
   part-way has sent what it wrote so far, and its exit status says it failed.
5. **Atomic**: a regular file is written to `.NAME.PID.RANDOM.part` beside it (the same folder, so
   the rename is atomic), flushed to disk and renamed over the target only when the block ends
   without an error. On any failure (an exception, a full disk, Ctrl-C) the temporary file is removed
   and the previous file is untouched. A run killed outright (SIGKILL, power loss) cannot clean up; the
   next write of the same target removes such leftovers whose process is no longer alive (never the
   temporary file of a running process).
6. **The mode of an existing file is kept**; a new file gets the usual 0666 minus the umask. With
   `exclusive=True` an existing target is never overwritten (`OutputExistsError`; retrain's reports).
7. **Azure Blob** (`az://container/path`): written to a local temporary file, then uploaded only when
   the block succeeds; a failed block or a failed upload leaves the old blob as it was.

Error messages are one line saying what was wrong and what to do (`OutputError`, a `BatchError`, so
every front end already shows it without a traceback).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import posixpath
import re
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import pandas as pd

from sentimentkit.errors import OutputError, OutputExistsError  # noqa: F401  (re-exported under its old name)
from sentimentkit.io import storage
from sentimentkit.io.formula import DEFAULT_FORMULA_GUARD, _may_hold_text, neutralise_formulas

STDOUT = "-"
TEMP_SUFFIX = ".part"
_BUFFER = 1 << 20
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_AZURE_SCHEMES = {"az", "abfs", "abfss", "wasb", "wasbs"}

Location = str | os.PathLike[str]
# An input: a location, or (location, what it is in words: "the input file", "the model"); None is skipped.
Input = Location | tuple[Location | None, str] | None


# --- content -------------------------------------------------------------------------------------
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


# --- where a location points ---------------------------------------------------------------------
def is_stdout(target: Location | None) -> bool:
    """Whether `target` is `-`, standard output."""
    return target is not None and os.fspath(target) == STDOUT


def describe_target(target: Location) -> str:
    """How status lines name a target: "standard output" for `-`, else the target itself."""
    return "standard output" if is_stdout(target) else os.fspath(target)


def _is_uri(text: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:/", text)) and not text.lower().startswith("file:")


def normalise_uri(uri: str) -> str:
    """A canonical spelling of a storage URI, so two spellings of one blob compare equal.

    `az://`, `abfs(s)://` and `wasb(s)://` are one family (`azure://container/path`; an account named
    in `container@account.host` is dropped, so two accounts' same container/path compare equal: the
    comparison errs on the side of refusing). `.`, `..` and repeated or trailing slashes are folded.
    """
    scheme, rest = uri.split(":", 1)
    scheme = scheme.lower()
    rest = rest.lstrip("/")
    if scheme in _AZURE_SCHEMES:
        scheme = "azure"
        head, _, tail = rest.partition("/")
        rest = f"{head.split('@', 1)[0].lower()}/{tail}"
    path = posixpath.normpath("/" + rest).lstrip("/")
    return f"{scheme}://{'' if path == '.' else path}"


def _local_path(location: Location) -> Path:
    text = os.fspath(location)
    if text.lower().startswith("file://"):
        text = text[len("file://") :]
    return Path(os.path.realpath(text))


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _inside(path: Path, folder: Path) -> bool:
    return path != folder and path.is_relative_to(folder)


def _inside_by_inode(path: Path, folder_id: tuple[int, int]) -> bool:
    """Whether an existing ancestor of `path` is the folder `folder_id` (catches bind mounts)."""
    for parent in path.parents:
        st = _stat(parent)
        if st is not None and _identity(st) == folder_id:
            return True
    return False


def _hard_link_inside(target_id: tuple[int, int], folder: Path) -> bool:
    """Whether a file inside `folder` is the file `target_id` (the target is a hard link to it)."""
    for root, _, files in os.walk(folder):
        for name in files:
            st = _stat(Path(root) / name)
            if st is not None and _identity(st) == target_id:
                return True
    return False


def _inputs(inputs: Iterable[Input]) -> Iterator[tuple[str, str]]:
    for item in inputs:
        location, what = item if isinstance(item, tuple) else (item, "")
        if location is None or os.fspath(location) in ("", STDOUT):
            continue
        text = os.fspath(location)
        yield text, what or f"an input of this command ({text})"


def _same_local(a: Path, a_st: os.stat_result | None, b: Location | None) -> bool:
    if b is None or _is_uri(os.fspath(b)) or is_stdout(b):
        return False
    b_path = _local_path(b)
    b_st = _stat(b_path)
    return a == b_path or (a_st is not None and b_st is not None and _identity(a_st) == _identity(b_st))


def same_target(a: Location, b: Location) -> bool:
    """Whether two targets are one destination (both `-`, one normalised URI, or one local file by
    resolved path or by (st_dev, st_ino)), so writing both would keep only the last."""
    a_text, b_text = os.fspath(a), os.fspath(b)
    if is_stdout(a_text) or is_stdout(b_text):
        return is_stdout(a_text) and is_stdout(b_text)
    if _is_uri(a_text) or _is_uri(b_text):
        return _is_uri(a_text) and _is_uri(b_text) and normalise_uri(a_text) == normalise_uri(b_text)
    path = _local_path(a_text)
    return _same_local(path, _stat(path), b_text)


def check_target(
    target: Location,
    *,
    inputs: Iterable[Input] = (),
    replaces: Location | None = None,
    owned: Iterable[Location] = (),
) -> None:
    """Raise OutputError if the file `target` may not be written in this run (`refuse_inputs`), or
    cannot be (a local target that is a folder, or whose folder does not exist). Nothing is written.

    Commands call it before their long work (scoring, training) so a refusal costs nothing;
    `open_output` calls it again.
    """
    text = os.fspath(target)
    if not is_stdout(text) and not _is_uri(text):
        path = _local_path(text)
        st = _stat(path)
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise OutputError(
                f"The output {text!r} is a folder. Give a file name, e.g. {str(Path(text) / 'out.csv')!r}."
            )
        if st is None and not path.parent.is_dir():
            raise OutputError(
                f"The output folder {str(Path(text).parent)!r} does not exist. Create it or choose another."
            )
    refuse_inputs(target, inputs=inputs, replaces=replaces, owned=owned)


def refuse_inputs(
    target: Location,
    *,
    inputs: Iterable[Input] = (),
    replaces: Location | None = None,
    owned: Iterable[Location] = (),
) -> None:
    """Raise OutputError if writing `target` (a file, or a folder of part files such as Spark's)
    would write over one of `inputs` or into an input folder (promise 1 of the module docstring).

    An input is a location or (location, "what it is", used in the message); None is skipped.
    `replaces` (the file this command exists to update) is allowed even inside an input; a target
    inside one of `owned` (folders the command owns) is allowed unless it is itself an input file.
    """
    if is_stdout(target):
        return
    text = os.fspath(target)
    if _is_uri(text):
        _check_uri(text, inputs, replaces, owned)
        return
    path = _local_path(text)
    st = _stat(path)
    if _same_local(path, st, replaces):
        return
    owned_paths = [_local_path(o) for o in owned if not _is_uri(os.fspath(o))]
    local = [(what, _local_path(loc)) for loc, what in _inputs(inputs) if not _is_uri(loc)]
    sources = [(what, source, _stat(source)) for what, source in local]
    for what, source, source_st in sources:  # an input itself first: the most telling message
        if path == source or (st and source_st and _identity(st) == _identity(source_st)):
            raise OutputError(
                f"The output {text!r} is {what}; writing it would destroy it. Choose another name for the output."
            )
    if any(path == o or _inside(path, o) for o in owned_paths):
        return
    for what, source, source_st in sources:
        if source_st is None or not stat.S_ISDIR(source_st.st_mode):
            continue
        inside = _inside(path, source) or _inside_by_inode(path, _identity(source_st))
        if not inside and st is not None and st.st_nlink > 1 and stat.S_ISREG(st.st_mode):
            inside = _hard_link_inside(_identity(st), source)
        if inside:
            raise OutputError(
                f"The output {text!r} is inside {what}, which this command reads; writing there could destroy "
                "it. Choose a file outside that folder."
            )


def _check_uri(
    text: str, inputs: Iterable[Input], replaces: Location | None, owned: Iterable[Location]
) -> None:
    key = normalise_uri(text)
    if replaces is not None and _is_uri(os.fspath(replaces)) and normalise_uri(os.fspath(replaces)) == key:
        return
    owned_keys = [normalise_uri(os.fspath(o)) for o in owned if _is_uri(os.fspath(o))]
    sources = [(what, normalise_uri(loc)) for loc, what in _inputs(inputs) if _is_uri(loc)]
    for what, source in sources:  # an input itself first: the most telling message
        if key == source:
            raise OutputError(
                f"The output {text!r} is {what}; writing it would destroy it. Choose another name for the output."
            )
    if any(key == o or key.startswith(o.rstrip("/") + "/") for o in owned_keys):
        return
    for what, source in sources:
        if key.startswith(source.rstrip("/") + "/"):
            raise OutputError(
                f"The output {text!r} is inside {what}, which this command reads; writing there could destroy "
                "it. Choose a location outside that folder."
            )


# --- leftovers of killed runs --------------------------------------------------------------------
def _temp_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(name)}\.(\d+)\.[A-Za-z0-9_]+{re.escape(TEMP_SUFFIX)}$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    except OverflowError:
        return False
    return True


def remove_leftovers(target: Location) -> list[Path]:
    """Remove the temporary files a killed earlier write of `target` left beside it (those whose
    process is gone; a running process's file is kept). Returns what was removed."""
    path = _local_path(target)
    pattern = _temp_pattern(path.name)
    removed = []
    with contextlib.suppress(OSError), os.scandir(path.parent) as entries:
        for entry in entries:
            match = pattern.match(entry.name)
            if match and entry.is_file(follow_symlinks=False) and not _alive(int(match.group(1))):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


# --- handles -------------------------------------------------------------------------------------
class _FdSink(io.RawIOBase):
    """A raw writer over a file descriptor through `os.write` (so a test can make it fail)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return os.write(self._fd, data)

    def fileno(self) -> int:
        return self._fd

    def seekable(self) -> bool:
        try:
            os.lseek(self._fd, 0, os.SEEK_CUR)
        except OSError:
            return False
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return os.lseek(self._fd, offset, whence)

    def tell(self) -> int:
        return os.lseek(self._fd, 0, os.SEEK_CUR)

    def close(self) -> None:
        if not self.closed:
            try:
                os.close(self._fd)
            finally:
                super().close()


def _handle(fd: int, binary: bool, encoding: str) -> IO[Any]:
    buffered = io.BufferedWriter(_FdSink(fd), buffer_size=_BUFFER)
    if binary:
        return buffered
    return io.TextIOWrapper(buffered, encoding=encoding, newline="")


def _default_mode() -> int:
    """0666 minus this process's umask (read without changing it where /proc allows)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _full_disk_message(target: str, existed: bool, exc: OSError) -> str:
    reason = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
              errno.EFBIG: "the file is larger than this system allows"}[exc.errno]  # fmt: skip
    kept = f"{target!r} is unchanged" if existed else f"nothing was written to {target!r}"
    return f"Cannot write {target!r}: {reason}; {kept}. Free some space or choose another location."


@contextlib.contextmanager
def open_output(
    target: Location,
    *,
    inputs: Iterable[Input] = (),
    binary: bool = False,
    replaces: Location | None = None,
    owned: Iterable[Location] = (),
    exclusive: bool = False,
    encoding: str = "utf-8",
) -> Iterator[IO[Any]]:
    """A file handle whose content becomes `target` when the block ends without an error.

    `target`: a local path, `-` (standard output) or an `az://` URI. `inputs`: what this run reads
    (files or folders; a location or (location, "what it is")); writing any of them is refused.
    `replaces`: the one input this command exists to update. `owned`: folders inside an input that
    the command owns. `exclusive`: refuse a target that already exists (never overwrite).
    Text handles write `encoding` with line ends untouched; `binary=True` gives a bytes handle.
    See the module docstring for every promise.
    """
    inputs = list(inputs)
    owned = list(owned)
    check_target(target, inputs=inputs, replaces=replaces, owned=owned)
    text = os.fspath(target)
    if is_stdout(text):
        with _stdout(binary, encoding) as handle:
            yield handle
    elif _is_uri(text):
        with _remote(text, binary, encoding, exclusive) as handle:
            yield handle
    else:
        with _local(text, binary, encoding, exclusive) as handle:
            yield handle


def write_output(
    target: Location,
    data: bytes | str,
    *,
    inputs: Iterable[Input] = (),
    replaces: Location | None = None,
    owned: Iterable[Location] = (),
    exclusive: bool = False,
) -> None:
    """Write `data` (bytes as given, str as UTF-8) to `target` with every promise of `open_output`."""
    with open_output(target, inputs=inputs, binary=isinstance(data, bytes), replaces=replaces, owned=owned,
                     exclusive=exclusive) as handle:  # fmt: skip
        handle.write(data)


def atomic_output(path: str | Path) -> contextlib.AbstractContextManager[IO[str]]:
    """A text `open_output(path)` (kept for older callers)."""
    return open_output(path)


@contextlib.contextmanager
def _stdout(binary: bool, encoding: str) -> Iterator[IO[Any]]:
    sys.stdout.flush()  # whatever was printed before comes first
    raw = sys.stdout.buffer
    if binary:
        yield raw
        raw.flush()
        return
    wrapper = io.TextIOWrapper(raw, encoding=encoding, newline="", write_through=True)
    try:
        yield wrapper
        wrapper.flush()
    finally:
        wrapper.detach()  # standard output stays open


@contextlib.contextmanager
def _remote(uri: str, binary: bool, encoding: str, exclusive: bool) -> Iterator[IO[Any]]:
    with tempfile.TemporaryDirectory(prefix="sentimentkit-out-") as tmp:
        local = Path(tmp) / (uri.rstrip("/").rsplit("/", 1)[-1] or "output")
        with _local(str(local), binary, encoding, exclusive=False) as handle:
            yield handle
        if exclusive:
            fs, path = storage.filesystem(uri)
            with storage.translated(uri):
                exists = fs.exists(path)
            if exists:
                raise OutputExistsError(f"{uri} already exists; it is not overwritten. Choose another name.")
        storage.upload(local, uri)  # a block blob is committed whole at the end: a failure keeps the old one


@contextlib.contextmanager
def _local(text: str, binary: bool, encoding: str, exclusive: bool) -> Iterator[IO[Any]]:
    path = _local_path(text)  # a symlink's target: the link itself stays
    st = _stat(path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        with _special(text, path, st, binary, encoding) as handle:
            yield handle
        return
    if exclusive and (st is not None or os.path.lexists(path)):
        raise OutputExistsError(f"{text} already exists; it is not overwritten. Choose another name.")
    mode = stat.S_IMODE(st.st_mode) if st is not None else _default_mode()
    remove_leftovers(path)
    try:
        fd, temp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX
        )
    except PermissionError:
        raise OutputError(
            f"Cannot write {text!r}: no permission to create files in {str(path.parent)!r}. Choose another folder."
        ) from None
    handle: IO[Any] | None = None
    try:
        handle = _handle(fd, binary, encoding)
        yield handle
        handle.flush()
        os.fsync(fd)
        handle.close()
        os.chmod(temp, mode)
        if exclusive:
            try:
                os.link(temp, path)  # fails, rather than replaces, when the name was taken meanwhile
            except FileExistsError:
                raise OutputError(
                    f"{text} already exists; it is not overwritten. Choose another name."
                ) from None
            os.unlink(temp)
        else:
            os.replace(temp, path)
    except BaseException as exc:
        if handle is not None:
            with contextlib.suppress(Exception):
                handle.close()
        else:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            raise OutputError(_full_disk_message(text, st is not None, exc)) from None
        raise


@contextlib.contextmanager
def _special(text: str, path: Path, st: os.stat_result, binary: bool, encoding: str) -> Iterator[IO[Any]]:
    """A FIFO or character device, written in place (never replaced by a regular file)."""
    if not (stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode)):
        kind = "a block device" if stat.S_ISBLK(st.st_mode) else "not a regular file"
        raise OutputError(f"The output {text!r} is {kind}; it is never written over. Give a file name.")
    # No O_CREAT/O_TRUNC: if the node vanished meanwhile, fail rather than create a regular file.
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    handle = _handle(fd, binary, encoding)
    try:
        yield handle
        handle.flush()
    finally:
        with contextlib.suppress(Exception):
            handle.close()


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file (also through links), so writing one would destroy the other."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()
