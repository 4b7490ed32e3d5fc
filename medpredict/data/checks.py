"""Named checks of a table, each refusing unusable data with a :class:`DataError`.

Every ``check_*`` function takes a table (or one column of it) and returns nothing, or
the checked values parsed, when the data can be used; otherwise it raises a
:class:`~medpredict.data.errors.DataError` naming the column, the rows and what was
expected. Rows are 1-based positions in the table given (a file's data rows, the
header not counted). The cohort builder, the table readers, the model schema and the
readers of other modalities call these checks; they can also be run on a table before
a study.

Examples
--------
>>> from medpredict.data.datasets import load_dataset
>>> pima = load_dataset("pima_tr")
>>> check_columns_present(pima, ["glu", "type"], role="study")
>>> check_binary_outcome(pima["type"], positive_class="Yes")
'Yes'
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medpredict.data.errors import DataError, describe_limits, describe_rows

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".txt", ".gz")
Limits = tuple[float | None, float | None]
"""A column's physical limits ``(lowest, highest)``; None where there is no limit."""


def _at(where: str | None) -> str:
    return f"{where}: " if where else ""


def _rows(mask: np.ndarray | pd.Series) -> list[int]:
    """1-based table rows of the true values of ``mask``.

    A Series keeps the integer index of the table it was read from, so its labels are
    table rows even after rows were excluded (e.g. rows without an outcome).
    """
    if isinstance(mask, pd.Series) and pd.api.types.is_integer_dtype(mask.index):
        return (mask.index[mask.to_numpy(dtype=bool)] + 1).tolist()
    return (np.flatnonzero(np.asarray(mask)) + 1).tolist()


def check_table_file(path: str | Path, what: str = "data file") -> None:
    """Refuse a table file that is missing or neither CSV nor Parquet.

    Parameters
    ----------
    path : the file; ``.csv`` (``.txt``, ``.gz``) or ``.parquet`` (``.pq``).
    what : how the message names the file (e.g. ``"input file"``).

    Examples
    --------
    >>> check_table_file("visits.xlsx")
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: data file visits.xlsx does not exist
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in PARQUET_SUFFIXES + CSV_SUFFIXES:
        raise DataError(
            f"{what} {path}: expected a .csv or .parquet file, got {suffix or 'no suffix'!r}"
        )


def check_unique_column_names(header: Sequence[Hashable], where: str = "the table") -> None:
    """Refuse a header that repeats a column name (blank names are not compared).

    Parameters
    ----------
    header : the column names exactly as written (pandas renames repeats to ``glu.1``).
    where : how the message names the table.

    Examples
    --------
    >>> check_unique_column_names(["glu", "bp", "glu"], where="data file pima.csv")
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: data file pima.csv: column names must be unique; repeated: glu
    """
    repeated = sorted(str(n) for n, count in Counter(header).items() if n and count > 1)
    if repeated:
        raise DataError(f"{where}: column names must be unique; repeated: {', '.join(repeated)}")


def check_has_rows(frame: pd.DataFrame, where: str = "the table") -> None:
    """Refuse a table without data rows.

    Examples
    --------
    >>> check_has_rows(pd.DataFrame({"glu": []}), where="prediction input")
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: prediction input has column names but no data rows
    """
    if len(frame) == 0:
        names = "column names but " if len(frame.columns) else ""
        raise DataError(f"{where} has {names}no data rows")


def check_columns_present(
    table: pd.DataFrame | Iterable[Hashable],
    required: Iterable[Hashable],
    role: str = "",
    where: str = "the data",
) -> None:
    """Refuse a table that lacks a required column, listing the columns it has.

    Parameters
    ----------
    table : the table, or its column names.
    required : the columns that must be there.
    role : what the columns are for, as the message names them (e.g. ``"target"``).
    where : how the message names the table.

    Examples
    --------
    >>> from medpredict.data.datasets import load_dataset
    >>> pima = load_dataset("pima_tr")
    >>> check_columns_present(pima, ["outcome"], role="target")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: target column(s) 'outcome' not found in the data;
    available columns: npreg, glu, bp, skin, bmi, ped, age, type
    """
    available = list(table)
    absent = [name for name in required if name not in available]
    if absent:
        what = f"{role} column(s)" if role else "column(s)"
        raise DataError(
            f"{what} {', '.join(map(repr, absent))} not found in {where}; "
            f"available columns: {', '.join(map(str, available))}"
        )


def _classes(outcome: pd.Series) -> list[Any]:
    """The outcome's values in order of appearance; at least one."""
    values = outcome.dropna().unique().tolist()
    if not values:
        raise DataError(f"target {outcome.name!r} has no value in any row")
    return values


