"""Conformal prediction sets: each patient gets the set of outcomes the model cannot rule out.

A :class:`ConformalSets` is calibrated on predicted probabilities of patients whose
outcome is known and whose prediction did not come from a model trained on them
(out-of-fold or a held-out calibration split). For a new patient it returns the set
of classes whose conformal p-value, with the hinge score ``1 - p(class)``, is at least
``alpha``. Over patients like the calibration ones, the true outcome is in the set at
least ``1 - alpha`` of the time.

The p-values are crepes' non-smoothed (Mondrian) conformal p-values, and the tests
check that they are identical to ``crepes.ConformalClassifier``'s. crepes compares
every test score with every calibration score (quadratic time); here the calibration
scores are sorted once and each test score is placed by binary search, so 10,000
patients take milliseconds and a million take seconds.

``conditional="class"`` calibrates each class separately (Mondrian by class), so the
guarantee holds among the sick and among the healthy, not only on average; passing
``groups`` to :meth:`ConformalSets.fit` also calibrates each group (e.g. sex) apart.
A set holding more than one class means the data do not let the model decide:
the patient is marked ``"uncertain — refer"``. An empty set (no class is typical)
is marked ``"atypical — refer"``.

The fitted state is plain NumPy arrays, so the object serialises with skops and
can be stored in a model directory.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> risk = rng.uniform(size=400); outcome = (rng.uniform(size=400) < risk).astype(int)
>>> sets = ConformalSets(alpha=0.1).fit(risk[:200], outcome[:200])
>>> covered = sets.predict_set(risk[200:])[np.arange(200), outcome[200:]]
>>> bool(covered.mean() >= 0.85)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from medpredict.evaluation.bootstrap import bootstrap
from medpredict.evaluation.splits import inner_folds

if TYPE_CHECKING:
    from medpredict.report.html import Section

UNCERTAIN = "uncertain — refer"
ATYPICAL = "atypical — refer"
CONFIDENT = "confident"
MISSING_GROUP = "missing"


def _as_proba(proba: np.ndarray | Sequence[float]) -> np.ndarray:
    """Class-probability matrix from a matrix or a vector of positive-class risks."""
    proba = np.asarray(proba, dtype=float)
    if proba.ndim == 1:
        proba = np.column_stack([1 - proba, proba])
    if proba.ndim != 2 or proba.shape[1] < 2:
        raise ValueError(
            "expected predicted risks (one value per patient) or a probability matrix "
            f"(patients x classes), got an array of shape {proba.shape}"
        )
    bad = ~np.isfinite(proba) | (proba < 0) | (proba > 1)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise ValueError(f"probabilities must lie in [0, 1]; row {row} holds {proba[row]}")
    return proba


def _group_labels(groups: Sequence | None, n_rows: int) -> np.ndarray | None:
    """Group labels as strings, missing values named ``"missing"``."""
    if groups is None:
        return None
    series = pd.Series(np.asarray(groups, dtype=object))
    if len(series) != n_rows:
        raise ValueError(f"groups has {len(series)} entries for {n_rows} patients")
    return series.map(lambda g: MISSING_GROUP if pd.isna(g) else str(g)).to_numpy(dtype=str)


class ConformalSets(BaseEstimator):
    """Split conformal prediction sets from predicted class probabilities.

    Parameters
    ----------
    alpha : float
        Miscoverage level: sets contain the true class with probability >= 1 - alpha.
    conditional : {"class", "marginal"}
        ``"class"`` guarantees coverage within each true class (Mondrian by class);
        ``"marginal"`` only on average over patients.

    Attributes
    ----------
    scores_ : calibration non-conformity scores ``1 - p(true class)``, sorted by bin
        then score.
    bins_ : Mondrian category of each calibration score (class and group codes).
    n_classes_ : number of classes.
    group_names_ : group labels seen in calibration, or an empty array without groups.
    """

    def __init__(self, alpha: float = 0.1, conditional: Literal["class", "marginal"] = "class"):
        self.alpha = alpha
        self.conditional = conditional

    def _check_params(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must lie strictly between 0 and 1, got {self.alpha}")
        if self.conditional not in ("class", "marginal"):
            raise ValueError(
                f"conditional must be 'class' or 'marginal', got {self.conditional!r}"
            )

    def fit(
        self,
        proba: np.ndarray | Sequence[float],
        y: np.ndarray | Sequence[int],
        groups: Sequence | None = None,
    ) -> ConformalSets:
        """Calibrate on probabilities ``proba`` of patients with outcomes ``y``.

        Parameters
        ----------
        proba : risks of the positive class, or probabilities (patients x classes),
            predicted by a model that did not see these patients.
        y : class index per patient (0..K-1).
        groups : optional group per patient; calibrates each group separately.
        """
        self._check_params()
        proba = _as_proba(proba)
        y = np.asarray(y)
        if y.shape != (proba.shape[0],):
            raise ValueError(f"y has shape {y.shape}; expected one outcome per row of proba")
        if not np.isin(y, np.arange(proba.shape[1])).all():
            raise ValueError(
                f"y must hold class indices 0..{proba.shape[1] - 1}; found {np.unique(y)}"
            )
        labels = _group_labels(groups, len(y))
        self.n_classes_ = proba.shape[1]
        self.group_names_ = np.array([], dtype=str) if labels is None else np.unique(labels)
        scores = 1.0 - proba[np.arange(len(y)), y.astype(int)]
        bins = self._bins(y.astype(int), labels)
        order = np.lexsort((scores, bins))
        self.scores_, self.bins_ = scores[order], bins[order]
        return self

    def _bins(self, classes: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        """Integer Mondrian category: class (when class-conditional) x group."""
        n_groups = max(len(self.group_names_), 1)
        group_codes = (
            np.zeros(len(classes), dtype=int)
            if labels is None
            else np.searchsorted(self.group_names_, labels)
        )
        class_codes = classes if self.conditional == "class" else np.zeros_like(classes)
        return class_codes * n_groups + group_codes

    def _test_labels(self, groups: Sequence | None, n_rows: int) -> np.ndarray | None:
        labels = _group_labels(groups, n_rows)
        if len(self.group_names_) and labels is None:
            raise ValueError("this predictor was calibrated per group: pass groups")
        if labels is not None and not len(self.group_names_):
            raise ValueError("this predictor was calibrated without groups: do not pass groups")
        if labels is not None:
            unknown = ~np.isin(labels, self.group_names_)
            if unknown.any():
                row = int(np.flatnonzero(unknown)[0])
                raise ValueError(
                    f"group {str(labels[row])!r} (row {row}) was not in the calibration data; "
                    f"known groups: {self.group_names_.tolist()}"
                )
        return labels

    def predict_p(
        self, proba: np.ndarray | Sequence[float], groups: Sequence | None = None
    ) -> np.ndarray:
        """Conformal p-value of every class for every patient (patients x classes)."""
        check_is_fitted(self, "scores_")
        proba = _as_proba(proba)
        if proba.shape[1] != self.n_classes_:
            raise ValueError(
                f"proba has {proba.shape[1]} classes; calibrated with {self.n_classes_}"
            )
        labels = self._test_labels(groups, proba.shape[0])
        p_values = np.empty_like(proba)
        for k in range(self.n_classes_):
            p_values[:, k] = self._p_values(
                1.0 - proba[:, k], self._bins(np.full(proba.shape[0], k), labels)
            )
        return p_values

    def _p_values(self, scores: np.ndarray, bins: np.ndarray) -> np.ndarray:
        """``(#calibration scores >= score in the same bin + 1) / (bin size + 1)``."""
        out = np.ones_like(scores)
        for b in np.unique(bins):
            calibration = self.scores_[self.bins_ == b]
            rows = bins == b
            at_least = calibration.size - np.searchsorted(calibration, scores[rows], side="left")
            out[rows] = (at_least + 1) / (calibration.size + 1)
        return out

    def predict_set(
        self, proba: np.ndarray | Sequence[float], groups: Sequence | None = None
    ) -> np.ndarray:
        """Boolean matrix (patients x classes): class ``k`` is in patient ``i``'s set."""
        return self.predict_p(proba, groups) >= self.alpha

    def predict_status(
        self, proba: np.ndarray | Sequence[float], groups: Sequence | None = None
    ) -> np.ndarray:
        """``"confident"``, ``"uncertain — refer"`` or ``"atypical — refer"`` per patient."""
        return set_status(self.predict_set(proba, groups))


def set_status(sets: np.ndarray) -> np.ndarray:
    """Name each prediction set: one class, several classes, or none."""
    sizes = np.asarray(sets).sum(axis=1)
    return np.where(sizes == 1, CONFIDENT, np.where(sizes == 0, ATYPICAL, UNCERTAIN))


def cross_conformal_sets(
    proba: np.ndarray | Sequence[float],
    y: np.ndarray | Sequence[int],
    alpha: float = 0.1,
    conditional: Literal["class", "marginal"] = "class",
    groups: Sequence | None = None,
    n_splits: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """Prediction sets for every patient from a predictor calibrated without them.

    The patients are split into ``n_splits`` folds (stratified by outcome); each fold's
    sets come from a :class:`ConformalSets` calibrated on the other folds, so the
    resulting coverage is an honest estimate rather than a restatement of the
    calibration data.

    Returns
    -------
    Boolean matrix (patients x classes).
    """
    proba = _as_proba(proba)
    y = np.asarray(y).astype(int)
    labels = _group_labels(groups, len(y))
    sets = np.zeros(proba.shape, dtype=bool)
    for calibration, held_out in inner_folds(y, None, n_splits, seed):
        strata = None if labels is None else labels[calibration]
        predictor = ConformalSets(alpha, conditional)
        predictor.fit(proba[calibration], y[calibration], strata)
        held_labels = None if labels is None else labels[held_out]
        if held_labels is not None and not np.isin(held_labels, predictor.group_names_).all():
            missing = sorted(set(held_labels.tolist()) - set(predictor.group_names_.tolist()))
            raise ValueError(
                f"groups {missing} have too few patients for {n_splits}-fold "
                "cross-conformal calibration"
            )
        sets[held_out] = predictor.predict_set(proba[held_out], held_labels)
    return sets


def coverage_table(
    sets: np.ndarray,
    y: np.ndarray | Sequence[int],
    groups: pd.DataFrame | None = None,
    n_boot: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """Empirical coverage (95% bootstrap CI), mean set size and referral share.

    One row for all patients, one per true class and one per group of each column of
    ``groups`` (missing values form their own group).

    Parameters
    ----------
    sets : boolean matrix (patients x classes) of prediction sets.
    y : true class index per patient.
    groups : optional sensitive attributes, one column per attribute.
    n_boot : bootstrap resamples for the coverage interval.
    seed : random seed.
    """
    y = np.asarray(y).astype(int)
    sets = np.asarray(sets, dtype=bool)
    covered = sets[np.arange(len(y)), y].astype(float)
    size = sets.sum(axis=1).astype(float)
    refer = (size != 1).astype(float)

    def summary(_: np.ndarray, cov: np.ndarray, sz: np.ndarray, ref: np.ndarray):
        return {"coverage": cov.mean(), "set_size": sz.mean(), "referred": ref.mean()}

    parts = [("all", "all", np.ones(len(y), dtype=bool))]
    parts += [("outcome", f"class {k}", y == k) for k in range(sets.shape[1])]
    for column in [] if groups is None else groups.columns:
        labels = _group_labels(groups[column].to_numpy(), len(y))
        parts += [(str(column), g, labels == g) for g in np.unique(labels)]
    rows = []
    for attribute, group, mask in parts:
        estimates = bootstrap(
            summary, y[mask], covered[mask], size[mask], refer[mask], n_boot=n_boot, seed=seed
        )
        rows.append(
            {
                "attribute": attribute,
                "group": group,
                "n": int(mask.sum()),
                "coverage": estimates["coverage"].value,
                "coverage_low": estimates["coverage"].low,
                "coverage_high": estimates["coverage"].high,
                "mean_set_size": estimates["set_size"].value,
                "referred": estimates["referred"].value,
            }
        )
    return pd.DataFrame(rows)


def conformal_section(table: pd.DataFrame, alpha: float, conditional: str) -> Section:
    """Report section: empirical coverage overall, per class and per group.

    ``table`` comes from :func:`coverage_table` of cross-conformal sets, so each
    patient's set was computed without that patient in the calibration data.
    """
    # imported here: report.html loads matplotlib, which serving never needs
    from medpredict.report.html import Section, callout
    from medpredict.report.html import table as table_html

    nominal = 1 - alpha
    overall = table.iloc[0]
    kind = "each outcome class separately" if conditional == "class" else "all patients together"
    parts = [
        f"<p>Conformal prediction sets at {nominal:.0%} nominal coverage, calibrated on "
        f"{kind} (and per group when the study asks for it). Each patient's set is computed "
        "by a predictor calibrated without that patient (5-fold cross-conformal). A set with "
        f"both outcomes means <b>{UNCERTAIN}</b>: the model cannot decide at this confidence. "
        f"An empty set means <b>{ATYPICAL}</b>: the patient is unlike the calibration "
        "patients of either outcome.</p>",
        f"<p>Empirical coverage {overall.coverage:.1%} (95% CI {overall.coverage_low:.1%}–"
        f"{overall.coverage_high:.1%}); {overall.referred:.1%} of patients would be referred.</p>",
    ]
    short = table[(table["coverage_high"] < nominal) & (table["attribute"] != "all")]
    if len(short):
        parts.append(
            callout(
                "Coverage is below the nominal level in: "
                + ", ".join(f"{r.attribute} {r.group}" for r in short.itertuples())
                + ". Sets for these patients are less reliable than stated; calibrate per "
                "group or collect more data."
            )
        )
    parts.append(
        table_html(
            [
                [r.attribute, r.group, r.n,
                 f"{r.coverage:.3f} ({r.coverage_low:.3f}–{r.coverage_high:.3f})",
                 f"{r.mean_set_size:.2f}", f"{r.referred:.1%}"]
                for r in table.itertuples()
            ],
            ["attribute", "group", "n", "coverage (95% CI)", "mean set size", "referred"],
        )
    )
    return Section("Uncertainty (conformal prediction)", "".join(parts))
