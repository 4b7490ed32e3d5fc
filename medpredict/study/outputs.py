"""What a finished study leaves behind: trust assessment, model directory, metrics, report.

:func:`write_outputs` writes under the study's run folder the model directory (with
:func:`model_metadata` and the trust layer's files), ``metrics.json``
(:func:`metrics_summary`) and ``report.html``. :func:`write_progress` keeps
``metrics.json`` current while candidates are still being evaluated.
"""

from __future__ import annotations

import json
from typing import Any

from sklearn.base import clone

from medpredict.artifact import save_model
from medpredict.data.datasets import DATASETS
from medpredict.model_metadata import ModelMetadata, study_metadata
from medpredict.spec import StudySpec
from medpredict.study.report import write_report
from medpredict.study.results import (
    CandidateFailure,
    CandidateResult,
    StudyResult,
    nested_summary,
    validation_text,
)
from medpredict.study.validation import development_size
from medpredict.trust.assess import assess


def _data_source(spec: StudySpec) -> str:
    if spec.data.dataset is not None:
        bundled = DATASETS[spec.data.dataset]
        return f"{bundled.description}. Source: {bundled.source}; licence {bundled.licence}."
    return f"{spec.data.path}"


def assess_trust(result: StudyResult) -> Any:
    """Explanations, fairness audit, conformal sets, overfitting checks and model card."""
    spec, development, best = result.spec, result.cohort, result.best
    quality = development.quality
    outcome = f"{spec.target}" + (
        f" (event: {result.positive_class})" if spec.task == "binary" else " (multi-class)"
    )
    card = {
        "intended_use": spec.intended_use or "Not stated in the study spec.",
        "data_source": spec.trust.data_source or _data_source(spec),
        "participants": spec.trust.participants
        or {
            "rows in the data": quality.rows_in,
            "rows used": quality.rows_used,
            **{f"rows excluded ({k})": len(v) for k, v in quality.excluded_rows.items()},
        },
        "outcome": spec.trust.outcome_definition or outcome,
        "model_building": {
            "candidates": ", ".join(result.candidates),
            "selected": result.best_name,
            "selection": f"{spec.selection_metric} of "
            + ("validation-row" if spec.validation.scheme == "fixed" else "out-of-fold")
            + " predictions",
            "validation": validation_text(result),
        },
    }
    return assess(
        result.final_model,
        development.X,
        development.y,
        best.oof_proba,
        development.sensitive,
        spec.trust,
        estimator=clone(best.estimator),
        patients=development.groups,
        threshold=next(iter(best.thresholds.values()), 0.5),
        metrics=best.metrics,
        validation=[h.kind for h in result.holdouts],
        card=card,
        title=spec.name,
        n_boot=min(spec.bootstrap, 200),
        seed=spec.seed,
    )


def model_metadata(result: StudyResult) -> ModelMetadata:
    """The metadata saved beside the model (what `predict` and `serve` rely on)."""
    spec = result.spec
    return study_metadata(
        spec,
        task=spec.task,
        positive_class=result.positive_class if spec.task == "binary" else None,
        classes=[str(c) for c in result.cohort.classes],
        model=result.best_name,
        data_schema=result.cohort.schema.to_dict(),
        thresholds=result.best.thresholds,
        metrics={k: v.to_dict() for k, v in result.best.metrics.items()},
        holdouts={
            h.kind: {k: v.to_dict() for k, v in h.metrics.items()} for h in result.holdouts
        },
        training_rows=development_size(result.folds),
        temporal_validation=result.temporal,
        failed_candidates={f.name: f.to_dict() for f in result.failures},
        training_data_sha256=result.data_sha256,
    )


def metrics_summary(result: StudyResult) -> dict[str, Any]:
    """metrics.json: every candidate's cross-validated metrics, the nested CV, each hold-out's
    (and, for a timeline study, its reading, quarantine and cohort flow under ``timeline``)."""
    timeline = {} if result.timeline is None else {"timeline": result.timeline.to_dict()}
    return {
        "study": result.spec.name,
        "selected_model": result.best_name,
        "selection_metric": result.spec.selection_metric,
        "rows": len(result.cohort.y),
        "seconds": round(result.seconds, 2),
        "candidates": _candidates_summary(result.candidates),
        "failed_candidates": {f.name: f.to_dict() for f in result.failures},
        "nested_cross_validation": nested_summary(result),
        "temporal_validation": result.temporal,
        "holdouts": {
            h.kind: {
                "rows": len(h.cohort.y),
                "metrics": {k: v.to_dict() for k, v in h.metrics.items()},
            }
            for h in result.holdouts
        },
        **timeline,
    }


def _candidates_summary(candidates: dict[str, CandidateResult]) -> dict[str, Any]:
    return {
        name: {
            "metrics": {k: v.to_dict() for k, v in c.metrics.items()},
            "thresholds": c.thresholds,
            "fit_seconds": round(c.fit_seconds, 3),
            "delta_vs_best": c.delta_vs_best.to_dict() if c.delta_vs_best else None,
        }
        for name, c in candidates.items()
    }


def write_progress(
    spec: StudySpec, candidates: dict[str, CandidateResult], failures: list[CandidateFailure]
) -> None:
    """metrics.json while the study runs, so finished candidates survive an interruption."""
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        "study": spec.name,
        "status": "running: candidates evaluated so far",
        "selection_metric": spec.selection_metric,
        "candidates": _candidates_summary(candidates),
        "failed_candidates": {f.name: f.to_dict() for f in failures},
    }
    (spec.run_dir / "metrics.json").write_text(json.dumps(summary, indent=2))


def write_outputs(result: StudyResult) -> None:
    """Write the model directory, metrics.json and report.html under the run folder."""
    run_dir = result.spec.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    extra = result.trust.extra_files() if result.trust is not None else {}
    result.model_dir = save_model(
        run_dir / "model", result.final_model, model_metadata(result), extra_files=extra
    )
    (run_dir / "metrics.json").write_text(json.dumps(metrics_summary(result), indent=2))
    result.report_path = write_report(result, run_dir / "report.html")
