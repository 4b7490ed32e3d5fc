"""Survival benchmark: DeepSurv's published train/test splits, test-set C-index with CIs.

For each split (SUPPORT, METABRIC, Rotterdam -> GBSG, WHAS; Katzman et al. 2018):

1. the default survival study (every default candidate, 5-fold cross-validation on the
   training part, 1,000 bootstrap resamples) selects a model on the training part only
   and scores it once on the test part (``validation.external``): the honest protocol,
   timed end to end;
2. every candidate, fitted on the whole training part, is scored on the test part, so
   each can be compared with the published columns (CPH / DeepSurv / RSF) and the plain
   Cox model checked against the published CPH value (within 0.005).

Harrell's C as in the paper; integrated Brier score over the 10th to 80th percentile
of test times (censoring distribution from the test rows); the test coverage of the
study's 90% lower bound on the time to the event (calibrated on the training part's
out-of-fold curves; censoring-weighted estimate, :mod:`medpredict.survival.conformal`),
which the study computes on its external hold-out at no extra fitting. Writes
``benchmarks/results/survival.md``. Needs the data (``medpredict datasets fetch
deepsurv``, or ``MEDPREDICT_DATA_DIR`` pointing at a folder that holds them).

3. ``speed``: on SUPPORT's training part (7,098 patients), medpredict's Harrell's C
   against scikit-survival's ``concordance_index_censored`` (same value, median of 5
   calls), and the LightGBM Cox model's fit against scikit-survival's
   ``GradientBoostingSurvivalAnalysis`` with matching settings (150 trees of depth 3,
   learning rate 0.05, subsample 0.8), with both test C-indices. Writes
   ``benchmarks/results/survival-speed.md``.

Run: ``.venv/bin/python benchmarks/survival.py [support metabric gbsg whas] [speed]``
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from medpredict.encoders.tabular import standard_pipeline
from medpredict.models.registry import make_model
from medpredict.spec import parse_spec
from medpredict.study import run_study
from medpredict.survival.datasets import deepsurv_split
from medpredict.survival.models import survival_curves
from medpredict.survival.outcome import SURVIVAL_DTYPE
from medpredict.survival.scoring import SurvivalPredictions, evaluation_times, score_predictions
from medpredict.survival.spec import SURVIVAL_MODELS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# Published test C-index (Katzman et al. 2018, Table): CPH / DeepSurv / RSF; targets
PUBLISHED = {
    "support": (0.583, 0.618, 0.619),
    "metabric": (0.631, 0.654, 0.624),
    "gbsg": (0.658, 0.668, 0.651),
    "whas": (0.817, 0.862, 0.893),
}
TARGET_C = {"support": 0.618, "metabric": 0.654, "gbsg": 0.680, "whas": 0.862}
TARGET_IBS = {"support": 0.217, "metabric": 0.183}
UNIT = {"support": "days", "metabric": "months", "gbsg": "months", "whas": "days"}
LABEL = {"support": "SUPPORT", "metabric": "METABRIC", "gbsg": "Rotterdam -> GBSG",
         "whas": "WHAS"}


def horizons(train) -> list[float]:
    """Quartiles of the training event times, rounded: the study's horizons."""
    events = train.loc[train["event"] == 1, "time"]
    return [float(round(q)) for q in np.quantile(events, [0.25, 0.5])]


def positive_times(table, name: str, part: str, notes: list[str]):
    """Follow-up times of 0 (medpredict refuses them) set to half the smallest positive time."""
    zero = table["time"] <= 0
    if zero.any():
        value = float(table.loc[~zero, "time"].min()) / 2
        table.loc[zero, "time"] = value
        notes.append(f"{LABEL[name]} {part}: {int(zero.sum())} follow-up time(s) of 0 set to "
                     f"{value:g} {UNIT[name]} (half the smallest positive time).")
    return table


