"""The self-contained HTML report of a treatment-effect study.

Sections: the cohort by arm, the average effect, overlap of the arms (propensity
histograms), whether the heterogeneity is real (RATE of every learner, the TOC curve),
the policy value, the subgroup and benefit-quartile tables, the individual estimates
with their intervals, and the assumptions a clinician should check.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from medpredict.effects.evaluation import toc_curve
from medpredict.effects.results import EffectStudyResult
from medpredict.evaluation.bootstrap import Estimate
from medpredict.report.html import Section, callout, escape, figure, render, table

EXAMPLES = 8


def _points(estimate: Estimate) -> str:
    """A difference in risk in percentage points with its interval."""
    return (f"{100 * estimate.value:+.1f} points (95% CI {100 * estimate.low:+.1f} to "
            f"{100 * estimate.high:+.1f})")


def _benefit_words(result: EffectStudyResult) -> str:
    return ("the reduction in " if result.spec.treatment.benefit == "fewer_events"
            else "the increase in ") + result.outcome.label


def _cohort_section(result: EffectStudyResult) -> Section:
    section, t = result.spec.treatment, result.treated
    event = result.outcome.event
    rows = [
        ("patients", t.size),
        (f"treated ({section.column} = {section.treated_value})",
         f"{int(t.sum())}, {int(event[t == 1].sum())} with the event"),
        (f"control ({section.column} = {section.control_value})",
         f"{int((t == 0).sum())}, {int(event[t == 0].sum())} with the event"),
        ("outcome", result.outcome.label),
        ("benefit", _benefit_words(result)),
        ("assignment", f"randomised, probability {result.assignment:.2f}"
         if result.assignment is not None else "observational (propensity modelled)"),
        ("learners", ", ".join(section.learners)),
        ("selected learner", f"{result.best_name} (lowest doubly robust loss)"),
        ("cross-fitting", f"{len(result.folds)} folds, grouped by patient"),
        ("study time", f"{result.seconds:.0f} s"),
    ]
    body = table(rows, ["", "value"])
    if result.outcome.horizon is not None:
        body += ("<p>Most patients' follow-up ends before the horizon, so the outcome each "
                 "learner models is the event by the horizon weighted by the inverse "
                 "probability of still being followed (Kaplan–Meier of censoring): its "
                 "average is the risk by the horizon when censoring is unrelated to the "
                 "patient.</p>")
    for warning in result.cohort.quality.warnings:
        body += callout(warning)
    return Section("Cohort", body)


def _average_section(result: EffectStudyResult) -> Section:
    average = result.average
    direction = "helped" if average.value > 0 else "harmed"
    certain = average.low > 0 or average.high < 0
    body = (
        f"<p>Average benefit of treatment, {escape(_benefit_words(result))}: "
        f"<b>{escape(_points(average))}</b>, the mean of held-out doubly robust scores "
        f"({result.spec.bootstrap} bootstrap resamples).</p>"
    )
    interval = ("the interval excludes 0" if certain
                else "but the interval includes 0: no average effect is established")
    body += callout(f"On average the treatment {direction} ({interval}).", "note")
    return Section("Average effect", body)


def _propensity_figure(result: EffectStudyResult) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    bins = np.linspace(0, 1, 41)
    for arm, label, colour in ((1, "treated", "#c0392b"), (0, "control", "#2c7fb8")):
        ax.hist(result.propensity[result.treated == arm], bins=bins, alpha=0.55,
                label=label, color=colour)
    for bound in result.spec.treatment.overlap_bounds:
        ax.axvline(bound, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("estimated probability of treatment (held out)")
    ax.set_ylabel("patients")
    ax.legend()
    return fig


def _overlap_section(result: EffectStudyResult) -> Section:
    o, (low, high) = result.overlap, result.spec.treatment.overlap_bounds
    rows = [[arm, f"{o[f'min_{arm}']:.3f}", f"{o[f'max_{arm}']:.3f}",
             f"{o[f'outside_{arm}']:.1%}"] for arm in ("treated", "control")]
    body = (
        "<p>Each patient's probability of treatment given the features, estimated by "
        "logistic regression on the other folds. Effects can be estimated only where "
        "both arms hold comparable patients: propensities between "
        f"{low:g} and {high:g} (dashed lines).</p>"
    )
    body += figure(_propensity_figure(result), "propensity by arm")
    body += table(rows, ["arm", "lowest propensity", "highest", f"outside {low:g}–{high:g}"])
    if result.assignment is not None:
        body += callout(
            "Treatment was assigned at random: the doubly robust scores use the known "
            f"assignment probability {result.assignment:.2f}, and overlap holds by design "
            "(the estimated propensities show only chance imbalance).", "note")
    if result.trimmed:
        body += callout(
            f"{len(result.trimmed)} patient(s) with a propensity outside {low:g}–{high:g} "
            "were left out (treatment.trim_outside_overlap): the effects describe the "
            "remaining patients only. Table rows left out: "
            f"{', '.join(map(str, result.trimmed[:30]))}"
            f"{' and more' if len(result.trimmed) > 30 else ''}.")
    return Section("Overlap of the arms", body)


def _toc_figure(result: EffectStudyResult) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, candidate in result.candidates.items():
        q, toc = toc_curve(candidate.benefit, result.scores)
        ax.plot(q, 100 * toc, label=name, linewidth=2 if name == result.best_name else 1)
    ax.axhline(0, color="grey", linewidth=1)
    ax.set_xlabel("share of patients treated, highest estimated benefit first")
    ax.set_ylabel("benefit over the average (points)")
    ax.set_ylim(*np.clip(ax.get_ylim(), -50, 50))
    ax.legend()
    return fig


def _heterogeneity_section(result: EffectStudyResult) -> Section:
    names = list(result.candidates)
    rows = [[name, str(c.metrics["autoc"]), str(c.metrics["qini"]), str(c.metrics["dr_loss"]),
             f"{c.seconds:.1f}"] for name, c in result.candidates.items()]
    body = (
        "<p>Each learner estimated the benefit of patients it was not fitted on. Ranking "
        "them by that estimate and treating the top share first, the targeting operator "
        "characteristic (TOC) is how much more the treated top benefits than the average "
        "patient, measured with doubly robust scores from out-of-fold models. RATE "
        "(Yadlowsky et al. 2023) summarises it: AUTOC weighs the top of the ranking most, "
        "Qini all of it; an interval above 0 is the evidence that the ranking is real. The "
        "doubly robust loss (mean squared distance to the scores) chose the learner.</p>"
    )
    body += callout(result.verdict, "note" if result.heterogeneity_detected else "warn")
    body += table(rows, ["learner", "AUTOC", "Qini", "doubly robust loss", "fit s (all folds)"],
                  highlight=names.index(result.best_name))
    body += figure(_toc_figure(result), "targeting operator characteristic")
    return Section("Is the heterogeneity real?", body)


def _policy_section(result: EffectStudyResult) -> Section:
    policy = result.policy
    rows = [
        ["treat if estimated benefit > 0 "
         f"({policy['treated_share'].value:.0%} treated)", _points(policy["treat_by_benefit"])],
        ["treat everyone", _points(policy["treat_all"])],
        ["treat no one", "0 (reference)"],
    ]
    body = ("<p>Average benefit per patient over treating no one, under each policy, "
            f"with the {escape(result.best_name)} estimates made out of fold.</p>")
    return Section("Policy value", body + table(rows, ["policy", "benefit per patient"]))


def _group_rows(frame: pd.DataFrame, label: str | None = None) -> list[list[str]]:
    return [[label or row.get("subgroup", ""), row["group"], row["patients"],
             f"{100 * row['effect']:+.1f} ({100 * row['low']:+.1f} to {100 * row['high']:+.1f})",
             f"{100 * row['estimated']:+.1f}"] for _, row in frame.iterrows()]


def _subgroup_section(result: EffectStudyResult) -> Section:
    header = ["by", "group", "patients", "benefit, doubly robust (points, 95% CI)",
              "mean estimated (points)"]
    rows = _group_rows(result.quartiles, "estimated benefit quartile")
    if len(result.subgroups):
        rows = _group_rows(result.subgroups) + rows
    body = (
        "<p>The average benefit within each declared subgroup and within each quartile of "
        "estimated benefit (Q4: highest), from held-out doubly robust scores, beside the "
        "learner's mean estimate. Quartiles whose intervals overlap widely are the picture "
        "of no detectable heterogeneity. Many subgroups tested at once will show some "
        "differences by chance.</p>"
    )
    return Section("Subgroups", body + table(rows, header))


def _individual_figure(result: EffectStudyResult) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.hist(100 * result.best.benefit, bins=40, color="#5e3c99")
    ax.axvline(0, color="grey", linewidth=1)
    ax.axvline(100 * result.average.value, color="black", linestyle="--", linewidth=1,
               label="average (doubly robust)")
    ax.set_xlabel("estimated benefit (points), held out")
    ax.set_ylabel("patients")
    ax.legend()
    return fig


def _individual_section(result: EffectStudyResult) -> Section:
    body = figure(_individual_figure(result), "distribution of estimated benefit")
    model = result.final_model
    if model.intervals:
        rows_shown = np.linspace(0, len(result.treated) - 1, EXAMPLES).astype(int)
        features = model.features(result.cohort.X.iloc[rows_shown])
        low, high = model.interval_of(features)
        benefit = model.benefit_of(features)
        rows = [[f"example {k + 1}", f"{100 * b:+.1f}", f"{100 * lo:+.1f} to {100 * hi:+.1f}"]
                for k, (b, lo, hi) in enumerate(zip(benefit, low, high, strict=True))]
        body += (
            f"<p>The saved model ({escape(result.best_name)}, refitted on all patients) "
            "gives each patient an estimate and a 95% interval: percentiles of "
            f"{model.intervals} refits on bootstrap resamples of the patients. The interval "
            "shows how far the estimate would move with other patients of the same kind; it "
            "does not cover errors of the assumptions below. Some patients, spread over the "
            "table:</p>")
        body += table(rows, ["patient", "benefit (points)", "95% interval"])
    return Section("Individual estimates", body)


def _assumptions_section(result: EffectStudyResult) -> Section:
    items = [
        "<b>No unmeasured confounding.</b> Everything that influenced both the treatment "
        "choice and the outcome is among the features. A randomised trial guarantees it; "
        "a registry or a hospital's records do not.",
        "<b>Overlap.</b> Every kind of patient had a real chance of either treatment "
        "(see the propensity histograms).",
        "<b>Consistency.</b> \"Treatment\" is one well-defined treatment, given as it will "
        "be given in practice, and one patient's treatment does not change another's outcome.",
        "<b>Features measured before the treatment was chosen.</b> A feature affected by "
        "the treatment hides part of its effect.",
    ]
    if result.outcome.horizon is not None:
        items.append("<b>Censoring independent of the outcome.</b> Patients whose follow-up "
                     "ended early are like those still followed (e.g. the study closed), "
                     "in both arms.")
    return Section("Assumptions to check",
                   "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>")


def write_report(result: EffectStudyResult, path: Path) -> Path:
    """Write the report of ``result`` to ``path``."""
    sections = [
        _cohort_section(result),
        _average_section(result),
        _overlap_section(result),
        _heterogeneity_section(result),
        _policy_section(result),
        _subgroup_section(result),
        _individual_section(result),
        _assumptions_section(result),
    ]
    html = render(f"Treatment-effect study: {result.spec.name}", sections,
                  subtitle=result.spec.description or result.spec.intended_use)
    path.write_text(html, encoding="utf-8")
    return path
