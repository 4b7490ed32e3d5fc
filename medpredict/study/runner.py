"""The study runner: one flow from a spec to validated, reported, saved models.

``run_study`` loads and checks the data, cross-validates every candidate model with
its preprocessing fitted inside each training fold, scores out-of-fold predictions
with bootstrap confidence intervals, selects a model by the spec's metric, refits it
on all development data, validates it on any temporal or external hold-out, and
writes the model directory, ``metrics.json`` and a self-contained HTML report.

Examples
--------
>>> from medpredict.spec import parse_spec
>>> spec = parse_spec({"name": "doc", "data": {"dataset": "pima_tr"}, "target": "type",
...     "positive_class": "Yes", "models": ["logistic_regression"], "bootstrap": 50,
...     "output_dir": "/tmp/medpredict-doc"})
>>> result = run_study(spec, quiet=True)
>>> round(result.best.metrics["auroc"].value, 2) > 0.75
True
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin, clone

from medpredict.data.cohort import Cohort, build_cohort, build_external, load_table
from medpredict.data.errors import DataError
from medpredict.data.loading import frame_sha256, read_table
from medpredict.encoders.tabular import build_preprocessor, standard_pipeline
from medpredict.evaluation.bootstrap import Estimate, bootstrap, bootstrap_weighted
from medpredict.evaluation.metrics import (
    HIGHER_IS_BETTER,
    SEPARATION_UNDEFINED,
    multiclass_metrics,
    recalibration_fit,
    separates_perfectly,
    threshold_for_sensitivity,
    threshold_for_specificity,
)
from medpredict.evaluation.splits import (
    Fold,
    in_table_rows,
    internal_folds,
    site_folds,
    temporal_boundary,
    temporal_split,
)
from medpredict.evaluation.weighted import BinaryScorer
from medpredict.models.ensembles import fit_member
from medpredict.models.registry import check_model_names, make_model, takes_raw_input
from medpredict.progress import StudyProgress
from medpredict.spec import ModelSpec, StudySpec
from medpredict.study.outputs import assess_trust, write_outputs, write_progress
from medpredict.study.results import (
    CandidateFailure,
    CandidateResult,
    CandidatesFailedError,
    CandidateWarning,
    FoldError,
    HoldoutResult,
    NotMeaningful,
    StudyResult,
)


def build_pipeline(cohort: Cohort, model: ModelSpec, spec: StudySpec) -> ClassifierMixin:
    """Preprocessing + model, or the model alone when it takes raw features."""
    class_weight = None if spec.class_weight == "none" else spec.class_weight
    estimator = make_model(
        model.name,
        seed=spec.seed,
        class_weight=class_weight,
        n_samples=len(cohort.y),
        **model.params,
    )
    if takes_raw_input(model.name):
        return estimator
    return standard_pipeline(cohort.schema, estimator, spec.seed)


def operating_thresholds(spec: StudySpec, y: np.ndarray, risk: np.ndarray) -> dict[str, float]:
    """Turn the spec's operating points into risk thresholds on development predictions."""
    out = {}
    for t in spec.thresholds:
        if t.risk is not None:
            out[t.label] = t.risk
        elif t.sensitivity is not None:
            out[t.label] = threshold_for_sensitivity(y, risk, t.sensitivity)
        else:
            out[t.label] = threshold_for_specificity(y, risk, t.specificity)
    return out


def _subset(cohort: Cohort, rows: np.ndarray) -> Cohort:
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


def cross_validate(
    pipeline: ClassifierMixin,
    cohort: Cohort,
    folds: list[Fold],
    n_classes: int,
    on_fold: Callable[[], None] = lambda: None,
) -> tuple[np.ndarray, list[Any], float]:
    """Out-of-fold probabilities; each fold's pipeline is fitted on its training rows only.

    Models whose ``fit`` accepts ``groups`` (the ensembles' inner folds) get the training
    rows' patient ids, so no level of a nested model splits a patient.
    """
    oof = np.full((len(cohort.y), n_classes), np.nan)
    fitted, seconds = [], 0.0
    for k, (train, test) in enumerate(folds):
        estimator = clone(pipeline)
        start = time.perf_counter()
        groups = None if cohort.groups is None else cohort.groups[train]
        where = f"fold {k + 1} of {len(folds)}"
        with _table_rows(f"{where}, training", cohort.row_numbers[train]):
            fit_member(estimator, cohort.X.iloc[train], cohort.y[train], groups)
        seconds += time.perf_counter() - start
        with _table_rows(f"{where}, predicting", cohort.row_numbers[test]):
            oof[test] = estimator.predict_proba(cohort.X.iloc[test])
        fitted.append(estimator)
        on_fold()
    return oof, fitted, seconds


