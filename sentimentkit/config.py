"""All settings in one place: typed defaults, overridable by environment variables.

Every variable is documented in `.env.example`. Reading settings does no I/O beyond the
environment, so importing this module is free.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sentimentkit import LABELS
from sentimentkit.errors import ConfigError, OptionError

# The formula guard's modes (sentimentkit/io/formula.py applies them; the settings choose one).
FormulaGuard = Literal["auto", "all", "off"]
FORMULA_GUARDS: tuple[str, ...] = ("auto", "all", "off")
DEFAULT_FORMULA_GUARD: FormulaGuard = "auto"


def check_formula_guard(mode: str) -> FormulaGuard:
    """`mode` if it is one of FORMULA_GUARDS (any case, spaces trimmed), else ValueError in one line."""
    value = str(mode).strip().lower()
    if value not in FORMULA_GUARDS:
        raise OptionError(
            f"The formula guard must be one of {', '.join(FORMULA_GUARDS)}, got {mode!r}: 'auto' "
            "neutralises only real formulas, 'all' every cell starting with = + - @, 'off' nothing."
        )
    return value  # type: ignore[return-value]


REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_PATH = REPO_ROOT / "model.pkl"
DEFAULT_DATA_DIR = REPO_ROOT / "data"
# The optional "accurate" model the app shows beside the default: the transformer + fast model
# ensemble (issue 15, benchmarks/accurate_mode.md); any model location works (e.g. models/transformer-int8).
DEFAULT_ACCURATE_MODEL_PATH = REPO_ROOT / "models" / "accurate"
SPLITS: tuple[str, ...] = ("train", "validation", "test")
TWEETEVAL_BASE_URL = "https://raw.githubusercontent.com/cardiffnlp/tweeteval/main/datasets/sentiment"
SEED = 13
THREADS_ENV = "SENTIMENTKIT_TRANSFORMER_THREADS"
PURE_PYTHON_ENV = "SENTIMENTKIT_PURE_PYTHON"


def _env_number(name: str, default: Any, convert: Callable[[str], Any], kind: str) -> Any:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return convert(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None


def _env_float(name: str, default: float | None) -> float | None:
    return _env_number(name, default, float, "a number")


def _env_int(name: str, default: int) -> int:
    return _env_number(name, default, int, "a whole number")


def _env_path(name: str) -> Path | None:
    raw = os.environ.get(name, "").strip()
    return Path(raw) if raw else None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes"}


def _env_switch(name: str, default: bool) -> bool:
    """A true/false setting; anything else is a ConfigError naming the variable."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _env_formula_guard() -> str:
    raw = os.environ.get("SENTIMENTKIT_FORMULA_GUARD", "").strip()
    try:
        return check_formula_guard(raw) if raw else DEFAULT_FORMULA_GUARD
    except ValueError:
        raise ConfigError(
            f"SENTIMENTKIT_FORMULA_GUARD must be auto (only real formulas), all (every cell starting "
            f"with = + - @) or off, got {raw!r}"
        ) from None


