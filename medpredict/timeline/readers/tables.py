"""Relational tables read into events by a YAML mapping (MIMIC, OMOP CDM and your own).

A mapping (``mappings/mimic4.yaml``, ``mappings/mimic3.yaml``, ``mappings/omop.yaml`` or
a file of your own) says, per table, which column holds the subject, and which events
each row gives: a code (a fixed code such as ``ICU_ADMISSION`` or a template such as
``LAB//{itemid}``), a time, and optionally a value, a unit and a text value. ``codes:``
maps item ids to medpredict's canonical names (those of ``ranges.yaml``: ``HR``,
``Creatinine``, ...), so the range and unit checks apply to them; an item id that is not
mapped keeps its template code. The layout::

    units: {mm Hg: mmHg}            # spellings of a unit, applied to mapped codes
    sentinels: [999999]             # values that mean "not measured"
    tables:
      labevents:                    # read from labevents.csv, .csv.gz or .parquet
        subject: subject_id
        events:
          - code: LAB//{itemid}
            time: charttime         # or {column: dod, date: true}, a list of those
                                    # (first non-empty wins), {join: admissions,
                                    # by: hadm_id, column: dischtime} or
                                    # {anchor_year: anchor_year, anchor_age: anchor_age}
            value: valuenum
            unit: valueuom
            text: value
            if_present: valuenum    # optional: rows where this column is empty give no event
            codes:
              50912: Creatinine
              50983: {code: Na, units: {mEq/L: {to: mmol/L}}}
              223761: {code: Temp, units: {°F: {to: degC, scale: 0.5556, offset: -17.78}}}

An event without ``time`` is static (time NaT, e.g. the gender). Where an event has
both ``value`` and ``text``, the text is kept only for rows without a number (MIMIC's
``value`` repeats ``valuenum`` otherwise, and holds results such as ``NEG``). A row gives one
candidate event per event of its table (none for an event whose ``if_present`` column
is empty), so ``rows_in`` counts candidate events; :attr:`SourceResult.tables` gives the
rows read per table. Every candidate is an event or a quarantined row (``source`` = the
file name, ``line`` = the row's line in the file, the header being line 1; the row's
1-based position for Parquet).

Times are read strictly: ``YYYY-MM-DD HH:MM:SS`` (a ``T`` separator and fractional
seconds are accepted), and a bare ``YYYY-MM-DD`` only where the mapping says ``date``.
A value of that shape that is no real moment (``2130-02-30``) is an
:data:`~medpredict.timeline.validate.IMPOSSIBLE_TIME`; anything else, an empty time
included, is an :data:`~medpredict.timeline.validate.UNPARSEABLE_TIME`. A code counts as
unknown (:data:`~medpredict.timeline.validate.UNKNOWN_CODE`) when a template field is
empty, or when the item id that ``codes:`` keys on is not a whole number.

Examples
--------
>>> load_mapping("mimic3").tables["chartevents"].subject
'SUBJECT_ID'
"""


from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from medpredict.data.errors import DataError
from medpredict.timeline.validate import (
    IMPOSSIBLE_TIME,
    UNKNOWN_CODE,
    UNPARSEABLE_TIME,
    UNPARSEABLE_VALUE,
    Range,
    ReadResult,
    screen,
    times_with_reasons,
)

MAPPINGS = ("mimic4", "mimic3", "omop")
"""The mappings shipped with medpredict."""

SUFFIXES = (".csv", ".csv.gz", ".parquet")
"""The file types a table is read from."""

_DATETIME = r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?"
_DATE = r"\d{4}-\d{2}-\d{2}"
_WHOLE = re.compile(r"^[+-]?\d+(?:\.0*)?$")
_TOP_KEYS = {"name", "description", "units", "sentinels", "tables"}
_TABLE_KEYS = {"file", "subject", "events", "optional_columns"}
_EVENT_KEYS = {"code", "time", "date", "value", "unit", "text", "codes", "item",
               "unknown_items", "if_present", "text_codes"}  # fmt: skip
_TIME_KEYS = ({"column", "date"}, {"join", "by", "column", "date"}, {"anchor_year", "anchor_age"})
_CODE_KEYS = {"code", "units"}
_CONVERSION_KEYS = {"to", "scale", "offset"}