def check_binary_outcome(outcome: pd.Series, positive_class: Any = None) -> Any:
    """Refuse an outcome without exactly two classes, or without ``positive_class``.

    Parameters
    ----------
    outcome : the target column (missing values are not a class).
    positive_class : the event; matched also by its text (``"1"`` finds ``1``). None
        takes the last value in text order.

    Returns
    -------
    The outcome value that is the positive class, as the data spell it.

    Examples
    --------
    >>> from medpredict.data.datasets import load_dataset
    >>> pbc = load_dataset("pbc")
    >>> check_binary_outcome(pbc["status"])  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: target 'status' has 3 classes (0, 1, 2) but the task
    is binary; set task: multiclass or recode the outcome
    >>> check_binary_outcome(pbc["status"] == 2, positive_class="True")
    True
    """
    values = _classes(outcome)
    name = outcome.name
    if len(values) < 2:
        raise DataError(
            f"target {name!r} has a single class ({values[0]!r}); a binary study needs two"
        )
    in_order = sorted(values, key=str)
    if len(values) > 2:
        raise DataError(
            f"target {name!r} has {len(values)} classes "
            f"({', '.join(map(repr, in_order[:6]))}) but the task is binary; "
            "set task: multiclass or recode the outcome"
        )
    positive = in_order[-1] if positive_class is None else positive_class
    matches = [v for v in values if v == positive or str(v) == str(positive)]
    if not matches:
        raise DataError(
            f"positive_class {positive!r} is not a value of target {name!r}; "
            f"values are {in_order}"
        )
    return matches[0]


def check_multiclass_outcome(outcome: pd.Series) -> None:
    """Refuse an outcome with fewer than two classes.

    Examples
    --------
    >>> from medpredict.data.datasets import load_dataset
    >>> pbc = load_dataset("pbc")
    >>> check_multiclass_outcome(pbc["status"])
    >>> check_multiclass_outcome(pbc.loc[pbc["status"] == 1, "status"])
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: target 'status' has a single class (1)
    """
    values = _classes(outcome)
    if len(values) < 2:
        raise DataError(f"target {outcome.name!r} has a single class ({values[0]!r})")


def _values_at(values: pd.Series, mask: np.ndarray) -> str:
    """Up to four distinct values of ``values`` where ``mask`` is true, as reprs."""
    return ", ".join(repr(v.item() if hasattr(v, "item") else v)
                     for v in pd.unique(values[mask])[:4])


def _same_value(values: pd.Series, code: Any) -> pd.Series:
    """Where ``values`` equal ``code``, also by text (``"1"`` matches ``1``)."""
    return (values == code) | (values.astype(str) == str(code))


def check_event_codes(
    event: pd.Series,
    event_value: Any,
    censored_value: Any,
    competing_values: Sequence[Any] = (),
) -> np.ndarray:
    """Map a time-to-event study's event column to 0 (censored), 1 (event), 2 (competing).

    Parameters
    ----------
    event : the event column (missing values are refused).
    event_value : the code of the event the study predicts.
    censored_value : the code of patients event-free at the end of follow-up.
    competing_values : codes of events that end follow-up for another reason.

    Examples
    --------
    >>> check_event_codes(pd.Series([0, 2, 1], name="status"), 2, 0, [1]).tolist()
    [0, 1, 2]
    >>> check_event_codes(pd.Series([0, 2, 1], name="status"), 2, 0)
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: event column 'status' holds 1 in row 3, which is neither the event (2) nor censored (0); declare it in survival.competing_values or recode it
    """  # noqa: E501
    check_no_missing(event, "event column")
    codes = np.full(len(event), -1)
    for code, value in ((1, event_value), (0, censored_value)):
        codes[_same_value(event, value).to_numpy()] = code
    for value in competing_values:
        codes[_same_value(event, value).to_numpy() & (codes == -1)] = 2
    unknown = codes == -1
    if unknown.any():
        raise DataError(
            f"event column {event.name!r} holds {_values_at(event, unknown)} in "
            f"{describe_rows(_rows(unknown))}, "
            f"which is neither the event ({event_value!r}) nor censored ({censored_value!r}); "
            "declare it in survival.competing_values or recode it"
        )
    if not (codes == 1).any():
        raise DataError(
            f"event column {event.name!r} has no event ({event_value!r}): every patient is "
            "censored or had a competing event, so there is nothing to predict"
        )
    return codes


