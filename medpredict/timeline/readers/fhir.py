"""FHIR R4 resources read into events: Bundles (JSON) or NDJSON files, or a posted Bundle.

=================  ===========================================================================
resource           events
=================  ===========================================================================
Patient            ``MEDS_BIRTH`` at ``birthDate``, ``MEDS_DEATH`` at ``deceasedDateTime``,
                   ``GENDER`` (static, text = ``gender``)
Encounter          ``period.start`` / ``period.end``: ``ICU_ADMISSION`` / ``ICU_DISCHARGE``
                   when the class or a type says intensive care (code ``ICU``, SNOMED
                   305351004, or a type text naming intensive care), ``HOSPITAL_ADMISSION``
                   / ``HOSPITAL_DISCHARGE`` for class ``IMP`` (and its ``ACUTE`` /
                   ``NONAC``), else ``ENCOUNTER//<class>`` / ``ENCOUNTER_END//<class>``
Observation        one event per value (each ``component`` too): the canonical code of its
                   LOINC code (:data:`LOINC`, e.g. 8867-4 -> ``HR``) or ``LOINC//<code>``;
                   ``valueQuantity`` value and unit (the UCUM code, else the unit text),
                   ``valueString`` / ``valueCodeableConcept`` / ``valueBoolean`` as text;
                   at ``effectiveDateTime`` (or ``effectiveInstant``, ``effectivePeriod.start``)
Condition          ``ICD10//<code>`` or ``SNOMED//<code>`` at ``onsetDateTime`` (or
                   ``onsetPeriod.start``, ``recordedDate``)
MedicationRequest  ``RXNORM//<code>`` of ``medicationCodeableConcept`` (or of the Medication
                   it references) at ``authoredOn``
=================  ===========================================================================

Other resource types carry no timeline events; they are counted in
:attr:`~medpredict.timeline.readers.mimic.SourceResult.not_read`. Each resource of the
types above is validated with the ``fhir.resources`` R4B models (R4B shares these
resources with R4); an invalid one, or one marked ``entered-in-error``, is quarantined
as :data:`~medpredict.timeline.validate.INVALID_RESOURCE` with the first validation error
as its value. Errors only in a time or a quantity's value are left to the screen, which
names them (:data:`~medpredict.timeline.validate.IMPOSSIBLE_TIME`, ...). A code is
unknown (:data:`~medpredict.timeline.validate.UNKNOWN_CODE`) when an Observation has no
LOINC coding, a Condition neither an ICD-10 nor a SNOMED CT coding, a MedicationRequest
no RxNorm coding.

Times follow FHIR: ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` (a partial date counts from its
first day) or ``YYYY-MM-DDThh:mm:ss[.fff]`` with ``Z`` or an offset, converted to UTC and
stored without a zone (a time without an offset, which FHIR forbids, is read as written).
Subjects: a numeric ``Patient.id`` is the ``subject_id``; any other id becomes a stable
int64 from its BLAKE2b hash (at least 2**62, away from the numeric ids), listed in the
result's ``subjects`` table (``fhir_id``, ``subject_id``). References are ``Patient/<id>``
(relative or absolute) or a Bundle's ``urn:uuid:`` full URLs. ``source`` is the file
name (``bundle`` for :func:`events_from_bundle`) and ``line`` the NDJSON line or the
Bundle entry's 1-based position.

Examples
--------
>>> bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
...     {"resource": {"resourceType": "Observation", "status": "final",
...      "subject": {"reference": "Patient/7"}, "effectiveDateTime": "2024-03-01T08:00:00Z",
...      "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
...      "valueQuantity": {"value": 72, "system": "http://unitsofmeasure.org",
...                        "code": "/min"}}}]}
>>> events = events_from_bundle(bundle).events
>>> events[["subject_id", "code", "numeric_value", "unit"]].values.tolist()
[[7, 'HR', 72.0, 'bpm']]
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medpredict.data.errors import DataError
from medpredict.optional import require
from medpredict.timeline.events import (
    BIRTH,
    DEATH,
    HOSPITAL_ADMISSION,
    HOSPITAL_DISCHARGE,
    ICU_ADMISSION,
    ICU_DISCHARGE,
)
from medpredict.timeline.readers.tables import CodeMap, Conversion, SourceResult, convert_units
from medpredict.timeline.validate import (
    IMPOSSIBLE_TIME,
    INVALID_RESOURCE,
    UNKNOWN_CODE,
    UNPARSEABLE_TIME,
    UNPARSEABLE_VALUE,
    Range,
    screen,
    times_with_reasons,
)

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
SNOMED_SYSTEM = "http://snomed.info/sct"
ICD10_SYSTEMS = ("http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-cm")
RXNORM_SYSTEM = "http://www.nlm.nih.gov/research/umls/rxnorm"
RESOURCE_TYPES = ("Patient", "Encounter", "Observation", "Condition", "MedicationRequest")
"""The resource types that give events (Medication resources are read for references)."""

_PER_MIN = {"/min": Conversion("bpm"), "{beats}/min": Conversion("bpm")}
_BREATHS = {"/min": Conversion("breaths/min"), "{breaths}/min": Conversion("breaths/min")}
_EQ = {"meq/L": Conversion("mmol/L"), "mEq/L": Conversion("mmol/L")}
_FAHRENHEIT = {"[degF]": Conversion("degC", 5 / 9, -160 / 9)}
LOINC = {
    "8867-4": CodeMap("HR", _PER_MIN),
    "8480-6": CodeMap("SysABP"),
    "8462-4": CodeMap("DiasABP"),
    "8478-0": CodeMap("MAP"),
    "8310-5": CodeMap("Temp", _FAHRENHEIT),
    "8331-1": CodeMap("Temp", _FAHRENHEIT),  # oral temperature
    "9279-1": CodeMap("RespRate", _BREATHS),
    "59408-5": CodeMap("SaO2"),  # SpO2 by pulse oximetry
    "2708-6": CodeMap("SaO2"),
    "2160-0": CodeMap("Creatinine"),
    "2524-7": CodeMap("Lactate"),
    "2951-2": CodeMap("Na", _EQ),
    "2823-3": CodeMap("K", _EQ),
    "1963-8": CodeMap("HCO3", _EQ),
    "3094-0": CodeMap("BUN"),
    "2345-7": CodeMap("Glucose"),
    "6690-2": CodeMap("WBC"),
    "777-3": CodeMap("Platelets"),
    "4544-3": CodeMap("HCT"),
    "1751-7": CodeMap("Albumin"),
    "1975-2": CodeMap("Bilirubin"),
    "1742-6": CodeMap("ALT"),
    "1920-8": CodeMap("AST"),
    "6768-6": CodeMap("ALP"),
    "2093-3": CodeMap("Cholesterol"),
    "2601-3": CodeMap("Mg", _EQ | {"meq/L": Conversion("mmol/L", 0.5)}),
    "2019-8": CodeMap("PaCO2"),
    "2703-7": CodeMap("PaO2"),
    "2744-1": CodeMap("pH"),
    "10839-9": CodeMap("TroponinI"),
    "6598-7": CodeMap("TroponinT"),
    "9269-2": CodeMap("GCS"),
    "29463-7": CodeMap("Weight", {"[lb_av]": Conversion("kg", 0.45359237)}),
    "8302-2": CodeMap("Height", {"[in_i]": Conversion("cm", 2.54)}),
}
"""LOINC code -> medpredict's canonical code, with conversions from the units it arrives in."""

