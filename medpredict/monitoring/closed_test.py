"""Vergouwe's closed testing procedure: how far the new data support updating a model.

:func:`closed_test` fits recalibration in the large, logistic recalibration and model
revision (:mod:`medpredict.monitoring.updating`) on the new data and picks the least
extensive of them, or the original model, with likelihood-ratio tests that keep the
overall false-update rate near ``alpha`` (Vergouwe et al., Stat Med 2017;36:4529-4539).
Results hold only summary numbers and the chosen model, never patient data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scipy.stats import chi2

from medpredict.monitoring.binary import check_model, log_likelihood, log_odds, outcomes
from medpredict.monitoring.updating import (
    LogisticRecalibration,
    ModelRevision,
    RecalibrationInTheLarge,
)

ORIGINAL = "original"
RECALIBRATION_IN_THE_LARGE = "recalibration_in_the_large"
LOGISTIC_RECALIBRATION = "logistic_recalibration"
MODEL_REVISION = "model_revision"
_PLAIN = {
    ORIGINAL: "the original model",
    RECALIBRATION_IN_THE_LARGE: "recalibration in the large",
    LOGISTIC_RECALIBRATION: "logistic recalibration",
    MODEL_REVISION: "model revision",
}


@dataclass(frozen=True)
class LikelihoodRatioTest:
    """One likelihood-ratio test of a more extensive update against a less extensive one.

    ``statistic`` is twice the gain in log-likelihood on the new data, referred to a
    chi-squared distribution with ``df`` (the number of extra parameters) degrees of
    freedom.
    """

    larger: str
    smaller: str
    statistic: float
    df: int
    p_value: float
    significant: bool

    def describe(self) -> str:
        """The test in words, e.g. ``model revision vs the original model: LR 3.1 on 9 df,
        p = 0.96``."""
        p = "< 0.001" if self.p_value < 0.001 else f"= {self.p_value:.3f}"
        return (
            f"{_PLAIN[self.larger]} vs {_PLAIN[self.smaller]}: LR {self.statistic:.1f} "
            f"on {self.df} df, p {p}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields, as JSON-compatible values."""
        return asdict(self)


@dataclass(frozen=True)
class ClosedTestResult:
    """What :func:`closed_test` found and chose.

    Attributes
    ----------
    method : ``"original"``, ``"recalibration_in_the_large"``,
        ``"logistic_recalibration"`` or ``"model_revision"``.
    reason : one plain-language sentence with the tests that decided it.
    tests : the three tests, in the order of the procedure (revision vs original,
        vs recalibration in the large, vs logistic recalibration); all are computed,
        only those up to the first non-significant one decide.
    decisive : how many of ``tests`` the procedure used.
    log_likelihoods : log-likelihood of each candidate on the new data.
    parameters : parameters each candidate estimates on the new data (0 for the original).
    alpha : the level of every test.
    n, events : rows and events in the new data.
    model : the chosen model, fitted: the base itself when ``method`` is ``"original"``.
    """

    method: str
    reason: str
    tests: tuple[LikelihoodRatioTest, ...]
    decisive: int
    log_likelihoods: dict[str, float]
    parameters: dict[str, int]
    alpha: float
    n: int
    events: int
    model: Any

    def to_dict(self) -> dict[str, Any]:
        """Everything but the model, as JSON-compatible values."""
        return {
            "method": self.method,
            "reason": self.reason,
            "tests": [t.to_dict() for t in self.tests],
            "decisive": self.decisive,
            "log_likelihoods": dict(self.log_likelihoods),
            "parameters": dict(self.parameters),
            "alpha": self.alpha,
            "n": self.n,
            "events": self.events,
        }


def _lr_test(
    larger: str, smaller: str, loglik: dict[str, float], params: dict[str, int], alpha: float
) -> LikelihoodRatioTest:
    df = params[larger] - params[smaller]
    statistic = max(0.0, 2.0 * (loglik[larger] - loglik[smaller]))
    p_value = float(chi2.sf(statistic, df)) if df > 0 else 1.0
    return LikelihoodRatioTest(larger, smaller, statistic, df, p_value, p_value < alpha)


