"""Report sections of a timeline study: cohort flow, data over time, early warning, patients.

The study report opens with these sections when the study was built from patient
timelines (``data: {events: ...}`` and ``timeline:``):

1. **Cohort flow** (TRIPOD style): each step's remaining count in a box, what it excluded
   beside it, the same as a table, and the reading of the source: rows in = events
   stored + rows quarantined, with the quarantine counts by reason.
2. **Data over time**: per variable the share of samples never measured in the
   observation window and the median count when measured; the sampling density in the
   hours before the index time (variables x hours).
3. **Early warning** (studies with several index times, ``timeline.index.landmarks``):
   out-of-fold risk through the stay by outcome, AUROC per landmark with bootstrap
   intervals, alerts at the first operating threshold per landmark and per patient-day.
4. **Patient timelines**: three example samples (the highest-risk true positive, the
   most clearly missed event, a typical non-event), the values of the top-ranked
   variables up to the index time, and what drove each one's risk: the occlusion
   attribution of a sequence model per variable and block of steps, or the SHAP factors
   of a tabular model per variable and window.

Every risk shown is out-of-fold: the prediction of the model fitted without that
sample's patient.

Examples
--------
>>> from medpredict.timeline.cohort import FlowStep
>>> svg = flow_svg([FlowStep("subjects in the source", 400, unit="subjects"),
...                 FlowStep("aged at least 16", 390, 10, "subjects")])
>>> svg.count("<rect"), "excluded: 10 subjects" in svg
(3, True)
"""

from __future__ import annotations

import html
import math
import textwrap
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import PowerNorm

from medpredict.evaluation.bootstrap import Estimate, bootstrap
from medpredict.evaluation.metrics import auroc
from medpredict.report.html import Section, callout, escape, figure, table
from medpredict.timeline.cohort import FlowStep
from medpredict.timeline.features import GRID_PREFIX
from medpredict.timeline.spec import duration
from medpredict.timeline.validate import REASONS

N_VARIABLES = 4
"""Variables drawn in each patient timeline."""
N_FACTORS = 8
"""Variable x window factors listed per patient."""
ATTRIBUTION_HOURS = 6.0
"""Length of the blocks of grid steps a sequence model's risk is attributed to."""

_EVENT, _NON_EVENT = "#c0392b", "#1f6feb"


# --------------------------------------------------------------------------- entry point


def timeline_sections(result: Any) -> list[Section]:
    """The report sections of a timeline study, in reading order.

    Parameters
    ----------
    result : StudyResult
        A finished study whose ``timeline`` holds the
        :class:`~medpredict.timeline.table.TimelineSummary` (None gives no sections).

    Returns
    -------
    list of Section
        Cohort flow, data over time, early warning (only with several index times) and
        patient timelines (the last two for binary outcomes).

    Examples
    --------
    A whole study is needed; ``tests/test_timeline_report.py`` runs one on PhysioNet 2012.

    >>> sections = timeline_sections(result)  # doctest: +SKIP
    >>> [s.title for s in sections]  # doctest: +SKIP
    ['Cohort flow', 'Data over time', 'Early warning', 'Patient timelines']
    """
    summary = result.timeline
    if summary is None:
        return []
    spec = result.spec
    sections = [flow_section(summary), data_section(summary, spec.timeline)]
    if spec.task != "binary":
        return sections
    frame = sample_frame(result)
    if len(spec.timeline.index.offsets()) > 1:
        sections.append(early_warning_section(result, frame))
    sections.append(patient_section(result, frame))
    return sections


def sample_frame(result: Any) -> pd.DataFrame:
    """One row per evaluated sample: its times, outcome and out-of-fold risk.

    Rows follow ``result.cohort`` (``position`` is the 0-based row of the cohort, aligned
    with the out-of-fold predictions); columns ``sample_id``, ``subject_id``,
    ``anchor_time``, ``index_time``, ``hours`` (index time after the anchor),
    ``outcome_time`` (NaT where not recorded), ``y`` (1 = event) and ``risk``.
    """
    samples = result.timeline.samples
    rows = np.asarray(result.cohort.row_numbers, dtype=np.int64) - 1
    if len(rows) != len(result.cohort.y) or (len(rows) and rows.max() >= len(samples)):
        raise ValueError(
            f"the timeline summary holds {len(samples)} samples but the evaluated cohort "
            f"names table rows up to {int(rows.max()) + 1 if len(rows) else 0}"
        )
    frame = samples.iloc[rows].reset_index(drop=True)
    if "outcome_time" not in frame.columns:
        frame = frame.assign(outcome_time=pd.NaT)
    frame = frame.assign(
        position=np.arange(len(rows)),
        hours=(frame["index_time"] - frame["anchor_time"]) / pd.Timedelta(hours=1),
        y=np.asarray(result.cohort.y, dtype=int),
        risk=np.asarray(result.best.oof_proba[:, 1], dtype=float),
    )
    return frame


# --------------------------------------------------------------------------- cohort flow


