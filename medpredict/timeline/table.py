"""A timeline study's table: read the events, define the cohort, featurise, summarise.

:func:`timeline_table` is what ``data: {events: ...}`` in a study spec runs: it reads the
source with its reader (printing rows in = stored + quarantined), defines the cohort
(:mod:`medpredict.timeline.cohort`), computes the features (:func:`~medpredict.timeline.
features.tabularise`) and returns one row per sample — ``sample_id``, ``subject_id``,
``index_time``, the outcome and the features — with the summary the report draws: the
cohort flow, quarantine counts by reason, per-variable missingness and the sampling
density over time.

Columns are kept when they carry information in the development data (at least two
distinct values; decided without the outcome), and an external table is given exactly
the development columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medpredict.data.errors import DataError
from medpredict.timeline.cohort import FlowStep, define_cohort
from medpredict.timeline.events import STANDARD_CODES
from medpredict.timeline.features import GRID_PREFIX, Features, tabularise
from medpredict.timeline.spec import EventSource, TimelineSpec, duration
from medpredict.timeline.validate import ReadResult, empty_quarantine, load_ranges

if TYPE_CHECKING:
    from medpredict.spec import StudySpec

KEY_COLUMNS = ("sample_id", "subject_id", "index_time")


@dataclass
class TimelineSummary:
    """What the report shows about a timeline study's data on its way in.

    ``samples`` holds, per row of the study table (same order), ``sample_id``,
    ``subject_id``, ``anchor_time``, ``index_time`` and (for an outcome code)
    ``outcome_time``; ``missingness`` is per code the share of samples never measured;
    ``density`` is the mean number of events per sample in each hour before the index time.
    """

    reader: str
    rows_in: int
    events: int
    quarantined: dict[str, int]
    flow: list[FlowStep]
    missingness: pd.DataFrame
    density: pd.DataFrame
    samples: pd.DataFrame = field(default_factory=pd.DataFrame)
    dropped_columns: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON-friendly form written to ``metrics.json``."""
        return {
            "reader": self.reader,
            "rows_in": self.rows_in,
            "events": self.events,
            "quarantined": self.quarantined,
            "flow": [s.__dict__ for s in self.flow],
            "dropped_columns": self.dropped_columns,
        }


@dataclass
class TimelineTable:
    """The study table, its columns' kinds and the summary."""

    frame: pd.DataFrame
    kinds: dict[str, str]
    summary: TimelineSummary


def read_source(source: EventSource, ranges: dict[str, Any] | None = None) -> ReadResult:
    """Read ``source`` with its reader; every rejected row is in the result's quarantine.

    Reference data that are not on this machine (``medpredict datasets``) are downloaded
    from their source and checked first.
    """
    _fetch_reference(source)
    table = load_ranges(ranges)
    if source.reader == "physionet2012":
        from medpredict.timeline.readers.physionet2012 import read_physionet2012

        return read_physionet2012(source.path, source.outcomes, ranges=table)
    if source.reader == "mimic":
        from medpredict.timeline.readers.mimic import read_mimic

        result = read_mimic(source.path, mapping=source.mapping or "mimic4")
    elif source.reader == "omop":
        from medpredict.timeline.readers.omop import read_omop

        result = read_omop(source.path)
    elif source.reader == "fhir":
        from medpredict.timeline.readers.fhir import read_fhir

        result = read_fhir(source.path)
    else:
        from medpredict.timeline.events import read_meds

        events = read_meds(source.path)
        result = ReadResult(events, empty_quarantine(), len(events))
    if source.outcomes is not None:
        result.outcomes = read_outcome_table(source.outcomes)
    return result


def _fetch_reference(source: EventSource) -> None:
    from medpredict.data.download import fetch
    from medpredict.data.reference import dataset_holding
    from medpredict.settings import fetched_data_dir

    for path in (source.path, source.outcomes):
        if path is None or path.exists():
            continue
        try:
            relative = path.relative_to(fetched_data_dir()).as_posix()
        except ValueError:
            continue
        dataset = dataset_holding(relative)
        if dataset is not None:
            fetch([dataset.name])


def read_outcome_table(path: Path) -> pd.DataFrame:
    """A per-subject outcome table (CSV or Parquet) with a ``subject_id`` column."""
    from medpredict.data.loading import read_file

    frame = read_file(Path(path), "outcome table")
    if "subject_id" not in frame.columns:
        raise DataError(
            f"outcome table {path} has no subject_id column (columns: "
            f"{', '.join(map(str, frame.columns))})"
        )
    if frame["subject_id"].duplicated().any():
        rows = np.flatnonzero(frame["subject_id"].duplicated().to_numpy())[:10] + 2
        raise DataError(f"outcome table {path}: subject_id repeated on rows {rows.tolist()}")
    return frame


