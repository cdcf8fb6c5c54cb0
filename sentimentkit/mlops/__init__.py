"""MLOps: the MLflow registry's write side (`registry`), logging and registering a model (`tracking`),
the prediction log (`predlog`), drift monitoring (`monitor`, `report`) and retraining (`retrain`).

MLflow is the `mlops` extra (`pip install -r requirements-mlops.txt`), imported only when a registry is
actually opened. `mlops` imports what it orchestrates (training, serving); nothing below imports it.
"""

# Names the CLI needs to build its parser without importing MLflow (or scikit-learn) up front.
TFIDF_MODEL = "sentimentkit-tfidf"
TRANSFORMER_MODEL = "sentimentkit-transformer"
MODEL_NAMES = (TFIDF_MODEL, TRANSFORMER_MODEL)
CHAMPION, CHALLENGER = "champion", "challenger"
