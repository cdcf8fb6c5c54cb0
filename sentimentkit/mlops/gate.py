"""The retrain gate's rule as data (`Gate`): light enough for the CLI to take its defaults when it
builds its parser (no pandas, no scikit-learn); `mlops.retrain.decide` applies it."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from sentimentkit.errors import OptionError

__all__ = ["CLASS_METRICS", "DOMAIN_RULES", "JUDGES", "Gate"]

JUDGES = ("cv", "holdout")
CLASS_METRICS = ("f1", "recall")
DOMAIN_RULES = ("interval", "tolerance")


@dataclass(frozen=True)
class Gate:
    """The promotion rule (README: "Registry, monitoring and retraining"; `check` says what is valid)."""

    metric: str = "avg_recall"  # SemEval-2017's primary metric (macro recall)
    margin: float = 0.002  # on the judged corrections the challenger must beat the champion by this
    # and no class's `class_metric` there may fall by more than this (absolute). F1, not recall: a model
    # that stops over-predicting a class loses some of its recall while the class gets better (on Apple
    # tweets the base calls many neutral tweets positive; the domain head trades 6-15 points of positive
    # recall for 10-31 of positive precision), and recall alone is already in AvgRec.
    max_class_drop: float = 0.02
    class_metric: str = "f1"
    holdout_share: float = 0.2  # of each batch, the slice judge "holdout" (and refit) judges on
    guard_tolerance: float = 0.03  # the most AvgRec the challenger may lose on SemEval validation
    min_heldout: int = 10  # judged corrections needed to decide (holdout: 100 corrections hold out ~20)
    # A class's drop is judged only with this many judged rows of it: below 1 / (the class limit)
    # rows, one text moves its score by more than the limit, so the rule would only measure chance.
    min_class_rows: int = 50
    # How the domain is judged (`JUDGES`). "cv" (with the domain learner): the recipe's out-of-fold answers
    # on every correction the champion was not fitted on, `folds`-fold; "holdout": the held-out slices only.
    judge: str = "cv"
    folds: int = 5
    # With judge "cv" the domain rule is non-inferiority (`DOMAIN_RULES`): "interval" keeps the champion
    # only when the whole 95% paired interval of the challenger's cross-validated AvgRec gain lies below
    # 0 (the corrections show it worse); "tolerance": when the gain's point estimate is more than
    # `domain_tolerance` below 0. Both chosen on development splits (benchmarks/gate_bias_dev.md,
    # sections 2 and 6). With "holdout" the challenger must be better by `margin`.
    domain_rule: str = "interval"
    domain_tolerance: float = 0.03
    # ... and no class's `class_metric` there may fall by more than this (`max_class_drop` is the limit with
    # "holdout"); chosen the same way (benchmarks/gate_bias_dev.py, "class_limits"). Under "interval" a
    # class keeps the champion only when the whole 95% interval of its drop lies above this limit.
    class_tolerance: float = 0.05

    def by_interval(self, non_inferior: bool) -> bool:
        """Whether the domain and class rules go by interval: the cross-validated (non-inferiority)
        gate with `domain_rule` "interval"."""
        return non_inferior and self.domain_rule == "interval"

    def check(self) -> Gate:
        """This gate, or OptionError (one line, naming the CLI option) for a value no run could use:
        `retrain` and `watch` check before they read anything."""
        options = {"margin": "--margin", "max_class_drop": "--max-class-drop", "guard_tolerance": "--guard-tolerance",
                   "domain_tolerance": "--domain-tolerance", "class_tolerance": "--class-tolerance",
                   "holdout_share": "--holdout-share"}  # fmt: skip
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise OptionError(f"{options.get(field.name, field.name)} must be a number, not {value}")
        for name in ("max_class_drop", "guard_tolerance", "domain_tolerance", "class_tolerance"):
            if getattr(self, name) < 0:
                raise OptionError(f"{options[name]} must be 0 or more, not {getattr(self, name)}")
        if not 0 <= self.holdout_share < 1:
            raise OptionError(f"--holdout-share must be at least 0 and below 1, not {self.holdout_share}")
        if self.judge not in JUDGES:
            raise OptionError(f"unknown judge {self.judge!r}: choose one of {', '.join(JUDGES)}")
        if self.domain_rule not in DOMAIN_RULES:
            raise OptionError(
                f"unknown domain rule {self.domain_rule!r}: choose one of {', '.join(DOMAIN_RULES)}"
            )
        if self.domain_rule == "interval" and self.domain_tolerance != Gate.domain_tolerance:
            raise OptionError(
                "--domain-tolerance applies with --domain-rule tolerance; the default rule (interval) has no "
                "tolerance: add --domain-rule tolerance or leave --domain-tolerance out"
            )
        if self.class_metric not in CLASS_METRICS:
            raise OptionError(
                f"unknown class metric {self.class_metric!r}: choose one of {', '.join(CLASS_METRICS)}"
            )
        if self.judge == "cv" and self.folds < 2:
            raise OptionError(f"--folds: the gate needs at least 2 folds to cross-validate, not {self.folds}")
        return self