def timeline_table(
    source: EventSource,
    spec: StudySpec,
    columns: list[str] | None = None,
    quiet: bool = True,
) -> TimelineTable:
    """The table of a timeline study from ``source`` (development, or external with
    ``columns``: the development table's feature columns, which it then has exactly)."""
    timeline = spec.timeline
    read = read_source(source, timeline.ranges)
    if not quiet:
        print(f"{source.path}: {read.summary()}")
    cohort = define_cohort(read.events, timeline, read.outcomes, target=spec.target)
    samples = cohort.samples
    if columns is None:
        built = tabularise(read.events, samples, timeline)
        kept = [c for c in built.features.columns if _informative(built.features[c])]
        dropped = built.features.shape[1] - len(kept)
    else:
        timed, static = codes_of(columns)
        built = tabularise(read.events, samples, timeline, timed, static)
        kept, dropped = list(columns), 0
    features = built.features[kept]
    kinds = {c: built.kinds[c] for c in kept}
    frame = pd.concat(
        [samples[[*KEY_COLUMNS, spec.target]].reset_index(drop=True), features], axis=1
    )
    summary = TimelineSummary(
        reader=source.reader,
        rows_in=read.rows_in,
        events=len(read.events),
        quarantined=read.quarantine["reason"].value_counts().to_dict(),
        flow=cohort.flow,
        missingness=missingness(built, samples),
        density=sampling_density(read.events, samples, timeline),
        samples=samples.drop(columns=[spec.target]).reset_index(drop=True),
        dropped_columns=dropped,
    )
    return TimelineTable(frame, kinds, summary)


def codes_of(columns: list[str]) -> tuple[list[str], list[str]]:
    """The timed and static codes behind feature ``columns`` (as :func:`tabularise` names them)."""
    timed, static = [], []
    for column in columns:
        if column.startswith(GRID_PREFIX):
            code = column[len(GRID_PREFIX):].rsplit("__", 1)[0]
        elif "__" in column:
            code = column.rsplit("__", 2)[0]
        else:
            static.append(column)
            continue
        if code not in timed:
            timed.append(code)
    return sorted(timed), static


def _informative(column: pd.Series) -> bool:
    values = column.dropna()
    return len(values) > 0 and values.nunique() > 1


def missingness(built: Features, samples: pd.DataFrame) -> pd.DataFrame:
    """Per code: the share of samples never measured in the observation window."""
    rows = []
    counts = [c for c in built.features.columns if "__count__" in c]
    longest: dict[str, str] = {}
    for column in counts:
        code, _, window = column.rsplit("__", 2)
        if code not in longest or duration(window) > duration(longest[code].rsplit("__", 1)[1]):
            longest[code] = column
    for code, column in sorted(longest.items()):
        measured = built.features[column] > 0
        rows.append(
            {
                "code": code,
                "missing": float(1 - measured.mean()),
                "median_count": float(built.features.loc[measured, column].median())
                if measured.any()
                else 0.0,
            }
        )
    return pd.DataFrame(rows, columns=["code", "missing", "median_count"])


def sampling_density(
    events: pd.DataFrame, samples: pd.DataFrame, timeline: TimelineSpec
) -> pd.DataFrame:
    """Events per subject in each hour before its latest index time (rows: hours back,
    columns: codes)."""
    latest = samples.sort_values("index_time").drop_duplicates("subject_id", keep="last")
    first = latest[["subject_id", "index_time"]]
    timed = events.loc[events["time"].notna() & ~events["code"].isin(STANDARD_CODES),
                       ["subject_id", "time", "code"]]
    merged = timed.merge(first, on="subject_id")
    back = (merged["index_time"] - merged["time"]) / pd.Timedelta(hours=1)
    hours = duration(timeline.observation) / pd.Timedelta(hours=1)
    inside = (back >= 0) & (back < hours)
    merged = merged[inside.to_numpy()].assign(hour=np.floor(back[inside]).astype(int))
    table = merged.groupby(["hour", "code"]).size().unstack(fill_value=0) / max(len(first), 1)
    return table.reindex(range(int(np.ceil(hours))), fill_value=0.0)


def resolve_timeline_spec(spec: StudySpec, table: TimelineTable) -> StudySpec:
    """``spec`` with the timeline table's feature columns and kinds declared, to build the
    cohort from; the study keeps its own spec (features derived, not listed), so the
    resolved spec it saves runs again as written."""
    return spec.model_copy(update={"features": table.kinds})