def study(name: str, tmp: Path, notes: list[str]) -> tuple[dict, float]:
    train, test = deepsurv_split(name)
    train = positive_times(train, name, "train", notes)
    test = positive_times(test, name, "test", notes)
    train.to_parquet(tmp / f"{name}_train.parquet")
    test.to_parquet(tmp / f"{name}_test.parquet")
    spec = parse_spec({
        "name": f"deepsurv_{name}", "data": {"path": str(tmp / f"{name}_train.parquet")},
        "target": "event", "positive_class": 1, "task": "survival",
        "survival": {"duration_column": "time", "horizons": horizons(train),
                     "time_unit": UNIT[name]},
        "validation": {"external": {"path": str(tmp / f"{name}_test.parquet")}},
        "output_dir": str(tmp / name),
    })
    started = time.perf_counter()
    result = run_study(spec, quiet=True)
    seconds = time.perf_counter() - started
    return {"result": result, "train": train, "test": test, "horizons": horizons(train)}, seconds


def each_candidate(run: dict) -> dict[str, dict]:
    train, test, hz = run["train"], run["test"], run["horizons"]
    features = [c for c in train.columns if c.startswith("x")]
    y = np.empty(len(train), dtype=SURVIVAL_DTYPE)
    y["event"], y["time"] = train["event"].astype(bool), train["time"]
    schema = run["result"].cohort.schema
    times = evaluation_times(test["time"], test["event"], hz)
    scored = {}
    for name in SURVIVAL_MODELS:
        started = time.perf_counter()
        model = standard_pipeline(schema, make_model(name, seed=0, n_samples=len(y)))
        model.fit(train[features], y)
        curves = survival_curves(model, test[features], times)
        seconds = time.perf_counter() - started
        scored[name] = {
            "metrics": score_predictions(SurvivalPredictions(times, curves), test["time"],
                                         test["event"], hz, n_boot=1000, seed=0),
            "seconds": seconds,
        }
    return scored


def main(names: list[str]) -> None:
    started = time.perf_counter()
    load = os.getloadavg()[0]
    lines = [
        "## Survival (DeepSurv's published splits)",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}; load average {load:.1f} at the start.",
        f"Command: `MEDPREDICT_DATA_DIR=../shared/data .venv/bin/python benchmarks/survival.py "
        f"{' '.join(names)}`.",
        "",
        "Honest protocol: the default study selects on 5-fold CV of the training part; its "
        "model is scored once on the test part (Harrell's C, integrated Brier score, 95% "
        "bootstrap CIs, 1,000 resamples). Lower bound: the share of test patients whose event "
        "comes at or after their 90% lower bound (censoring-weighted estimate; aim 0.90), "
        "with the chosen model quantile b.",
        "",
        "| split | train / test | study (s) | selected | test Harrell C | target | test IBS "
        "| target | published CPH / DeepSurv / RSF | test coverage of 90% lower bound (b) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    tables: list[str] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            run, seconds = study(name, Path(folder), notes)
            result = run["result"]
            holdout = result.holdouts[0]
            external = holdout.metrics
            c, ibs = external["harrell_c"], external["integrated_brier"]
            bound = (f"{holdout.lower_bound_coverage} ({result.lower_bound.quantile:g})"
                     if holdout.lower_bound_coverage is not None else "—")
            ibs_target = TARGET_IBS.get(name)
            lines.append(
                f"| {LABEL[name]} | {len(run['train']):,} / {len(run['test']):,} | "
                f"{seconds:.0f} | {result.best_name} | {c} | >= {TARGET_C[name]} "
                f"({'met' if c.value >= TARGET_C[name] else 'not met'}) | {ibs} | "
                + (f"<= {ibs_target} ({'met' if ibs.value <= ibs_target else 'not met'})"
                   if ibs_target else "—")
                + f" | {' / '.join(f'{v:.3f}' for v in PUBLISHED[name])} | {bound} |"
            )
            print(lines[-1], flush=True)
            scored = each_candidate(run)
            table = [
                "",
                f"Every candidate fitted on the whole {LABEL[name]} training part, test part "
                f"(horizons {', '.join(f'{h:g}' for h in run['horizons'])} {UNIT[name]}):",
                "",
                "| model | test Harrell C | test Uno C | test IBS | "
                f"AUC at {run['horizons'][0]:g} | calibration slope at {run['horizons'][0]:g} "
                "| fit + predict (s) |",
                "|---|---|---|---|---|---|---|",
            ]
            h = f"{run['horizons'][0]:g}"
            for model, entry in scored.items():
                m = entry["metrics"]
                table.append(
                    f"| {model} | {m['harrell_c']} | {m['uno_c']} | {m['integrated_brier']} | "
                    f"{m[f'auc@{h}']} | {m[f'calibration_slope@{h}']} | "
                    f"{entry['seconds']:.1f} |"
                )
            cox = scored["cox"]["metrics"]["harrell_c"].value
            table.append("")
            table.append(
                f"Plain Cox model: {cox:.4f} against the published CPH {PUBLISHED[name][0]:.3f} "
                f"(difference {cox - PUBLISHED[name][0]:+.4f}; check: within 0.005 "
                f"{'met' if abs(cox - PUBLISHED[name][0]) <= 0.005 else 'not met'})."
            )
            tables += table
            print("\n".join(table), flush=True)
    lines += tables
    lines += ["", *notes]
    lines += ["", f"Total {time.perf_counter() - started:.0f} s; load average "
              f"{os.getloadavg()[0]:.1f} at the end."]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "survival.md").write_text("\n".join(lines) + "\n")


