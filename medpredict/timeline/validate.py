"""Screening events as they are read: every rejected row is kept, with its reason.

A reader parses its source into candidate events and marks what it could not parse
(:data:`UNPARSEABLE_TIME`, ...); :func:`screen` then applies the checks that are the same
for every source and splits the rows into accepted events and a quarantine table. Rows
in = events stored + rows quarantined, always (:class:`ReadResult` refuses anything
else), and :meth:`ReadResult.summary` prints the counts by reason.

The checks, in order (a row gets the first reason that applies):

- no subject id; a time that is not a time, or not a real date (2026-02-30 is refused,
  never rolled over to 2026-03-02); a value that is not a number;
- an unknown code (when the source declares its codes);
- a sentinel value (e.g. -1 for "missing" in the PhysioNet 2012 files);
- a unit other than the one the range table expects for the code;
- a physiologically impossible value (:func:`load_ranges`, overridable);
- an event before the subject's birth or after their death;
- a duplicate of an earlier event (same subject, time, code and value).

Examples
--------
>>> import pandas as pd
>>> candidates = pd.DataFrame({
...     "subject_id": [1, 1, 1], "time": pd.to_datetime(["2020-01-01"] * 3),
...     "code": ["HR", "HR", "HR"], "numeric_value": [80.0, 80.0, 900.0],
...     "source": "demo.csv", "line": [2, 3, 4]})
>>> result = screen(candidates, pd.Series([None] * 3, dtype=object))
>>> len(result.events), result.quarantine["reason"].tolist()
(1, ['duplicate event', 'implausible value'])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd
import yaml

from medpredict.data.errors import DataError
from medpredict.timeline.events import BIRTH, DEATH, conform, empty_events

MISSING_SUBJECT = "missing subject id"
UNPARSEABLE_TIME = "unparseable time"
IMPOSSIBLE_TIME = "impossible time"
UNPARSEABLE_VALUE = "unparseable value"
UNKNOWN_CODE = "unknown code"
SENTINEL = "sentinel value"
UNIT_MISMATCH = "unit mismatch"
IMPLAUSIBLE = "implausible value"
BEFORE_BIRTH = "before birth"
AFTER_DEATH = "after death"
DUPLICATE = "duplicate event"
INVALID_RESOURCE = "invalid resource"

REASONS = {
    MISSING_SUBJECT: "the row names no subject",
    UNPARSEABLE_TIME: "the time is not in the expected format",
    IMPOSSIBLE_TIME: "the time has the expected format but is not a real date or time",
    UNPARSEABLE_VALUE: "the value is neither a number nor allowed as text for the code",
    UNKNOWN_CODE: "the code is not one the source defines",
    SENTINEL: "the value is the source's marker for 'not measured'",
    UNIT_MISMATCH: "the unit differs from the unit the range table expects for the code",
    IMPLAUSIBLE: "the value is outside the physiologically possible range for the code",
    BEFORE_BIRTH: "the event is dated before the subject's birth",
    AFTER_DEATH: "the event is dated after the subject's death",
    DUPLICATE: "the same subject, time, code and value appear on an earlier row",
    INVALID_RESOURCE: "the FHIR resource does not validate against the FHIR R4 models, or is "
    "marked entered-in-error",
}
"""Every quarantine reason with what it means."""

QUARANTINE_COLUMNS = ("source", "line", "subject_id", "time", "code", "value", "reason")


@dataclass(frozen=True)
class Range:
    """The physiologically possible values of one code, and its expected unit."""

    min: float | None = None
    max: float | None = None
    unit: str | None = None


def load_ranges(overrides: Mapping[str, Mapping[str, object]] | None = None) -> dict[str, Range]:
    """The range table (``ranges.yaml`` shipped with medpredict) with ``overrides`` applied.

    An override replaces the whole entry of its code, e.g. ``{"Temp": {"min": 25,
    "max": 45, "unit": "degC"}}``; an empty mapping removes the limits of a code.

    Examples
    --------
    >>> load_ranges()["HR"]
    Range(min=1, max=300, unit='bpm')
    >>> load_ranges({"HR": {"min": 20, "max": 250}})["HR"].max
    250
    """
    text = resources.files("medpredict.timeline").joinpath("ranges.yaml").read_text()
    table = dict(yaml.safe_load(text))
    table.update(overrides or {})
    ranges = {}
    for code, entry in table.items():
        unknown = set(entry) - {"min", "max", "unit"}
        if unknown:
            raise DataError(
                f"range of code {code!r} has unknown key(s) {sorted(unknown)}; expected "
                "min, max and unit"
            )
        ranges[str(code)] = Range(entry.get("min"), entry.get("max"), entry.get("unit"))
    return ranges


@dataclass
class ReadResult:
    """Events read from a source, the quarantined rows and the source's row count.

    Attributes
    ----------
    events : DataFrame
        Accepted events in the MEDS layout (:mod:`medpredict.timeline.events`).
    quarantine : DataFrame
        Rejected rows: ``source``, ``line`` (1-based, in the source file), ``subject_id``,
        ``time`` and ``value`` as written, ``code`` and ``reason``.
    rows_in : int
        Rows read from the source; always ``len(events) + len(quarantine)``.
    outcomes : DataFrame or None
        Per-subject outcomes that came with the source (e.g. the challenge's outcomes file).
    subjects : DataFrame or None
        How the source's patient ids became ``subject_id``, for sources whose ids are not
        integers (FHIR: ``fhir_id``, ``subject_id``).
    """

    events: pd.DataFrame
    quarantine: pd.DataFrame
    rows_in: int
    outcomes: pd.DataFrame | None = None
    subjects: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        stored = len(self.events) + len(self.quarantine)
        if stored != self.rows_in:
            raise DataError(
                f"{self.rows_in} rows read but {len(self.events)} stored and "
                f"{len(self.quarantine)} quarantined: rows were lost"
            )

    def summary(self) -> str:
        """``rows in = stored + quarantined``, then the quarantine counts by reason."""
        lines = [
            f"rows in {self.rows_in:,} = events stored {len(self.events):,} + rows "
            f"quarantined {len(self.quarantine):,}"
        ]
        for reason, count in self.quarantine["reason"].value_counts().items():
            lines.append(f"  {reason}: {count:,}")
        return "\n".join(lines)


def combine_results(parts: list[ReadResult]) -> ReadResult:
    """One result from the results of reading a source in parts (e.g. batches of files)."""
    if len(parts) == 1:
        return parts[0]
    return ReadResult(
        pd.concat([p.events for p in parts], ignore_index=True),
        pd.concat([p.quarantine for p in parts], ignore_index=True),
        sum(p.rows_in for p in parts),
    )


def empty_quarantine() -> pd.DataFrame:
    """A quarantine table with no rows."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in QUARANTINE_COLUMNS})


def screen(
    candidates: pd.DataFrame,
    reasons: pd.Series,
    ranges: Mapping[str, Range] | None = None,
    codes: Iterable[str] | None = None,
    sentinels: Iterable[float] = (),
    outcomes: pd.DataFrame | None = None,
) -> ReadResult:
    """Split ``candidates`` into accepted events and quarantined rows.

    Parameters
    ----------
    candidates : DataFrame
        Parsed rows: the MEDS columns (``time`` NaT where unparseable or static) plus
        ``source`` and ``line`` naming where each row came from, and optionally
        ``raw_time`` / ``raw_value`` (the text as written, kept in the quarantine).
    reasons : Series
        The reader's reason for each row it already rejected (None for the others),
        aligned with ``candidates``.
    ranges : mapping, optional
        Range table; default :func:`load_ranges`.
    codes : iterable of str, optional
        The codes the source defines; others are quarantined as unknown.
    sentinels : iterable of float
        Values that mean "not measured" in this source.
    outcomes : DataFrame, optional
        Passed through to the result.
    """
    ranges = load_ranges() if ranges is None else ranges
    candidates = candidates.reset_index(drop=True)
    reasons = reasons.reset_index(drop=True).astype(object)
    open_ = reasons.isna().to_numpy()

    def mark(mask: np.ndarray, reason: str) -> None:
        nonlocal open_
        hit = open_ & np.asarray(mask, dtype=bool)
        reasons[hit] = reason
        open_ = open_ & ~hit

    code = candidates["code"].astype(str)
    value = candidates["numeric_value"].astype("float64").to_numpy()
    mark(candidates["subject_id"].isna().to_numpy(), MISSING_SUBJECT)
    if codes is not None:
        mark(~code.isin(set(codes)).to_numpy(), UNKNOWN_CODE)
    sentinel_values = list(sentinels)
    if sentinel_values:
        mark(np.isin(value, sentinel_values), SENTINEL)
    _mark_ranges(candidates, code, value, ranges, mark)
    _mark_life(candidates, code, open_, mark)
    key = candidates[["subject_id", "time", "code", "numeric_value"]].copy()
    if "text_value" in candidates:
        key["text_value"] = candidates["text_value"]
    duplicated = np.zeros(len(candidates), dtype=bool)
    duplicated[open_] = key[open_].duplicated(keep="first").to_numpy()
    mark(duplicated, DUPLICATE)

    events = conform(candidates[open_]) if open_.any() else empty_events()
    rejected = candidates[~open_]
    quarantine = pd.DataFrame(
        {
            "source": rejected["source"].astype(str).to_numpy(),
            "line": rejected["line"].to_numpy(),
            "subject_id": rejected["subject_id"].to_numpy(),
            "time": _as_written(rejected, "raw_time", "time"),
            "code": rejected["code"].to_numpy(),
            "value": _as_written(rejected, "raw_value", "numeric_value"),
            "reason": reasons[~open_].to_numpy(),
        }
    )
    return ReadResult(events, quarantine, len(candidates), outcomes)


def _as_written(rows: pd.DataFrame, raw: str, parsed: str) -> np.ndarray:
    column = rows[raw] if raw in rows else rows[parsed]
    return column.astype(object).where(column.notna(), None).astype(str).to_numpy()


def _mark_ranges(candidates, code, value, ranges, mark) -> None:
    if not ranges:
        return
    table = pd.DataFrame(
        {"code": list(ranges), "low": [r.min for r in ranges.values()],
         "high": [r.max for r in ranges.values()], "expected": [r.unit for r in ranges.values()]}
    )
    looked_up = pd.DataFrame({"code": code.to_numpy()}).merge(table, on="code", how="left")
    if "unit" in candidates:
        unit = candidates["unit"].astype("string")
        expected = looked_up["expected"].astype("string")
        differs = (unit.notna() & expected.notna() & (unit != expected)).fillna(False)
        mark(differs.to_numpy(dtype=bool), UNIT_MISMATCH)
    low = looked_up["low"].astype("float64").to_numpy()
    high = looked_up["high"].astype("float64").to_numpy()
    with np.errstate(invalid="ignore"):
        outside = (value < low) | (value > high)
    mark(np.nan_to_num(outside, nan=0).astype(bool), IMPLAUSIBLE)


def times_with_reasons(text: pd.Series, shaped: np.ndarray) -> tuple[pd.Series, pd.Series]:
    """ISO 8601 ``text`` as naive UTC ``datetime64[us]``, and per value None or its reason.

    Only values where ``shaped`` (the source's accepted time formats) are parsed: the
    others are :data:`UNPARSEABLE_TIME`; a shaped value that is no real moment
    (30 February) is :data:`IMPOSSIBLE_TIME`. Times with a UTC offset become UTC.

    Examples
    --------
    >>> text = pd.Series(["2020-01-01T08:00:00+02:00", "2020-02-30", "noon"])
    >>> times, reasons = times_with_reasons(text, np.array([True, True, False]))
    >>> [str(t) for t in times], reasons.tolist()
    (['2020-01-01 06:00:00', 'NaT', 'NaT'], [None, 'impossible time', 'unparseable time'])
    """
    time = pd.to_datetime(text.where(shaped), format="ISO8601", utc=True, errors="coerce")
    time = time.dt.tz_localize(None).astype("datetime64[us]")
    reason = np.full(len(text), None, dtype=object)
    reason[~shaped] = UNPARSEABLE_TIME
    reason[shaped & time.isna().to_numpy()] = IMPOSSIBLE_TIME
    reason = pd.Series(reason, index=text.index, dtype=object)
    return time.where(reason.isna()), reason


def moment_of(subject: pd.Series, moments: pd.Series) -> pd.Series:
    """Each row's subject's moment from ``moments`` (by subject id; NaT where none)."""
    if moments.empty:
        return pd.Series(pd.NaT, index=subject.index, dtype="datetime64[us]")
    return subject.map(moments)


def _mark_life(candidates, code, open_, mark) -> None:
    """Quarantine events before the subject's birth or after their death."""
    accepted = candidates[open_]
    life = {}
    for marker in (BIRTH, DEATH):
        moments = accepted.loc[code[open_] == marker, ["subject_id", "time"]]
        life[marker] = moments.groupby("subject_id")["time"].min()
    if life[BIRTH].empty and life[DEATH].empty:
        return
    subject = candidates["subject_id"]
    time = candidates["time"]
    birth, death = (moment_of(subject, life[marker]) for marker in (BIRTH, DEATH))
    mark(((time < birth) & (code != BIRTH)).fillna(False).to_numpy(dtype=bool), BEFORE_BIRTH)
    after = (time.dt.normalize() > death) & (code != DEATH)
    mark(after.fillna(False).to_numpy(dtype=bool), AFTER_DEATH)
