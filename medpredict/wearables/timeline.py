"""Per-person HTML timeline: resting heart rate, steps and sleep with alerts marked.

Examples
--------
>>> import pandas as pd
>>> days = pd.date_range("2020-03-01", periods=10)
>>> daily = pd.DataFrame({"person": "p1", "date": days, "resting_hr": range(60, 70)})
>>> alerts = pd.DataFrame({"person": ["p1"], "date": [days[8]], "detector": ["cusum"],
...                        "level": ["red"], "drivers": [("resting_hr",)],
...                        "insights": [()], "statistic": [5.0], "note": ["info"]})
>>> "<img" in timeline_html(daily, alerts)
True
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd

from medpredict.report.html import Section, callout, figure, render, table
from medpredict.wearables.alerts import DISCLAIMER

COLOURS = {"yellow": "#e0a800", "red": "#d62728"}
MARKERS = {"overnight_rhr": "v", "cusum": "o", "multivariate": "s"}


def timeline_figure(days: pd.DataFrame, alerts: pd.DataFrame, person: str) -> plt.Figure:
    """Figure with heart rate, steps and sleep panels; alert days shaded and marked."""
    panels = [
        ("Heart rate (bpm)", ["overnight_rhr", "resting_hr", "heart_rate_avg"]),
        ("Steps", ["daily_steps"]),
        ("Sleep (h)", ["sleep_hours"]),
    ]
    panels = [(t, [c for c in cols if c in days and days[c].notna().any()]) for t, cols in panels]
    panels = [(t, cols) for t, cols in panels if cols] or [("Heart rate (bpm)", [])]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.2 * len(panels) + 0.6), sharex=True)
    axes = [axes] if len(panels) == 1 else list(axes)
    shade = _shading(days, alerts)
    for ax, (title, columns) in zip(axes, panels, strict=True):
        for column in columns:
            style = {"drawstyle": "steps-mid"} if column == "daily_steps" else {"marker": "."}
            ax.plot(days["date"], days[column], lw=1, label=column, **style)
        for level, mask in shade.items():
            ax.fill_between(
                mask.index,
                0,
                1,
                where=mask.to_numpy(),
                step="mid",
                color=COLOURS[level],
                alpha=0.2,
                lw=0,
                transform=ax.get_xaxis_transform(),
            )
        ax.set_ylabel(title)
        if columns:
            ax.legend(loc="upper left", fontsize=7, ncol=3)
    top = axes[0]
    if not alerts.empty:
        y = top.get_ylim()[1]
        for detector, group in alerts.groupby("detector"):
            top.scatter(
                group["date"],
                [y] * len(group),
                marker=MARKERS.get(detector, "x"),
                c=[COLOURS[lv] for lv in group["level"]],
                edgecolors="k",
                s=40,
                zorder=3,
                label=f"alert: {detector}",
                clip_on=False,
            )
        top.legend(loc="upper left", fontsize=7, ncol=4)
    top.set_title(f"{person}: daily signals, alert days shaded (yellow / red)")
    fig.autofmt_xdate()
    return fig


def _shading(days: pd.DataFrame, alerts: pd.DataFrame) -> dict[str, pd.Series]:
    """Per level, a daily mask of the days whose highest alert has that level."""
    if alerts.empty or days.empty:
        return {}
    grid = pd.date_range(
        min(days["date"].min(), alerts["date"].min()),
        max(days["date"].max(), alerts["date"].max()),
        freq="D",
    )
    rank = alerts.assign(rank=alerts["level"].map({"yellow": 1, "red": 2}))
    top = rank.groupby("date")["rank"].max().reindex(grid, fill_value=0)
    return {"yellow": top == 1, "red": top == 2}


def timeline_html(
    daily: pd.DataFrame,
    alerts: pd.DataFrame,
    persons: Sequence[str] | None = None,
    title: str = "medpredict monitor: personal timelines",
) -> str:
    """Self-contained HTML page with one timeline section per person."""
    people = list(persons) if persons is not None else sorted(daily["person"].unique())
    sections = [Section("About these alerts", callout(DISCLAIMER, "note"))]
    for person in people:
        days = daily[daily["person"] == person].sort_values("date")
        mine = alerts[alerts["person"] == person].sort_values("date")
        body = figure(timeline_figure(days, mine, person), f"timeline for {person}")
        if not mine.empty:
            rows = [
                (
                    pd.Timestamp(a["date"]).strftime("%Y-%m-%d"),
                    a["detector"],
                    a["level"],
                    ", ".join(a["drivers"]),
                    " ".join(a["insights"]) or "—",
                )
                for _, a in mine.iterrows()
            ]
            body += table(rows, ["date", "detector", "level", "signals", "insights"])
        else:
            body += "<p>No alerts.</p>"
        sections.append(Section(f"Person {person}", body))
    return render(title, sections)
