"""A survival study: time-to-event candidates validated, selected, refitted and saved.

:func:`run_survival_study` is what ``medpredict run`` does for ``task: survival``. It
reads and checks the table like every study (:func:`~medpredict.data.cohort.build_cohort`:
features, patients, sites, leakage) and the outcome (:mod:`~medpredict.survival.outcome`:
follow-up times, event codes, horizons), partitions it (k-fold stratified by event and
grouped by patient, temporal, or by site), fits every candidate with the standard
preprocessing inside each training fold (candidate x fold fits fan out on a cluster),
scores the out-of-fold survival curves with bootstrap CIs
(:mod:`~medpredict.survival.scoring`), selects by the spec's metric, calibrates the
lower bound on each patient's time to the event on the selected model's out-of-fold
curves (:mod:`~medpredict.survival.conformal`), refits on all development rows, scores
the temporal and external hold-outs (with the bound's coverage), and writes the model
directory, ``metrics.json`` and the report (:mod:`~medpredict.survival.outputs`).

Examples
--------
>>> from medpredict.spec import parse_spec
>>> spec = parse_spec({"name": "doc-survival", "data": {"dataset": "lung"},
...     "target": "status", "task": "survival", "positive_class": 2,
...     "survival": {"duration_column": "time", "censored_value": 1, "horizons": [365]},
...     "models": ["cox"], "bootstrap": 20, "output_dir": "/tmp/medpredict-doc-survival"})
>>> result = run_survival_study(spec, quiet=True, save=False)
>>> 0.55 < result.best.metrics["harrell_c"].value < 0.75
True
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from medpredict.cluster import fan_out, on_cluster
from medpredict.data.checks import check_horizons
from medpredict.data.cohort import Cohort, build_cohort, build_external, load_table
from medpredict.data.errors import DataError, DataWarning
from medpredict.data.loading import frame_sha256, read_table
from medpredict.encoders.tabular import standard_pipeline
from medpredict.evaluation.bootstrap import Estimate
from medpredict.evaluation.splits import Fold, internal_folds, site_folds, temporal_split
from medpredict.models.registry import check_model_names, make_model
from medpredict.progress import StudyProgress
from medpredict.spec import StudySpec
from medpredict.study.candidates import announce
from medpredict.study.results import CandidateFailure, FoldError
from medpredict.study.validation import cohort_rows, table_rows
from medpredict.survival.conformal import (
    LowerBound,
    bound_times,
    calibrate_lower_bound,
    cross_fitted_lower_bounds,
    lower_bound_coverage,
    lower_bounds,
)
from medpredict.survival.explain import horizon_attributions
from medpredict.survival.models import survival_curves
from medpredict.survival.outcome import SurvivalOutcome, survival_outcome
from medpredict.survival.outputs import write_outputs
from medpredict.survival.results import SurvivalCandidate, SurvivalHoldout, SurvivalStudyResult
from medpredict.survival.scoring import (
    SurvivalPredictions,
    evaluation_times,
    score_candidates,
    score_predictions,
)
from medpredict.trust.explanations import Attribution, make_background


def _outcome_of(frame: pd.DataFrame, cohort: Cohort, spec: StudySpec) -> SurvivalOutcome:
    """The outcome of the cohort's rows (rows without an event code were excluded)."""
    return survival_outcome(frame.iloc[cohort.row_numbers - 1], spec)


def _partition(
    spec: StudySpec, cohort: Cohort, outcome: SurvivalOutcome
) -> tuple[np.ndarray, list[Fold], np.ndarray | None]:
    """Development rows, their folds, and the temporal hold-out rows (if any)."""
    scheme = spec.validation.scheme
    development = np.arange(len(outcome))
    later = None
    if scheme == "temporal":
        development, later = temporal_split(
            cohort.times, spec.validation.temporal_cutoff, spec.validation.temporal_fraction
        )
    y = cohort.y[development]
    groups = None if cohort.groups is None else cohort.groups[development]
    if scheme == "site":
        folds = site_folds(y, cohort.sites.iloc[development].reset_index(drop=True))
    else:
        folds = internal_folds(y, groups, spec.validation.folds, spec.seed)
    return development, folds, later