def check_treatment(
    treatment: pd.Series, treated_value: Any, control_value: Any, min_per_arm: int = 10
) -> np.ndarray:
    """Map a treatment column to 1 (treated) and 0 (control); other values are refused.

    Parameters
    ----------
    treatment : the treatment column (missing values are refused).
    treated_value, control_value : the codes of the two arms.
    min_per_arm : the fewest patients an arm may have.

    Examples
    --------
    >>> check_treatment(pd.Series(["drug", "placebo"] * 10, name="arm"), "drug",
    ...                 "placebo").tolist()[:4]
    [1, 0, 1, 0]
    >>> check_treatment(pd.Series(["drug", "placebo", "both"] * 10, name="arm"), "drug",
    ...                 "placebo")
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: treatment column 'arm' holds 'both' in rows 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, which is neither treated ('drug') nor control ('placebo'); recode it, or leave those patients out (only two arms are compared)
    """  # noqa: E501
    check_no_missing(treatment, "treatment column")
    treated = _same_value(treatment, treated_value).to_numpy()
    control = _same_value(treatment, control_value).to_numpy() & ~treated
    unknown = ~(treated | control)
    if unknown.any():
        raise DataError(
            f"treatment column {treatment.name!r} holds {_values_at(treatment, unknown)} in "
            f"{describe_rows(_rows(unknown))}, which is neither treated ({treated_value!r}) "
            f"nor control ({control_value!r}); recode it, or leave those patients out (only "
            "two arms are compared)"
        )
    for name, arm in (("treated", treated), ("control", control)):
        if arm.sum() < min_per_arm:
            raise DataError(
                f"treatment column {treatment.name!r}: the {name} arm has {int(arm.sum())} "
                f"patient(s); comparing treatments needs at least {min_per_arm} in each arm"
            )
    return treated.astype(int)


def check_durations(duration: pd.Series) -> np.ndarray:
    """Refuse follow-up times that are missing, not numbers, not finite, zero or negative.

    Examples
    --------
    >>> check_durations(pd.Series([12.0, 30.5], name="days")).tolist()
    [12.0, 30.5]
    >>> check_durations(pd.Series([12.0, 0.0, -3.0], name="days"))
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: duration column 'days' holds times <= 0 in rows 2, 3; follow-up must be positive (an event on the day of entry needs a small positive time, e.g. 0.5)
    """  # noqa: E501
    check_no_missing(duration, "duration column")
    values = check_numeric(duration)
    infinite = ~np.isfinite(values.to_numpy())
    if infinite.any():
        raise DataError(
            f"duration column {duration.name!r} holds infinite values in "
            f"{describe_rows(_rows(infinite))}"
        )
    bad = values.to_numpy() <= 0
    if bad.any():
        raise DataError(
            f"duration column {duration.name!r} holds times <= 0 in "
            f"{describe_rows(_rows(bad))}; follow-up must be positive (an event on the day "
            "of entry needs a small positive time, e.g. 0.5)"
        )
    return values.to_numpy(dtype=float)


def check_horizons(
    horizons: Sequence[float], time: np.ndarray, event: np.ndarray, unit: str = ""
) -> None:
    """Refuse prediction horizons the follow-up cannot inform.

    A horizon needs at least one event up to it and patients still followed after it.

    Examples
    --------
    >>> check_horizons([400.0], np.array([100.0, 200.0, 300.0]), np.array([1, 0, 1]), "days")
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: horizon 400 days is beyond the follow-up: no patient is followed past 400 (longest follow-up 300 days); choose horizons below 300
    """  # noqa: E501
    unit = f" {unit}" if unit else ""
    longest = float(np.max(time))
    for horizon in horizons:
        if not np.any(time > horizon):
            raise DataError(
                f"horizon {horizon:g}{unit} is beyond the follow-up: no patient is followed "
                f"past {horizon:g} (longest follow-up {longest:g}{unit}); choose horizons "
                f"below {longest:g}"
            )
        if not np.any((time <= horizon) & (np.asarray(event) == 1)):
            raise DataError(
                f"horizon {horizon:g}{unit} has no event before it (first event at "
                f"{float(np.min(time[np.asarray(event) == 1])):g}{unit}); choose a later horizon"
            )