@dataclass
class SourceResult(ReadResult):
    """A :class:`~medpredict.timeline.validate.ReadResult` that says what was read.

    Attributes
    ----------
    tables : dict of str to int
        Rows read per table (MIMIC, OMOP) or resources read per resource type (FHIR).
    not_read : tuple of str
        Tables of the mapping that the folder lacks (MIMIC, OMOP), or resource types
        present that carry no timeline events (FHIR).
    """

    tables: dict[str, int] = field(default_factory=dict)
    not_read: tuple[str, ...] = ()


@dataclass(frozen=True)
class Conversion:
    """A recorded unit turned into ``to``: ``value * scale + offset``."""

    to: str
    scale: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class CodeMap:
    """An item's canonical code and the conversions of the units it is recorded in."""

    code: str
    units: dict[str, Conversion] = field(default_factory=dict)


@dataclass(frozen=True)
class TimeMap:
    """Where an event's time comes from (exactly one of the three forms)."""

    columns: tuple[tuple[str, bool], ...] = ()
    join: tuple[str, str, str, bool] | None = None
    anchor: tuple[str, str] | None = None


@dataclass(frozen=True)
class EventMap:
    """One event each row of a table gives."""

    code: str
    time: TimeMap | None = None
    value: str | None = None
    unit: str | None = None
    text: str | None = None
    codes: dict[str, CodeMap] | None = None
    item: str | None = None
    unknown_items: frozenset[str] = frozenset()
    if_present: str | None = None
    text_codes: dict[str, str] | None = None

    @property
    def fields(self) -> list[str]:
        """The columns the code template fills in."""
        return [f for _, f, _, _ in string.Formatter().parse(self.code) if f is not None]

    def columns(self) -> list[tuple[str, str]]:
        """``(mapping key, column)`` for every column of the row this event reads."""
        out = [("code", f) for f in self.fields]
        out += [(k, getattr(self, k)) for k in ("value", "unit", "text", "if_present")
                if getattr(self, k)]  # fmt: skip
        if self.time is not None:
            out += [("time", c) for c, _ in self.time.columns]
            if self.time.join:
                out.append(("time.by", self.time.join[1]))
            if self.time.anchor:
                out += [("time.anchor_year", self.time.anchor[0]),
                        ("time.anchor_age", self.time.anchor[1])]  # fmt: skip
        return out


@dataclass(frozen=True)
class TableMap:
    """A table's file name, subject column and events.

    ``optional`` columns may be absent from the file (read as empty); ``derived`` columns
    are added by the reader's ``prepare`` step from the ``extra`` columns it reads.
    """

    name: str
    file: str
    subject: str
    events: tuple[EventMap, ...]
    optional: frozenset[str] = frozenset()
    derived: frozenset[str] = frozenset()
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableMapping:
    """A whole mapping: its tables, unit spellings and sentinel values."""

    name: str
    tables: dict[str, TableMap]
    units: dict[str, str] = field(default_factory=dict)
    sentinels: tuple[float, ...] = ()


def load_mapping(mapping: str | Path | Mapping[str, Any]) -> TableMapping:
    """Load and check a table -> event mapping: a shipped name, a YAML path or a dict.

    Raises
    ------
    DataError
        The file is missing or not YAML, or a table or event has an unknown key, lacks
        a required key or has a value of the wrong kind (the message names table and key).

    Examples
    --------
    >>> load_mapping("mimic3").tables["chartevents"].subject
    'SUBJECT_ID'
    >>> try:
    ...     load_mapping({"tables": {"labevents": {"subject": "subject_id",
    ...         "events": [{"code": "LAB//{itemid}", "valu": "valuenum"}]}}})
    ... except DataError as err:
    ...     print(err)
    mapping: table 'labevents', event 1: unknown key(s) ['valu']; expected among code, codes, date, if_present, item, text, text_codes, time, unit, unknown_items, value
    """  # noqa: E501
    if isinstance(mapping, Mapping):
        return _parse_mapping(mapping, "mapping")
    name = str(mapping)
    if name in MAPPINGS:
        text = resources.files("medpredict.timeline").joinpath(f"mappings/{name}.yaml").read_text()
    else:
        path = Path(mapping)
        if not path.is_file():
            raise DataError(
                f"mapping {name!r} is neither a shipped mapping ({', '.join(MAPPINGS)}) nor "
                "a YAML file"
            )
        text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise DataError(f"mapping {name} is not valid YAML: {err}") from None
    return _parse_mapping(data, f"mapping {name}")


