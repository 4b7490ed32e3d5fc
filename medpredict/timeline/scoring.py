"""Scoring new patients with a timeline model: the study's own featurisation, no other.

A timeline model's directory stores the study's ``timeline:`` section and the exact
feature columns it was trained on (:mod:`medpredict.model_metadata`). Scoring new events
runs the same steps as the study, so a feature means in use what it meant in training:

1. :func:`screen_events` checks event rows as the readers do (times, values, the
   physiological range table of the model's spec, duplicates), keeping every rejected
   row in a quarantine with its reason;
2. :func:`prediction_samples` places the index times: each subject's anchor + the
   spec's offset(s) (:func:`medpredict.timeline.cohort.index_samples`), or the times
   given. No outcome is needed, and an index time after the subject's last event is
   scored (a prediction "now"); a subject without the anchor event is refused;
3. :func:`timeline_features` calls :func:`~medpredict.timeline.features.tabularise`
   (the one featurisation) with the codes behind the model's columns and keeps exactly
   those columns;
4. :func:`score_timeline` predicts with :func:`medpredict.predict.predict_frame`.

``medpredict predict`` and the prediction service (``POST /v1/models/{name}/timeline``,
``POST /fhir/RiskAssessment/$timeline``) both go through these functions.

Examples
--------
>>> from medpredict.timeline.spec import TimelineSpec
>>> timeline = TimelineSpec.model_validate({"index": {"offset": "6h"}, "observation": "6h",
...     "windows": ["6h"], "outcome": {"column": "died"}})
>>> read = screen_events(pd.DataFrame({"subject_id": [1, 1, 1],
...     "time": ["2000-01-01T00:00", "2000-01-01T02:00", "2000-02-30T03:00"],
...     "code": ["ICU_ADMISSION", "HR", "HR"], "numeric_value": [None, 80, 82]}),
...     "demo.csv", timeline)
>>> print(read.summary())
rows in 3 = events stored 2 + rows quarantined 1
  impossible time: 1
>>> prediction_samples(read.events, timeline)[["sample_id", "index_time"]].to_dict("list")
{'sample_id': ['1@6h'], 'index_time': [Timestamp('2000-01-01 06:00:00')]}
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medpredict.artifact import LoadedModel
from medpredict.data.errors import DataError
from medpredict.model_metadata import ModelMetadata
from medpredict.predict import predict_frame
from medpredict.timeline.cohort import anchor_times, index_samples, sample_ids
from medpredict.timeline.events import COLUMNS, REQUIRED, conform
from medpredict.timeline.features import tabularise
from medpredict.timeline.spec import TimelineSpec
from medpredict.timeline.table import KEY_COLUMNS, codes_of
from medpredict.timeline.validate import (
    IMPOSSIBLE_TIME,
    UNPARSEABLE_TIME,
    UNPARSEABLE_VALUE,
    ReadResult,
    load_ranges,
    screen,
)

IndexTimes = str | datetime | pd.Timestamp | Mapping[Any, Any] | pd.Series | pd.DataFrame
"""Index times: one time for every subject, ``subject -> time``, a Series indexed by
subject, or a frame with ``subject_id`` and ``index_time`` (several per subject allowed)."""

_ISO_TIME = (
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?"
    r"(?:Z|[+-]\d{2}(?::?\d{2})?)?$"
)
_NAMED = 10


def timeline_of(metadata: ModelMetadata | LoadedModel) -> TimelineSpec | None:
    """The ``timeline:`` section a model was trained with; None for other models.

    Examples
    --------
    >>> timeline_of(ModelMetadata(name="pima", spec={"target": "type"})) is None
    True
    >>> timeline_of(ModelMetadata(name="icu", spec={"target": "died", "timeline": {
    ...     "index": {"offset": "24h"}, "observation": "24h", "windows": ["6h"],
    ...     "outcome": {"column": "In-hospital_death"}}})).index.offset
    '24h'
    """
    if isinstance(metadata, LoadedModel):
        metadata = metadata.metadata
    stored = (metadata.spec or {}).get("timeline")
    return None if stored is None else TimelineSpec.model_validate(stored)


def is_timeline(metadata: ModelMetadata) -> bool:
    """Whether the model was trained by a timeline study (cheap: no spec is parsed).

    Examples
    --------
    >>> is_timeline(ModelMetadata(name="pima", spec={"target": "type"}))
    False
    """
    return (metadata.spec or {}).get("timeline") is not None


def _timeline(loaded: LoadedModel) -> TimelineSpec:
    timeline = timeline_of(loaded.metadata)
    if timeline is None:
        raise DataError(
            f"model {loaded.metadata.name!r} ({loaded.path}) is not a timeline model: it "
            "scores rows of patient data (medpredict predict --input <table>), not events"
        )
    return timeline


def parse_times(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Times written in ISO 8601 (or datetimes) as naive ``datetime64[us]``.

    A time with a UTC offset (``...Z``, ``...+02:00``) is converted to UTC; a time
    without one is kept as written. Returns the times (NaT where missing or unread)
    and, per value, why it could not be read: ``unparseable time``, or ``impossible
    time`` for a well-formed time that is not a real one such as 30 February (missing
    where the time was read or is absent).

    Examples
    --------
    >>> times, reasons = parse_times(pd.Series(["2024-03-01T09:00:00+02:00", "2024-02-30",
    ...     "yesterday", None]))
    >>> times.isna().tolist(), str(times[0])
    ([False, True, True, True], '2024-03-01 07:00:00')
    >>> reasons.fillna("-").tolist()
    ['-', 'impossible time', 'unparseable time', '-']
    """
    values = values.reset_index(drop=True)
    reasons = pd.Series(None, index=values.index, dtype=object)
    if pd.api.types.is_datetime64_any_dtype(values):
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return values.astype("datetime64[us]"), reasons
    stamps = values.map(lambda v: isinstance(v, datetime | np.datetime64)).astype(bool)
    text = values.where(~stamps & values.notna()).astype("string").str.strip()
    parsed = pd.to_datetime(
        text.astype(object).where(text.notna(), None), format="ISO8601", errors="coerce",
        utc=True,
    )
    if stamps.any():
        parsed[stamps] = pd.to_datetime(values[stamps], utc=True)
    times = parsed.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")
    unread = (values.notna() & times.isna()).to_numpy()
    well_formed = text.str.match(_ISO_TIME).fillna(False).to_numpy(dtype=bool)
    reasons[unread & well_formed] = IMPOSSIBLE_TIME
    reasons[unread & ~well_formed] = UNPARSEABLE_TIME
    return times, reasons


