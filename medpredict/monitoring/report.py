"""The self-contained HTML report of watching a model: alerts, performance over time,
drift of the predicted risks and the features, and the domain classifier by period."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from medpredict.monitoring.watch import WatchResult
from medpredict.report.html import Section, callout, figure, render, table


def _number(value: object, digits: int = 3) -> str:
    return "—" if value is None or (isinstance(value, float) and np.isnan(value)) else (
        f"{value:.{digits}f}" if isinstance(value, float) else str(value))


def _interval(row: pd.Series, name: str) -> str:
    if np.isnan(row[name]):
        return "—"
    return f"{row[name]:.3f} ({row[f'{name}_low']:.3f}–{row[f'{name}_high']:.3f})"


def _performance_figure(periods: pd.DataFrame) -> plt.Figure:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    x = np.arange(len(periods))
    realised = periods["realised_auroc"].to_numpy(dtype=float)
    error = np.vstack([realised - periods["realised_auroc_low"],
                       periods["realised_auroc_high"] - realised])
    axes[0].plot(x, periods["expected_auroc"], "o--", label="expected (label-free)")
    axes[0].errorbar(x, realised, yerr=error, fmt="o-", capsize=3, label="realised, 95% CI")
    axes[0].set_ylabel("AUROC")
    axes[1].plot(x, periods["prediction_psi"], "o-", label="predicted risks")
    axes[1].plot(x, periods["domain_auroc"], "s-", label="domain classifier AUROC")
    axes[1].axhline(0.1, color="grey", linestyle="--", linewidth=1)
    axes[1].set_ylabel("PSI / AUROC")
    for ax in axes:
        ax.set_xticks(x, periods["period"].astype(str), rotation=45, ha="right")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _performance_section(result: WatchResult) -> Section:
    header = ["period", "rows", "with outcome", "events", "expected AUROC",
              "realised AUROC (95% CI)", "expected Brier", "realised Brier",
              "calibration intercept (95% CI)", "PSI of risks", "alert"]
    rows = [[r["period"], r["n"], r["with_outcome"], _number(r["events"], 0),
             _number(r["expected_auroc"]), _interval(r, "realised_auroc"),
             _number(r["expected_brier"]), _number(r["realised_brier"]),
             _interval(r, "realised_calibration_intercept"), _number(r["prediction_psi"], 2),
             "yes" if r["alert"] else ""] for _, r in result.periods.iterrows()]
    body = (
        "<p>Expected performance needs no outcomes: if the model's risks are right, a "
        "patient with risk p has the event with probability p, which gives the AUROC and "
        "Brier score to expect. It assumes the risks stay calibrated (the case mix may "
        "change, the risk given the features may not). Realised performance uses the "
        "outcomes that have arrived; its gap from the expected numbers is the check of "
        "that assumption.</p>"
    )
    body += figure(_performance_figure(result.periods), "performance over time")
    return Section("Performance over time", body + table(rows, header))


def _drift_section(result: WatchResult) -> Section:
    frames = [t.set_index("feature")["psi"].rename(str(p)) for p, t in result.drift.items()]
    psi = pd.concat(frames, axis=1)
    psi = psi.loc[psi.max(axis=1).sort_values(ascending=False).index]
    rows = [[feature, *(f"{v:.2f}" for v in values)] for feature, values in psi.iterrows()]
    body = ("<p>Population stability index of each feature against the development "
            "rows (0.1: moderate drift, 0.25: major), most drifted first.</p>")
    return Section("Feature drift", body + table(rows, ["feature", *psi.columns]))


def _domain_section(result: WatchResult) -> Section:
    rows = [[p, str(d.auroc), f"{d.ess:.0f} of {d.n_reference}", "yes" if d.out_of_support
             else "", d.reason] for p, d in result.domains.items()]
    body = ("<p>A classifier trained, out of fold, to tell the period's patients from the "
            "development ones. AUROC 0.5: the same kind of patients; near 1: a different "
            "population. The effective sample size of the importance weights says how many "
            "development patients still speak for the period.</p>")
    return Section("Who the patients are", body + table(
        rows, ["period", "domain AUROC (95% CI)", "effective sample size", "out of support",
               "in words"]))


def write_report(result: WatchResult, path: Path) -> Path:
    """Write the report of ``result`` to ``path``."""
    alerts = "".join(callout(a) for a in result.alerts) or callout(
        "No alert: performance, calibration and the patients look like development.", "note")
    sections = [
        Section("Alerts", alerts),
        _performance_section(result),
        _drift_section(result),
        _domain_section(result),
    ]
    html = render(f"Watching {result.model.name}", sections,
                  subtitle=f"model directory {result.model}")
    path.write_text(html, encoding="utf-8")
    return path
