"""Patient-timeline benchmarks on PhysioNet/CinC 2012 set A (4,000 ICU stays).

Speed (``--part speed``):
1. read and screen all 4,000 stays (~1.76 M rows) with medpredict's reader, against a
   plain pandas reader that parses each file with ``pd.read_csv`` (no screening), in the
   same run (target <= 10 s);
2. featurise the 48-hour cohort (aggregates over 6/24/48 h plus the hourly grid; target
   <= 10 s);
3. a 10x replicate (40,000 stays made by resampling record files with new ids) read,
   screened, made into a cohort and featurised in a fresh process (target <= 2 min within
   4 GB peak memory).

Models (``--part models``): the example study ``medpredict/examples/physionet2012.yaml``
(its candidates with their parameters, plus ``timeline_transformer`` and
``grud_lightgbm``), 5-fold CV (the same folds for all candidates), 1,000
bootstrap resamples, at 48 h and at 24 h of data; SAPS-I from the outcomes file is the
clinical baseline on the same stays.

Results go to benchmarks/results/ehr.md. Run: ``.venv/bin/python benchmarks/ehr.py``
(``--part speed`` or ``--part models`` for one half).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from medpredict.settings import require_data
from medpredict.timeline.cohort import define_cohort
from medpredict.timeline.features import tabularise
from medpredict.timeline.readers.physionet2012 import read_physionet2012
from medpredict.timeline.spec import TimelineSpec

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "ehr.md"
TIMELINE = {"index": {"offset": "48h"}, "outcome": {"column": "In-hospital_death"}}


def plain_pandas_read(archive: Path) -> pd.DataFrame:
    """The baseline: every record file parsed by pandas, no checks."""
    frames = []
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".txt"):
                frame = pd.read_csv(io.BytesIO(tar.extractfile(member).read()))
                frame["RecordID"] = int(Path(member.name).stem)
                frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def replicate(archive: Path, outcomes: Path, folder: Path, factor: int, seed: int = 0):
    """``factor`` x the stays: record files drawn with replacement, each with a new id."""
    rng = np.random.default_rng(seed)
    with tarfile.open(archive) as tar:
        records = [
            tar.extractfile(m).read() for m in tar if m.isfile() and m.name.endswith(".txt")
        ]
    target = folder / f"set-x{factor}.tar.gz"
    outcome_rows = ["RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"]
    picks = rng.integers(0, len(records), factor * len(records))
    with tarfile.open(target, "w:gz", compresslevel=1) as out:
        for new_id, pick in enumerate(picks, start=1):
            old_id = records[pick].split(b"\n", 2)[1].split(b",")[2].strip()
            body = records[pick].replace(b"RecordID," + old_id, b"RecordID," + str(new_id).encode())
            info = tarfile.TarInfo(f"set-x/{new_id}.txt")
            info.size = len(body)
            out.addfile(info, io.BytesIO(body))
            outcome_rows.append(f"{new_id},0,0,0,-1,{int(rng.random() < 0.14)}")
    (folder / "Outcomes-x.txt").write_text("\n".join(outcome_rows) + "\n")
    return target, folder / "Outcomes-x.txt"


def ingest_and_featurise(archive: str, outcomes: str) -> None:
    """Run in a fresh process: read, cohort, featurise; print seconds and peak RSS."""
    start = time.perf_counter()
    read = read_physionet2012(archive, outcomes)
    timeline = TimelineSpec.model_validate(TIMELINE)
    cohort = define_cohort(read.events, timeline, read.outcomes, "died")
    features = tabularise(read.events, cohort.samples, timeline).features
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"{seconds:.1f} {peak:.2f} {read.rows_in} {len(features)} {features.shape[1]}")


def speed(lines: list[str]) -> None:
    archive = require_data("ehr/physionet2012/set-a.tar.gz")
    outcomes = require_data("ehr/physionet2012/Outcomes-a.txt")
    start = time.perf_counter()
    plain = plain_pandas_read(archive)
    plain_s = time.perf_counter() - start
    start = time.perf_counter()
    read = read_physionet2012(archive, outcomes)
    read_s = time.perf_counter() - start
    timeline = TimelineSpec.model_validate(TIMELINE)
    start = time.perf_counter()
    cohort = define_cohort(read.events, timeline, read.outcomes, "died")
    built = tabularise(read.events, cohort.samples, timeline)
    feat_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        big, big_outcomes = replicate(archive, outcomes, Path(folder), 10)
        out = subprocess.run(
            [sys.executable, __file__, "--ingest", str(big), str(big_outcomes)],
            check=True, capture_output=True, text=True,
        ).stdout.split()
    big_s, big_gb, big_rows, big_samples, big_cols = out
    lines += [
        "| step | rows | medpredict (s) | plain pandas per-file reader (s) | ratio | target |",
        "|---|---|---|---|---|---|",
        f"| read + screen 4,000 stays (rows in = {len(read.events):,} stored + "
        f"{len(read.quarantine):,} quarantined) | {read.rows_in:,} | {read_s:.1f} | "
        f"{plain_s:.1f} (no checks; {len(plain):,} rows) | {read_s / plain_s:.2f}x | <= 10 s |",
        f"| cohort + featurise at 48 h ({built.features.shape[1]:,} columns incl. hourly "
        f"grid) | {len(cohort.samples):,} samples | {feat_s:.1f} | — | — | <= 10 s |",
        f"| 10x replicate: read, screen, cohort, featurise (fresh process, peak RSS "
        f"{float(big_gb):.2f} GB) | {int(big_rows):,} rows, {int(big_samples):,} samples x "
        f"{int(big_cols):,} | {float(big_s):.1f} | — | — | <= 120 s, <= 4 GB |",
        "",
    ]


def models(lines: list[str]) -> None:
    from medpredict.evaluation.bootstrap import bootstrap
    from medpredict.evaluation.metrics import auroc
    from medpredict.spec import load_spec
    from medpredict.study import run_study

    example = ROOT / "medpredict" / "examples" / "physionet2012.yaml"
    rows = []
    for hours in (48, 24):
        spec = load_spec(example)
        timeline = spec.timeline.model_copy(
            update={
                "index": spec.timeline.index.model_copy(update={"offset": f"{hours}h"}),
                "observation": f"{hours}h",
                "windows": [w for w in ("6h", "24h", "48h") if int(w[:-1]) <= hours],
            }
        )
        extra = [m for m in ("timeline_transformer", "grud_lightgbm")
                 if m not in {s.name for s in spec.model_specs}]
        spec = spec.model_copy(
            update={
                "timeline": timeline,
                "models": [*spec.models, *extra],
                "output_dir": Path(tempfile.mkdtemp()) / spec.name,
            }
        )
        start = time.perf_counter()
        result = run_study(spec, quiet=True)
        seconds = time.perf_counter() - start
        saps = _saps(result)
        y = result.cohort.y
        ci = bootstrap(lambda t, s: {"auroc": auroc(t, s)}, y, saps, n_boot=1000)["auroc"]
        rows.append(f"| {hours} h | SAPS-I score (outcomes file, no fitting) | "
                    f"{_est(ci)} | — | — | — |")
        for name, candidate in result.candidates.items():
            m = candidate.metrics
            chosen = " (selected)" if name == result.best_name else ""
            rows.append(
                f"| {hours} h | {name}{chosen} | {_est(m['auroc'])} | {_est(m['brier'])} | "
                f"{_est(m['calibration_slope'])} | {_delta(candidate, result)} |"
            )
        rows.append(f"| {hours} h | whole study: {seconds:.0f} s | | | | |")
    lines += [
        "| data | model | AUROC | Brier | calibration slope | paired ΔAUROC vs selected |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def _saps(result) -> np.ndarray:
    outcomes = pd.read_csv(require_data("ehr/physionet2012/Outcomes-a.txt"))
    saps = outcomes.set_index("RecordID")["SAPS-I"].replace(-1, np.nan)
    subjects = result.timeline.samples["subject_id"].to_numpy()[result.cohort.row_numbers - 1]
    values = pd.Series(subjects).map(saps).to_numpy(dtype=float)
    return np.nan_to_num(values, nan=np.nanmedian(values))


def _est(estimate) -> str:
    if estimate is None or estimate.value is None:
        return "—"
    return f"{estimate.value:.3f} ({estimate.low:.3f}–{estimate.high:.3f})"


def _delta(candidate, result) -> str:
    """Selected minus this candidate (AUROC), paired bootstrap over the same resamples."""
    return "—" if candidate.delta_vs_best is None else _est(candidate.delta_vs_best)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["speed", "models", "all"], default="all")
    parser.add_argument("--ingest", nargs=2)
    args = parser.parse_args()
    if args.ingest:
        ingest_and_featurise(*args.ingest)
        return
    load = os.getloadavg()[0]
    lines = [
        "## Patient timelines (PhysioNet/CinC 2012 set A)",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}.",
        f"Command: `.venv/bin/python benchmarks/ehr.py --part {args.part}`.",
        "",
    ]
    if args.part in ("speed", "all"):
        speed(lines)
    if args.part in ("models", "all"):
        models(lines)
    lines.append(f"Load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end.")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = RESULTS.read_text() if RESULTS.exists() and args.part != "all" else ""
    RESULTS.write_text(_merge(previous, "\n".join(lines) + "\n", args.part))
    print("\n".join(lines))


def _merge(previous: str, new: str, part: str) -> str:
    """Keep the other part's table when only one part was rerun."""
    if not previous or part == "all":
        return new
    keep = [block for block in previous.split("\n\n") if block.startswith("| ")
            and (("read + screen" in block) != (part == "speed"))]
    return new.rstrip("\n") + "\n\n" + "\n\n".join(keep) + "\n" if keep else new


if __name__ == "__main__":
    main()
