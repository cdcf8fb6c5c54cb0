"""Cross-check sentimentkit's CBPE arithmetic against NannyML 0.13.1 on NannyML's synthetic multiclass data.

NannyML is not a dependency (it pulls lightgbm, FLAML, plotly, s3fs, gcsfs and a telemetry client, and
needs statsmodels without declaring it): run this in a throwaway venv with `pip install nannyml
statsmodels` and PYTHONPATH=the checkout. NannyML's own calibration is switched off so the same
probabilities go into both. Result: benchmarks/performance_estimate.md.
"""

from __future__ import annotations

import os

os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"  # no telemetry calls

import nannyml as nml  # noqa: E402
import nannyml.performance_estimation.confidence_based.cbpe as cbpe_module  # noqa: E402

from sentimentkit.training.calibrate import confusion_scores, expected_confusion  # noqa: E402

CLASSES = ["highstreet_card", "prepaid_card", "upmarket_card"]  # NannyML sorts class names
COLUMNS = {c: f"y_pred_proba_{c}" for c in CLASSES}


def main() -> None:
    reference, analysis, _ = nml.load_synthetic_multiclass_classification_dataset()
    cbpe_module.needs_calibration = lambda *a, **k: False  # compare the arithmetic on the raw probabilities
    estimator = nml.CBPE(y_pred_proba=COLUMNS, y_pred="y_pred", y_true="y_true", chunk_size=6000,
                         problem_type="classification_multiclass", metrics=["recall", "accuracy"])  # fmt: skip
    estimator.fit(reference)
    frame = estimator.estimate(analysis).filter(period="analysis").to_df()
    worst = 0.0
    for i, row in frame.iterrows():
        chunk = analysis.iloc[int(row[("chunk", "start_index")]) : int(row[("chunk", "end_index")]) + 1]
        proba = chunk[[COLUMNS[c] for c in CLASSES]].to_numpy()
        predicted = chunk["y_pred"].map({c: k for k, c in enumerate(CLASSES)}).to_numpy()
        ours = confusion_scores(expected_confusion(proba, predicted), CLASSES)
        theirs = (row[("recall", "value")], row[("accuracy", "value")])
        worst = max(worst, abs(ours["avg_recall"] - theirs[0]), abs(ours["accuracy"] - theirs[1]))
        if i < 3 or i == len(frame) - 1:
            print(f"chunk {row[('chunk', 'key')]}: NannyML recall {theirs[0]:.6f} accuracy {theirs[1]:.6f} | "
                  f"sentimentkit {ours['avg_recall']:.6f} {ours['accuracy']:.6f}")  # fmt: skip
    print(f"{len(frame)} chunks, largest difference {worst:.1e}")


if __name__ == "__main__":
    main()
