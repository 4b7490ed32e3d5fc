"""Nested cross-validation: how well the whole study procedure does on unseen patients.

The selected model's cross-validated estimate is the best of several candidates'
scores on the same folds, so it is optimistic (the winner's curse). Nested
cross-validation repeats the procedure inside each of the study's folds (the outer
folds, which follow the validation scheme). On the outer-training rows only, every
candidate is cross-validated on inner folds (stratified, grouped by patient), or the
budgeted search runs there with the study's budget; the best candidate is chosen by
the spec's selection metric, its operating thresholds are fixed on its inner
out-of-fold predictions, and it is refitted on the outer-training rows to predict the
outer-test rows. The pooled outer-test predictions are scored like any other (bootstrap
CIs, clustered by patient), and the optimism of each metric is the selected model's
estimate minus the nested one, with a paired bootstrap CI. Calibration done by a model
itself (e.g. a calibrated wrapper) is part of its fit, so it happens inside each fold.

``validation.nested: auto`` runs it when the estimated time fits the allowance
``max(60 s, 2 x T)``, T being the measured wall time of the study's model comparison
(every candidate's cross-validation and scoring, or the search). Each outer fold fits
all C candidates on J inner folds of its training rows and refits one: J x C + 1 fits
where the study made C. Taking each fit as costly as one of the study's (many models
spend about as long on fewer rows), the estimate is ``T x (J + 1/C)``; with a search it
is ``K x T`` for K outer folds, since each outer fold searches for the full budget.
``true`` always runs it, ``false`` never.

Examples
--------
>>> from medpredict.spec import parse_spec
>>> spec = parse_spec({"name": "doc", "data": {"dataset": "pima_tr"}, "target": "type",
...     "positive_class": "Yes"})
>>> plan = plan_nested(spec, n_outer=5, comparison_seconds=15.0, n_candidates=5)
>>> plan.run, round(plan.estimated_seconds), plan.allowance_seconds
(True, 48, 60.0)
>>> plan_nested(spec, n_outer=5, comparison_seconds=30.0, n_candidates=5).run
False
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from medpredict.data.cohort import Cohort
from medpredict.data.errors import DataError
from medpredict.evaluation.bootstrap import Estimate, bootstrap_weighted
from medpredict.evaluation.splits import Fold, internal_folds
from medpredict.progress import StudyProgress
from medpredict.spec import StudySpec
from medpredict.study.candidates import (
    all_failed,
    cross_validated_candidates,
    operating_thresholds,
    ranked,
    refit_best,
    searched_candidates,
)
from medpredict.study.results import (
    CandidateFailure,
    CandidateResult,
    NestedFold,
    NestedPlan,
    NestedResult,
    NotMeaningful,
)
from medpredict.study.validation import (
    CrossValidation,
    cohort_rows,
    counts_scorer,
    mark_separation,
    score_with_ci,
    selection_scorer,
)

MIN_ALLOWANCE_SECONDS = 60.0


def inner_fold_count(spec: StudySpec) -> int:
    """``validation.inner_folds``, by default the smaller of ``validation.folds`` and 3."""
    return spec.validation.inner_folds or min(spec.validation.folds, 3)


def plan_nested(
    spec: StudySpec, n_outer: int, comparison_seconds: float, n_candidates: int
) -> NestedPlan:
    """Whether nested cross-validation runs, by ``validation.nested`` and the time rule.

    ``comparison_seconds`` is the measured wall time of the model comparison (or the
    search) over ``n_outer`` folds; the rule is in the module docstring.
    """
    setting = spec.validation.nested
    if setting is False:
        return NestedPlan(False, "validation.nested is false")
    inner = inner_fold_count(spec)
    measured = f"{comparison_seconds:.0f} s"
    if spec.budget:
        estimate = n_outer * comparison_seconds
        how = f"{n_outer} outer folds x the {measured} search"
    else:
        estimate = comparison_seconds * (inner + 1 / max(n_candidates, 1))
        how = f"{inner} inner folds of {n_candidates} candidate(s) in each of {n_outer} outer folds"
    allowance = max(MIN_ALLOWANCE_SECONDS, 2 * comparison_seconds)
    if setting is True:
        return NestedPlan(
            True, f"validation.nested is true (estimated {estimate:.0f} s)", estimate, allowance
        )
    fits = estimate <= allowance
    reason = (
        f"estimated {estimate:.0f} s ({how}) {'fits' if fits else 'exceeds'} the allowance "
        f"of {allowance:.0f} s (the larger of 60 s and twice the {measured} model comparison)"
    )
    if not fits:
        reason += "; set validation.nested: true to run it anyway"
    return NestedPlan(fits, reason, estimate, allowance)


@dataclass
class _Inner:
    """A candidate's inner cross-validation: its estimator, predictions and score."""

    estimator: Any
    oof: np.ndarray
    score: float


