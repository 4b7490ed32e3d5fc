"""The cross-validation loop and the scoring of out-of-fold predictions.

:func:`cross_validate` fits a fresh clone of a model on each fold's training rows and
predicts its test rows; an error inside a fold becomes a :class:`FoldError` naming the
fold and the rows of the user's table. The study's candidates, its nested
cross-validation and the budgeted search's trials all run through it.
:func:`score_with_ci` scores predictions with bootstrap confidence intervals.

Examples
--------
>>> from sklearn.datasets import load_breast_cancer
>>> from sklearn.linear_model import LogisticRegression
>>> from medpredict.evaluation.splits import internal_folds
>>> X, y = load_breast_cancer(return_X_y=True, as_frame=True)
>>> folds = internal_folds(y.to_numpy(), None, n_splits=3, seed=0)
>>> run = cross_validate(LogisticRegression(max_iter=5000), X, y.to_numpy(), folds, 2)
>>> run.oof.shape, len(run.fitted)
((569, 2), 3)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from medpredict.cluster import fan_out
from medpredict.data.cohort import Cohort
from medpredict.data.errors import DataError, describe_rows
from medpredict.evaluation.bootstrap import Estimate, bootstrap_weighted
from medpredict.evaluation.metrics import (
    SEPARATION_UNDEFINED,
    multiclass_metrics,
    recalibration_fit,
    separates_perfectly,
)
from medpredict.evaluation.splits import Fold, in_table_rows
from medpredict.evaluation.weighted import BinaryScorer
from medpredict.models.ensembles import aligned_proba, fit_member, take_rows
from medpredict.spec import StudySpec, Validation
from medpredict.study.results import FoldError, NotMeaningful

CountsScorer = Callable[[np.ndarray | None], dict[str, float]]


@dataclass
class CrossValidation:
    """Out-of-fold probabilities, each fold's fitted model and the seconds spent fitting."""

    oof: np.ndarray
    fitted: list[Any]
    seconds: float


@dataclass
class _FoldFit:
    proba: np.ndarray
    model: Any
    seconds: float


def cross_validate(
    estimator: Any,
    X: Any,
    y: np.ndarray,
    folds: Sequence[Fold],
    n_classes: int,
    groups: np.ndarray | None = None,
    row_numbers: np.ndarray | None = None,
    before_fold: Callable[[int], None] = lambda k: None,
    on_fold: Callable[[], None] = lambda: None,
) -> CrossValidation:
    """Out-of-fold probabilities; each fold's model is fitted on its training rows only.

    Parameters
    ----------
    estimator : unfitted model (cloned for every fold).
    X : feature table (DataFrame or array).
    y : class index (0 .. ``n_classes`` - 1) of each row.
    folds : (train, test) row positions.
    n_classes : number of outcome classes; a class missing from a training fold gets
        probability 0.
    groups : patient id per row; models whose ``fit`` accepts ``groups`` (the
        ensembles' inner folds) get the training rows' ids, so no level of a nested
        model splits a patient.
    row_numbers : the table row of each row (default: 1-based positions), named by
        the :class:`FoldError` an error inside a fold becomes.
    before_fold : called with the fold's index before it is fitted (e.g. to stop on a
        deadline; what it raises propagates unchanged). On a cluster
        (:mod:`medpredict.cluster`) folds run side by side, so it is called as each
        fold is sent.
    on_fold : called after each fold.

    Raises
    ------
    FoldError
        The first fold that failed, naming the fold and the table rows.
    """
    run = cross_validate_each(
        {"model": estimator}, X, y, folds, n_classes, groups, row_numbers,
        before_fold=before_fold, on_fold=lambda name: on_fold(),
    )["model"]
    if isinstance(run, FoldError):
        raise run
    return run