@contextmanager
def _table_rows(where: str, row_numbers: np.ndarray) -> Iterator[None]:
    """Re-raise an error as :class:`FoldError` naming ``where`` and the table rows."""
    try:
        yield
    except FoldError:
        raise
    except Exception as err:
        message, rows = in_table_rows(str(err), row_numbers)
        raise FoldError(f"{where}: {type(err).__name__}: {message}", rows) from err


def score_with_ci(
    spec: StudySpec,
    y: np.ndarray,
    proba: np.ndarray,
    thresholds: dict[str, float] | None = None,
    groups: np.ndarray | None = None,
) -> dict[str, Estimate]:
    """Bootstrap CIs for every metric.

    Rows are ordered by risk first; binary metrics score each resample as row counts
    on those ordered rows (:class:`BinaryScorer`), which keeps large tables fast.
    """
    order = np.argsort(-proba[:, -1], kind="stable")
    y, proba = y[order], proba[order]
    groups = None if groups is None else groups[order]
    if spec.task != "binary":
        return bootstrap(
            multiclass_metrics, y, proba, n_boot=spec.bootstrap, seed=spec.seed, groups=groups
        )
    scorer = BinaryScorer(y, proba[:, 1], thresholds, recalibration_fit(y, proba[:, 1]))
    return bootstrap_weighted(scorer, y, n_boot=spec.bootstrap, seed=spec.seed, groups=groups)


def _ranked(candidates: dict[str, CandidateResult], metric: str) -> list[str]:
    """Candidate names, best first by ``metric``."""
    sign = 1 if HIGHER_IS_BETTER.get(metric, True) else -1
    return sorted(candidates, key=lambda n: -sign * candidates[n].metrics[metric].value)


def _paired_deltas(
    spec: StudySpec,
    development: Cohort,
    candidates: dict[str, CandidateResult],
    best: str,
) -> None:
    """Bootstrap CI of (best - candidate) on the selection metric, same resamples."""
    metric = spec.selection_metric
    if spec.task == "binary":

        def scorer(proba: np.ndarray) -> Callable[[np.ndarray | None], float]:
            score = BinaryScorer(development.y, proba[:, 1])
            if metric in ("auroc", "auprc"):
                return lambda counts: score.ranking(counts)[metric]
            return lambda counts: score(counts)[metric]
    else:

        def scorer(proba: np.ndarray) -> Callable[[np.ndarray | None], float]:
            rows = np.arange(len(development.y))

            def score(counts: np.ndarray | None) -> float:
                idx = rows if counts is None else np.repeat(rows, counts)
                return multiclass_metrics(development.y[idx], proba[idx])[metric]

            return score

    best_score = scorer(candidates[best].oof_proba)
    others = {name: scorer(c.oof_proba) for name, c in candidates.items() if name != best}

    def deltas(counts: np.ndarray | None) -> dict[str, float]:
        reference = best_score(counts)
        return {name: reference - score(counts) for name, score in others.items()}

    estimates = bootstrap_weighted(
        deltas, development.y, n_boot=spec.bootstrap, seed=spec.seed, groups=development.groups
    )
    for name, estimate in estimates.items():
        candidates[name].delta_vs_best = estimate


def _partition(cohort: Cohort, spec: StudySpec) -> tuple[Cohort, list[Fold], Cohort | None]:
    temporal = None
    development = cohort
    if spec.validation.scheme == "temporal":
        dev_rows, later_rows = temporal_split(
            cohort.times, spec.validation.temporal_cutoff, spec.validation.temporal_fraction
        )
        development, temporal = _subset(cohort, dev_rows), _subset(cohort, later_rows)
    if spec.validation.scheme == "site":
        folds = site_folds(development.y, development.sites)
    else:
        folds = internal_folds(development.y, development.groups, spec.validation.folds, spec.seed)
    return development, folds, temporal


def _resolve_cutoff(spec: StudySpec, cohort: Cohort) -> StudySpec:
    """The spec with the temporal cut-off actually used written into it."""
    if spec.validation.scheme != "temporal":
        return spec
    v = spec.validation
    boundary = temporal_boundary(cohort.times, v.temporal_cutoff, v.temporal_fraction)
    validation = v.model_copy(update={"temporal_cutoff": boundary.isoformat()})
    return spec.model_copy(update={"validation": validation})


