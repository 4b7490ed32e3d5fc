"""The ``medpredict`` command line."""

from __future__ import annotations

import functools
import gc
import importlib
import sys
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import click
import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from medpredict.artifact import ArtifactError
from medpredict.data.errors import DataError, SpecError

# Commands of capabilities with heavy dependencies (FastAPI, DuckDB, torch): module,
# attribute and the one-line help shown in ``medpredict --help``. Each is imported only
# when that command (or its own ``--help``) runs.
CAPABILITY_COMMANDS = {
    "serve": (
        "medpredict.serve.cli",
        "serve_command",
        "Serve models over HTTP: JSON, FHIR R4, CDS Hooks and a clinician web page.",
    ),
    "keys": ("medpredict.serve.cli", "keys_app", "Manage API keys (stored hashed)."),
    "audit": ("medpredict.serve.cli", "audit_app", "Check the prediction audit log."),
    "monitor": (
        "medpredict.wearables.cli",
        "monitor",
        "Ingest wearable data, run personal-baseline detectors, write alerts and timelines.",
    ),
    "image-study": (
        "medpredict.imaging.cli",
        "image_study",
        "Fit image models, select on validation, score the test split, save the best.",
    ),
    "signal-windows": (
        "medpredict.signals.cli",
        "signal_windows",
        "Cut annotated ECG records into a study table of labelled windows.",
    ),
    "forecast": (
        "medpredict.forecasting.cli",
        "forecast",
        "Forecast counts per location (admissions, outbreaks) with calibrated intervals.",
    ),
    "events": (
        "medpredict.timeline.cli",
        "events",
        "Read a clinical source (PhysioNet 2012, MIMIC, OMOP, FHIR) into MEDS events.",
    ),
}


def capability_command(name: str) -> click.Command:
    """The click command behind capability ``name``, importing its module."""
    module, attribute, _ = CAPABILITY_COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        command = typer.main.get_group(target)
    else:
        single = typer.Typer()
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class _DeferredCommand(click.Command):
    """Listed with its one-line help; the real command is built when it is invoked."""

    def __init__(self, name: str) -> None:
        summary = CAPABILITY_COMMANDS[name][2]
        super().__init__(name, help=summary, short_help=summary)

    def make_context(self, info_name: str | None, args: list[str], **extra: Any) -> Any:
        return capability_command(self.name).make_context(info_name, args, **extra)


