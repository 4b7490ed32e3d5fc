"""``medpredict explain``: risks with conformal sets and top factors for new patients.

Examples
--------
>>> import typer
>>> app = typer.Typer()
>>> _ = app.command("explain")(explain_command)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer


def explain_command(
    model: Annotated[Path, typer.Option(help="Model directory written by `medpredict run`.")],
    input: Annotated[Path, typer.Option("--input", "-i", help="CSV or Parquet of new patients.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV file for the results.")],
    top: Annotated[int, typer.Option(min=1, help="Factors listed per patient.")] = 5,
    keep: Annotated[
        list[str] | None,
        typer.Option(help="Input column to copy to the output, e.g. a patient id (repeatable)."),
    ] = None,
) -> None:
    """Score new patients and add each one's conformal set, referral status and top factors."""
    from medpredict.predict import predict_frame
    from medpredict.registry import load_model
    from medpredict.trust import annotate_predictions

    reader = pd.read_parquet if input.suffix.lower() in (".parquet", ".pq") else pd.read_csv
    frame = reader(input)
    loaded = load_model(model)
    scored = predict_frame(loaded, frame, keep=keep or [])
    annotated = annotate_predictions(loaded, frame, keep=keep or [], k=top)
    pd.concat([scored, annotated], axis=1).to_csv(output, index=False)
    referred = int((annotated["uncertainty"] != "confident").sum())
    typer.echo(f"wrote {len(scored)} patient(s) to {output}; {referred} marked for referral")
