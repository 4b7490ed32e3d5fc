"""The HTML report of a tabular study: data quality, model comparison, nested
cross-validation, curves, thresholds.

Studies with a feature of a given kind can get extra sections from the module that
handles that kind (:func:`register_kind_sections`); image studies get Grad-CAM overlays.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from medpredict.evaluation.bootstrap import Estimate
from medpredict.report import plots
from medpredict.report.html import Section, callout, escape, figure, render, table
from medpredict.study.results import temporal_text, validation_text

if TYPE_CHECKING:
    from medpredict.study.results import CandidateFailure, StudyResult

_HEADLINE = ("auroc", "auprc", "brier", "calibration_intercept", "calibration_slope", "ece")
_KIND_SECTIONS: dict[str, list[str]] = {}
_MULTICLASS = ("auroc", "macro_f1", "accuracy", "brier", "log_loss")


def _headline(result: StudyResult) -> tuple[str, ...]:
    return _HEADLINE if result.spec.task == "binary" else _MULTICLASS


def register_kind_sections(kind: str, provider: str) -> None:
    """Add report sections to every study with a feature column of ``kind``.

    ``provider`` names a function as ``"module:function"``; the module is imported only
    when a study has such a column, so its dependencies stay optional. The function is
    called with keyword arguments ``model`` (the final model), ``name`` (its candidate
    name), ``X`` (feature table of the first hold-out), ``y`` (class indices),
    ``classes``, ``columns`` (the study's columns of ``kind``), ``where`` (the hold-out's
    kind) and ``seed``, and returns a list of sections. Studies without a hold-out get no
    such sections: rows the final model was fitted on would flatter it.

    Examples
    --------
    >>> register_kind_sections("image", "medpredict.imaging.report:image_sections")
    >>> _KIND_SECTIONS["image"]
    ['medpredict.imaging.report:image_sections']
    """
    providers = _KIND_SECTIONS.setdefault(kind, [])
    if provider not in providers:
        providers.append(provider)


register_kind_sections("image", "medpredict.imaging.report:image_sections")


def _provider(target: str) -> Callable[..., list[Section]]:
    module, _, name = target.partition(":")
    provider: Callable[..., list[Section]] = getattr(importlib.import_module(module), name)
    return provider


def kind_sections(result: StudyResult) -> list[Section]:
    """The registered extra sections for the study's feature kinds (see above)."""
    if not result.holdouts:
        return []
    holdout = result.holdouts[0]
    sections = []
    for kind, providers in _KIND_SECTIONS.items():
        columns = [f.name for f in result.cohort.schema.features if f.kind == kind]
        if not columns:
            continue
        arguments: dict[str, Any] = {
            "model": result.final_model,
            "name": result.best_name,
            "X": holdout.cohort.X,
            "y": holdout.cohort.y,
            "classes": list(result.cohort.classes),
            "columns": columns,
            "where": holdout.kind,
            "seed": result.spec.seed,
        }
        for target in providers:
            sections += _provider(target)(**arguments)
    return sections


def is_fixed(result: StudyResult) -> bool:
    """Whether the study used given train/validation/test splits (``scheme: fixed``)."""
    return result.spec.validation.scheme == "fixed"


def internal_tag(result: StudyResult) -> str:
    """How the report labels the candidates' internal predictions: ``CV`` or ``validation``."""
    return "validation" if is_fixed(result) else "CV"


def _fixed_note(result: StudyResult) -> str:
    train, held = result.folds[0]
    audit = " and the fairness audit" if result.spec.sensitive_attributes else ""
    return callout(
        f"Candidates were fitted on the {len(train)} training rows (networks early-stop on "
        "an inner split of those rows) and scored on the "
        f"{len(held)} validation rows; those predictions chose the model and fixed its "
        f"operating thresholds, the conformal sets{audit}. The selected model was then "
        f"refitted on training and validation rows together ({len(train) + len(held)}) and "
        "scored once on the test rows, which no choice saw.",
        kind="note",
    )


