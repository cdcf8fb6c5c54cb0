"""One redaction rule for everything sentimentkit prints: messages, logs, API answers, reports, tags.

`redact(text)` replaces secrets with `***`:

- the password of a URL's user-info: `scheme://user:pw@host` -> `scheme://user:***@host`;
- connection-string secrets: `AccountKey=`, `SharedAccessSignature=`, `SharedAccessKey=`,
  `Password=`, `pwd=` (Azure Storage, Service Bus, ODBC/ADO strings);
- Shared Access Signatures: a whole recognisable SAS token (`sv=2024-01-01&...&sig=...`) and any
  `sig=` query parameter;
- bearer tokens (`Bearer ...`, `Authorization: ...`) and `name=value` / `"name": "value"` pairs whose
  name says secret (`password`, `client_secret`, `api_key`, `access_token`, ...);
- the exact value of every configured secret, wherever it shows up and in its URL- and JSON-escaped
  forms: the variables in `SECRET_ENV`, any variable whose name ends in a secret word (`_KEY`,
  `_TOKEN`, `_SECRET`, `_PASSWORD`, ...), the secret parts of URIs and connection strings held in the
  environment (`MLFLOW_TRACKING_URI`, `AZURE_STORAGE_CONNECTION_STRING`, ...), the content of the
  signing key file, and whatever a front end registers (`register_settings`: a `Settings`' API key
  and signing key, which need not come from the environment).

Values shorter than `MIN_SECRET_CHARS` are not searched for by value (a one-letter test key would
blank every such letter); the patterns above still apply to them. A text with nothing to redact is
returned as is after one regular-expression search, so it is cheap on every log line.

`RedactingFilter` is the `logging.Filter` that applies the rule to a record's message, arguments,
exception and stack text; `install_log_redaction()` puts it on the root, sentimentkit, uvicorn and
MLflow handlers (and wraps the log-record factory, so records of loggers configured later, such as
MLflow's, are redacted too). The API and the CLI call it at start-up.

It imports nothing from the rest of the package.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import threading
import traceback
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote

MASK = "***"
MIN_SECRET_CHARS = 6

# Variables whose whole value is a secret.
SECRET_ENV = (
    "SENTIMENTKIT_API_KEY",
    "SENTIMENTKIT_SIGNING_KEY",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "DATABRICKS_TOKEN",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
)
# Variables that name a file whose content is a secret.
SECRET_FILE_ENV = ("SENTIMENTKIT_SIGNING_KEY_FILE",)
# Variables that may hold a URI or connection string with a secret inside (user-info password, SAS,
# AccountKey=...): those parts are secrets; the rest (host, account name) is not.
LOCATION_ENV = (
    "AZURE_STORAGE_CONNECTION_STRING",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "SENTIMENTKIT_MLFLOW_ARTIFACTS",
    "SENTIMENTKIT_PREDICTION_LOG",
    "SENTIMENTKIT_API_URL",
    "SENTIMENTKIT_MODEL",
)
# A variable whose name ends in one of these words holds a secret (e.g. MY_SERVICE_TOKEN).
_SECRET_NAME = re.compile(r"(?:^|_)(?:KEY|TOKEN|SECRET|PASSWORD|PASSWD|SAS|CREDENTIALS?)$", re.IGNORECASE)
# ... unless it is one of these well-known non-secrets.
_NOT_SECRET_ENV = frozenset({"GPG_KEY", "PYTHON_GPG_KEY", "SSH_AUTH_SOCK"})

# --- the patterns --------------------------------------------------------------------------------------
_VALUE_END = r"\s\"'<>`"
# scheme://user:PASSWORD@host (the password runs to the last "@" of the authority).
_USERINFO = re.compile(rf"(\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^{_VALUE_END}/:@]*:)([^{_VALUE_END}/]+)(?=@)")
# Connection-string parts (`;`-separated); the SharedAccessSignature value holds `&`s.
_CONNECTION = re.compile(
    rf"(?i)\b(AccountKey|SharedAccessSignature|SharedAccessKey|Password|Pwd)(\s*=\s*)([^;{_VALUE_END}]+)"
)
# A whole SAS token: sv=DATE&...&sig=...
_SAS_TOKEN = re.compile(rf"(?i)\bsv=\d{{4}}-\d{{2}}-\d{{2}}(?:&[^&=#;{_VALUE_END}]+=[^&#;{_VALUE_END}]*)*")
_SIG = re.compile(rf"(?i)(?<![\w-])(sig=)([^&#;{_VALUE_END}]+)")
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)([A-Za-z0-9\-._~+/]{8,}=*)")
_AUTHORIZATION = re.compile(
    rf"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?)((?:basic|bearer|token)\s+)?([^,;{_VALUE_END}]+)"
)
# name=value, name: value, "name": "value" where the name ends in a secret word.
_NAMED = re.compile(
    r"(?i)(password|passwd|pwd|secret|token|api[_\-]?key|account[_\-]?key|access[_\-]?key|signing[_\-]?key"
    r"|sas[_\-]?key|sharedaccesskey|sharedaccesssignature)"
    rf"(\s*[\"']?\s*[:=]\s*[\"']?)(?!\*\*\*)(?![\[{{])([^,;&{_VALUE_END}]+)"
)
# Every pattern needs one of these (in the lower-cased text), or "://" and "@" for a URL's user-info:
# checking them first keeps a text with no secret cheap.
_KEYWORDS = ("pass", "pwd", "secret", "token", "key", "sig=", "sv=", "bearer", "authorization")

# --- the configured secrets ----------------------------------------------------------------------------
_registered: set[str] = set()
_registered_files: set[str] = set()
_lock = threading.Lock()
_env_names: tuple[int, tuple[str, ...]] = (-1, ())


def register_secret(*values: str | bytes | None) -> None:
    """Treat these exact values as secrets from now on (e.g. a key given in code, not the environment)."""
    with _lock:
        for value in values:
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if value and value.strip():
                _registered.add(value.strip())


def register_secret_file(path: str | Path | None) -> None:
    """Treat the content of this file as a secret (read again when the file changes)."""
    if path:
        with _lock:
            _registered_files.add(str(path))


def register_settings(settings: Any) -> None:
    """Register the secrets a `Settings` holds: the API key, the signing key and its file."""
    register_secret(getattr(settings, "api_key", None), getattr(settings, "signing_key", None))
    register_secret_file(getattr(settings, "signing_key_file", None))


def _secret_env_names() -> tuple[str, ...]:
    """The variables holding secrets: SECRET_ENV plus any named like one (rescanned when the count changes)."""
    global _env_names
    count = len(os.environ)
    if _env_names[0] != count:
        found = {n for n in os.environ if _SECRET_NAME.search(n) and n.upper() not in _NOT_SECRET_ENV}
        _env_names = (count, tuple(sorted(found | set(SECRET_ENV))))
    return _env_names[1]


@functools.lru_cache(maxsize=64)
def _file_secret(path: str, mtime_ns: int, size: int) -> str | None:
    try:
        return Path(path).read_bytes().decode("utf-8", "replace").strip() or None
    except OSError:
        return None


def _file_secrets(paths: Iterable[str]) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime, size) of each readable secret file: part of the cache key of the secrets."""
    out = []
    for path in sorted(paths):
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            continue
        out.append((path, st.st_mtime_ns, st.st_size))
    return tuple(out)


