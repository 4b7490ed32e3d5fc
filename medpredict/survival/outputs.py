"""What a survival study leaves behind: model directory, ``metrics.json``, ``report.html``.

The model directory is the same typed, hashed (and, with a key, signed) directory as
every study's (:mod:`medpredict.artifact`), with ``task: survival``, the horizons and
the time unit in its metadata, so ``medpredict predict`` and serving know to answer
with risks at the horizons, the calibrated lower bound on the time to the event
(``lower_bound``: :meth:`medpredict.survival.conformal.LowerBound.to_dict`), and the
explanation background (no real patient's row:
:func:`medpredict.trust.explanations.make_background`) for their top factors.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from medpredict.artifact import BACKGROUND_FILE, save_model
from medpredict.evaluation.bootstrap import Estimate
from medpredict.model_metadata import ModelMetadata, study_metadata
from medpredict.survival.report import write_report
from medpredict.survival.results import SurvivalStudyResult
from medpredict.trust.explanations import background_to_json

NOT_ESTIMABLE = "not estimable on these rows (e.g. no patient followed past the horizon)"


def stored(estimate: Estimate) -> dict[str, Any]:
    """An estimate as JSON: a value that could not be estimated says so instead of NaN."""
    if not math.isfinite(estimate.value):
        return {"value": None, "low": None, "high": None, "not_meaningful": NOT_ESTIMABLE}
    return {k: (v if math.isfinite(v) else None) for k, v in estimate.to_dict().items()}


def _all(metrics: dict[str, Estimate]) -> dict[str, dict[str, Any]]:
    return {k: stored(v) for k, v in metrics.items()}


def model_metadata(result: SurvivalStudyResult) -> ModelMetadata:
    """The metadata saved beside the survival model."""
    spec = result.spec
    return study_metadata(
        spec,
        task="survival",
        positive_class=spec.positive_class,
        model=result.best_name,
        data_schema=result.cohort.schema.to_dict(),
        horizons=spec.survival.horizons,
        time_unit=spec.survival.time_unit,
        lower_bound=None if result.lower_bound is None else result.lower_bound.to_dict(),
        metrics=_all(result.best.metrics),
        holdouts={h.kind: _all(h.metrics) for h in result.holdouts},
        training_rows=len(result.outcome),
        failed_candidates={f.name: f.to_dict() for f in result.failures},
        training_data_sha256=result.data_sha256,
    )


def _median(values: np.ndarray | None) -> float | None:
    if values is None or not np.isfinite(values).any():
        return None
    return float(np.nanmedian(values))


def lower_bound_summary(result: SurvivalStudyResult) -> dict[str, Any] | None:
    """The calibrated lower bound, its cross-validated coverage and median (development)."""
    if result.lower_bound is None:
        return None
    coverage = result.lower_bound_coverage
    return {
        **result.lower_bound.to_dict(),
        "cross_validated_coverage": None if coverage is None else stored(coverage),
        "cross_validated_median": _median(result.lower_bounds),
    }


def metrics_summary(result: SurvivalStudyResult) -> dict[str, Any]:
    """metrics.json: every candidate's cross-validated metrics and each hold-out's."""
    outcome = result.outcome
    return {
        "study": result.spec.name,
        "task": "survival",
        "selected_model": result.best_name,
        "selection_metric": result.spec.selection_metric,
        "rows": len(outcome),
        "events": int(outcome.event.sum()),
        "competing_events": int(outcome.competing.sum()),
        "horizons": result.spec.survival.horizons,
        "time_unit": result.spec.survival.time_unit,
        "seconds": round(result.seconds, 2),
        "candidates": {
            name: {
                "metrics": _all(c.metrics),
                "fit_seconds": round(c.seconds, 3),
                "delta_vs_best": _all(c.delta) if c.delta else None,
            }
            for name, c in result.candidates.items()
        },
        "failed_candidates": {f.name: f.to_dict() for f in result.failures},
        "lower_bound": lower_bound_summary(result),
        "holdouts": {
            h.kind: {"rows": len(h.outcome), "events": int(h.outcome.event.sum()),
                     "metrics": _all(h.metrics),
                     "lower_bound_coverage": None if h.lower_bound_coverage is None
                     else stored(h.lower_bound_coverage),
                     "lower_bound_median": _median(h.lower_bounds)}
            for h in result.holdouts
        },
    }


def write_outputs(result: SurvivalStudyResult) -> None:
    """Write the model directory, metrics.json and report.html under the run folder."""
    run_dir = result.spec.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    extra = {} if result.background is None else {
        BACKGROUND_FILE: background_to_json(result.background)
    }
    result.model_dir = save_model(run_dir / "model", result.final_model, model_metadata(result),
                                  extra_files=extra)
    (run_dir / "metrics.json").write_text(json.dumps(metrics_summary(result), indent=2))
    result.report_path = write_report(result, run_dir / "report.html")