def screen_events(
    frame: pd.DataFrame,
    source: str,
    timeline: TimelineSpec | None = None,
    first_line: int = 2,
) -> ReadResult:
    """Event rows in the MEDS columns, checked as the readers check theirs.

    Parameters
    ----------
    frame : DataFrame
        ``subject_id``, ``time`` (ISO 8601 text or datetimes; missing for static
        measurements), ``code`` and optionally ``numeric_value`` (numbers, or text that
        should hold one), ``text_value`` and ``unit``.
    source : str
        Name of the rows' origin, recorded in the quarantine (a file name, ``request``).
    timeline : TimelineSpec, optional
        The model's timeline section: its ``ranges`` override the range table.
    first_line : int
        Line number of the first row (2 for a CSV file under its header; 1 for the
        events of a request, counted from 1).

    Returns
    -------
    ReadResult
        Accepted events and the quarantined rows (with ``line`` and reason).

    Raises
    ------
    DataError
        A MEDS column is missing, or a ``subject_id`` is not a whole number (naming the
        lines).
    """
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: the event rows lack column(s) {', '.join(missing)}; expected the "
            f"MEDS columns {', '.join(COLUMNS)}"
        )
    frame = frame.reset_index(drop=True)
    lines = np.arange(len(frame)) + first_line
    subject = pd.to_numeric(frame["subject_id"], errors="coerce")
    whole = subject.isna() | (subject == subject.round())
    bad_subject = (frame["subject_id"].notna() & subject.isna()) | ~whole
    if bad_subject.any():
        raise DataError(
            f"{source}: subject_id must be a whole number (MEDS), on line(s) "
            f"{_lines(lines[bad_subject.to_numpy()])}"
        )
    no_code = frame["code"].isna() | (frame["code"].astype("string").str.strip() == "")
    if no_code.any():
        raise DataError(
            f"{source}: every event needs a code; none on line(s) "
            f"{_lines(lines[no_code.to_numpy(dtype=bool)])}"
        )
    times, reasons = parse_times(frame["time"])
    raw_value = frame["numeric_value"] if "numeric_value" in frame else pd.Series(
        np.nan, index=frame.index
    )
    value = pd.to_numeric(raw_value, errors="coerce").astype("float64")
    unreadable = (raw_value.notna() & value.isna()) | np.isinf(value)
    reasons[unreadable & reasons.isna()] = UNPARSEABLE_VALUE
    candidates = pd.DataFrame(
        {
            "subject_id": subject.astype("Int64"),
            "time": times,
            "code": frame["code"].astype("string"),
            "numeric_value": value.mask(np.isinf(value)),
            "text_value": _optional(frame, "text_value"),
            "unit": _optional(frame, "unit"),
            "source": source,
            "line": lines,
            "raw_time": frame["time"].astype(object),
            "raw_value": raw_value.astype(object),
        }
    )
    ranges = load_ranges(timeline.ranges if timeline is not None else None)
    return screen(candidates, reasons, ranges=ranges)


