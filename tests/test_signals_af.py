"""AF windows from CPSC 2021 annotations, patient-level splits, HRV and raw-window models."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from medpredict.data.errors import DataError
from medpredict.evaluation.splits import (
    PatientLeakError,
    assert_patient_disjoint,
    leave_one_patient_out,
)
from medpredict.settings import require_data
from medpredict.signals.af import af_metrics, evaluate_lopo, hrv_model
from medpredict.signals.features import HRVFeatures
from medpredict.signals.nets import CNN1DClassifier, CNNGRUClassifier
from medpredict.signals.wfdb_io import read_record, rhythm_intervals
from medpredict.signals.windows import af_windows, label_windows


@pytest.fixture(scope="module")
def windows() -> tuple[np.ndarray, pd.DataFrame]:
    return af_windows(require_data("ecg/cpsc2021"), window_s=30, step_s=10)


def test_windows_are_labelled_from_rhythm_annotations() -> None:
    path = require_data("ecg/cpsc2021/data_101_8.hea")
    record = read_record(path)
    episodes = rhythm_intervals(path)
    assert episodes["rhythm"].tolist() == ["N", "AFIB", "N", "AFIB", "N"]
    assert episodes.loc[1, ["start", "end"]].tolist() == [3650, 14224]
    w = label_windows(episodes, len(record.signal), record.fs, window_s=10, step_s=5)
    assert len(w) == (len(record.signal) - 2000) // 1000 + 1
    inside = w[(w["start"] >= 3650) & (w["stop"] <= 14224)]
    normal = w[(w["start"] >= 14224) & (w["stop"] <= 19094)]
    assert len(inside) == 9 and (inside["label"] == 1).all() and (inside["af_fraction"] == 1).all()
    assert len(normal) == 3 and (normal["label"] == 0).all() and (normal["af_fraction"] == 0).all()
    entering = w[w["start"] == 3000].iloc[0]
    assert entering["af_fraction"] == pytest.approx((5000 - 3650) / 2000)
    assert entering["label"] == 1
    leaving = w[w["start"] == 13000].iloc[0]
    assert leaving["af_fraction"] == pytest.approx((14224 - 13000) / 2000)


def test_records_and_patients_have_the_documented_rhythms(windows) -> None:
    X, meta = windows
    assert X.shape == (len(meta), 2, 6000) and X.dtype == np.float32
    af_share = meta.groupby("patient")["label"].mean()
    assert af_share[["21", "35"]].eq(0).all()
    assert af_share[["8", "84"]].eq(1).all()
    assert 0 < af_share["101"] < 1 and 0 < af_share["92"] < 1
    assert meta.groupby("patient")["record"].nunique().eq(3).all()


def test_patient_split_guard_raises_and_lopo_never_mixes(windows) -> None:
    _, meta = windows
    groups = meta["patient"].to_numpy()
    with pytest.raises(PatientLeakError, match=r"\['84'\]"):
        assert_patient_disjoint(
            [(np.flatnonzero(groups == "84"), np.flatnonzero(np.isin(groups, ["84", "8"])))],
            groups,
        )
    folds = list(leave_one_patient_out(groups))
    assert len(folds) == 6
    for train, test in folds:
        assert set(groups[train]).isdisjoint(groups[test])
    assert sorted(np.concatenate([t for _, t in folds]).tolist()) == list(range(len(groups)))


class _PatientSpy(ClassifierMixin, BaseEstimator):
    """Predicts 0.5 and remembers which patient codes (column 0) it was fitted on."""

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        self.seen_ = set(np.asarray(X)[:, 0].tolist())
        return self

    def predict_proba(self, X):
        assert self.seen_.isdisjoint(np.asarray(X)[:, 0].tolist())
        return np.full((len(X), 2), 0.5)


def test_lopo_fits_each_fold_without_the_held_out_patient(windows) -> None:
    _, meta = windows
    codes = pd.factorize(meta["patient"])[0].astype(float)
    X = np.column_stack([codes, meta["af_fraction"]])
    result = evaluate_lopo(_PatientSpy(), X, meta["label"], meta["patient"], n_boot=20)
    assert np.all(result.probability == 0.5)
    assert result.estimates["auroc"].value == pytest.approx(0.5)
    assert result.per_patient["windows"].sum() == len(meta)


def test_neurokit_r_peaks_match_annotated_beats() -> None:
    path = require_data("ecg/cpsc2021/data_21_7.hea")
    import wfdb

    from medpredict.signals.ecg import r_peaks

    record = read_record(path)
    beats = wfdb.rdann(str(path.with_suffix("")), "atr")
    annotated = beats.sample[np.isin(beats.symbol, ["N", "A", "V"])]
    annotated = annotated[annotated < 12_000]
    found = r_peaks(record.signal[:12_000, 1], record.fs)
    tolerance = int(0.075 * record.fs)
    hits = sum(np.any(np.abs(found - b) <= tolerance) for b in annotated)
    assert hits / annotated.size >= 0.95
    assert len(found) <= annotated.size + 3


def test_hrv_features_separate_af_from_sinus_rhythm(windows) -> None:
    """Patient 35's irregular non-AF rhythm is a hard negative and is left out here."""
    X, meta = windows
    pick = pd.concat(
        [meta[meta["patient"] == p].head(4) for p in ("21", "84", "8")]
    ).index.to_numpy()
    features = HRVFeatures(fs=200, quality=False).fit_transform(X[pick])
    assert list(features.columns) == list(HRVFeatures(quality=False).get_feature_names_out())
    af = meta.loc[pick, "label"].to_numpy() == 1
    assert features.loc[af, "HRV_CVNN"].min() > features.loc[~af, "HRV_CVNN"].max()