def check_known_classes(outcome: pd.Series, classes: Sequence[Any]) -> None:
    """Refuse outcome values outside ``classes`` (e.g. those a model was developed on).

    Examples
    --------
    >>> outcome = pd.Series(["No", "Yes", "Maybe"], name="type")
    >>> check_known_classes(outcome, ["No", "Yes"])  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: target 'type' holds ['Maybe'] not seen in the
    development classes ['No', 'Yes']
    """
    unknown = [v for v in outcome.dropna().unique().tolist() if v not in classes]
    if unknown:
        raise DataError(
            f"target {outcome.name!r} holds {unknown[:5]} not seen in the development "
            f"classes {list(classes)}"
        )


def check_unique_ids(ids: pd.Series, hint: str = "") -> None:
    """Refuse an id column whose values repeat, naming the ids and their rows.

    Parameters
    ----------
    ids : the id column.
    hint : what to do instead, appended to the message.

    Examples
    --------
    >>> from medpredict.data.datasets import load_dataset
    >>> pbc = load_dataset("pbc")
    >>> check_unique_ids(pbc["id"])
    >>> check_unique_ids(pbc["stage"].rename("visit"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: id column 'visit' must be unique but [4.0, 3.0, ...
    """
    duplicated = ids.duplicated(keep=False)
    if duplicated.any():
        repeated = ids[duplicated].unique()[:5].tolist()
        raise DataError(
            f"id column {ids.name!r} must be unique but {repeated} repeat "
            f"({describe_rows(_rows(duplicated))})" + (f"; {hint}" if hint else "")
        )


def check_no_missing(column: pd.Series, role: str = "column", where: str | None = None) -> None:
    """Refuse a column with a missing value, naming the rows.

    Parameters
    ----------
    column : the column.
    role : what the column is, as the message names it (e.g. ``"patient_column"``).
    where : the table, named first in the message.

    Examples
    --------
    >>> from medpredict.data.datasets import load_dataset
    >>> pbc = load_dataset("pbc")
    >>> check_no_missing(pbc["sex"])
    >>> check_no_missing(pbc["chol"])  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: column 'chol' is missing in rows 14, 40, 41, 42, 45,
    49, 53, 70, 95, 96 and 124 more
    """
    missing = column.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"{_at(where)}{role} {column.name!r} is missing in {describe_rows(_rows(missing))}"
        )


def check_feature_columns(columns: Sequence[Hashable]) -> None:
    """Refuse a study left with no feature columns once the other roles are taken.

    Examples
    --------
    >>> check_feature_columns(["glu", "bmi"])
    >>> check_feature_columns([])
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: no feature columns left: declare features or check exclude
    """
    if not columns:
        raise DataError("no feature columns left: declare features or check exclude")


def uninformative_reason(column: pd.Series) -> str | None:
    """Why ``column`` cannot inform a model (all missing, or one value throughout), or None.

    A column that is constant where recorded but sometimes missing still informs
    through its missingness.

    Examples
    --------
    >>> uninformative_reason(pd.Series(["A", "A"]))
    "every value is 'A' (constant)"
    >>> uninformative_reason(pd.Series(["A", None])) is None
    True
    """
    if column.isna().all():
        return "every value is missing"
    if column.nunique(dropna=True) == 1 and not column.isna().any():
        return f"every value is {column.dropna().iloc[0]!r} (constant)"
    return None


def check_informative(frame: pd.DataFrame, columns: Iterable[Hashable] | None = None) -> None:
    """Refuse a feature column that is entirely missing or constant.

    Parameters
    ----------
    frame : the features.
    columns : the columns to check (default: all).

    Examples
    --------
    >>> from medpredict.data.datasets import load_dataset
    >>> pima = load_dataset("pima_tr").assign(clinic="A")
    >>> check_informative(pima, ["glu", "bmi"])
    >>> check_informative(pima)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: feature column 'clinic' carries no information:
    every value is 'A' (constant)
    """
    for name in frame.columns if columns is None else columns:
        problem = uninformative_reason(frame[name])
        if problem is not None:
            raise DataError(f"feature column {name!r} carries no information: {problem}")