UNITS = {
    "mm[Hg]": "mmHg", "Cel": "degC", "10*3/uL": "10^3/uL", "10*9/L": "10^3/uL",
    "U/L": "IU/L", "[iU]/L": "IU/L", "ng/mL": "ug/L", "beats/min": "bpm",
    "{breaths}/min": "breaths/min",
}  # fmt: skip
"""UCUM spellings of the range table's units, applied to canonical codes."""

INPATIENT_CLASSES = ("IMP", "ACUTE", "NONAC")
ICU_CODES = ("ICU", "305351004")
_ICU_TEXT = re.compile(r"intensive care|\bICU\b", re.IGNORECASE)
_PATIENT_REF = re.compile(r"(?:^|/)Patient/([^/]+)(?:/_history/[^/]+)?$")
_MEDICATION_REF = re.compile(r"(?:^|/)Medication/([^/]+)(?:/_history/[^/]+)?$")
_FHIR_TIME = (
    r"\d{4}(?:-\d{2}(?:-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})?)?)?)?"
)
_NUMERIC_ID = re.compile(r"^\d{1,18}$")
# validation errors at these fields are left to the screen, which names them
_TIME_FIELDS = {"birthDate", "deceasedDateTime", "period", "effectiveDateTime",
                "effectiveInstant", "effectivePeriod", "onsetDateTime", "onsetPeriod",
                "recordedDate", "authoredOn"}  # fmt: skip
