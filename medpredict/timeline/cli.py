"""``medpredict events``: read a clinical source into a MEDS dataset and a quarantine table.

Examples
--------
>>> import typer
>>> app = typer.Typer()
>>> _ = app.command("events")(events)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medpredict.data.errors import DataError
from medpredict.timeline.events import write_meds
from medpredict.timeline.spec import EventSource, Reader
from medpredict.timeline.table import read_source


def events(
    source: Annotated[Path, typer.Argument(help="Folder, archive or file of the source.")],
    reader: Annotated[Reader, typer.Option(help="Which reader reads the source.")],
    out: Annotated[Path, typer.Option(help="Folder of the MEDS dataset to write.")],
    outcomes: Annotated[
        Path | None, typer.Option(help="Outcome table shipped with the source (PhysioNet 2012).")
    ] = None,
    mapping: Annotated[
        str | None, typer.Option(help="Table-to-event mapping for mimic: mimic3, mimic4 or YAML.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Dataset name in the MEDS metadata.")] = None,
) -> None:
    """Read a clinical source (PhysioNet 2012, MIMIC, OMOP, FHIR) into MEDS events.

    Every row of SOURCE is screened. Writes OUT/data/*.parquet and OUT/metadata (MEDS),
    OUT/quarantine.csv (every rejected row with its file, line and reason) and, when the
    source has one, OUT/outcomes.csv.
    Prints rows in = events stored + rows quarantined, with the counts by reason.
    """
    try:
        spec = EventSource(reader=reader, path=source, outcomes=outcomes, mapping=mapping)
        read = read_source(spec)
    except (DataError, FileNotFoundError, ValueError) as err:
        raise typer.BadParameter(str(err), param_hint="SOURCE") from err
    write_meds(read.events, out, name=name or source.name)
    read.quarantine.to_csv(out / "quarantine.csv", index=False)
    written = [out / "data", out / "quarantine.csv"]
    if read.outcomes is not None:
        read.outcomes.to_csv(out / "outcomes.csv", index=False)
        written.append(out / "outcomes.csv")
    typer.echo(f"{source}: {read.summary()}\n-> {', '.join(map(str, written))}")
