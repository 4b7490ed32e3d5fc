"""The forecast report: scores against the baseline, data, fan charts, past forecasts, coverage.

Sections, in order: a summary with every model's relative WIS and coverage per season;
the data (what was quarantined, missing, not forecast, and how the evaluation was done);
the latest forecast as fan charts for every location; past forecasts against what
happened; interval calibration (nominal against observed coverage of every central
interval); and the selected model's score by location.

Examples
--------
>>> band_pairs(np.array([0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975]))
[(0.95, 0, 6), (0.8, 1, 5), (0.5, 2, 4)]
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from medpredict.evaluation.quantile_scores import central_widths, interval_coverage
from medpredict.forecasting.runner import ForecastResult
from medpredict.report.html import Section, callout, escape, figure, render, table

FAN_WIDTHS = (0.95, 0.8, 0.5)
HISTORY_SHOWN = 52


def forecast_report(result: ForecastResult) -> str:
    """The self-contained HTML report of a forecast run."""
    sections = [
        summary_section(result),
        data_section(result),
        latest_section(result),
        past_section(result),
        calibration_section(result),
        location_section(result),
    ]
    subtitle = (f"Latest forecast for {result.latest_date.date()} by {result.selected}; "
                f"{len(result.forecasts.locations)} locations")
    return render(f"Forecast: {result.spec.name}", sections, subtitle)


def band_pairs(levels: np.ndarray) -> list[tuple[float, int, int]]:
    """(width, low index, high index) of the fan bands present among ``levels``."""
    levels = np.asarray(levels)
    pairs = []
    for width in FAN_WIDTHS:
        low = np.flatnonzero(np.isclose(levels, (1 - width) / 2))
        high = np.flatnonzero(np.isclose(levels, (1 + width) / 2))
        if low.size and high.size:
            pairs.append((width, int(low[0]), int(high[0])))
    return pairs


def _median_index(levels: np.ndarray) -> int:
    return int(np.flatnonzero(np.isclose(levels, 0.5))[0])


def summary_section(result: ForecastResult) -> Section:
    spec, scores = result.spec, result.scores
    header = ["model", "season", "dates", "forecasts", "relative WIS (95% CI)", "mean WIS"]
    coverage_columns = [c for c in scores.columns if c.startswith("coverage_")]
    header += [f"{c.removeprefix('coverage_')}% coverage (95% CI)" for c in coverage_columns]
    rows, highlight = [], None
    for i, row in enumerate(scores.itertuples()):
        if row.model == result.selected and row.block == "all":
            highlight = i
        rows.append([row.model, row.block, row.dates, row.forecasts, str(row.relative_wis),
                     f"{row.wis:.1f}", *(str(getattr(row, c)) for c in coverage_columns)])
    chosen = scores[(scores["model"] == result.selected) & (scores["block"] != "all")]
    better = [r.block for r in chosen.itertuples() if r.relative_wis.value < 1]
    surely = [r.block for r in chosen.itertuples() if r.relative_wis.high < 1]
    seasons = len(chosen)
    verdict = (
        f"{result.selected} had a lower WIS than {spec.evaluation.baseline} in "
        f"{len(better)} of {seasons} scored block(s)"
        + (f"; the 95% CI lies below 1 in {', '.join(surely)}" if surely else
           "; in none does the 95% CI lie wholly below 1")
        + "."
    )
    sentences = [
        f"Counts per {spec.period} for {len(result.forecasts.locations)} locations, forecast "
        f"{', '.join(map(str, spec.horizons))} {spec.period}(s) after each forecast date with "
        f"{len(spec.quantiles)} quantile levels. The latest forecast is for reference date "
        f"{result.latest_date.date()}, from data up to "
        f"{(result.latest_date - spec.lag * result.forecasts.period).date()}.",
        f"Selected model: {result.selected} (lowest relative WIS over all scored forecast "
        "dates). " + verdict,
    ]
    if "coverage_95" in scores.columns:
        overall = chosen["coverage_95"].map(lambda e: e.value)
        if len(overall):
            sentences.append(
                f"Its 95% intervals held the observed count {overall.min():.0%}–"
                f"{overall.max():.0%} of the time across blocks (nominal 95%)."
            )
    body = "".join(f"<p>{escape(s)}</p>" for s in sentences)
    body += table(rows, header, highlight=highlight)
    body += callout(
        "The selected model was chosen on the same forecast dates it is scored on, so its "
        "score is slightly optimistic; compare it with the other models.", "note")
    for note in result.notes:
        body += callout(note)
    return Section("Summary", body)


def data_section(result: ForecastResult) -> Section:
    counts, spec = result.counts, result.spec
    body = f"<p>{escape(counts.summary.line())}.</p>"
    if counts.summary.reasons:
        body += table(sorted(counts.summary.reasons.items()), ["quarantine reason", "rows"])
    if counts.summary.missing_periods:
        body += "<p>Periods with no count (not used for fitting, not scored):</p>"
        body += table([(counts.name(loc), loc, n)
                       for loc, n in counts.summary.missing_periods.items()],
                      ["location", "code", "missing periods"])
    if result.not_forecast:
        body += callout(
            "Not forecast at the latest date (fewer than "
            f"{spec.min_history} observed periods): "
            + ", ".join(f"{counts.name(loc)} ({n})" for loc, n in result.not_forecast.items()))
    recalibration = (
        f"intervals recalibrated from each model's errors over the last "
        f"{spec.recalibration.window} forecast dates whose targets had been reported"
        if spec.recalibration.method == "conformal" else "no recalibration")
    body += (
        "<p>Evaluation: rolling origin. At each forecast date every model is fitted on the "
        f"counts reported up to {spec.lag} {spec.period}(s) before it and nothing later; "
        f"{escape(recalibration)}; confidence intervals from {spec.evaluation.bootstrap} "
        "bootstrap resamples of forecast dates.</p>"
    )
    return Section("Data", body)


def _focus(result: ForecastResult) -> list[int]:
    """The hierarchy total (or the largest location) first, then the largest others."""
    locations = result.forecasts.locations
    totals = result.counts.series.sum()
    order = [locations.index(loc) for loc in totals.sort_values(ascending=False).index]
    if result.spec.hierarchy is not None:
        total = locations.index(result.spec.hierarchy.total)
        order = [total, *[i for i in order if i != total]]
    return order


def _fan(ax: plt.Axes, result: ForecastResult, i: int, small: bool) -> None:
    forecasts = result.forecasts
    location = forecasts.locations[i]
    observed = result.counts.series[location].iloc[-HISTORY_SHOWN:]
    ax.plot(observed.index, observed.to_numpy(), color="black", lw=0.8 if small else 1.2)
    values = forecasts.values[result.selected][-1, i]
    if np.isfinite(values).all():
        targets = forecasts.target_dates(len(forecasts.dates) - 1)
        for width, low, high in band_pairs(forecasts.levels):
            ax.fill_between(targets, values[:, low], values[:, high], color="tab:blue",
                            alpha=0.2 + 0.15 * (1 - width), lw=0,
                            label=None if small else f"{width:.0%} interval")
        ax.plot(targets, values[:, _median_index(forecasts.levels)], color="tab:blue",
                lw=1.0 if small else 1.5, label=None if small else "median")
    ax.set_title(result.counts.name(location), fontsize=7 if small else 11)
    ax.tick_params(labelsize=5 if small else 8)
    if small:
        ax.set_xticks([])


def latest_section(result: ForecastResult) -> Section:
    forecasts = result.forecasts
    focus = _focus(result)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    _fan(ax, result, focus[0], small=False)
    ax.set_ylabel("count")
    ax.legend(fontsize=8, loc="upper left")
    body = figure(fig, f"latest forecast for {result.counts.name(forecasts.locations[focus[0]])}")
    columns = 8
    rows = math.ceil(len(focus) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(12, 1.45 * rows), squeeze=False)
    for ax, i in zip(axes.ravel(), sorted(focus, key=lambda i: result.counts.name(
            forecasts.locations[i])), strict=False):
        _fan(ax, result, i, small=True)
    for ax in axes.ravel()[len(focus):]:
        ax.axis("off")
    fig.tight_layout(pad=0.4)
    body += figure(fig, "latest forecast for every location")
    median = _median_index(forecasts.levels)
    widest = band_pairs(forecasts.levels)[:1]
    header = ["location", "horizon", "target end date", "median"]
    if widest:
        header.append(f"{widest[0][0]:.0%} interval")
    rows_out = []
    for i in focus[:6]:
        values = forecasts.values[result.selected][-1, i]
        for j, end in enumerate(forecasts.target_dates(len(forecasts.dates) - 1)):
            row = [result.counts.name(forecasts.locations[i]), forecasts.horizons[j],
                   end.date(), f"{values[j, median]:.0f}"]
            if widest:
                row.append(f"{values[j, widest[0][1]]:.0f}–{values[j, widest[0][2]]:.0f}")
            rows_out.append(row)
    body += table(rows_out, header)
    return Section("Latest forecast", body)


def past_section(result: ForecastResult) -> Section:
    forecasts = result.forecasts
    horizon = 1 if 1 in forecasts.horizons else forecasts.horizons[0]
    j = forecasts.horizons.index(horizon)
    mask = result.blocks["all"]
    shown = _focus(result)[:5]
    median = _median_index(forecasts.levels)
    widest = band_pairs(forecasts.levels)[:1]
    fig, axes = plt.subplots(len(shown), 1, figsize=(9, 2.2 * len(shown)), squeeze=False)
    targets = forecasts.dates[mask] + horizon * forecasts.period
    for ax, i in zip(axes[:, 0], shown, strict=True):
        location = forecasts.locations[i]
        span = result.counts.series[location].loc[targets.min(): targets.max()]
        ax.plot(span.index, span.to_numpy(), color="black", lw=1, label="observed")
        chosen = forecasts.values[result.selected][mask, i, j]
        if widest:
            ax.fill_between(targets, chosen[:, widest[0][1]], chosen[:, widest[0][2]],
                            color="tab:blue", alpha=0.25, lw=0,
                            label=f"{result.selected} {widest[0][0]:.0%}")
        ax.plot(targets, chosen[:, median], color="tab:blue", lw=1, label=result.selected)
        baseline = forecasts.values[result.spec.evaluation.baseline][mask, i, j, median]
        ax.plot(targets, baseline, color="tab:orange", lw=0.8, ls="--",
                label=result.spec.evaluation.baseline)
        ax.set_title(result.counts.name(location), fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    body = (f"<p>Forecasts made {horizon} {result.spec.period}(s) ahead on every scored "
            "forecast date, each from the data reported by then, against the counts "
            "later observed.</p>")
    return Section("Past forecasts", body + figure(fig, "past forecasts against observed"))


def coverage_table(result: ForecastResult) -> pd.DataFrame:
    """Observed coverage of every central interval for every model (scored dates)."""
    forecasts = result.forecasts
    mask = result.blocks["all"]
    y = forecasts.truth[mask][:, result.scored_locations].ravel()
    rows = []
    for model in forecasts.models:
        q = forecasts.values[model][mask][:, result.scored_locations].reshape(
            -1, len(forecasts.levels))
        ok = np.isfinite(y) & np.isfinite(q).all(axis=1)
        for width in central_widths(forecasts.levels):
            hit = interval_coverage(y[ok], q[ok], forecasts.levels, width)
            rows.append({"model": model, "nominal": width, "observed": float(hit.mean())})
    return pd.DataFrame(rows)


def calibration_section(result: ForecastResult) -> Section:
    coverage = coverage_table(result)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    for model, rows in coverage.groupby("model", sort=False):
        ax.plot(rows["nominal"], rows["observed"], marker="o", ms=3,
                lw=2 if model == result.selected else 1, label=model)
    ax.set_xlabel("nominal coverage of the central interval")
    ax.set_ylabel("observed coverage")
    ax.legend(fontsize=8)
    body = ("<p>Points on the diagonal are well-calibrated intervals; below it, intervals "
            "too narrow; above it, too wide.</p>")
    body += figure(fig, "interval coverage, nominal against observed")
    horizon = result.by_horizon
    label = next(c for c in horizon.columns if c.startswith("coverage_"))
    body += f"<p>{escape(result.selected)} by horizon:</p>" + table(
        [(r.horizon, f"{r.relative_wis:.3f}", f"{getattr(r, label):.3f}", r.forecasts)
         for r in horizon.itertuples()],
        ["horizon", "relative WIS", label.replace("_", " ") + "%", "forecasts"])
    return Section("Interval calibration", body)


def location_section(result: ForecastResult) -> Section:
    frame = result.by_location.sort_values("relative_wis")
    label = next(c for c in frame.columns if c.startswith("coverage_"))
    worse = frame[frame["relative_wis"] > 1]
    body = ""
    if len(worse):
        body += callout(
            f"{result.selected} did worse than the baseline in {len(worse)} location(s): "
            + ", ".join(result.counts.name(x) for x in worse["location"]))
    body += table(
        [(result.counts.name(r.location), r.location, f"{r.relative_wis:.3f}",
          f"{getattr(r, label):.3f}", r.forecasts) for r in frame.itertuples()],
        ["location", "code", "relative WIS", label.replace("_", " ") + "%", "forecasts"])
    return Section("By location", body)
