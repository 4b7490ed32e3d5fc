"""OMOP CDM v5.4 tables read into events: person, visits, conditions, measurements, drugs.

The tables and columns are the CDM's own (lower-case names), each read from
``<table>.csv``, ``.csv.gz`` or ``.parquet`` anywhere under the folder; any subset may be
present. Every row gives these events (``subject_id`` = ``person_id``):

======================  ===============================================================
table                   events
======================  ===============================================================
person                  ``MEDS_BIRTH`` at ``birth_datetime``, else ``year/month/
                        day_of_birth`` (a missing month or day counts as 1); ``GENDER``
                        (static, text ``male``/``female``/... from gender_concept_id)
visit_occurrence        start: ``HOSPITAL_ADMISSION`` for inpatient visits (9201, 262),
                        ``ICU_ADMISSION`` for intensive care (32037), else
                        ``VISIT//<visit_concept_id>``; end: ``HOSPITAL_DISCHARGE`` /
                        ``ICU_DISCHARGE`` / ``VISIT_END//<visit_concept_id>``
condition_occurrence    ``CONDITION//<condition_concept_id>`` at the start
measurement             ``MEASUREMENT//<measurement_concept_id>`` or its canonical code,
                        ``value_as_number``, the unit
observation             ``OBSERVATION//<observation_concept_id>`` or its canonical code,
                        ``value_as_number``, ``value_as_string`` as text, the unit
drug_exposure           ``DRUG//<drug_concept_id>`` at the exposure's start
death                   ``MEDS_DEATH`` at ``death_datetime``, else ``death_date``
======================  ===============================================================

Each time is the ``*_datetime`` column where it is filled, else the ``*_date`` column
(date-only values are allowed there); the ``*_datetime`` columns may be absent. The unit
is ``unit_source_value``, else ``unit_concept_id`` written through the mapping's
``unit_concepts`` (an id it does not list is kept as ``UNIT_CONCEPT//<id>``).

``mappings/omop.yaml`` maps standard concept ids (LOINC measurements: 3027018 heart rate
-> ``HR``, 3016723 creatinine -> ``Creatinine``, 3004249 systolic pressure ->
``SysABP``, ...) to medpredict's canonical codes, so the range and unit checks apply;
other concepts keep their table's code. A concept id of 0 ("no matching concept"), an
empty one or one that is not a whole number is an unknown code
(:data:`~medpredict.timeline.validate.UNKNOWN_CODE`). Times, line numbers and
``rows_in`` follow :mod:`medpredict.timeline.readers.mimic`, whose reader this one uses.

Examples
--------
>>> CDM_TABLES[:3]
('person', 'visit_occurrence', 'condition_occurrence')
>>> load_omop_mapping().codes["3027018"].code
'HR'
>>> result = read_omop("omop-cdm/")  # doctest: +SKIP
>>> print(result.summary())  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from medpredict.data.errors import DataError
from medpredict.timeline.events import (
    BIRTH,
    DEATH,
    HOSPITAL_ADMISSION,
    HOSPITAL_DISCHARGE,
    ICU_ADMISSION,
    ICU_DISCHARGE,
)
from medpredict.timeline.readers.tables import (
    CodeMap,
    EventMap,
    SourceResult,
    TableMap,
    TableMapping,
    TimeMap,
    _item,
    _keys,
    _parse_code,
    read_tables,
)
from medpredict.timeline.validate import Range

CDM_TABLES = ("person", "visit_occurrence", "condition_occurrence", "measurement",
              "observation", "drug_exposure", "death")  # fmt: skip
"""The CDM tables the reader reads."""

INPATIENT = ("9201", "262")
"""Visit concepts read as hospital stays: Inpatient Visit, Emergency Room and Inpatient."""
INTENSIVE_CARE = ("32037",)
"""Visit concepts read as ICU stays: Intensive Care."""
GENDERS = {"8507": "male", "8532": "female", "8521": "other", "8551": "unknown", "0": "unknown"}
"""gender_concept_id -> the GENDER event's text (FHIR's administrative genders)."""
NO_MATCHING_CONCEPT = frozenset({"0"})

_MAPPING_KEYS = {"name", "codes", "unit_concepts", "units", "sentinels"}


@dataclass(frozen=True)
class OmopMapping:
    """Canonical codes of concept ids, unit concepts, unit spellings and sentinels."""

    codes: dict[str, CodeMap] = field(default_factory=dict)
    unit_concepts: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    sentinels: tuple[float, ...] = ()
    name: str = "omop"


def read_omop(
    folder: str | Path,
    mapping: str | Path = "omop",
    ranges: Mapping[str, Range] | None = None,
) -> SourceResult:
    """Read the OMOP CDM v5.4 tables of ``folder`` into screened events.

    Parameters
    ----------
    folder : path
        Folder holding the CDM tables (searched recursively) as ``<table>.csv``,
        ``.csv.gz`` or ``.parquet``; any subset of :data:`CDM_TABLES`.
    mapping : str or path
        ``"omop"`` (the shipped ``mappings/omop.yaml``) or the path of a file in its
        layout: ``codes``, ``unit_concepts``, ``units``, ``sentinels``.
    ranges : mapping, optional
        Range table (default :func:`medpredict.timeline.validate.load_ranges`).

    Returns
    -------
    SourceResult
        Events, quarantined rows, ``tables`` (rows read per table) and ``not_read``.

    Raises
    ------
    DataError
        The mapping is invalid, the folder holds no CDM table, or a table lacks a
        required CDM column (the message names table, key and column).

    Examples
    --------
    >>> result = read_omop("omop-cdm/")  # doctest: +SKIP
    >>> result.tables  # doctest: +SKIP
    {'person': 1000, 'visit_occurrence': 5210, 'measurement': 120331, ...}
    """
    config = load_omop_mapping(mapping)
    tables = cdm_mapping(config)
    return read_tables(folder, tables, ranges, kind="OMOP", prepare=partial(_prepare, config))


def load_omop_mapping(mapping: str | Path | Mapping[str, Any] = "omop") -> OmopMapping:
    """Load and check an OMOP concept mapping: ``"omop"``, a YAML path or a dict.

    Raises
    ------
    DataError
        An unknown key, a concept id that is not a whole number, or a malformed entry
        (the message names the key).

    Examples
    --------
    >>> load_omop_mapping({"codes": {3016723: "Creatinine"}}).codes["3016723"].code
    'Creatinine'
    """
    where = "OMOP mapping"
    if isinstance(mapping, Mapping):
        data = mapping
    else:
        name = str(mapping)
        if name == "omop":
            text = resources.files("medpredict.timeline").joinpath("mappings/omop.yaml")
            text = text.read_text()
        elif Path(mapping).is_file():
            text = Path(mapping).read_text()
        else:
            raise DataError(f"OMOP mapping {name!r} is neither 'omop' nor a YAML file")
        where = f"OMOP mapping {name}"
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise DataError(f"{where} is not valid YAML: {err}") from None
    data = _keys(data, _MAPPING_KEYS, where)
    for key in ("codes", "unit_concepts", "units"):
        if not isinstance(data.get(key) or {}, Mapping):
            raise DataError(f"{where}: key {key!r} must be a mapping")
    try:
        sentinels = tuple(float(v) for v in data.get("sentinels") or [])
    except (TypeError, ValueError):
        raise DataError(f"{where}: 'sentinels' must be a list of numbers") from None
    codes = data.get("codes") or {}
    unit_concepts = data.get("unit_concepts") or {}
    return OmopMapping(
        codes={_item(k, f"{where}, codes"): _parse_code(k, v, f"{where}, codes")
               for k, v in codes.items()},
        unit_concepts={_item(k, f"{where}, unit_concepts"): str(v)
                       for k, v in unit_concepts.items()},
        units={str(k): str(v) for k, v in (data.get("units") or {}).items()},
        sentinels=sentinels,
        name=str(data.get("name") or "omop"),
    )


def cdm_mapping(config: OmopMapping) -> TableMapping:
    """The CDM tables as a table -> event mapping for :func:`~.mimic.read_tables`.

    Examples
    --------
    >>> tables = cdm_mapping(load_omop_mapping())
    >>> [e.code for e in tables.tables["visit_occurrence"].events]
    ['VISIT//{visit_concept_id}', 'VISIT_END//{visit_concept_id}']
    >>> tables.tables["visit_occurrence"].events[0].codes["9201"].code
    'HOSPITAL_ADMISSION'
    """

    def when(prefix: str) -> TimeMap:
        return TimeMap(columns=((f"{prefix}_datetime", False), (f"{prefix}_date", True)))

    def concept(code: str, column: str, prefix: str, codes: Mapping[str, CodeMap],
                **more: Any) -> EventMap:  # fmt: skip
        return EventMap(code=f"{code}//{{{column}}}", time=when(prefix), codes=dict(codes),
                        item=column, unknown_items=NO_MATCHING_CONCEPT, **more)  # fmt: skip

    def fixed(codes: Iterable[str], name: str) -> dict[str, CodeMap]:
        return {c: CodeMap(name) for c in codes}

    def table(name: str, events: list[EventMap], optional: Iterable[str] = (),
              derived: Iterable[str] = (), extra: Iterable[str] = ()) -> TableMap:  # fmt: skip
        return TableMap(name, name, "person_id", tuple(events), frozenset(optional),
                        frozenset(derived), tuple(extra))  # fmt: skip

    starts = {**fixed(INPATIENT, HOSPITAL_ADMISSION), **fixed(INTENSIVE_CARE, ICU_ADMISSION)}
    ends = {**fixed(INPATIENT, HOSPITAL_DISCHARGE), **fixed(INTENSIVE_CARE, ICU_DISCHARGE)}
    unit_columns = ("unit_source_value", "unit_concept_id")
    tables = [
        table("person", [
            EventMap(BIRTH, TimeMap(columns=(("birth_datetime", False), ("_birth", True)))),
            EventMap("GENDER", text="gender_concept_id", text_codes=GENDERS,
                     if_present="gender_concept_id"),
        ], optional=("birth_datetime", "month_of_birth", "day_of_birth"), derived=("_birth",),
            extra=("year_of_birth", "month_of_birth", "day_of_birth")),
        table("visit_occurrence", [
            concept("VISIT", "visit_concept_id", "visit_start", starts),
            concept("VISIT_END", "visit_concept_id", "visit_end", ends),
        ], optional=("visit_start_datetime", "visit_end_datetime")),
        table("condition_occurrence", [
            concept("CONDITION", "condition_concept_id", "condition_start", {}),
        ], optional=("condition_start_datetime",)),
        table("measurement", [
            concept("MEASUREMENT", "measurement_concept_id", "measurement", config.codes,
                    value="value_as_number", unit="_unit"),
        ], optional=("measurement_datetime", "value_as_number", *unit_columns),
            derived=("_unit",), extra=unit_columns),
        table("observation", [
            concept("OBSERVATION", "observation_concept_id", "observation", config.codes,
                    value="value_as_number", unit="_unit", text="value_as_string"),
        ], optional=("observation_datetime", "value_as_number", "value_as_string",
                     *unit_columns), derived=("_unit",), extra=unit_columns),
        table("drug_exposure", [
            concept("DRUG", "drug_concept_id", "drug_exposure_start", {}),
        ], optional=("drug_exposure_start_datetime",)),
        table("death", [EventMap(DEATH, when("death"))], optional=("death_datetime",)),
    ]  # fmt: skip
    return TableMapping(
        name=config.name,
        tables={t.name: t for t in tables},
        units=config.units,
        sentinels=config.sentinels,
    )


def _prepare(config: OmopMapping, name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Derived columns: the composed birth date (person) and the unit (measurements)."""
    if name == "person":
        year = frame["year_of_birth"].str.strip()
        month = frame["month_of_birth"].str.strip().replace("", "1")
        day = frame["day_of_birth"].str.strip().replace("", "1")
        frame["_birth"] = year + "-" + month.str.zfill(2) + "-" + day.str.zfill(2)
    elif name in ("measurement", "observation"):
        written = frame["unit_source_value"].str.strip()
        concept = frame["unit_concept_id"].str.strip()
        number = pd.to_numeric(concept, errors="coerce")
        key = concept.where(number.isna(), number.astype("Int64").astype("string"))
        from_concept = key.map(config.unit_concepts)
        unknown = "UNIT_CONCEPT//" + key.astype(str)
        from_concept = from_concept.where(from_concept.notna(), unknown)
        no_concept = ((key == "0") | (concept == "")).fillna(True).to_numpy(dtype=bool)
        from_concept = from_concept.mask(no_concept, "")
        frame["_unit"] = np.where(written != "", written, from_concept)
        frame["_unit"] = frame["_unit"].astype("str")
    return frame