def _parse_mapping(data: Any, where: str) -> TableMapping:
    data = _keys(data, _TOP_KEYS, where, required=("tables",))
    tables = data["tables"]
    if not isinstance(tables, Mapping) or not tables:
        raise DataError(f"{where}: 'tables' must map table names to their events")
    units = data.get("units") or {}
    if not isinstance(units, Mapping):
        raise DataError(f"{where}: 'units' must map unit spellings to units")
    sentinels = data.get("sentinels") or []
    try:
        sentinels = tuple(float(v) for v in sentinels)
    except (TypeError, ValueError):
        raise DataError(f"{where}: 'sentinels' must be a list of numbers") from None
    parsed = {str(n): _parse_table(str(n), t, where) for n, t in tables.items()}
    for table in parsed.values():
        for number, event in enumerate(table.events, 1):
            if event.time and event.time.join and event.time.join[0] not in parsed:
                raise DataError(
                    f"{where}: table {table.name!r}, event {number}: key 'time' joins table "
                    f"{event.time.join[0]!r}, which the mapping does not define"
                )
    return TableMapping(
        name=str(data.get("name") or where.removeprefix("mapping ")),
        tables=parsed,
        units={str(k): str(v) for k, v in units.items()},
        sentinels=sentinels,
    )


def _parse_table(name: str, data: Any, where: str) -> TableMap:
    here = f"{where}: table {name!r}"
    data = _keys(data, _TABLE_KEYS, here, required=("subject", "events"))
    events = data["events"]
    if not isinstance(events, list) or not events:
        raise DataError(f"{here}: key 'events' must be a non-empty list")
    parsed = tuple(_parse_event(e, f"{here}, event {i}") for i, e in enumerate(events, 1))
    if all(e.if_present for e in parsed):
        raise DataError(
            f"{here}: every event has 'if_present'; at least one event must be written for "
            "every row, so that no row goes unaccounted"
        )
    optional = data.get("optional_columns") or []
    if not isinstance(optional, list) or not all(isinstance(c, str) for c in optional):
        raise DataError(f"{here}: key 'optional_columns' must be a list of column names")
    return TableMap(
        name, str(data.get("file") or name), _column(data, "subject", here), parsed,
        optional=frozenset(optional),
    )


def _parse_event(data: Any, here: str) -> EventMap:
    data = _keys(data, _EVENT_KEYS, here, required=("code",))
    code = _column(data, "code", here)
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(code) if f is not None]
    except ValueError as err:
        raise DataError(f"{here}: key 'code' {code!r} is not a valid template: {err}") from None
    if any(not f for f in fields):
        raise DataError(f"{here}: key 'code' {code!r} has an empty {{}}; name the column")
    codes = data.get("codes")
    item = data.get("item")
    if codes is not None or item is not None:
        if item is None:
            if len(fields) != 1:
                raise DataError(
                    f"{here}: key 'codes' needs key 'item' (the column holding the item "
                    f"ids) when the code template has {len(fields)} fields"
                )
            item = fields[0]
        if str(item) not in fields:
            raise DataError(f"{here}: key 'item' {item!r} is not a field of code {code!r}")
        if codes is not None and not isinstance(codes, Mapping):
            raise DataError(f"{here}: key 'codes' must map item ids to codes")
        codes = {_item(k, here): _parse_code(k, v, here) for k, v in (codes or {}).items()}
    text_codes = data.get("text_codes")
    if text_codes is not None and not isinstance(text_codes, Mapping):
        raise DataError(f"{here}: key 'text_codes' must map values to texts")
    return EventMap(
        code=code,
        time=_parse_time(data.get("time"), bool(data.get("date", False)), here),
        value=_column(data, "value", here, optional=True),
        unit=_column(data, "unit", here, optional=True),
        text=_column(data, "text", here, optional=True),
        codes=codes,
        item=None if item is None else str(item),
        unknown_items=frozenset(_item(v, here) for v in data.get("unknown_items") or []),
        if_present=_column(data, "if_present", here, optional=True),
        text_codes=None if text_codes is None else {
            _item(k, here): str(v) for k, v in text_codes.items()
        },
    )


