"""Foundation benchmarks: the default study's wall time, a large table, batch prediction.

1. The default Wisconsin study (5 folds, 4 model families, 1,000 bootstrap resamples),
   target <= 30 s on 2 cores.
2. A 100,000-row x 50-column table built by resampling real Wisconsin rows with
   Gaussian noise (30 real features, 20 noisy linear combinations of them), full
   default study, target <= 5 min and peak memory <= 4 GB.
3. ``medpredict predict`` (the CLI, new process) on 100,000 rows, target <= 5 s
   (median of three runs; the first also reads the libraries from disk).

Each time is also given as a ratio to a plain scikit-learn logistic-regression fit
on the same data in the same run. Results go to benchmarks/results/foundation.md.

Run: ``.venv/bin/python benchmarks/foundation.py``
"""

from __future__ import annotations

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
from sklearn.linear_model import LogisticRegression

from medpredict.data.datasets import load_dataset
from medpredict.spec import load_spec, parse_spec
from medpredict.study import run_study

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "foundation.md"
FAMILIES = ["logistic_regression", "random_forest", "svm", "lightgbm"]


def plain_logistic_seconds(frame: pd.DataFrame, target: str) -> float:
    X = frame.drop(columns=[target]).to_numpy(dtype=float)
    y = frame[target].to_numpy()
    start = time.perf_counter()
    LogisticRegression(max_iter=5000).fit((X - X.mean(0)) / X.std(0), y)
    return time.perf_counter() - start


def large_table(rows: int = 100_000, seed: int = 0) -> pd.DataFrame:
    """Real Wisconsin rows resampled with noise, plus 20 noisy derived columns."""
    rng = np.random.default_rng(seed)
    source = load_dataset("wisconsin")
    features = source.drop(columns=["diagnosis"])
    picked = rng.integers(0, len(source), rows)
    values = features.to_numpy()[picked]
    values = values + rng.normal(0, 0.1, values.shape) * features.std().to_numpy()
    mixing = rng.normal(size=(features.shape[1], 20)) / np.sqrt(features.shape[1])
    standardised = (values - values.mean(0)) / values.std(0)
    derived = standardised @ mixing + rng.normal(0, 0.5, (rows, 20))
    frame = pd.DataFrame(values, columns=features.columns)
    for k in range(20):
        frame[f"derived_{k:02d}"] = derived[:, k]
    frame["diagnosis"] = source["diagnosis"].to_numpy()[picked]
    return frame


def peak_rss_gb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return own / 1024**2


def main() -> None:
    load_start = os.getloadavg()[0]
    lines = [
        "## Foundation (tabular study)",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}.",
        "Command: `.venv/bin/python benchmarks/foundation.py`.",
        "",
        "| benchmark | rows x cols | medpredict (s) | plain LR fit (s) | ratio | target "
        "| peak RSS (GB) |",
        "|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = load_spec(ROOT / "medpredict" / "examples" / "wisconsin.yaml")
        spec = spec.model_copy(update={"output_dir": tmp / "wisconsin", "models": FAMILIES})
        start = time.perf_counter()
        result = run_study(spec, quiet=True)
        wisconsin = time.perf_counter() - start
        lr = plain_logistic_seconds(load_dataset("wisconsin"), "diagnosis")
        lines.append(
            f"| default study, Wisconsin (5 folds, 4 models, 1,000 bootstraps) | 569 x 30 | "
            f"{wisconsin:.1f} | {lr:.3f} | {wisconsin / lr:.0f}x | <= 30 s | {peak_rss_gb():.2f} |"
        )
        print(lines[-1], flush=True)

        frame = large_table()
        data = tmp / "large.parquet"
        frame.to_parquet(data)
        big = parse_spec(
            {
                "name": "large",
                "data": {"path": str(data)},
                "target": "diagnosis",
                "positive_class": "malignant",
                "models": FAMILIES,
                "output_dir": str(tmp / "large"),
            }
        )
        start = time.perf_counter()
        large = run_study(big, quiet=True)
        large_seconds = time.perf_counter() - start
        lr = plain_logistic_seconds(frame, "diagnosis")
        lines.append(
            f"| default study, 100k resampled rows (noise added; see script) | 100,000 x 50 | "
            f"{large_seconds:.1f} | {lr:.2f} | {large_seconds / lr:.0f}x | <= 300 s, <= 4 GB | "
            f"{peak_rss_gb():.2f} |"
        )
        print(lines[-1], flush=True)

        new = frame.drop(columns=["diagnosis"])
        new.to_csv(tmp / "new.csv", index=False)
        command = [
            str(Path(sys.executable).parent / "medpredict"),
            "predict",
            "--model",
            str(large.model_dir),
            "--input",
            str(tmp / "new.csv"),
            "--output",
            str(tmp / "out.csv"),
        ]
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            runs.append(time.perf_counter() - start)
        predict_seconds = float(np.median(runs))
        lines.append(
            f"| `medpredict predict` CLI ({large.best_name}), new process, median of 3 runs "
            f"({', '.join(f'{r:.1f}' for r in runs)} s) | 100,000 x 50 | "
            f"{predict_seconds:.1f} | {lr:.2f} | {predict_seconds / lr:.1f}x | <= 5 s | — |"
        )
        print(lines[-1], flush=True)
        lines += [
            "",
            f"Selected models: Wisconsin {result.best_name} "
            f"(AUROC {result.best.metrics['auroc']}); large table {large.best_name} "
            f"(AUROC {large.best.metrics['auroc']}; the large table repeats 569 real patients "
            "with noise, so near-copies fall in every fold and this AUROC says nothing about "
            "accuracy: the large run measures speed and memory).",
            f"Load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
            "(1-minute averages; the benchmark alone keeps one or two cores busy).",
            "",
        ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