def closed_test(
    base: Any,
    X: Any,
    y: Any,
    alpha: float = 0.05,
    features: Sequence[Any] | None = None,
) -> ClosedTestResult:
    """Choose how far to update ``base`` with Vergouwe et al.'s closed testing procedure.

    On the new data ``X``, ``y`` four candidates are fitted, from the least to the most
    extensive: (0) the original model, nothing estimated; (1) recalibration in the
    large, 1 parameter; (2) logistic recalibration, 2 parameters; (3) model revision,
    ``k`` parameters (see :class:`~medpredict.monitoring.updating.ModelRevision`:
    ``p + 1`` for a logistic-regression pipeline with ``p`` features after
    preprocessing; for a non-linear base model, logistic regression on the base
    log-odds plus the numeric columns of ``X``).

    The order implemented, each test a likelihood-ratio test at level ``alpha`` of the
    most extensive candidate against a less extensive one (Vergouwe et al., Stat Med
    2017;36:4529-4539, section 2 and figure 1):

    1. revision vs original (``k`` df). Not significant: keep the original model.
    2. Otherwise revision vs recalibration in the large (``k - 1`` df). Not
       significant: recalibration in the large.
    3. Otherwise revision vs logistic recalibration (``k - 2`` df). Not significant:
       logistic recalibration; significant: model revision.

    Each candidate is tried only once every simpler candidate has been rejected, so
    the chance of choosing any update when the original model is right stays near
    ``alpha`` (the closed testing principle), instead of one chance per test. With few
    events the tests have little power and the original model tends to be kept; that
    is intended (an update estimated from too little data does more harm than good).

    Parameters
    ----------
    base : fitted binary classifier with ``predict_proba``.
    X, y : the new (recent or local) data; ``y`` as the base's class labels or 0/1.
    alpha : level of each test.
    features : revision features, passed to
        :class:`~medpredict.monitoring.updating.ModelRevision` (None: all).

    Returns
    -------
    ClosedTestResult
        Each test's statistic, df and p-value, the chosen method, a reason sentence and
        the chosen model, fitted on ``X``, ``y``.

    Examples
    --------
    A logistic regression fitted on 300 patients, tested on the other 269:

    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    >>> deployed = make_pipeline(StandardScaler(), LogisticRegression())
    >>> result = closed_test(deployed.fit(X[:300], y[:300]), X[300:], y[300:])
    >>> result.method in ("original", "recalibration_in_the_large",
    ...                   "logistic_recalibration", "model_revision")
    True
    >>> [t.df for t in result.tests]
    [31, 30, 29]
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    check_model(base)
    events = outcomes(base, X, y)
    candidates: dict[str, Any] = {
        RECALIBRATION_IN_THE_LARGE: RecalibrationInTheLarge(base).fit(X, y),
        LOGISTIC_RECALIBRATION: LogisticRecalibration(base).fit(X, y),
        MODEL_REVISION: ModelRevision(base, features=features).fit(X, y),
    }
    loglik = {ORIGINAL: log_likelihood(events, log_odds(base, X))}
    loglik.update({name: model.log_likelihood_ for name, model in candidates.items()})
    params = {ORIGINAL: 0}
    params.update({name: model.n_parameters_ for name, model in candidates.items()})
    order = (ORIGINAL, RECALIBRATION_IN_THE_LARGE, LOGISTIC_RECALIBRATION)
    tests = tuple(_lr_test(MODEL_REVISION, smaller, loglik, params, alpha) for smaller in order)
    method, decisive = MODEL_REVISION, len(tests)
    for step, test in enumerate(tests, start=1):
        if not test.significant:
            method, decisive = test.smaller, step
            break
    return ClosedTestResult(
        method=method,
        reason=_reason(method, tests, decisive),
        tests=tests,
        decisive=decisive,
        log_likelihoods=loglik,
        parameters=params,
        alpha=alpha,
        n=int(events.size),
        events=int(events.sum()),
        model=base if method == ORIGINAL else candidates[method],
    )


def _reason(method: str, tests: tuple[LikelihoodRatioTest, ...], decisive: int) -> str:
    """One sentence a clinician can check against the tests."""
    last = tests[decisive - 1].describe()
    if method == ORIGINAL:
        return (
            f"A model re-estimated on the new data does not fit them significantly better "
            f"than the original model ({last}), so the original model is kept unchanged."
        )
    earlier = "; ".join(t.describe() for t in tests[: decisive - 1])
    if method == RECALIBRATION_IN_THE_LARGE:
        return (
            f"The original model fits the new data worse than a revised one ({earlier}), "
            f"but a new intercept alone does as well as revision ({last}): the average risk "
            f"has shifted while the predictors' relative effects still hold."
        )
    if method == LOGISTIC_RECALIBRATION:
        return (
            f"Neither the original model nor a new intercept alone fits the new data as well "
            f"as revision ({earlier}), but a new intercept and calibration slope do ({last}): "
            f"risks need shifting and stretching or shrinking, the ranking of patients holds."
        )
    return (
        f"Revision fits the new data significantly better than every simpler update "
        f"({earlier}; {last}): the predictors' effects differ in the new data, so their "
        f"coefficients are re-estimated."
    )
