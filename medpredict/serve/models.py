"""The models a service answers for: loaded once, verified, reloadable by name.

A :class:`ServedModel` wraps a model directory (see :mod:`medpredict.artifact`):
it validates rows against the saved schema, predicts the calibrated risk, puts it
in a risk band, and adds the conformal prediction set and the top factors when
the directory carries what they need.

Examples
--------
>>> model = ServedModel.from_dir("runs/pima/model")  # doctest: +SKIP
>>> model.predict([model.example_row()])[0].band.label  # doctest: +SKIP
'moderate'
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medpredict.artifact import BACKGROUND_FILE, METADATA_FILE, LoadedModel, load_model
from medpredict.data.schema import Schema
from medpredict.predict import (
    NonFiniteError,
    effect_columns,
    predict_proba_checked,
    predicted_classes,
    survival_columns,
)
from medpredict.serve.bands import Band, band_for, risk_bands
from medpredict.serve.config import ServeSettings
from medpredict.serve.fastpath import fast_pipeline
from medpredict.serve.rows import RowValidationError, RowValidator, ValidatedRows
from medpredict.trust.conformal import ATYPICAL, CONFIDENT, UNCERTAIN, ConformalSets
from medpredict.trust.explanations import explain
from medpredict.trust.runtime import has_trust_files, load_trust

logger = logging.getLogger("medpredict.serve")


class UnknownModelError(KeyError):
    """No served model has this name."""


@dataclass
class RowPrediction:
    """What the service answers for one patient."""

    risk: float | None
    band: Band | None
    probabilities: dict[str, float]
    prediction: str
    conformal_set: list[str] | None
    conformal_status: str | None
    factors: list[dict[str, Any]] | None
    warnings: list[str]
    horizon_risks: list[dict[str, Any]] | None = None
    median_survival: float | None = None
    survival_lower_bound: float | None = None
    assured_event_free_to_first_horizon: bool | None = None
    benefit: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form used in API responses and the audit log."""
        out = {
            "risk": self.risk,
            "risk_band": self.band.to_dict() if self.band else None,
            "probabilities": self.probabilities,
            "prediction": self.prediction,
            "conformal_set": self.conformal_set,
            "conformal_status": self.conformal_status,
            "top_factors": self.factors,
            "warnings": self.warnings,
        }
        if self.horizon_risks is not None:
            out["horizon_risks"] = self.horizon_risks
            out["median_survival"] = self.median_survival
            out["survival_lower_bound"] = self.survival_lower_bound
            out["assured_event_free_to_first_horizon"] = (
                self.assured_event_free_to_first_horizon
            )
        if self.benefit is not None:
            out["benefit"] = self.benefit
        return out