def flow_svg(flow: Sequence[FlowStep]) -> str:
    """The cohort flow as an inline SVG: one box per step, a side box per exclusion.

    Parameters
    ----------
    flow : the cohort's steps, in order.

    Returns
    -------
    str
        An ``<svg>`` element; each main box reads ``label`` and ``remaining unit``, each
        side box ``excluded: N unit`` and ``(not label)``.

    Examples
    --------
    >>> svg = flow_svg([FlowStep("subjects in the source", 3, unit="subjects"),
    ...                 FlowStep("with a recorded died", 2, 1)])
    >>> "2 samples" in svg, "excluded: 1 samples" in svg
    (True, True)
    """
    width, box_w, side_x, side_w, line_h, gap = 780, 400, 460, 310, 17, 44
    parts, y = [], 12

    def text_lines(lines: list[str], x: float, top: float, bold_last: bool) -> str:
        out = []
        for i, line in enumerate(lines):
            weight = ' font-weight="600"' if bold_last and i == len(lines) - 1 else ""
            out.append(
                f'<text x="{x}" y="{top + 20 + i * line_h}" text-anchor="middle"{weight}>'
                f"{html.escape(line)}</text>"
            )
        return "".join(out)

    for i, step in enumerate(flow):
        lines = [*textwrap.wrap(step.label, 52), f"{step.remaining:,} {step.unit}"]
        height = 12 + line_h * len(lines)
        if i:
            parts.append(
                f'<line x1="{20 + box_w / 2}" y1="{y - gap}" x2="{20 + box_w / 2}" y2="{y}" '
                'stroke="#57606a" marker-end="url(#arrow)"/>'
            )
        parts.append(
            f'<rect x="20" y="{y}" width="{box_w}" height="{height}" rx="4" '
            'fill="#eef6ff" stroke="#1f6feb"/>'
        )
        parts.append(text_lines(lines, 20 + box_w / 2, y, bold_last=True))
        if step.excluded:
            side = [
                f"excluded: {step.excluded:,} {step.unit}",
                *textwrap.wrap(f"(not {step.label})", 42),
            ]
            side_h = 12 + line_h * len(side)
            middle = y - gap / 2 if i else y + height / 2
            top = max(middle - side_h / 2, 2)
            parts.append(
                f'<line x1="{20 + box_w / 2 if i else 20 + box_w}" y1="{middle}" '
                f'x2="{side_x}" y2="{middle}" stroke="#57606a" marker-end="url(#arrow)"/>'
            )
            parts.append(
                f'<rect x="{side_x}" y="{top}" width="{side_w}" height="{side_h}" rx="4" '
                'fill="#fff8e1" stroke="#f0a000"/>'
            )
            parts.append(text_lines(side, side_x + side_w / 2, top, bold_last=False))
        y += height + gap
    total = y - gap + 12
    marker = (
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#57606a"/>'
        "</marker></defs>"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="cohort flow" '
        f'width="{width}" height="{total}" viewBox="0 0 {width} {total}" '
        'font-family="system-ui,sans-serif" font-size="13">'
        + marker
        + "".join(parts)
        + "</svg>"
    )


def flow_section(summary: Any) -> Section:
    """The cohort flow (diagram and table) and the rows read, stored and quarantined."""
    flow = summary.flow
    rows = [
        [i + 1, step.label, f"{step.remaining:,}", step.unit, f"{step.excluded:,}",
         f"not {step.label}" if step.excluded else "—"]
        for i, step in enumerate(flow)
    ]
    quarantined = sum(summary.quarantined.values())
    reading = (
        f"<p>The {escape(summary.reader)} reader read <b>rows in {summary.rows_in:,} = "
        f"events stored {summary.events:,} + rows quarantined {quarantined:,}</b>. "
        "Every quarantined row is kept with its reason; none was dropped silently.</p>"
    )
    if summary.rows_in != summary.events + quarantined:
        reading += callout(
            f"The counts do not add up: {summary.rows_in:,} rows in but "
            f"{summary.events + quarantined:,} stored or quarantined."
        )
    if quarantined:
        ordered = sorted(summary.quarantined.items(), key=lambda item: (-item[1], item[0]))
        reading += table(
            [[reason, f"{count:,}", REASONS.get(reason, "—")] for reason, count in ordered],
            ["quarantine reason", "rows", "meaning"],
        )
    if summary.dropped_columns:
        reading += (
            f"<p>{summary.dropped_columns:,} feature column(s) were left out because they "
            "hold fewer than two distinct values in the development data (decided without "
            "the outcome).</p>"
        )
    body = (
        "<p>Who entered the study, step by step; each box gives what remains and each side "
        "box what the step excluded.</p>"
        + flow_svg(flow)
        + table(rows, ["step", "cohort", "remaining", "unit", "excluded", "excluded because"])
        + reading
    )
    return Section("Cohort flow", body)


# --------------------------------------------------------------------------- data over time