def cross_validate_each(
    estimators: dict[str, Any],
    X: Any,
    y: np.ndarray,
    folds: Sequence[Fold],
    n_classes: int,
    groups: np.ndarray | None = None,
    row_numbers: np.ndarray | None = None,
    before_fold: Callable[[int], None] = lambda k: None,
    on_fold: Callable[[str], None] = lambda name: None,
    on_done: Callable[[str, CrossValidation | FoldError], None] = lambda name, run: None,
) -> dict[str, CrossValidation | FoldError]:
    """:func:`cross_validate` of every named estimator on the same folds.

    The candidate x fold fits are independent calls (:func:`medpredict.cluster.fan_out`):
    one after another here, side by side on a cluster, the data sent to each worker
    once. A candidate whose fold fails gets that fold's :class:`FoldError` instead of
    a :class:`CrossValidation` (here its remaining folds are skipped); the others go
    on. ``on_fold`` is called with the name after each of its folds and ``on_done``
    with the name and its outcome once that is known, in the order of ``estimators``.
    """
    rows = np.arange(1, len(y) + 1) if row_numbers is None else np.asarray(row_numbers)
    outcome: dict[str, CrossValidation | FoldError] = {}
    fits: dict[str, list[_FoldFit]] = {name: [] for name in estimators}

    def calls() -> Iterator[tuple[Any, ...]]:
        for name, estimator in estimators.items():
            for k, (train, test) in enumerate(folds):
                if name in outcome:
                    break
                before_fold(k)
                where = f"fold {k + 1} of {len(folds)}"
                yield name, estimator, X, y, train, test, n_classes, groups, rows, where

    def collect(result: tuple[str, _FoldFit | FoldError]) -> None:
        name, fit = result
        if name in outcome:
            return
        if isinstance(fit, FoldError):
            outcome[name] = fit
        else:
            fits[name].append(fit)
            on_fold(name)
            if len(fits[name]) < len(folds):
                return
            outcome[name] = _assembled(fits[name], folds, len(y), n_classes)
        on_done(name, outcome[name])

    fan_out(_fit_fold, calls(), on_result=collect)
    return {name: outcome[name] for name in estimators}


def _fit_fold(
    name: str,
    estimator: Any,
    X: Any,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    n_classes: int,
    groups: np.ndarray | None,
    rows: np.ndarray,
    where: str,
) -> tuple[str, _FoldFit | FoldError]:
    """One fold's fit and predictions; a failure is returned, so other folds go on."""
    model = clone(estimator)
    start = time.perf_counter()
    try:
        with table_rows(f"{where}, training", rows[train]):
            sub_groups = None if groups is None else groups[train]
            fit_member(model, take_rows(X, train), y[train], sub_groups)
        seconds = time.perf_counter() - start
        with table_rows(f"{where}, predicting", rows[test]):
            proba = aligned_proba(model, take_rows(X, test), np.arange(n_classes))
    except FoldError as err:
        return name, err
    return name, _FoldFit(proba, model, seconds)


def _assembled(
    fits: list[_FoldFit], folds: Sequence[Fold], n_rows: int, n_classes: int
) -> CrossValidation:
    oof = np.full((n_rows, n_classes), np.nan)
    for fit, (_, test) in zip(fits, folds, strict=True):
        oof[test] = fit.proba
    return CrossValidation(oof, [fit.model for fit in fits], sum(fit.seconds for fit in fits))


@contextmanager
def table_rows(where: str, row_numbers: np.ndarray) -> Iterator[None]:
    """Re-raise an error as :class:`FoldError` naming ``where`` and the table rows.

    Examples
    --------
    >>> try:
    ...     with table_rows("fold 1 of 5, training", np.array([78, 90])):
    ...         raise ValueError("no value in row 2")
    ... except FoldError as err:
    ...     print(err, err.rows)
    fold 1 of 5, training: ValueError: no value in table row 90 [90]
    """
    try:
        yield
    except FoldError:
        raise
    except Exception as err:
        message, rows = in_table_rows(str(err), row_numbers)
        raise FoldError(f"{where}: {type(err).__name__}: {message}", rows) from err


def cohort_rows(cohort: Cohort, rows: np.ndarray) -> Cohort:
    """The cohort restricted to ``rows`` (positions), keeping each row's table row number."""

    def take(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, pd.DataFrame | pd.Series):
            return value.iloc[rows].reset_index(drop=True)
        return value[rows]

    return Cohort(
        X=take(cohort.X),
        y=cohort.y[rows],
        classes=cohort.classes,
        schema=cohort.schema,
        quality=cohort.quality,
        groups=take(cohort.groups),
        times=take(cohort.times),
        sites=take(cohort.sites),
        sensitive=take(cohort.sensitive),
        row_numbers=cohort.row_numbers[rows],
    )