@functools.lru_cache(maxsize=256)
def _parts(location: str) -> tuple[str, ...]:
    """The secret parts of a URI or connection string (password, SAS, AccountKey, ...)."""
    out = []
    for pattern in (_USERINFO, _CONNECTION, _SIG, _NAMED):
        for match in pattern.finditer(location):
            out.append(match.group(match.lastindex or 0))
    out += [m.group(0) for m in _SAS_TOKEN.finditer(location) if "sig=" in m.group(0).lower()]
    return tuple(out)


@functools.lru_cache(maxsize=8)
def _env_keys(names: tuple[str, ...]) -> tuple[Any, ...]:
    encode = getattr(os.environ, "encodekey", None)
    return tuple(map(encode, names)) if encode is not None else names


def _env_values(names: tuple[str, ...]) -> tuple[str | bytes | None, ...]:
    """The values of these variables, read from the raw dictionary behind os.environ where there is one
    (one dictionary lookup per name, not an encode and a decode: this runs for every log line)."""
    data = getattr(os.environ, "_data", None)
    if isinstance(data, dict):
        return tuple(map(data.get, _env_keys(names)))
    return tuple(map(os.environ.get, names))


def configured_secrets() -> tuple[str, ...]:
    """Every exact secret value configured now (environment, registered settings, key files)."""
    whole = _env_values(_secret_env_names())
    locations = _env_values(LOCATION_ENV)
    key_files = _env_values(SECRET_FILE_ENV)
    with _lock:
        registered = tuple(sorted(_registered))
        files = {_text(f).strip() for f in key_files if f} | _registered_files
    return _secrets(whole, locations, registered, _file_secrets(f for f in files if f))


def _text(value: str | bytes) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else value


