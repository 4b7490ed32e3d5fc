"""``medpredict forecast``: rolling-origin evaluation and the latest forecast from a spec.

Examples
--------
>>> import typer
>>> app = typer.Typer()
>>> _ = app.command("forecast")(forecast)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from medpredict.data.errors import DataError, SpecError
from medpredict.forecasting.data import read_counts
from medpredict.forecasting.outputs import write_forecast_dir
from medpredict.forecasting.report import forecast_report
from medpredict.forecasting.runner import run_forecast
from medpredict.forecasting.spec import load_forecast_spec


def forecast(
    spec_path: Annotated[Path, typer.Argument(help="Forecast spec (YAML).", metavar="SPEC")],
    output_dir: Annotated[
        Path, typer.Option(help="Folder for the forecast directory <output-dir>/<name>.")
    ] = Path("runs"),
    jobs: Annotated[int, typer.Option(help="Parallel processes for the rolling fits.")] = 2,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Forecast counts per location (admissions, outbreaks) with calibrated intervals.

    Reads the counts, makes rolling-origin forecasts with every model in the spec (each
    forecast date sees only the data reported by then), recalibrates the intervals,
    scores them by weighted interval score against the baseline and writes the latest
    forecast of the best model, the scores and a report to OUTPUT-DIR/NAME.
    """
    console = Console(stderr=True)
    try:
        spec = load_forecast_spec(spec_path)
        counts = read_counts(spec)
        console.print(f"{spec.name}: {counts.summary.line()}", highlight=False)
        result = run_forecast(spec, counts, quiet=quiet, n_jobs=jobs)
    except (DataError, SpecError, FileNotFoundError) as err:
        console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
        raise typer.Exit(2) from None
    folder = write_forecast_dir(result, output_dir / spec.name, forecast_report(result))
    table = Table(title=f"{spec.name}: relative WIS against {spec.evaluation.baseline}")
    for column in ("model", "dates", "relative WIS (95% CI)", "50% cov.", "95% cov."):
        table.add_column(column)
    for row in result.scores[result.scores["block"] == "all"].itertuples():
        marker = " (selected)" if row.model == result.selected else ""
        table.add_row(row.model + marker, str(row.dates), str(row.relative_wis),
                      f"{row.coverage_50.value:.2f}" if hasattr(row, "coverage_50") else "",
                      f"{row.coverage_95.value:.2f}" if hasattr(row, "coverage_95") else "")
    Console().print(table)
    if result.not_forecast:
        console.print(
            "not forecast (too little history): "
            + ", ".join(f"{loc} ({n} periods)" for loc, n in result.not_forecast.items()),
            highlight=False,
        )
    console.print(
        f"latest forecast ({result.selected}, reference date {result.latest_date.date()}) "
        f"and report in {folder}",
        highlight=False,
    )