def _fit_fold(
    name: str, estimator: Any, X: pd.DataFrame, y: np.ndarray, train: np.ndarray,
    test: np.ndarray, times: np.ndarray, rows: np.ndarray, where: str,
) -> tuple[str, Any]:
    """One fold's curves and fit seconds; a failure is returned so the other candidates go
    on. The fold's model is not returned: only its predictions are needed."""
    model = clone(estimator)
    start = time.perf_counter()
    try:
        with table_rows(f"{where}, training", rows[train]):
            model.fit(X.iloc[train], y[train])
        seconds = time.perf_counter() - start
        with table_rows(f"{where}, predicting", rows[test]):
            curves = survival_curves(model, X.iloc[test], times)
    except FoldError as err:
        return name, err
    return name, (curves, seconds)


def _cross_validate(
    spec: StudySpec, cohort: Cohort, outcome: SurvivalOutcome, folds: list[Fold],
    times: np.ndarray, progress: StudyProgress,
) -> tuple[dict[str, tuple[Any, np.ndarray, float]], list[CandidateFailure]]:
    """Out-of-fold curves of every candidate (fits fanned out candidate x fold)."""
    y = outcome.structured()
    estimators = {
        m.name: standard_pipeline(
            cohort.schema,
            make_model(m.name, seed=spec.seed, n_samples=len(y), **m.params),
            spec.seed,
        )
        for m in spec.model_specs
    }
    task = progress.stage("cross-validating survival models", total=len(estimators) * len(folds))
    curves = {name: np.full((len(y), times.size), np.nan) for name in estimators}
    seconds = dict.fromkeys(estimators, 0.0)
    failed: dict[str, FoldError] = {}

    def calls():
        for name, estimator in estimators.items():
            for k, (train, test) in enumerate(folds):
                where = f"{name}, fold {k + 1} of {len(folds)}"
                yield name, estimator, cohort.X, y, train, test, times, cohort.row_numbers, where

    def collect(result: tuple[str, Any]) -> None:
        name, fit = result
        progress.advance(task)
        if isinstance(fit, FoldError):
            failed.setdefault(name, fit)
        else:
            fits[name].append(fit)

    fits: dict[str, list[Any]] = {name: [] for name in estimators}
    fan_out(_fit_fold, calls(), on_result=collect)
    for name in estimators:
        if name in failed:
            continue
        for (_, test), (fold_curves, fold_seconds) in zip(folds, fits[name], strict=True):
            curves[name][test] = fold_curves
            seconds[name] += fold_seconds
    failures = [CandidateFailure(name, str(err), err.rows) for name, err in failed.items()]
    done = {name: (estimators[name], curves[name], seconds[name])
            for name in estimators if name not in failed}
    return done, failures


def _score_holdout(
    kind: str, cohort: Cohort, outcome: SurvivalOutcome, model: Any, spec: StudySpec,
    bound: LowerBound,
) -> SurvivalHoldout:
    horizons = spec.survival.horizons
    times = evaluation_times(outcome.time, outcome.event, horizons)
    served = bound_times(model, horizons)
    try:
        curves = survival_curves(model, cohort.X, times)
        served_curves = survival_curves(model, cohort.X, served)
    except DataError as err:
        raise DataError(f"{kind} validation: {err}") from err
    predictions = SurvivalPredictions(times, curves)
    metrics = score_predictions(predictions, outcome.time, outcome.event, horizons,
                                cohort.groups, spec.bootstrap, spec.seed)
    # the bounds as medpredict predict gives them: the model's own time grid
    bounds = lower_bounds(served_curves, served, bound.quantile)
    coverage = lower_bound_coverage(bounds, outcome.time, outcome.event, cohort.groups,
                                    spec.bootstrap, spec.seed)
    return SurvivalHoldout(kind, cohort, outcome, predictions, metrics, bounds, coverage)


def _calibrate_bound(
    spec: StudySpec, development: Cohort, outcome: SurvivalOutcome, folds: list[Fold],
    predictions: SurvivalPredictions,
) -> tuple[LowerBound, np.ndarray, Estimate]:
    """The lower bound calibrated on all out-of-fold curves, and the cross-fitted bounds
    of the development rows (each fold calibrated on the others) with their coverage."""
    level = spec.survival.lower_bound_level
    bound = calibrate_lower_bound(predictions, outcome.time, outcome.event, level)
    crossed = cross_fitted_lower_bounds(predictions, outcome.time, outcome.event, folds, level)
    coverage = lower_bound_coverage(crossed, outcome.time, outcome.event, development.groups,
                                    spec.bootstrap, spec.seed)
    return bound, crossed, coverage


EXPLAINED_ROWS = 12  # model-agnostic (kernel) SHAP on a survival model is costly
EXACT_COLUMNS = 8  # beyond this many columns the coalitions are sampled


