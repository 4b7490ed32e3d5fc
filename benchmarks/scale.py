"""Scale benchmarks: a study on a 2-worker Dask cluster, partitioned batch scoring, serving.

1. ``study``: the foundation benchmark's 100,000 x 50 default study (real Wisconsin
   rows resampled with noise; see ``benchmarks/foundation.py``) run serially and then
   on a local 2-worker cluster (``cluster: local:2``) in the same run: wall time,
   speed-up, and whether the selected model, out-of-fold predictions and metrics match.
   ``validation.nested`` is fixed to false in both runs: the automatic rule decides by
   measured wall time, which the cluster changes.
2. ``batch``: ``medpredict predict`` over Parquet partitions (``--rows`` rows x 50
   columns, default 10^7, written first in partitions of 500,000 rows) in this process
   and on a 2-worker cluster, against in-process ``predict_proba`` of the same model on
   one partition (throughput per core); peak memory per process; risks compared on a
   sample of rows.

Each part writes ``benchmarks/results/scale-<part>.md``; ``benchmarks/collect.py``
gathers them into RESULTS.md.

3. ``fits``: the candidate x fold fits alone (``cross_validate_each``) of the two
   single-threaded candidates (SVM, LightGBM) on the same table, serially and on a
   2-worker cluster: what the cluster does for the part of a study it runs.

Run: ``.venv/bin/python benchmarks/scale.py [study] [batch] [fits] [--rows N]``
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from foundation import FAMILIES, large_table

from medpredict.spec import parse_spec
from medpredict.study import run_study

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PARTITION_ROWS = 500_000


def machine() -> str:
    return (
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}; load average {os.getloadavg()[0]:.1f} at the start."
    )


def study_part(tmp: Path) -> list[str]:
    frame = large_table()
    data = tmp / "large.parquet"
    frame.to_parquet(data)
    base = {
        "name": "large",
        "data": {"path": str(data)},
        "target": "diagnosis",
        "positive_class": "malignant",
        "models": FAMILIES,
        "validation": {"nested": False},
    }
    runs = {}
    for label, cluster in (("serial", None), ("local:2", "local:2")):
        spec = parse_spec({**base, "cluster": cluster, "output_dir": str(tmp / label)})
        start = time.perf_counter()
        result = run_study(spec, quiet=True)
        runs[label] = (time.perf_counter() - start, result)
        print(f"{label}: {runs[label][0]:.1f} s, {result.best_name}", flush=True)
    (serial, a), (clustered, b) = runs["serial"], runs["local:2"]
    rows = []
    for name in a.candidates:
        diff = np.abs(a.candidates[name].oof_proba - b.candidates[name].oof_proba).max()
        auroc = [r.candidates[name].metrics["auroc"].value for r in (a, b)]
        rows.append(f"| {name} | {diff:.1e} | {auroc[0]:.6f} | {auroc[1]:.6f} |")
    return [
        "## Scale: a study on a 2-worker Dask cluster",
        "",
        machine(),
        "Command: `.venv/bin/python benchmarks/scale.py study`.",
        "",
        "| run | rows x cols | wall (s) | speed-up vs serial | selected model | target |",
        "|---|---|---|---|---|---|",
        f"| serial (this process) | 100,000 x 50 | {serial:.1f} | 1.00x | {a.best_name} | — |",
        f"| `cluster: local:2` | 100,000 x 50 | {clustered:.1f} | {serial / clustered:.2f}x "
        f"| {b.best_name} | >= 1.6x |",
        "",
        "Out-of-fold predictions, serial against cluster (largest absolute difference) "
        "and each run's AUROC:",
        "",
        "| candidate | max abs difference | AUROC serial | AUROC cluster |",
        "|---|---|---|---|",
        *rows,
        "",
        f"Load average {os.getloadavg()[0]:.1f} at the end.",
        "",
    ]


def fits_part(tmp: Path) -> list[str]:
    """The candidate x fold fits alone, for the single-threaded candidates."""
    from medpredict.cluster import on_cluster
    from medpredict.data.cohort import build_cohort
    from medpredict.evaluation.splits import internal_folds
    from medpredict.study.candidates import build_pipeline
    from medpredict.study.validation import cross_validate_each

    frame = large_table()
    spec = parse_spec({"name": "fits", "data": {"path": "unused.csv"}, "target": "diagnosis",
                       "positive_class": "malignant", "models": ["svm", "lightgbm"]})
    cohort = build_cohort(frame, spec)
    folds = internal_folds(cohort.y, None, 5, 0)
    pipelines = {m.name: build_pipeline(cohort, m, spec) for m in spec.model_specs}
    timings, runs = {}, {}
    for label, cluster in (("serial", None), ("local:2", "local:2")):
        with on_cluster(cluster):
            start = time.perf_counter()
            runs[label] = cross_validate_each(pipelines, cohort.X, cohort.y, folds, 2)
            timings[label] = time.perf_counter() - start
        print(f"fits {label}: {timings[label]:.1f} s", flush=True)
    differences = ", ".join(
        f"{n} {np.abs(runs['serial'][n].oof - runs['local:2'][n].oof).max():.1e}"
        for n in pipelines
    )
    return [
        "## Scale: the cross-validation fits alone on a 2-worker cluster",
        "",
        machine(),
        "Command: `.venv/bin/python benchmarks/scale.py fits`.",
        "",
        "SVM and LightGBM (each fit single-threaded), 5 folds each, on the 100,000 x 50 "
        "table: the 10 fits of `cross_validate_each`, serially and as 10 tasks on a "
        "`local:2` cluster (its start-up excluded).",
        "",
        "| run | wall (s) | speed-up | out-of-fold predictions, largest difference |",
        "|---|---|---|---|",
        f"| serial | {timings['serial']:.1f} | 1.00x | — |",
        f"| `local:2` | {timings['local:2']:.1f} | {timings['serial'] / timings['local:2']:.2f}x "
        f"| {differences} |",
        "",
    ]


def children_peak_rss_gb() -> float:
    """Largest resident memory of any finished child process (and theirs)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2