def temporal_summary(
    spec: StudySpec, development: Cohort, temporal: Cohort | None
) -> dict[str, Any] | None:
    """The temporal cut-off and each side's date range and row count."""
    if temporal is None:
        return None

    def side(cohort: Cohort) -> dict[str, Any]:
        return {
            "rows": len(cohort.y),
            "first": cohort.times.min().isoformat(),
            "last": cohort.times.max().isoformat(),
        }

    return {
        "cutoff": spec.validation.temporal_cutoff,
        "development": side(development),
        "temporal": side(temporal),
    }


def _check_leaky_columns(spec: StudySpec, cohort: Cohort) -> list[str]:
    """Stop on likely leakage the spec does not keep; the kept leaky columns."""
    refused = {
        name: value
        for name, value in cohort.quality.leaky_columns.items()
        if name not in spec.keep_leaky_columns
    }
    if refused:
        listed = ", ".join(f"{name!r} (AUROC {value:.3f})" for name, value in refused.items())
        names = ", ".join(refused)
        raise DataError(
            f"likely leakage: column(s) {listed} alone predict the target {spec.target!r}; "
            "a value recorded after, or derived from, the outcome would make every result "
            f"meaningless. Remove it (exclude: [{names}]) or, if it is a genuine predictor, "
            f"keep it deliberately with keep_leaky_columns: [{names}]"
        )
    return list(cohort.quality.leaky_columns)


