"""Early and late fusion with missing modalities.

The multimodal cohort is a *generated pairing of real single-modality data*: no public
dataset here holds all five kinds for the same patients. Each synthetic patient with
outcome 1 gets a malignant Wisconsin tumour (tabular), a neoplasm abstract (text), a
malignant BreastMNIST image (14x14 pixels) and an AML Golub profile (1,000 probes); outcome 0 gets
benign / cardiovascular / benign / ALL. The wearable summary (a real Welltory
participant's daily means) is paired at random, so it carries no signal. The tests
check the fusion mechanics, not clinical performance.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medpredict.data.errors import DataError, DataWarning
from medpredict.encoders.genes import load_golub
from medpredict.encoders.text import TextJoiner, load_medical_abstracts
from medpredict.evaluation.metrics import auroc
from medpredict.models.fusion import (
    EarlyFusionClassifier,
    LateFusionClassifier,
    TabularEncoder,
    _default_head,
    modality_estimator,
)
from medpredict.models.registry import make_model, takes_raw_input
from medpredict.settings import require_data

N_PER_CLASS = 25
TABULAR = ["mean radius", "mean texture", "mean concavity", "worst area"]
WEARABLE = ["resting_pulse", "pulse_average", "steps_count", "total_calories_burned"]


def _pick(frame: pd.DataFrame, mask: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    rows = rng.choice(np.flatnonzero(mask), N_PER_CLASS, replace=False)
    return frame.iloc[rows].reset_index(drop=True)


@pytest.fixture(scope="module")
def cohort() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    tab = load_breast_cancer(as_frame=True)
    abstracts = load_medical_abstracts()
    images = np.load(require_data("images/breastmnist_28.npz"))
    small = images["train_images"][:, ::2, ::2].reshape(-1, 196) / 255.0  # 14x14 pixels
    pixels = pd.DataFrame(small).add_prefix("px")
    train, independent = load_golub("train"), load_golub("independent")
    golub = pd.concat([train.X, independent.X]).iloc[:, :1000]
    aml = pd.concat([train.y, independent.y]).to_numpy()
    daily = pd.read_csv(require_data("wearables/welltory/wearables.csv"))
    people = pd.read_csv(require_data("wearables/welltory/participants.csv"))[["user_code"]]
    wear = people.join(daily.groupby("user_code")[WEARABLE].mean(), on="user_code")[WEARABLE]

    parts = []
    for outcome in (1, 0):
        parts.append(pd.concat([
            _pick(tab.data[TABULAR], tab.target.to_numpy() == 1 - outcome, rng),
            _pick(abstracts[["text"]], abstracts["label"].to_numpy() == (1 if outcome else 4), rng),
            _pick(pixels, images["train_labels"].reshape(-1) == 1 - outcome, rng),
            _pick(golub, aml == outcome, rng),
            _pick(wear, np.ones(len(wear), bool), rng),
        ], axis=1))
    frame = pd.concat(parts, ignore_index=True)
    y = np.repeat([1, 0], N_PER_CLASS)
    order = rng.permutation(len(frame))
    frame, y = frame.iloc[order].reset_index(drop=True), y[order]
    frame.loc[rng.random(len(frame)) < 0.3, list(golub.columns)] = np.nan
    frame.loc[rng.random(len(frame)) < 0.2, "text"] = None
    return frame, y


def _genes(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame if c not in (*TABULAR, *WEARABLE, "text") and not c.startswith("px")]


def _encoders(frame: pd.DataFrame) -> list:
    text = make_pipeline(TextJoiner(), TfidfVectorizer(min_df=2), TruncatedSVD(10, random_state=0))
    image = make_pipeline(StandardScaler(), PCA(10, random_state=0))
    return [
        ("tabular", TabularEncoder(), TABULAR),
        ("text", text, ["text"]),
        ("image", image, [c for c in frame if c.startswith("px")]),
        ("genes", modality_estimator("genes", columns=_genes(frame)), _genes(frame)),
        ("wearable", TabularEncoder(), WEARABLE),
    ]


def _split(frame: pd.DataFrame, y: np.ndarray):
    train = np.arange(len(frame)) % 5 != 0
    return frame[train], y[train], frame[~train], y[~train]


def test_cohort_has_real_missing_modalities(cohort):
    frame, _ = cohort
    assert frame["text"].isna().any()
    assert frame[WEARABLE].isna().all(axis=1).any()  # participants without a wearable


def test_early_fusion_tolerates_and_reports_missing_modalities(cohort):
    frame, y = cohort
    X_train, y_train, X_test, y_test = _split(frame, y)
    model = EarlyFusionClassifier(_encoders(frame))
    with pytest.warns(DataWarning, match=r"text: \d+ of 40 rows"):
        model.fit(X_train, y_train)
    assert model.missing_counts_["text"] == int(X_train["text"].isna().sum())
    assert model.missing_counts_["tabular"] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        risk = model.predict_proba(X_test)[:, 1]
    assert np.isfinite(risk).all()
    assert auroc(y_test, risk) > 0.8


def test_late_fusion_stacks_out_of_fold_predictions(cohort):
    frame, y = cohort
    X_train, y_train, X_test, y_test = _split(frame, y)
    mods = [(name, make_pipeline(enc, _default_head()), cols)
            for name, enc, cols in _encoders(frame)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        model = LateFusionClassifier(mods, cv=3).fit(X_train, y_train)
        risk = model.predict_proba(X_test)[:, 1]
        row = X_test.iloc[[0]].copy()
        full = model.predict_proba(row)[0, 1]
        row[["text"]] = None
        without_text = model.predict_proba(row)[0, 1]
    assert auroc(y_test, risk) > 0.8
    assert full != without_text and 0 < without_text < 1
    weights = model.modality_weights()
    assert list(weights.index) == ["tabular", "text", "image", "genes", "wearable"]
    assert weights.abs().idxmin() == "wearable"  # the randomly paired modality


def test_rows_without_any_modality_are_refused_by_number(cohort):
    frame, y = cohort
    mods = [("tabular", TabularEncoder(), TABULAR), ("wearable", TabularEncoder(), WEARABLE)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        model = EarlyFusionClassifier(mods).fit(frame, y)
    bad = frame.head(3).copy()
    bad.loc[1, TABULAR + WEARABLE] = np.nan
    with pytest.raises(DataError, match=r"no value in any modality \(tabular, wearable\) in row 2"):
        model.predict_proba(bad)
    empty = frame.assign(**{c: np.nan for c in WEARABLE})
    with pytest.raises(DataError, match="modality 'wearable' has no value in any training row"):
        EarlyFusionClassifier(mods).fit(empty, y)
    with pytest.raises(DataError, match=r"modality 'labs' needs column\(s\) \['ldl'\]"):
        EarlyFusionClassifier([("labs", TabularEncoder(), ["ldl"])]).fit(frame, y)


def test_fusion_models_are_registered_for_study_specs(cohort):
    frame, y = cohort
    modalities = {
        "tabular": {"kind": "tabular", "columns": TABULAR},
        "genes": {"kind": "genes", "columns": _genes(frame)},
        "wearable": {"kind": "wearable", "columns": WEARABLE},
    }
    assert takes_raw_input("late_fusion") and takes_raw_input("early_fusion")
    for name in ("early_fusion", "late_fusion"):
        model = make_model(name, seed=0, modalities=modalities)
        assert clone(model).get_params()["modalities"][0][0] == "tabular"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            proba = model.fit(frame, y).predict_proba(frame)
        assert proba.shape == (len(frame), 2)
    with pytest.raises(ValueError, match="needs 'kind' and 'columns'"):
        make_model("early_fusion", modalities={"x": {"kind": "tabular"}})
