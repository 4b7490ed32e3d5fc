"""Check incoming readings row by row; every rejected row gets a reason, none vanish.

:func:`validate_readings` takes readings in the tidy long form (``person``, ``signal``,
``time``, ``value`` and optionally ``row``, the 1-based row in the source file) and
splits them into rows to store and rows to quarantine. It handles explicitly:

* **missing fields**, **unknown signals**, **non-numeric values**, **unparseable
  timestamps** -> quarantined with the field named;
* **impossible values** (outside :data:`~medpredict.wearables.catalogue.SIGNALS`'
  plausible range, e.g. heart rate 0 or 300, SpO2 above 100 %) -> quarantined;
* **mixed time zones**: timestamps carrying an offset (``+02:00``, ``Z``) are converted
  to UTC and keep their own offset; naive timestamps are read as wall-clock time in
  ``timezone``; a naive time that does not exist or is ambiguous there (clock change)
  is quarantined rather than guessed;
* **duplicate timestamps** for the same person and signal: the first row in file order
  is kept, later ones are quarantined as an exact duplicate or as a conflicting value;
* **out-of-order rows** are counted and sorted, not rejected.

Examples
--------
>>> import pandas as pd
>>> raw = pd.DataFrame({"person": ["p1"] * 3, "signal": ["heart_rate"] * 3,
...                     "time": ["2020-03-10 00:00:10", "2020-03-10 00:00:05", "bad"],
...                     "value": [300, 61, 62]})
>>> result = validate_readings(raw)
>>> result.accepted["value"].tolist(), sorted(result.quarantine["reason"].str[:10])
([61.0], ['impossible', 'unparseabl'])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from medpredict.data.errors import DataError
from medpredict.wearables.catalogue import SIGNALS

REQUIRED = ("person", "signal", "time", "value")
_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"
_QUICK_FORMAT = "%Y-%m-%d %H:%M:%S"
QUARANTINE_COLUMNS = ["person", "signal", "time", "value", "reason", "source", "row"]


@dataclass
class ValidationResult:
    """Rows to store, rows quarantined with a reason, and what was done to the rest.

    ``accepted`` has columns ``person``, ``signal``, ``time_utc`` (naive UTC),
    ``utc_offset_min`` (the reading's offset from UTC, minutes) and ``value``, sorted
    by person, signal and time. ``quarantine`` has the raw ``time`` and ``value`` as
    text, the ``reason`` and the source ``row``.
    """

    accepted: pd.DataFrame
    quarantine: pd.DataFrame
    n_input: int
    n_reordered: int = 0
    offsets_seen: list[int] = field(default_factory=list)

    def reasons(self) -> dict[str, int]:
        """Quarantined-row counts by reason."""
        return self.quarantine["reason"].value_counts().to_dict()


def _check_columns(frame: pd.DataFrame, source: str) -> None:
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: readings need columns {list(REQUIRED)}; missing {missing} "
            f"(found {list(frame.columns)})"
        )


def check_timezone(timezone: str) -> None:
    """Raise :class:`DataError` unless ``timezone`` names a time zone (e.g. ``"Europe/Berlin"``)."""
    try:
        pd.Timestamp("2020-01-01").tz_localize(timezone)
    except (LookupError, ValueError, TypeError):
        raise DataError(
            f"unknown time zone {timezone!r}: expected an IANA name such as 'UTC' or "
            "'Europe/Berlin'"
        ) from None


def parse_times(
    raw: pd.Series, timezone: str = "UTC", rows: np.ndarray | None = None
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Parse timestamps to naive UTC, each row's UTC offset in minutes, and a reason.

    Dates are read strictly: a day that does not exist (``2026-02-30``) is rejected,
    never rolled over into the next month.

    Parameters
    ----------
    raw : timestamps as text (ISO 8601, with or without an offset) or datetimes.
    timezone : IANA zone for timestamps without an offset, e.g. ``"Europe/Berlin"``.
    rows : source row numbers, named in the reason for an impossible date.

    Returns
    -------
    utc : datetime64[us] Series (NaT where the row failed).
    offset : int Series of minutes east of UTC (0 where the row failed).
    reason : object Series, ``None`` for good rows, else why the timestamp was rejected.

    Examples
    --------
    >>> utc, off, why = parse_times(pd.Series(["2020-03-10 08:00:00+02:00",
    ...                                        "2020-03-10 08:00:00"]), "UTC")
    >>> [str(t) for t in utc], off.tolist()
    (['2020-03-10 06:00:00', '2020-03-10 08:00:00'], [120, 0])
    """
    check_timezone(timezone)
    index = raw.index
    reason = pd.Series(None, index=index, dtype=object)
    text = None
    if pd.api.types.is_datetime64_any_dtype(raw):
        aware = pd.Series(False, index=index)
        naive_local = raw.dt.tz_localize(None) if raw.dt.tz is not None else raw
        if raw.dt.tz is not None:
            utc = raw.dt.tz_convert("UTC").dt.tz_localize(None)
            offset = (naive_local - utc).dt.total_seconds().fillna(0) // 60
            return utc.astype("datetime64[us]"), offset.astype(int), reason
    else:
        text = raw if pd.api.types.is_string_dtype(raw) else raw.astype(str)
        quick = _strptime_strict(pa.array(text, type=pa.string()))
        naive_local = pd.Series(quick.to_numpy(zero_copy_only=False), index=index)
        rest = (naive_local.isna() & text.notna()).to_numpy()
        aware = pd.Series(False, index=index)
        if rest.any():
            aware[rest] = text[rest].str.contains(_OFFSET, regex=True, na=False)
            naive_text = text[rest & ~aware.to_numpy()]
            parsed = pd.to_datetime(naive_text, format="ISO8601", errors="coerce")
            retry = parsed.isna() & naive_text.notna()
            if retry.any():
                squeezed = naive_text[retry].str.replace(r"\s+", " ", regex=True)
                parsed[retry] = pd.to_datetime(squeezed, format="mixed", errors="coerce")
            naive_local[naive_text.index] = parsed.astype("datetime64[us]")
    utc = pd.Series(pd.NaT, index=index, dtype="datetime64[us]")
    offset = pd.Series(0, index=index, dtype=int)
    naive_rows = ~aware & naive_local.notna()
    if naive_rows.any():
        local = pd.DatetimeIndex(naive_local[naive_rows])
        if timezone.upper() == "UTC":
            utc[naive_rows] = local
        else:
            zoned = local.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
            as_utc = zoned.tz_convert("UTC").tz_localize(None)
            utc[naive_rows] = as_utc
            shift = (local - as_utc).total_seconds().to_numpy()
            offset[naive_rows] = np.where(np.isfinite(shift), shift // 60, 0).astype(int)
            clock_change = naive_rows & utc.isna()
            reason[clock_change] = (
                f"local time does not exist or is ambiguous in {timezone} (clock change)"
            )
    if aware.any():
        text_aware = text[aware]
        utc[aware] = (
            pd.to_datetime(text_aware, format="ISO8601", utc=True, errors="coerce")
            .dt.tz_localize(None)
            .astype("datetime64[us]")
        )
        parts = text_aware.str.extract(r"([+-])(\d{2}):?(\d{2})$")
        sign = np.where(parts[0] == "-", -1, 1)
        minutes = parts[1].astype(float).fillna(0) * 60 + parts[2].astype(float).fillna(0)
        offset[aware] = (sign * minutes).astype(int)
    unparsed = utc.isna() & reason.isna()
    reason[unparsed] = "unparseable timestamp: expected ISO 8601 date-time"
    if text is not None and unparsed.any():
        for k in np.flatnonzero(unparsed.to_numpy() & _impossible_dates(text)):
            where = f" (row {rows[k]})" if rows is not None else ""
            reason.iloc[k] = (
                f"impossible calendar date {text.iloc[k]!r}{where}: no such day in that month"
            )
    return utc, offset, reason


def _strptime_strict(text: pa.Array) -> pa.Array:
    """``_QUICK_FORMAT`` timestamps; null where the text is not exactly a real date-time.

    pyarrow's strptime rolls impossible dates over (``02-30`` -> ``03-02``); a value
    that does not format back to its own text is left to the strict pandas parser.
    """
    quick = pc.strptime(text, format=_QUICK_FORMAT, unit="us", error_is_null=True)
    back = pc.strftime(quick.cast(pa.timestamp("s")), format=_QUICK_FORMAT)
    rolled = pc.fill_null(pc.not_equal(back, text), False)
    return pc.if_else(rolled, pa.scalar(None, quick.type), quick)


def _impossible_dates(text: pd.Series) -> np.ndarray:
    """Rows whose text starts with a ``YYYY-MM-DD`` date that is not on the calendar."""
    parts = text.str.extract(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})").astype(float)
    dated = parts.notna().all(axis=1).to_numpy()
    real = pd.to_datetime(
        parts.set_axis(["year", "month", "day"], axis=1).fillna(2000), errors="coerce"
    )
    return dated & real.isna().to_numpy()


def _codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (-1 for missing or blank) and the distinct values, as text."""
    codes, uniques = pd.factorize(column)
    uniques = np.asarray(uniques).astype(str)
    blank = np.flatnonzero(np.char.str_len(np.char.strip(uniques)) == 0)
    if blank.size:
        codes = np.where(np.isin(codes, blank), -1, codes)
    return codes, uniques


def validate_readings(
    frame: pd.DataFrame, timezone: str = "UTC", source: str = "readings"
) -> ValidationResult:
    """Split long-form readings into accepted and quarantined rows.

    Parameters
    ----------
    frame : DataFrame with ``person``, ``signal``, ``time``, ``value``; optional ``row``
        (source row number) and ``reason`` (set by a reader that could not parse the row).
    timezone : IANA zone used for timestamps that carry no UTC offset.
    source : name recorded with every quarantined row (e.g. the file name).

    Returns
    -------
    ValidationResult
    """
    _check_columns(frame, source)
    n = len(frame)
    frame = frame.reset_index(drop=True)
    rows = frame["row"].to_numpy() if "row" in frame else np.arange(n) + 2
    reason = np.zeros(n, dtype=np.int32)
    messages: list[str] = [""]

    def flag(mask: np.ndarray, why: str) -> None:
        fresh = mask & (reason == 0)
        if fresh.any():
            messages.append(why)
            reason[fresh] = len(messages) - 1

    if "reason" in frame:
        given = frame["reason"].to_numpy()
        for why in pd.unique(given[pd.notna(given)]):
            flag(given == why, str(why))
    person_codes, persons = _codes(frame["person"])
    signal_codes, signals = _codes(frame["signal"])
    flag(person_codes < 0, "missing person")
    flag(signal_codes < 0, "missing signal")
    flag(frame["time"].isna().to_numpy(), "missing time")
    value = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=float)
    flag(frame["value"].isna().to_numpy(), "missing value")
    flag(np.isnan(value), "value is not a number")

    specs = [SIGNALS.get(str(name)) for name in signals]
    for k, spec in enumerate(specs):
        if spec is None:
            flag(signal_codes == k, f"unknown signal {str(signals[k])!r}")
    utc, offset, time_reason = parse_times(frame["time"], timezone, rows)
    time_reason = time_reason.to_numpy()
    for why in pd.unique(time_reason[pd.notna(time_reason)]):
        flag(time_reason == why, str(why))

    for k, spec in enumerate(specs):
        if spec is not None:
            this = signal_codes == k
            flag(
                this & ((value < spec.low) | (value > spec.high)),
                f"impossible value for {spec.name}: "
                f"expected {spec.low:g}–{spec.high:g} {spec.unit}",
            )

    good = reason == 0
    daily = np.array([bool(spec and spec.daily) for spec in specs] + [False])[signal_codes]
    utc_values = utc.to_numpy()
    offset_values = offset.to_numpy().astype(np.int64)
    key = utc_values.copy()
    if daily.any():
        local = utc_values[daily] + offset_values[daily].astype("timedelta64[m]")
        key[daily] = local.astype("datetime64[D]").astype(key.dtype)
    pos = np.flatnonzero(good)
    n_reordered = _count_reordered(person_codes[pos], signal_codes[pos], key[pos])
    order = pos[np.lexsort((pos, key[pos], signal_codes[pos], person_codes[pos]))]
    same = np.zeros(order.size, dtype=bool)
    same[1:] = (
        (person_codes[order[1:]] == person_codes[order[:-1]])
        & (signal_codes[order[1:]] == signal_codes[order[:-1]])
        & (key[order[1:]] == key[order[:-1]])
    )
    if same.any():
        first = order[np.maximum.accumulate(np.where(same, 0, np.arange(order.size)))]
        dup = order[same]
        exact = value[dup] == value[first[same]]
        flag_rows = np.zeros(n, dtype=bool)
        flag_rows[dup[exact]] = True
        flag(flag_rows, "duplicate reading (same person, signal, time and value)")
        flag_rows[:] = False
        flag_rows[dup[~exact]] = True
        flag(
            flag_rows,
            "conflicting duplicate: another value already given for this person, signal and time",
        )
        order = order[~same]

    accepted = pd.DataFrame(
        {
            "person": pd.Categorical.from_codes(person_codes[order], categories=persons),
            "signal": pd.Categorical.from_codes(signal_codes[order], categories=signals),
            "time_utc": utc_values[order],
            "utc_offset_min": offset_values[order].astype(np.int16),
            "value": value[order],
        }
    )
    bad = np.flatnonzero(reason)
    quarantine = pd.DataFrame(
        {
            "person": _as_text(frame["person"], bad),
            "signal": _as_text(frame["signal"], bad),
            "time": _as_text(frame["time"], bad),
            "value": _as_text(frame["value"], bad),
            "reason": np.array(messages, dtype=object)[reason[bad]],
            "source": source,
            "row": rows[bad].astype(np.int64),
        },
        columns=QUARANTINE_COLUMNS,
    )
    offsets = sorted(np.unique(offset_values[order]).tolist())
    return ValidationResult(accepted, quarantine, n, n_reordered, offsets)


def _as_text(column: pd.Series, rows: np.ndarray) -> np.ndarray:
    """The raw cells at ``rows`` as text, empty where missing."""
    cells = column.iloc[rows]
    return np.where(cells.isna().to_numpy(), "", cells.astype(str).to_numpy()).astype(object)


def _count_reordered(person: np.ndarray, signal: np.ndarray, key: np.ndarray) -> int:
    """Rows earlier in time than a row above them (file order) for the same person and signal."""
    if key.size < 2:
        return 0
    if np.all(person == person[0]) and np.all(signal == signal[0]):
        running = np.maximum.accumulate(key)
        return int(np.sum(key[1:] < running[:-1]))
    frame = pd.DataFrame({"p": person, "s": signal, "k": key})
    running = frame.groupby(["p", "s"], sort=False)["k"].cummax()
    previous = running.groupby([frame["p"], frame["s"]], sort=False).shift(1)
    return int((frame["k"] < previous).sum())
