"""Model artifacts: the scikit-learn pipeline and its card (`pipeline`), safe loading, and the
reference baselines (`baselines`)."""