def summary_section(result: StudyResult) -> Section:
    spec = result.spec
    best = result.best
    internal = "validation split" if is_fixed(result) else "cross-validated (out-of-fold)"
    rows = [
        [internal, len(result.cohort.y)]
        + [str(best.metrics[m]) for m in _headline(result)[:3]]
    ]
    if result.nested is not None:
        rows.append(
            ["nested cross-validation (whole procedure)", len(result.cohort.y)]
            + [str(result.nested.metrics[m]) for m in _headline(result)[:3]]
        )
    for h in result.holdouts:
        rows.append(
            [f"{h.kind} validation", len(h.cohort.y)]
            + [str(h.metrics[m]) for m in _headline(result)[:3]]
        )
    notes = [_fixed_note(result)] if is_fixed(result) else []
    trust_warns_internal = result.trust is not None and result.trust.overfitting is not None
    if not result.holdouts and not trust_warns_internal:
        notes.append(
            callout(
                "Validation is internal only (cross-validation on the development data). "
                "Performance in another hospital, population or period may be lower: validate "
                "externally before clinical use."
            )
        )
    for failure in result.failures:
        notes.append(callout(f"Candidate {failure.name} failed and was left out: {failure.reason}"))
    for warning in result.cohort.quality.warnings:
        notes.append(callout(warning))
    if result.trust is not None:
        notes += [callout(w) for w in result.trust.warnings]
    positive = (
        f"positive class <b>{escape(result.positive_class)}</b>"
        if spec.task == "binary"
        else f"classes {escape(', '.join(map(str, result.cohort.classes)))}"
    )
    body = (
        f"<p>{escape(spec.description)}</p>"
        + (f"<p><b>Intended use.</b> {escape(spec.intended_use)}</p>" if spec.intended_use else "")
        + f"<p>Outcome <b>{escape(spec.target)}</b> ({spec.task}, {positive}). "
        f"Selected model: <b>{escape(result.best_name)}</b> by {escape(spec.selection_metric)} "
        f"of {'validation' if is_fixed(result) else 'out-of-fold'} predictions "
        f"({escape(validation_text(result))}). Estimates are shown with "
        f"bootstrap 95% confidence intervals ({spec.bootstrap} resamples).</p>"
        + (
            f"<p><b>Temporal validation</b>: {escape(temporal_text(result.temporal))}.</p>"
            if result.temporal
            else ""
        )
        + table(rows, ["evaluation", "rows", *_headline(result)[:3]])
        + "".join(notes)
    )
    return Section("Summary", body)


def data_quality_section(result: StudyResult) -> Section:
    quality = result.cohort.quality
    schema = result.cohort.schema
    rows = [
        ["rows in the data", quality.rows_in],
        ["rows used for modelling", quality.rows_used],
        *[[f"rows excluded: {reason}", len(r)] for reason, r in quality.excluded_rows.items()],
        ["feature columns", len(schema.features)],
        *[[f"column left out: {c}", why] for c, why in quality.excluded_columns.items()],
        ["events per variable", f"{quality.events_per_variable:.1f}"],
    ]
    balance = table(
        [
            [c, n, f"{n / max(sum(quality.class_counts.values()), 1):.1%}"]
            for c, n in quality.class_counts.items()
        ],
        ["class", "rows", "share"],
    )
    features = table(
        [
            [
                f.name,
                f.kind + (" (inferred)" if f.inferred else ""),
                f"{quality.missingness.get(f.name, 0.0):.1%}",
                f"{f.min:g} – {f.max:g}"
                if f.min is not None
                else ", ".join(map(str, f.categories[:8])),
            ]
            for f in schema.features
        ],
        ["column", "kind", "missing", "range / categories"],
    )
    epv = ""
    if quality.events_per_variable < 10:
        epv = callout(
            f"Only {quality.events_per_variable:.1f} events per candidate predictor: models may "
            "overfit; prefer penalised models and treat performance estimates with caution."
        )
    body = (
        table(rows, ["item", "value"])
        + epv
        + "<h3>Class balance</h3>"
        + balance
        + "<h3>Features, kinds and missingness</h3>"
        + features
    )
    return Section("Data quality", body)


