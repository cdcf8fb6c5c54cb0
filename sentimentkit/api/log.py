"""The API's JSON log lines (one per request, plus events such as a failed model load). Every record of
the process (ours, uvicorn's, MLflow's, Azure's) is redacted (`sentimentkit.redact`)."""

import json
import logging
import sys
import time
from typing import Any

from sentimentkit.redact import FILTER, install_log_redaction

logger = logging.getLogger("sentimentkit.api")


def configure_logging() -> None:
    """JSON lines on stderr, whatever uvicorn's own logging config is; no secret in any log line."""
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.addFilter(FILTER)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    install_log_redaction()  # uvicorn has configured its loggers by the time the app is built


def log_event(level: int, event: str, **fields: Any) -> None:
    """Log one JSON line: timestamp, level, event name and `fields`."""
    payload = {
        "ts": round(time.time(), 3),
        "level": logging.getLevelName(level).lower(),
        "event": event,
        **fields,
    }
    logger.log(level, json.dumps(payload, default=str))
