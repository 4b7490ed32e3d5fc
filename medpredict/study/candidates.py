"""A study's candidate models: evaluated on the same folds, ranked, the best one refitted.

:func:`cross_validated_candidates` cross-validates every candidate of the spec with its
settings and :func:`searched_candidates` runs the budgeted search; a candidate that
fails is recorded as a :class:`CandidateFailure`, never fatal on its own.
:func:`ranked` orders the candidates by the spec's selection metric and
:func:`refit_best` refits the best one that can be refitted. The study
(:mod:`medpredict.study.runner`) and every outer fold of its nested cross-validation
(:mod:`medpredict.study.nested`) run these same steps.

Examples
--------
>>> ranked({"svm": 0.80, "logistic_regression": 0.83}, "auroc")
['logistic_regression', 'svm']
>>> ranked({"svm": 0.15, "logistic_regression": 0.16}, "brier")
['svm', 'logistic_regression']
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from sklearn.base import ClassifierMixin, clone

from medpredict.data.cohort import Cohort
from medpredict.encoders.tabular import build_preprocessor, standard_pipeline
from medpredict.evaluation.bootstrap import bootstrap_weighted
from medpredict.evaluation.metrics import (
    HIGHER_IS_BETTER,
    threshold_for_sensitivity,
    threshold_for_specificity,
)
from medpredict.evaluation.splits import Fold
from medpredict.models.ensembles import aligned_proba, fit_member
from medpredict.models.registry import make_model, takes_raw_input
from medpredict.progress import StudyProgress
from medpredict.spec import ModelSpec, StudySpec
from medpredict.study.results import (
    CandidateFailure,
    CandidateResult,
    CandidatesFailedError,
    CandidateWarning,
    FoldError,
)
from medpredict.study.search import SearchFailedError, SearchResult, search
from medpredict.study.validation import (
    CrossValidation,
    cross_validate_each,
    mark_separation,
    score_with_ci,
    selection_scorer,
    table_rows,
)

Scored = TypeVar("Scored")
Score = Callable[[str, Any, CrossValidation], Scored]
# called with a candidate's name and number of folds; returns the callback run after each fold
OnStart = Callable[[str, int], Callable[[], None]]


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


def candidate_result(
    spec: StudySpec,
    cohort: Cohort,
    name: str,
    estimator: Any,
    run: CrossValidation,
    kept_leaky: list[str],
) -> CandidateResult:
    """A candidate's out-of-fold predictions scored with bootstrap CIs and thresholds."""
    oof = run.oof
    thresholds = operating_thresholds(spec, cohort.y, oof[:, 1]) if spec.task == "binary" else {}
    metrics = score_with_ci(spec, cohort.y, oof, thresholds, cohort.groups)
    metrics = mark_separation(metrics, cohort.y, oof, kept_leaky)
    return CandidateResult(name, estimator, oof, metrics, thresholds, run.seconds, run.fitted)


def cross_validated_candidates(
    spec: StudySpec,
    cohort: Cohort,
    folds: list[Fold],
    score: Score[Scored],
    on_start: OnStart,
    on_candidate: Callable[[dict[str, Scored], list[CandidateFailure]], None] = (
        lambda scored, failures: None
    ),
) -> tuple[dict[str, Scored], list[CandidateFailure]]:
    """Every candidate cross-validated on ``folds`` and scored by ``score``.

    A candidate that fails (building, fitting, predicting or scoring) is recorded with
    the reason and the table rows its error names; ``on_candidate`` sees the results
    so far after each candidate. On a cluster (:mod:`medpredict.cluster`) every
    candidate x fold fit runs side by side, and each candidate is scored here as soon
    as its folds are back.
    """
    scored: dict[str, Scored] = {}
    failures: list[CandidateFailure] = []
    pipelines = {}
    for model in spec.model_specs:
        try:
            pipelines[model.name] = build_pipeline(cohort, model, spec)
        except Exception as err:  # reported with the others' results
            failures.append(failure(model.name, err, "cross-validation"))
            on_candidate(scored, failures)
    ticks: dict[str, Callable[[], None]] = {}

    def on_fold(name: str) -> None:
        if name not in ticks:
            ticks[name] = on_start(name, len(folds))
        ticks[name]()

    def on_done(name: str, run: CrossValidation | FoldError) -> None:
        try:
            if isinstance(run, FoldError):
                raise run
            scored[name] = score(name, pipelines[name], run)
        except Exception as err:  # reported with the others' results
            failures.append(failure(name, err, "cross-validation"))
        on_candidate(scored, failures)

    cross_validate_each(
        pipelines,
        cohort.X,
        cohort.y,
        folds,
        len(cohort.classes),
        cohort.groups,
        cohort.row_numbers,
        on_fold=on_fold,
        on_done=on_done,
    )
    return scored, failures