def _env_list(name: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


def _env_text(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def _env_threads() -> int | None:
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{THREADS_ENV} must be a positive whole number, got {raw!r}")
    return int(raw)


def pure_python_from_env() -> bool:
    """SENTIMENTKIT_PURE_PYTHON (the `pure_python` setting) alone. `sentimentkit.text._lookup` reads it
    once at import to choose its inner loops; building the whole `Settings` there would make a wrong
    unrelated variable break every import of the text floor."""
    return bool(os.environ.get(PURE_PYTHON_ENV, "").strip())


@dataclass(frozen=True)
class Settings:
    """Runtime settings. Build with `Settings.from_env()`; every field has a safe default."""

    model_path: Path = DEFAULT_MODEL_PATH
    data_dir: Path = DEFAULT_DATA_DIR
    accurate_model_path: Path = DEFAULT_ACCURATE_MODEL_PATH
    # None means "use the threshold recorded in the model card".
    threshold: float | None = None
    max_chars: int = 5120
    max_batch: int = 1000
    max_body_bytes: int = 2_000_000
    max_upload_mb: int = 50
    max_rows: int = 200_000
    csv_chunk_rows: int = 5_000
    api_key: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    log_text: bool = False
    api_url: str | None = None
    api_timeout_s: float = 30.0
    # API serving a `models:/NAME@ALIAS` URI: seconds between checks of the alias (0: only on reload).
    model_poll_s: float = 30.0
    # Prediction log (local folder or az:// URI; None: off) and whether it keeps the raw text.
    prediction_log: str | None = None
    prediction_log_text: bool = False
    # Feedback store (folder or az:// URI, the retrain incoming location; None: POST /v1/feedback is off).
    feedback: str | None = None
    labels: tuple[str, ...] = LABELS
    # Languages (ISO 639-1) whose rows count in sentiment statistics (Insights); rows the language
    # guard finds in other languages are still scored, but flagged and left out (issue 24).
    languages: tuple[str, ...] = ("en",)
    # Whether every scored text gets `mixed` (its parts scored: serving.parts); off, `mixed` is null,
    # for bulk runs where speed matters more (benchmarks/throughput.md). Long texts are always scored
    # by parts.
    mixed: bool = True
    # Optional secret for model-card signatures (sentimentkit.models.signing); kept out of repr/logs.
    signing_key: str | None = field(default=None, repr=False)
    signing_key_file: Path | None = None
    # Which cells of a written CSV get a ' so spreadsheets do not run them: auto, all or off.
    formula_guard: str = DEFAULT_FORMULA_GUARD
    # The MLflow registry: its tracking server (None: a SQLite file under mlruns/; may hold a password,
    # so kept out of repr), where new experiments keep artifacts, who acts, and the verified-copy cache.
    mlflow_tracking_uri: str | None = field(default=None, repr=False)
    mlflow_artifacts: str | None = None
    user: str | None = None
    registry_cache: Path | None = None
    # Azure Blob credentials for az:// locations: a connection string (a secret) or an account name
    # used with an azure-identity login.
    azure_connection_string: str | None = field(default=None, repr=False)
    azure_account_name: str | None = None
    # Threads of the transformer backend (None: the library's default).
    transformer_threads: int | None = None
    # Prometheus multi-process folder: the API's /metrics aggregates its workers from there.
    prometheus_multiproc_dir: str | None = None
    # Force the NumPy inner loops instead of the compiled ones (read at import: `pure_python_from_env`).
    pure_python: bool = False

    @classmethod
    def from_env(cls) -> Settings:
        """Read every `SENTIMENTKIT_*` variable, falling back to the defaults above."""
        env = os.environ
        return cls(
            model_path=Path(env.get("SENTIMENTKIT_MODEL") or DEFAULT_MODEL_PATH),
            data_dir=Path(env.get("SENTIMENTKIT_DATA_DIR") or DEFAULT_DATA_DIR),
            accurate_model_path=Path(env.get("SENTIMENTKIT_ACCURATE_MODEL") or DEFAULT_ACCURATE_MODEL_PATH),
            threshold=_env_float("SENTIMENTKIT_THRESHOLD", None),
            max_chars=_env_int("SENTIMENTKIT_MAX_CHARS", cls.max_chars),
            max_batch=_env_int("SENTIMENTKIT_MAX_BATCH", cls.max_batch),
            max_body_bytes=_env_int("SENTIMENTKIT_MAX_BODY_BYTES", cls.max_body_bytes),
            max_upload_mb=_env_int("SENTIMENTKIT_MAX_UPLOAD_MB", cls.max_upload_mb),
            max_rows=_env_int("SENTIMENTKIT_MAX_ROWS", cls.max_rows),
            csv_chunk_rows=_env_int("SENTIMENTKIT_CSV_CHUNK_ROWS", cls.csv_chunk_rows),
            api_key=env.get("SENTIMENTKIT_API_KEY") or None,
            cors_origins=_env_list("SENTIMENTKIT_CORS_ORIGINS"),
            log_text=_env_flag("SENTIMENTKIT_LOG_TEXT"),
            api_url=(env.get("SENTIMENTKIT_API_URL") or "").strip().rstrip("/") or None,
            api_timeout_s=_env_float("SENTIMENTKIT_API_TIMEOUT_S", cls.api_timeout_s) or 30.0,
            signing_key=env.get("SENTIMENTKIT_SIGNING_KEY") or None,
            signing_key_file=_env_path("SENTIMENTKIT_SIGNING_KEY_FILE"),
            model_poll_s=_env_float("SENTIMENTKIT_MODEL_POLL_S", cls.model_poll_s) or 0.0,
            prediction_log=(env.get("SENTIMENTKIT_PREDICTION_LOG") or "").strip() or None,
            prediction_log_text=_env_flag("SENTIMENTKIT_PREDICTION_LOG_TEXT"),
            formula_guard=_env_formula_guard(),
            feedback=(env.get("SENTIMENTKIT_FEEDBACK") or "").strip() or None,
            mlflow_tracking_uri=_env_text("MLFLOW_TRACKING_URI"),
            mlflow_artifacts=_env_text("SENTIMENTKIT_MLFLOW_ARTIFACTS"),
            user=_env_text("SENTIMENTKIT_USER"),
            registry_cache=_env_path("SENTIMENTKIT_REGISTRY_CACHE"),
            azure_connection_string=_env_text("AZURE_STORAGE_CONNECTION_STRING"),
            azure_account_name=_env_text("AZURE_STORAGE_ACCOUNT_NAME"),
            transformer_threads=_env_threads(),
            prometheus_multiproc_dir=_env_text("PROMETHEUS_MULTIPROC_DIR"),
            pure_python=pure_python_from_env(),
            mixed=_env_switch("SENTIMENTKIT_MIXED", cls.mixed),
            languages=tuple(code.lower() for code in _env_list("SENTIMENTKIT_LANGUAGES")) or cls.languages,
        )