class _CapabilityGroup(TyperGroup):
    """The top-level command group, which imports capability commands on demand."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *CAPABILITY_COMMANDS]

    def get_command(self, ctx: Any, name: str) -> Any:
        if name not in CAPABILITY_COMMANDS:
            return super().get_command(ctx, name)
        return _DeferredCommand(name)


app = typer.Typer(
    cls=_CapabilityGroup,
    help="Trustworthy disease-risk prediction: run studies, score patients, serve models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, soft_wrap=True)

QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def _cluster_option(help: str) -> Any:
    """A ``--cluster`` option, its address checked as it is parsed."""
    return typer.Option(help=help, callback=_cluster_address)


def _cluster_address(value: str | None) -> str | None:
    from medpredict.cluster import check_address

    try:
        return None if value is None else check_address(value)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


def _user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Show data, spec and artifact problems as one clear line and exit with status 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (DataError, SpecError, ArtifactError, FileNotFoundError) as err:
            from rich.markup import escape

            errors.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper


def _read_table(path: Path) -> pd.DataFrame:
    from medpredict.data.loading import read_file

    return read_file(path, what="input file")


def _results_table(results: list[Any]) -> Table:
    grid = Table(title="medpredict results (95% bootstrap CIs)")
    columns = ("study", "model", "evaluation", "rows", "selection metric", "AUROC", "Brier",
               "calibration slope")
    for column in columns:
        grid.add_column(column)
    for r in results:
        metric = r.spec.selection_metric
        internal = "validation split" if r.spec.validation.scheme == "fixed" else "cross-validated"
        evaluations = [(internal, len(r.cohort.y), r.best.metrics)]
        if r.nested is not None:
            evaluations.append(("nested CV", len(r.cohort.y), r.nested.metrics))
        evaluations += [(h.kind, len(h.cohort.y), h.metrics) for h in r.holdouts]
        for where, rows, metrics in evaluations:
            slope = str(metrics["calibration_slope"]) if "calibration_slope" in metrics else "—"
            brier = str(metrics["brier"])
            if r.spec.task == "multiclass":
                brier += " (multi-class: summed over classes, 0–2)"
            grid.add_row(
                r.spec.name,
                r.best_name,
                where,
                str(rows),
                f"{metric} {metrics[metric]}",
                str(metrics["auroc"]),
                brier,
                slope,
            )
    return grid


def _survival_table(results: list[Any]) -> Table:
    grid = Table(title="medpredict survival results (95% bootstrap CIs)")
    for column in ("study", "model", "evaluation", "patients", "events", "Harrell C", "Uno C",
                   "integrated Brier", "first horizon: AUC, calibration slope"):
        grid.add_column(column)
    for r in results:
        label = f"{r.spec.survival.horizons[0]:g}"
        evaluations = [("cross-validated", r.outcome, r.best.metrics)]
        evaluations += [(h.kind, h.outcome, h.metrics) for h in r.holdouts]
        for where, outcome, metrics in evaluations:
            grid.add_row(
                r.spec.name, r.best_name, where, str(len(outcome)), str(int(outcome.event.sum())),
                str(metrics["harrell_c"]), str(metrics["uno_c"]),
                str(metrics["integrated_brier"]),
                f"{metrics[f'auc@{label}']}, {metrics[f'calibration_slope@{label}']}",
            )
    return grid


def _effects_table(results: list[Any]) -> Table:
    grid = Table(title="medpredict treatment-effect results (95% bootstrap CIs)")
    for column in ("study", "learner", "patients (treated)", "outcome", "average benefit",
                   "RATE (AUTOC)", "heterogeneity"):
        grid.add_column(column)
    for r in results:
        grid.add_row(
            r.spec.name, r.best_name, f"{r.treated.size} ({int(r.treated.sum())})",
            r.outcome.label, str(r.average), str(r.best.metrics["autoc"]),
            "detected" if r.heterogeneity_detected else "not detectable",
        )
    return grid


def _run_specs(
    paths: list[Path], quiet: bool, output_dir: Path | None = None, cluster: str | None = None
) -> list[Any]:
    from medpredict.spec import load_spec
    from medpredict.study import run_study
    from medpredict.study.results import nested_text, temporal_text

    results = []
    for path in paths:
        spec = load_spec(path)
        if output_dir is not None:
            spec = spec.model_copy(update={"output_dir": output_dir / spec.name})
        if cluster is not None:
            spec = spec.model_copy(update={"cluster": cluster})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_study(spec, quiet=quiet)
        for w in caught:
            if w.category.__module__.startswith("medpredict"):
                errors.print(f"[yellow]warning:[/] {w.message}", highlight=False)
        results.append(result)
    effects = [r for r in results if r.spec.treatment is not None]
    survival = [r for r in results if r.spec.task == "survival" and r.spec.treatment is None]
    results = [r for r in results if r.spec.task != "survival" and r.spec.treatment is None]
    if effects:
        console.print(_effects_table(effects))
    if survival:
        console.print(_survival_table(survival))
    if results:
        console.print(_results_table(results))
    for r in effects:
        console.print(r.verdict, highlight=False, soft_wrap=True)
    for r in [*effects, *survival]:
        console.print(f"report for {r.spec.name}: [bold]{r.report_path.resolve()}[/]")
        console.print(f"model for {r.spec.name}: {r.model_dir.resolve()}")
    for r in results:
        nested = nested_text(r)
        if nested:
            console.print(nested, highlight=False, soft_wrap=True)
        if r.temporal:
            console.print(
                f"temporal validation of {r.spec.name}: {temporal_text(r.temporal)}",
                highlight=False,
            )
        console.print(f"report for {r.spec.name}: [bold]{r.report_path.resolve()}[/]")
        console.print(f"model for {r.spec.name}: {r.model_dir.resolve()}")
    return results


@app.command()
@_user_errors
def run(
    spec: Annotated[list[Path], typer.Argument(help="Study spec YAML file(s).", exists=True)],
    output_dir: Annotated[
        Path | None,
        typer.Option(
            help="Parent folder of the results: each study writes to <output-dir>/<study name> "
            "(default: the spec's output_dir, else runs/<study name>)."
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        _cluster_option(
            "Run the fits on a Dask cluster: local:N (N worker processes here) or a "
            "scheduler address such as tcp://10.0.0.5:8786 (overrides the spec's cluster)."
        ),
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Run a study: validate the data, compare models, report, and save the chosen model."""
    _run_specs(spec, quiet, output_dir, cluster)


@app.command()
@_user_errors
def demo(
    output_dir: Annotated[
        Path,
        typer.Option(help="Parent folder of the results: each study writes to <output-dir>/<name>"),
    ] = Path("runs"),
    quiet: QuietOption = False,
) -> None:
    """Run the bundled studies (Wisconsin breast cancer; Pima diabetes with external validation)."""
    examples = resources.files("medpredict") / "examples"
    paths = [Path(str(examples / f"{name}.yaml")) for name in ("wisconsin", "pima")]
    _run_specs(paths, quiet, output_dir)


