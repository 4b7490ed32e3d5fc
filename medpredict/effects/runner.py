"""A treatment-effect study: who benefits from a treatment, tested on held-out patients.

:func:`run_effect_study` is what ``medpredict run`` does for a spec with a
``treatment:`` section. It reads and checks the table like every study
(:func:`~medpredict.data.cohort.build_cohort`), the treatment
(:func:`~medpredict.data.checks.check_treatment`) and the outcome
(:mod:`~medpredict.effects.outcome`: the event, or its IPCW indicator by a horizon),
then, in k folds grouped by patient and stratified by arm and outcome:

1. the propensity to be treated is estimated out of fold (logistic regression); in
   observational data the study refuses, in plain words, when too many patients had
   a near-certain treatment (:func:`~medpredict.effects.evaluation.check_overlap`),
   or leaves them out when the spec asks to trim;
2. every candidate learner (with the standard preprocessing fitted inside the fold)
   estimates the benefit of the held-out patients, and the held-out doubly robust
   scores are formed from out-of-fold outcome models and propensities (a trial's
   known assignment probability when randomised);
3. each learner is scored against those scores: RATE (AUTOC, Qini) and the doubly
   robust loss, by which the learner is selected; the average effect, the policy
   value and the subgroup and benefit-quartile tables come with bootstrap CIs;
4. the selected learner is refitted on all patients with bootstrap refits for each
   patient's interval, and saved with the report (:mod:`~medpredict.effects.outputs`).

Examples
--------
>>> from medpredict.spec import parse_spec
>>> spec = parse_spec({"name": "doc-effects", "data": {"dataset": "actg320"},
...     "target": "aids_or_death", "task": "survival", "positive_class": 1,
...     "survival": {"duration_column": "days", "horizons": [180]},
...     "treatment": {"column": "tx", "randomised": True, "learners": ["t_learner"],
...                   "outcome_model": "ridge", "intervals": 0},
...     "bootstrap": 50, "output_dir": "/tmp/medpredict-doc-effects"})
>>> result = run_effect_study(spec, quiet=True, save=False)
>>> bool(result.average.value > 0)   # indinavir lowered the risk of AIDS or death
True
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from medpredict.cluster import fan_out, on_cluster
from medpredict.data.checks import check_horizons, check_treatment
from medpredict.data.cohort import Cohort, build_cohort, load_table
from medpredict.data.errors import DataError
from medpredict.data.loading import frame_sha256
from medpredict.effects.evaluation import (
    benefit_quartiles,
    check_overlap,
    group_effects,
    policy_values,
    rate,
)
from medpredict.effects.learners import LEARNERS, dr_scores, outcome_candidates
from medpredict.effects.model import EffectModel
from medpredict.effects.outcome import EffectOutcome, ipcw_risk
from medpredict.effects.outputs import write_outputs
from medpredict.effects.results import EffectCandidate, EffectStudyResult
from medpredict.encoders.tabular import build_preprocessor
from medpredict.evaluation.bootstrap import bootstrap
from medpredict.evaluation.splits import Fold, internal_folds
from medpredict.models.registry import check_model_names, make_model
from medpredict.progress import StudyProgress
from medpredict.spec import StudySpec
from medpredict.study.validation import cohort_rows, table_rows
from medpredict.survival.outcome import survival_outcome


def _outcome(rows: pd.DataFrame, cohort: Cohort, spec: StudySpec) -> EffectOutcome:
    if spec.task != "survival":
        event = cohort.y == 1
        return EffectOutcome(event.astype(float), event,
                             f"risk of {spec.target} = {spec.positive_class}")
    outcome = survival_outcome(rows, spec)
    horizon = spec.treatment.horizon or spec.survival.horizons[0]
    check_horizons([horizon], outcome.time, outcome.event, spec.survival.time_unit)
    return EffectOutcome(
        ipcw_risk(outcome.time, outcome.event, horizon),
        outcome.event & (outcome.time <= horizon),
        f"risk of {spec.target} = {spec.positive_class} by {horizon:g} "
        f"{spec.survival.time_unit}",
        horizon,
    )


def _outcome_model(spec: StudySpec, rows: int) -> Any:
    """The learners' outcome model: None (selected per arm) or a registered classifier."""
    name = spec.treatment.outcome_model
    if name == "selected":
        return None
    if name in outcome_candidates(rows):
        return outcome_candidates(rows)[name]
    if spec.task == "survival":
        raise DataError(
            f"treatment.outcome_model {name!r}: a survival outcome is modelled by regression "
            f"(its IPCW indicator); use 'selected' or one of "
            f"{', '.join(outcome_candidates(rows))}"
        )
    check_model_names([name], survival=False)
    return make_model(name, seed=spec.seed, n_samples=rows)


