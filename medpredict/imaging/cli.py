"""``medpredict image-study``: image splits in, a study spec out, run by ``medpredict run``.

The command turns a MedMNIST ``.npz`` (train/val/test) or labels CSVs into a study
table of image references with a ``split`` column and a study spec with the fixed
validation scheme (:mod:`medpredict.imaging.study_spec`), writes both into the output
folder (``images.csv``, ``study.yaml``) and runs the spec with the ``run`` command of
the medpredict command line, the same runner as every study.

Examples
--------
>>> from typer.testing import CliRunner
>>> from medpredict.cli import app
>>> result = CliRunner().invoke(app, ["image-study", "--model", "resnet"])
>>> result.exit_code, "unknown image model(s) ['resnet']" in result.output
(2, True)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from medpredict.data.checks import check_columns_present
from medpredict.data.errors import DataError
from medpredict.evaluation.bootstrap import Estimate
from medpredict.imaging.cohort import ImageCohort, load_image_folder, load_medmnist
from medpredict.imaging.recipes import RECIPES, check_recipe_names
from medpredict.imaging.study_spec import DEFAULT_MODELS, write_image_study


def _cohorts(
    npz: Path | None, train: Path | None, val: Path | None, test: Path | None, size: int | None
) -> dict[str, ImageCohort | None]:
    if npz is not None:
        return load_medmnist(npz.resolve())
    if train is None or test is None:
        raise DataError("give a MedMNIST .npz file, or --train-csv and --test-csv")
    csvs = {"train": train, "val": val, "test": test}
    return {
        split: None if path is None else load_image_folder(path.resolve(), size=size)
        for split, path in csvs.items()
    }


def _attributes(csvs: dict[str, Path | None], columns: list[str]) -> dict[str, pd.DataFrame]:
    """The sensitive-attribute columns of each labels CSV, in its row order."""
    out = {}
    for split, path in csvs.items():
        if path is None:
            continue
        table = pd.read_csv(path)
        check_columns_present(table, columns, "--sensitive", where=str(path))
        out[split] = table[columns]
    return out


def _positive(splits: dict[str, ImageCohort | None], label: str | None) -> Any:
    """The training label whose text is ``label`` (None: the cohort's default)."""
    train = splits["train"]
    if label is None:
        return train.positive_label
    values = {str(v): v for v in train.labels.tolist()}
    if label not in values:
        raise typer.BadParameter(
            f"positive label {label!r} is not among {sorted(values)}", param_hint="--positive-label"
        )
    return values[label]


def _run(ctx: typer.Context, spec: Path, quiet: bool) -> None:
    """Run ``spec`` with the ``run`` command of the command line this command belongs to."""
    find = getattr(ctx.parent.command, "get_command", None) if ctx.parent is not None else None
    run = find(ctx.parent, "run") if find is not None else None
    if run is None:
        typer.echo(f"run the study with: medpredict run {spec}")
        raise typer.Exit(1)
    defaults = {param.name: param.default for param in run.params}
    run.callback(**defaults | {"spec": [spec], "quiet": quiet})


def _summary(out: Path) -> list[str]:
    metrics = json.loads((out / "metrics.json").read_text())
    best = metrics["selected_model"]

    def auroc(values: dict[str, Any]) -> Estimate:
        return Estimate(**{k: values["auroc"][k] for k in ("value", "low", "high")})

    lines = [
        f"{'*' if name == best else ' '} {name}: validation AUROC {auroc(c['metrics'])}"
        for name, c in metrics["candidates"].items()
    ]
    for kind, holdout in metrics["holdouts"].items():
        lines.append(
            f"{kind} AUROC of {best} (refitted on training + validation images): "
            f"{auroc(holdout['metrics'])}"
        )
    return lines


def image_study(
    ctx: typer.Context,
    npz: Annotated[
        Path | None, typer.Argument(help="MedMNIST-format .npz with train/val/test splits.")
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Folder for the table, spec, report, metrics and model.")
    ] = Path("image-study"),
    model: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Candidate (repeatable): {', '.join(RECIPES)}. Default: "
            f"{' and '.join(DEFAULT_MODELS)}."
        ),
    ] = None,
    train_csv: Annotated[
        Path | None, typer.Option(help="Labels CSV (path, label, patient_id) for training.")
    ] = None,
    val_csv: Annotated[
        Path | None,
        typer.Option(help="Labels CSV for validation (default: 15% of training, by patient)."),
    ] = None,
    test_csv: Annotated[Path | None, typer.Option(help="Labels CSV for the test set.")] = None,
    size: Annotated[
        int | None, typer.Option(help="Resize CSV-listed images to SIZE x SIZE on load.")
    ] = None,
    positive_label: Annotated[
        str | None, typer.Option(help="Label that counts as the event (binary tasks).")
    ] = None,
    sensitive: Annotated[
        list[str] | None,
        typer.Option(help="Labels-CSV column audited for fairness (repeatable)."),
    ] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for CIs.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Fit image models, select on validation, score the test split, save the best.

    Writes images.csv and study.yaml (rerun with `medpredict run OUT/study.yaml`), then
    report.html (with Grad-CAM overlays), metrics.json and model/ to OUT.
    """
    names = model or list(DEFAULT_MODELS)
    columns = list(sensitive or [])
    try:
        check_recipe_names(names)
        if columns and npz is not None:
            raise DataError("--sensitive reads columns of labels CSVs, not of a .npz file")
        splits = _cohorts(npz, train_csv, val_csv, test_csv, size)
        csvs = {"train": train_csv, "val": val_csv, "test": test_csv}
        attributes = _attributes(csvs, columns) if columns else None
        spec = write_image_study(
            out, splits, names, attributes,
            name=npz.stem if npz is not None else out.resolve().name,
            positive_label=_positive(splits, positive_label),
            sensitive=columns, size=None if npz is not None else size,
            bootstrap=bootstrap, seed=seed,
        )
    except (DataError, ValueError, FileNotFoundError) as err:
        raise typer.BadParameter(str(err)) from err
    typer.echo(f"study spec: {spec} (rerun with: medpredict run {spec})")
    _run(ctx, spec, quiet)
    for line in _summary(out):
        typer.echo(line)
