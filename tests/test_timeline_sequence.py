"""Sequence models over the timeline grid: learning, absent columns, seeds, saving, attribution.

Most tests use a small synthetic grid, made here on purpose: the outcome depends on the
last value of one code (``A``) in the last three steps and on whether it was measured
there at all, so a model must read a late step and the missingness to rank the outcome.
One test trains GRU-D on real PhysioNet/CinC Challenge 2012 ICU stays.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medpredict.data.errors import DataError
from medpredict.evaluation.metrics import auroc
from medpredict.models import make_model
from medpredict.models.ensembles import requests_groups
from medpredict.models.registry import takes_raw_input
from medpredict.safe_skops import dumps_checked, loads_checked
from medpredict.settings import require_data
from medpredict.timeline.sequence import (
    GRUDClassifier,
    SequenceEmbeddingBooster,
    TimeAwareTransformerClassifier,
    grid_attribution,
)

CODES = ("A", "B", "C", "D")
STEPS = 12
# grid columns left out of the table, as when a column was all-missing in the data
ABSENT = [f"seq__D__t{k:03d}" for k in range(4)] + ["seq__C__t005"]
SMALL = {
    "hidden_size": 32, "learning_rate": 3e-3, "max_epochs": 40, "patience": 6, "batch_size": 64,
}


def synthetic_timelines(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Synthetic table: grid of 4 codes x 12 steps (40 % measured), two static columns.

    Risk rises steeply with A's last value in steps 9-11; when A was not measured in
    those steps the risk is high (logit 1.5) whatever came before.
    """
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, len(CODES), STEPS))
    grid = np.where(rng.random(values.shape) < 0.4, values, np.nan)
    late = pd.DataFrame(grid[:, 0, -3:]).ffill(axis=1).iloc[:, -1].to_numpy()
    logit = np.where(np.isnan(late), 1.5, 4.0 * np.nan_to_num(late) - 1.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    columns = [f"seq__{c}__t{k:03d}" for c in CODES for k in range(STEPS)]
    frame = pd.DataFrame(grid.reshape(n, -1), columns=columns)
    frame.insert(0, "Age", rng.normal(65, 12, size=n).round())
    frame.insert(1, "Sex", pd.Series(rng.choice(["F", "M"], size=n), dtype=object))
    frame["B__mean__12h"] = pd.DataFrame(grid[:, 1]).mean(axis=1).to_numpy()
    return frame.drop(columns=ABSENT), y


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    X, y = synthetic_timelines(1500, seed=0)
    return X.iloc[:1000], y[:1000], X.iloc[1000:].reset_index(drop=True), y[1000:]


@pytest.fixture(scope="module")
def grud(data) -> GRUDClassifier:
    X, y, _, _ = data
    return GRUDClassifier(**SMALL, random_state=0).fit(X, y)


def test_the_synthetic_outcome_needs_the_late_value(data):
    """The rule ranks the outcome well, A's early values do not (guards the tests below)."""
    X, y, _, _ = data
    early = X["seq__A__t002"].fillna(0).to_numpy()
    assert abs(auroc(y, early) - 0.5) < 0.1
    late = X[["seq__A__t009", "seq__A__t010", "seq__A__t011"]].ffill(axis=1).iloc[:, -1]
    unmeasured = (1.5 + 1.0) / 4.0  # the value whose logit equals the unmeasured one
    assert auroc(y, late.fillna(unmeasured).to_numpy()) > 0.85


def test_grud_learns_late_value_and_missingness(grud, data):
    _, _, X_test, y_test = data
    proba = grud.predict_proba(X_test)
    assert auroc(y_test, proba[:, 1]) > 0.8
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert grud.embed(X_test).shape == (len(X_test), SMALL["hidden_size"])


def test_transformer_learns_late_value_and_missingness(data):
    X, y, X_test, y_test = data
    model = TimeAwareTransformerClassifier(**SMALL, n_heads=4, random_state=0).fit(X, y)
    proba = model.predict_proba(X_test)
    assert auroc(y_test, proba[:, 1]) > 0.8
    assert np.allclose(proba.sum(axis=1), 1.0)


def test_absent_grid_columns_are_always_missing(grud, data):
    """A model fitted without some grid columns equals one fitted with them all-NaN."""
    X, y, X_test, _ = data
    assert grud.grid_codes_ == list(CODES) and grud.n_steps_ == STEPS
    assert set(ABSENT).isdisjoint(grud.grid_columns_)
    assert len(grud.grid_columns_) == len(CODES) * STEPS - len(ABSENT)
    assert grud.static_columns_ == ["Age", "Sex", "B__mean__12h"]

    def with_absent_as_nan(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(**dict.fromkeys(ABSENT, np.nan))

    full = GRUDClassifier(**SMALL, random_state=0).fit(with_absent_as_nan(X), y)
    assert len(full.grid_columns_) == len(CODES) * STEPS
    np.testing.assert_array_equal(
        full.predict_proba(with_absent_as_nan(X_test)), grud.predict_proba(X_test)
    )


def test_fit_is_reproducible_for_a_seed(grud, data):
    X, y, X_test, _ = data
    again = GRUDClassifier(**SMALL, random_state=0).fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X_test), grud.predict_proba(X_test))
    other = GRUDClassifier(**SMALL, random_state=1).fit(X, y)
    assert not np.array_equal(other.predict_proba(X_test), grud.predict_proba(X_test))


