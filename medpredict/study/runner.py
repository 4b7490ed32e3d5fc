"""The study runner: one flow from a spec to validated, reported, saved models.

``run_study`` loads and checks the data, cross-validates every candidate model with
its preprocessing fitted inside each training fold (:mod:`~medpredict.study.candidates`),
scores out-of-fold predictions with bootstrap confidence intervals, selects a model by
the spec's metric, refits it on all development data, estimates the whole procedure by
nested cross-validation when it fits the time allowance (:mod:`~medpredict.study.nested`),
validates the model on any temporal or external hold-out, and writes the model
directory, ``metrics.json`` and a self-contained HTML report.

Examples
--------
>>> from medpredict.spec import parse_spec
>>> spec = parse_spec({"name": "doc", "data": {"dataset": "pima_tr"}, "target": "type",
...     "positive_class": "Yes", "models": ["logistic_regression"], "bootstrap": 50,
...     "output_dir": "/tmp/medpredict-doc"})
>>> result = run_study(spec, quiet=True)
>>> round(result.best.metrics["auroc"].value, 2) > 0.75, result.nested.folds[0].winner
(True, 'logistic_regression')
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from medpredict.cluster import on_cluster
from medpredict.data.checks import check_columns_present
from medpredict.data.cohort import Cohort, build_cohort, build_external, load_table
from medpredict.data.errors import DataError
from medpredict.data.loading import frame_sha256, read_table
from medpredict.evaluation.splits import (
    Fold,
    assert_patient_disjoint,
    in_table_rows,
    internal_folds,
    leave_one_patient_out,
    site_folds,
    temporal_boundary,
    temporal_split,
)
from medpredict.models.registry import check_model_names
from medpredict.optional import require
from medpredict.progress import StudyProgress
from medpredict.spec import StudySpec
from medpredict.study.candidates import (
    all_failed,
    announce,
    candidate_result,
    cross_validated_candidates,
    paired_deltas,
    ranked,
    refit_best,
    searched_candidates,
)
from medpredict.study.nested import nested_cross_validate, plan_nested
from medpredict.study.outputs import assess_trust, write_outputs, write_progress
from medpredict.study.results import (
    CandidateFailure,
    CandidateResult,
    HoldoutResult,
    NestedPlan,
    StudyResult,
)
from medpredict.study.search import SearchResult
from medpredict.study.validation import (
    CrossValidation,
    cohort_rows,
    fixed_split,
    mark_separation,
    on_rows,
    score_with_ci,
    scored_cohort,
    scored_rows,
)
from medpredict.timeline.table import resolve_timeline_spec, timeline_table

NOT_NESTED_FIXED = (
    "validation.scheme 'fixed' scores one validation split, so there are no folds to "
    "nest the selection in; the test rows, scored once, estimate the selected model"
)


def _partition(
    cohort: Cohort, spec: StudySpec, frame: pd.DataFrame
) -> tuple[Cohort, list[Fold], dict[str, Cohort]]:
    """Development rows, their folds, and the hold-outs by kind (``temporal``, ``test``)."""
    held: dict[str, Cohort] = {}
    development = cohort
    scheme = spec.validation.scheme
    if scheme == "temporal":
        dev_rows, later_rows = temporal_split(
            cohort.times, spec.validation.temporal_cutoff, spec.validation.temporal_fraction
        )
        development = cohort_rows(cohort, dev_rows)
        held["temporal"] = cohort_rows(cohort, later_rows)
    if scheme == "fixed":
        values = frame[spec.validation.split_column].to_numpy()[cohort.row_numbers - 1]
        (train, validation), test = fixed_split(
            values, spec.validation, cohort.groups, cohort.row_numbers
        )
        dev_rows = np.sort(np.concatenate([train, validation]))
        development = cohort_rows(cohort, dev_rows)
        is_train = np.isin(dev_rows, train)
        folds = [(np.flatnonzero(is_train), np.flatnonzero(~is_train))]
        if test.size:
            held["test"] = cohort_rows(cohort, test)
    elif scheme == "site":
        folds = site_folds(development.y, development.sites)
    elif scheme == "leave_one_patient_out":
        folds = _patient_folds(development.groups)
    else:
        folds = internal_folds(development.y, development.groups, spec.validation.folds, spec.seed)
    return development, folds, held


def _without_split_column(frame: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """The table without the fixed scheme's split column, which is never a feature."""
    column = spec.validation.split_column
    if spec.validation.scheme != "fixed" or column is None:
        return frame
    check_columns_present(frame, [column], "validation.split_column")
    return frame.drop(columns=[column])


