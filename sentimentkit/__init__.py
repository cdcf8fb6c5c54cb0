"""sentimentkit: three-class tweet sentiment (negative / neutral / positive).

Importing the package does no work: no model loading, no downloads, no folders created.
"""

__version__ = "1.0.0"

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")

__all__ = ["LABELS", "__version__"]