def nested_cross_validate(
    spec: StudySpec,
    development: Cohort,
    folds: list[Fold],
    selected: CandidateResult,
    progress: StudyProgress | None = None,
    kept_leaky: list[str] | None = None,
) -> NestedResult:
    """The whole procedure's performance on ``folds``, compared with ``selected``'s.

    Parameters
    ----------
    spec : the study spec (candidates, selection metric, thresholds, budget, seed).
    development : the development cohort the study's folds split.
    folds : the study's folds, used as the outer folds.
    selected : the selected candidate's cross-validated result on the same folds.
    progress : the study's progress display (default: none shown).
    kept_leaky : kept leaky columns, which make calibration metrics not meaningful.

    Raises
    ------
    CandidatesFailedError
        When every candidate fails inside an outer fold (a single failing candidate is
        recorded in ``NestedResult.failures`` and the others compete).
    DataError
        When an outer-training part is too small for the inner folds.

    Examples
    --------
    >>> from medpredict.data.cohort import build_cohort, load_table
    >>> from medpredict.evaluation.splits import internal_folds
    >>> from medpredict.spec import parse_spec
    >>> from medpredict.study.candidates import candidate_result
    >>> from medpredict.study.validation import CrossValidation
    >>> spec = parse_spec({"name": "doc", "data": {"dataset": "pima_tr"}, "target": "type",
    ...     "positive_class": "Yes", "models": ["logistic_regression", "svm"],
    ...     "bootstrap": 50})
    >>> cohort = build_cohort(load_table(spec), spec)
    >>> folds = internal_folds(cohort.y, None, 5, 0)
    >>> oof = np.zeros((len(cohort.y), 2)); oof[:, 1] = cohort.X["glu"] / 200
    >>> glucose = candidate_result(spec, cohort, "glu", None, CrossValidation(oof, [], 0), [])
    >>> nested = nested_cross_validate(spec, cohort, folds, glucose)
    >>> len(nested.folds), 0.7 < nested.metrics["auroc"].value < 0.9
    (5, True)
    """
    started = time.perf_counter()
    progress = progress or StudyProgress(quiet=True)
    n_inner = inner_fold_count(spec)
    n_rows, n_classes = len(development.y), len(development.classes)
    proba = np.full((n_rows, n_classes), np.nan)
    labels = [t.label for t in spec.thresholds] if spec.task == "binary" else []
    row_thresholds = {label: np.full(n_rows, np.nan) for label in labels}
    outer: list[NestedFold] = []
    failures: list[CandidateFailure] = []
    for k, (_, test) in enumerate(folds):
        fold, proba[test] = _outer_fold(spec, development, folds, k, n_inner, progress, failures)
        outer.append(fold)
        for label in labels:
            row_thresholds[label][test] = fold.thresholds[label]
    y, groups = development.y, development.groups
    metrics = score_with_ci(spec, y, proba, row_thresholds, groups)
    metrics = mark_separation(metrics, y, proba, kept_leaky or [])
    optimism = _optimism(spec, development, selected, proba, row_thresholds, metrics)
    seconds = time.perf_counter() - started
    return NestedResult(metrics, optimism, outer, proba, n_inner, seconds, failures)


