"""MIMIC-style relational tables (MIMIC-IV, MIMIC-III) read into events by a YAML mapping.

The shipped mappings ``mappings/mimic4.yaml`` and ``mappings/mimic3.yaml`` (or a file of
your own, in the layout of :mod:`medpredict.timeline.readers.tables`) say which events
each table's rows give; ``codes:`` maps item ids to medpredict's canonical names (those of
``ranges.yaml``: ``HR``, ``Creatinine``, ...), so the range and unit checks apply to them.

Birth (``MEDS_BIRTH``) is January 1 of ``anchor_year - anchor_age`` for MIMIC-IV, as the
MIMIC-IV MEDS ETL writes it, and ``DOB`` for MIMIC-III; death (``MEDS_DEATH``) comes from
``dod`` / ``DOD`` and the admissions' ``deathtime``, so the screen quarantines events
before birth or after death.

Examples
--------
>>> mapping = load_mapping("mimic4")
>>> sorted(mapping.tables)[:3]
['admissions', 'chartevents', 'diagnoses_icd']
>>> mapping.tables["chartevents"].events[0].codes["220045"].code
'HR'
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from medpredict.timeline.readers.tables import SourceResult, load_mapping, read_tables
from medpredict.timeline.validate import Range

__all__ = ["load_mapping", "read_mimic"]


def read_mimic(
    folder: str | Path,
    mapping: str | Path = "mimic4",
    ranges: Mapping[str, Range] | None = None,
) -> SourceResult:
    """Read the MIMIC-style tables of ``folder`` into screened events.

    Parameters
    ----------
    folder : path
        Folder holding the tables (searched recursively, so MIMIC-IV's ``hosp/`` and
        ``icu/`` folders work), each as ``<table>.csv``, ``.csv.gz`` or ``.parquet``;
        file names are matched without regard to case (MIMIC-III's ``PATIENTS.csv.gz``).
        Any subset of the mapping's tables may be present.
    mapping : str or path
        ``"mimic4"``, ``"mimic3"`` or the path of a mapping YAML file.
    ranges : mapping, optional
        Range table (default :func:`medpredict.timeline.validate.load_ranges`).

    Returns
    -------
    SourceResult
        Events, quarantined rows, ``tables`` (rows read per table) and ``not_read``
        (the mapping's tables the folder lacks).

    Raises
    ------
    DataError
        The mapping is invalid, the folder holds none of its tables, a table appears
        twice, or a table lacks a column the mapping names (the message names table,
        key and column).

    Examples
    --------
    Two hand-made MIMIC-IV tables (synthetic values in the real column layout):

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "patients.csv").write_text(
    ...     "subject_id,gender,anchor_age,anchor_year,dod\\n10,F,60,2150,\\n")
    >>> _ = (folder / "chartevents.csv").write_text(
    ...     "subject_id,itemid,charttime,valuenum,valueuom,value\\n"
    ...     "10,220045,2150-03-01 08:00:00,88,bpm,88\\n"
    ...     "10,220045,2150-02-30 09:00:00,90,bpm,90\\n")
    >>> result = read_mimic(folder, mapping="mimic4")
    >>> print(result.summary())
    rows in 4 = events stored 3 + rows quarantined 1
      impossible time: 1
    """
    return read_tables(folder, load_mapping(mapping), ranges, kind="MIMIC")
