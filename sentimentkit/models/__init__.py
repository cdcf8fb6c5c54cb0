"""Model artifacts: the scikit-learn pipeline and its card (`pipeline`), safe loading, the reference
baselines (`baselines`), and `fetch` (a `models:/` registry URI -> a verified local copy)."""