def _parse_time(data: Any, date: bool, here: str) -> TimeMap | None:
    if data is None:
        return None
    if isinstance(data, str):
        return TimeMap(columns=((data, date),))
    if isinstance(data, list) and data:
        columns = []
        for entry in data:
            part = _parse_time(entry, date, here)
            if not part.columns:
                raise DataError(f"{here}: key 'time': a list holds only {{column: ...}} entries")
            columns += part.columns
        return TimeMap(columns=tuple(columns))
    if isinstance(data, Mapping):
        keys = set(data)
        if "join" in keys:
            entry = _keys(data, _TIME_KEYS[1], f"{here}, key 'time'",
                          required=("join", "by", "column"))  # fmt: skip
            return TimeMap(join=(str(entry["join"]), str(entry["by"]), str(entry["column"]),
                                 bool(entry.get("date", date))))  # fmt: skip
        if keys & {"anchor_year", "anchor_age"}:
            entry = _keys(data, _TIME_KEYS[2], f"{here}, key 'time'",
                          required=("anchor_year", "anchor_age"))  # fmt: skip
            return TimeMap(anchor=(str(entry["anchor_year"]), str(entry["anchor_age"])))
        entry = _keys(data, _TIME_KEYS[0], f"{here}, key 'time'", required=("column",))
        return TimeMap(columns=((str(entry["column"]), bool(entry.get("date", date))),))
    raise DataError(
        f"{here}: key 'time' must be a column, {{column, date}}, a list of those, "
        "{join, by, column} or {anchor_year, anchor_age}"
    )


def _parse_code(key: Any, data: Any, here: str) -> CodeMap:
    if isinstance(data, str):
        return CodeMap(data)
    where = f"{here}, codes entry {key!r}"
    data = _keys(data, _CODE_KEYS, where, required=("code",))
    units = data.get("units") or {}
    if not isinstance(units, Mapping):
        raise DataError(f"{where}: key 'units' must map recorded units to conversions")
    conversions = {}
    for unit, conversion in units.items():
        entry = _keys(conversion, _CONVERSION_KEYS, f"{where}, unit {unit!r}", required=("to",))
        try:
            conversions[str(unit)] = Conversion(
                str(entry["to"]), float(entry.get("scale", 1.0)), float(entry.get("offset", 0.0))
            )
        except (TypeError, ValueError):
            raise DataError(f"{where}, unit {unit!r}: scale and offset must be numbers") from None
    return CodeMap(str(data["code"]), conversions)


def _keys(data: Any, allowed: set[str], where: str, required: Iterable[str] = ()) -> dict:
    if not isinstance(data, Mapping):
        raise DataError(f"{where}: expected a mapping with keys among {', '.join(sorted(allowed))}")
    unknown = sorted(set(map(str, data)) - allowed)
    if unknown:
        raise DataError(
            f"{where}: unknown key(s) {unknown}; expected among {', '.join(sorted(allowed))}"
        )
    missing = [k for k in required if data.get(k) in (None, "")]
    if missing:
        raise DataError(f"{where}: missing key(s) {', '.join(repr(k) for k in missing)}")
    return dict(data)


def _column(data: Mapping, key: str, where: str, optional: bool = False) -> str | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise DataError(f"{where}: key {key!r} must name a column (a non-empty string)")
    return value


def _item(value: Any, where: str) -> str:
    text = str(value).strip()
    if not _WHOLE.match(text):
        raise DataError(f"{where}: item id {value!r} is not a whole number")
    return str(int(float(text)))


# --- reading ------------------------------------------------------------------------------