def fixed_split(
    values: np.ndarray | pd.Series,
    validation: Validation,
    groups: np.ndarray | None = None,
    row_numbers: np.ndarray | None = None,
) -> tuple[Fold, np.ndarray]:
    """The fixed scheme's fold (train rows, validation rows) and its test rows.

    Parameters
    ----------
    values : each row's value of ``validation.split_column``.
    validation : the spec's validation block (split column and value names).
    groups : patient id per row; a patient's rows must all be in one split.
    row_numbers : the table row of each row (default: 1-based positions), named by errors.

    Raises
    ------
    DataError
        Naming the rows whose value is missing or not a split name, the patients whose
        rows are in more than one split, or the split (train, validation) left empty.

    Examples
    --------
    >>> from medpredict.spec import Validation
    >>> scheme = Validation(scheme="fixed", split_column="split")
    >>> (train, val), test = fixed_split(np.array(["train", "test", "validation", "train"]),
    ...                                  scheme)
    >>> train.tolist(), val.tolist(), test.tolist()
    ([0, 3], [2], [1])
    >>> fixed_split(np.array(["train", "val"]), scheme)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: validation.split_column 'split': row 2 has a value
    other than 'train', 'validation' or 'test' ('val')
    """
    rows = np.arange(1, len(values) + 1) if row_numbers is None else np.asarray(row_numbers)
    where = f"validation.split_column {validation.split_column!r}"
    names = (validation.train_value, validation.validation_value, validation.test_value)
    labels = pd.Series(values).reset_index(drop=True)
    missing = labels.isna().to_numpy()
    text = labels.astype(str).to_numpy()
    unknown = ~missing & ~np.isin(text, names)
    if missing.any():
        raise DataError(f"{where}: {describe_rows(rows[missing].tolist())} have no split value")
    if unknown.any():
        found = ", ".join(repr(v) for v in dict.fromkeys(text[unknown].tolist()))
        expected = ", ".join(repr(n) for n in names[:2]) + f" or {names[2]!r}"
        bad = rows[unknown].tolist()
        verb = "has" if len(bad) == 1 else "have"
        raise DataError(
            f"{where}: {describe_rows(bad)} {verb} a value other than {expected} ({found})"
        )
    if groups is not None:
        _check_patients_in_one_split(text, np.asarray(groups), where)
    train, held, test = (np.flatnonzero(text == name) for name in names)
    for name, part in ((names[0], train), (names[1], held)):
        if part.size == 0:
            raise DataError(f"{where}: no rows have the value {name!r}")
    return (train, held), test


def _check_patients_in_one_split(splits: np.ndarray, groups: np.ndarray, where: str) -> None:
    frame = pd.DataFrame({"patient": groups, "split": splits})
    per_patient = frame.groupby("patient", sort=True)["split"].unique()
    crossing = per_patient[per_patient.map(len) > 1]
    if len(crossing):
        listed = "; ".join(
            f"{patient!r} ({', '.join(sorted(parts))})" for patient, parts in crossing[:10].items()
        )
        more = f" and {len(crossing) - 10} more" if len(crossing) > 10 else ""
        raise DataError(
            f"{where}: patient(s) {listed}{more} have rows in more than one split; keep each "
            "patient's rows in a single split so no patient is both trained on and validated"
        )


def scored_rows(folds: Sequence[Fold], n_rows: int) -> np.ndarray | None:
    """Rows that some fold predicts; None when every row is (cross-validation).

    Examples
    --------
    >>> scored_rows([(np.array([0, 1]), np.array([2]))], 3).tolist()
    [2]
    >>> scored_rows([(np.array([0]), np.array([1])), (np.array([1]), np.array([0]))], 2)
    """
    rows = np.unique(np.concatenate([np.asarray(test) for _, test in folds]))
    return None if rows.size == n_rows else rows


def development_size(folds: Sequence[Fold]) -> int:
    """How many rows the folds split: the development rows the final model is refitted on.

    Examples
    --------
    >>> development_size([(np.array([0, 3]), np.array([1]))])
    3
    """
    return int(np.unique(np.concatenate([np.r_[train, test] for train, test in folds])).size)