def _patient_folds(groups: np.ndarray) -> list[Fold]:
    """Leave-one-patient-out folds, checked patient-disjoint."""
    if np.unique(groups).size < 2:
        raise DataError("leave_one_patient_out validation needs at least two patients")
    folds = leave_one_patient_out(groups)
    assert_patient_disjoint(folds, groups)
    return folds


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
    metrics = mark_separation(metrics, holdout.y, proba, kept_leaky)
    return HoldoutResult(kind=kind, cohort=holdout, proba=proba, metrics=metrics)


def _compare(
    spec: StudySpec,
    development: Cohort,
    folds: list[Fold],
    progress: StudyProgress,
    kept_leaky: list[str],
    on_candidate: Callable[[dict[str, CandidateResult], list[CandidateFailure]], None],
) -> tuple[dict[str, CandidateResult], list[CandidateFailure], SearchResult | None]:
    """Every candidate scored with CIs on the study's folds (searched when budgeted).

    Candidates are scored on the rows the folds predict (every row, or the fixed
    scheme's validation rows).
    """
    scored = scored_rows(folds, len(development.y))
    evaluated = scored_cohort(development, scored)

    def score(name: str, estimator: Any, run: CrossValidation) -> CandidateResult:
        progress.stage(f"bootstrapping {name}", total=None)
        return candidate_result(spec, evaluated, name, estimator, on_rows(run, scored), kept_leaky)

    if spec.budget:
        n_boot = min(spec.bootstrap, 500)
        return searched_candidates(spec, development, folds, score, progress, n_boot)

    def start(name: str, n_folds: int) -> Callable[[], None]:
        task = progress.stage(f"cross-validating {name}", total=n_folds)
        return lambda: progress.advance(task)

    candidates, failures = cross_validated_candidates(
        spec, development, folds, score, start, on_candidate
    )
    return candidates, failures, None


def _select(
    spec: StudySpec,
    development: Cohort,
    candidates: dict[str, CandidateResult],
    failures: list[CandidateFailure],
    progress: StudyProgress,
) -> tuple[str, Any]:
    """The best candidate by the selection metric, refitted on all development data."""
    metric = spec.selection_metric
    order = ranked({name: c.metrics[metric].value for name, c in candidates.items()}, metric)
    estimators = {name: c.estimator for name, c in candidates.items()}
    progress.stage("refitting the best candidate on all development data", total=None)
    known = len(failures)
    try:
        best, final_model, _ = refit_best(spec, development, order, estimators, failures)
    finally:
        for failure in failures[known:]:
            announce(failure)
    return best, final_model


def _external_table(spec: StudySpec, cohort: Cohort) -> pd.DataFrame:
    source = spec.validation.external
    if source.events is not None:
        return timeline_table(source.events, spec, columns=cohort.schema.names).frame
    return read_table(source)


