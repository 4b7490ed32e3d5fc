"""Assemble benchmarks/RESULTS.md from the per-area tables the benchmark scripts write.

Run after any benchmark: ``.venv/bin/python benchmarks/collect.py``.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = [
    "foundation", "hybrid", "trust", "imaging", "wearables", "text_genomics", "ehr", "survival",
    "survival-speed", "treatment_effects", "over_time", "transfer", "forecasting",
    "serve", "serve-2-workers", "scale-study", "scale-fits", "scale-batch",
]
HEADER = """# Benchmark results

Each section is written by `benchmarks/<area>.py` (see the command in it) into
`benchmarks/results/<area>.md` and collected here by `benchmarks/collect.py`.
Machine: the project's standard 2-core, 24 GiB CPU machine, no GPU. Each section
records the load average of its run: where other jobs shared the two cores (load
average well above 2), wall times are pessimistic, and CPU times and ratios against a
baseline measured in the same run are the steadier comparison.
"""


def main() -> None:
    parts = [HEADER]
    found = {p.stem: p for p in (HERE / "results").glob("*.md")}
    for name in ORDER + sorted(set(found) - set(ORDER)):
        if name in found:
            parts.append(found[name].read_text().strip() + "\n")
    (HERE / "RESULTS.md").write_text("\n".join(parts))


if __name__ == "__main__":
    main()