def _explanations(
    spec: StudySpec, development: Cohort, model: Any
) -> tuple[pd.DataFrame, Attribution | None]:
    """The stored background, and attributions of development rows' risk by the first
    horizon (for the report's ranking of what drives the risk)."""
    background = make_background(development.X, spec.trust.explain_background, spec.seed)
    rows = development.X.sample(min(EXPLAINED_ROWS, spec.trust.explain_rows,
                                    len(development.X)), random_state=spec.seed)
    n_samples = "auto" if rows.shape[1] <= EXACT_COLUMNS else 256
    try:
        explanation = horizon_attributions(model, rows, background.head(20),
                                           spec.survival.horizons[0], n_samples)
    except (ValueError, TypeError) as error:
        warnings.warn(f"explanations unavailable for this model: {error}", DataWarning,
                      stacklevel=2)
        explanation = None
    return background, explanation


def _external(spec: StudySpec, development: Cohort) -> tuple[Cohort, SurvivalOutcome]:
    frame = read_table(spec.validation.external)
    external = build_external(frame, spec, development)
    return external, _outcome_of(frame, external, spec)


def run_survival_study(
    spec: StudySpec, quiet: bool = False, save: bool = True
) -> SurvivalStudyResult:
    """Run the survival study described by ``spec``; see the module docstring."""
    started = time.perf_counter()
    check_model_names([m.name for m in spec.model_specs], survival=True)
    with on_cluster(spec.cluster):
        result = _run(spec, quiet)
    result.seconds = time.perf_counter() - started
    if save:
        write_outputs(result)
    return result


def _run(spec: StudySpec, quiet: bool) -> SurvivalStudyResult:
    frame = load_table(spec)
    cohort = build_cohort(frame, spec)
    outcome = _outcome_of(frame, cohort, spec)
    horizons = spec.survival.horizons
    development_rows, folds, later = _partition(spec, cohort, outcome)
    development = cohort_rows(cohort, development_rows)
    dev_outcome = outcome.rows(development_rows)
    check_horizons(horizons, dev_outcome.time, dev_outcome.event, spec.survival.time_unit)
    times = evaluation_times(dev_outcome.time, dev_outcome.event, horizons)

    with StudyProgress(quiet=quiet) as progress:
        fitted, failures = _cross_validate(spec, development, dev_outcome, folds, times,
                                           progress)
        for failure in failures:
            announce(failure)
        if not fitted:
            listed = "; ".join(f"{f.name}: {f.reason}" for f in failures)
            raise DataError(f"study {spec.name!r}: no survival model could be evaluated "
                            f"({listed})")
        progress.stage("bootstrapping every candidate on the same resamples", total=None)
        predictions = {name: SurvivalPredictions(times, curves)
                       for name, (_, curves, _) in fitted.items()}
        best, metrics, deltas = score_candidates(
            predictions, dev_outcome.time, dev_outcome.event, horizons, spec.selection_metric,
            development.groups, spec.bootstrap, spec.seed,
        )
        candidates = {
            name: SurvivalCandidate(name, estimator, predictions[name], metrics[name], seconds,
                                    deltas.get(name, {}))
            for name, (estimator, _, seconds) in fitted.items()
        }
        progress.stage(f"calibrating the {spec.survival.lower_bound_level:g} lower bound "
                       "on the time to event", total=None)
        bound, crossed, coverage = _calibrate_bound(spec, development, dev_outcome, folds,
                                                    predictions[best])
        progress.stage(f"refitting {best} on all development data", total=None)
        final_model = clone(candidates[best].estimator).fit(development.X,
                                                            dev_outcome.structured())
        progress.stage(f"explaining the risk by {horizons[0]:g} {spec.survival.time_unit}",
                       total=None)
        background, explanation = _explanations(spec, development, final_model)
        holdouts = []
        if later is not None:
            holdouts.append(_score_holdout("temporal", cohort_rows(cohort, later),
                                           outcome.rows(later), final_model, spec, bound))
        if spec.validation.external is not None:
            external, external_outcome = _external(spec, cohort)
            holdouts.append(_score_holdout("external", external, external_outcome,
                                           final_model, spec, bound))
    return SurvivalStudyResult(
        spec=spec, cohort=development, outcome=dev_outcome, folds=folds,
        candidates=candidates, best_name=best, final_model=final_model, holdouts=holdouts,
        failures=failures, data_sha256=frame_sha256(frame), background=background,
        explanation=explanation, lower_bound=bound, lower_bounds=crossed,
        lower_bound_coverage=coverage,
    )