def measurement_rates(density: pd.DataFrame) -> pd.DataFrame:
    """Per code, mean events per sample per day over the hours that hold any event.

    ``density`` is the summary's events per sample in each hour before the index time
    (rows: hours back, columns: codes); hours before every sample's first event (e.g.
    before admission) are not counted. ``interval_h`` is the typical time between two
    measurements (24 / per_day).

    Examples
    --------
    >>> density = pd.DataFrame({"HR": [1.0, 1.0, 0.0], "K": [0.25, 0.0, 0.0]})
    >>> measurement_rates(density).round(1).to_dict("list")
    {'code': ['HR', 'K'], 'per_day': [24.0, 3.0], 'interval_h': [1.0, 8.0]}
    """
    if density.empty:
        return pd.DataFrame(columns=["code", "per_day", "interval_h"])
    span = _filled_hours(density)
    per_day = density.iloc[:span].sum(axis=0) / span * 24
    rates = pd.DataFrame({"code": [str(c) for c in density.columns], "per_day": per_day.values})
    rates["interval_h"] = 24 / rates["per_day"].where(rates["per_day"] > 0)
    return rates.sort_values(["per_day", "code"], ascending=[False, True], ignore_index=True)


def _missingness_figure(missing: pd.DataFrame) -> plt.Figure:
    ordered = missing.sort_values(["missing", "code"], ascending=[True, True])
    fig, ax = plt.subplots(figsize=(6.5, max(2.5, 0.22 * len(ordered) + 1)))
    ax.barh(ordered["code"], ordered["missing"] * 100, color="#8c959f")
    ax.set(xlabel="samples never measured in the observation window (%)", xlim=(0, 100))
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title("Missingness per variable", fontsize=10)
    return fig


def _filled_hours(density: pd.DataFrame) -> int:
    """Hours back to the oldest hour that holds any event (all hours when none does)."""
    filled = np.flatnonzero(density.sum(axis=1).to_numpy() > 0)
    return int(filled.max()) + 1 if filled.size else len(density)


def _density_figure(density: pd.DataFrame, order: list[str]) -> plt.Figure:
    hours = _filled_hours(density)
    values = density[order].iloc[:hours].to_numpy(dtype=float).T[:, ::-1]  # oldest left
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.2 * len(order) + 1.2)))
    image = ax.imshow(
        values, aspect="auto", cmap="viridis", norm=PowerNorm(0.5, vmin=0),
        extent=(-hours, 0, len(order) - 0.5, -0.5), interpolation="nearest",
    )
    ax.set_yticks(range(len(order)), order, fontsize=8)
    ax.set_xlabel("hours before the index time")
    ax.set_title("Sampling density (events per sample per hour)", fontsize=10)
    fig.colorbar(image, ax=ax, pad=0.01, label="events per sample per hour")
    return fig


def data_section(summary: Any, timeline: Any) -> Section:
    """Missingness per variable and sampling density over the hours before the index."""
    missing, density = summary.missingness, summary.density
    if missing.empty:
        return Section("Data over time", callout("No timed variable became a feature."))
    rates = measurement_rates(density)
    joined = missing.merge(rates, on="code", how="left")
    joined = joined.sort_values(["missing", "code"], ascending=[False, True])
    longest = max(timeline.windows, key=duration)
    rows = [
        [
            r.code,
            f"{r.missing:.1%}",
            f"{r.median_count:g}",
            "—" if pd.isna(r.per_day) else f"{r.per_day:.1f}",
            "—" if pd.isna(r.interval_h) else f"{r.interval_h:.1f}",
        ]
        for r in joined.itertuples()
    ]
    several = len(timeline.index.offsets()) > 1
    where = (
        "each subject's latest index time" if several else "the index time"
    )
    order = [c for c in rates["code"] if c in density.columns]
    body = (
        f"<p>Missingness is the share of samples with no measurement of the variable in the "
        f"{escape(longest)} window before the index time; the median count is over the "
        f"samples that have one. Rates are events per sample per day in the hours before "
        f"{where} that hold data (of the {escape(timeline.observation)} observation "
        "window); the interval is the typical time between two measurements.</p>"
        + '<div class="figs">'
        + figure(_missingness_figure(missing), "missingness per variable")
        + "</div>"
        + table(
            rows,
            ["variable", "never measured", "median count when measured", "per day",
             "every ... hours"],
        )
    )
    if len(order):
        body += "<h3>Sampling density before the index time</h3>" + figure(
            _density_figure(density, order), "sampling density heatmap"
        )
        hours = _filled_hours(density)
        if hours < len(density):
            body += (
                f"<p>Only the last {hours} hours before the index time hold events and are "
                "drawn.</p>"
            )
    return Section("Data over time", body)


# --------------------------------------------------------------------------- early warning


def _landmark_label(hours: float) -> str:
    return f"{hours:g}h"


def _auroc(y: np.ndarray, risk: np.ndarray) -> dict[str, float]:
    return {"auroc": auroc(y, risk)}