def read_tables(
    folder: str | Path,
    mapping: TableMapping,
    ranges: Mapping[str, Range] | None = None,
    kind: str = "MIMIC",
    prepare: Callable[[str, pd.DataFrame], pd.DataFrame] | None = None,
) -> SourceResult:
    """Read every table of ``mapping`` found in ``folder`` and screen all events together.

    ``prepare(table, frame)``, when given, may add derived columns to a table's frame of
    strings before its events are built (the OMOP reader composes birth dates with it).
    All tables are screened at once, so birth and death events of one table bound the
    events of the others. ``kind`` names the source in error messages.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "vitals.csv").write_text("id,t,hr\\n1,2150-01-01 08:00:00,72\\n")
    >>> mapping = load_mapping({"tables": {"vitals": {"subject": "id", "events": [
    ...     {"code": "HR", "time": "t", "value": "hr"}]}}})
    >>> read_tables(folder, mapping).events[["subject_id", "code", "numeric_value"]].values.tolist()
    [[1, 'HR', 72.0]]
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{kind} folder {folder} not found")
    files = _find_tables(folder, mapping, kind)
    if not files:
        expected = ", ".join(sorted(mapping.tables))
        raise DataError(
            f"{folder} holds none of the {kind} tables of mapping {mapping.name} ({expected}) "
            f"as {', '.join(SUFFIXES)}"
        )
    needed = _needed_columns(mapping, files, kind)
    frames = {}
    for name, path in files.items():
        frame = _read_table(path, needed[name], mapping.tables[name], kind)
        frames[name] = prepare(name, frame) if prepare else frame
    parts = []
    for name, path in files.items():
        table = mapping.tables[name]
        for event in table.events:
            parts.append(_candidates(frames[name], path, table, event, mapping, frames))
    candidates = pd.concat([p[0] for p in parts], ignore_index=True)
    reasons = pd.concat([p[1] for p in parts], ignore_index=True)
    result = screen(candidates, reasons, ranges=ranges, sentinels=mapping.sentinels)
    return SourceResult(
        result.events,
        result.quarantine,
        result.rows_in,
        tables={name: len(frames[name]) for name in files},
        not_read=tuple(sorted(set(mapping.tables) - set(files))),
    )


def _find_tables(folder: Path, mapping: TableMapping, kind: str) -> dict[str, Path]:
    by_name: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*")):
        lower = path.name.lower()
        for suffix in SUFFIXES:
            if lower.endswith(suffix) and path.is_file():
                by_name.setdefault(lower[: -len(suffix)], []).append(path)
    found = {}
    for name, table in mapping.tables.items():
        paths = by_name.get(table.file.lower(), [])
        if len(paths) > 1:
            shown = ", ".join(str(p.relative_to(folder)) for p in paths)
            raise DataError(
                f"{kind} table {name!r} appears {len(paths)} times in {folder} ({shown}); "
                "keep one"
            )
        if paths:
            found[name] = paths[0]
    return found


def _needed_columns(mapping: TableMapping, files: dict[str, Path], kind: str):
    needed: dict[str, dict[str, str]] = {name: {} for name in files}
    for name in files:
        table = mapping.tables[name]
        needed[name][table.subject] = f"table {name!r}, key 'subject'"
        for column in table.extra:
            needed[name].setdefault(column, f"table {name!r}")
        for number, event in enumerate(table.events, 1):
            for key, column in event.columns():
                if column not in table.derived:
                    where = f"table {name!r}, event {number}, key {key!r}"
                    needed[name].setdefault(column, where)
            if event.time and event.time.join:
                other, on, column, _ = event.time.join
                if other not in files:
                    raise DataError(
                        f"{kind} table {name!r} takes its time from table {other!r} (join on "
                        f"{on!r}), and {other!r} is not in the folder"
                    )
                why = f"table {name!r}, event {number}, key 'time' (join)"
                needed[other].setdefault(on, why)
                needed[other].setdefault(column, why)
    return needed


def _read_table(path: Path, needed: dict[str, str], table: TableMap, kind: str) -> pd.DataFrame:
    """The table's needed columns as strings (empty where missing), named as the mapping."""
    is_parquet = path.name.lower().endswith(".parquet")
    try:
        if is_parquet:
            import pyarrow.parquet as pq

            header = pq.read_schema(path).names
        else:
            header = list(pd.read_csv(path, nrows=0).columns)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DataError(
            f"{kind} table {table.name!r} ({path.name}) could not be read: {err}"
        ) from None
    resolved = {}
    absent = []
    for column, why in needed.items():
        match = _resolve(column, header)
        if match is None and column in table.optional:
            absent.append(column)
        elif match is None:
            raise DataError(
                f"{kind} table {table.name!r} ({path.name}) lacks column {column!r}, which "
                f"the mapping names ({why}); its columns are {', '.join(header)}"
            )
        else:
            resolved[match] = column
    if is_parquet:
        frame = _parquet_strings(path, list(resolved))
    else:
        try:
            frame = pd.read_csv(
                path, usecols=list(resolved), dtype=str, keep_default_na=False, engine="c"
            )
        except (OSError, ValueError, pd.errors.ParserError) as err:
            raise DataError(
                f"{kind} table {table.name!r} ({path.name}) could not be read as CSV: {err}"
            ) from None
    frame = frame.rename(columns=resolved)
    for column in absent:
        frame[column] = pd.Series("", index=frame.index, dtype="str")
    frame.attrs["first_line"] = 1 if is_parquet else 2
    return frame