def searched_candidates(
    spec: StudySpec,
    cohort: Cohort,
    folds: list[Fold],
    score: Score[Scored],
    progress: StudyProgress,
    n_boot: int,
) -> tuple[dict[str, Scored], list[CandidateFailure], SearchResult | None]:
    """Budgeted hyperparameter search on ``folds``; each candidate keeps its best trial.

    ``n_boot`` resamples give the leaderboard's intervals. When no candidate finished
    a trial the result is empty and the failures say why.
    """
    try:
        searched = search(
            [m.name for m in spec.model_specs],
            cohort.X,
            cohort.y,
            groups=cohort.groups,
            cv=folds,
            budget=spec.budget,
            metric=spec.selection_metric,
            seed=spec.seed,
            class_weight=None if spec.class_weight == "none" else spec.class_weight,
            preprocessor=build_preprocessor(cohort.schema, spec.seed),
            n_boot=n_boot,
            progress=progress,
            row_numbers=cohort.row_numbers,
        )
    except SearchFailedError as err:
        return {}, [_searched_failure(f) for f in err.failures], None
    scored = {
        row.name: score(
            row.name,
            searched._build(row.name, row.params),
            CrossValidation(row.oof_proba, [], row.seconds),
        )
        for row in searched.leaderboard
    }
    return scored, [_searched_failure(f) for f in searched.failures], searched


def _searched_failure(failure: CandidateFailure) -> CandidateFailure:
    return CandidateFailure(failure.name, f"search: {failure.reason}", failure.rows)


def failure(name: str, err: Exception, stage: str) -> CandidateFailure:
    """The failure of candidate ``name`` at ``stage``, with the table rows it names."""
    rows = err.rows if isinstance(err, FoldError) else []
    reason = str(err) if isinstance(err, FoldError) else f"{type(err).__name__}: {err}"
    return CandidateFailure(name, f"{stage}: {reason}", rows)


def announce(failure: CandidateFailure) -> None:
    """Warn (:class:`CandidateWarning`) that a candidate was left out, and why."""
    warnings.warn(
        f"candidate {failure.name} failed and was left out ({failure.reason})",
        CandidateWarning,
        stacklevel=2,
    )


def ranked(scores: dict[str, float], metric: str) -> list[str]:
    """Candidate names, best first by their ``metric`` scores."""
    sign = 1 if HIGHER_IS_BETTER.get(metric, True) else -1
    return sorted(scores, key=lambda n: -sign * scores[n])


def refit_best(
    spec: StudySpec,
    cohort: Cohort,
    order: list[str],
    estimators: dict[str, Any],
    failures: list[CandidateFailure],
    where: str = "all development data",
    test: Cohort | None = None,
) -> tuple[str, Any, np.ndarray | None]:
    """Refit the first candidate of ``order`` on ``cohort``, the next one if that fails.

    With ``test`` the refitted model also predicts those rows (a candidate that cannot
    is passed over like one that cannot be refitted). Failures are appended to
    ``failures``; :class:`CandidatesFailedError` when no candidate is left.

    Returns
    -------
    The candidate's name, the fitted model and its probabilities for ``test`` (or None).
    """
    for name in order:
        try:
            with table_rows(where, cohort.row_numbers):
                model = fit_member(clone(estimators[name]), cohort.X, cohort.y, cohort.groups)
            proba = None
            if test is not None:
                with table_rows(f"{where}, predicting the test rows", test.row_numbers):
                    proba = aligned_proba(model, test.X, np.arange(len(cohort.classes)))
            return name, model, proba
        except Exception as err:  # the next-best candidate is tried
            failures.append(failure(name, err, "refit"))
    raise all_failed(spec, failures)


def all_failed(
    spec: StudySpec, failures: list[CandidateFailure], where: str = ""
) -> CandidatesFailedError:
    """The error of a study (or of one of its outer folds) in which every candidate failed."""
    listed = "; ".join(f"{f.name}: {f.reason}" for f in failures)
    return CandidatesFailedError(
        f"study {spec.name!r}{where}: no candidate model could be evaluated ({listed})"
    )


def paired_deltas(
    spec: StudySpec,
    cohort: Cohort,
    candidates: dict[str, CandidateResult],
    best: str,
) -> None:
    """Bootstrap CI of (best - candidate) on the selection metric, same resamples."""
    best_score = selection_scorer(spec, cohort.y, candidates[best].oof_proba)
    others = {
        name: selection_scorer(spec, cohort.y, c.oof_proba)
        for name, c in candidates.items()
        if name != best
    }

    def deltas(counts: np.ndarray | None) -> dict[str, float]:
        reference = best_score(counts)
        return {name: reference - score(counts) for name, score in others.items()}

    estimates = bootstrap_weighted(
        deltas, cohort.y, n_boot=spec.bootstrap, seed=spec.seed, groups=cohort.groups
    )
    for name, estimate in estimates.items():
        candidates[name].delta_vs_best = estimate
