"""The self-contained HTML report of a survival study.

Sections: the cohort and its follow-up, the candidates with CIs and paired differences
from the selected model, the selected model at each horizon (time-dependent AUC, Brier
score, calibration slope, predicted against Kaplan–Meier observed risk), calibration
and Kaplan–Meier plots by predicted-risk group, individual survival curves, decision
curves, the hold-outs, the calibrated lower bound on each patient's time to the event
(its coverage on development and hold-out rows), and the assumptions a clinician
should check.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from medpredict.evaluation.bootstrap import Estimate
from medpredict.evaluation.survival import KaplanMeier, calibration_groups, net_benefit_at
from medpredict.report.html import Section, callout, escape, figure, render, table
from medpredict.survival.outcome import SurvivalOutcome
from medpredict.survival.results import SurvivalStudyResult
from medpredict.survival.scoring import SurvivalPredictions


def _text(estimate: Estimate | None) -> str:
    if estimate is None or not np.isfinite(estimate.value):
        return "not estimable"
    return str(estimate)


def _cohort_section(result: SurvivalStudyResult) -> Section:
    spec, outcome = result.spec, result.outcome
    unit = spec.survival.time_unit
    follow_up = KaplanMeier.fit(outcome.time, outcome.event | outcome.competing, reverse=True)
    below = follow_up.times[follow_up.survival <= 0.5]
    median = f"{below[0]:g} {unit}" if below.size else "not reached"
    rows = [
        ("patients (rows)", len(outcome)),
        ("events", int(outcome.event.sum())),
        ("competing events", int(outcome.competing.sum())),
        ("censored", int((~outcome.event & ~outcome.competing).sum())),
        ("median follow-up (reverse Kaplan–Meier)", median),
        ("longest follow-up", f"{outcome.time.max():g} {unit}"),
        ("horizons", ", ".join(f"{h:g} {unit}" for h in spec.survival.horizons)),
        ("validation", f"{spec.validation.scheme}, {len(result.folds)} fold(s)"),
        ("selected model", f"{result.best_name} (by {spec.selection_metric})"),
        ("study time", f"{result.seconds:.0f} s"),
    ]
    body = table(rows, ["", "value"])
    for warning in result.cohort.quality.warnings:
        body += callout(warning)
    for failure in result.failures:
        body += callout(f"candidate {failure.name} failed and was left out: {failure.reason}")
    return Section("Cohort and follow-up", body)


def _candidates_section(result: SurvivalStudyResult) -> Section:
    header = ["model", "Harrell C", "Uno C", "integrated Brier", "Δ Harrell C vs selected",
              "fit s (all folds)"]
    names = list(result.candidates)
    rows = []
    for name in names:
        c = result.candidates[name]
        delta = _text(c.delta.get("harrell_c")) if c.delta else "selected"
        rows.append([name, _text(c.metrics["harrell_c"]), _text(c.metrics["uno_c"]),
                     _text(c.metrics["integrated_brier"]), delta, f"{c.seconds:.1f}"])
    body = (
        "<p>Out-of-fold predictions; 95% bootstrap intervals"
        f" ({result.spec.bootstrap} resamples, the same resamples for every model, so the "
        "differences are paired). Harrell's C: share of patient pairs ordered correctly; "
        "Uno's C corrects it for censoring (events up to the last horizon); integrated "
        "Brier score: mean squared error of the predicted survival over the 10th to 80th "
        "percentile of follow-up (lower is better; 0.25 is a coin flip at 50% risk).</p>"
    )
    return Section("Candidate models", body + table(rows, header,
                                                    highlight=names.index(result.best_name)))


def _horizon_rows(metrics: dict[str, Estimate], horizons: list[float]) -> list[list[str]]:
    rows = []
    for h in horizons:
        label = f"{h:g}"
        rows.append([label] + [_text(metrics.get(f"{k}@{label}")) for k in (
            "auc", "brier", "calibration_slope", "predicted_risk", "observed_risk")])
    return rows


_HORIZON_HEADER = ["horizon", "time-dependent AUC", "Brier", "calibration slope",
                   "mean predicted risk", "observed risk (Kaplan–Meier)"]


def _calibration_figure(
    outcome: SurvivalOutcome, predictions: SurvivalPredictions, horizons: list[float],
    n_groups: int, unit: str,
) -> plt.Figure:
    fig, axes = plt.subplots(1, len(horizons), figsize=(4.2 * len(horizons), 4), squeeze=False)
    for ax, h in zip(axes[0], horizons, strict=True):
        groups = calibration_groups(outcome.time, outcome.event, predictions.risk_at(h), h,
                                    n_groups)
        predicted = [g["predicted"] for g in groups]
        observed = [g["observed"] for g in groups]
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
        ax.plot(predicted, observed, "o-", color="#1f6feb")
        top = max(max(predicted), max(observed)) * 1.1
        ax.set(xlim=(0, top), ylim=(0, top), xlabel="predicted risk",
               ylabel="observed risk (Kaplan–Meier)", title=f"by {h:g} {unit}")
    fig.tight_layout()
    return fig


def _km_figure(outcome: SurvivalOutcome, predictions: SurvivalPredictions, horizon: float,
               unit: str) -> plt.Figure:
    risk = predictions.risk_at(horizon)
    cuts = np.quantile(risk, [1 / 3, 2 / 3])
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for label, rows in (("lowest third", risk <= cuts[0]),
                        ("middle third", (risk > cuts[0]) & (risk <= cuts[1])),
                        ("highest third", risk > cuts[1])):
        if rows.sum() == 0:
            continue
        km = KaplanMeier.fit(outcome.time[rows], outcome.event[rows])
        ax.step(np.concatenate([[0], km.times]), np.concatenate([[1], km.survival]),
                where="post", label=f"{label} of predicted risk (n={int(rows.sum())})")
    ax.axvline(horizon, color="grey", lw=1, ls=":")
    ax.set(xlabel=f"time ({unit})", ylabel="event-free (Kaplan–Meier)", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    return fig


def _individual_figure(result: SurvivalStudyResult) -> tuple[plt.Figure, list[list[str]]]:
    predictions, unit = result.best.predictions, result.spec.survival.time_unit
    order = np.argsort(predictions.risk)
    picks = order[(np.array([0.1, 0.3, 0.5, 0.7, 0.9]) * (order.size - 1)).astype(int)]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    rows = []
    for k, i in enumerate(picks):
        curve = predictions.curves[i]
        ax.step(np.concatenate([[0], predictions.times]), np.concatenate([[1], curve]),
                where="post", label=f"table row {result.cohort.row_numbers[i]}")
        below = predictions.times[curve <= 0.5]
        median = f"{below[0]:g}" if below.size else "beyond follow-up"
        rows.append([f"{[10, 30, 50, 70, 90][k]}th", str(result.cohort.row_numbers[i]),
                     *[f"{1 - predictions.at(h)[i]:.3f}" for h in result.spec.survival.horizons],
                     median])
    # beyond the 95th percentile of follow-up few patients remain and the curves are noise
    ax.set(xlabel=f"time ({unit})", ylabel="predicted event-free probability", ylim=(0, 1.02),
           xlim=(0, float(np.quantile(result.outcome.time, 0.95))))
    ax.legend(fontsize=8)
    return fig, rows


def _decision_figure(outcome: SurvivalOutcome, predictions: SurvivalPredictions,
                     horizon: float, unit: str) -> plt.Figure:
    thresholds = np.linspace(0.01, 0.8, 60)
    curve = net_benefit_at(outcome.time, outcome.event, predictions.risk_at(horizon), horizon,
                           thresholds)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(thresholds, curve["model"], label="treat if predicted risk ≥ threshold")
    ax.plot(thresholds, curve["treat_all"], label="treat all", color="grey")
    ax.axhline(0, color="black", lw=1, label="treat none")
    low = min(0.0, float(np.nanmin(curve["model"]))) - 0.02
    ax.set(ylim=(low, max(0.05, float(np.nanmax(curve["treat_all"])) * 1.1 + 0.02)),
           xlabel="risk threshold", ylabel="net benefit", title=f"by {horizon:g} {unit}")
    ax.legend(fontsize=8)
    return fig


def _selected_section(result: SurvivalStudyResult) -> Section:
    spec = result.spec
    horizons, unit = spec.survival.horizons, spec.survival.time_unit
    best = result.best
    body = table(_horizon_rows(best.metrics, horizons), _HORIZON_HEADER)
    body += (
        "<p>Calibration slope at a horizon: 1 is ideal, below 1 the predictions are too "
        "extreme, above 1 too modest. Observed risk is the Kaplan–Meier estimate, which "
        "accounts for censoring.</p><div class='figs'>"
    )
    body += figure(_calibration_figure(result.outcome, best.predictions, horizons,
                                       spec.survival.calibration_groups, unit),
                   "calibration by predicted-risk group")
    body += figure(_km_figure(result.outcome, best.predictions, horizons[0], unit),
                   "Kaplan-Meier curves by predicted-risk third")
    for h in horizons:
        body += figure(_decision_figure(result.outcome, best.predictions, h, unit),
                       f"decision curve at {h:g}")
    body += "</div>"
    return Section(f"Selected model: {result.best_name}", body)


def _individual_section(result: SurvivalStudyResult) -> Section:
    fig, rows = _individual_figure(result)
    horizons = result.spec.survival.horizons
    unit = result.spec.survival.time_unit
    header = ["risk percentile", "table row",
              *[f"risk by {h:g} {unit}" for h in horizons], f"median survival ({unit})"]
    body = ("<p>Out-of-fold predicted survival curves of five patients at the 10th to 90th "
            "percentile of predicted risk.</p>" + figure(fig, "individual survival curves")
            + table(rows, header))
    return Section("Individual survival curves", body)


def _explanation_section(result: SurvivalStudyResult) -> Section | None:
    attribution = result.explanation
    if attribution is None:
        return None
    horizon = result.spec.survival.horizons[0]
    unit = result.spec.survival.time_unit
    importance = attribution.values.abs().mean().sort_values(ascending=False).head(12)
    fig, ax = plt.subplots(figsize=(5.5, 0.35 * len(importance) + 1))
    ax.barh(importance.index[::-1].astype(str), importance.to_numpy()[::-1], color="#1f6feb")
    ax.set(xlabel=f"mean |SHAP| (log-odds of the event by {horizon:g} {unit})")
    body = (
        f"<p>SHAP attributions of the selected model's risk of the event by {horizon:g} "
        f"{unit}, per original column, on {len(attribution.values)} development patients "
        f"({attribution.method} explainer, against a background sample that holds no real "
        "patient's row). A large value means the column moves individual risks most; it "
        "says nothing about cause.</p>" + figure(fig, "what drives the predicted risk")
    )
    return Section("What drives the predicted risk", body)


def _holdout_section(result: SurvivalStudyResult) -> Section | None:
    if not result.holdouts:
        return None
    spec = result.spec
    horizons, unit = spec.survival.horizons, spec.survival.time_unit
    body = ""
    for h in result.holdouts:
        metrics = h.metrics
        body += (f"<h3>{escape(h.kind)} ({len(h.outcome)} patients, "
                 f"{int(h.outcome.event.sum())} events)</h3>")
        body += table([[_text(metrics["harrell_c"]), _text(metrics["uno_c"]),
                        _text(metrics["integrated_brier"])]],
                      ["Harrell C", "Uno C", "integrated Brier"])
        body += table(_horizon_rows(metrics, horizons), _HORIZON_HEADER)
        beyond = [x for x in horizons if not np.any(h.outcome.time > x)]
        if beyond:
            body += callout(
                f"no {h.kind} patient is followed past {', '.join(f'{x:g}' for x in beyond)} "
                f"{unit}: the metrics at those horizons cannot be estimated there"
            )
        reachable = [x for x in horizons if x not in beyond]
        if reachable:
            body += figure(_calibration_figure(h.outcome, h.predictions, reachable,
                                               spec.survival.calibration_groups, unit),
                           f"{h.kind} calibration")
    return Section("Hold-out validation", body)


def _bound_row(label: str, bounds: np.ndarray | None, coverage: Estimate | None,
               horizon: float) -> list[str]:
    known = None if bounds is None else bounds[np.isfinite(bounds)]
    if known is None or not known.size:
        return [label, _text(coverage), "—", "—"]
    return [label, _text(coverage), f"{np.median(known):g}",
            f"{np.mean(known >= horizon):.0%}"]


def _lower_bound_section(result: SurvivalStudyResult) -> Section | None:
    bound = result.lower_bound
    if bound is None:
        return None
    unit = result.spec.survival.time_unit
    horizon = result.spec.survival.horizons[0]
    level = f"{bound.level:.0%}"
    rows = [_bound_row("development (cross-validated)", result.lower_bounds,
                       result.lower_bound_coverage, horizon)]
    rows += [_bound_row(h.kind, h.lower_bounds, h.lower_bound_coverage, horizon)
             for h in result.holdouts]
    header = ["rows", f"coverage (aim {level}), 95% CI", f"median bound ({unit})",
              f"assured event-free to {horizon:g} {unit}"]
    body = (
        f"<p>Each patient gets a lower bound L on the time to the event: with {level} "
        f"confidence the event comes after L. Over patients like these, about {level} "
        f"have their event at or after their bound. The bound is the time at which the "
        f"model's predicted event-free probability falls to {1 - bound.quantile:.3f} "
        f"(the model's {100 * bound.quantile:g}th percentile of the time to the event, the "
        "chosen quantile b), the largest quantile whose "
        f"bounds, on {bound.rows} development patients ({bound.events} events) predicted "
        "by models that never saw them, are estimated to miss at most "
        f"{1 - bound.level:.0%} (conformalized survival analysis, censoring-weighted). "
        "A bound equal to the model's last time means \"at least\" that long.</p>"
    )
    if bound.quantile == 0:
        body += callout(f"No quantile was safe at {level}: every bound is 0 and the model "
                        "cannot assure any event-free time at this confidence.")
    body += table(rows, header)
    body += (
        "<p>Coverage is estimated with inverse-probability-of-censoring weights (the event "
        "times of censored patients are unknown); development coverage is cross-validated "
        "(each fold's bounds calibrated on the other folds). A patient whose bound is "
        f"shorter than {horizon:g} {unit} is marked for referral by the service "
        "(assured_event_free_to_first_horizon false).</p>"
    )
    for h in result.holdouts:
        if h.lower_bounds is not None and np.any(h.lower_bounds > h.outcome.time.max()):
            share = float(np.mean(h.lower_bounds > h.outcome.time.max()))
            body += callout(
                f"{share:.0%} of {h.kind} bounds lie beyond its longest follow-up "
                f"({h.outcome.time.max():g} {unit}); events there cannot be seen, so "
                "their coverage is not checked by these rows."
            )
    body += callout(
        "Assumption: the coverage holds approximately in large cohorts when censoring is "
        "independent of the features and of the event time; it is not exact in small "
        "samples. Competing events count as censoring, so the bound is on the time to the "
        "event had the competing event not happened.", kind="note")
    return Section("Lower bound on the time to the event", body)


def _assumptions_section(result: SurvivalStudyResult) -> Section:
    items = [
        "Censoring is assumed independent of the outcome: a patient lost to follow-up is "
        "assumed to have the same prognosis as patients still followed with the same "
        "features. If sicker patients leave (transfer, hospice), risks are underestimated.",
        "Follow-up starts at the moment of prediction for every patient; features must be "
        "known at that moment.",
        "The Cox models assume proportional hazards (a feature's effect is constant over "
        "time); the forests, boosted trees and networks do not.",
    ]
    if result.outcome.competing.any() or result.spec.survival.competing_values:
        items.append(
            "Competing events end follow-up: the models are cause-specific, and a predicted "
            "risk is the risk without the competing event, which overstates the real "
            "(cumulative-incidence) risk when the competing event is common."
        )
    body = "<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"
    return Section("Assumptions to check", body)


def write_report(result: SurvivalStudyResult, path: Path) -> Path:
    """Write the report of ``result`` to ``path``."""
    sections = [
        _cohort_section(result),
        _candidates_section(result),
        _selected_section(result),
        _individual_section(result),
        _explanation_section(result),
        _holdout_section(result),
        _lower_bound_section(result),
        _assumptions_section(result),
    ]
    html = render(f"Survival study: {result.spec.name}",
                  [s for s in sections if s is not None],
                  subtitle=result.spec.description or result.spec.intended_use)
    path.write_text(html, encoding="utf-8")
    return path