def batch_part(tmp: Path, rows: int) -> list[str]:
    from medpredict.artifact import load_model
    from medpredict.batch import CHUNK_ROWS
    from medpredict.predict import predict_frame

    train = tmp / "train.parquet"
    large_table(100_000, seed=1).to_parquet(train)
    spec = parse_spec({
        "name": "batch-model", "data": {"path": str(train)}, "target": "diagnosis",
        "positive_class": "malignant", "models": ["lightgbm"], "bootstrap": 0,
        "validation": {"nested": False}, "trust": {"learning_curve": False},
        "output_dir": str(tmp / "batch-model"),
    })
    model_dir = run_study(spec, quiet=True).model_dir
    folder = tmp / "partitions"
    folder.mkdir()
    n_parts = -(-rows // PARTITION_ROWS)
    for k in range(n_parts):
        size = min(PARTITION_ROWS, rows - k * PARTITION_ROWS)
        part = large_table(size, seed=100 + k).drop(columns=["diagnosis"])
        part.to_parquet(folder / f"rows-{k:04d}.parquet", index=False)
    print(f"wrote {n_parts} partitions", flush=True)

    loaded = load_model(model_dir)
    first = pd.read_parquet(folder / "rows-0000.parquet")
    start = time.perf_counter()
    loaded.estimator.predict_proba(first)
    bare = len(first) / (time.perf_counter() - start)
    medpredict = str(Path(sys.executable).parent / "medpredict")
    timings = {}
    for label, extra in (("in one process", []), ("local:2 cluster", ["--cluster", "local:2"])):
        out = tmp / f"out-{len(timings)}"
        command = [medpredict, "predict", "--model", str(model_dir), "--input", str(folder),
                   "--output", str(out), "--quiet", *extra]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        timings[label] = (time.perf_counter() - start, out, children_peak_rss_gb())
        print(f"{label}: {timings[label][0]:.1f} s", flush=True)
    sample = first.iloc[:20_000]
    expected = predict_frame(loaded, sample)["risk"].to_numpy()
    identical = all(
        np.array_equal(pd.read_parquet(out / "part-00000.parquet")["risk"].to_numpy()[:20_000],
                       expected)
        for _, out, _ in timings.values()
    )
    lines = [
        "## Scale: batch scoring of Parquet partitions",
        "",
        machine(),
        f"Command: `.venv/bin/python benchmarks/scale.py batch --rows {rows}`.",
        "",
        f"Model: LightGBM (the study's default settings, one thread) on 100,000 resampled "
        f"Wisconsin rows; input {rows:,} rows x 50 columns in {n_parts} Parquet partitions "
        f"of up to {PARTITION_ROWS:,} rows, read {CHUNK_ROWS:,} rows at a time. Wall times are "
        "for the whole `medpredict predict` command (start-up, model load and verification, "
        "reading, checks, scoring, writing, manifest).",
        "",
        "| run | wall (s) | rows/s | rows/s per core | vs in-process `predict_proba` per core "
        "| peak RSS of a process so far (GB) |",
        "|---|---|---|---|---|---|",
        f"| in-process `predict_proba`, one {len(first):,}-row partition in memory | — "
        f"| {bare:,.0f} | {bare:,.0f} | 1.00 | — |",
    ]
    for label, (seconds, _, peak) in timings.items():
        cores = 2 if "cluster" in label else 1
        rate = rows / seconds
        lines.append(
            f"| `medpredict predict`, {label} | {seconds:.1f} | {rate:,.0f} "
            f"| {rate / cores:,.0f} | {rate / cores / bare:.2f} | {peak:.2f} |"
        )
    lines += [
        "",
        "Risks of the first 20,000 rows of partition 0 identical to in-process "
        f"`predict_frame` in both runs: {'yes' if identical else 'NO'}. Targets: per-core "
        "throughput within 20% of in-process `predict_proba` (ratio >= 0.80), peak memory "
        "per process <= 2 GB.",
        "",
        f"Load average {os.getloadavg()[0]:.1f} at the end.",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("parts", nargs="*", default=["study", "batch", "fits"])
    parser.add_argument("--rows", type=int, default=10_000_000)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for part in args.parts:
            if part == "study":
                lines = study_part(Path(tmp))
            elif part == "fits":
                lines = fits_part(Path(tmp))
            else:
                lines = batch_part(Path(tmp), args.rows)
            out = RESULTS / f"scale-{part}.md"
            out.write_text("\n".join(lines) + "\n")
            print(f"wrote {out}")


if __name__ == "__main__":
    main()
