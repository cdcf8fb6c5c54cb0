"""Unpickle model.pkl without running code from it: the Python docs' "Restricting Globals" recipe.

A pickle can name any importable callable and have it called while loading (that is how `__reduce__`
exploits work). Every way a pickle names a global (GLOBAL, STACK_GLOBAL, INST, OBJ and the copyreg
EXT opcodes) goes through `find_class`, and `SafeUnpickler.find_class` resolves exactly the globals a
sentimentkit pipeline contains (listed by `tests/test_safe_loading.py` from the committed model.pkl
and from a freshly trained pipeline; `tests/test_domain.py` for a domain-adapted one, whose classifier
is `models.domain.DomainAdapted`); anything else stops the load before it is called.

Why what is allowed cannot run code either: the classes are constructed with REDUCE/NEWOBJ and filled
by BUILD (their own `__setstate__`, which only stores attributes); `numpy.dtype` only parses a type
description; `numpy._core.numeric._frombuffer` only reinterprets bytes, and refuses object dtypes, so a
pickle cannot smuggle objects through an array. Dotted names (`Pipeline.__init__`) are not in the list,
and Python 2 name mapping is switched off, so the names checked are the names resolved. Pickles written
before the package moved its modules into sub-packages name the old paths; those are mapped.
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
        ("sentimentkit.models.domain", "DomainAdapted"),  # a LogisticRegression that keeps the base weights
        ("numpy", "dtype"),
        ("numpy", "float32"),  # TweetVectorizer's TF-IDF dtype, a parameter (the class itself)
        ("numpy._core.numeric", "_frombuffer"),  # how numpy >= 2 pickles contiguous arrays
    }
)


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list; nothing from it was called."""


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler whose `find_class` only returns allow-listed globals."""

    def find_class(self, module: str, name: str) -> Any:
        module, name = _MOVED.get((module, name), (module, name))
        if (module, name) not in ALLOWED:
            asked = ascii(f"{module}.{name}"[:120])  # the file chose this text: keep it to one plain line
            raise UnsafePickleError(f"the pickle asks for {asked}, which a sentimentkit model never contains")
        return super().find_class(module, name)


def safe_loads(blob: bytes) -> Any:
    """`pickle.loads` restricted to the allow-list; raises UnsafePickleError for anything else."""
    # fix_imports=False: no Python 2 renaming after the allow-list check (the checked name is the name used).
    return SafeUnpickler(io.BytesIO(blob), fix_imports=False).load()