@app.command()
@_user_errors
def predict(
    model: Annotated[Path, typer.Option(help="Model directory written by `medpredict run`.")],
    input: Annotated[
        Path,
        typer.Option(
            "--input", "-i",
            help="CSV or Parquet of new patients, or Parquet partitions (a folder or a quoted "
            "glob such as 'rows/*.parquet'), scored chunk by chunk into one output partition "
            "each; for a timeline model, their events: a MEDS folder or shard, a CSV/Parquet "
            "table with the MEDS columns, or FHIR (.json Bundle, .ndjson).",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o",
            help="CSV file for the risks; a new folder when --input is partitioned.",
        ),
    ],
    keep: Annotated[
        list[str] | None,
        typer.Option(help="Input column to copy to the output, e.g. a patient id (repeatable)."),
    ] = None,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Add each patient's top factors, conformal prediction set and referral status.",
        ),
    ] = False,
    top: Annotated[int, typer.Option(min=1, help="Factors listed per patient (--explain).")] = 5,
    index_time: Annotated[
        str | None,
        typer.Option(
            help="Timeline models: score every subject at this ISO 8601 time (default: each "
            "subject's anchor event + the model's index offset)."
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        _cluster_option(
            "Partitioned input: score the partitions on a Dask cluster, local:N or a "
            "scheduler address (every worker must see the input, output and model folders)."
        ),
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Score new patients with a saved model (the input is checked against the model's schema).

    A timeline model scores events: each subject at its anchor + the study's offset (or at
    --index-time), with the study's own featurisation; refused events are counted on stderr.
    Parquet partitions are scored with bounded memory; the output folder's batch.json
    records rows in and out per partition.
    """
    from medpredict.artifact import load_model
    from medpredict.batch import cached_model, is_partitioned
    from medpredict.predict import predict_frame
    from medpredict.timeline.scoring import is_timeline, looks_like_events

    if is_partitioned(input) and not is_timeline(cached_model(model).metadata):
        _predict_partitions(model, input, output, keep, explain, index_time, cluster, quiet)
        return
    if cluster is not None:
        raise DataError("--cluster applies to partitioned input (a folder or glob of Parquet)")

    # Loading the model is mostly importing scikit-learn: read the table meanwhile.
    tabular = input.suffix.lower() not in (".json", ".ndjson") and not input.is_dir()
    with ThreadPoolExecutor(max_workers=1) as reader:
        table = reader.submit(_read_table, input) if tabular else None
        loaded = load_model(model)
        frame = table.result() if table is not None else None
    if is_timeline(loaded.metadata):
        frame, keep = _timeline_features(loaded, input, frame, index_time, keep)
    elif looks_like_events(input, frame):
        _refuse_events(loaded, input, frame)
    elif index_time is not None:
        raise DataError("--index-time applies to timeline models only (studies with timeline:)")
    if explain and loaded.metadata.treatment:
        raise DataError("--explain is not available for treatment-effect models: their "
                        "report shows what the benefit depends on by subgroup")
    scored = predict_frame(loaded, frame, keep=keep or [])
    message = f"wrote {len(scored)} {'benefit' if loaded.metadata.treatment else 'risk'}" \
        f"(s) to {output}"
    if explain and loaded.metadata.task == "survival":
        from medpredict.survival.explain import annotate_survival

        scored["top_factors"] = annotate_survival(loaded, frame, keep=keep or [], k=top)
        message += f"; top factors of the risk by the first horizon for {len(scored)} row(s)"
    elif explain:
        from medpredict.trust.runtime import annotate_predictions

        annotated = annotate_predictions(loaded, frame, keep=keep or [], k=top)
        scored = pd.concat([scored, annotated], axis=1)
        referred = int((annotated["uncertainty"] != "confident").sum())
        message += f"; {referred} marked for referral (uncertain or atypical)"
    scored.to_csv(output, index=False)
    console.print(message)


def _refuse_events(loaded: Any, input: Path, frame: pd.DataFrame | None) -> None:
    """Refuse events given to a model of patient rows (unless they carry its features)."""
    if set(loaded.metadata.feature_names) <= set(frame.columns if frame is not None else []):
        return
    raise DataError(
        f"model {loaded.metadata.name!r} scores rows of patient data (columns "
        f"{', '.join(loaded.metadata.feature_names[:8])}, ...), but {input} holds events; "
        "events are scored by a model trained on a timeline: study"
    )


def _predict_partitions(
    model: Path, source: Path, output: Path, keep: list[str] | None, explain: bool,
    index_time: str | None, cluster: str | None, quiet: bool,
) -> None:
    import pyarrow.parquet as pq

    from medpredict.batch import cached_model, describe, input_partitions, score_partitions
    from medpredict.cluster import on_cluster
    from medpredict.timeline.scoring import looks_like_events

    if explain or index_time is not None:
        raise DataError(
            "--explain and --index-time apply to one table, not to partitioned input"
        )
    first = input_partitions(source)[0]
    columns = pd.DataFrame(columns=pq.read_schema(first).names)
    if looks_like_events(first, columns):
        _refuse_events(cached_model(model), source, columns)
    with on_cluster(cluster):
        batch = score_partitions(model, source, output, keep=keep or [], quiet=quiet)
    console.print(describe(batch))


def _timeline_features(
    loaded: Any, input: Path, frame: pd.DataFrame | None, index_time: str | None,
    keep: list[str] | None,
) -> tuple[pd.DataFrame, list[str]]:
    """A timeline model's features of the events at ``input``, and the key columns."""
    from medpredict.timeline.scoring import (
        prediction_samples,
        read_events,
        timeline_features,
        timeline_of,
    )
    from medpredict.timeline.table import KEY_COLUMNS

    if keep:
        raise DataError(
            "--keep does not apply to a timeline model: its output always has "
            + ", ".join(KEY_COLUMNS)
        )
    if frame is not None and set(loaded.metadata.feature_names) <= set(frame.columns):
        raise DataError(
            f"model {loaded.metadata.name!r} is a timeline model: --input must hold events "
            f"(a MEDS folder, an event table or FHIR), not rows of features ({input}); its "
            "features are computed from the events so that they match the study's"
        )
    timeline = timeline_of(loaded.metadata)
    read = read_events(input, timeline, table=frame)
    errors.print(f"{input}: {read.summary()}", highlight=False)
    samples = prediction_samples(read.events, timeline, index_time)
    return timeline_features(loaded, read.events, samples), list(KEY_COLUMNS)


datasets_app = typer.Typer(help="List datasets; fetch the reference data tests use.")
app.add_typer(datasets_app, name="datasets")


@datasets_app.callback(invoke_without_command=True)
def datasets(ctx: typer.Context) -> None:
    """List the bundled datasets (no download) and the reference datasets (``fetch``)."""
    if ctx.invoked_subcommand is not None:
        return
    from medpredict.data.datasets import DATASETS
    from medpredict.data.reference import REFERENCE_DATASETS
    from medpredict.settings import find_data

    grid = Table(title="bundled datasets")
    for column in ("name", "target", "description", "source", "licence"):
        grid.add_column(column)
    for d in DATASETS.values():
        grid.add_row(d.name, d.target, d.description, d.source, d.licence)
    console.print(grid)
    reference = Table(title="reference datasets (medpredict datasets fetch NAME)")
    for column in ("name", "MB", "found", "description", "source", "licence"):
        reference.add_column(column)
    for r in REFERENCE_DATASETS.values():
        found = sum(find_data(f.relative) is not None for f in r.files)
        reference.add_row(r.name, f"{r.size / 1e6:.1f}", f"{found}/{len(r.files)} files",
                          r.description, r.source, r.licence)
    console.print(reference)


@datasets_app.command("fetch")
@_user_errors
def datasets_fetch(
    names: Annotated[list[str] | None, typer.Argument(help="Reference dataset names.")] = None,
    all_datasets: Annotated[bool, typer.Option("--all", help="Every reference dataset.")] = False,
    quiet: QuietOption = False,
) -> None:
    """Download reference datasets not found locally, verify their checksums, cache them.

    Looks in MEDPREDICT_DATA_DIR, then ../shared/data, then the cache.
    Downloads from each file's source, or from MEDPREDICT_DATA_MIRROR if set.
    """
    from medpredict.data.download import fetch
    from medpredict.data.reference import REFERENCE_DATASETS

    if all_datasets == bool(names):
        raise typer.BadParameter("give dataset names or --all (not both)")
    paths = fetch(list(REFERENCE_DATASETS) if all_datasets else names or [], quiet=quiet)
    folders = sorted({str(p.parent) for p in paths})
    console.print(f"{len(paths)} reference files available under: {', '.join(folders)}")


@app.command()
@_user_errors
def watch(
    model: Annotated[
        Path, typer.Option(help="Binary model directory written by `medpredict run`.")
    ],
    reference: Annotated[
        Path, typer.Option(help="CSV or Parquet of the development rows (its features).")
    ],
    input: Annotated[
        Path,
        typer.Option("--input", "-i",
                     help="CSV or Parquet of later rows: the model's features, the period "
                     "column and, where they have arrived, outcomes."),
    ],
    period_column: Annotated[
        str, typer.Option(help="Column of each row's period (a month, a year).")
    ],
    output_dir: Annotated[
        Path, typer.Option(help="Folder for watch.json and report.html.")
    ] = Path("runs/watch"),
    outcome_column: Annotated[
        str | None,
        typer.Option(help="Outcome column, coded as in training; missing where not yet known. "
                     "Without it only label-free estimates are made."),
    ] = None,
    bootstrap: Annotated[int, typer.Option(min=0, help="Bootstrap resamples per interval.")] = 500,
) -> None:
    """Watch a deployed binary model on later patients, period by period.

    Expected (label-free) and realised performance, drift of the predicted risks and of
    every feature, and a domain classifier against the development rows; every alert in
    words. Writes a self-contained report.html and watch.json (summaries only, no rows).
    """
    import json

    from medpredict.monitoring.report import write_report
    from medpredict.monitoring.watch import watch as watch_model

    with ThreadPoolExecutor(max_workers=1) as reader:
        later = reader.submit(_read_table, input)
        development = _read_table(reference)
        monitored = later.result()
    with console.status("watching: scoring, drift and domain classifiers per period"):
        result = watch_model(model, development, monitored, period_column, outcome_column,
                             n_boot=bootstrap)
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        "model": str(model),
        "periods": json.loads(result.periods.to_json(orient="records")),
        "domains": {p: d.to_dict() for p, d in result.domains.items()},
        "alerts": result.alerts,
    }
    (output_dir / "watch.json").write_text(json.dumps(summary, indent=2))
    report = write_report(result, output_dir / "report.html")
    grid = Table(title=f"watching {model}")
    for column in ("period", "rows", "expected AUROC", "realised AUROC", "PSI of risks",
                   "domain AUROC", "drifted features", "alert"):
        grid.add_column(column)
    for _, row in result.periods.iterrows():
        realised = ("—" if np.isnan(row["realised_auroc"]) else
                    f"{row['realised_auroc']:.3f} ({row['realised_auroc_low']:.3f}–"
                    f"{row['realised_auroc_high']:.3f})")
        grid.add_row(str(row["period"]), str(row["n"]), f"{row['expected_auroc']:.3f}",
                     realised, f"{row['prediction_psi']:.2f}", f"{row['domain_auroc']:.2f}",
                     str(row["drifted_features"]), "yes" if row["alert"] else "")
    console.print(grid)
    for alert in result.alerts:  # column names may hold brackets: not markup
        console.print(Text.assemble(("alert ", "yellow"), alert), highlight=False,
                      soft_wrap=True)
    console.print(f"report: [bold]{report.resolve()}[/]")


@app.command()
def models() -> None:
    """List the model names a study spec can use."""
    from medpredict.models import available_models
    from medpredict.models.registry import is_survival_model

    grid = Table(title="models")
    grid.add_column("name")
    grid.add_column("task")
    grid.add_column("description")
    for name, description in available_models().items():
        task = "survival" if is_survival_model(name) else "binary, multiclass"
        grid.add_row(name, task, description)
    console.print(grid)


@app.command("spec-reference")
def spec_reference() -> None:
    """Print the reference of every study-spec field (Markdown)."""
    from medpredict.spec import spec_reference as reference

    typer.echo(reference())


@app.command()
@_user_errors
def verify(
    model: Annotated[Path, typer.Argument(help="Model directory.")],
) -> None:
    """Check a model directory's files, signature and stored types (nothing is loaded)."""
    from medpredict.artifact import verify_model

    console.print(f"{model}: {verify_model(model).describe()}")


@app.command()
@_user_errors
def sign(
    model: Annotated[Path, typer.Argument(help="Model directory.")],
) -> None:
    """Sign a model directory's manifest with the key in MEDPREDICT_MODEL_KEY(_FILE).

    Its files are checked against the manifest first; a tampered directory is refused.
    """
    from medpredict.artifact import sign_model

    console.print(f"{model}: {sign_model(model).describe()}")


def main() -> None:
    """Run the ``medpredict`` command line (the installed script's entry point)."""
    try:
        app()
    finally:
        # The interpreter's collections at exit would walk every object of the ~1,800
        # imported modules (half a second after a prediction); the process is ending.
        gc.freeze()


if __name__ == "__main__":
    main()
