"""Gene-expression blocks on real data: Golub leukaemia and scikit-survival breast cancer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from medpredict.data.schema import Schema
from medpredict.encoders.genes import (
    GeneSelector,
    gene_pipeline,
    load_breast_cancer_expression,
    load_golub,
    selection_stability,
)
from medpredict.encoders.tabular import build_preprocessor
from medpredict.evaluation.metrics import auroc


@pytest.fixture(scope="module")
def golub_train():
    return load_golub("train")


@pytest.fixture(scope="module")
def golub_independent():
    return load_golub("independent")


def test_golub_loader_matches_the_published_sets(golub_train, golub_independent):
    assert golub_train.X.shape == (38, 7129)
    assert golub_independent.X.shape == (34, 7129)
    assert golub_train.y.value_counts().to_dict() == {0: 27, 1: 11}
    assert golub_independent.y.value_counts().to_dict() == {0: 20, 1: 14}
    assert not set(golub_train.X.index) & set(golub_independent.X.index)
    assert "X95735_at" in golub_train.X.columns  # zyxin, a known AML marker


def test_training_on_train_set_only_reaches_independent_auroc(golub_train, golub_independent):
    model = gene_pipeline(method="univariate", k=50).fit(golub_train.X, golub_train.y)
    risk = model.predict_proba(golub_independent.X)[:, 1]
    assert auroc(golub_independent.y.to_numpy(), risk) >= 0.95
    assert ((risk >= 0.5) != golub_independent.y.to_numpy()).sum() <= 3


def _corrupt_held_out(X: pd.DataFrame, y: np.ndarray, test: np.ndarray, genes: list[str]):
    """Flip held-out labels and plant a perfect (fake) marker in held-out rows only."""
    X_bad, y_bad = X.copy(), y.copy()
    y_bad[test] = 1 - y_bad[test]
    X_bad.iloc[test, X.columns.get_indexer(genes)] = np.where(y_bad[test, None] == 1, 16000, 100)
    return X_bad, y_bad


def test_gene_selection_never_sees_held_out_rows(golub_train):
    """Selection and predictions of a fold must not move when held-out rows are sabotaged.

    The corruption is strong enough to change a selection that does see those rows (the
    control at the end), so this test fails if selection leaks held-out data.
    """
    X, y = golub_train.X, golub_train.y.to_numpy()
    train, test = next(StratifiedKFold(4, shuffle=True, random_state=0).split(X, y))
    planted = list(X.columns[:20])
    X_bad, y_bad = _corrupt_held_out(X, y, test, planted)
    pipe = gene_pipeline(method="univariate", k=30)

    clean = selection_stability(pipe, X, y, [(train, test)])
    sabotaged = selection_stability(pipe, X_bad, y_bad, [(train, test)])
    assert clean.selections == sabotaged.selections
    assert not set(planted) & set(sabotaged.selections[0])
    np.testing.assert_allclose(
        clean.fold_estimators[0].predict_proba(X.iloc[test]),
        sabotaged.fold_estimators[0].predict_proba(X.iloc[test]),
    )
    leaky = clone(pipe).fit(X_bad, y_bad).named_steps["select"].selected_genes()
    assert set(planted) & set(leaky), "control: a selection that sees held-out rows is fooled"


def test_selection_methods_behave_as_documented(golub_train):
    X = np.log10(golub_train.X.clip(100, 16000))
    y = golub_train.y.to_numpy()
    univariate = GeneSelector("univariate", k=20).fit(X, y).selected_genes()
    assert "X95735_at" in univariate
    shuffled = np.random.default_rng(0).permutation(y)
    assert (GeneSelector("variance", k=20).fit(X, y).selected_genes()
            == GeneSelector("variance", k=20).fit(X, shuffled).selected_genes())
    l1 = GeneSelector("l1", k=20, C=0.5).fit(X, y)
    assert 0 < l1.get_support().sum() <= 20
    assert np.all(l1.scores_[l1.get_support()] > 0)
    with pytest.raises(ValueError, match="method"):
        GeneSelector("pca").fit(X, y)


def test_selection_stability_reports_frequencies(golub_train):
    X, y = golub_train.X, golub_train.y.to_numpy()
    folds = list(StratifiedKFold(5, shuffle=True, random_state=1).split(X, y))
    result = selection_stability(gene_pipeline(k=20), X, y, folds)
    table = result.table
    assert list(table.columns) == ["gene", "folds", "frequency", "mean_coefficient"]
    assert table["frequency"].between(0.2, 1.0).all()
    assert table["frequency"].is_monotonic_decreasing
    assert len(result.selections) == 5 and all(len(s) == 20 for s in result.selections)
    assert 0.2 < result.jaccard <= 1.0
    assert set(result.biomarkers(1.0)["gene"]) <= set.intersection(*map(set, result.selections))


def test_breast_cancer_endpoint_is_stated_and_counted():
    data = load_breast_cancer_expression()
    assert data.X.shape == (189, 80) and int(data.y.sum()) == 35
    assert data.excluded == {"censored before horizon": 9}
    assert set(data.X["er"].unique()) == {0.0, 1.0}
    assert data.X["grade"].isna().sum() == 2
    assert "5 years" in data.description


def test_genes_kind_plugs_into_the_tabular_preprocessor(golub_train):
    """A column kind 'genes' in the schema gets in-fold imputation, scaling and selection."""
    frame = golub_train.X.iloc[:, :500]
    schema = Schema.infer(frame, declared=dict.fromkeys(frame.columns, "genes"))
    pre = build_preprocessor(schema).fit(frame, golub_train.y)
    assert pre.transform(frame).shape == (38, 50)