_ROW = ("source", "line", "fhir_id", "raw_time", "code", "raw_value", "text_value", "unit",
        "loinc", "reason")  # fmt: skip


def read_fhir(path: str | Path, ranges: Mapping[str, Range] | None = None) -> SourceResult:
    """Read FHIR R4 resources from a file or a folder of files into screened events.

    Parameters
    ----------
    path : path
        A ``.json`` file (a Bundle or one resource), an ``.ndjson`` file (one resource
        per line, as FHIR Bulk Data writes), either gzip-compressed (``.gz``), or a
        folder of such files (searched recursively).
    ranges : mapping, optional
        Range table (default :func:`medpredict.timeline.validate.load_ranges`).

    Returns
    -------
    SourceResult
        Events, quarantined rows, ``subjects`` (FHIR id -> ``subject_id``), ``tables``
        (resources read per type) and ``not_read`` (types present that give no events).

    Raises
    ------
    DataError
        The path holds no FHIR files, a ``.json`` file is not JSON, or two patient ids
        hash to the same ``subject_id``.

    Examples
    --------
    A hand-made Bundle (synthetic values):

    >>> import json, tempfile
    >>> bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
    ...     {"resource": {"resourceType": "Patient", "id": "p1", "birthDate": "1960-05-01"}},
    ...     {"resource": {"resourceType": "Observation", "status": "final",
    ...      "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2024-01-02T08:00:00Z",
    ...      "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    ...      "valueQuantity": {"value": 72, "unit": "/min"}}}]}
    >>> path = Path(tempfile.mkdtemp()) / "bundle.json"
    >>> _ = path.write_text(json.dumps(bundle))
    >>> result = read_fhir(path)
    >>> result.events["code"].tolist()
    ['MEDS_BIRTH', 'HR']
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _is_fhir_file(p))
        if not files:
            raise DataError(f"{path} holds no FHIR files (.json, .ndjson, optionally .gz)")
    elif path.is_file():
        files = [path]
    else:
        raise DataError(f"FHIR path {path} not found (a .json / .ndjson file or a folder)")
    entries = [entry for file in files for entry in _file_entries(file)]
    return events_from_entries(entries, ranges)


def events_from_bundle(
    bundle: Mapping[str, Any], ranges: Mapping[str, Range] | None = None
) -> SourceResult:
    """The screened events of a parsed FHIR Bundle (e.g. one posted to the service).

    ``source`` is ``"bundle"`` and ``line`` the entry's 1-based position.

    Raises
    ------
    DataError
        ``bundle`` is not a Bundle resource with an ``entry`` list.

    Examples
    --------
    >>> result = events_from_bundle({"resourceType": "Bundle", "type": "collection",
    ...     "entry": [{"resource": {"resourceType": "Patient", "id": "p-1",
    ...                             "gender": "female"}}]})
    >>> result.events[["code", "text_value"]].values.tolist()
    [['GENDER', 'female']]
    >>> result.subjects["fhir_id"].tolist()
    ['p-1']
    """
    return events_from_entries(list(_bundle_entries(bundle, "bundle", None)), ranges)


def events_from_entries(
    entries: Iterable[tuple[str, int, Any, str | None]],
    ranges: Mapping[str, Range] | None = None,
) -> SourceResult:
    """Screened events of ``(source, line, resource, fullUrl)`` entries (resources as dicts).

    Entries that are not JSON objects (an NDJSON line that did not parse is passed as
    its text) are quarantined as invalid resources.

    Examples
    --------
    >>> result = events_from_entries([("post", 1, "{oops", None)])
    >>> result.quarantine[["source", "reason"]].values.tolist()
    [['post', 'invalid resource']]
    """
    entries = list(entries)
    context = _Context(entries)
    rows: list[tuple] = []
    counts: dict[str, int] = {}
    ignored: set[str] = set()
    for source, line, resource, url in entries:
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        if kind in RESOURCE_TYPES or not isinstance(kind, str):
            label = kind if isinstance(kind, str) else "(no resourceType)"
            counts[label] = counts.get(label, 0) + 1
            rows.extend(resource_rows(resource, context, source, line, url))
        elif kind != "Medication":
            ignored.add(kind)
    return _screen_rows(rows, ranges, counts, tuple(sorted(ignored)))


def resource_rows(
    resource: Any,
    context: _Context | None = None,
    source: str = "resource",
    line: int = 1,
    url: str | None = None,
) -> list[tuple]:
    """Candidate rows of one parsed resource: validated, then turned into events.

    Each row is a tuple: source, line, the patient's FHIR id, the time as written,
    code, the value as written, text value, unit, LOINC code (for unit conversion) and
    the reader's reason (None, or why the row is refused). ``url`` is the resource's
    ``fullUrl`` in its Bundle (a Patient without an id is known by it).

    Examples
    --------
    >>> resource_rows({"resourceType": "Patient", "id": "9", "birthDate": "1970-05-01"})
    [('resource', 1, '9', '1970-05-01', 'MEDS_BIRTH', None, None, None, None, None)]
    """
    context = context or _Context([])
    if not isinstance(resource, dict):
        return [(source, line, None, None, "?", _short(resource), None, None, None,
                 INVALID_RESOURCE)]  # fmt: skip
    kind = resource.get("resourceType")
    problem = _validate(resource)
    if problem is None and _entered_in_error(resource):
        problem = "entered-in-error"
    if problem is not None:
        fhir_id = resource.get("id") if kind == "Patient" else context.subject(resource)
        return [(source, line, fhir_id, None, str(kind), problem, None, None, None,
                 INVALID_RESOURCE)]  # fmt: skip
    if kind == "Patient" and not resource.get("id") and url:
        resource = {**resource, "id": url.rsplit(":", 1)[-1].rsplit("/", 1)[-1]}
    builder = {"Patient": patient_rows, "Encounter": encounter_rows,
               "Observation": observation_rows, "Condition": condition_rows,
               "MedicationRequest": medication_request_rows}[kind]  # fmt: skip
    return [(source, line, *row) for row in builder(resource, context)]


def patient_rows(resource: dict, context: _Context) -> list[tuple]:
    """Birth, death and gender of a Patient (rows without source and line).

    Examples
    --------
    >>> [r[2] for r in patient_rows({"id": "1", "birthDate": "1970", "gender": "male"},
    ...                             _Context([]))]
    ['MEDS_BIRTH', 'GENDER']
    """
    fhir_id = str(resource["id"]) if resource.get("id") else None
    rows = []
    if resource.get("birthDate") is not None:
        rows.append((fhir_id, resource["birthDate"], BIRTH, None, None, None, None, None))
    if resource.get("deceasedDateTime") is not None:
        rows.append((fhir_id, resource["deceasedDateTime"], DEATH, None, None, None, None, None))
    if resource.get("gender"):
        rows.append((fhir_id, "", "GENDER", resource["gender"], resource["gender"], None, None,
                     None))  # fmt: skip
    return rows


def encounter_rows(resource: dict, context: _Context) -> list[tuple]:
    """Start and end of an Encounter: hospital, ICU or other stay.

    Examples
    --------
    >>> [r[2] for r in encounter_rows({"class": {"code": "IMP"}, "period": {
    ...     "start": "2020-01-01", "end": "2020-01-03"}}, _Context([]))]
    ['HOSPITAL_ADMISSION', 'HOSPITAL_DISCHARGE']
    """
    subject = context.subject(resource)
    kind = (resource.get("class") or {}).get("code") or ""
    if _is_icu(resource):
        start, end = ICU_ADMISSION, ICU_DISCHARGE
    elif kind in INPATIENT_CLASSES:
        start, end = HOSPITAL_ADMISSION, HOSPITAL_DISCHARGE
    else:
        start, end = f"ENCOUNTER//{kind}", f"ENCOUNTER_END//{kind}"
    period = resource.get("period") or {}
    rows = [(subject, period.get("start"), start, None, None, None, None, None)]
    if period.get("end") is not None:
        rows.append((subject, period["end"], end, None, None, None, None, None))
    return rows


def observation_rows(resource: dict, context: _Context) -> list[tuple]:
    """One row per value of an Observation (its own and each component's).

    Examples
    --------
    >>> panel = {"code": {"coding": [{"system": LOINC_SYSTEM, "code": "85354-9"}]},
    ...          "component": [{"code": {"coding": [{"system": LOINC_SYSTEM,
    ...                         "code": "8480-6"}]}, "valueQuantity": {"value": 120}}]}
    >>> [(r[2], r[3]) for r in observation_rows(panel, _Context([]))]
    [('SysABP', '120')]
    """
    subject = context.subject(resource)
    when = (resource.get("effectiveDateTime") or resource.get("effectiveInstant")
            or (resource.get("effectivePeriod") or {}).get("start"))  # fmt: skip
    parts = [c for c in resource.get("component") or [] if _has_value(c)]
    if _has_value(resource) or not parts:
        parts = [resource, *parts]
    rows = []
    for part in parts:
        code, loinc, reason = _loinc_code(part.get("code") or {})
        raw_value, text, unit = _value(part)
        rows.append((subject, when, code, raw_value, text, unit, loinc, reason))
    return rows


def condition_rows(resource: dict, context: _Context) -> list[tuple]:
    """A Condition's ICD-10 (preferred) or SNOMED CT code at its onset.

    Examples
    --------
    >>> condition_rows({"code": {"coding": [{"system": SNOMED_SYSTEM, "code": "44054006"}]},
    ...                 "onsetDateTime": "2019"}, _Context([]))[0][1:3]
    ('2019', 'SNOMED//44054006')
    """
    when = (resource.get("onsetDateTime") or (resource.get("onsetPeriod") or {}).get("start")
            or resource.get("recordedDate"))  # fmt: skip
    codings = (resource.get("code") or {}).get("coding") or []
    code, reason = None, None
    for systems, prefix in ((ICD10_SYSTEMS, "ICD10"), ((SNOMED_SYSTEM,), "SNOMED")):
        found = [c.get("code") for c in codings if c.get("system") in systems and c.get("code")]
        if found:
            code = f"{prefix}//{found[0]}"
            break
    if code is None:
        code, reason = _unknown(resource.get("code") or {}), UNKNOWN_CODE
    return [(context.subject(resource), when, code, None, None, None, None, reason)]


def medication_request_rows(resource: dict, context: _Context) -> list[tuple]:
    """A MedicationRequest's RxNorm code at ``authoredOn``.

    Examples
    --------
    >>> medication_request_rows({"authoredOn": "2020-01-01", "medicationCodeableConcept": {
    ...     "coding": [{"system": RXNORM_SYSTEM, "code": "5224"}]}}, _Context([]))[0][2]
    'RXNORM//5224'
    """
    concept = resource.get("medicationCodeableConcept")
    reference = (resource.get("medicationReference") or {}).get("reference")
    if concept is None and reference:
        concept = context.medication(reference)
    codings = (concept or {}).get("coding") or []
    found = [c.get("code") for c in codings if c.get("system") == RXNORM_SYSTEM and c.get("code")]
    if found:
        code, reason = f"RXNORM//{found[0]}", None
    else:
        code = _unknown(concept or {}) if concept else f"medication {reference}"
        reason = UNKNOWN_CODE
    return [(context.subject(resource), resource.get("authoredOn"), code, None, None, None,
             None, reason)]  # fmt: skip


def parse_fhir_times(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """FHIR dates and dateTimes as naive UTC times, and each one's reason (or None).

    Examples
    --------
    >>> times, reasons = parse_fhir_times(pd.Series(
    ...     ["1960", "2020-02", "2020-01-01T08:00:00+02:00", "2020-02-30", "noon"]))
    >>> [str(t) for t in times]
    ['1960-01-01 00:00:00', '2020-02-01 00:00:00', '2020-01-01 06:00:00', 'NaT', 'NaT']
    >>> reasons.tolist()
    [None, None, None, 'impossible time', 'unparseable time']
    """
    text = text.reset_index(drop=True).fillna("").astype(str).str.strip()
    shaped = text.str.fullmatch(_FHIR_TIME).to_numpy(dtype=bool)
    padded = text.where(text.str.len() != 4, text + "-01-01")
    padded = padded.where(padded.str.len() != 7, padded + "-01")
    return times_with_reasons(padded, shaped)


def subject_ids(fhir_ids: Iterable[str]) -> pd.DataFrame:
    """The ``subjects`` table: each FHIR patient id and its int64 ``subject_id``.

    Raises
    ------
    DataError
        Two ids map to the same ``subject_id``.

    Examples
    --------
    >>> table = subject_ids(["42", "abc"])
    >>> table["subject_id"].iloc[0], bool(table["subject_id"].iloc[1] >= 2**62)
    (np.int64(42), True)
    """
    ids = sorted(set(fhir_ids))
    numbers = []
    for fhir_id in ids:
        if _NUMERIC_ID.match(fhir_id):
            numbers.append(int(fhir_id))
        else:
            digest = hashlib.blake2b(fhir_id.encode(), digest_size=8).digest()
            numbers.append((int.from_bytes(digest, "big") & (2**62 - 1)) | 2**62)
    table = pd.DataFrame({"fhir_id": pd.Series(ids, dtype="string"),
                          "subject_id": np.array(numbers, dtype=np.int64)})  # fmt: skip
    clash = table[table["subject_id"].duplicated(keep=False)]
    if len(clash):
        raise DataError(
            f"FHIR patient ids {', '.join(clash['fhir_id'].tolist()[:4])} map to the same "
            "subject_id; rename one of them"
        )
    return table


class _Context:
    """What resolving references needs: the Bundle's full URLs and Medication resources."""

    def __init__(self, entries: list[tuple[str, int, Any, str | None]]) -> None:
        self.urls: dict[str, str] = {}
        self.medications: dict[str, dict] = {}
        for _, _, resource, url in entries:
            if not isinstance(resource, dict):
                continue
            kind, rid = resource.get("resourceType"), resource.get("id")
            if kind == "Patient" and url:
                self.urls[url] = str(rid) if rid else url.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
            if kind == "Medication" and isinstance(resource.get("code"), dict):
                for key in (url, f"Medication/{rid}" if rid else None):
                    if key:
                        self.medications[key] = resource["code"]

    def subject(self, resource: dict) -> str | None:
        reference = (resource.get("subject") or {}).get("reference")
        if not isinstance(reference, str):
            return None
        if reference in self.urls:
            return self.urls[reference]
        if reference.startswith("urn:uuid:"):
            return reference.removeprefix("urn:uuid:")
        match = _PATIENT_REF.search(reference)
        return match.group(1) if match else None

    def medication(self, reference: str) -> dict | None:
        if reference in self.medications:
            return self.medications[reference]
        match = _MEDICATION_REF.search(reference)
        return self.medications.get(f"Medication/{match.group(1)}") if match else None


def _screen_rows(rows, ranges, counts, ignored) -> SourceResult:
    frame = pd.DataFrame(rows, columns=list(_ROW))
    for column in ("raw_time", "raw_value"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    static = frame["code"].eq("GENDER") & frame["raw_time"].eq("")
    time, time_reason = parse_fhir_times(frame["raw_time"].where(~static, ""))
    time_reason[static.to_numpy()] = None
    value = pd.to_numeric(frame["raw_value"].where(frame["text_value"].isna()), errors="coerce")
    value = value.astype("float64")
    value_reason = frame["raw_value"].notna() & frame["text_value"].isna() & value.isna()
    fhir_ids = frame["fhir_id"].dropna().astype(str)
    subjects = subject_ids(fhir_ids)
    position = pd.Index(subjects["fhir_id"].astype(object)).get_indexer(frame["fhir_id"])
    known = np.append(subjects["subject_id"].to_numpy(), 0)  # position -1: no patient
    subject = pd.array(known[position], dtype="Int64")
    subject = pd.Series(subject).mask(position < 0)
    reasons = frame["reason"].astype(object).where(frame["reason"].notna(), None)
    has_subject = subject.notna().to_numpy()
    for mask, reason in ((time_reason == UNPARSEABLE_TIME, UNPARSEABLE_TIME),
                         (time_reason == IMPOSSIBLE_TIME, IMPOSSIBLE_TIME),
                         (value_reason, UNPARSEABLE_VALUE)):  # fmt: skip
        hit = np.asarray(mask, dtype=bool) & has_subject & reasons.isna().to_numpy()
        reasons[hit] = reason
    unit = frame["unit"].astype("string")
    key = frame["loinc"].astype("string")
    mapped = key.isin(LOINC).fillna(False).astype(bool)
    value, unit = convert_units(value, unit, key, mapped, LOINC, UNITS)
    candidates = pd.DataFrame(
        {
            "subject_id": subject,
            "time": time.where(~static.to_numpy()),
            "code": frame["code"].astype("string"),
            "numeric_value": value,
            "text_value": frame["text_value"].astype("string"),
            "unit": unit.astype("string"),
            "source": frame["source"].astype(str),
            "line": frame["line"].astype(np.int64),
            "raw_time": frame["raw_time"],
            "raw_value": frame["raw_value"],
        }
    )
    result = screen(candidates, reasons, ranges=ranges)
    return SourceResult(result.events, result.quarantine, result.rows_in, subjects=subjects,
                        tables=counts, not_read=ignored)  # fmt: skip


def _validate(resource: dict) -> str | None:
    """None if the resource validates (or fails only in a time or value), else why not."""
    r4b = require("fhir.resources.R4B", extra="timeline")
    from pydantic import ValidationError

    kind = resource.get("resourceType")
    if not isinstance(kind, str):
        return "the resource has no resourceType"
    try:
        model = r4b.get_fhir_model_class(kind)
    except (ValueError, KeyError, TypeError):
        return f"resourceType {kind!r} is not a FHIR R4 resource"
    try:
        model.model_validate(resource)
    except ValidationError as err:
        errors = [e for e in err.errors() if not _left_to_screen(e["loc"])]
        if errors:
            first = errors[0]
            where = ".".join(str(p) for p in first["loc"]) or kind
            return _short(f"{where}: {first['msg']}")
    return None


def _left_to_screen(loc: tuple) -> bool:
    if loc and loc[0] in _TIME_FIELDS:
        return True
    return len(loc) >= 2 and loc[-2:] == ("valueQuantity", "value")


def _entered_in_error(resource: dict) -> bool:
    if resource.get("status") == "entered-in-error":
        return True
    codings = (resource.get("verificationStatus") or {}).get("coding") or []
    return any(c.get("code") == "entered-in-error" for c in codings)


def _is_icu(resource: dict) -> bool:
    if (resource.get("class") or {}).get("code") in ICU_CODES:
        return True
    for concept in resource.get("type") or []:
        codings = concept.get("coding") or []
        if any(c.get("code") in ICU_CODES for c in codings):
            return True
        texts = [concept.get("text") or "", *(c.get("display") or "" for c in codings)]
        if any(_ICU_TEXT.search(t) for t in texts):
            return True
    return False


def _has_value(part: dict) -> bool:
    return any(k.startswith("value") for k in part)


def _loinc_code(concept: dict) -> tuple[str, str | None, str | None]:
    codings = concept.get("coding") or []
    loinc = [c.get("code") for c in codings if c.get("system") == LOINC_SYSTEM and c.get("code")]
    if not loinc:
        return _unknown(concept), None, UNKNOWN_CODE
    code = loinc[0]
    return (LOINC[code].code if code in LOINC else f"LOINC//{code}"), code, None


def _unknown(concept: dict) -> str:
    codings = concept.get("coding") or []
    if codings:
        return f"{codings[0].get('system') or '?'}|{codings[0].get('code') or '?'}"
    return concept.get("text") or "?"


def _value(part: dict) -> tuple[Any, str | None, str | None]:
    """(value as written, text value, unit) of an Observation or component."""
    quantity = part.get("valueQuantity")
    if isinstance(quantity, dict):
        unit = quantity.get("code") if quantity.get("system") == UCUM_SYSTEM else None
        unit = unit or quantity.get("unit") or quantity.get("code")
        value = quantity.get("value")
        return (None if value is None else str(value)), None, unit
    if "valueInteger" in part:
        return str(part["valueInteger"]), None, None
    for key in ("valueString", "valueBoolean", "valueDateTime", "valueTime"):
        if key in part:
            text = str(part[key]).lower() if key == "valueBoolean" else str(part[key])
            return text, text, None
    concept = part.get("valueCodeableConcept")
    if isinstance(concept, dict):
        codings = concept.get("coding") or []
        text = concept.get("text") or next(
            (c.get("display") or c.get("code") for c in codings if c.get("display")
             or c.get("code")), None)  # fmt: skip
        return text, text, None
    return None, None, None


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_fhir_file(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return name.endswith((".json", ".ndjson"))


def _file_entries(path: Path) -> Iterator[tuple[str, int, Any, str | None]]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise DataError(f"FHIR file {path} could not be read: {err}") from None
    if path.name.lower().removesuffix(".gz").endswith(".ndjson"):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                resource = json.loads(line)
            except json.JSONDecodeError:
                yield path.name, number, line, None
                continue
            if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
                for source, _, inner, url in _bundle_entries(resource, path.name, None):
                    yield source, number, inner, url
            else:
                yield path.name, number, resource, None
        return
    try:
        resource = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"FHIR file {path} is not JSON: {err}") from None
    if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
        yield from _bundle_entries(resource, path.name, path)
    else:
        yield path.name, 1, resource, None


def _bundle_entries(bundle: Any, source: str, path: Path | None):
    where = f"FHIR file {path}" if path else "the FHIR Bundle"
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        raise DataError(f"{where} is not a Bundle: expected resourceType 'Bundle'")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise DataError(f"{where}: 'entry' must be a list of entries")
    for number, entry in enumerate(entries, 1):
        resource = entry.get("resource") if isinstance(entry, dict) else entry
        url = entry.get("fullUrl") if isinstance(entry, dict) else None
        yield source, number, resource, url
