"""Watching a saved binary model on later patients, period by period.

:func:`watch` is what ``medpredict watch`` does. It scores the development (reference)
rows and the monitored rows with the saved model, exactly as ``medpredict predict``
does, then for each period of the monitored rows:

- expected (label-free) and, where outcomes have arrived, realised performance
  (:func:`medpredict.monitoring.performance.by_period`), with the drift of the
  predicted risks;
- the drift of every feature (:func:`medpredict.monitoring.drift.feature_drift`);
- a domain classifier telling the period's patients from the development ones, with
  its AUROC, the effective sample size of the importance weights and whether the
  period lies outside the development data's support
  (:func:`medpredict.monitoring.domain.domain_shift`);

and gathers every alert in words. Feature values never leave the returned tables'
summaries: no patient row is logged or written.

Examples
--------
>>> from medpredict.data.datasets import load_dataset
>>> from medpredict.spec import parse_spec
>>> from medpredict.study import run_study
>>> spec = parse_spec({"name": "doc-watch", "data": {"dataset": "pima_tr"}, "target": "type",
...     "positive_class": "Yes", "models": ["logistic_regression"], "bootstrap": 0,
...     "output_dir": "/tmp/medpredict-doc-watch"})
>>> model = run_study(spec, quiet=True).model_dir
>>> later = load_dataset("pima_te").assign(month=lambda f: ["2024-01", "2024-02"] * 166)
>>> result = watch(model, load_dataset("pima_tr"), later, "month", outcome_column="type",
...                n_boot=50)
>>> result.periods[["period", "n", "with_outcome"]].to_dict("records")
[{'period': '2024-01', 'n': 166, 'with_outcome': 166}, {'period': '2024-02', 'n': 166, 'with_outcome': 166}]
"""  # noqa: E501

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medpredict.artifact import LoadedModel, load_model
from medpredict.data.checks import check_columns_present
from medpredict.data.errors import DataError
from medpredict.monitoring.domain import DomainShift, domain_shift
from medpredict.monitoring.drift import feature_drift
from medpredict.monitoring.performance import by_period
from medpredict.predict import predict_frame


@dataclass
class WatchResult:
    """What watching found.

    Attributes
    ----------
    model : the watched model directory.
    periods : one row per period: :func:`by_period`'s columns, then the domain
        classifier's AUROC (with CI), the effective sample size and the support flag,
        the number of drifted features and the most drifted ones; ``alert`` is true
        when the period has any alert (performance, calibration, drift or support).
    drift : per period, :func:`feature_drift`'s table.
    domains : per period, the domain classifier's result.
    alerts : every alert in words, prefixed by its period.
    """

    model: Path
    periods: pd.DataFrame
    drift: dict[str, pd.DataFrame]
    domains: dict[str, DomainShift]
    alerts: list[str] = field(default_factory=list)


def _risks(loaded: LoadedModel, frame: pd.DataFrame, what: str) -> np.ndarray:
    try:
        return predict_frame(loaded, frame)["risk"].to_numpy(dtype=float)
    except DataError as error:
        raise DataError(f"{what}: {error}") from error


def _outcomes(frame: pd.DataFrame, column: str | None, positive: str | None) -> np.ndarray | None:
    """0/1 outcomes, NaN where the outcome has not arrived (missing)."""
    if column is None:
        return None
    values = frame[column]
    positive_rows = values.astype(str) == str(positive)
    number = pd.to_numeric(pd.Series([positive]), errors="coerce").iloc[0]
    if not np.isnan(number):  # 1.0 in a column with missing values is the class 1
        positive_rows |= pd.to_numeric(values, errors="coerce") == number
    return np.where(values.isna(), np.nan, positive_rows.astype(float))


def watch(
    model: str | Path,
    reference: pd.DataFrame,
    monitored: pd.DataFrame,
    period_column: str,
    outcome_column: str | None = None,
    n_boot: int = 500,
    seed: int = 0,
) -> WatchResult:
    """Watch the saved binary model ``model`` on ``monitored``, period by period.

    Parameters
    ----------
    model : a model directory written by ``medpredict run`` (binary task).
    reference : its development rows (the features, as in training).
    monitored : later rows with the model's features, ``period_column`` and optionally
        ``outcome_column`` (missing where the outcome has not arrived yet).
    period_column : the period of each monitored row (e.g. a month, a year).
    outcome_column : the outcome, coded as in training (the positive class is the
        model's); None watches without outcomes (label-free only).
    n_boot, seed : bootstrap resamples and seed of every interval.

    Raises
    ------
    DataError
        When the model is not a binary risk model, a named column is missing, a period
        is missing, or rows do not fit the model's schema (naming them).
    """
    loaded = load_model(model)
    meta = loaded.metadata
    if meta.task != "binary" or meta.treatment is not None:
        raise DataError(f"{model}: watching needs a binary risk model (this one is "
                        f"{'a treatment-effect' if meta.treatment else meta.task} model)")
    needed = [period_column] + ([outcome_column] if outcome_column else [])
    check_columns_present(monitored, needed, "watch")
    if monitored[period_column].isna().any():
        rows = (np.flatnonzero(monitored[period_column].isna().to_numpy()) + 1).tolist()
        raise DataError(f"period column {period_column!r} is missing in rows {rows[:10]}"
                        f"{' and more' if len(rows) > 10 else ''}; every row needs a period")
    features = meta.feature_names
    check_columns_present(reference, features, "reference (development) table")
    extra = [c for c in needed if c not in meta.role_columns]
    reference_risk = _risks(loaded, reference[features], "reference rows")
    risk = _risks(loaded, monitored.drop(columns=extra), "monitored rows")
    periods = monitored[period_column].astype(str).to_numpy()
    table = by_period(risk, _outcomes(monitored, outcome_column, meta.positive_class), periods,
                      reference_risks=reference_risk, n_boot=n_boot, seed=seed)
    drift, domains, alerts = {}, {}, []
    extra_columns = []
    for period in table["period"]:
        rows = monitored[periods == period]
        drift[period] = feature_drift(reference[features], rows[features])
        domains[period] = domain_shift(reference[features], rows[features], n_boot=n_boot,
                                       seed=seed)
        flagged = drift[period][drift[period]["flag"]]
        extra_columns.append({
            "domain_auroc": domains[period].auroc.value,
            "domain_auroc_low": domains[period].auroc.low,
            "domain_auroc_high": domains[period].auroc.high,
            "effective_sample_size": domains[period].ess,
            "out_of_support": domains[period].out_of_support,
            "drifted_features": len(flagged),
            "most_drifted": ", ".join(flagged["feature"].head(3)),
        })
        reason = table.loc[table["period"] == period, "reason"].iloc[0]
        alerts += [f"{period}: {r}" for r in reason.split("; ") if r]
        alerts += [f"{period}: {r}" for r in flagged["reason"] if r]
        if domains[period].out_of_support:
            alerts.append(f"{period}: {domains[period].reason}")
    periods_table = pd.concat([table, pd.DataFrame(extra_columns)], axis=1)
    periods_table["alert"] = [any(a.startswith(f"{p}: ") for a in alerts)
                              for p in periods_table["period"]]
    return WatchResult(Path(model), periods_table, drift, domains, alerts)