def landmark_auroc(
    frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0
) -> dict[float, Estimate | None]:
    """AUROC of the risk at each index time (hours after the anchor), bootstrap 95% CI.

    ``frame`` has ``hours``, ``y`` and ``risk`` (see :func:`sample_frame`); a landmark
    whose samples hold a single outcome class gets None.

    Examples
    --------
    >>> frame = pd.DataFrame({"hours": [6.0] * 4 + [12.0] * 4, "y": [0, 0, 1, 1] * 2,
    ...                       "risk": [0.1, 0.4, 0.35, 0.8, 0.1, 0.2, 0.7, 0.9]})
    >>> {h: round(e.value, 2) for h, e in landmark_auroc(frame, n_boot=20).items()}
    {6.0: 0.75, 12.0: 1.0}
    """
    out: dict[float, Estimate | None] = {}
    for hours, part in frame.groupby("hours", sort=True):
        y, risk = part["y"].to_numpy(), part["risk"].to_numpy()
        if np.unique(y).size < 2:
            out[float(hours)] = None
            continue
        out[float(hours)] = bootstrap(_auroc, y, risk, n_boot=n_boot, seed=seed)["auroc"]
    return out


def _warning_hours(part: pd.DataFrame) -> np.ndarray:
    timed = part[part["outcome_time"].notna()]
    return ((timed["outcome_time"] - timed["index_time"]) / pd.Timedelta(hours=1)).to_numpy()