def comparison_section(result: StudyResult) -> Section:
    metric = result.spec.selection_metric
    names = list(result.candidates)
    rows = []
    for name in names:
        c = result.candidates[name]
        delta = "—" if c.delta_vs_best is None else str(c.delta_vs_best)
        rows.append(
            [name]
            + [str(c.metrics[m]) for m in _headline(result)]
            + [delta, f"{c.fit_seconds:.2f}"]
        )
    header = ["model", *_headline(result), f"{metric}: best − model", "train s (all folds)"]
    note = (
        "<p>Out-of-fold estimates; the highlighted row is the selected model. The difference "
        "column is a paired bootstrap: an interval that excludes 0 means the selected model "
        "is better beyond chance on this data.</p>"
    )
    failed = _failures_table("Failed candidates", result.failures)
    return Section(
        "Model comparison",
        note + table(rows, header, highlight=names.index(result.best_name)) + failed,
    )


def nested_section(result: StudyResult) -> Section:
    """Selected model vs whole procedure (nested CV), the optimism, each outer fold's winner."""
    plan, nested = result.nested_plan, result.nested
    if nested is None:
        return Section(
            "Nested cross-validation",
            callout(f"Nested cross-validation was not run: {plan.reason}.", kind="note"),
        )
    metric = result.spec.selection_metric
    n_candidates = len(result.spec.model_specs)
    names = list(_headline(result)) + [
        name for name in nested.metrics if "@" in name and name in result.best.metrics
    ]
    comparison = table(
        [
            [
                name,
                str(result.best.metrics[name]),
                str(nested.metrics[name]),
                str(nested.optimism[name]),
            ]
            for name in names
        ],
        [
            "metric",
            f"selected model ({result.best_name}, cross-validated)",
            "whole procedure (nested)",
            "optimism: selected − nested",
        ],
    )
    folds = table(
        [
            [
                f.fold,
                f.test_rows,
                f.winner,
                _number(f.inner_score),
                _number(f.test_score),
                ", ".join(f"{label} {risk:.3f}" for label, risk in f.thresholds.items()) or "—",
            ]
            for f in nested.folds
        ],
        [
            "outer fold",
            "test rows",
            "winner",
            f"inner {metric}",
            f"outer-test {metric}",
            "thresholds",
        ],
    )
    note = (
        f"<p>The selected model's estimate is the best of {n_candidates} candidates' "
        "out-of-fold scores on the same folds, so it is optimistic. Nested cross-validation "
        "repeats the whole procedure inside each of the study's folds: on the outer-training "
        f"rows only, every candidate is {'searched' if result.spec.budget else 'cross-validated'} "
        f"on {nested.inner_folds} inner folds, the best by {escape(metric)} is refitted with "
        "its thresholds fixed on its inner predictions, and it predicts the outer-test rows. "
        "The pooled outer-test predictions estimate how the procedure does on patients it "
        "never saw. Optimism is a paired bootstrap over the same resamples; for Brier score, "
        "log loss and ECE lower is better, so optimism there is negative. "
        f"Why it ran: {escape(plan.reason)}; it took {nested.seconds:.0f} s.</p>"
    )
    failed = _failures_table("Candidates that failed inside an outer fold", nested.failures)
    return Section(
        "Nested cross-validation",
        note + comparison + "<h3>Winner of each outer fold</h3>" + folds + failed,
    )


def _number(value: float) -> str:
    return "—" if np.isnan(value) else f"{value:.3f}"


def _prediction_sets(result: StudyResult) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    sets = {
        f"{name} ({internal_tag(result)})": (result.cohort.y, c.oof_proba[:, 1])
        for name, c in result.candidates.items()
    }
    for h in result.holdouts:
        sets[f"{result.best_name} ({h.kind})"] = (h.cohort.y, h.proba[:, 1])
    return sets


def curves_section(result: StudyResult) -> Section:
    sets = _prediction_sets(result)
    body = (
        '<div class="figs">'
        + figure(plots.roc_figure(sets), "ROC curves")
        + figure(plots.pr_figure(sets), "precision-recall curves")
        + "</div>"
    )
    return Section("Discrimination", body)


def _best_internal(result: StudyResult) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    label = f"{result.best_name} ({internal_tag(result)})"
    return {label: (result.cohort.y, result.best.oof_proba[:, 1])}