def check_numeric(column: pd.Series, where: str | None = None) -> pd.Series:
    """Parse ``column`` as numbers (booleans count as 0/1), refusing values that do not parse.

    Missing values stay missing.

    Parameters
    ----------
    column : the column, numbers or text.
    where : the table, named first in the message.

    Returns
    -------
    The column as floats.

    Examples
    --------
    >>> check_numeric(pd.Series(["30.2", None], name="bmi")).tolist()
    [30.2, nan]
    >>> check_numeric(pd.Series(["30.2", "32,1"], name="bmi"))  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: column 'bmi' should hold numbers but row 2
    (data row numbers, 1-based) hold '32,1'
    """
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return column.astype(float)
    parsed = pd.to_numeric(column, errors="coerce")
    bad = column.notna() & parsed.isna()
    if bad.any():
        examples = ", ".join(repr(v) for v in column[bad].unique()[:3])
        raise DataError(
            f"{_at(where)}column {column.name!r} should hold numbers but "
            f"{describe_rows(_rows(bad))} (data row numbers, 1-based) hold {examples}"
        )
    return parsed.astype(float)


def _date_shape(value: str) -> str:
    """``"N/N/N"`` for ``10/23/64`` or ``3/2/94``, ``"YYYY-N-N"`` for ``1994-03-02``."""
    date = re.split(r"[ T]", value.strip(), maxsplit=1)[0]
    return re.sub(r"\d{1,2}", "N", re.sub(r"\d{3,}", "YYYY", date))


def date_shapes(raw: pd.Series) -> pd.Series:
    """The format of each date written as text: digits replaced by ``N`` or ``YYYY``.

    Values that are not text (already dates, or missing) are left out.

    Examples
    --------
    >>> date_shapes(pd.Series(["1994-03-02", "3/2/94", None])).tolist()
    ['YYYY-N-N', 'N/N/N']
    """
    return raw[raw.map(lambda v: isinstance(v, str))].map(_date_shape).astype(object)


def check_dates(raw: pd.Series) -> pd.Series:
    """Parse a time column, refusing missing or unparseable dates.

    Dates of one format are parsed as that format; mixed formats value by value.

    Returns
    -------
    The column as timestamps.

    Examples
    --------
    >>> check_dates(pd.Series(["2020-01-31", "2020-02-01"], name="visit")).dt.day.tolist()
    [31, 1]
    >>> check_dates(pd.Series(["2020-01-31", "31/31/2020"], name="visit"))
    ... # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: time column 'visit' has missing or unparseable dates
    in row 2; expected ISO dates such as 2024-03-31
    """
    mixed = date_shapes(raw).nunique() > 1
    times = pd.to_datetime(raw, errors="coerce", format="mixed" if mixed else None)
    if times.isna().any():
        raise DataError(
            f"time column {raw.name!r} has missing or unparseable dates in "
            f"{describe_rows(_rows(times.isna()))}; expected ISO dates such as 2024-03-31"
        )
    return times


def check_allowed_values(
    column: pd.Series, allowed: Iterable[Any], where: str | None = None
) -> None:
    """Refuse values outside ``allowed`` (a missing value is not allowed).

    Examples
    --------
    >>> from medpredict.data.datasets import load_dataset
    >>> pima = load_dataset("pima_tr")
    >>> check_allowed_values(pima["type"], ["No", "Yes"])
    >>> check_allowed_values(pima["type"], ["no", "yes"])  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: column 'type' must be one of 'no', 'yes' but rows 1, 2,
    3, 4, 5, 6, 7, 8, 9, 10 and 190 more (data row numbers, 1-based) hold 'No', 'Yes'
    """
    allowed = list(allowed)
    bad = ~column.isin(allowed)
    if bad.any():
        examples = ", ".join(repr(v) for v in column[bad].unique()[:3])
        raise DataError(
            f"{_at(where)}column {column.name!r} must be one of "
            f"{', '.join(map(repr, allowed))} but {describe_rows(_rows(bad))} "
            f"(data row numbers, 1-based) hold {examples}"
        )


