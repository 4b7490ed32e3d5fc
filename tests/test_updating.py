"""Model updating on real data: Pima (MASS Pima.tr / Pima.te) and Rotterdam breast cancer.

Pima: a logistic regression fitted on Ripley's training set (200 women) is updated on
half of his separate test set (332) and evaluated on the other half. Rotterdam (2,982
women after breast-cancer surgery, R ``survival``): the outcome is death within 5 years
of surgery, among the 2,837 women followed for 5 years or who died before; the temporal
test fits on surgeries in 1978-1987 and tests on 1988-1993.

Where a shift is planted, it is synthetic on the real patients: the deployed model's
log-odds are shifted or stretched by a known amount (:class:`Distorted`), or, for the
slope, outcomes are drawn from a known recalibration of a real model's risks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit
from sklearn.base import clone
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medpredict.data.datasets import load_dataset
from medpredict.evaluation.metrics import calibration_intercept_slope, recalibration_fit
from medpredict.monitoring.closed_test import closed_test
from medpredict.monitoring.comparison import champion_challenger
from medpredict.monitoring.updating import (
    LogisticRecalibration,
    ModelRevision,
    RecalibrationInTheLarge,
    Refit,
    logistic_recalibration,
    model_revision,
    recalibrate_in_the_large,
    refit,
)

PIMA_FEATURES = ["npreg", "glu", "bp", "skin", "bmi", "ped", "age"]
ROTTERDAM_FEATURES = ["age", "meno", "size_group", "grade", "log_nodes", "log_pgr", "log_er",
                      "hormon", "chemo"]


class Distorted:
    """A deployed model whose log-odds are ``slope * logit(p) + shift`` of a real model's.

    It has ``predict_proba`` and ``classes_`` only (no ``fit``): any scoring object works.
    """

    def __init__(self, model, shift: float = 0.0, slope: float = 1.0) -> None:
        self.model, self.shift, self.slope = model, shift, slope
        self.classes_ = model.classes_

    def predict_proba(self, X):
        p = np.clip(self.model.predict_proba(X)[:, 1], 1e-6, 1 - 1e-6)
        risk = expit(self.slope * logit(p) + self.shift)
        return np.column_stack([1 - risk, risk])


def _lr():
    return make_pipeline(StandardScaler(), LogisticRegression())


def _citl_slope(y, model, X) -> tuple[float, float]:
    return calibration_intercept_slope(np.asarray(y, dtype=float), model.predict_proba(X)[:, 1])


@pytest.fixture(scope="module")
def pima():
    train, test = load_dataset("pima_tr"), load_dataset("pima_te")
    update, evaluate = train_test_split(test, test_size=0.5, stratify=test["type"],
                                        random_state=0)
    base = _lr().fit(train[PIMA_FEATURES], train["type"])
    return {"train": train, "test": test, "update": update, "evaluate": evaluate, "base": base}


@pytest.fixture(scope="module")
def rotterdam():
    frame = load_dataset("rotterdam_5y")
    development, held_out = train_test_split(frame, test_size=0.4, stratify=frame["died_5y"],
                                             random_state=0)
    base = _lr().fit(development[ROTTERDAM_FEATURES], development["died_5y"])
    return {"all": frame, "development": development, "held_out": held_out, "base": base}


def _xy(frame: pd.DataFrame, features: list[str], target: str):
    return frame[features], frame[target]


# ----------------------------------------------------------------- the four methods


def test_recalibration_in_the_large_removes_a_planted_intercept_shift(pima):
    X_u, y_u = _xy(pima["update"], PIMA_FEATURES, "type")
    X_e, y_e = _xy(pima["evaluate"], PIMA_FEATURES, "type")
    deployed = Distorted(pima["base"], shift=-1.5)  # risks far too low
    before, _ = _citl_slope(y_e == "Yes", deployed, X_e)
    assert before > 1.0

    model = recalibrate_in_the_large(deployed, X_u, y_u)
    # the fitted correction is the planted shift plus the base model's own
    # calibration-in-the-large on the update half, and agrees with the evaluation core
    base_citl, _ = _citl_slope(y_u == "Yes", pima["base"], X_u)
    assert model.intercept_ == pytest.approx(1.5 + base_citl, abs=1e-5)
    assert model.intercept_ == pytest.approx(_citl_slope(y_u == "Yes", deployed, X_u)[0],
                                             abs=1e-5)
    after, slope_after = _citl_slope(y_e == "Yes", model, X_e)
    assert abs(after) < 0.25
    # the ranking and the spread of risks are untouched
    _, slope_before = _citl_slope(y_e == "Yes", deployed, X_e)
    assert slope_after == pytest.approx(slope_before, abs=1e-4)


def test_logistic_recalibration_recovers_a_planted_slope_in_the_outcomes(rotterdam):
    frame = rotterdam["all"]
    X = frame[ROTTERDAM_FEATURES]
    lp = logit(np.clip(rotterdam["base"].predict_proba(X)[:, 1], 1e-6, 1 - 1e-6))
    rng = np.random.default_rng(7)
    y = rng.binomial(1, expit(0.4 + 0.6 * lp))  # true intercept 0.4, slope 0.6
    model = LogisticRecalibration(rotterdam["base"]).fit(X, y)
    assert model.slope_ == pytest.approx(0.6, abs=0.12)
    assert model.intercept_ == pytest.approx(0.4, abs=0.15)
    # the same fit as the evaluation core's calibration intercept-and-slope model
    b0, b1 = recalibration_fit(y, expit(lp))[1:]
    assert (model.intercept_, model.slope_) == pytest.approx((b0, b1), abs=1e-5)


def test_logistic_recalibration_undoes_overconfident_risks(rotterdam):
    update, evaluate = train_test_split(rotterdam["held_out"], test_size=0.5,
                                        stratify=rotterdam["held_out"]["died_5y"], random_state=0)
    X_u, y_u = _xy(update, ROTTERDAM_FEATURES, "died_5y")
    X_e, y_e = _xy(evaluate, ROTTERDAM_FEATURES, "died_5y")
    deployed = Distorted(rotterdam["base"], slope=2.5, shift=0.3)  # risks far too extreme
    _, slope_before = _citl_slope(y_e, deployed, X_e)
    assert slope_before < 0.5
    model = logistic_recalibration(deployed, X_u, y_u)
    _, base_slope = _citl_slope(y_u, rotterdam["base"], X_u)
    assert model.slope_ == pytest.approx(base_slope / 2.5, abs=1e-5)
    citl_after, slope_after = _citl_slope(y_e, model, X_e)
    assert abs(slope_after - 1) < 0.2
    assert abs(citl_after) < 0.15


def test_revision_of_a_logistic_pipeline_is_an_unpenalised_refit_of_its_coefficients(rotterdam):
    base = rotterdam["base"]
    X, y = _xy(rotterdam["held_out"], ROTTERDAM_FEATURES, "died_5y")
    model = ModelRevision(base).fit(X, y)
    assert model.feature_source_ == "preprocessed"
    assert model.n_parameters_ == len(ROTTERDAM_FEATURES) + 1
    assert "base_log_odds" not in model.coefficients_
    direct = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(base[:-1].transform(X), y)
    direct_risk = direct.predict_proba(base[:-1].transform(X))[:, 1]
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], direct_risk, atol=1e-5)
    assert model.coefficients_["intercept"] == pytest.approx(direct.intercept_[0], abs=1e-4)

    selected = model_revision(base, X, y, features=["hormon"])
    assert sorted(selected.coefficients_) == ["base_log_odds", "hormon", "intercept"]
    assert selected.n_parameters_ == 3


def test_refit_is_a_fresh_clone_and_the_base_is_untouched(pima):
    base = pima["base"]
    coef = base[-1].coef_.copy()
    X_u, y_u = _xy(pima["update"], PIMA_FEATURES, "type")
    model = refit(base, X_u, y_u)
    assert isinstance(model, Refit)
    assert model.estimator_ is not base
    np.testing.assert_array_equal(base[-1].coef_, coef)
    assert not np.allclose(model.estimator_[-1].coef_, coef)
    assert list(model.classes_) == ["No", "Yes"]
    assert set(model.predict(pima["evaluate"][PIMA_FEATURES])) <= {"No", "Yes"}


def test_updates_follow_the_estimator_contract(pima):
    X_u, y_u = _xy(pima["update"], PIMA_FEATURES, "type")
    X_e = pima["evaluate"][PIMA_FEATURES]
    for update in (RecalibrationInTheLarge, LogisticRecalibration, ModelRevision, Refit):
        model = update(pima["base"])
        copy = clone(model)
        assert copy.base is pima["base"]  # the deployed model is kept, not reset
        proba = copy.fit(X_u, y_u).predict_proba(X_e)
        assert proba.shape == (len(X_e), 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        assert list(copy.classes_) == ["No", "Yes"]
    with pytest.raises(ValueError, match="not among the model's classes"):
        RecalibrationInTheLarge(pima["base"]).fit(X_u, y_u.replace({"Yes": "yes"}))
    with pytest.raises(ValueError, match="rows"):
        LogisticRecalibration(pima["base"]).fit(X_u, y_u.iloc[:-1])


# ----------------------------------------------------------------- closed test


def test_closed_test_keeps_the_original_model_on_the_same_population(pima, rotterdam):
    # Rotterdam: a held-out 40% of the development data
    X, y = _xy(rotterdam["held_out"], ROTTERDAM_FEATURES, "died_5y")
    result = closed_test(rotterdam["base"], X, y)
    assert result.method == "original"
    assert result.model is rotterdam["base"]
    assert result.decisive == 1
    assert [t.df for t in result.tests] == [10, 9, 8]  # p + 1, p, p - 1 for p = 9
    assert result.tests[0].p_value > 0.05
    assert "original model is kept" in result.reason
    # Pima: Ripley's test set is a random split of the same women
    X, y = _xy(pima["test"], PIMA_FEATURES, "type")
    assert closed_test(pima["base"], X, y).method == "original"


def test_closed_test_chooses_the_update_a_planted_shift_needs(rotterdam):
    X, y = _xy(rotterdam["held_out"], ROTTERDAM_FEATURES, "died_5y")
    shifted = closed_test(Distorted(rotterdam["base"], shift=-0.8), X, y)
    assert shifted.method == "recalibration_in_the_large"
    assert shifted.tests[0].significant and not shifted.tests[1].significant
    assert shifted.model.intercept_ == pytest.approx(0.8, abs=0.25)
    assert "new intercept alone" in shifted.reason

    stretched = closed_test(Distorted(rotterdam["base"], slope=2.0), X, y)
    assert stretched.method == "logistic_recalibration"
    assert [t.significant for t in stretched.tests] == [True, True, False]
    assert stretched.model.slope_ == pytest.approx(0.5, abs=0.12)
    as_json = stretched.to_dict()
    assert as_json["method"] == "logistic_recalibration" and "model" not in as_json


def test_closed_test_detects_temporal_change_in_rotterdam(rotterdam):
    # fitted on 1978-1987 surgeries, tested on 1988-1993, when hormonal therapy rose from
    # 4% to 15% of patients: the predictors' effects changed, not the average risk or spread
    frame = rotterdam["all"]
    early, late = frame[frame["year"] <= 1987], frame[frame["year"] >= 1988]
    assert early["hormon"].mean() < 0.1 < late["hormon"].mean()
    base = _lr().fit(early[ROTTERDAM_FEATURES], early["died_5y"])
    X, y = _xy(late, ROTTERDAM_FEATURES, "died_5y")
    citl, slope = _citl_slope(y, base, X)
    assert abs(citl) < 0.15 and abs(slope - 1) < 0.15
    result = closed_test(base, X, y)
    assert result.method == "model_revision"
    assert all(t.significant for t in result.tests)
    assert result.tests[0].p_value < 0.05


def test_closed_test_of_a_non_linear_model_revises_on_its_log_odds_and_raw_features(rotterdam):
    development = rotterdam["development"]
    boosted = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=0).fit(
        development[ROTTERDAM_FEATURES], development["died_5y"]
    )
    X, y = _xy(rotterdam["held_out"], ROTTERDAM_FEATURES, "died_5y")
    result = closed_test(Distorted(boosted, shift=-1.0), X, y)
    assert [t.df for t in result.tests] == [11, 10, 9]  # intercept, log-odds, 9 features
    assert result.tests[0].significant
    assert result.method != "original"


# ----------------------------------------------------------------- champion vs challenger


def test_champion_challenger_prefers_a_clearly_better_model(pima):
    X_u, y_u = _xy(pima["update"], PIMA_FEATURES, "type")
    X_e, y_e = _xy(pima["evaluate"], PIMA_FEATURES, "type")
    champion = Distorted(pima["base"], shift=-1.5)
    challenger = recalibrate_in_the_large(champion, X_u, y_u)
    result = champion_challenger(champion, challenger, X_e, y_e, n_boot=500, seed=1)
    brier = result.difference["brier"]
    assert brier.high < 0
    assert result.preferred == "challenger"
    assert result.verdict.startswith("The challenger is better")
    # recalibration in the large keeps the ranking: the AUROC difference is exactly 0
    assert result.difference["auroc"].value == pytest.approx(0.0, abs=1e-12)
    assert result.challenger["calibration_intercept"].low < 0 < \
        result.challenger["calibration_intercept"].high
    assert result.champion["calibration_intercept"].low > 0.5
    # the other way round, the champion wins
    reverse = champion_challenger(challenger, champion, X_e, y_e, n_boot=500, seed=1)
    assert reverse.preferred == "champion"
    assert reverse.difference["brier"].low > 0


def test_champion_challenger_finds_better_discrimination(pima):
    train = pima["train"]
    X_e, y_e = _xy(pima["evaluate"], PIMA_FEATURES, "type")
    blood_pressure_only = _lr().fit(train[["bp"]], train["type"])

    class OnlyBp:
        classes_ = blood_pressure_only.classes_

        def predict_proba(self, X):
            return blood_pressure_only.predict_proba(X[["bp"]])

    result = champion_challenger(OnlyBp(), pima["base"], X_e, y_e, n_boot=500)
    assert result.difference["auroc"].low > 0.1
    assert result.difference["brier"].high < 0
    assert result.preferred == "challenger"
    assert "discriminates better" in result.verdict


def test_champion_challenger_finds_no_difference_between_identical_models(pima):
    X_e, y_e = _xy(pima["evaluate"], PIMA_FEATURES, "type")
    twin = clone(pima["base"]).fit(pima["train"][PIMA_FEATURES], pima["train"]["type"])
    result = champion_challenger(pima["base"], twin, X_e, y_e, n_boot=300)
    for metric, estimate in result.difference.items():
        assert estimate.low <= 0 <= estimate.high, metric
        assert estimate.value == pytest.approx(0.0, abs=1e-12), metric
    assert result.preferred == "no clear difference"
    assert "Keep the champion" in result.verdict
    assert result.n == len(X_e) and result.events == int((y_e == "Yes").sum())
