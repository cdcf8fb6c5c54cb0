"""MLOps: one storage layer (local paths or Azure Blob through fsspec) and the MLflow model registry.

Both need the `mlops` extra (`pip install -r requirements-mlops.txt`); nothing here is imported by
the rest of the package unless a remote URI or a `models:/` URI is actually used.
"""

# Names the CLI needs to build its parser without importing MLflow (or scikit-learn) up front.
TFIDF_MODEL = "sentimentkit-tfidf"
TRANSFORMER_MODEL = "sentimentkit-transformer"
MODEL_NAMES = (TFIDF_MODEL, TRANSFORMER_MODEL)
CHAMPION, CHALLENGER = "champion", "challenger"
