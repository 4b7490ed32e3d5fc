"""Gene-expression blocks: thousands of columns, few patients.

Feature selection (:class:`GeneSelector`: top variance, univariate F-test, or L1
logistic regression) is a transformer, so inside a Pipeline it is fitted on the
training rows of each fold only. :func:`gene_pipeline` builds the usual penalised
model; :func:`selection_stability` refits it across folds and reports how often each
gene is chosen (candidate biomarkers with their selection frequency). Loaders read the
Golub et al. (1999) leukaemia data and scikit-survival's bundled breast-cancer
expression data.

Examples
--------
>>> golub = load_golub("train")
>>> model = gene_pipeline(k=50).fit(golub.X, golub.y)
>>> len(model.named_steps["select"].selected_genes())
50
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.feature_selection import SelectorMixin, f_classif
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted

from medpredict.data.checks import check_allowed_values, check_no_missing, check_numeric
from medpredict.data.errors import DataError
from medpredict.encoders.tabular import register_encoder
from medpredict.settings import require_data

Fold = tuple[np.ndarray, np.ndarray]
_GRADES = {"well differentiated": 1, "intermediate": 2, "poorly differentiated": 3}


@dataclass
class ExpressionData:
    """An expression cohort: features, binary outcome and how it was built."""

    X: pd.DataFrame
    y: pd.Series
    description: str
    excluded: dict[str, int] = field(default_factory=dict)
    gene_names: dict[str, str] = field(default_factory=dict)


def _read_golub_table(relative: str) -> pd.DataFrame:
    path = require_data(relative)
    raw = pd.read_csv(path)
    columns = list(raw.columns)
    if columns[:2] != ["Gene Description", "Gene Accession Number"]:
        raise DataError(
            f"{path}: expected the first columns 'Gene Description', 'Gene Accession Number', "
            f"found {columns[:2]}"
        )
    patients, calls = columns[2::2], columns[3::2]
    bad = [c for c in calls if not str(c).startswith("call")]
    if bad or len(patients) != len(calls):
        raise DataError(f"{path}: expected patient columns each followed by a 'call' column")
    values = pd.DataFrame({p: check_numeric(raw[p], where=str(path)) for p in patients})
    for patient in patients:
        check_no_missing(values[patient], "patient column", where=str(path))
    table = values.T
    table.columns = raw["Gene Accession Number"].astype(str).tolist()
    table.index = pd.Index([int(p) for p in patients], name="patient")
    table.attrs["gene_names"] = dict(zip(table.columns, raw["Gene Description"].astype(str),
                                         strict=True))
    return table.sort_index()


def load_golub(split: str = "train", folder: str = "genomics") -> ExpressionData:
    """Golub et al. (1999) leukaemia expression: 7,129 probes, outcome AML (1) vs ALL (0).

    Parameters
    ----------
    split : {"train", "independent"}
        The original 38-patient training set or the 34-patient independent set.
    folder : str
        Folder under ``MEDPREDICT_DATA_DIR`` holding ``data_set_ALL_AML_train.csv``,
        ``data_set_ALL_AML_independent.csv`` and ``actual.csv`` (Broad Institute data).

    Examples
    --------
    >>> data = load_golub("independent")
    >>> data.X.shape, int(data.y.sum())
    ((34, 7129), 14)
    """
    files = {"train": "data_set_ALL_AML_train.csv",
             "independent": "data_set_ALL_AML_independent.csv"}
    if split not in files:
        raise ValueError(f"split must be one of {sorted(files)}, got {split!r}")
    X = _read_golub_table(f"{folder}/{files[split]}")
    labels_path = require_data(f"{folder}/actual.csv")
    labels = pd.read_csv(labels_path)
    check_allowed_values(labels["cancer"], ["ALL", "AML"], where=str(labels_path))
    labels = labels.set_index("patient")["cancer"]
    unknown = sorted(set(X.index) - set(labels.index))
    if unknown:
        raise DataError(f"{labels_path} has no diagnosis for patient(s) {unknown[:10]}")
    diagnosis = labels.loc[X.index]
    y = (diagnosis == "AML").astype(int).rename("aml")
    names = X.attrs.pop("gene_names")
    return ExpressionData(X, y, f"Golub leukaemia {split} set: AML (1) vs ALL (0)", {}, names)


def load_breast_cancer_expression(horizon_days: float = 5 * 365.25) -> ExpressionData:
    """scikit-survival's breast-cancer cohort (198 patients, 76 genes + age, ER, grade, size).

    Binary endpoint: distant metastasis within ``horizon_days`` (default 5 years).
    Patients censored before the horizon without metastasis have an unknown outcome;
    they are excluded and counted in ``excluded`` (9 patients at 5 years).
    Categorical ``er`` and ``grade`` become numbers (ER positive = 1, grade 1-3; the
    two "unkown" grades stay missing, for the model's imputer).

    Examples
    --------
    >>> data = load_breast_cancer_expression()
    >>> data.X.shape, int(data.y.sum()), data.excluded
    ((189, 80), 35, {'censored before horizon': 9})
    """
    from sksurv.datasets import load_breast_cancer

    X, outcome = load_breast_cancer()
    event, time = outcome["e.tdm"], outcome["t.tdm"]
    known = event & (time <= horizon_days) | (time > horizon_days)
    X = X.copy()
    X["er"] = (X["er"].astype(str) == "positive").astype(float)
    X["grade"] = X["grade"].astype(str).map(_GRADES).astype(float)
    y = pd.Series((event & (time <= horizon_days)).astype(int), index=X.index, name="metastasis")
    years = horizon_days / 365.25
    return ExpressionData(
        X.loc[known].reset_index(drop=True),
        y.loc[known].reset_index(drop=True),
        f"breast cancer: distant metastasis within {years:g} years (1) "
        f"vs metastasis-free at {years:g} years (0)",
        {"censored before horizon": int((~known).sum())},
    )


def _column_name(X: Any, index: int) -> str:
    return repr(X.columns[index]) if isinstance(X, pd.DataFrame) else f"{index} (0-based)"


def _first_non_numeric(X: Any, raw: np.ndarray) -> str:
    for j in range(raw.shape[1] if raw.ndim == 2 else 0):
        try:
            raw[:, j].astype(float)
        except (TypeError, ValueError):
            return f" (column {_column_name(X, j)})"
    return ""


def _matrix(estimator: BaseEstimator, X: Any, reset: bool, allow_nan: bool = False) -> np.ndarray:
    """``X`` as a float matrix, recording (``reset``) or checking its columns.

    A light version of scikit-learn's validation, with its error messages: thousands
    of gene columns make the per-column pandas dtype checks the slowest part of a fit.
    """
    if sparse.issparse(X):
        raise TypeError("gene expression must be a dense table; sparse input is not supported")
    names = np.asarray(X.columns, dtype=object) if isinstance(X, pd.DataFrame) else None
    raw = np.asarray(X)
    if np.iscomplexobj(raw):
        raise ValueError("Complex data not supported: gene expression values are real numbers")
    if raw.ndim != 2:
        raise DataError(
            f"expected a 2-D table of genes, got {raw.ndim} dimension(s); Reshape your data "
            "with array.reshape(-1, 1) for one gene or array.reshape(1, -1) for one patient"
        )
    try:
        values = raw.astype(float, copy=False)
    except TypeError as err:
        raise TypeError(
            f"gene expression values must be numbers{_first_non_numeric(X, raw)}: {err}"
        ) from None
    except ValueError as err:
        raise DataError(
            f"gene expression values must be numbers{_first_non_numeric(X, raw)}: {err}"
        ) from None
    if values.shape[0] == 0 or values.shape[1] == 0:
        raise DataError(
            f"Found {values.shape[0]} sample(s) and {values.shape[1]} feature(s) "
            f"(shape={values.shape}) while a minimum of 1 is required: a table of genes "
            "needs at least one patient and one gene."
        )
    if not allow_nan:
        _require_finite(X, values, "impute them first")
    if reset:
        estimator.n_features_in_ = values.shape[1]
        if names is not None:
            estimator.feature_names_in_ = names
        else:
            estimator.__dict__.pop("feature_names_in_", None)
        return values
    if values.shape[1] != estimator.n_features_in_:
        raise DataError(
            f"X has {values.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input (gene columns seen in fit)"
        )
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None and names is not None and not np.array_equal(fitted, names):
        raise DataError("gene columns differ from (or are in another order than) those in fit")
    return values


def _require_finite(X: Any, values: np.ndarray, advice: str, columns: Any = None) -> None:
    """Refuse NaN or infinity in ``values`` (only in the ``columns`` mask when given)."""
    checked = values if columns is None else values[:, columns]
    bad = ~np.isfinite(checked).all(axis=0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        index = first if columns is None else int(np.flatnonzero(columns)[first])
        raise DataError(
            f"gene expression values contain NaN or infinity (first in column "
            f"{_column_name(X, index)}); {advice}"
        )


class ExpressionTransform(TransformerMixin, BaseEstimator):
    """Floor, ceiling and log10 of microarray intensities (a per-value, data-free step).

    Examples
    --------
    >>> ExpressionTransform().fit_transform(np.array([[20.0, 1000.0]])).round(2).tolist()
    [[2.0, 3.0]]
    """

    def __init__(self, floor: float = 100.0, ceiling: float = 16000.0, log: bool = True) -> None:
        self.floor = floor
        self.ceiling = ceiling
        self.log = log

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def fit(self, X: Any, y: Any = None) -> ExpressionTransform:
        """Record the input columns."""
        _matrix(self, X, reset=True, allow_nan=True)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Clip to ``[floor, ceiling]`` and take log10."""
        check_is_fitted(self, "n_features_in_")
        values = np.clip(_matrix(self, X, reset=False, allow_nan=True), self.floor, self.ceiling)
        return np.log10(values) if self.log else values

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The input column names."""
        check_is_fitted(self, "n_features_in_")
        names = getattr(self, "feature_names_in_", None)
        if names is None:
            names = np.array([f"x{i}" for i in range(self.n_features_in_)], dtype=object)
        return np.asarray(names, dtype=object)


def _l1_scores(scaled: np.ndarray, y: np.ndarray, C: float, seed: int) -> np.ndarray:
    """Largest absolute L1 coefficient of each gene, one-vs-rest over three or more classes."""
    l1 = LogisticRegression(l1_ratio=1.0, C=C, solver="liblinear", random_state=seed,
                            max_iter=5000)
    n_classes = np.unique(y).size
    if n_classes < 2:
        raise ValueError("method='l1' needs at least two classes in y, got one class")
    if n_classes == 2:
        return np.abs(l1.fit(scaled, y).coef_).max(axis=0)
    per_class = OneVsRestClassifier(l1).fit(scaled, y).estimators_
    return np.abs(np.vstack([model.coef_ for model in per_class])).max(axis=0)


class GeneSelector(SelectorMixin, BaseEstimator):
    """Keep ``k`` genes chosen on the training data only.

    Parameters
    ----------
    method : {"univariate", "variance", "l1"}
        ANOVA F-test against the outcome, highest variance (outcome-free), or non-zero
        coefficients of an L1 logistic regression on standardised genes.
    k : int
        Genes to keep (for ``"l1"``: at most ``k``, largest absolute coefficients).
    C : float
        Inverse L1 penalty for ``method="l1"``.
    seed : int
        Random state of the L1 solver.

    Attributes
    ----------
    scores_ : ndarray
        Per-gene score (F statistic, variance or absolute L1 coefficient).
    support_ : ndarray of bool
        Selected genes.

    Examples
    --------
    >>> golub = load_golub("train")
    >>> sel = GeneSelector(k=5).fit(np.log10(golub.X.clip(100, 16000)), golub.y)
    >>> len(sel.selected_genes())
    5
    """

    def __init__(self, method: str = "univariate", k: int = 50, C: float = 0.1,
                 seed: int = 0) -> None:
        self.method = method
        self.k = k
        self.C = C
        self.seed = seed

    def fit(self, X: Any, y: Any = None) -> GeneSelector:
        """Score every gene on the rows given and keep the best ``k``."""
        values = _matrix(self, X, reset=True)
        if self.method not in ("univariate", "variance", "l1"):
            raise ValueError(f"method must be univariate, variance or l1, got {self.method!r}")
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if self.method == "variance":
            scores = values.var(axis=0)
        elif y is None:
            raise ValueError(f"method={self.method!r} needs the outcome y")
        elif self.method == "univariate":
            with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
                warnings.simplefilter("ignore", UserWarning)
                scores = np.nan_to_num(f_classif(values, np.asarray(y))[0])
        else:
            scaled = StandardScaler().fit_transform(values)
            scores = _l1_scores(scaled, np.asarray(y), self.C, self.seed)
        keep = min(self.k, values.shape[1])
        order = np.argsort(-scores, kind="stable")[:keep]
        if self.method == "l1":
            order = order[scores[order] > 0]
            if order.size == 0:
                raise DataError(f"L1 selection with C={self.C} kept no gene; raise C")
        self.scores_ = scores
        self.support_ = np.zeros(values.shape[1], dtype=bool)
        self.support_[order] = True
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The selected genes' columns (values of the other genes are not looked at)."""
        check_is_fitted(self, "support_")
        values = _matrix(self, X, reset=False, allow_nan=True)
        _require_finite(X, values, "impute the selected genes first", columns=self.support_)
        return values[:, self.support_]

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_")
        return self.support_

    def selected_genes(self) -> list[str]:
        """Names of the selected genes, best score first."""
        names = np.asarray(getattr(self, "feature_names_in_",
                                   [f"x{i}" for i in range(self.n_features_in_)]))
        chosen = np.flatnonzero(self._get_support_mask())
        return names[chosen[np.argsort(-self.scores_[chosen], kind="stable")]].tolist()


def gene_pipeline(
    method: str = "univariate",
    k: int = 50,
    penalty: str = "l2",
    C: float = 1.0,
    log_transform: bool = True,
    class_weight: str | None = None,
    seed: int = 0,
) -> Pipeline:
    """Expression transform -> gene selection -> scaling -> penalised logistic regression.

    ``penalty`` is ``"l2"``, ``"l1"`` or ``"elasticnet"`` (l1_ratio 0.5). Every step is
    fitted inside whatever training rows the pipeline is given.

    Examples
    --------
    >>> pipe = gene_pipeline(k=20, penalty="elasticnet", C=0.5)
    >>> [name for name, _ in pipe.steps]
    ['expression', 'select', 'scale', 'model']
    """
    ratio = {"l2": 0.0, "l1": 1.0, "elasticnet": 0.5}
    if penalty not in ratio:
        raise ValueError(f"penalty must be one of {sorted(ratio)}, got {penalty!r}")
    solver = "lbfgs" if penalty == "l2" else "saga"
    model = LogisticRegression(l1_ratio=ratio[penalty], C=C, solver=solver, max_iter=20000,
                               class_weight=class_weight, random_state=seed)
    expression = ExpressionTransform(log=log_transform) if log_transform else "passthrough"
    steps = [
        ("expression", expression),
        ("select", GeneSelector(method=method, k=k, seed=seed)),
        ("scale", StandardScaler()),
        ("model", model),
    ]
    return Pipeline(steps).set_output(transform="pandas")


def _selector_of(estimator: Any) -> Any:
    if hasattr(estimator, "get_support"):
        return estimator
    for _, step in getattr(estimator, "steps", []):
        if hasattr(step, "get_support"):
            return step
    raise ValueError("the estimator has no fitted selection step (nothing with get_support())")


@dataclass
class SelectionStability:
    """Genes chosen across refits on different training folds."""

    table: pd.DataFrame
    selections: list[list[str]]
    fold_estimators: list[Any]

    @property
    def jaccard(self) -> float:
        """Mean pairwise Jaccard similarity of the selected gene sets (1 = identical)."""
        pairs = [len(set(a) & set(b)) / len(set(a) | set(b))
                 for a, b in combinations(self.selections, 2)]
        return float(np.mean(pairs)) if pairs else float("nan")

    def biomarkers(self, min_frequency: float = 0.8) -> pd.DataFrame:
        """Candidate biomarkers: genes selected in at least ``min_frequency`` of the folds."""
        return self.table[self.table["frequency"] >= min_frequency]


def selection_stability(
    estimator: Any, X: pd.DataFrame, y: Any, folds: list[Fold]
) -> SelectionStability:
    """Refit ``estimator`` on each fold's training rows and count the genes it selects.

    Parameters
    ----------
    estimator : Pipeline or selector
        Anything with a selection step exposing ``get_support()`` (e.g. :func:`gene_pipeline`).
    X : DataFrame
        Genes as columns (names are reported).
    y : array-like
        Outcome.
    folds : list of (train, test) index arrays
        Only the training rows of each fold are given to ``fit``.

    Returns
    -------
    SelectionStability
        ``table`` has ``gene``, ``frequency`` (share of folds), ``folds`` (count) and, for
        pipelines ending in a linear model, ``mean_coefficient`` (on standardised genes).

    Examples
    --------
    >>> from sklearn.model_selection import StratifiedKFold
    >>> golub = load_golub("train")
    >>> folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(golub.X, golub.y))
    >>> result = selection_stability(gene_pipeline(k=10), golub.X, golub.y, folds)
    >>> 0 < result.jaccard <= 1
    True
    """
    y = np.asarray(y)
    selections, fitted = [], []
    coefficients: dict[str, list[float]] = {}
    for train, _ in folds:
        model = clone(estimator).fit(X.iloc[train], y[train])
        selector = _selector_of(model)
        seen = getattr(selector, "feature_names_in_", None)
        names = np.asarray(X.columns if seen is None else seen)[selector.get_support()].tolist()
        selections.append(names)
        fitted.append(model)
        coef = getattr(getattr(model, "steps", [[None, None]])[-1][1], "coef_", None)
        if coef is not None and coef.shape[0] == 1:
            for name, value in zip(names, coef[0], strict=True):
                coefficients.setdefault(name, []).append(float(value))
    counts = Counter(name for names in selections for name in names)
    table = pd.DataFrame({"gene": list(counts), "folds": list(counts.values())})
    table["frequency"] = table["folds"] / len(folds)
    if coefficients:
        table["mean_coefficient"] = [np.mean(coefficients.get(g, [np.nan])) for g in table["gene"]]
    table = table.sort_values(["folds", "gene"], ascending=[False, True]).reset_index(drop=True)
    return SelectionStability(table, selections, fitted)


@register_encoder("genes")
def genes_encoder(columns: list[str], seed: int = 0) -> Pipeline:
    """Default encoder for a ``genes`` block: impute, scale, keep the 50 best genes (F-test)."""
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("select", GeneSelector(method="univariate", k=min(50, len(columns)), seed=seed)),
        ]
    )
