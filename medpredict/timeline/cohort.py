"""From events to a cohort: one sample per subject and index time, its outcome, its exclusions.

Every step that removes samples is counted in the cohort flow (``FlowStep``), which the
report draws as a TRIPOD-style flow diagram; nothing leaves the cohort without a count and
a reason. The steps, in order:

1. subjects in the source;
2. subjects with the anchor event (e.g. ``ICU_ADMISSION``); samples at anchor + each
   index offset;
3. samples whose subject died or was discharged before the index time are removed;
4. the outcome: a column of the source's outcome table (samples without one are removed),
   or an event code within ``(index + gap, index + gap + horizon]`` (samples with the
   outcome at or before the index time, and samples whose timeline ends before the
   horizon without the outcome, are removed);
5. the inclusion rules: age, then the fewest events in the observation window.

Examples
--------
>>> import pandas as pd
>>> from medpredict.timeline.spec import TimelineSpec
>>> events = pd.DataFrame({
...     "subject_id": [1, 1, 2, 3], "code": ["ICU_ADMISSION", "HR", "ICU_ADMISSION", "HR"],
...     "time": pd.to_datetime(["2000-01-01 00:00", "2000-01-01 05:00", "2000-01-01 00:00",
...                          "2000-01-01 00:00"]),
...     "numeric_value": [None, 80.0, None, 70.0]})
>>> outcomes = pd.DataFrame({"subject_id": [1, 2, 3], "died": [0, 1, 0]})
>>> spec = TimelineSpec.model_validate({"index": {"offset": "6h"}, "observation": "6h",
...     "windows": ["6h"], "outcome": {"column": "died"}})
>>> cohort = define_cohort(events, spec, outcomes, target="died")
>>> cohort.samples[["subject_id", "died"]].to_dict("list")
{'subject_id': [1], 'died': [0]}
>>> [(s.label, s.remaining) for s in cohort.flow]  # doctest: +NORMALIZE_WHITESPACE
[('subjects in the source', 3), ('with an ICU_ADMISSION event', 2),
 ('with a recorded died', 2), ('with at least 1 event(s) in the 6h observation window', 1)]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medpredict.data.errors import DataError
from medpredict.optional import require
from medpredict.timeline.events import (
    BIRTH,
    DEATH,
    HOSPITAL_DISCHARGE,
    ICU_DISCHARGE,
    STANDARD_CODES,
)
from medpredict.timeline.spec import TimelineSpec, duration
from medpredict.timeline.validate import moment_of


@dataclass(frozen=True)
class FlowStep:
    """One box of the cohort flow: what remains after a step, and what it removed."""

    label: str
    remaining: int
    excluded: int = 0
    unit: str = "samples"


@dataclass
class TimelineCohort:
    """The samples of a timeline study and the flow that produced them.

    ``samples`` has ``sample_id`` (``<subject_id>@<hours after anchor>h``), ``subject_id``,
    ``anchor_time``, ``index_time``, the outcome column and, for an outcome code,
    ``outcome_time`` (when the outcome occurred within the horizon, else NaT).
    """

    samples: pd.DataFrame
    flow: list[FlowStep] = field(default_factory=list)


def define_cohort(
    events: pd.DataFrame,
    timeline: TimelineSpec,
    outcomes: pd.DataFrame | None = None,
    target: str = "outcome",
) -> TimelineCohort:
    """Samples, outcomes and the cohort flow of ``timeline`` over ``events``.

    Raises
    ------
    DataError
        The outcome column is not in the outcome table (or there is none), or no sample
        is left (the message gives the flow so far).
    """
    flow: list[FlowStep] = []
    subjects = events["subject_id"].unique()
    flow.append(FlowStep("subjects in the source", len(subjects), unit="subjects"))
    anchor = timeline.index.anchor
    samples = index_samples(events, timeline)
    _step(flow, f"with an {anchor} event", samples["subject_id"].nunique(), unit="subjects")
    offsets = timeline.index.offsets()
    if len(offsets) > 1:
        flow.append(FlowStep(f"samples at {len(offsets)} index times", len(samples)))
    samples = _alive_at_index(events, samples, flow)
    samples = _with_outcome(events, samples, timeline, outcomes, target, flow)
    samples = _included(events, samples, timeline, flow)
    samples = samples.reset_index(drop=True)
    if samples.empty:
        raise DataError(
            "the timeline cohort is empty: "
            + "; ".join(f"{s.label}: {s.remaining} {s.unit}" for s in flow)
        )
    return TimelineCohort(samples, flow)


def anchor_times(events: pd.DataFrame, anchor: str) -> pd.Series:
    """Each subject's first ``anchor`` event time, indexed by ``subject_id`` (sorted).

    Subjects without a timed ``anchor`` event are absent.
    """
    return events.loc[events["code"] == anchor].groupby("subject_id")["time"].min().dropna()


def sample_ids(subject_id: pd.Series, after_anchor: pd.Series) -> pd.Series:
    """``<subject_id>@<hours after the anchor>h``, the ``sample_id`` of each sample."""
    hours = (after_anchor / pd.Timedelta(hours=1)).map(lambda h: f"{h:g}").astype(str)
    return subject_id.astype(str) + "@" + hours + "h"


def index_samples(events: pd.DataFrame, timeline: TimelineSpec) -> pd.DataFrame:
    """The samples of ``timeline`` before any outcome or exclusion: anchor + each offset.

    One row per subject with an anchor event and per index offset (subjects in order,
    then offsets): ``sample_id``, ``subject_id``, ``anchor_time`` and ``index_time``.
    :func:`define_cohort` starts from these samples; scoring new patients uses them
    as they are, since it needs no outcome.

    Examples
    --------
    >>> from medpredict.timeline.spec import TimelineSpec
    >>> events = pd.DataFrame({"subject_id": [7, 7], "code": ["ICU_ADMISSION", "HR"],
    ...     "time": pd.to_datetime(["2000-01-01 00:00", "2000-01-01 05:00"])})
    >>> spec = TimelineSpec.model_validate({"index": {"landmarks": ["6h", "12h"]},
    ...     "observation": "12h", "windows": ["6h"], "outcome": {"column": "died"}})
    >>> samples = index_samples(events, spec)
    >>> samples["sample_id"].tolist(), samples["index_time"].astype(str).tolist()
    (['7@6h', '7@12h'], ['2000-01-01 06:00:00', '2000-01-01 12:00:00'])
    """
    anchors = anchor_times(events, timeline.index.anchor)
    offsets = timeline.index.offsets()
    samples = pd.DataFrame(
        {
            "subject_id": np.repeat(anchors.index.to_numpy(), len(offsets)),
            "anchor_time": np.repeat(anchors.to_numpy(), len(offsets)),
            "offset": np.tile(np.array(offsets, dtype="timedelta64[us]"), len(anchors)),
        }
    )
    samples["index_time"] = samples["anchor_time"] + samples["offset"]
    samples.insert(0, "sample_id", sample_ids(samples["subject_id"], samples["offset"]))
    return samples.drop(columns="offset")


def _step(flow: list[FlowStep], label: str, remaining: int, unit: str = "samples") -> None:
    before = flow[-1].remaining if flow else remaining
    flow.append(FlowStep(label, remaining, before - remaining, unit))


def _first_after(events, samples, codes) -> pd.Series:
    """Per sample, the first event with one of ``codes`` at or after its anchor."""
    hits = events.loc[events["code"].isin(codes), ["subject_id", "time"]].dropna()
    keyed = samples.reset_index()[["index", "subject_id", "anchor_time"]]
    merged = keyed.merge(hits, on="subject_id")
    merged = merged[merged["time"] >= merged["anchor_time"]]
    return merged.groupby("index")["time"].min().reindex(samples.index)


def _alive_at_index(events, samples, flow) -> pd.DataFrame:
    ended = _first_after(events, samples, [DEATH, ICU_DISCHARGE, HOSPITAL_DISCHARGE])
    keep = ~(ended < samples["index_time"]).fillna(False)
    if (~keep).any():
        _step(flow, "in care at the index time (not died or discharged before)", int(keep.sum()))
    return samples[keep.to_numpy()]


def _with_outcome(events, samples, timeline, outcomes, target, flow) -> pd.DataFrame:
    outcome = timeline.outcome
    if outcome.column is not None:
        if outcomes is None or outcome.column not in outcomes.columns:
            have = [] if outcomes is None else [c for c in outcomes.columns if c != "subject_id"]
            raise DataError(
                f"timeline.outcome.column {outcome.column!r} is not in the source's outcome "
                f"table (columns: {', '.join(have) or 'no outcome table was given'})"
            )
        labels = outcomes.drop_duplicates("subject_id").set_index("subject_id")[outcome.column]
        samples = samples.assign(**{target: samples["subject_id"].map(labels)})
        keep = samples[target].notna()
        _step(flow, f"with a recorded {outcome.column}", int(keep.sum()))
        return samples[keep.to_numpy()]
    start = samples["index_time"] + duration(timeline.gap)
    end = start + duration(timeline.horizon)
    first = _first_after(events, samples, [outcome.code])
    before = (first <= samples["index_time"]).fillna(False)
    samples, first, end = samples[~before], first[~before], end[~before]
    _step(flow, f"without {outcome.code} at or before the index time", len(samples))
    label = ((first > samples["index_time"]) & (first <= end)).fillna(False)
    timed = events.loc[events["time"].notna()]
    last = samples["subject_id"].map(timed.groupby("subject_id")["time"].max())
    followed = label | (last >= end)
    samples = samples.assign(**{target: label.astype(int), "outcome_time": first.where(label)})
    samples = samples[followed.to_numpy()]
    _step(flow, f"followed to the end of the {timeline.horizon} horizon or the outcome",
          len(samples))
    return samples


def _included(events, samples, timeline, flow) -> pd.DataFrame:
    rules = timeline.inclusion
    if rules.min_age is not None or rules.max_age is not None:
        age = _age(events, samples, rules.age_code)
        known = age.notna()
        if (~known).any():
            samples, age = samples[known.to_numpy()], age[known]
            _step(flow, "with a known age", len(samples))
        if rules.min_age is not None:
            keep = age >= rules.min_age
            samples, age = samples[keep.to_numpy()], age[keep]
            _step(flow, f"aged at least {rules.min_age:g}", len(samples))
        if rules.max_age is not None:
            keep = age <= rules.max_age
            samples = samples[keep.to_numpy()]
            _step(flow, f"aged at most {rules.max_age:g}", len(samples))
    if rules.min_events > 0:
        counts = events_in_window(events, samples, duration(timeline.observation))
        samples = samples[counts >= rules.min_events]
        _step(flow, f"with at least {rules.min_events} event(s) in the "
              f"{timeline.observation} observation window", len(samples))
    return samples


def events_in_window(
    events: pd.DataFrame, samples: pd.DataFrame, observation: pd.Timedelta
) -> np.ndarray:
    """Per sample, its subject's timed events (standard codes aside) in the window."""
    duckdb = require("duckdb", extra="timeline")
    keyed = pd.DataFrame(
        {
            "sample": np.arange(len(samples)),
            "subject_id": samples["subject_id"].to_numpy(dtype=np.int64),
            "index_time": samples["index_time"].to_numpy(dtype="datetime64[us]"),
        }
    )
    connection = duckdb.connect(config={"threads": 2, "memory_limit": "1GB"})
    try:
        connection.register("samples", keyed)
        connection.register("events", events[["subject_id", "time", "code"]])
        connection.register("standard", pd.DataFrame({"code": list(STANDARD_CODES)}))
        counted = connection.execute(
            f"""
            SELECT s.sample, count(*) AS n FROM events e JOIN samples s USING (subject_id)
            WHERE e.time <= s.index_time
              AND date_diff('microsecond', e.time, s.index_time) < {observation.value // 1000}
              AND e.code NOT IN (SELECT code FROM standard)
            GROUP BY s.sample
            """
        ).fetchnumpy()
    finally:
        connection.close()
    counts = np.zeros(len(samples), dtype=np.int64)
    counts[counted["sample"]] = counted["n"]
    return counts


def _age(events, samples, age_code) -> pd.Series:
    births = events.loc[events["code"] == BIRTH].groupby("subject_id")["time"].min()
    birth = moment_of(samples["subject_id"], births)
    from_birth = (samples["index_time"] - birth) / pd.Timedelta(days=365.25)
    static = events.loc[(events["code"] == age_code) & events["time"].isna()]
    stated = samples["subject_id"].map(static.groupby("subject_id")["numeric_value"].first())
    return from_birth.fillna(stated.astype("float64"))