@functools.lru_cache(maxsize=16)
def _secrets(
    whole: tuple[str | bytes | None, ...], locations: tuple[str | bytes | None, ...],
    registered: tuple[str, ...], files: tuple[tuple[str, int, int], ...],
) -> tuple[str, ...]:  # fmt: skip
    values = [_text(v).strip() for v in whole if v] + list(registered)
    for location in locations:
        if location:
            values += _parts(_text(location))
    values += [v for v in (_file_secret(*f) for f in files) if v]
    return tuple(sorted({v for v in values if len(v) >= MIN_SECRET_CHARS}))


def _variants(value: str) -> set[str]:
    """The forms a secret takes when printed: as is, URL-quoted or unquoted, JSON- and repr-escaped."""
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value), unquote(value),
             json.dumps(value)[1:-1], repr(value)[1:-1]}  # fmt: skip
    return {f for f in forms if len(f) >= MIN_SECRET_CHARS}


@functools.lru_cache(maxsize=16)
def _compiled(secrets: tuple[str, ...]) -> tuple[tuple[str, ...], re.Pattern[str] | None]:
    """(every printed form of the secrets, longest first; their alternation)."""
    forms = tuple(sorted({f for s in secrets for f in _variants(s)}, key=len, reverse=True))
    return forms, (re.compile("|".join(map(re.escape, forms))) if forms else None)


# --- the rule ------------------------------------------------------------------------------------------
def _keep_name(match: re.Match[str]) -> str:
    """The match with its last group (the secret) replaced by the mask."""
    last = match.lastindex or 0
    return (
        match.group(0)[: match.start(last) - match.start(0)]
        + MASK
        + match.group(0)[match.end(last) - match.start(0) :]
    )


def redact(text: str) -> str:
    """`text` with every secret replaced by `***` (see the module docstring for what counts)."""
    if not text:
        return text
    if not isinstance(text, str):
        text = str(text)
    forms, literal = _compiled(configured_secrets())
    known = literal is not None and any(form in text for form in forms)
    lower = text.lower()
    if not known and not ("://" in text and "@" in text) and not any(k in lower for k in _KEYWORDS):
        return text
    if known:
        text = literal.sub(MASK, text)  # type: ignore[union-attr]
    text = _SAS_TOKEN.sub(lambda m: MASK if "sig=" in m.group(0).lower() else m.group(0), text)
    for pattern in (_USERINFO, _CONNECTION, _SIG, _AUTHORIZATION, _BEARER, _NAMED):
        text = pattern.sub(_keep_name, text)
    return text


def redact_obj(value: Any) -> Any:
    """A copy of a JSON-like value (dicts, lists, tuples, strings) with every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_obj(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_obj(v) for v in value)
    return value


def redact_exception(exc: BaseException) -> str:
    """The traceback of `exc`, redacted (for the unexpected errors a front end still shows in full)."""
    return redact("".join(traceback.format_exception(exc)))


# --- logging -------------------------------------------------------------------------------------------
class RedactingFilter(logging.Filter):
    """Redacts a record's message (with its arguments merged in), exception and stack text in place.

    A record with nothing to redact keeps its message and arguments as they were (formatters such as
    uvicorn's access log read the arguments); uvicorn's access records get each argument redacted.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact `record`; never drops it."""
        if getattr(record, "_sentimentkit_redacted", False):
            return True
        record._sentimentkit_redacted = True
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
            return True
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: logging reports it later
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


FILTER = RedactingFilter()
LOGGERS = ("", "sentimentkit", "sentimentkit.api", "uvicorn", "uvicorn.error", "uvicorn.access", "mlflow",
           "azure", "py.warnings")  # fmt: skip


def install_log_redaction(extra: Iterable[str] = ()) -> None:
    """Redact every log record and warning: the filter on these loggers and their handlers (and logging's
    last-resort handler), a record factory that redacts each record as it is made, whatever logger it
    comes from, and the formatter of printed warnings. Safe to call again (e.g. after uvicorn replaced
    its handlers)."""
    for name in (*LOGGERS, *extra):
        log = logging.getLogger(name)
        for target in (log, *log.handlers):
            if FILTER not in target.filters:
                target.addFilter(FILTER)
    if logging.lastResort is not None and FILTER not in logging.lastResort.filters:
        logging.lastResort.addFilter(FILTER)
    if not getattr(warnings.formatwarning, "_sentimentkit_redacting", False):
        format_warning = warnings.formatwarning

        def redacting_formatwarning(*args: Any, **kwargs: Any) -> str:
            return redact(format_warning(*args, **kwargs))

        redacting_formatwarning._sentimentkit_redacting = True  # type: ignore[attr-defined]
        warnings.formatwarning = redacting_formatwarning
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "_sentimentkit_redacting", False):

        def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = factory(*args, **kwargs)
            FILTER.filter(record)
            return record

        redacting_factory._sentimentkit_redacting = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(redacting_factory)
