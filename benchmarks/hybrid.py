"""Hybrid models benchmark: single models vs deep models vs hybrids and ensembles.

Five real datasets (Wisconsin, Pima, MASS biopsy grouped by patient, Alzheimer's
biomarkers, Parkinson's speech), identical 5-fold splits for every model (patient-
grouped for biopsy). For each model: out-of-fold AUROC and Brier score with bootstrap
95% CIs (clustered by patient for biopsy) and training time. The default
``hybrid_ensemble`` is compared with the best single model (AUROC) and with the
best other model (Brier) by paired bootstrap differences on the same resamples.
Then the Wisconsin example study is timed with and without ``hybrid_ensemble``.

Run: ``MEDPREDICT_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/hybrid.py``
(``--quick``: a smoke run on two datasets and three models, printed only;
``--resume`` reuses out-of-fold predictions cached by an interrupted run). Results go
to benchmarks/results/hybrid.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from medpredict.data.datasets import load_dataset
from medpredict.evaluation.bootstrap import Estimate, bootstrap
from medpredict.evaluation.metrics import auroc, brier
from medpredict.evaluation.splits import internal_folds
from medpredict.models.deep import TabularEncoder
from medpredict.models.ensembles import fit_member, take_rows
from medpredict.models.registry import raw_member
from medpredict.settings import cache_dir
from medpredict.spec import load_spec
from medpredict.study import run_study

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "hybrid.md"
N_BOOT = 1000
SEED = 0

Data = tuple[pd.DataFrame, np.ndarray, np.ndarray | None]


def _binary(frame: pd.DataFrame, target: str, positive: str, drop: tuple[str, ...] = ()) -> Data:
    y = (frame[target] == positive).to_numpy(int)
    return frame.drop(columns=[target, *drop]), y, None


def _biopsy() -> Data:
    frame = load_dataset("biopsy")
    X, y, _ = _binary(frame, "class", "malignant", drop=("ID",))
    return X, y, frame["ID"].to_numpy()


DATASETS: dict[str, Callable[[], Data]] = {
    "Wisconsin": lambda: _binary(load_dataset("wisconsin"), "diagnosis", "malignant"),
    "Pima": lambda: _binary(
        pd.concat([load_dataset("pima_tr"), load_dataset("pima_te")], ignore_index=True),
        "type",
        "Yes",
    ),
    "MASS biopsy": _biopsy,
    "Alzheimer's (ad_data)": lambda: _binary(load_dataset("ad_data"), "Class", "Impaired"),
    "Parkinson's speech": lambda: _binary(load_dataset("pd_speech"), "class", "PD"),
}

SINGLE = ["logistic_regression", "lightgbm", "lightgbm (library defaults)", "random_forest"]
DEEP = ["deep_mlp", "deep_resnet", "calibrated (deep_mlp, temperature)"]
HYBRID = [
    "hybrid_ensemble",
    "soft_voting",
    "stacking_deep_head",
    "deep_boosted_lightgbm",
    "bagged_mlp",
    "deep_features_lr",
    "autoencoder_lightgbm",
    "leaf_embedding_mlp",
]


def build(name: str) -> Any:
    if name == "lightgbm (library defaults)":
        model = LGBMClassifier(random_state=SEED, n_jobs=1, verbose=-1)
        return Pipeline([("encode", TabularEncoder("standard", "onehot")), ("model", model)])
    if name.startswith("calibrated"):
        return raw_member("calibrated", SEED, base="deep_mlp", method="temperature")
    return raw_member(name, SEED)


def cross_validate(
    name: str, X: pd.DataFrame, y: np.ndarray, groups: np.ndarray | None, folds: list
) -> tuple[np.ndarray, float, float]:
    """Out-of-fold risk, fit wall seconds and fit CPU seconds (sum over folds)."""
    risk = np.full(len(y), np.nan)
    wall = cpu = 0.0
    for train, test in folds:
        estimator = clone(build(name))
        w0, c0 = time.perf_counter(), time.process_time()
        fit_member(
            estimator, take_rows(X, train), y[train], None if groups is None else groups[train]
        )
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        risk[test] = estimator.predict_proba(take_rows(X, test))[:, 1]
    return risk, wall, cpu


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"auroc": auroc(y, p), "brier": brier(y, p)}


def paired(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """a minus b, on the same resample."""
    return {"auroc": auroc(y, a) - auroc(y, b), "brier": brier(y, a) - brier(y, b)}


def run_dataset(
    label: str, models: list[str], resume: bool, quick: bool
) -> tuple[list[str], dict[str, Any]]:
    X, y, groups = DATASETS[label]()
    if quick:
        X, y = X.iloc[:200], y[:200]
        groups = None if groups is None else groups[:200]
    folds = internal_folds(y, groups, n_splits=5, seed=SEED)
    cache = cache_dir() / "benchmarks" / "hybrid"
    cache.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for name in models:
        path = cache / f"{label}__{name}{'__quick' if quick else ''}.npz".replace(" ", "_")
        if resume and path.exists():
            saved = np.load(path)
            risk, wall, cpu = saved["risk"], float(saved["wall"]), float(saved["cpu"])
        else:
            risk, wall, cpu = cross_validate(name, X, y, groups, folds)
            np.savez(path, risk=risk, wall=wall, cpu=cpu)
        est = bootstrap(scores, y, risk, n_boot=N_BOOT, seed=SEED, groups=groups)
        results[name] = {"risk": risk, "wall": wall, "cpu": cpu, **est}
        print(
            f"{label:24s} {name:38s} AUROC {est['auroc']}  Brier {est['brier']}  "
            f"fit {wall:.1f}s (cpu {cpu:.1f}s)",
            flush=True,
        )
    return _dataset_table(label, X, y, groups, results)


def _fmt(est: Estimate, bold: bool) -> str:
    text = str(est)
    return f"**{text}**" if bold else text


def _dataset_table(
    label: str,
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray | None,
    results: dict[str, dict[str, Any]],
) -> tuple[list[str], dict[str, Any]]:
    best_auroc = max(results, key=lambda n: results[n]["auroc"].value)
    best_brier = min(results, key=lambda n: results[n]["brier"].value)
    patients = f", {len(np.unique(groups))} patients" if groups is not None else ""
    lines = [
        f"### {label} ({len(y)} rows{patients}, {X.shape[1]} features, {y.mean():.0%} positive)",
        "",
        "| model | kind | AUROC (95% CI) | Brier (95% CI) | fit s, 5 folds (CPU s) |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        kind = "single" if name in SINGLE else "deep" if name in DEEP else "hybrid"
        lines.append(
            f"| {name} | {kind} | {_fmt(r['auroc'], name == best_auroc)} | "
            f"{_fmt(r['brier'], name == best_brier)} | {r['wall']:.1f} ({r['cpu']:.1f}) |"
        )
    summary: dict[str, Any] = {"label": label}
    if "hybrid_ensemble" in results:
        ens = results["hybrid_ensemble"]["risk"]
        singles = [n for n in results if n in SINGLE + DEEP[:2]]
        best_single = max(singles, key=lambda n: results[n]["auroc"].value)
        others = [n for n in results if n != "hybrid_ensemble"]
        best_other_brier = min(others, key=lambda n: results[n]["brier"].value)
        d_auroc = bootstrap(
            paired, y, ens, results[best_single]["risk"], n_boot=N_BOOT, seed=SEED, groups=groups
        )["auroc"]
        d_brier = bootstrap(
            paired,
            y,
            ens,
            results[best_other_brier]["risk"],
            n_boot=N_BOOT,
            seed=SEED,
            groups=groups,
        )["brier"]
        hybrids = [n for n in results if n in HYBRID]
        summary |= {
            "best_single": best_single,
            "d_auroc": d_auroc,
            "worse": d_auroc.high < 0,
            "best_other_brier": best_other_brier,
            "d_brier": d_brier,
            "tied_best_brier": d_brier.low <= 0,
            "best_hybrid": max(hybrids, key=lambda n: results[n]["auroc"].value),
            "ens_fit": results["hybrid_ensemble"]["wall"],
            "single_fit": results[best_single]["wall"],
        }
    return [*lines, ""], summary


def _model_name(model: Any) -> str:
    return model if isinstance(model, str) else model.name


def wisconsin_study_seconds() -> tuple[float, float, float, float, str]:
    """Wisconsin example study wall/CPU time without and with ``hybrid_ensemble``."""
    spec = load_spec(ROOT / "medpredict" / "examples" / "wisconsin.yaml")
    base = [m for m in spec.models if _model_name(m) != "hybrid_ensemble"]
    times = []
    best = ""
    with tempfile.TemporaryDirectory() as tmp:
        for models in (base, [*base, "hybrid_ensemble"]):
            run = spec.model_copy(
                update={"models": models, "output_dir": Path(tmp) / str(len(models))}
            )
            w0, c0 = time.perf_counter(), time.process_time()
            result = run_study(run, quiet=True)
            times += [time.perf_counter() - w0, time.process_time() - c0]
            best = result.best_name
    return times[0], times[1], times[2], times[3], best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 datasets, 3 models")
    parser.add_argument("--resume", action="store_true", help="reuse cached predictions")
    args = parser.parse_args()
    labels = list(DATASETS)[:2] if args.quick else list(DATASETS)
    models = (
        ["logistic_regression", "deep_mlp", "hybrid_ensemble"]
        if args.quick
        else (SINGLE + DEEP + HYBRID)
    )
    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    tables, summaries = [], []
    for label in labels:
        lines, summary = run_dataset(label, models, args.resume, args.quick)
        tables += lines
        summaries.append(summary)
    study = wisconsin_study_seconds()
    print(
        f"Wisconsin default study: {study[0]:.1f}s, with hybrid_ensemble {study[2]:.1f}s",
        flush=True,
    )
    write_report(tables, summaries, study, load_start, time.perf_counter() - started, args.quick)


def write_report(
    tables: list[str],
    summaries: list[dict[str, Any]],
    study: tuple,
    load_start: float,
    seconds: float,
    quick: bool,
) -> None:
    not_worse = sum(not s["worse"] for s in summaries)
    tied = sum(s["tied_best_brier"] for s in summaries)
    lines = [
        "## Hybrid models and ensembles",
        "",
        f"Machine: {os.cpu_count()} cores ({platform.machine()}), Python "
        f"{platform.python_version()}; other work shared the CPU (load average "
        f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end), so wall times "
        "are inflated; CPU seconds are the process's own. "
        f"Total run {seconds / 60:.0f} min. Command: `MEDPREDICT_DATA_DIR=/work/shared/data "
        f".venv/bin/python benchmarks/hybrid.py{' --quick' if quick else ''}`.",
        "",
        "Identical stratified 5-fold splits for every model (grouped by patient ID for "
        "MASS biopsy), seed 0. Metrics on the pooled out-of-fold predictions with "
        f"{N_BOOT}-resample bootstrap 95% CIs (patient-clustered for biopsy). Bold: best "
        "in the column. Every model takes the raw table; classical models get median "
        "imputation with missing indicators, scaling and one-hot encoding fitted in the "
        "training fold.",
        "",
        "### Default `hybrid_ensemble` against the targets",
        "",
        "| dataset | best single model (AUROC) | ensemble − best single, AUROC (95% CI) "
        "| significantly worse? | best other model (Brier) | ensemble − it, Brier (95% CI) "
        "| best or tied-best Brier? | best hybrid (AUROC) | fit s: ensemble / best single |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s['label']} | {s['best_single']} | {s['d_auroc']} | "
            f"{'yes' if s['worse'] else 'no'} | {s['best_other_brier']} | {s['d_brier']} | "
            f"{'yes' if s['tied_best_brier'] else 'no'} | {s['best_hybrid']} | "
            f"{s['ens_fit']:.1f} / {s['single_fit']:.1f} |"
        )
    lines += [
        "",
        f"Never significantly worse than the best single model: {not_worse} of "
        f"{len(summaries)} datasets (target: all). Best or tied-best Brier (paired CI of the "
        f"difference to the best other model includes 0 or favours the ensemble): {tied} of "
        f"{len(summaries)} (target: at least 4 of 5).",
        "",
        "### Wisconsin example study wall time",
        "",
        "| study | wall s | CPU s | selected model |",
        "|---|---|---|---|",
        f"| LR, RF, SVM, LightGBM (5 folds, 1,000 bootstraps) | {study[0]:.1f} | "
        f"{study[1]:.1f} | |",
        f"| the same + hybrid_ensemble (the default study) | {study[2]:.1f} | {study[3]:.1f} "
        f"| {study[4]} |",
        "",
        f"Ratio with / without the ensemble: {study[2] / study[0]:.1f}x wall. Target: <= 60 s "
        "wall.",
        "",
        "### Per dataset",
        "",
    ]
    text = "\n".join(lines + tables)
    if quick:
        print(text)
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
