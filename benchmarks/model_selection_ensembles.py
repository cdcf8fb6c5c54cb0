"""Round 3 of model selection: two ensembles of linear models against the single default LR.

Each model is fitted twice, like every candidate in `model_selection.py`: on the oldest 80% of train (scored on
the newest 20%, the temporal holdout that chooses) and on all of train (scored on validation, clean validation
and test, recorded only). Members share the default features and recency weights (beta 2, C 0.25); ensembles
average probabilities. Result table: `model_selection_history.md`, "Round 3".

    SENTIMENTKIT_DATA_DIR=../shared/data/semeval2017 python benchmarks/model_selection_ensembles.py
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from model_selection import fit_lr  # noqa: E402

from sentimentkit import LABELS  # noqa: E402
from sentimentkit.text.features import TweetVectorizer  # noqa: E402
from sentimentkit.training.evaluate import metrics  # noqa: E402
from sentimentkit.training.train import clean_validation, load_splits, temporal_split  # noqa: E402

C, BETA = 0.25, 2.0


def candidates(train: pd.DataFrame) -> tuple[TweetVectorizer, dict[str, Callable]]:
    """Fit every candidate on `train`; return the vectoriser and name -> (X -> probabilities)."""
    vec = TweetVectorizer(lexicons=("vader", "afinn"))
    X, y = vec.fit_transform(train["text"].tolist()), train["label"].to_numpy()
    nw, nc = vec.n_word_, vec.n_char_
    lex = np.arange(nw + nc, X.shape[1])
    word, char = np.concatenate([np.arange(nw), lex]), np.concatenate([np.arange(nw, nw + nc), lex])
    lr, nb = fit_lr(X, y, C, BETA, 0.0, vec), fit_lr(X, y, C, BETA, 0.5, vec)
    wlr, clr = fit_lr(X[:, word], y, C, BETA, 0.0, vec), fit_lr(X[:, char], y, C, BETA, 0.0, vec)
    models = {
        "default model (one LR)": lr.predict_proba,
        "NB-scaled LR alone (gamma 0.5)": nb.predict_proba,
        "ensemble LR + NB-scaled LR": lambda Z: (lr.predict_proba(Z) + nb.predict_proba(Z)) / 2,
        "word-side LR alone": lambda Z: wlr.predict_proba(Z[:, word]),
        "char-side LR alone": lambda Z: clr.predict_proba(Z[:, char]),
        "ensemble word-side LR + char-side LR": lambda Z: (wlr.predict_proba(Z[:, word]) + clr.predict_proba(Z[:, char])) / 2,
    }  # fmt: skip
    return vec, models


def avg_recall(vec: TweetVectorizer, proba: Callable, frame: pd.DataFrame) -> float:
    P = proba(vec.transform(frame["text"].tolist()))
    return round(metrics(frame["label"], np.asarray(LABELS)[P.argmax(axis=1)])["avg_recall"], 4)


def main() -> int:
    splits = load_splits()
    head, tail = temporal_split(splits["train"])
    scored = {
        "validation": splits["validation"],
        "validation_clean": clean_validation(splits),
        "test": splits["test"],
    }
    hvec, early = candidates(head)
    vec, full = candidates(splits["train"])
    for name in early:
        row = {"candidate": name, "holdout": avg_recall(hvec, early[name], tail)}
        row |= {split: avg_recall(vec, full[name], frame) for split, frame in scored.items()}
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