def test_edge_cases_with_neurokit_simulators() -> None:
    """Synthetic signals from NeuroKit2's simulators, used only for edge cases."""
    import neurokit2 as nk

    from medpredict.signals.ecg import hrv_features, ppg_peaks, r_peaks, signal_quality

    ecg = nk.ecg_simulate(duration=30, sampling_rate=200, heart_rate=70, random_state=0)
    peaks = r_peaks(ecg, 200)
    assert abs(len(peaks) - 35) <= 2
    assert 60_000 / hrv_features(peaks, 200)["HRV_MeanNN"] == pytest.approx(70, abs=3)
    flat = np.zeros(6000)
    assert np.isnan(signal_quality(flat, 200))
    assert all(np.isnan(v) for v in hrv_features(r_peaks(flat, 200), 200).values())
    ppg = nk.ppg_simulate(duration=30, sampling_rate=100, heart_rate=80, random_state=0)
    assert abs(len(ppg_peaks(ppg, 100)) - 40) <= 3
    with pytest.raises(DataError, match="lead 5"):
        HRVFeatures(lead=5).fit_transform(np.zeros((1, 2, 6000)))


def test_classical_hrv_pipeline_is_fitted_inside_folds() -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    X.iloc[::7, 1] = np.nan
    y = (X["a"] > 0).astype(int).to_numpy()
    result = evaluate_lopo(hrv_model(), X, y, np.repeat(list("wxyz"), 10), n_boot=30)
    assert result.estimates["auroc"].value > 0.85
    assert af_metrics(np.array([0, 1, 1]), np.array([0.2, 0.9, 0.4]))["f1"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("model", [CNN1DClassifier, CNNGRUClassifier])
def test_raw_window_networks_follow_the_sklearn_contract(windows, model) -> None:
    X, meta = windows
    pick = pd.concat([meta[meta["patient"] == p].head(10) for p in ("21", "84")]).index
    net = model(epochs=2, width=8, random_state=0)
    fitted = clone(net).fit(X[pick], meta.loc[pick, "label"])
    proba = fitted.predict_proba(X[pick])
    assert proba.shape == (20, 2) and np.allclose(proba.sum(axis=1), 1)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(restored.predict_proba(X[pick[:3]]), proba[:3], rtol=1e-5)
    with pytest.raises(DataError, match="fitted on"):
        fitted.predict_proba(X[pick][:, :1, :])
    with pytest.raises(DataError, match="two classes"):
        clone(net).fit(X[pick[:5]], np.zeros(5))


def test_a_record_reads_the_same_by_its_stem_header_and_matlab_file(tmp_path, monkeypatch):
    import shutil

    from wfdb.io.convert.matlab import wfdb_to_mat

    source = require_data("ecg/cpsc2021/data_101_8.hea")
    for suffix in (".hea", ".dat"):
        shutil.copy(source.with_suffix(suffix), tmp_path / f"data_101_8{suffix}")
    monkeypatch.chdir(tmp_path)
    wfdb_to_mat("data_101_8")  # writes data_101_8m.mat and its header, as CinC data ship
    original = read_record(tmp_path / "data_101_8")
    for path in (tmp_path / "data_101_8m.mat", tmp_path / "data_101_8m.hea",
                 tmp_path / "data_101_8m"):
        again = read_record(path)
        assert again.fs == original.fs and again.signal.shape == original.signal.shape
        np.testing.assert_allclose(again.signal, original.signal, atol=1e-3)