def run_study(spec: StudySpec, quiet: bool = False, save: bool = True) -> StudyResult:
    """Run the whole study described by ``spec``; see the module docstring.

    A candidate that fails is left out with a :class:`CandidateWarning` and listed in
    ``StudyResult.failures`` (and the report); the study selects among the others and
    raises :class:`CandidatesFailedError` only when every candidate failed.
    ``validation.nested`` decides whether ``StudyResult.nested`` holds the nested
    cross-validation of the whole procedure; ``StudyResult.nested_plan`` says why.
    With ``validation.scheme: fixed`` the folds are one fold (training rows, validation
    rows): candidates are scored on the validation rows, which ``StudyResult.cohort``
    then holds, the selected model is refitted on both, and the test rows are the
    ``test`` hold-out. With ``cluster`` set the fits run on that Dask cluster
    (:mod:`medpredict.cluster`), with the same results. A ``task: survival`` spec runs
    :func:`medpredict.survival.runner.run_survival_study`, and a spec with a
    ``treatment:`` section :func:`medpredict.effects.runner.run_effect_study`; each
    returns its own result.
    """
    if spec.treatment is not None:
        if spec.task == "survival":
            require("sksurv", extra="survival")
        from medpredict.effects.runner import run_effect_study

        return run_effect_study(spec, quiet=quiet, save=save)
    if spec.task == "survival":
        require("sksurv", extra="survival")
        from medpredict.survival.runner import run_survival_study

        return run_survival_study(spec, quiet=quiet, save=save)
    started = time.perf_counter()
    check_model_names([m.name for m in spec.model_specs], survival=False)
    with on_cluster(spec.cluster):
        result = _run(spec, quiet, save, started)
    if save:
        write_outputs(result)
    return result


def _run(spec: StudySpec, quiet: bool, save: bool, started: float) -> StudyResult:
    """The study up to its outputs (inside the spec's cluster, if it names one)."""
    timeline = None
    if spec.timeline is not None:
        timeline = timeline_table(spec.data.events, spec, quiet=quiet)
        frame = timeline.frame
    else:
        frame = load_table(spec)
    declared = spec if timeline is None else resolve_timeline_spec(spec, timeline)
    cohort = build_cohort(_without_split_column(frame, spec), declared)
    kept_leaky = _check_leaky_columns(spec, cohort)
    spec = _resolve_cutoff(spec, cohort)
    development, folds, held = _partition(cohort, spec, frame)
    scored = scored_rows(folds, len(development.y))
    evaluated = scored_cohort(development, scored)

    def record(candidates: dict[str, CandidateResult], failures: list[CandidateFailure]) -> None:
        if save:
            write_progress(spec, candidates, failures)

    with StudyProgress(quiet=quiet) as progress:
        compared = time.perf_counter()
        candidates, failures, searched = _compare(
            spec, development, folds, progress, kept_leaky, record
        )
        comparison_seconds = time.perf_counter() - compared
        for failure in failures:
            announce(failure)
        if not candidates:
            raise all_failed(spec, failures)
        best, final_model = _select(spec, development, candidates, failures, progress)
        paired_deltas(spec, evaluated, candidates, best)
        plan = (
            plan_nested(spec, len(folds), comparison_seconds, len(spec.model_specs))
            if scored is None
            else NestedPlan(False, NOT_NESTED_FIXED)
        )
        nested = None
        if plan.run:
            nested = nested_cross_validate(
                spec, development, folds, candidates[best], progress, kept_leaky
            )

        holdouts = []
        thresholds = candidates[best].thresholds
        for kind, rows in held.items():
            holdouts.append(_score_holdout(kind, rows, final_model, spec, thresholds, kept_leaky))
        if spec.validation.external is not None:
            external = build_external(_external_table(spec, cohort), spec, cohort)
            holdouts.append(
                _score_holdout("external", external, final_model, spec, thresholds, kept_leaky)
            )

    result = StudyResult(
        spec=spec,
        cohort=evaluated,
        folds=folds,
        candidates=candidates,
        best_name=best,
        final_model=final_model,
        holdouts=holdouts,
        data_sha256=frame_sha256(frame),
        seconds=0.0,
        search=searched,
        failures=failures,
        temporal=temporal_summary(spec, development, held.get("temporal")),
        nested=nested,
        nested_plan=plan,
        timeline=None if timeline is None else timeline.summary,
    )

    with StudyProgress(quiet=quiet) as progress:
        progress.stage("explanations, fairness, conformal sets, model card", total=None)
        result.trust = assess_trust(result)
    result.seconds = time.perf_counter() - started
    return result