def _mark_separation(
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


def _score_holdout(
    kind: str,
    holdout: Cohort,
    final_model: Any,
    spec: StudySpec,
    thresholds: dict[str, float],
    kept_leaky: list[str],
) -> HoldoutResult:
    try:
        proba = final_model.predict_proba(holdout.X)
    except DataError as err:
        message, _ = in_table_rows(str(err), holdout.row_numbers)
        raise DataError(f"{kind} validation: {message}") from err
    metrics = score_with_ci(spec, holdout.y, proba, thresholds, holdout.groups)
    metrics = _mark_separation(metrics, holdout.y, proba, kept_leaky)
    return HoldoutResult(kind=kind, cohort=holdout, proba=proba, metrics=metrics)


def _scored(
    spec: StudySpec,
    development: Cohort,
    name: str,
    estimator: Any,
    oof: np.ndarray,
    seconds: float,
    fitted: list[Any],
    kept_leaky: list[str],
) -> CandidateResult:
    thresholds = (
        operating_thresholds(spec, development.y, oof[:, 1]) if spec.task == "binary" else {}
    )
    metrics = score_with_ci(spec, development.y, oof, thresholds, development.groups)
    metrics = _mark_separation(metrics, development.y, oof, kept_leaky)
    return CandidateResult(name, estimator, oof, metrics, thresholds, seconds, fitted)


def _searched_candidates(
    spec: StudySpec, development: Cohort, folds: list[Fold], quiet: bool, kept_leaky: list[str]
) -> tuple[dict[str, CandidateResult], list[CandidateFailure], Any]:
    """Budgeted hyperparameter search; each candidate keeps its best trial."""
    from medpredict.study.search import SearchFailedError, search

    try:
        searched = search(
            [m.name for m in spec.model_specs],
            development.X,
            development.y,
            groups=development.groups,
            cv=folds,
            budget=spec.budget,
            metric=spec.selection_metric,
            seed=spec.seed,
            class_weight=None if spec.class_weight == "none" else spec.class_weight,
            preprocessor=build_preprocessor(development.schema, spec.seed),
            n_boot=min(spec.bootstrap, 500),
            quiet=quiet,
            row_numbers=development.row_numbers,
        )
    except SearchFailedError as err:
        raise _all_failed(spec, [_searched_failure(f) for f in err.failures]) from None
    failures = [_searched_failure(f) for f in searched.failures]
    candidates = {
        row.name: _scored(
            spec,
            development,
            row.name,
            searched._build(row.name, row.params),
            row.oof_proba,
            row.seconds,
            [],
            kept_leaky,
        )
        for row in searched.leaderboard
    }
    return candidates, failures, searched


def _searched_failure(failure: CandidateFailure) -> CandidateFailure:
    return _announced(CandidateFailure(failure.name, f"search: {failure.reason}", failure.rows))


def _failure(name: str, err: Exception, stage: str) -> CandidateFailure:
    """The failure of candidate ``name`` at ``stage``, announced."""
    rows = err.rows if isinstance(err, FoldError) else []
    reason = str(err) if isinstance(err, FoldError) else f"{type(err).__name__}: {err}"
    return _announced(CandidateFailure(name, f"{stage}: {reason}", rows))


def _announced(failure: CandidateFailure) -> CandidateFailure:
    warnings.warn(
        f"candidate {failure.name} failed and was left out ({failure.reason})",
        CandidateWarning,
        stacklevel=4,
    )
    return failure


def _cross_validated_candidates(
    spec: StudySpec,
    development: Cohort,
    folds: list[Fold],
    progress: StudyProgress,
    kept_leaky: list[str],
    on_candidate: Callable[[dict[str, CandidateResult], list[CandidateFailure]], None],
) -> tuple[dict[str, CandidateResult], list[CandidateFailure]]:
    """Every candidate's out-of-fold results; one that fails is recorded, not fatal."""
    candidates: dict[str, CandidateResult] = {}
    failures: list[CandidateFailure] = []
    n_classes = len(development.classes)
    for model in spec.model_specs:
        try:
            pipeline = build_pipeline(development, model, spec)
            task = progress.stage(f"cross-validating {model.name}", total=len(folds))
            oof, fitted, seconds = cross_validate(
                pipeline, development, folds, n_classes, on_fold=lambda t=task: progress.advance(t)
            )
            progress.stage(f"bootstrapping {model.name}", total=None)
            candidates[model.name] = _scored(
                spec, development, model.name, pipeline, oof, seconds, fitted, kept_leaky
            )
        except Exception as err:  # reported with the others' results
            failures.append(_failure(model.name, err, "cross-validation"))
        on_candidate(candidates, failures)
    return candidates, failures


def _refit_best(
    spec: StudySpec,
    development: Cohort,
    candidates: dict[str, CandidateResult],
    failures: list[CandidateFailure],
    progress: StudyProgress,
) -> tuple[str, Any]:
    """Refit the best candidate on all development data, the next one if that fails."""
    for name in _ranked(candidates, spec.selection_metric):
        progress.stage(f"refitting {name} on all development data", total=None)
        try:
            with _table_rows("all development data", development.row_numbers):
                model = clone(candidates[name].estimator)
                return name, fit_member(model, development.X, development.y, development.groups)
        except Exception as err:  # the next-best candidate is tried
            failures.append(_failure(name, err, "refit"))
    raise _all_failed(spec, failures)


def _all_failed(spec: StudySpec, failures: list[CandidateFailure]) -> CandidatesFailedError:
    listed = "; ".join(f"{f.name}: {f.reason}" for f in failures)
    return CandidatesFailedError(
        f"study {spec.name!r}: no candidate model could be evaluated ({listed})"
    )


def run_study(spec: StudySpec, quiet: bool = False, save: bool = True) -> StudyResult:
    """Run the whole study described by ``spec``; see the module docstring.

    A candidate that fails is left out with a :class:`CandidateWarning` and listed in
    ``StudyResult.failures`` (and the report); the study selects among the others and
    raises :class:`CandidatesFailedError` only when every candidate failed.
    """
    started = time.perf_counter()
    check_model_names([m.name for m in spec.model_specs])
    frame = load_table(spec)
    cohort = build_cohort(frame, spec)
    kept_leaky = _check_leaky_columns(spec, cohort)
    spec = _resolve_cutoff(spec, cohort)
    development, folds, temporal = _partition(cohort, spec)

    def record(candidates: dict[str, CandidateResult], failures: list[CandidateFailure]) -> None:
        if save:
            write_progress(spec, candidates, failures)

    searched = None
    with StudyProgress(quiet=quiet) as progress:
        if spec.budget:
            candidates, failures, searched = _searched_candidates(
                spec, development, folds, quiet, kept_leaky
            )
        else:
            candidates, failures = _cross_validated_candidates(
                spec, development, folds, progress, kept_leaky, record
            )
        if not candidates:
            raise _all_failed(spec, failures)
        best, final_model = _refit_best(spec, development, candidates, failures, progress)
        _paired_deltas(spec, development, candidates, best)

        holdouts = []
        thresholds = candidates[best].thresholds
        if temporal is not None:
            holdouts.append(
                _score_holdout("temporal", temporal, final_model, spec, thresholds, kept_leaky)
            )
        if spec.validation.external is not None:
            external = build_external(read_table(spec.validation.external), spec, cohort)
            holdouts.append(
                _score_holdout("external", external, final_model, spec, thresholds, kept_leaky)
            )

    result = StudyResult(
        spec=spec,
        cohort=development,
        folds=folds,
        candidates=candidates,
        best_name=best,
        final_model=final_model,
        holdouts=holdouts,
        data_sha256=frame_sha256(frame),
        seconds=0.0,
        search=searched,
        failures=failures,
        temporal=temporal_summary(spec, development, temporal),
    )
    with StudyProgress(quiet=quiet) as progress:
        progress.stage("explanations, fairness, conformal sets, model card", total=None)
        result.trust = assess_trust(result)
    result.seconds = time.perf_counter() - started
    if save:
        write_outputs(result)
    return result