def _resolve(column: str, header: list[str]) -> str | None:
    if column in header:
        return column
    folded = [h for h in header if h.lower() == column.lower()]
    return folded[0] if len(folded) == 1 else None


def _parquet_strings(path: Path, columns: list[str]) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=columns)
    out = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_timestamp(column.type) and column.type.tz is not None:
            column = column.cast(pa.timestamp(column.type.unit))  # UTC, as stored
        column = pc.fill_null(pc.cast(column, pa.string()), "")
        out[name] = pd.Series(column.to_numpy(zero_copy_only=False), dtype="str")
    return pd.DataFrame(out)


def _candidates(frame, path, table, event, mapping, frames):
    """The candidate events of one event of one table, and the reader's reasons."""
    rows = frame
    if event.if_present:
        rows = frame[frame[event.if_present].str.strip() != ""]
    index = rows.index.to_numpy()
    n = len(rows)
    subject = _whole(rows[table.subject])
    reasons = pd.Series(None, index=range(n), dtype=object)
    time, raw_time, time_reason = _event_times(rows, event, frames)
    missing = pd.Series(np.nan, index=range(n), dtype="str")
    value = pd.Series(np.nan, index=range(n), dtype="float64")
    raw_value = missing
    value_reason = np.zeros(n, dtype=bool)
    if event.value:
        raw_value = _strip(rows[event.value])
        value, value_reason = _numbers(raw_value)
    code, unknown, key = _event_codes(rows, event)
    text = missing
    if event.text:
        text = _strip(rows[event.text])
        if event.text_codes is not None:
            text = _whole(text).astype("string").map(event.text_codes).fillna(text)
            text = text.astype("str")
        text = text.mask(text == "")
        if not event.value:
            raw_value = text
        else:  # the text repeats a number that was read (MIMIC's value beside valuenum)
            text = text.mask(value.notna())
            raw_value = raw_value.mask(raw_value == "", text)
    unit = missing
    if event.unit:
        unit = _strip(rows[event.unit])
        unit = unit.mask(unit == "")
    if event.codes:
        mapped = key.isin(event.codes).fillna(False).to_numpy(dtype=bool)
        if mapped.any():
            names = key[mapped].map({k: c.code for k, c in event.codes.items()})
            code = code.astype(object)
            code[mapped] = names.to_numpy(dtype=object)
            code = code.astype("str")
            if event.unit:
                value, unit = convert_units(value, unit, key, pd.Series(mapped), event.codes,
                                       mapping.units)  # fmt: skip
    has_subject = subject.notna().to_numpy()
    time_reason = time_reason.to_numpy(dtype=object)
    for mask, reason in (
        (time_reason == UNPARSEABLE_TIME, UNPARSEABLE_TIME),
        (time_reason == IMPOSSIBLE_TIME, IMPOSSIBLE_TIME),
        (value_reason, UNPARSEABLE_VALUE),
        (unknown, UNKNOWN_CODE),
    ):
        hit = np.asarray(mask, dtype=bool) & has_subject & reasons.isna().to_numpy()
        reasons[hit] = reason
    candidates = pd.DataFrame(
        {
            "subject_id": subject,
            "time": time.astype("datetime64[us]"),
            "code": code.astype("str"),
            "numeric_value": value.astype("float64"),
            "text_value": text.astype("str"),
            "unit": unit.astype("str"),
            "source": pd.Series(path.name, index=range(n), dtype="str"),
            "line": pd.Series(index + frame.attrs["first_line"], dtype=np.int64),
            "raw_time": raw_time.astype("str"),
            "raw_value": raw_value.astype("str"),
        }
    )
    return candidates, reasons


