"""Score Parquet partitions with bounded memory: one output partition per input partition.

``medpredict predict --input <folder or glob> --output <folder>`` scores each input
Parquet file in chunks of rows (:func:`score_partitions`), so memory stays bounded
by the chunk size whatever the table's size, and writes the risks of each input
partition to one output partition, in the same row order. On a cluster
(:mod:`medpredict.cluster`) each partition is one task: the worker reads its input
file and writes its output file itself, so the data never passes through the
scheduler and every process needs the same view of the input, output and model
folders (a shared file system).

``batch.json`` records, per partition, the rows read and the rows written, which
must be equal (checked before it is written), and the model scored with; the
``MANIFEST.json`` beside it holds every output file's sha256 (signed when a model
signing key is set).

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from medpredict.spec import parse_spec
>>> from medpredict.study import run_study
>>> from medpredict.data.datasets import load_dataset
>>> spec = parse_spec({"name": "doc-batch", "data": {"dataset": "pima_tr"},
...     "target": "type", "positive_class": "Yes", "models": ["logistic_regression"],
...     "bootstrap": 0, "output_dir": "/tmp/medpredict-doc-batch"})
>>> model_dir = run_study(spec, quiet=True).model_dir
>>> folder = Path(tempfile.mkdtemp())
>>> new = load_dataset("pima_te").drop(columns=["type"])
>>> new.iloc[:100].to_parquet(folder / "a.parquet"); new.iloc[100:].to_parquet(folder / "b.parquet")
>>> batch = score_partitions(model_dir, folder, Path(tempfile.mkdtemp()) / "risks", quiet=True)
>>> [(p.input_rows, p.output_rows) for p in batch.partitions]
[(100, 100), (232, 232)]
"""

from __future__ import annotations

import glob
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from medpredict.artifact import MANIFEST_FILE, LoadedModel, load_model, seal_directory
from medpredict.cluster import fan_out
from medpredict.data.errors import DataError
from medpredict.evaluation.splits import in_table_rows
from medpredict.predict import predict_frame
from medpredict.progress import StudyProgress

BATCH_FILE = "batch.json"
CHUNK_ROWS = 100_000
_GLOB_CHARACTERS = set("*?[")


@dataclass(frozen=True)
class Partition:
    """One input partition, the output partition written for it, and their row counts."""

    input: str
    output: str | None  # None for an input partition without rows
    input_rows: int
    output_rows: int
    seconds: float


@dataclass(frozen=True)
class BatchScoring:
    """What :func:`score_partitions` wrote."""

    output: Path
    model: dict[str, str]
    partitions: list[Partition]

    @property
    def rows(self) -> int:
        """Rows scored over all partitions."""
        return sum(p.output_rows for p in self.partitions)


def is_partitioned(source: str | Path) -> bool:
    """Whether ``source`` names Parquet partitions: a folder or a glob pattern.

    Examples
    --------
    >>> is_partitioned("scores/2026-*.parquet"), is_partitioned("new.csv")
    (True, False)
    """
    return bool(_GLOB_CHARACTERS & set(str(source))) or Path(source).is_dir()


def input_partitions(source: str | Path) -> list[Path]:
    """The Parquet files of a folder (searched recursively) or a glob, in sorted order.

    Raises
    ------
    DataError
        If no Parquet file matches, or a glob matches files that are not Parquet.
    """
    text = str(source)
    if Path(text).is_dir():
        found = sorted(p for p in Path(text).rglob("*.parquet") if p.is_file())
        if not found:
            raise DataError(f"input {text}: the folder holds no .parquet files")
        return found
    found = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
    if not found:
        raise DataError(f"input {text}: no file matches the pattern")
    others = [p for p in found if p.suffix.lower() != ".parquet"]
    if others:
        raise DataError(
            f"input {text}: partitions must be Parquet files; the pattern also matches "
            + ", ".join(str(p) for p in others[:5])
        )
    return found


