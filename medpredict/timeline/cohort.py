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
from medpredict.timeline.events import (
    BIRTH,
    DEATH,
    HOSPITAL_DISCHARGE,
    ICU_DISCHARGE,
    STANDARD_CODES,
)
from medpredict.timeline.spec import TimelineSpec, duration


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
    anchors = events.loc[events["code"] == anchor].groupby("subject_id")["time"].min().dropna()
    _step(flow, f"with an {anchor} event", len(anchors), unit="subjects")
    offsets = timeline.index.offsets()
    samples = pd.DataFrame(
        {
            "subject_id": np.repeat(anchors.index.to_numpy(), len(offsets)),
            "anchor_time": np.repeat(anchors.to_numpy(), len(offsets)),
            "offset": np.tile(np.array(offsets, dtype="timedelta64[us]"), len(anchors)),
        }
    )
    samples["index_time"] = samples["anchor_time"] + samples["offset"]
    if len(offsets) > 1:
        flow.append(FlowStep(f"samples at {len(offsets)} index times", len(samples)))
    samples = _alive_at_index(events, samples, flow)
    samples = _with_outcome(events, samples, timeline, outcomes, target, flow)
    samples = _included(events, samples, timeline, flow)
    hours = (samples["offset"] / pd.Timedelta(hours=1)).map(lambda h: f"{h:g}")
    samples.insert(0, "sample_id", samples["subject_id"].astype(str) + "@" + hours + "h")
    samples = samples.drop(columns="offset").reset_index(drop=True)
    if samples.empty:
        raise DataError(
            "the timeline cohort is empty: "
            + "; ".join(f"{s.label}: {s.remaining} {s.unit}" for s in flow)
        )
    return TimelineCohort(samples, flow)


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
        observation = duration(timeline.observation)
        timed = events.loc[events["time"].notna() & ~events["code"].isin(STANDARD_CODES),
                           ["subject_id", "time"]]
        merged = samples.reset_index()[["index", "subject_id", "index_time"]].merge(
            timed, on="subject_id"
        )
        seen = merged[(merged["time"] <= merged["index_time"])
                      & (merged["time"] > merged["index_time"] - observation)]
        counts = seen.groupby("index").size().reindex(samples.index, fill_value=0)
        keep = counts >= rules.min_events
        samples = samples[keep.to_numpy()]
        _step(flow, f"with at least {rules.min_events} event(s) in the "
              f"{timeline.observation} observation window", len(samples))
    return samples


def _age(events, samples, age_code) -> pd.Series:
    births = events.loc[events["code"] == BIRTH].groupby("subject_id")["time"].min()
    from_birth = pd.Series(np.nan, index=samples.index)
    if len(births):
        birth = samples["subject_id"].map(births)
        from_birth = (samples["index_time"] - birth) / pd.Timedelta(days=365.25)
    static = events.loc[(events["code"] == age_code) & events["time"].isna()]
    stated = samples["subject_id"].map(static.groupby("subject_id")["numeric_value"].first())
    return from_birth.fillna(stated.astype("float64"))
