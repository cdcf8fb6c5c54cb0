"""A model taught a user's domain: the base pipeline plus a small head fitted on their corrections.

The head (issue 22) is a multinomial logistic regression over the base model's centred logits and its
TF-IDF features: logits = M @ base_logits + V @ x + c. The 3 x 3 mixing matrix M lets it re-weigh and
re-bias the base model for the domain (its priors: Apple tweets are mostly neutral); V lets it learn
what the domain's words mean. The L2 penalties pull M towards the identity (lightly) and V towards zero,
i.e. towards the base model itself; `C` sets how far the corrections may pull it (fixed by
`training.domain.fit_domain_model`). Optional anchor rows (general texts whose targets are the base
model's own probabilities) keep the head from changing general sentiment the corrections do not
pay for.

Both blocks are linear in the base features, so the head folds exactly into one linear model over the
*same* features: coef = M @ W_base + V, intercept = M @ b_base + c (W_base/b_base the base weights
centred across classes). The result is an ordinary
`Pipeline(features=the base TweetVectorizer, clf=DomainAdapted)`: `Predictor` serves it with the same
fast path and exact explanations, and the API, CLI, worker processes and Spark need no change.
`DomainAdapted` is a LogisticRegression that also keeps the base weights, so an explanation can be
split exactly into the base model's part and the domain head's adjustment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from sentimentkit import LABELS
from sentimentkit.config import SEED
from sentimentkit.errors import LabelsError, ModelError

__all__ = [
    "DomainAdapted",
    "Head",
    "base_scores",
    "class_balanced_weights",
    "fit_head",
    "fit_head_on_features",
    "fold",
]

MIX_PENALTY = 0.01  # the mixing matrix's L2 pull towards the identity, relative to the TF-IDF weights
MAX_ITER = 2000


@dataclass
class Head:
    """The head fitted on corrections: logits = base centred logits @ mixing.T + X @ coef.T + intercept."""

    mixing: np.ndarray  # (classes, classes); the identity leaves the base model's scores as they are
    coef: np.ndarray  # (classes, features), zero for every feature no correction contains
    intercept: np.ndarray  # (classes,)
    n_iter: int

    def logits(self, scores: np.ndarray, X: sp.spmatrix) -> np.ndarray:
        return scores @ self.mixing.T + np.asarray(X @ self.coef.T) + self.intercept


class DomainAdapted(LogisticRegression):
    """The classifier step of a domain-adapted pipeline: `coef_`/`intercept_` are the folded model
    (base + head) that predicts; `base_coef_`/`base_intercept_` are the base model's own weights and
    `mixing_` the head's 3 x 3 matrix over the base's centred logits (for explanations and the card).

    Build one with `fit_head`; its own `fit` is LogisticRegression's (it would forget the base).
    """

    base_coef_: np.ndarray
    base_intercept_: np.ndarray
    mixing_: np.ndarray
    n_corrections_: int

    def adjustment(self) -> tuple[np.ndarray, np.ndarray]:
        """(coef, intercept) that the head adds to the base model's: folded minus base, both centred
        across classes (a shift common to all classes changes no probability)."""
        coef = self.coef_ - self.base_coef_
        intercept = self.intercept_ - self.base_intercept_
        return coef - coef.mean(axis=0), intercept - intercept.mean()


def _centred(clf: LogisticRegression) -> tuple[np.ndarray, np.ndarray]:
    """The base classifier's weights (float64) centred across classes: the logits they give differ
    from the raw ones by a per-row constant, so the probabilities are the same."""
    coef = np.asarray(clf.coef_, dtype=np.float64)
    intercept = np.asarray(clf.intercept_, dtype=np.float64)
    return coef - coef.mean(axis=0), intercept - intercept.mean()


def base_scores(base: Pipeline, X: sp.spmatrix) -> np.ndarray:
    """The base model's centred logits for feature rows `X` (from `base`'s own vectorizer)."""
    coef, intercept = _centred(base.named_steps["clf"])
    return np.asarray(X @ coef.T) + intercept


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def class_balanced_weights(labels: Sequence[str], groups: Sequence[object] | None = None) -> np.ndarray:
    """The weighting rule for corrections: each class weighs the same in total (AvgRec is macro recall)
    and, within a class, each group (a near-duplicate text: a re-post, a retweet) weighs as one text.

    Weights have mean 1 over the rows.
    """
    labels = np.asarray(labels, dtype=object)
    n = len(labels)
    if n == 0:
        return np.zeros(0)
    weights = np.ones(n)
    if groups is not None:
        keys = np.asarray([f"{lab}\x00{g}" for lab, g in zip(labels, groups)], dtype=object)
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        weights = 1.0 / counts[inverse]
    classes = np.unique(labels)
    for label in classes:
        mask = labels == label
        weights[mask] /= weights[mask].sum()
    return weights * n / weights.sum()


def fit_head_on_features(
    base: Pipeline,
    X: sp.spmatrix,
    labels: Sequence[str],
    C: float,
    sample_weight: np.ndarray | None = None,
    words: bool = True,
    anchor: sp.spmatrix | None = None,
    anchor_weight: float = 0.0,
) -> Head:
    """Fit the head on feature rows `X` (from `base`'s vectorizer) and their labels (each of `LABELS`
    must occur): minimise C * sum_i w_i * cross-entropy_i + |V|^2 / 2 + MIX_PENALTY * |M - I|^2 / 2,
    the L2 penalties pulling the model towards the base (M = I, V = 0 is the base model exactly).

    Only features that occur in the corrections can get a weight (an all-zero column's penalised weight
    is 0 at the optimum), so the fit runs on those columns: a few thousand instead of ~200k. With
    `words=False` only M and c are fitted (a recalibration of the base model: priors and temperature).

    `anchor` (feature rows of general texts, e.g. a sample of the base model's training tweets) with
    `anchor_weight` > 0 adds C * sum_j a * KL(base_j || head_j) over them, the anchor rows weighing
    `anchor_weight` times the corrections' total weight together: the head keeps the base model's
    answers on general text unless the corrections pay for the change.
    """
    present = sorted(set(labels))
    if present != sorted(LABELS):
        missing = ", ".join(sorted(set(LABELS) - set(present)))
        raise LabelsError(f"the corrections hold no {missing} example; label at least one of each class")
    X = sp.csr_matrix(X, dtype=np.float64)
    used = np.unique(X.indices) if words else np.zeros(0, dtype=np.int64)
    k, d = len(LABELS), len(used)
    Y = (np.asarray(labels, dtype=object)[:, None] == np.asarray(LABELS, dtype=object)[None, :]).astype(float)
    w = np.ones(len(Y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if anchor is not None and anchor.shape[0] and anchor_weight > 0:
        # general texts whose targets are the base model's own probabilities: the head may change
        # them only as far as the corrections pay for it (the SemEval guard's concern)
        A = sp.csr_matrix(anchor, dtype=np.float64)
        Y = np.vstack([Y, softmax(base_scores(base, A))])
        w = np.concatenate([w, np.full(A.shape[0], anchor_weight * w.sum() / A.shape[0])])
        X = sp.vstack([X, A], format="csr")
    Xu = X[:, used]
    scores = base_scores(base, X)
    eye = np.eye(k)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        M = theta[: k * k].reshape(k, k)
        V = theta[k * k : k * k + k * d].reshape(k, d)
        c = theta[k * k + k * d :]
        logits = scores @ M.T + np.asarray(Xu @ V.T) + c
        logits -= logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(logits).sum(axis=1, keepdims=True))
        log_p = logits - log_norm
        loss = -C * float((w * (Y * log_p).sum(axis=1)).sum())
        loss += 0.5 * float((V * V).sum()) + 0.5 * MIX_PENALTY * float(((M - eye) ** 2).sum())
        G = C * (np.exp(log_p) - Y) * w[:, None]
        grad_M = G.T @ scores + MIX_PENALTY * (M - eye)
        grad_V = np.asarray((Xu.T @ G).T) + V
        return loss, np.concatenate([grad_M.ravel(), grad_V.ravel(), G.sum(axis=0)])

    start = np.concatenate([eye.ravel(), np.zeros(k * d + k)])
    # One BLAS thread: L-BFGS-B's vector steps are small, and threads waiting on a busy machine made
    # the fit 20x slower (9 s instead of 0.4 s for 500 corrections on 2 shared cores).
    with threadpool_limits(limits=1, user_api="blas"):
        result = minimize(objective, start, jac=True, method="L-BFGS-B", options={"maxiter": MAX_ITER})
    theta = result.x
    coef = np.zeros((k, X.shape[1]))
    coef[:, used] = theta[k * k : k * k + k * d].reshape(k, d)
    return Head(theta[: k * k].reshape(k, k), coef, theta[k * k + k * d :], int(result.nit))


def fold(base: Pipeline, head: Head, C: float, n_corrections: int) -> Pipeline:
    """The one linear model equal to `head` over `base`'s scores and features (see the module doc)."""
    clf = base.named_steps["clf"]
    if list(clf.classes_) != list(LABELS):
        raise ModelError(f"the base model must predict {list(LABELS)}")
    base_coef, base_intercept = _centred(clf)
    out = DomainAdapted(C=C, max_iter=MAX_ITER, random_state=SEED)
    out.classes_ = np.array(clf.classes_, copy=True)
    out.coef_ = head.mixing @ base_coef + head.coef
    out.intercept_ = head.mixing @ base_intercept + head.intercept
    out.n_features_in_ = base_coef.shape[1]
    out.n_iter_ = np.asarray([head.n_iter], dtype=np.int32)
    out.base_coef_ = np.asarray(clf.coef_, dtype=np.float64).copy()
    out.base_intercept_ = np.asarray(clf.intercept_, dtype=np.float64).copy()
    out.mixing_ = head.mixing.copy()
    out.n_corrections_ = int(n_corrections)
    return Pipeline([("features", base.named_steps["features"]), ("clf", out)])


def fit_head(
    base: Pipeline,
    texts: Sequence[str],
    labels: Sequence[str],
    C: float,
    sample_weight: np.ndarray | None = None,
) -> Pipeline:
    """Fit the head on corrections (`texts`, `labels`) over `base` and fold it: a new pipeline sharing
    `base`'s vectorizer (which is not refitted: the features stay the base model's)."""
    X = base.named_steps["features"].transform(list(texts))
    head = fit_head_on_features(base, X, labels, C, sample_weight)
    return fold(base, head, C, len(texts))