def score_partitions(
    model_dir: str | Path,
    source: str | Path,
    output: str | Path,
    keep: list[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    quiet: bool = False,
) -> BatchScoring:
    """Score every Parquet partition of ``source`` into the folder ``output``.

    Parameters
    ----------
    model_dir : model directory written by ``medpredict run`` (verified on load, in
        every process that scores).
    source : a folder of Parquet files or a glob pattern (:func:`input_partitions`).
    output : folder to create; it must not exist or be empty, so nothing is overwritten.
        Output partition ``k`` is ``part-<k>.parquet`` (``batch.json`` names its input);
        an input partition without rows is recorded with no output file.
    keep : input columns copied to the output, e.g. a patient id.
    chunk_rows : rows read, scored and written at a time.
    quiet : no progress bar.

    Paths are made absolute before they are sent to a cluster's workers.

    Raises
    ------
    DataError
        Naming the partition and its rows (1-based within the partition) when the
        input does not fit the model's schema, or when rows in and out differ; or
        when the output folder is in use or inside the input folder.
    """
    partitions = [p.resolve() for p in input_partitions(source)]
    output = Path(output).resolve()
    if Path(source).is_dir() and output.is_relative_to(Path(source).resolve()):
        raise DataError(
            f"output folder {output}: inside the input folder {source}, where a later run "
            "would read the risks as input; write them elsewhere"
        )
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise DataError(
            f"output folder {output}: must be new or empty, so nothing is overwritten"
        )
    output.mkdir(parents=True, exist_ok=True)
    model_dir = Path(model_dir).resolve()
    model = cached_model(model_dir)
    names = [f"part-{k:05d}.parquet" for k in range(len(partitions))]
    calls = (
        (str(model_dir), str(path), str(output / name), keep or [], chunk_rows)
        for path, name in zip(partitions, names, strict=True)
    )
    with StudyProgress(quiet=quiet) as progress:
        task = progress.stage(f"scoring {len(partitions)} partition(s)", total=len(partitions))
        done = fan_out(score_partition, calls, on_result=lambda _: progress.advance(task))
    identity = {"name": model.metadata.name, "version": str(model.metadata.version),
                "sha256": model.sha256}
    record = {"model": identity, "partitions": [asdict(p) for p in done]}
    (output / BATCH_FILE).write_text(json.dumps(record, indent=2))
    seal_directory(output, [*(p.output for p in done if p.output), BATCH_FILE])
    return BatchScoring(output, identity, done)


_MODELS: dict[tuple[str, str], LoadedModel] = {}


def cached_model(model_dir: str | Path) -> LoadedModel:
    """The model of ``model_dir``, loaded (and verified) once per process and manifest.

    A long-lived worker that scores again after the directory was rewritten loads
    the new model: the cache is keyed by the manifest's own hash too.
    """
    directory = Path(model_dir).resolve()
    key = (str(directory), hashlib.sha256((directory / MANIFEST_FILE).read_bytes()).hexdigest())
    if key not in _MODELS:
        _MODELS[key] = load_model(directory)
    return _MODELS[key]


def score_partition(
    model_dir: str, source: str, target: str, keep: list[str], chunk_rows: int = CHUNK_ROWS
) -> Partition:
    """Score one Parquet file chunk by chunk into ``target``; rows in must equal rows out."""
    started = time.perf_counter()
    model = cached_model(model_dir)
    reader = pq.ParquetFile(source)
    expected = reader.metadata.num_rows
    written = 0
    writer: pq.ParquetWriter | None = None
    try:
        for batch in reader.iter_batches(batch_size=chunk_rows):
            frame = batch.to_pandas()
            scored = _score_chunk(model, frame, keep, source, first_row=written + 1)
            table = pa.Table.from_pandas(scored, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(target, table.schema)
            writer.write_table(table)
            written += len(scored)
    finally:
        if writer is not None:
            writer.close()
    if written != expected:
        raise DataError(
            f"partition {source}: {expected} rows read but {written} rows scored; nothing "
            "may be lost, so the batch stops here"
        )
    name = None if writer is None else Path(target).name
    return Partition(source, name, expected, written, time.perf_counter() - started)


def _score_chunk(
    model: LoadedModel, frame: Any, keep: list[str], source: str, first_row: int
) -> Any:
    try:
        return predict_frame(model, frame, keep=keep)
    except DataError as err:
        rows = np.arange(first_row, first_row + len(frame))
        message, _ = in_table_rows(str(err), rows)
        message = message.replace("table row", "partition row")
        raise DataError(f"partition {source}: {message}") from err


def describe(batch: BatchScoring) -> str:
    """One line for the console: rows, partitions and where they went."""
    return (
        f"wrote {batch.rows} risk(s) in {len(batch.partitions)} partition(s) to {batch.output} "
        f"(rows in = rows out in every partition; {BATCH_FILE}, {MANIFEST_FILE})"
    )