def calibration_section(result: StudyResult) -> Section:
    best = _best_internal(result)
    for h in result.holdouts:
        best[f"{result.best_name} ({h.kind})"] = (h.cohort.y, h.proba[:, 1])
    rows = [
        [label]
        + [
            str(_metrics_for(result, label)[m])
            for m in ("calibration_intercept", "calibration_slope", "ece", "brier")
        ]
        for label in best
    ]
    body = figure(plots.calibration_figure(best), "calibration curve") + table(
        rows, ["predictions", "intercept (ideal 0)", "slope (ideal 1)", "ECE", "Brier"]
    )
    return Section("Calibration", body)


def _metrics_for(result: StudyResult, label: str) -> dict[str, Estimate]:
    for h in result.holdouts:
        if label.endswith(f"({h.kind})"):
            return h.metrics
    return result.best.metrics


def thresholds_section(result: StudyResult) -> Section:
    rows = []
    evaluations = [(internal_tag(result), result.best.metrics)]
    evaluations += [(h.kind, h.metrics) for h in result.holdouts]
    for label, risk in result.best.thresholds.items():
        for where, metrics in evaluations:
            rows.append(
                [label, f"{risk:.3f}", where]
                + [
                    str(metrics[f"{m}@{label}"])
                    for m in ("sensitivity", "specificity", "ppv", "npv")
                ]
            )
    note = (
        "<p>Thresholds are fixed on the development "
        f"({'validation' if is_fixed(result) else 'out-of-fold'}) predictions and applied "
        "unchanged to hold-out data.</p>"
    )
    return Section(
        "Operating thresholds",
        note
        + table(
            rows,
            [
                "operating point",
                "risk threshold",
                "data",
                "sensitivity",
                "specificity",
                "PPV",
                "NPV",
            ],
        ),
    )


def decision_section(result: StudyResult) -> Section:
    sets = _best_internal(result)
    for h in result.holdouts:
        sets[f"{result.best_name} ({h.kind})"] = (h.cohort.y, h.proba[:, 1])
    body = (
        "<p>Net benefit of acting on the model at each risk threshold, against treating "
        "everyone or no one (Vickers &amp; Elkin 2006). The treat-all line uses the "
        "development prevalence.</p>"
        + figure(plots.decision_curve_figure(sets, result.spec.decision_curve), "decision curve")
    )
    return Section("Decision curve", body)


def spec_section(result: StudyResult) -> Section:
    resolved = yaml.safe_dump(result.spec.model_dump(mode="json"), sort_keys=False)
    rows = [
        ["training data sha256", result.data_sha256],
        ["model directory", str(result.model_dir or "not saved")],
        ["seed", result.spec.seed],
        ["wall time (s)", f"{result.seconds:.1f}"],
    ]
    return Section(
        "Resolved study spec", table(rows, ["item", "value"]) + f"<pre>{escape(resolved)}</pre>"
    )


def study_sections(result: StudyResult) -> list[Section]:
    """All sections of a study report, in reading order (a timeline study's first)."""
    sections: list[Section] = []
    if result.timeline is not None:
        from medpredict.timeline.report import timeline_sections

        sections += timeline_sections(result)
    sections += [summary_section(result), data_quality_section(result), comparison_section(result)]
    if result.nested_plan is not None:
        sections.append(nested_section(result))
    if result.search is not None:
        from medpredict.study.search import leaderboard_section

        sections.append(leaderboard_section(result.search))
    if result.spec.task == "binary":
        sections += [
            curves_section(result),
            calibration_section(result),
            thresholds_section(result),
            decision_section(result),
        ]
    sections += kind_sections(result)
    if result.trust is not None:
        sections += result.trust.sections
    sections.append(spec_section(result))
    return sections


def write_report(result: StudyResult, path: Path) -> Path:
    """Render the study report to ``path`` (self-contained HTML)."""
    title = f"medpredict study: {result.spec.name}"
    page = render(
        title,
        study_sections(result),
        subtitle="Disease-risk model development and validation report",
    )
    path.write_text(page, encoding="utf-8")
    return path


def _failures_table(title: str, failures: list[CandidateFailure]) -> str:
    """Failed candidates with their reasons and the table rows they named ("" if none)."""
    if not failures:
        return ""
    return f"<h3>{title}</h3>" + table(
        [[f.name, f.reason, ", ".join(map(str, f.rows)) or "—"] for f in failures],
        ["model", "reason", "table rows named"],
    )