def test_balanced_class_weight_raises_the_risk_of_a_rare_outcome(data):
    X, y, X_test, _ = data
    keep = np.flatnonzero((y == 0) | (np.arange(y.size) % 5 == 0))  # about 1 in 6 positive
    rare_X, rare_y = X.iloc[keep], y[keep]
    plain = GRUDClassifier(**SMALL, random_state=0).fit(rare_X, rare_y)
    balanced = GRUDClassifier(**SMALL, class_weight="balanced", random_state=0).fit(
        rare_X, rare_y
    )
    risk = [m.predict_proba(X_test)[:, 1].mean() for m in (plain, balanced)]
    assert risk[1] > risk[0] + 0.1


def test_patients_routed_as_groups_split_early_stopping_by_patient(data):
    X, y, X_test, _ = data
    patients = np.arange(len(y)) // 3
    by_patient = GRUDClassifier(**SMALL, random_state=0).fit(X, y, groups=patients)
    by_row = GRUDClassifier(**SMALL, random_state=0).fit(X, y)
    assert not np.array_equal(by_patient.predict_proba(X_test), by_row.predict_proba(X_test))


@pytest.mark.parametrize(
    "name", ["grud", "timeline_transformer", "grud_lightgbm", "timeline_ensemble"]
)
def test_save_load_round_trip_gives_identical_probabilities(name, data):
    X, y, X_test, _ = data
    model = make_model(name, seed=0, hidden_size=16, max_epochs=5).fit(X, y)
    restored = loads_checked(dumps_checked(model), name)
    np.testing.assert_array_equal(restored.predict_proba(X_test), model.predict_proba(X_test))
    assert takes_raw_input(name) and requests_groups(model)


def test_embedding_booster_learns_from_the_embedding(data):
    """LightGBM sees no signal in the non-grid columns here: all of it is in the embedding."""
    X, y, X_test, y_test = data
    model = make_model("grud_lightgbm", seed=0, **SMALL).fit(X, y)
    assert model.network_rows_ + model.booster_rows_ == len(X)
    assert auroc(y_test, model.predict_proba(X_test)[:, 1]) > 0.75
    tabular_only = SequenceEmbeddingBooster(embed_sequence=False).fit(X, y)
    assert tabular_only.network_ is None
    assert auroc(y_test, tabular_only.predict_proba(X_test)[:, 1]) < 0.65


def test_grid_attribution_ranks_the_informative_code_and_window_first(grud, data):
    _, _, X_test, _ = data
    table = grid_attribution(grud, X_test, rows=range(40), block=3)
    assert len(table) == 40 * len(CODES) * (STEPS // 3)
    assert (table.loc[table["measurements"] == 0, "importance"] == 0).all()
    strength = table.assign(size=table["importance"].abs())
    by_code = strength.groupby("code")["size"].mean().sort_values(ascending=False)
    assert by_code.index[0] == "A"
    by_cell = strength.groupby(["code", "window"])["size"].mean().idxmax()
    assert by_cell == ("A", "t009-t011")
    risk = grud.predict_proba(X_test.iloc[:40])[:, 1]
    np.testing.assert_allclose(table.groupby("row")["risk"].first().to_numpy(), risk)


def test_grid_attribution_refuses_a_table_without_grid(grud, data):
    _, _, X_test, _ = data
    with pytest.raises(DataError, match="no grid columns"):
        grid_attribution(grud, X_test[["Age", "Sex"]], rows=[0])
    with pytest.raises(DataError, match="row 5000 is outside"):
        grid_attribution(grud, X_test, rows=[5000])


def test_non_numeric_grid_column_is_refused_by_name(data):
    X, y, _, _ = data
    broken = X.assign(seq__B__t003=X["seq__B__t003"].astype(str))
    with pytest.raises(DataError, match="grid column 'seq__B__t003' has dtype"):
        GRUDClassifier(max_epochs=1).fit(broken, y)


def test_a_table_without_grid_columns_trains_the_static_head(data):
    X, y, X_test, _ = data
    static = ["Age", "Sex", "B__mean__12h"]
    model = GRUDClassifier(hidden_size=8, max_epochs=2).fit(X[static], y)
    assert model.grid_codes_ == [] and model.n_steps_ == 0
    assert model.predict_proba(X_test[static]).shape == (len(X_test), 2)


@pytest.mark.slow
def test_grud_predicts_in_hospital_death_on_physionet_2012():
    """Real ICU stays (PhysioNet/CinC 2012 set A): 1,000 to train, 1,000 held out."""
    from medpredict.timeline.features import tabularise
    from medpredict.timeline.readers.physionet2012 import ADMISSION, read_physionet2012
    from medpredict.timeline.spec import TimelineSpec

    result = read_physionet2012(
        require_data("ehr/physionet2012/set-a.tar.gz"),
        require_data("ehr/physionet2012/Outcomes-a.txt"),
    )
    outcomes = result.outcomes.sort_values("subject_id").iloc[:2000]
    samples = pd.DataFrame(
        {"subject_id": outcomes["subject_id"], "index_time": ADMISSION + pd.Timedelta("48h")}
    )
    spec = TimelineSpec.model_validate({"outcome": {"column": "In-hospital_death"}})
    events = result.events[result.events["subject_id"].isin(outcomes["subject_id"])]
    X = tabularise(events, samples, spec).features
    y = outcomes["In-hospital_death"].to_numpy()
    assert X.filter(like="seq__").shape[1] > 30 * 48
    model = GRUDClassifier(random_state=0).fit(X.iloc[:1000], y[:1000])
    assert auroc(y[1000:], model.predict_proba(X.iloc[1000:])[:, 1]) > 0.75