class ServedModel:
    """One loaded model directory with everything needed to answer requests."""

    def __init__(self, loaded: LoadedModel, top_k: int = 5) -> None:
        meta = loaded.metadata
        needed = {"version": meta.version, "task": meta.task, "schema": meta.data_schema}
        if meta.treatment is None:
            needed |= ({"horizons": meta.horizons} if meta.task == "survival"
                       else {"classes": meta.classes})
        missing = [k for k, v in needed.items() if not v]
        if missing:
            raise ValueError(f"{loaded.path / METADATA_FILE} lacks {', '.join(missing)}")
        self.loaded = replace(loaded, estimator=fast_pipeline(loaded.estimator))
        self.metadata = meta
        self.name: str = meta.name
        self.version: str = str(meta.version)
        self.sha256: str = loaded.sha256
        self.task: str = str(meta.task)
        self.classes: list[str] = meta.classes
        self.positive_class: str | None = meta.positive_class
        self.treatment: dict[str, Any] | None = meta.treatment
        self.validator = RowValidator(meta.data_schema)
        self.schema = Schema.from_dict(meta.data_schema)
        self.bands = risk_bands(meta.thresholds) if self.task == "binary" else []
        self.top_k = top_k
        self.loaded_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.conformal, self.background = self._trust_files()
        self.conformal_group = self._conformal_group()
        self.explanations = top_k > 0 and self.treatment is None and (
            self.background is not None if self.task == "survival" else self._can_explain()
        )

    @classmethod
    def from_dir(
        cls, directory: str | Path, top_k: int = 5, require_signature: bool = False
    ) -> ServedModel:
        """Verify and load a model directory (signed, if ``require_signature``)."""
        return cls(load_model(directory, require_signature), top_k)

    @property
    def identity(self) -> dict[str, str]:
        """Name, version and sha256: what the audit log and every answer record."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256}

    def _trust_files(self) -> tuple[ConformalSets | None, pd.DataFrame | None]:
        """The trust layer's conformal predictor and background, if the study saved them
        (a survival study saves the background only, a treatment-effect study neither)."""
        if self.treatment is not None:
            return None, None
        if self.task == "survival":
            if not self.loaded.has_file(BACKGROUND_FILE):
                return None, None
            from medpredict.survival.explain import stored_background

            return None, stored_background(self.loaded)
        if not has_trust_files(self.loaded):
            return None, None
        conformal, background = load_trust(self.loaded)
        return conformal, self.schema.validate(background)

    def _conformal_group(self) -> str | None:
        """The feature whose groups the conformal sets were calibrated in, if any."""
        if self.conformal is None or not len(self.conformal.group_names_):
            return None
        group = self.metadata.conformal_group
        if group not in self.validator.names:
            logger.warning("model %s: conformal sets are calibrated per %r, which requests "
                           "do not carry; serving without sets", self.name, group)
            self.conformal = None
            return None
        return group

    def _sets(self, proba: np.ndarray, frame: pd.DataFrame) -> list[list[str] | None]:
        """Each row's conformal set; None where the row's group was never calibrated."""
        if self.conformal is None:
            return [None] * len(frame)
        known = np.ones(len(frame), dtype=bool)
        groups = None
        if self.conformal_group is not None:
            groups = frame[self.conformal_group].astype(str).to_numpy()
            known = np.isin(groups, self.conformal.group_names_)
        out: list[list[str] | None] = [None] * len(frame)
        if known.any():
            sets = self.conformal.predict_set(
                proba[known], None if groups is None else groups[known]
            )
            for row, members in zip(np.flatnonzero(known), sets, strict=True):
                out[row] = [c for c, inside in zip(self.classes, members, strict=True) if inside]
        return out

    def _can_explain(self) -> bool:
        """Whether explanations work for this model and directory (tried on one row)."""
        probe = (
            self.background.head(1)
            if self.background is not None
            else self.validator.validate([self.example_row()]).frame
        )
        try:
            explain(self.loaded.estimator, probe, self.background)
        except (ValueError, TypeError) as error:
            logger.warning("model %s: explanations unavailable (%s)", self.name, error)
            return False
        return True

    def example_row(self) -> dict[str, Any]:
        """A valid input row: mid-range numbers, first categories (for docs and probes)."""
        values: dict[str, Any] = {}
        for f in self.validator.features:
            if f["kind"] == "numeric" and f.get("min") is not None:
                values[f["name"]] = round((f["min"] + f["max"]) / 2, 3)
            elif f["kind"] == "boolean":
                values[f["name"]] = False
            else:
                values[f["name"]] = (f.get("categories") or [None])[0]
        return values

    def predict(self, rows: list[dict[str, Any]]) -> list[RowPrediction]:
        """Validate ``rows`` and predict; raises ``RowValidationError`` on bad fields."""
        return self.predict_checked(self.validator.validate(rows))

    def predict_checked(self, checked: ValidatedRows) -> list[RowPrediction]:
        """Predict rows already validated by ``self.validator``.

        Raises
        ------
        RowValidationError
            Naming each row and field whose value is not finite after preprocessing.
        """
        frame = checked.frame
        if self.treatment is not None:
            return self._effects(checked)
        if self.task == "survival":
            return self._survival(checked)
        try:
            proba = predict_proba_checked(self.loaded.estimator, frame)
        except NonFiniteError as error:
            raise RowValidationError(_not_finite(error)) from None
        predicted = predicted_classes(proba, self.classes)
        factors = self._factors(frame, proba)
        sets = self._sets(proba, checked.frame)
        out = []
        for i, warnings in enumerate(checked.warnings):
            probabilities = {c: float(p) for c, p in zip(self.classes, proba[i], strict=True)}
            risk = probabilities[self.positive_class] if self.task == "binary" else None
            out.append(
                RowPrediction(
                    risk=risk,
                    band=band_for(risk, self.bands) if risk is not None else None,
                    probabilities=probabilities,
                    prediction=str(predicted[i]),
                    conformal_set=sets[i],
                    conformal_status=_status(sets[i]),
                    factors=factors[i] if factors else None,
                    warnings=warnings,
                )
            )
        return out

    def _survival(self, checked: ValidatedRows) -> list[RowPrediction]:
        """Risk of the event by each horizon and the median survival, row by row.

        With a calibrated lower bound in the model's metadata, each row also gets
        ``survival_lower_bound`` (at the stated confidence the event comes after it; the
        model's last time means "at least" that long) and
        ``assured_event_free_to_first_horizon``: False, "refer", when the bound is
        shorter than the first horizon, so the model cannot assure at that confidence
        that the patient stays event-free to it. Both are None for models saved
        without a bound.
        """
        try:
            scored = survival_columns(self.loaded, checked.frame)
        except NonFiniteError as error:
            raise RowValidationError(_not_finite(error)) from None
        unit = self.metadata.time_unit or ""
        horizons = self.metadata.horizons
        factors = None
        if self.explanations:
            from medpredict.survival.explain import horizon_attributions

            attribution = horizon_attributions(self.loaded.estimator, checked.frame,
                                               self.background, horizons[0])
            factors = [[{**f, "space": attribution.space} for f in row]
                       for row in attribution.top_factors(self.top_k)]
        out = []
        for i, warnings in enumerate(checked.warnings):
            risks = [float(scored[f"risk_{h:g}"].iloc[i]) for h in horizons]
            median = scored["median_survival"].iloc[i]
            median = None if np.isnan(median) else float(median)
            bound = (scored["survival_lower_bound"].iloc[i]
                     if "survival_lower_bound" in scored else np.nan)
            bound = None if np.isnan(bound) else float(bound)
            out.append(RowPrediction(
                risk=risks[0],
                band=None,
                probabilities={f"event by {h:g} {unit}".strip(): r
                               for h, r in zip(horizons, risks, strict=True)},
                prediction=f"median survival {median:g} {unit}".strip() if median is not None
                else "median survival beyond the model's follow-up",
                conformal_set=None,
                conformal_status=None,
                factors=None if factors is None else factors[i],
                warnings=warnings,
                horizon_risks=[{"horizon": h, "unit": unit, "risk": r}
                               for h, r in zip(horizons, risks, strict=True)],
                median_survival=median,
                survival_lower_bound=bound,
                assured_event_free_to_first_horizon=None if bound is None
                else bound >= horizons[0],
            ))
        return out

    def _effects(self, checked: ValidatedRows) -> list[RowPrediction]:
        """Each row's estimated benefit of the treatment, with its 95% interval."""
        try:
            scored = effect_columns(self.loaded, checked.frame)
        except NonFiniteError as error:
            raise RowValidationError(_not_finite(error)) from None
        treatment = self.treatment
        change = "reduction" if treatment["benefit"] == "fewer_events" else "increase"
        meaning = (f"{change} in the {treatment['outcome']} with {treatment['column']} = "
                   f"{treatment['treated_value']} rather than {treatment['control_value']}")
        caveat = None if treatment["heterogeneity_detected"] else (
            "no heterogeneity was detectable in the study: the average benefit is the best "
            "estimate for every patient")
        out = []
        for i, warnings in enumerate(checked.warnings):
            value = float(scored["benefit"].iloc[i])
            benefit = {"value": value, "meaning": meaning,
                       "average": treatment["average_benefit"]["value"]}
            text = f"estimated benefit {100 * value:+.1f} points"
            if "benefit_low" in scored:
                benefit["low"] = float(scored["benefit_low"].iloc[i])
                benefit["high"] = float(scored["benefit_high"].iloc[i])
                text += (f" (95% interval {100 * benefit['low']:+.1f} to "
                         f"{100 * benefit['high']:+.1f})")
            out.append(RowPrediction(
                risk=None, band=None, probabilities={}, prediction=f"{text}: {meaning}",
                conformal_set=None, conformal_status=None, factors=None,
                warnings=warnings if caveat is None else [*warnings, caveat],
                benefit=benefit,
            ))
        return out

    def _factors(
        self, frame: pd.DataFrame, proba: np.ndarray
    ) -> list[list[dict[str, Any]]] | None:
        if not self.explanations:
            return None
        attribution = explain(self.loaded.estimator, frame, self.background, proba=proba)
        return [
            [{**f, "space": attribution.space} for f in row]
            for row in attribution.top_factors(self.top_k)
        ]

    def summary(self) -> dict[str, Any]:
        """Inventory entry for administrators: identity, provenance and metrics."""
        meta = self.metadata
        return {
            **self.identity,
            "path": str(self.loaded.path),
            "loaded_at": self.loaded_at,
            "created": meta.created,
            "model": meta.model,
            "task": self.task,
            "target": meta.target,
            "positive_class": self.positive_class,
            "training_rows": meta.training_rows,
            "training_data_sha256": meta.training_data_sha256,
            "metrics": {k: v.to_dict() for k, v in meta.metrics.items()},
            "holdouts": {
                kind: {k: v.to_dict() for k, v in metrics.items()}
                for kind, metrics in meta.holdouts.items()
            },
            "explanations": self.explanations,
            "conformal_level": self.conformal_level,
        }

    @property
    def conformal_level(self) -> float | None:
        """Coverage the conformal sets aim at (``1 - alpha``), or None without them."""
        return None if self.conformal is None else round(1 - self.conformal.alpha, 6)

    def card(self) -> dict[str, Any]:
        """What a clinician's client needs to build a request and read the answer."""
        meta = self.metadata
        return {
            **self.identity,
            "task": self.task,
            "target": meta.target,
            "positive_class": self.positive_class,
            "classes": self.classes,
            "intended_use": meta.intended_use,
            "features": self.validator.features,
            "bands": [b.to_dict() for b in self.bands],
            "modifiable": meta.modifiable,
            "auroc": auroc.to_dict() if (auroc := meta.metrics.get("auroc")) else None,
            "conformal_level": self.conformal_level,
        }


def _not_finite(error: NonFiniteError) -> list[dict[str, Any]]:
    """FastAPI-style field errors for values that overflow the model's preprocessing."""
    return sorted(
        (
            {
                "loc": ["body", "rows", row, column],
                "msg": "value is infinite or too extreme for the model's scaling; "
                "expected a finite measurement in the feature's usual units",
                "type": "not_finite",
            }
            for column, rows in error.problems.items()
            for row in rows
        ),
        key=lambda e: e["loc"][2],
    )


def _status(members: list[str] | None) -> str | None:
    if members is None:
        return None
    return CONFIDENT if len(members) == 1 else ATYPICAL if not members else UNCERTAIN


class ModelStore:
    """Served models by name; reloading swaps a model atomically.

    Parameters
    ----------
    directories : model directories to serve; names (``metadata.name``) must differ.
    settings : service settings (``top_k``).
    """

    def __init__(self, directories: list[str | Path], settings: ServeSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._models: dict[str, ServedModel] = {}
        self._dirs: dict[str, Path] = {}
        for directory in directories:
            model = ServedModel.from_dir(directory, settings.top_k, settings.production)
            if model.name in self._models:
                raise ValueError(
                    f"two model directories are named {model.name!r}: "
                    f"{self._dirs[model.name]} and {directory}"
                )
            self._models[model.name] = model
            self._dirs[model.name] = Path(directory)

    def names(self) -> list[str]:
        """Served model names, sorted."""
        return sorted(self._models)

    def get(self, name: str) -> ServedModel:
        """The model called ``name``; raises :class:`UnknownModelError`."""
        try:
            return self._models[name]
        except KeyError:
            raise UnknownModelError(name) from None

    def all(self) -> list[ServedModel]:
        """Every served model, by name."""
        return [self._models[n] for n in self.names()]

    def reload(self, name: str) -> ServedModel:
        """Re-read ``name``'s directory (verifying its manifest) and swap it in."""
        self.get(name)
        model = ServedModel.from_dir(
            self._dirs[name], self.settings.top_k, self.settings.production
        )
        if model.name != name:
            raise ValueError(f"{self._dirs[name]} now holds model {model.name!r}, not {name!r}")
        with self._lock:
            self._models[name] = model
        return model
