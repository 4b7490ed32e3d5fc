"""``medpredict monitor``: ingest wearable exports, run the detectors, write alerts and timelines.

Examples
--------
>>> import typer
>>> app = typer.Typer()
>>> _ = app.command("monitor")(monitor)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from medpredict.data.errors import DataError
from medpredict.wearables.alerts import write_alerts
from medpredict.wearables.monitor import DETECTORS, make_detectors, monitor_path
from medpredict.wearables.quality import check_timezone
from medpredict.wearables.timeline import timeline_html


def monitor(
    path: Annotated[Path, typer.Argument(help="Export file or folder (Fitbit CSVs, Welltory).")],
    out: Annotated[Path, typer.Option(help="Folder for alerts and the timeline.")] = Path(
        "monitor-out"
    ),
    timezone: Annotated[
        str, typer.Option(help="IANA zone for timestamps without a UTC offset.")
    ] = "UTC",
    store: Annotated[
        Path | None, typer.Option(help="DuckDB file to append to (default: in memory).")
    ] = None,
    detectors: Annotated[
        str, typer.Option(help=f"Comma-separated, from: {', '.join(DETECTORS)}.")
    ] = ",".join(DETECTORS),
    max_people: Annotated[
        int, typer.Option(help="Timelines for at most this many people (most alerts first).")
    ] = 25,
) -> None:
    """Ingest wearable data, run personal-baseline detectors, write alerts and timelines.

    Writes alerts.csv, alerts.json, timeline.html, quarantine.csv and ingest.json to OUT.
    Alerts are informational and not a diagnosis.
    """
    try:
        chosen = make_detectors([d.strip() for d in detectors.split(",") if d.strip()])
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--detectors") from err
    try:
        check_timezone(timezone)
    except DataError as err:
        raise typer.BadParameter(str(err), param_hint="--timezone") from err
    try:
        result = monitor_path(path, timezone=timezone, store_path=store, detectors=chosen)
    except (DataError, FileNotFoundError) as err:
        raise typer.BadParameter(str(err), param_hint="PATH") from err
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = write_alerts(result.alerts, out)
    counts = result.alerts["person"].value_counts()
    people = list(counts.index[:max_people])
    if len(people) < max_people:
        quiet = [p for p in sorted(result.daily["person"].unique()) if p not in counts.index]
        people += quiet[: max_people - len(people)]
    (out / "timeline.html").write_text(timeline_html(result.daily, result.alerts, people))
    result.quarantine.to_csv(out / "quarantine.csv", index=False)
    quarantined = len(result.quarantine)
    (out / "ingest.json").write_text(
        json.dumps(
            {"ingests": [s.to_dict() for s in result.ingests], "skipped_detectors": result.skipped},
            indent=1,
        )
    )
    for summary in result.ingests:
        reasons = "; ".join(f"{k}: {v}" for k, v in summary.reasons.items()) or "none"
        typer.echo(
            f"{summary.source}: {summary.n_input} rows, {summary.n_stored} stored, "
            f"{summary.n_quarantined} quarantined ({reasons}), {summary.n_reordered} reordered, "
            f"{summary.gaps} gaps"
        )
    for name, reason in result.skipped.items():
        typer.echo(f"detector {name} skipped: {reason}")
    typer.echo(
        f"{result.daily['person'].nunique()} people, {len(result.daily)} person-days, "
        f"{len(result.alerts)} alerts ({quarantined} rows quarantined) -> {csv_path}, "
        f"{json_path}, {out / 'timeline.html'}"
    )
