"""Unpickle model.pkl without running code from it: the Python docs' "Restricting Globals" recipe.

A pickle can name any importable callable and have it called while loading (that is how `__reduce__`
exploits work). `SafeUnpickler.find_class` only resolves the few classes and functions a sentimentkit
pipeline really contains; anything else stops the load before it is called. Pickles written before the
package moved its modules into sub-packages name the old paths; those are mapped to the new ones.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

# (module, name) -> (module, name) where the class now lives; only these are ever resolved.
_MOVED = {
    ("sentimentkit.features", "TweetVectorizer"): ("sentimentkit.text.features", "TweetVectorizer"),
    ("sentimentkit.features", "_WordAnalyzer"): ("sentimentkit.text.features", "_WordAnalyzer"),
}
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("sentimentkit.text.features", "TweetVectorizer"),
        ("sentimentkit.text.features", "_WordAnalyzer"),
        ("sklearn.pipeline", "Pipeline"),
        ("sklearn.feature_extraction.text", "TfidfVectorizer"),
        ("sklearn.feature_extraction.text", "TfidfTransformer"),
        ("sklearn.linear_model._logistic", "LogisticRegression"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy", "float32"),
        ("numpy", "float64"),
        ("numpy", "int32"),
        ("numpy", "int64"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("builtins", "slice"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("collections", "OrderedDict"),
    }
)


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list; nothing from it was called."""


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler whose `find_class` only returns allow-listed globals."""

    def find_class(self, module: str, name: str) -> Any:
        module, name = _MOVED.get((module, name), (module, name))
        if (module, name) not in ALLOWED:
            raise UnsafePickleError(
                f"the pickle asks for {module}.{name}, which a sentimentkit model never contains"
            )
        return super().find_class(module, name)


def safe_loads(blob: bytes) -> Any:
    """`pickle.loads` restricted to the allow-list; raises UnsafePickleError for anything else."""
    return SafeUnpickler(io.BytesIO(blob)).load()
