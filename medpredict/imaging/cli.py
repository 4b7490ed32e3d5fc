"""``medpredict image-study``: train, compare and save image models from the command line.

Examples
--------
>>> import typer
>>> app = typer.Typer()
>>> _ = app.command("image-study")(image_study)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medpredict.data.errors import DataError
from medpredict.imaging.cohort import ImageCohort, load_image_folder, load_medmnist
from medpredict.imaging.recipes import RECIPES, make_candidates
from medpredict.imaging.study import run_image_study


def _cohorts(
    npz: Path | None, train: Path | None, val: Path | None, test: Path | None, size: int | None
) -> tuple[ImageCohort, ImageCohort | None, ImageCohort]:
    if npz is not None:
        splits = load_medmnist(npz)
        return splits["train"], splits["val"], splits["test"]
    if train is None or test is None:
        raise DataError("give a MedMNIST .npz file, or --train-csv and --test-csv")
    val_cohort = load_image_folder(val, size=size) if val is not None else None
    return load_image_folder(train, size=size), val_cohort, load_image_folder(test, size=size)


def image_study(
    npz: Annotated[
        Path | None, typer.Argument(help="MedMNIST-format .npz with train/val/test splits.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for report, metrics and model.")] = Path(
        "image-study"
    ),
    model: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Candidate (repeatable): {', '.join(RECIPES)}. Default: probe and "
            "probe_finetune."
        ),
    ] = None,
    train_csv: Annotated[
        Path | None, typer.Option(help="Labels CSV (path, label, patient_id) for training.")
    ] = None,
    val_csv: Annotated[Path | None, typer.Option(help="Labels CSV for validation.")] = None,
    test_csv: Annotated[Path | None, typer.Option(help="Labels CSV for the test set.")] = None,
    size: Annotated[
        int | None, typer.Option(help="Resize CSV-listed images to SIZE x SIZE on load.")
    ] = None,
    positive_label: Annotated[
        str | None, typer.Option(help="Label that counts as the event (binary tasks).")
    ] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for CIs.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Fit image models, select on validation, score the test split, save the best.

    Writes report.html (with Grad-CAM overlays), metrics.json and model/ to OUT.
    """
    names = model or ["probe", "probe_finetune"]
    try:
        candidates = make_candidates(names, seed)
        train, val, test = _cohorts(npz, train_csv, val_csv, test_csv, size)
    except (DataError, ValueError, FileNotFoundError) as err:
        raise typer.BadParameter(str(err)) from err
    if positive_label is not None:
        values = {str(v): v for v in train.labels.tolist()}
        if positive_label not in values:
            raise typer.BadParameter(
                f"positive label {positive_label!r} is not among {sorted(values)}",
                param_hint="--positive-label",
            )
        for cohort in (train, val, test):
            if cohort is not None:
                cohort.positive_label = values[positive_label]
    result = run_image_study(train, test, candidates, out, val=val, n_boot=bootstrap, seed=seed)
    for name, candidate in result.candidates.items():
        mark = "*" if name == result.best_name else " "
        typer.echo(
            f"{mark} {name}: validation AUROC {candidate.val_metrics['auroc']}, "
            f"test AUROC {candidate.test_metrics['auroc']}, "
            f"accuracy {candidate.test_metrics['accuracy']}"
        )
    typer.echo(f"report: {result.report_path}\nmodel: {result.model_dir}")
