"""Feedback: people correcting the model for their own domain (issue 22, design "Round 3").

`review` chooses which predictions a person should label first (`select_for_review`: balanced,
the default `DEFAULT_STRATEGY`; representative, diverse, uncertain, random), as pure functions over texts and
probabilities. `store` keeps corrections as labelled
batches in the folder `retrain --incoming` reads (one new file per write; `read_feedback` applies the
rules: the same text and label count once, the latest label wins). `formats` reads and writes the files
of labelling tools (Label Studio, Argilla) and spreadsheets; `queue` builds the review queue from the
prediction log; `commands` is the command line (`feedback add`, `review`). The package sits on the
`mlops` floor, above `serving` and `training` (it may use what they offer) and below the front ends
(`api`, `ui`, `cli`) that use it; nothing below it imports it.
"""

# Names the CLI needs to build its parser without importing pandas (kept here, used by formats/queue).
FORMATS: tuple[str, ...] = ("csv", "label-studio", "argilla")
QUEUE_STRATEGIES: tuple[str, ...] = (
    "balanced",
    "representative",
    "diverse",
    "uncertain",
    "disagree",
    "random",
    "frequent",
)
# The one default review strategy (CLI `review`, the app's Review tab, `select_for_review`,
# `review_queue`): chosen on development splits of the Apple tweets (benchmarks/gate_bias_dev.md).
DEFAULT_STRATEGY = "balanced"
