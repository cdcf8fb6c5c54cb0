"""One family for every error a user can cause and fix: `UserError` and its subclasses.

Each front end maps the family once: the CLI (`sentimentkit.cli.main`) prints `error: <message>` on one
line and exits with the error's `exit_code`; the API (`sentimentkit.api.errors`) answers a JSON
`ErrorBody` with the error's `http_status` and `code`; the app shows the message. Messages are redacted
when the error is made (`sentimentkit.redact`): a URI's password or SAS token never reaches them.
Anything outside the family is a bug: the CLI prints a redacted traceback, the API a bare 500.

The modules that raise these errors re-export them under the names they always had (`DataError` from
`sentimentkit.data`, `ModelError` from `sentimentkit.models.card`, ...), so old imports keep working.
Some members keep a second, built-in base (`OSError`, `RuntimeError`, `ValueError`,
`FileNotFoundError`) where callers catch them by that base today.

Exit codes of `python -m sentimentkit`:

====  ==================================================================================
code  meaning
====  ==================================================================================
0     done
1     unexpected failure: a bug (the traceback is printed, redacted)
2     a user error: the one line says what was wrong and what to do (also an OS error
      such as permission denied)
3     `monitor --fail-on`: a threshold was reached
4     a worker process of `predict --jobs` died (killed from outside, or out of memory); nothing
      was written and an earlier output is kept: run again
5     another run (`retrain`) holds the lock of the state folder: run later or pass --wait
130   interrupted (Ctrl-C, SIGTERM)
====  ==================================================================================
"""

from __future__ import annotations

from typing import Any

from sentimentkit.redact import redact

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USER = 2
EXIT_MONITOR_FAILED = 3
EXIT_WORKER_DIED = 4
EXIT_LOCKED = 5
EXIT_INTERRUPTED = 130

__all__ = [
    "EXIT_BUG",
    "EXIT_INTERRUPTED",
    "EXIT_LOCKED",
    "EXIT_MONITOR_FAILED",
    "EXIT_OK",
    "EXIT_USER",
    "EXIT_WORKER_DIED",
    "BackendError",
    "BatchError",
    "ConfigError",
    "DataError",
    "LabelsError",
    "LockedError",
    "MissingColumnError",
    "ModelError",
    "NoProfileError",
    "NoReferenceError",
    "NothingLoggedError",
    "OptionError",
    "OutputError",
    "OutputExistsError",
    "ProbeError",
    "RegistryError",
    "StorageError",
    "TextError",
    "UsageError",
    "UserError",
    "WorkerDiedError",
]


class UserError(Exception):
    """An error the user caused and can fix; its message says what was wrong and what to do.

    `exit_code` is the CLI's exit status, `http_status` and `code` the API's answer. String arguments
    are redacted (`sentimentkit.redact.redact`) so no message carries a secret.
    """

    exit_code: int = EXIT_USER
    http_status: int = 400
    code: str = "bad_request"

    def __init__(self, *args: Any) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


# --- the command line and settings ---------------------------------------------------------------
class UsageError(UserError):
    """A mistake in the command line or its inputs."""

    code = "usage_error"


class OptionError(UsageError, ValueError):
    """An option's value that is not valid (a duration, a column name, a date order, a lexicon...).
    Also a ValueError: callers that caught the bare ValueError raised here before still do."""

    http_status = 422
    code = "invalid_value"


class ConfigError(UserError, ValueError):
    """A setting (environment variable, key file, thresholds file) that is not valid. Also a
    ValueError, as it was before the family existed. A server misconfigured is the server's fault: 500."""

    http_status = 500
    code = "invalid_setting"


# --- data and tables -----------------------------------------------------------------------------
class DataError(UserError):
    """A dataset problem a user can fix; the message says what and where."""

    http_status = 422
    code = "invalid_data"


class LabelsError(DataError, ValueError):
    """A labelled file (corrections, label files, a sentiment column) with missing columns or wrong
    values. Also a ValueError, as it was before the family existed."""


class NoReferenceError(DataError):
    """A model whose card holds no reference profile, and no validation split to compute one from."""

    code = "no_reference"


class NoProfileError(NoReferenceError, ValueError):
    """A model card without the reference profile a performance estimate needs (a ValueError too)."""


class TextError(UserError, ValueError):
    """A text a model cannot score (empty, invisible, too long); a ValueError, as it was before."""

    http_status = 422
    code = "invalid_text"


class BatchError(UserError):
    """A problem with an uploaded or given table; the message says what to do."""

    code = "invalid_csv"


class MissingColumnError(BatchError):
    """The table has no column of the name asked for; the message lists the columns it has."""

    http_status = 422
    code = "missing_column"


class OutputError(BatchError):
    """An output the writer refuses or cannot write; the message says why and what to do."""

    http_status = 500
    code = "output_error"


class OutputExistsError(OutputError):
    """An `exclusive` write found its target already there (it was not overwritten)."""

    http_status = 409
    code = "output_exists"


class StorageError(UserError, OSError):
    """A storage location that cannot be read or written; the message says why and what to fix.
    Also an OSError, so code that handles a missing local file handles it too."""

    http_status = 502
    code = "storage_error"


# --- models and backends -------------------------------------------------------------------------
class ModelError(UserError):
    """A model file that is missing, corrupt, or does not match its card. The message says why."""

    http_status = 503
    code = "model_unavailable"


class ProbeError(ModelError, ValueError):
    """A model that answered the loading probe with invalid probabilities (a ValueError, as before)."""


class RegistryError(ModelError):
    """A registry problem a user can fix (unknown model or alias, tampered artifact, no server)."""

    code = "registry_error"


class BackendError(UserError):
    """The model backend (e.g. the REST API) could not answer; the message says why and what to do."""

    http_status = 502
    code = "backend_unavailable"


# --- runs ----------------------------------------------------------------------------------------
class WorkerDiedError(UserError, RuntimeError):
    """A worker process ended in the middle of the run (killed by a signal, by the out-of-memory
    killer, or crashed); the run stopped without writing its output."""

    exit_code = EXIT_WORKER_DIED
    http_status = 500
    code = "worker_died"


class LockedError(UserError, RuntimeError):
    """Another process holds the lock of the state folder."""

    exit_code = EXIT_LOCKED
    http_status = 409
    code = "locked"


class NothingLoggedError(UserError, FileNotFoundError):
    """The prediction log holds no files (at all, or since the date asked for): nothing to report on.

    `latest` is the day of the newest partition when there are older files, None when there are none.
    """

    http_status = 404
    code = "nothing_logged"

    def __init__(self, message: str, latest: Any = None) -> None:
        super().__init__(message)
        self.latest = latest
