"""Population forecasts: CDC FluSight weekly influenza admissions, three seasons.

Runs the example spec ``medpredict/examples/flusight.yaml`` as a user would
(``medpredict forecast``): the 50 states, DC and PR scored (the US total bottom-up),
horizons 0-3 weeks, FluSight's 23 quantiles, forecast dates October to May of 2023-24,
2024-25 and 2025-26, each using only the data up to the week before. Every model's mean
WIS relative to the FluSight baseline (computed in the same run) with a 95% bootstrap CI
over forecast dates, 50% and 95% interval coverage, and the wall time of the
whole rolling evaluation (target <= 5 min on the 2-core machine).

Targets: relative WIS <= 0.85 in every season and 95% coverage >= 0.90. For reference,
the FluSight ensemble of dozens of teams, recomputed from the hub's files the same way,
scored 0.742 / 0.690 / 0.675 (real-time data, which were later revised; see the note).

Results go to benchmarks/results/forecasting.md. Run:
``.venv/bin/python benchmarks/forecasting.py``.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

from medpredict.forecasting.data import read_counts
from medpredict.forecasting.runner import REVISION_NOTE, run_forecast
from medpredict.forecasting.spec import load_forecast_spec

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "forecasting.md"
SPEC = ROOT / "medpredict" / "examples" / "flusight.yaml"
HUB_ENSEMBLE = {"2023-24": 0.742, "2024-25": 0.690, "2025-26": 0.675}
TARGET_RELATIVE_WIS = 0.85
TARGET_COVERAGE = 0.90


def main() -> None:
    load = os.getloadavg()[0]
    spec = load_forecast_spec(SPEC)
    started = time.perf_counter()
    counts = read_counts(spec)
    result = run_forecast(spec, counts, quiet=True)
    wall = time.perf_counter() - started
    scores = result.scores
    lines = [
        "## Population forecasts (FluSight influenza admissions)",
        "",
        "`.venv/bin/python benchmarks/forecasting.py`: the example spec "
        "`medpredict/examples/flusight.yaml` as `medpredict forecast` runs it; "
        f"{len(result.scored_locations)} locations scored (states, DC, PR; the US total "
        "bottom-up, not scored), horizons 0-3 weeks, 23 quantiles, relative WIS = mean WIS / "
        "the FluSight baseline's mean WIS on the same forecasts, 95% CIs from 1,000 "
        "bootstrap resamples of forecast dates. Data: "
        f"{counts.summary.line()}.",
        "",
        "| model | season | dates | relative WIS (95% CI) | 50% coverage | 95% coverage |",
        "|---|---|---|---|---|---|",
    ]
    for row in scores.itertuples():
        marker = " (selected)" if row.model == result.selected else ""
        lines.append(
            f"| {row.model}{marker} | {row.block} | {row.dates} | {row.relative_wis} | "
            f"{row.coverage_50.value:.3f} | {row.coverage_95.value:.3f} |"
        )
    chosen = scores[(scores["model"] == result.selected) & (scores["block"] != "all")]
    met = all(r.relative_wis.value <= TARGET_RELATIVE_WIS for r in chosen.itertuples())
    covered = all(r.coverage_95.value >= TARGET_COVERAGE for r in chosen.itertuples())
    hub = ", ".join(f"{season} {value:.3f}" for season, value in HUB_ENSEMBLE.items())
    lines += [
        "",
        f"Selected: **{result.selected}** — relative WIS "
        + ", ".join(f"{r.block} {r.relative_wis.value:.3f}" for r in chosen.itertuples())
        + f" (target <= {TARGET_RELATIVE_WIS} in every season: {'met' if met else 'not met'}); "
        "95% coverage "
        + ", ".join(f"{r.block} {r.coverage_95.value:.3f}" for r in chosen.itertuples())
        + f" (target >= {TARGET_COVERAGE}: {'met' if covered else 'not met'}). "
        f"FluSight ensemble recomputed from the hub: {hub}.",
        "",
        f"Note: {REVISION_NOTE} The selected model is also the one with the best score "
        "on these seasons, so its row is slightly optimistic; the other models' rows carry "
        "no such selection.",
        "",
        f"Whole run (read, {len(result.forecasts.dates)} forecast dates x "
        f"{len(result.forecasts.models)} models, recalibration, scores with CIs): "
        f"{wall:.0f} s wall on 2 processes — target <= 300 s.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average {load:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end.",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