def alerts_by_landmark(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per index time: samples, events, alerts (risk >= ``threshold``), true alerts.

    ``warning_h`` is the median time from the index time to the outcome over the true
    alerts whose outcome time is recorded (NaN otherwise).

    Examples
    --------
    >>> frame = pd.DataFrame({"hours": [6.0, 6.0, 6.0], "y": [0, 1, 1],
    ...     "risk": [0.6, 0.7, 0.2], "index_time": pd.to_datetime(["2000-01-01 06:00"] * 3),
    ...     "outcome_time": pd.to_datetime([None, "2000-01-02 06:00", "2000-01-01 09:00"])})
    >>> alerts_by_landmark(frame, 0.5).iloc[0][["alerts", "true_alerts", "warning_h"]].tolist()
    [2.0, 1.0, 24.0]
    """
    rows = []
    for hours, part in frame.groupby("hours", sort=True):
        alert = part["risk"].to_numpy() >= threshold
        event = part["y"].to_numpy() == 1
        warning = _warning_hours(part[alert & event])
        rows.append(
            {
                "hours": float(hours),
                "samples": len(part),
                "events": int(event.sum()),
                "alerts": int(alert.sum()),
                "true_alerts": int((alert & event).sum()),
                "warning_h": float(np.median(warning)) if warning.size else np.nan,
                "warning_q1": float(np.quantile(warning, 0.25)) if warning.size else np.nan,
                "warning_q3": float(np.quantile(warning, 0.75)) if warning.size else np.nan,
            }
        )
    return pd.DataFrame(rows)


def alerts_per_patient_day(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Alerts per subject and day since the anchor (day 1 = index times in the first 24 h).

    Per day: ``subjects`` with a prediction that day, ``predictions``, ``alerts``,
    ``per_patient_day`` (alerts / subjects), ``alerted`` (subjects with at least one
    alert) and ``most`` (the most alerts of one subject that day).

    Examples
    --------
    >>> frame = pd.DataFrame({"subject_id": [1, 1, 1, 2, 2, 2],
    ...     "hours": [12.0, 24.0, 48.0] * 2, "risk": [0.9, 0.8, 0.1, 0.1, 0.6, 0.7]})
    >>> alerts_per_patient_day(frame, 0.5)[["day", "alerts", "per_patient_day"]].values.tolist()
    [[1.0, 3.0, 1.5], [2.0, 1.0, 0.5]]
    """
    day = np.maximum(np.ceil(frame["hours"].to_numpy() / 24), 1).astype(int)
    marked = frame.assign(day=day, alert=(frame["risk"] >= threshold).astype(int))
    per_subject = marked.groupby(["day", "subject_id"])["alert"].agg(["sum", "size"])
    rows = []
    for d, part in per_subject.groupby(level="day"):
        rows.append(
            {
                "day": int(d),
                "subjects": len(part),
                "predictions": int(part["size"].sum()),
                "alerts": int(part["sum"].sum()),
                "per_patient_day": float(part["sum"].sum() / len(part)),
                "alerted": int((part["sum"] > 0).sum()),
                "most": int(part["sum"].max()),
            }
        )
    return pd.DataFrame(rows)


def _risk_figure(frame: pd.DataFrame, aurocs: dict[float, Estimate | None]) -> plt.Figure:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for label, value, colour in (("event", 1, _EVENT), ("no event", 0, _NON_EVENT)):
        part = frame[frame["y"] == value]
        if part.empty:
            continue
        grouped = part.groupby("hours")["risk"]
        q1, median, q3 = grouped.quantile(0.25), grouped.median(), grouped.quantile(0.75)
        left.plot(median.index, median.values, marker="o", c=colour, lw=1.8,
                  label=f"{label}: median")
        left.plot(q1.index, q1.values, c=colour, ls="--", lw=0.9, label=f"{label}: IQR")
        left.plot(q3.index, q3.values, c=colour, ls="--", lw=0.9)
        left.fill_between(q1.index, q1.values, q3.values, color=colour, alpha=0.1)
    left.set(xlabel="index time (hours after the anchor)", ylabel="out-of-fold risk",
             title="Risk through the stay")
    left.set_xticks(sorted(frame["hours"].unique()))
    left.legend(fontsize=8)
    shown = [(h, e) for h, e in aurocs.items() if e is not None]
    if shown:
        hours = np.array([h for h, _ in shown])
        values = np.array([e.value for _, e in shown])
        errors = np.array([[e.value - e.low, e.high - e.value] for _, e in shown]).T
        right.errorbar(hours, values, yerr=errors, marker="o", capsize=4, c="#1d2733")
    right.axhline(0.5, c="grey", ls=":", lw=1)
    right.set(xlabel="index time (hours after the anchor)", ylabel="AUROC (95% CI)",
              title="Discrimination per landmark", ylim=(0.4, 1.0))
    right.set_xticks(sorted(frame["hours"].unique()))
    return fig


def _first_threshold(result: Any) -> tuple[str, float] | None:
    thresholds = result.best.thresholds
    if not thresholds:
        return None
    label, risk = next(iter(thresholds.items()))
    return str(label), float(risk)


def early_warning_section(result: Any, frame: pd.DataFrame) -> Section:
    """Risk by landmark and outcome, AUROC per landmark, alerts per landmark and day."""
    spec = result.spec
    aurocs = landmark_auroc(frame, n_boot=spec.bootstrap, seed=spec.seed)
    grouped = frame.groupby("hours")
    rows = []
    for hours, estimate in aurocs.items():
        part = grouped.get_group(hours)
        events, others = part.loc[part["y"] == 1, "risk"], part.loc[part["y"] == 0, "risk"]
        rows.append(
            [
                _landmark_label(hours),
                len(part),
                int((part["y"] == 1).sum()),
                "not estimable (one outcome class)" if estimate is None else str(estimate),
                f"{events.median():.3f}" if len(events) else "—",
                f"{others.median():.3f}" if len(others) else "—",
            ]
        )
    body = (
        f"<p>Each subject is scored at {len(aurocs)} index times after "
        f"{escape(spec.timeline.index.anchor)}; every risk is out-of-fold (folds keep a "
        "subject's index times together). Lines are the median and the interquartile range "
        f"of the risk of samples with and without the outcome; intervals are bootstrap 95% "
        f"CIs ({spec.bootstrap} resamples per landmark).</p>"
        + figure(_risk_figure(frame, aurocs), "risk through the stay and AUROC per landmark")
        + table(
            rows,
            ["index time", "samples", "events", "AUROC (95% CI)", "median risk: events",
             "median risk: no event"],
        )
    )
    chosen = _first_threshold(result)
    if chosen is None:
        body += callout("The spec sets no operating threshold, so no alerts are counted.",
                        kind="note")
        return Section("Early warning", body)
    label, threshold = chosen
    alerts = alerts_by_landmark(frame, threshold)
    timed = frame["outcome_time"].notna().any()
    alert_rows = []
    for r in alerts.itertuples():
        warning = (
            "not recorded"
            if not timed
            else "—"
            if np.isnan(r.warning_h)
            else f"{r.warning_h:.1f} ({r.warning_q1:.1f}–{r.warning_q3:.1f})"
        )
        alert_rows.append(
            [
                _landmark_label(r.hours),
                r.samples,
                r.events,
                r.alerts,
                r.true_alerts,
                f"{r.true_alerts / r.events:.1%}" if r.events else "—",
                f"{r.true_alerts / r.alerts:.1%}" if r.alerts else "—",
                warning,
            ]
        )
    body += (
        f"<h3>Alerts at the operating point {escape(label)} (risk ≥ {threshold:.3f})</h3>"
        "<p>The threshold was fixed on the out-of-fold predictions of all index times "
        "together and is applied unchanged at each one.</p>"
        + table(
            alert_rows,
            ["index time", "samples", "events", "patients alerted", "true alerts",
             "events alerted", "alerts that were events", "hours of warning, median (IQR)"],
        )
    )
    if not timed:
        column = spec.timeline.outcome.column or spec.target
        body += callout(
            f"Outcome times are not recorded: the outcome is the column {column} of the "
            "source's outcome table, so how long before the outcome an alert came cannot "
            "be measured.",
            kind="note",
        )
    daily = alerts_per_patient_day(frame, threshold)
    body += "<h3>Alerts per patient-day</h3>" + table(
        [
            [r.day, r.subjects, r.predictions, r.alerts, f"{r.per_patient_day:.2f}",
             r.alerted, r.most]
            for r in daily.itertuples()
        ],
        ["day since the anchor", "patients", "predictions", "alerts", "alerts per patient-day",
         "patients alerted", "most alerts for one patient"],
    ) + (
        "<p>Day 1 holds the index times in the first 24 hours after the anchor. A patient "
        "above the threshold at several index times of one day is alerted each time.</p>"
    )
    return Section("Early warning", body)


# --------------------------------------------------------------------------- patient timelines


def example_patients(frame: pd.DataFrame, threshold: float) -> dict[str, int]:
    """Three example samples (positions in ``frame``), chosen from the out-of-fold risk.

    ``highest-risk true positive``: the event with the highest risk at or above
    ``threshold``; ``false negative``: the event with the lowest risk below it;
    ``typical negative``: the non-event below it whose risk is closest to the median
    risk of the non-events. Ties go to the earlier row; a role without a candidate is
    absent. With several index times only the latest of each subject is considered.

    Examples
    --------
    >>> frame = pd.DataFrame({"subject_id": [1, 2, 3, 4, 5], "hours": [48.0] * 5,
    ...                       "y": [1, 1, 0, 0, 0], "risk": [0.9, 0.1, 0.2, 0.3, 0.5]})
    >>> example_patients(frame, 0.4)
    {'highest-risk true positive': 0, 'false negative': 1, 'typical negative': 3}
    """
    frame = frame.reset_index(drop=True)
    latest = frame[frame["hours"] == frame.groupby("subject_id")["hours"].transform("max")]
    latest = latest.assign(_order=latest.index.to_numpy())
    alert = latest["risk"] >= threshold
    events = latest["y"] == 1
    chosen: dict[str, int] = {}
    tp = latest[alert & events]
    if len(tp):
        chosen["highest-risk true positive"] = int(
            tp.sort_values(["risk", "_order"], ascending=[False, True])["_order"].iloc[0]
        )
    fn = latest[~alert & events]
    if len(fn):
        chosen["false negative"] = int(
            fn.sort_values(["risk", "_order"], ascending=[True, True])["_order"].iloc[0]
        )
    negatives = latest[~events]
    if len(negatives):
        median = negatives["risk"].median()
        below = negatives[negatives["risk"] < threshold]
        pool = below if len(below) else negatives
        pool = pool.assign(_distance=(pool["risk"] - median).abs())
        chosen["typical negative"] = int(
            pool.sort_values(["_distance", "_order"])["_order"].iloc[0]
        )
    return chosen


def column_code(column: str) -> tuple[str, str]:
    """``(code, window)`` of a timeline feature column: an aggregate's window, ``grid``
    for a grid column, ``static`` for a value without a time.

    Examples
    --------
    >>> column_code("HR__mean__24h"), column_code("seq__HR__t003"), column_code("Age")
    (('HR', '24h'), ('HR', 'grid'), ('Age', 'static'))
    """
    if column.startswith(GRID_PREFIX):
        return column[len(GRID_PREFIX):].rsplit("__", 1)[0], "grid"
    parts = column.rsplit("__", 2)
    if len(parts) == 3:
        return parts[0], parts[2]
    return column, "static"


def _timed_codes(result: Any) -> list[str]:
    """Timed codes, most important first (trust layer attributions, else most measured)."""
    missing = result.timeline.missingness
    timed = list(missing["code"])
    trust = result.trust
    attribution = getattr(trust, "attribution", None) if trust is not None else None
    if attribution is not None:
        importance = attribution.values.abs().mean(axis=0)
        by_code: dict[str, float] = {}
        for column, value in importance.items():
            code, window = column_code(str(column))
            if window != "static" and code in timed:
                by_code[code] = by_code.get(code, 0.0) + float(value)
        ranked = sorted(by_code, key=lambda c: (-by_code[c], c))
        if ranked and by_code[ranked[0]] > 0:
            return ranked + [c for c in timed if c not in by_code]
    return list(missing.sort_values(["missing", "code"])["code"])


def _fold_model(result: Any, position: int) -> Any:
    """The model that made the out-of-fold prediction of ``position`` (else the final)."""
    fitted = result.best.fold_estimators
    if result.spec.validation.scheme == "fixed" and len(fitted) == 1:
        return fitted[0]  # every evaluated row is a validation row, predicted by it
    if (
        len(fitted) == len(result.folds)
        and sum(len(test) for _, test in result.folds) == len(result.cohort.y)
    ):
        for (_, test), model in zip(result.folds, fitted, strict=True):
            if position in set(np.asarray(test).tolist()):
                return model
    return result.final_model


def _sequence_attribution(
    result: Any, positions: list[int], steps: int, step_h: float
) -> pd.DataFrame | None:
    """Occlusion attribution per code and block of steps, when the model reads the grid."""
    try:
        from medpredict.timeline import sequence
    except ImportError:
        return None
    factory = getattr(sequence, result.best_name, None)
    if not callable(factory) or getattr(factory, "__module__", "") != sequence.__name__:
        return None
    if not hasattr(sequence, "grid_attribution") or not steps:
        return None
    block = max(1, math.ceil(ATTRIBUTION_HOURS / step_h - 1e-9))
    X = result.cohort.X
    parts = []
    for position in positions:
        table_ = sequence.grid_attribution(_fold_model(result, position), X, [position], block)
        parts.append(table_.assign(position=position))
    return pd.concat(parts, ignore_index=True)


def _tabular_factors(result: Any, positions: list[int]) -> tuple[dict[int, pd.Series], str]:
    """SHAP attributions per column of each position's row, and their scale."""
    from medpredict.trust.explanations import explain, explanation_method

    trust = result.trust
    if trust is None:
        return {}, ""
    X = result.cohort.X
    out: dict[int, pd.Series] = {}
    space = ""
    by_model: dict[int, tuple[Any, list[int]]] = {}
    for position in positions:
        model = _fold_model(result, position)
        by_model.setdefault(id(model), (model, []))[1].append(position)
    for model, rows in by_model.values():
        if explanation_method(model) in ("tree", "linear"):
            attribution = explain(model, X.iloc[rows], trust.background)
            space = attribution.space
            out |= {p: attribution.values.iloc[i] for i, p in enumerate(rows)}
            continue
        explained = trust.attribution.values
        for position in rows:
            label = X.index[position]
            if label in explained.index:
                out[position], space = explained.loc[label], trust.attribution.space
    return out, space


def _grouped_factors(values: pd.Series) -> pd.DataFrame:
    keyed = pd.DataFrame(
        [(*column_code(str(c)), float(v)) for c, v in values.items()],
        columns=["code", "window", "contribution"],
    )
    grouped = keyed.groupby(["code", "window"], as_index=False)["contribution"].sum()
    grouped = grouped[grouped["contribution"] != 0]
    grouped = grouped.assign(size=grouped["contribution"].abs())
    return grouped.sort_values(["size", "code", "window"], ascending=[False, True, True])


def _value_text(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    if isinstance(value, int | float | np.integer | np.floating):
        return f"{float(value):g}"
    return str(value)


def _grid_values(X: pd.DataFrame, position: int, code: str, steps: int) -> np.ndarray:
    values = np.full(steps, np.nan)
    for k in range(steps):
        column = f"{GRID_PREFIX}{code}__t{k:03d}"
        if column in X.columns:
            value = X[column].iloc[position]
            values[k] = np.nan if pd.isna(value) else float(value)
    return values


def _patient_figure(
    result: Any,
    frame: pd.DataFrame,
    position: int,
    role: str,
    codes: list[str],
    steps: int,
    step_h: float,
    threshold: float | None,
    shading: pd.DataFrame | None,
    contributions: dict[str, float],
    contribution_label: str,
) -> plt.Figure:
    sample = frame.iloc[position]
    history = frame[frame["subject_id"] == sample["subject_id"]].sort_values("hours")
    with_risk = len(history) > 1
    n_rows = len(codes) + int(with_risk)
    fig, axes = plt.subplots(n_rows, 1, figsize=(8, 1.7 * n_rows + 0.8), sharex=True,
                             squeeze=False, layout="constrained")
    axes = axes[:, 0]
    observation_h = steps * step_h
    centres = -(steps - np.arange(steps) - 0.5) * step_h
    anchor_back = (sample["index_time"] - sample["anchor_time"]) / pd.Timedelta(hours=1)
    scale = 0.0
    if shading is not None and len(shading):
        scale = float(shading["importance"].abs().max())
    if with_risk:
        ax = axes[0]
        back = (history["index_time"] - sample["index_time"]) / pd.Timedelta(hours=1)
        ax.plot(back, history["risk"], marker="o", c="#1d2733")
        top = float(history["risk"].max())
        if threshold is not None:
            ax.axhline(threshold, c="#f0a000", ls="--", lw=1, label="threshold")
            ax.legend(fontsize=7, loc="upper left")
            top = max(top, threshold)
        ax.set_ylim(0, top * 1.15 + 1e-6)
        ax.set_ylabel("risk", fontsize=8)
        ax.set_title("out-of-fold risk at each index time of the subject", fontsize=8,
                     loc="left")
    for ax, code in zip(axes[int(with_risk):], codes, strict=True):
        values = _grid_values(result.cohort.X, position, code, steps)
        seen = ~np.isnan(values)
        ax.plot(centres[seen], values[seen], marker="o", ms=3.5, lw=1.2, c="#1f6feb")
        if not seen.any():
            ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center",
                    va="center", fontsize=8, color="grey")
        ax.set_ylabel(code, fontsize=8)
        if scale > 0:
            for r in shading[shading["code"] == code].itertuples():
                if r.importance == 0:
                    continue
                colour = _EVENT if r.importance > 0 else _NON_EVENT
                ax.axvspan(-(steps - r.first_step) * step_h, -(steps - r.last_step - 1) * step_h,
                           color=colour, alpha=0.5 * abs(r.importance) / scale, lw=0)
        if code in contributions:
            ax.set_title(f"{code}: {contribution_label} {contributions[code]:+.3g}",
                         fontsize=8, loc="left")
    for ax in axes:
        ax.axvline(0, c="#1d2733", lw=1)
        if 0 < anchor_back <= observation_h:
            ax.axvline(-anchor_back, c="grey", ls=":", lw=1)
        ax.tick_params(labelsize=7)
    axes[-1].set_xlim(-observation_h, step_h * 0.3)
    axes[-1].set_xlabel("hours before the index time (dotted: the anchor)")
    outcome = "event" if sample["y"] == 1 else "no event"
    fig.suptitle(
        f"{role}: {sample['sample_id']}, {outcome}, out-of-fold risk {sample['risk']:.3f}",
        fontsize=9,
    )
    return fig


def patient_section(result: Any, frame: pd.DataFrame) -> Section:
    """Timelines of three example patients up to the index time, with what drove the risk."""
    title = "Patient timelines"
    timeline = result.spec.timeline
    chosen = _first_threshold(result)
    threshold = chosen[1] if chosen is not None else 0.5
    examples = example_patients(frame, threshold)
    if not examples:
        return Section(title, callout("No sample could serve as an example.", kind="note"))
    positions = list(examples.values())
    step_h = duration(timeline.step) / pd.Timedelta(hours=1) if timeline.step else 0.0
    steps = (
        math.ceil(duration(timeline.observation) / pd.Timedelta(hours=1) / step_h - 1e-9)
        if step_h
        else 0
    )
    codes = _timed_codes(result)[:N_VARIABLES]
    shading = _sequence_attribution(result, positions, steps, step_h)
    factors, space = ({}, "") if shading is not None else _tabular_factors(result, positions)
    threshold_text = (
        f"the operating point {escape(chosen[0])} (risk ≥ {threshold:.3f})"
        if chosen is not None
        else "a risk of 0.5 (the spec sets no operating threshold)"
    )
    latest = " at each subject's latest index time" if frame["hours"].nunique() > 1 else ""
    body = (
        f"<p>Three samples chosen from the out-of-fold risks{latest} against "
        f"{threshold_text}: the event with the highest risk above it, the event with the "
        "lowest risk below it, and a non-event whose risk is the median of the non-events. "
        f"Each panel shows one of the {len(codes)} top-ranked variables: the last value in "
        f"each {escape(timeline.step or '—')} step of the {escape(timeline.observation)} "
        "observation window, up to the index time (solid line)."
    )
    if shading is not None:
        body += (
            f" Shading is the attribution of {escape(result.best_name)} (occlusion): red "
            "where removing the variable's values in that block lowers the risk (they raised "
            "it), blue where they lowered it; stronger colour, larger effect.</p>"
        )
    elif factors:
        body += (
            " Each panel gives the variable's summed SHAP contribution "
            f"({escape(space)}) to the risk of the model that predicted the sample; the "
            "table lists the largest contributions per variable and window.</p>"
        )
    else:
        body += "</p>" + callout(
            "No explanation is available for these samples (the trust layer did not run, "
            "or the model needs the kernel explainer and the samples were not among those "
            "it explained).",
            kind="note",
        )
    if not steps:
        body += callout(
            "The study has no grid (timeline.step is null), so values over time are not "
            "drawn.", kind="note"
        )
    for role, position in examples.items():
        sample = frame.iloc[position]
        contributions: dict[str, float] = {}
        grouped = None
        if position in factors:
            grouped = _grouped_factors(factors[position])
            contributions = grouped.groupby("code")["contribution"].sum().to_dict()
        own = None if shading is None else shading[shading["position"] == position]
        label = f"summed SHAP ({space})"
        if own is not None:
            contributions = own.groupby("code")["importance"].sum().to_dict()
            label = "risk change from its values"
        body += f"<h3>{escape(role)}: {escape(sample['sample_id'])}</h3>"
        if steps:
            body += figure(
                _patient_figure(result, frame, position, role, codes, steps, step_h,
                                chosen[1] if chosen else None, own, contributions,
                                label),
                f"timeline of the {role}",
            )
        if not pd.isna(sample["outcome_time"]):
            after = (sample["outcome_time"] - sample["index_time"]) / pd.Timedelta(hours=1)
            body += f"<p>The outcome occurred {after:.1f} hours after the index time.</p>"
        if grouped is not None and len(grouped):
            X = result.cohort.X
            rows = []
            for r in grouped.head(N_FACTORS).itertuples():
                last = f"{r.code}__last__{r.window}"
                count = f"{r.code}__count__{r.window}"
                source = last if last in X.columns else r.code if r.code in X.columns else None
                rows.append(
                    [
                        r.code,
                        r.window,
                        f"{r.contribution:+.3f}",
                        "—" if source is None else _value_text(X[source].iloc[position]),
                        _value_text(X[count].iloc[position]) if count in X.columns else "—",
                    ]
                )
            body += table(rows, ["variable", "window", f"contribution ({space})",
                                 "last value", "measurements"])
        elif own is not None and len(own):
            strongest = own.assign(size=own["importance"].abs()).sort_values(
                ["size", "code", "first_step"], ascending=[False, True, True]
            ).head(N_FACTORS)
            body += table(
                [
                    [r.code,
                     f"{(r.first_step - steps) * step_h:g} to "
                     f"{(r.last_step + 1 - steps) * step_h:g}",
                     r.measurements, f"{r.importance:+.4f}"]
                    for r in strongest.itertuples()
                ],
                ["variable", "hours before the index time", "measurements removed",
                 "risk change when removed (risk − risk without)"],
            )
    return Section(title, body)