def scored_cohort(cohort: Cohort, rows: np.ndarray | None) -> Cohort:
    """The cohort's rows that out-of-fold predictions exist for (None: all of it)."""
    return cohort if rows is None else cohort_rows(cohort, rows)


def on_rows(run: CrossValidation, rows: np.ndarray | None) -> CrossValidation:
    """``run`` with its out-of-fold predictions kept for ``rows`` only (None: all)."""
    return run if rows is None else CrossValidation(run.oof[rows], run.fitted, run.seconds)


def score_with_ci(
    spec: StudySpec,
    y: np.ndarray,
    proba: np.ndarray,
    thresholds: dict[str, float | np.ndarray] | None = None,
    groups: np.ndarray | None = None,
) -> dict[str, Estimate]:
    """Bootstrap CIs for every metric (patient-clustered when ``groups`` is given).

    Rows are ordered by risk first; binary metrics score each resample as row counts
    on those ordered rows (:class:`BinaryScorer`), which keeps large tables fast. A
    threshold may be one risk or one risk per row (see :func:`counts_scorer`).
    """
    order = np.argsort(-proba[:, -1], kind="stable")
    ordered = {
        k: v if np.ndim(v) == 0 else np.asarray(v)[order] for k, v in (thresholds or {}).items()
    }
    scorer = counts_scorer(spec, y[order], proba[order], ordered)
    groups = None if groups is None else groups[order]
    return bootstrap_weighted(
        scorer, y[order], n_boot=spec.bootstrap, seed=spec.seed, groups=groups
    )


def counts_scorer(
    spec: StudySpec,
    y: np.ndarray,
    proba: np.ndarray,
    thresholds: dict[str, float | np.ndarray] | None = None,
) -> CountsScorer:
    """Every metric of ``proba`` for bootstrap row counts (all rows once for None).

    A threshold may be one risk or one risk per row (operating points chosen inside
    each outer fold of a nested cross-validation).

    Examples
    --------
    >>> from medpredict.spec import parse_spec
    >>> spec = parse_spec({"name": "d", "data": {"dataset": "pima_tr"}, "target": "type"})
    >>> y, p = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    >>> proba = np.c_[1 - p, p]
    >>> score = counts_scorer(spec, y, proba, {"risk 0.3": np.array([0.3, 0.3, 0.5, 0.5])})
    >>> score(None)["sensitivity@risk 0.3"], score(None)["specificity@risk 0.3"]
    (0.5, 0.5)
    """
    if spec.task != "binary":
        rows = np.arange(len(y))

        def multiclass(counts: np.ndarray | None) -> dict[str, float]:
            idx = rows if counts is None else np.repeat(rows, counts)
            return multiclass_metrics(y[idx], proba[idx])

        return multiclass
    risk = proba[:, 1]
    return BinaryScorer(y, risk, thresholds, recalibration_fit(y, risk))


def selection_scorer(
    spec: StudySpec, y: np.ndarray, proba: np.ndarray
) -> Callable[[np.ndarray | None], float]:
    """The spec's selection metric of ``proba`` for bootstrap row counts (None: all rows)."""
    metric = spec.selection_metric
    if spec.task == "binary":
        score = BinaryScorer(y, proba[:, 1])
        if metric in ("auroc", "auprc"):
            return lambda counts: score.ranking(counts)[metric]
        return lambda counts: score(counts)[metric]
    multiclass = counts_scorer(spec, y, proba)
    return lambda counts: multiclass(counts)[metric]


def mark_separation(
    metrics: dict[str, Estimate], y: np.ndarray, proba: np.ndarray, kept_leaky: list[str]
) -> dict[str, Estimate]:
    """Replace the calibration metrics perfect separation makes meaningless."""
    if proba.shape[1] != 2:
        return metrics
    if separates_perfectly(y, proba[:, 1]):
        reason = "the predictions separate the classes perfectly"
    elif kept_leaky:
        reason = f"kept leaky column(s) {', '.join(kept_leaky)}"
    else:
        return metrics
    nan = float("nan")
    return {
        k: NotMeaningful(nan, nan, nan, reason) if k in SEPARATION_UNDEFINED else v
        for k, v in metrics.items()
    }