def check_limit_columns(declared: Iterable[str], numeric: Sequence[str]) -> None:
    """Refuse physical limits declared for a column that is not a numeric feature.

    Examples
    --------
    >>> check_limit_columns(["sex"], ["age", "glu"])  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: limits are declared for 'sex', which is not a numeric
    feature; numeric features: age, glu
    """
    unknown = [name for name in declared if name not in numeric]
    if unknown:
        raise DataError(
            f"limits are declared for {', '.join(map(repr, unknown))}, which "
            f"{'is' if len(unknown) == 1 else 'are'} not a numeric feature; "
            f"numeric features: {', '.join(numeric) or 'none'}"
        )


@dataclass
class LimitViolation:
    """Rows of one column outside its physical limits (0-based positions)."""

    column: str
    rows: list[int]
    limits: str

    def message(self) -> str:
        """The violation in words, rows as 1-based data row numbers."""
        return (
            f"column {self.column!r} must be {self.limits} (physical limit) but "
            f"{describe_rows([r + 1 for r in self.rows])} (data row numbers, 1-based) are not"
        )


def limit_violations(frame: pd.DataFrame, limits: Mapping[str, Limits]) -> list[LimitViolation]:
    """The columns of ``frame`` (numbers) with values outside their ``limits``, in order.

    Examples
    --------
    >>> frame = pd.DataFrame({"age": [50.0, -5.0, 140.0]})
    >>> limit_violations(frame, {"age": (0.0, 130.0)})
    [LimitViolation(column='age', rows=[1, 2], limits='0 to 130')]
    """
    out = []
    for name, (low, high) in limits.items():
        values = frame[name].to_numpy(dtype=float, na_value=np.nan)
        bad = np.zeros(len(values), dtype=bool)
        if low is not None:
            bad |= values < low
        if high is not None:
            bad |= values > high
        if bad.any():
            rows = np.flatnonzero(bad).tolist()
            out.append(LimitViolation(name, rows, describe_limits(low, high)))
    return out


def check_limits(
    frame: pd.DataFrame,
    limits: Mapping[str, Limits],
    heading: str = "the data hold impossible values",
) -> None:
    """Refuse values outside a column's physical limits, naming every column and its rows.

    Parameters
    ----------
    frame : the columns as numbers (e.g. from :func:`check_numeric`).
    limits : ``(lowest, highest)`` by column; None where there is no limit.
    heading : the start of the message, saying which data are at fault.

    Examples
    --------
    >>> from medpredict.data.datasets import load_dataset
    >>> pima = load_dataset("pima_tr")
    >>> check_limits(pima, {"age": (0, 130), "bmi": (10, None)})
    >>> check_limits(pima, {"glu": (60, 600)})  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: the data hold impossible values: column 'glu' must be
    60 to 600 (physical limit) but rows 147, 179 (data row numbers, 1-based) are not
    """
    violations = limit_violations(frame, limits)
    if violations:
        raise DataError(f"{heading}: " + "; ".join(v.message() for v in violations))


def check_prediction_columns(
    frame: pd.DataFrame, expected: Sequence[Hashable], extra: str = "error"
) -> None:
    """Refuse a prediction input without every column the model needs.

    Parameters
    ----------
    frame : the new rows.
    expected : the model's feature columns.
    extra : ``"error"`` also refuses columns the model does not use; ``"ignore"``
        allows them.

    Examples
    --------
    >>> from medpredict.data.datasets import load_dataset
    >>> new = load_dataset("pima_te").drop(columns=["type", "glu"])
    >>> check_prediction_columns(new, ["npreg", "glu", "bmi"])  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
        ...
    medpredict.data.errors.DataError: prediction input does not match the model's schema:
    missing column(s) the model needs: glu; unexpected column(s) the model does not use:
    bp, skin, ped, age
    """
    missing = [name for name in expected if name not in frame.columns]
    unexpected = [c for c in frame.columns if c not in expected]
    problems = []
    if missing:
        problems.append(f"missing column(s) the model needs: {', '.join(map(str, missing))}")
    if unexpected and extra == "error":
        problems.append(
            f"unexpected column(s) the model does not use: {', '.join(map(str, unexpected))}"
        )
    if problems:
        raise DataError(
            "prediction input does not match the model's schema: " + "; ".join(problems)
        )