def speed() -> None:
    from sksurv.ensemble import GradientBoostingSurvivalAnalysis
    from sksurv.metrics import concordance_index_censored

    from medpredict.evaluation.survival import harrell_c
    from medpredict.survival.models import GradientBoostedCox

    train, test = deepsurv_split("support")
    features = [c for c in train.columns if c.startswith("x")]
    y = np.empty(len(train), dtype=SURVIVAL_DTYPE)
    y["event"], y["time"] = train["event"].astype(bool), train["time"]
    risk = make_model("cox").fit(train[features].to_numpy(), y).predict(train[features].to_numpy())

    def median_seconds(call) -> tuple[float, float]:
        times, value = [], None
        for _ in range(5):
            started = time.perf_counter()
            value = call()
            times.append(time.perf_counter() - started)
        return float(np.median(times)), value

    ours, c_ours = median_seconds(lambda: harrell_c(y["time"], y["event"], risk))
    theirs, c_theirs = median_seconds(
        lambda: concordance_index_censored(y["event"], y["time"], risk)[0])
    fits = {}
    for name, model in (
        ("LightGBM Cox (gradient_boosted_survival, 150 trees)",
         GradientBoostedCox(n_estimators=150, learning_rate=0.05, num_leaves=8, subsample=0.8)),
        ("scikit-survival GradientBoostingSurvivalAnalysis (150 trees)",
         GradientBoostingSurvivalAnalysis(n_estimators=150, learning_rate=0.05, max_depth=3,
                                          subsample=0.8, random_state=0)),
    ):
        started = time.perf_counter()
        model.fit(train[features].to_numpy(), y)
        seconds = time.perf_counter() - started
        c = harrell_c(test["time"], test["event"], model.predict(test[features].to_numpy()))
        fits[name] = (seconds, c)
    (lightgbm_s, _), (sksurv_s, _) = fits.values()
    lines = [
        "## Survival: speed against scikit-survival (SUPPORT training part, 7,098 patients)",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}; load average {os.getloadavg()[0]:.1f} at the start.",
        "Command: `MEDPREDICT_DATA_DIR=../shared/data .venv/bin/python benchmarks/survival.py "
        "speed`.",
        "",
        "| what | medpredict | scikit-survival 0.28 | ratio |",
        "|---|---|---|---|",
        f"| Harrell's C, one call (median of 5) | {1000 * ours:.1f} ms (C {c_ours:.6f}) | "
        f"{1000 * theirs:.1f} ms (C {c_theirs:.6f}) | {theirs / ours:.1f}x faster |",
        f"| boosted Cox fit, 150 trees | {lightgbm_s:.1f} s | {sksurv_s:.1f} s | "
        f"{sksurv_s / lightgbm_s:.0f}x faster |",
        "",
        "Test Harrell C of the two boosted models: "
        + "; ".join(f"{name} {c:.3f}" for name, (_, c) in fits.items()) + ".",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "survival-speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if "speed" in arguments:
        arguments.remove("speed")
        speed()
        if arguments:
            main(arguments)
    else:
        main(arguments or ["support", "metabric", "gbsg", "whas"])