def _learner(name: str, spec: StudySpec, outcome: Any, assignment: float | None) -> Any:
    """A learner with the spec's outcome model; a regressor also models the effects."""
    options: dict[str, Any] = {"outcome": outcome, "random_state": spec.seed}
    if name in ("x_learner", "dr_learner") and spec.treatment.outcome_model in (
        outcome_candidates()
    ):
        options["effect_model"] = outcome
    if name == "dr_learner":
        options["randomised"] = assignment
    return LEARNERS[name](**options)


def _propensity(
    cohort: Cohort, treated: np.ndarray, folds: list[Fold], seed: int
) -> np.ndarray:
    """Each patient's out-of-fold probability of treatment (logistic regression)."""
    propensity = np.empty(treated.size)
    for train, test in folds:
        preprocessor = build_preprocessor(cohort.schema, seed).fit(cohort.X.iloc[train])
        model = LogisticRegression(C=1.0, max_iter=5000).fit(
            preprocessor.transform(cohort.X.iloc[train]), treated[train])
        propensity[test] = model.predict_proba(preprocessor.transform(cohort.X.iloc[test]))[:, 1]
    return propensity


def _fit_fold(
    name: str, model: EffectModel, X: pd.DataFrame, t: np.ndarray, y: np.ndarray,
    train: np.ndarray, test: np.ndarray, rows: np.ndarray, where: str,
) -> tuple[str, np.ndarray, tuple[np.ndarray, np.ndarray] | None, float]:
    """One learner's held-out benefit in one fold (a T-learner also gives its outcomes)."""
    start = time.perf_counter()
    with table_rows(f"{where}, training", rows[train]):
        fitted = clone(model).fit(X.iloc[train], t[train], y[train])
    features = fitted.features(X.iloc[test])
    outcomes = fitted.learner_.outcomes(features) if name == "t_learner" else None
    return name, fitted.benefit_of(features), outcomes, time.perf_counter() - start


def _folds(
    cohort: Cohort, treated: np.ndarray, outcome: EffectOutcome, spec: StudySpec
) -> list[Fold]:
    strata = 2 * treated + outcome.event.astype(int)
    return internal_folds(strata, cohort.groups, spec.validation.folds, spec.seed)