def _strip(values: pd.Series) -> pd.Series:
    return values.str.strip().reset_index(drop=True)


def _arrow(values: pd.Series):
    import pyarrow as pa

    array = pa.array(values.astype("str").array)
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"


def _numbers(text: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Numbers written in ``text`` (NaN where empty) and the mask of non-empty non-numbers."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = _arrow(text)
    shaped = pc.fill_null(pc.match_substring_regex(array, _NUMBER), False)
    number = pc.cast(pc.if_else(shaped, array, pa.scalar(None, pa.string())), pa.float64())
    value = pd.Series(number.to_numpy(zero_copy_only=False), dtype="float64")
    filled = pc.fill_null(pc.not_equal(array, ""), False)
    bad = pc.and_(filled, pc.invert(shaped)).to_numpy(zero_copy_only=False)
    return value, np.asarray(bad, dtype=bool)


def _whole(values: pd.Series) -> pd.Series:
    """Whole numbers as Int64 (NA where empty or not a whole number), index reset.

    Integers written as digits are read exactly (up to int64's largest); others written
    as floats (``220045.0``) only where a float holds them exactly.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    text = _strip(values.astype("str"))
    array = pc.replace_substring_regex(_arrow(text), r"^\+", "")
    digits = pc.fill_null(pc.match_substring_regex(array, r"^-?\d{1,19}$"), False)
    core = pc.replace_substring_regex(array, r"^-", "")
    fits = pc.or_(pc.less(pc.utf8_length(core), 19), pc.less_equal(core, "9223372036854775807"))
    digits = pc.and_(digits, pc.fill_null(fits, False))
    ints = pc.cast(pc.if_else(digits, array, pa.scalar(None, pa.string())), pa.int64())
    out = pd.Series(pd.arrays.ArrowExtensionArray(ints)).astype("Int64")
    rest = pc.and_(pc.invert(digits), pc.fill_null(pc.not_equal(array, ""), False))
    rest = np.asarray(rest.to_numpy(zero_copy_only=False), dtype=bool)
    if rest.any():
        number, _ = _numbers(text.where(rest, ""))
        whole = (number.notna() & (number == np.floor(number)) & (number.abs() < 2**53))
        whole = whole.to_numpy()
        if whole.any():
            out[whole] = number[whole].astype("int64").to_numpy()
    return out


def _event_times(rows: pd.DataFrame, event: EventMap, frames: dict[str, pd.DataFrame]):
    n = len(rows)
    if event.time is None:
        empty = pd.Series(pd.NaT, index=range(n), dtype="datetime64[us]")
        return empty, pd.Series(None, index=range(n), dtype=object), pd.Series(None, index=range(n))
    spec = event.time
    if spec.anchor:
        year = _whole(rows[spec.anchor[0]])
        age = _whole(rows[spec.anchor[1]])
        birth = (year - age).astype("string").str.zfill(4) + "-01-01"
        raw = (rows[spec.anchor[0]].str.strip() + " - " + rows[spec.anchor[1]].str.strip())
        raw = raw.reset_index(drop=True)
        text = birth.fillna(raw).astype(str)
        return _with_raw(text, raw, True)
    if spec.join:
        other, on, column, date = spec.join
        joined = frames[other]
        lookup = pd.Series(joined[column].to_numpy(), index=joined[on].str.strip().to_numpy())
        lookup = lookup[~lookup.index.duplicated()]
        keys = rows[on].str.strip().reset_index(drop=True)
        text = keys.map(lookup)
        absent = text.isna()
        raw = text.astype(object)
        raw[absent] = ("no " + other + " row with " + on + " " + keys[absent]).to_numpy()
        time, reason = parse_times(text.fillna(""), date)
        return time, raw, reason
    text = rows[spec.columns[0][0]].str.strip().reset_index(drop=True)
    date_ok = np.full(n, spec.columns[0][1])
    for column, date in spec.columns[1:]:
        empty = (text == "").to_numpy()
        text = text.mask(empty, rows[column].str.strip().reset_index(drop=True))
        date_ok = np.where(empty, date, date_ok)
    return _with_raw(text, text.astype(object), date_ok)


def _with_raw(text: pd.Series, raw: pd.Series, date_ok):
    time, reason = parse_times(text, date_ok)
    return time, raw.astype(object), reason


def parse_times(text: pd.Series, date_ok: bool | np.ndarray = False):
    """Strictly parsed times and, per value, None or the reason it is refused.

    ``YYYY-MM-DD HH:MM:SS`` (``T`` or a space between, optional fractional seconds) is a
    time; ``YYYY-MM-DD`` is one only where ``date_ok``. A value of the right shape that
    is no real moment is :data:`IMPOSSIBLE_TIME`, anything else :data:`UNPARSEABLE_TIME`.

    Examples
    --------
    >>> times, reasons = parse_times(pd.Series(["2130-01-02 08:00:00", "2130-02-30 08:00:00",
    ...                                         "yesterday", "2130-01-02"]))
    >>> [str(t) for t in times], reasons.tolist()
    (['2130-01-02 08:00:00', 'NaT', 'NaT', 'NaT'], [None, 'impossible time', 'unparseable time', 'unparseable time'])
    """  # noqa: E501
    text = text.reset_index(drop=True).astype(str).str.strip()
    full = text.str.fullmatch(_DATETIME).to_numpy(dtype=bool)
    bare = text.str.fullmatch(_DATE).to_numpy(dtype=bool) & np.asarray(date_ok, dtype=bool)
    return times_with_reasons(text, full | bare)


def _event_codes(rows: pd.DataFrame, event: EventMap):
    """Rendered codes, the unknown-code mask and the normalised item ids (or None)."""
    n = len(rows)
    unknown = np.zeros(n, dtype=bool)
    key = None
    pieces = []
    for literal, name, _, _ in string.Formatter().parse(event.code):
        if literal:
            pieces.append(literal)
        if name is None:
            continue
        values = rows[name].str.strip().reset_index(drop=True)
        unknown |= (values == "").to_numpy()
        if name == event.item:
            whole = _whole(values)
            unknown |= whole.isna().to_numpy()
            key = whole.astype("string")
            unknown |= key.isin(event.unknown_items).fillna(False).to_numpy(dtype=bool)
            values = key.fillna(values)
        pieces.append(values.astype(str))
    if not any(isinstance(p, pd.Series) for p in pieces):
        return pd.Series(event.code, index=range(n), dtype="string"), unknown, key
    code = pd.Series("", index=range(n), dtype=str)
    for piece in pieces:
        code = code + piece
    return code.astype("string"), unknown, key


def convert_units(value, unit, key, mapped, codes: dict[str, CodeMap], aliases: dict[str, str]):
    """Apply the items' unit conversions, then the unit spellings, to mapped rows.

    ``value``, ``unit``, ``key`` (item ids) and ``mapped`` are aligned Series with a
    RangeIndex; returns the new ``value`` (float64) and ``unit`` (str) Series.
    """
    value = value.astype("float64").copy()
    unit = unit.astype("str").astype(object)
    mapped = np.asarray(mapped, dtype=bool)
    table = pd.DataFrame(
        [(k, u, c.to, c.scale, c.offset) for k, m in codes.items() for u, c in m.units.items()],
        columns=["key", "unit", "to", "scale", "offset"],
    )
    if len(table):
        rows = np.flatnonzero(mapped & unit.isin(set(table["unit"])).to_numpy())
        if len(rows):
            picked = {"key": key.iloc[rows].astype(object).to_numpy(),
                      "unit": unit.iloc[rows].to_numpy()}
            looked = pd.DataFrame(picked).merge(table, on=["key", "unit"], how="left")
            hit = looked["to"].notna().to_numpy()
            rows, looked = rows[hit], looked[hit]
            value.iloc[rows] = value.iloc[rows].to_numpy() * looked["scale"].to_numpy() + looked[
                "offset"].to_numpy()
            unit.iloc[rows] = looked["to"].to_numpy()
    if aliases:
        rows = np.flatnonzero(mapped & unit.isin(set(aliases)).to_numpy())
        unit.iloc[rows] = unit.iloc[rows].map(aliases).to_numpy()
    return value, unit.astype("str")