def read_events(
    path: str | Path, timeline: TimelineSpec | None = None, table: pd.DataFrame | None = None
) -> ReadResult:
    """Events to score from a file: MEDS, an event table, or FHIR; every refused row counted.

    Parameters
    ----------
    path : path
        A MEDS dataset folder (``data/*.parquet``) or one of its Parquet shards, a CSV or
        Parquet table with the MEDS columns, or FHIR R4: a ``.json`` Bundle or ``.ndjson``
        resources (read by :mod:`medpredict.timeline.readers.fhir`).
    timeline : TimelineSpec, optional
        The model's timeline section (its range overrides).
    table : DataFrame, optional
        The CSV or Parquet file at ``path``, when it has been read already.

    Raises
    ------
    DataError
        The path is missing or of no known kind, or its rows are not events.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        from medpredict.timeline.events import read_meds

        events = read_meds(path)
        return screen_events(events, str(path), timeline, first_line=1)
    if suffix in (".json", ".ndjson"):
        from medpredict.timeline.readers.fhir import read_fhir

        return read_fhir(path, load_ranges(timeline.ranges if timeline is not None else None))
    if table is None:
        from medpredict.data.loading import read_file

        table = read_file(path, what="event file")
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise DataError(
            f"{path} is not an event table: it lacks {', '.join(missing)} (columns: "
            f"{', '.join(map(str, table.columns[:12]))}{' ...' if table.shape[1] > 12 else ''}); "
            f"a timeline model reads events with the MEDS columns {', '.join(COLUMNS)}"
        )
    first = 1 if suffix in (".parquet", ".pq") else 2
    return screen_events(table, path.name, timeline, first_line=first)


def looks_like_events(path: str | Path, table: pd.DataFrame | None = None) -> bool:
    """Whether ``path`` (or its table) holds events rather than rows of patients.

    Examples
    --------
    >>> looks_like_events("bundle.json")
    True
    >>> looks_like_events("new.csv", pd.DataFrame(columns=["subject_id", "time", "code"]))
    True
    >>> looks_like_events("new.csv", pd.DataFrame(columns=["age", "sex"]))
    False
    """
    path = Path(path)
    if path.is_dir() or path.suffix.lower() in (".json", ".ndjson"):
        return True
    return table is not None and all(c in table.columns for c in REQUIRED)


def _optional(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(pd.NA, index=frame.index, dtype="string")
    return frame[column].astype("string")


def _lines(lines: np.ndarray) -> str:
    shown = ", ".join(str(v) for v in lines[:_NAMED])
    return shown + (f" and {len(lines) - _NAMED} more" if len(lines) > _NAMED else "")


def _subjects(subjects: list[Any]) -> str:
    shown = ", ".join(str(s) for s in subjects[:_NAMED])
    more = f" and {len(subjects) - _NAMED} more" if len(subjects) > _NAMED else ""
    return f"{len(subjects)} subject(s): {shown}{more}"


def prediction_samples(
    events: pd.DataFrame,
    timeline: TimelineSpec,
    index_time: IndexTimes | None = None,
) -> pd.DataFrame:
    """The samples to score: ``sample_id``, ``subject_id``, ``anchor_time``, ``index_time``.

    Parameters
    ----------
    events : DataFrame
        Events in the MEDS layout.
    timeline : TimelineSpec
        The model's timeline section (anchor and index offsets).
    index_time : optional
        By default each subject of ``events`` is scored at its anchor + each index
        offset, as in the study. Otherwise one time for every subject, a mapping or
        Series ``subject -> time``, or a frame with ``subject_id`` and ``index_time``.
        Text is read as ISO 8601 (:func:`parse_times`). An index time after the
        subject's last event is allowed: the prediction is made "now", from the events
        so far.

    Raises
    ------
    DataError
        Subjects without the anchor event, index times before the anchor or that are
        not times, a subject given that has no events, or the same subject and index
        time twice (each message names the subjects).
    """
    if list(events.columns) != list(COLUMNS):
        events = conform(events)
    anchor = timeline.index.anchor
    if index_time is None:
        samples = index_samples(events, timeline)
        unanchored = sorted(set(events["subject_id"]) - set(samples["subject_id"]))
        if unanchored:
            raise DataError(
                f"no {anchor} event, so no index time (anchor + "
                f"{', '.join(timeline.index.landmarks or [timeline.index.offset or '0h'])}), "
                f"for {_subjects(unanchored)}; send each subject's {anchor} event with the rest"
            )
        return samples
    wanted = _index_frame(events, index_time)
    known = set(events["subject_id"])
    absent = sorted(set(wanted["subject_id"]) - known)
    if absent:
        raise DataError(f"index times are given for subjects without events: {_subjects(absent)}")
    anchors = anchor_times(events, anchor)
    wanted["anchor_time"] = wanted["subject_id"].map(anchors).astype("datetime64[us]")
    unanchored = sorted(set(wanted.loc[wanted["anchor_time"].isna(), "subject_id"]))
    if unanchored:
        raise DataError(
            f"no {anchor} event (the model's anchor) for {_subjects(unanchored)}; a "
            "sample is placed relative to it"
        )
    early = wanted["index_time"] < wanted["anchor_time"]
    if early.any():
        raise DataError(
            f"index time before the {anchor} event for "
            f"{_subjects(sorted(set(wanted.loc[early, 'subject_id'])))}; the model predicts "
            "from its anchor on"
        )
    repeated = wanted.duplicated(["subject_id", "index_time"])
    if repeated.any():
        raise DataError(
            "the same index time is given twice for "
            f"{_subjects(sorted(set(wanted.loc[repeated, 'subject_id'])))}"
        )
    wanted = wanted.sort_values(["subject_id", "index_time"], kind="stable")
    wanted = wanted.reset_index(drop=True)
    wanted.insert(
        0, "sample_id",
        sample_ids(wanted["subject_id"], wanted["index_time"] - wanted["anchor_time"]),
    )
    return wanted[["sample_id", "subject_id", "anchor_time", "index_time"]]


def _index_frame(events: pd.DataFrame, index_time: IndexTimes) -> pd.DataFrame:
    if isinstance(index_time, pd.DataFrame):
        missing = [c for c in ("subject_id", "index_time") if c not in index_time.columns]
        if missing:
            raise DataError(
                f"the index-time table lacks column(s) {', '.join(missing)}; expected "
                "subject_id and index_time"
            )
        subjects, times = index_time["subject_id"], index_time["index_time"]
    elif isinstance(index_time, pd.Series):
        subjects, times = pd.Series(index_time.index), index_time
    elif isinstance(index_time, Mapping):
        subjects, times = pd.Series(list(index_time)), pd.Series(list(index_time.values()))
    else:
        subjects = pd.Series(events["subject_id"].unique())
        times = pd.Series([index_time] * len(subjects), dtype=object)
    subject = pd.to_numeric(subjects.reset_index(drop=True), errors="coerce")
    if subject.isna().any() or (subject != subject.round()).any():
        raise DataError("index times must name subjects by their whole-number subject_id")
    parsed, reasons = parse_times(pd.Series(times).reset_index(drop=True))
    unread = reasons.notna() | parsed.isna()
    if unread.any():
        raise DataError(
            "index time is not an ISO 8601 time (e.g. 2024-03-01T09:00) for "
            f"{_subjects(sorted(set(subject[unread].astype(np.int64))))}"
        )
    return pd.DataFrame({"subject_id": subject.astype(np.int64), "index_time": parsed})


def timeline_features(
    loaded: LoadedModel, events: pd.DataFrame, samples: pd.DataFrame
) -> pd.DataFrame:
    """The model's feature columns for ``samples``, after their keys.

    :func:`~medpredict.timeline.features.tabularise` with the codes behind the
    model's schema columns (:func:`~medpredict.timeline.table.codes_of`), keeping
    exactly those columns, in schema order, after ``sample_id``, ``subject_id`` and
    ``index_time``.

    Raises
    ------
    DataError
        The model is not a timeline model, or ``samples`` lacks a key column.
    """
    timeline = _timeline(loaded)
    missing = [c for c in KEY_COLUMNS if c not in samples.columns]
    if missing:
        raise DataError(
            f"samples lack column(s) {', '.join(missing)}; expected "
            f"{', '.join(KEY_COLUMNS)} (see prediction_samples)"
        )
    columns = loaded.metadata.feature_names
    timed, static = codes_of(columns)
    built = tabularise(events, samples, timeline, timed, static)
    keys = samples[list(KEY_COLUMNS)].reset_index(drop=True)
    return pd.concat([keys, built.features[columns]], axis=1)


def score_timeline(
    loaded: LoadedModel, events: pd.DataFrame, samples: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Risks of a timeline model for ``samples`` (default :func:`prediction_samples`).

    Returns ``sample_id``, ``subject_id``, ``index_time`` and what
    :func:`medpredict.predict.predict_frame` gives (``risk``, ``predicted_class``, one
    ``above_<threshold>`` flag per operating point), one row per sample in order.

    Examples
    --------
    >>> from medpredict.artifact import load_model
    >>> from medpredict.timeline.events import read_meds
    >>> model = load_model("runs/physionet2012/model")  # doctest: +SKIP
    >>> score_timeline(model, read_meds("new-stays/")).columns[:4].tolist()  # doctest: +SKIP
    ['sample_id', 'subject_id', 'index_time', 'risk']
    """
    if list(events.columns) != list(COLUMNS):
        events = conform(events)
    if samples is None:
        samples = prediction_samples(events, _timeline(loaded))
    features = timeline_features(loaded, events, samples)
    return predict_frame(loaded, features, keep=list(KEY_COLUMNS))
