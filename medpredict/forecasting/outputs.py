"""The forecast directory: latest forecast, every rolling forecast, scores, report, manifest.

``write_forecast_dir(result, folder)`` writes::

    latest.json       the selected model's latest forecast, per location and horizon
    latest.csv        the same in the FluSight hub's long layout
    forecasts.parquet every model's rolling-origin forecasts (the evaluation)
    scores.csv        relative WIS and coverage with CIs per model and season
    by_location.csv   the selected model's relative WIS and coverage per location
    quarantine.csv    rows of the input that were not used, with reasons
    summary.json      the run: spec, data summary, selection, timings, notes
    report.html       the report (when given)
    MANIFEST.json     sha256 of every file above, signed when a model key is set

``read_latest(folder)`` checks the manifest before returning ``latest.json``; serving
answers with it.

Examples
--------
>>> import json, tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "latest.json").write_text(json.dumps({"name": "toy"}))
>>> from medpredict.artifact import seal_directory
>>> seal_directory(folder, ["latest.json"])
>>> read_latest(folder)["name"]
'toy'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medpredict.artifact import seal_directory, verify_directory
from medpredict.forecasting.runner import ForecastResult
from medpredict.versions import library_versions

LATEST_FILE = "latest.json"


def latest_document(result: ForecastResult) -> dict[str, Any]:
    """The latest forecast as JSON: per location, per horizon, the quantiles."""
    latest = result.latest
    forecasts = result.forecasts
    data_through = forecasts.dates[-1] - result.spec.lag * forecasts.period
    locations = []
    for location, rows in latest.groupby("location", sort=False):
        horizons = []
        for (horizon, end), part in rows.groupby(["horizon", "target_end_date"], sort=True):
            horizons.append({
                "horizon": int(horizon),
                "target_end_date": pd.Timestamp(end).date().isoformat(),
                "median": float(part.loc[np.isclose(part["quantile"], 0.5), "value"].iloc[0]),
                "quantiles": [
                    {"level": float(q), "value": round(float(v), 3)}
                    for q, v in zip(part["quantile"], part["value"], strict=True)
                ],
            })
        locations.append({
            "location": location,
            "name": result.counts.name(location),
            "horizons": horizons,
        })
    overall = result.scores[(result.scores["block"] == "all")
                            & (result.scores["model"] == result.selected)].iloc[0]
    return {
        "name": result.spec.name,
        "model": result.selected,
        "reference_date": forecasts.dates[-1].date().isoformat(),
        "data_through": data_through.date().isoformat(),
        "period": result.spec.period,
        "quantile_levels": [float(q) for q in forecasts.levels],
        "evaluation": {
            "relative_wis": overall["relative_wis"].to_dict(),
            "baseline": result.spec.evaluation.baseline,
            "forecast_dates": int(overall["dates"]),
        },
        "not_forecast": result.not_forecast,
        "locations": locations,
        "versions": library_versions(),
    }


def scores_frame(scores: pd.DataFrame) -> pd.DataFrame:
    """The score table with each estimate as value, low and high columns."""
    flat = scores.copy()
    for column in [c for c in scores.columns if c == "relative_wis" or c.startswith("coverage")]:
        flat[column] = [e.value for e in scores[column]]
        flat[f"{column}_low"] = [e.low for e in scores[column]]
        flat[f"{column}_high"] = [e.high for e in scores[column]]
    return flat


def write_forecast_dir(
    result: ForecastResult, folder: str | Path, report_html: str | None = None
) -> Path:
    """Write the forecast directory (see module doc) and seal it with a manifest."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = []

    def put(name: str, text: str) -> None:
        (folder / name).write_text(text)
        names.append(name)

    put(LATEST_FILE, json.dumps(latest_document(result), indent=1))
    latest = result.latest.copy()
    latest.insert(0, "model", result.selected)
    put("latest.csv", latest.to_csv(index=False, date_format="%Y-%m-%d"))
    frames = [result.forecasts.long(m).assign(model=m) for m in result.forecasts.models]
    rolling = pd.concat(frames, ignore_index=True).astype(
        {"location": "category", "model": "category", "value": "float32"})
    rolling.to_parquet(folder / "forecasts.parquet", index=False, compression="zstd")
    names.append("forecasts.parquet")
    put("scores.csv", scores_frame(result.scores).to_csv(index=False))
    by_location = result.by_location.copy()
    by_location.insert(1, "name", [result.counts.name(x) for x in by_location["location"]])
    put("by_location.csv", by_location.to_csv(index=False))
    put("quarantine.csv", result.counts.quarantine.to_csv(index=False))
    summary = {
        "spec": result.spec.model_dump(mode="json"),
        "data": {
            "rows_in": result.counts.summary.rows_in,
            "stored": result.counts.summary.stored,
            "quarantined": result.counts.summary.quarantined,
            "reasons": result.counts.summary.reasons,
            "missing_periods": result.counts.summary.missing_periods,
        },
        "selected": result.selected,
        "seconds": round(result.seconds, 1),
        "notes": result.notes,
    }
    put("summary.json", json.dumps(summary, indent=1))
    if report_html is not None:
        put("report.html", report_html)
    seal_directory(folder, names)
    return folder


def read_latest(folder: str | Path) -> dict[str, Any]:
    """The latest forecast of a forecast directory, after checking its manifest."""
    folder = Path(folder)
    verify_directory(folder)
    return json.loads((folder / LATEST_FILE).read_text())
