"""``medpredict signal-windows``: annotated WFDB records -> a study table of ECG windows.

Examples
--------
>>> import typer
>>> app = typer.Typer()
>>> _ = app.command("signal-windows")(signal_windows)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medpredict.data.errors import DataError
from medpredict.signals.cohort import af_window_table


def signal_windows(
    folder: Annotated[
        Path, typer.Argument(help="Folder of WFDB records with rhythm annotations (.atr).")
    ],
    out: Annotated[
        Path, typer.Option(help="Study table to write (.csv or .parquet).")
    ] = Path("af_windows.csv"),
    window_s: Annotated[float, typer.Option(help="Window length in seconds.")] = 30.0,
    step_s: Annotated[float, typer.Option(help="Stride between window starts (s).")] = 10.0,
    af_threshold: Annotated[
        float, typer.Option(help="AF share of a window at or above which it is labelled 1.")
    ] = 0.5,
    lead: Annotated[
        str | None,
        typer.Option(help="Reference this lead only (e.g. II; HRV features need one lead)."),
    ] = None,
    column: Annotated[str, typer.Option(help="Name of the signal-reference column.")] = "ecg",
) -> None:
    """Cut annotated ECG records into a study table of labelled windows.

    One row per window. Columns: patient, record, the window reference, label (1 = AF)
    and af_fraction.
    Unusable records and windows are written to <out stem>.quarantine<suffix>.
    """
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise typer.BadParameter(f"{out}: write the table as .csv or .parquet", param_hint="--out")
    try:
        windows = af_window_table(folder, column, window_s, step_s, af_threshold, lead)
    except (DataError, FileNotFoundError) as err:
        raise typer.BadParameter(str(err), param_hint="FOLDER") from err
    written = windows.write(out)
    typer.echo(f"{windows.summary()} -> {', '.join(map(str, written))}")