def _outer_fold(
    spec: StudySpec,
    development: Cohort,
    folds: list[Fold],
    k: int,
    n_inner: int,
    progress: StudyProgress,
    failures: list[CandidateFailure],
) -> tuple[NestedFold, np.ndarray]:
    """The procedure on outer fold ``k``: select on its training rows, predict its test rows."""
    where = f"nested cross-validation, outer fold {k + 1} of {len(folds)}"
    train = cohort_rows(development, folds[k][0])
    test = cohort_rows(development, folds[k][1])
    inner = _inner_folds(train, n_inner, spec.seed, where)

    def score(name: str, estimator: Any, run: CrossValidation) -> _Inner:
        return _Inner(estimator, run.oof, selection_scorer(spec, train.y, run.oof)(None))

    if spec.budget:
        candidates, inner_failures, _ = searched_candidates(
            spec, train, inner, score, progress, n_boot=0
        )
    else:
        task = progress.stage(
            f"{where}: cross-validating the candidates",
            total=len(spec.model_specs) * len(inner),
        )
        candidates, inner_failures = cross_validated_candidates(
            spec, train, inner, score, on_start=lambda name, n: lambda: progress.advance(task)
        )
    fold_failures = [
        CandidateFailure(f.name, f"{where}: {f.reason}", f.rows) for f in inner_failures
    ]
    if not candidates:
        raise all_failed(spec, fold_failures, f", {where}")
    order = ranked({name: c.score for name, c in candidates.items()}, spec.selection_metric)
    estimators = {name: c.estimator for name, c in candidates.items()}
    winner, _, test_proba = refit_best(
        spec, train, order, estimators, fold_failures, f"{where}, outer-training rows", test
    )
    failures.extend(fold_failures)
    thresholds = (
        operating_thresholds(spec, train.y, candidates[winner].oof[:, 1])
        if spec.task == "binary"
        else {}
    )
    has_every_class = np.unique(test.y).size == len(development.classes)
    test_score = (
        selection_scorer(spec, test.y, test_proba)(None) if has_every_class else float("nan")
    )
    fold = NestedFold(k + 1, winner, candidates[winner].score, test_score, len(test.y), thresholds)
    return fold, test_proba


def _inner_folds(train: Cohort, n_inner: int, seed: int, where: str) -> list[Fold]:
    smallest = int(np.bincount(train.y, minlength=len(train.classes)).min())
    if smallest < n_inner:
        raise DataError(
            f"{where}: the outer-training rows hold {smallest} row(s) of the rarest outcome "
            f"class, fewer than the {n_inner} inner folds; lower validation.inner_folds or "
            "set validation.nested: false"
        )
    return internal_folds(train.y, train.groups, n_inner, seed)


def _optimism(
    spec: StudySpec,
    development: Cohort,
    selected: CandidateResult,
    proba: np.ndarray,
    row_thresholds: dict[str, np.ndarray],
    nested_metrics: dict[str, Estimate],
) -> dict[str, Estimate]:
    """Selected minus nested estimate per metric, with a paired bootstrap CI."""
    y = development.y
    apparent = counts_scorer(spec, y, selected.oof_proba, selected.thresholds)
    nested = counts_scorer(spec, y, proba, dict(row_thresholds))

    def deltas(counts: np.ndarray | None) -> dict[str, float]:
        a, b = apparent(counts), nested(counts)
        return {k: a[k] - b[k] for k in a if k in b}

    estimates = bootstrap_weighted(
        deltas, y, n_boot=spec.bootstrap, seed=spec.seed, groups=development.groups
    )
    nan = float("nan")
    out = {}
    for name, estimate in estimates.items():
        sides = (selected.metrics.get(name), nested_metrics.get(name))
        reasons = [side.reason for side in sides if isinstance(side, NotMeaningful)]
        out[name] = NotMeaningful(nan, nan, nan, reasons[0]) if reasons else estimate
    return out
