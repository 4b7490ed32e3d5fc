"""What a treatment-effect study leaves behind: model directory, ``metrics.json``, report.

The model directory is the same typed, hashed (and, with a key, signed) directory as
every study's (:mod:`medpredict.artifact`). Its metadata carries a ``treatment``
section (the column, the arms, what benefit means and the evidence for heterogeneity),
so ``medpredict predict`` and serving answer each patient's estimated benefit with its
interval.
"""

from __future__ import annotations

import json
from typing import Any

from medpredict.artifact import save_model
from medpredict.effects.report import write_report
from medpredict.effects.results import EffectStudyResult
from medpredict.model_metadata import ModelMetadata, study_metadata


def treatment_section(result: EffectStudyResult) -> dict[str, Any]:
    """The metadata's ``treatment`` section: what the saved model's benefit means."""
    section = result.spec.treatment
    return {
        "column": section.column,
        "treated_value": section.treated_value,
        "control_value": section.control_value,
        "benefit": section.benefit,
        "outcome": result.outcome.label,
        "horizon": result.outcome.horizon,
        "randomised": section.randomised,
        "intervals": section.intervals,
        "heterogeneity_detected": result.heterogeneity_detected,
        "average_benefit": result.average.to_dict(),
    }


def _metrics(result: EffectStudyResult) -> dict[str, dict[str, Any]]:
    metrics = {k: v.to_dict() for k, v in result.best.metrics.items()}
    metrics["average_benefit"] = result.average.to_dict()
    metrics |= {f"policy_{k}": v.to_dict() for k, v in result.policy.items()}
    return metrics


def model_metadata(result: EffectStudyResult) -> ModelMetadata:
    """The metadata saved beside the effect model."""
    spec = result.spec
    return study_metadata(
        spec,
        task=spec.task,
        positive_class=spec.positive_class,
        model=result.best_name,
        data_schema=result.cohort.schema.to_dict(),
        horizons=[] if result.outcome.horizon is None else [result.outcome.horizon],
        time_unit=spec.survival.time_unit if spec.survival else None,
        metrics=_metrics(result),
        training_rows=len(result.treated),
        training_data_sha256=result.data_sha256,
        treatment=treatment_section(result),
    )


def _table(frame: Any) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records")) if len(frame) else []


def metrics_summary(result: EffectStudyResult) -> dict[str, Any]:
    """metrics.json: every learner's held-out tests, the average effect, policy, tables."""
    treated = result.treated
    return {
        "study": result.spec.name,
        "task": "treatment_effect",
        "outcome": result.outcome.label,
        "benefit": result.spec.treatment.benefit,
        "selected_learner": result.best_name,
        "patients": int(treated.size),
        "treated": int(treated.sum()),
        "events": int(result.outcome.event.sum()),
        "randomised": result.spec.treatment.randomised,
        "assignment_probability": result.assignment,
        "overlap": result.overlap,
        "trimmed_rows": result.trimmed,
        "average_benefit": result.average.to_dict(),
        "heterogeneity_detected": result.heterogeneity_detected,
        "verdict": result.verdict,
        "policy": {k: v.to_dict() for k, v in result.policy.items()},
        "candidates": {
            name: {"metrics": {k: v.to_dict() for k, v in c.metrics.items()},
                   "fit_seconds": round(c.seconds, 3)}
            for name, c in result.candidates.items()
        },
        "subgroups": _table(result.subgroups),
        "benefit_quartiles": _table(result.quartiles),
        "seconds": round(result.seconds, 2),
    }


def write_outputs(result: EffectStudyResult) -> None:
    """Write the model directory, metrics.json and report.html under the run folder."""
    run_dir = result.spec.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    result.model_dir = save_model(run_dir / "model", result.final_model, model_metadata(result))
    (run_dir / "metrics.json").write_text(json.dumps(metrics_summary(result), indent=2))
    result.report_path = write_report(result, run_dir / "report.html")