def _dr_loss(_: np.ndarray, benefit: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {"dr_loss": float(np.mean((scores - benefit) ** 2))}


def _subgroup_labels(values: pd.Series) -> pd.Series:
    """Groups of a subgroup column: its values, or halves at the median if numeric."""
    numeric = pd.to_numeric(values, errors="coerce")
    if values.notna().all() and numeric.notna().all() and numeric.nunique() > 5:
        median = float(numeric.median())
        labels = np.where(numeric <= median, f"<= {median:g}", f"> {median:g}")
        return pd.Series(labels, name=values.name)
    return values.astype(str).where(values.notna(), "missing").rename(values.name)


def run_effect_study(
    spec: StudySpec, quiet: bool = False, save: bool = True
) -> EffectStudyResult:
    """Run the treatment-effect study described by ``spec``; see the module docstring."""
    started = time.perf_counter()
    with on_cluster(spec.cluster):
        result = _run(spec, quiet)
    result.seconds = time.perf_counter() - started
    if save:
        write_outputs(result)
    return result


def _trim(
    spec: StudySpec, cohort: Cohort, treated: np.ndarray, outcome: EffectOutcome,
    propensity: np.ndarray,
) -> tuple[Cohort, np.ndarray, EffectOutcome, list[int]]:
    """Leave out the patients outside the overlap bounds (their table rows are kept)."""
    low, high = spec.treatment.overlap_bounds
    inside = np.flatnonzero((propensity >= low) & (propensity <= high))
    trimmed = sorted(set(cohort.row_numbers.tolist()) - set(cohort.row_numbers[inside].tolist()))
    return cohort_rows(cohort, inside), treated[inside], outcome.rows(inside), trimmed


def _run(spec: StudySpec, quiet: bool) -> EffectStudyResult:
    section = spec.treatment
    frame = load_table(spec)
    cohort = build_cohort(frame, spec)
    rows = frame.iloc[cohort.row_numbers - 1]
    treated = check_treatment(rows[section.column], section.treated_value,
                              section.control_value)
    outcome = _outcome(rows, cohort, spec)
    subgroups = {name: _subgroup_labels(rows[name].reset_index(drop=True))
                 for name in section.subgroups}
    assignment = None
    if section.randomised:
        assignment = section.assignment_probability or float(treated.mean())

    with StudyProgress(quiet=quiet) as progress:
        progress.stage("estimating the propensity to be treated", total=None)
        folds = _folds(cohort, treated, outcome, spec)
        propensity = _propensity(cohort, treated, folds, spec.seed)
        trimmed: list[int] = []
        if not section.randomised and section.trim_outside_overlap:
            cohort, treated, outcome, trimmed = _trim(spec, cohort, treated, outcome,
                                                      propensity)
            check_treatment(pd.Series(treated, name=section.column), 1, 0)
            kept = np.isin(rows.index.to_numpy() + 1, cohort.row_numbers)
            subgroups = {n: g[kept].reset_index(drop=True) for n, g in subgroups.items()}
            folds = _folds(cohort, treated, outcome, spec)
            propensity = _propensity(cohort, treated, folds, spec.seed)
        overlap = check_overlap(
            propensity, treated, section.overlap_bounds,
            1.0 if section.randomised or trimmed else section.max_outside_overlap,
        )

        sign = -1 if section.benefit == "fewer_events" else 1
        outcome_model = _outcome_model(spec, len(treated))
        models = {
            name: EffectModel(build_preprocessor(cohort.schema, spec.seed),
                              _learner(name, spec, outcome_model, assignment),
                              benefit_sign=sign, random_state=spec.seed)
            for name in dict.fromkeys(["t_learner", *section.learners])
        }
        task = progress.stage("cross-fitting the effect learners",
                              total=len(models) * len(folds))
        benefit = {name: np.empty(treated.size) for name in models}
        seconds = dict.fromkeys(models, 0.0)
        mu0, mu1 = np.empty(treated.size), np.empty(treated.size)

        def calls():
            for name, model in models.items():
                for k, (train, test) in enumerate(folds):
                    yield (name, model, cohort.X, treated, outcome.y, train, test,
                           cohort.row_numbers, f"{name}, fold {k + 1} of {len(folds)}")

        results = fan_out(_fit_fold, calls(), on_result=lambda _: progress.advance(task))
        for (name, fold_benefit, outcomes, fold_seconds), (_, test) in zip(
            results, [fold for _ in models for fold in folds], strict=True
        ):
            benefit[name][test] = fold_benefit
            seconds[name] += fold_seconds
            if outcomes is not None:
                mu0[test], mu1[test] = outcomes

        progress.stage("testing the estimates against held-out doubly robust scores",
                       total=None)
        known = propensity if assignment is None else np.full(treated.size, assignment)
        scores = sign * dr_scores(outcome.y, treated, mu0, mu1, known)
        candidates = {}
        for name in section.learners:
            metrics = rate(benefit[name], scores, spec.bootstrap, spec.seed)
            metrics |= bootstrap(_dr_loss, np.zeros(treated.size), benefit[name], scores,
                                 n_boot=spec.bootstrap, seed=spec.seed)
            candidates[name] = EffectCandidate(name, benefit[name], metrics, seconds[name])
        best = min(candidates, key=lambda n: candidates[n].metrics["dr_loss"].value)
        average = bootstrap(lambda _, s: {"effect": float(np.mean(s))}, np.zeros(scores.size),
                            scores, n_boot=spec.bootstrap, seed=spec.seed)["effect"]
        chosen = candidates[best].benefit
        tables = [group_effects(g, scores, chosen, spec.bootstrap, spec.seed)
                  .assign(subgroup=name) for name, g in subgroups.items()]

        progress.stage(f"refitting {best} on all patients with {section.intervals} "
                       "bootstrap refits", total=None)
        final = clone(models[best]).set_params(intervals=section.intervals)
        final.fit(cohort.X, treated, outcome.y)

    return EffectStudyResult(
        spec=spec, cohort=cohort, treated=treated, outcome=outcome, folds=folds,
        propensity=propensity, assignment=assignment, overlap=overlap, scores=scores,
        candidates=candidates, best_name=best, final_model=final, average=average,
        policy=policy_values(chosen, scores, spec.bootstrap, spec.seed),
        subgroups=pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(),
        quartiles=group_effects(benefit_quartiles(chosen), scores, chosen, spec.bootstrap,
                                spec.seed),
        data_sha256=frame_sha256(frame), trimmed=trimmed,
    )
