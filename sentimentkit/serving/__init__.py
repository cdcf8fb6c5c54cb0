"""Serving: the predictor interface (`base`), its backends (`predictor` for model.pkl, `transformer`
for ONNX/torch folders, `remote` for the REST API), `loader.load_predictor` that picks one, and
`batch` (reading tables and scoring them in chunks).

`from sentimentkit.serving import Predictor, load_predictor` works; the names are resolved lazily so
importing a submodule stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "BasePredictor": "sentimentkit.serving.base",
    "BackendError": "sentimentkit.serving.base",
    "OUTPUT_COLUMNS": "sentimentkit.serving.base",
    "Predictor": "sentimentkit.serving.predictor",
    "load_predictor": "sentimentkit.serving.loader",
    "open_backend": "sentimentkit.serving.loader",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
