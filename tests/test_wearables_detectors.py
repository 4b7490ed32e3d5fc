"""Detectors on real wearable data, with a known baseline shift injected where stated."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from medpredict.settings import require_data
from medpredict.wearables.alerts import DISCLAIMER, build_alerts, write_alerts
from medpredict.wearables.cusum import CuSumDetector, OnlineCuSum
from medpredict.wearables.daily import daily_features
from medpredict.wearables.evaluation import (
    cross_fitted_scores,
    onset_dates,
    person_outcomes,
    summarise_outcomes,
)
from medpredict.wearables.multivariate import BaselineDeviationForest
from medpredict.wearables.overnight import OvernightRHRAlert
from medpredict.wearables.quantile import P2Quantile
from medpredict.wearables.readers import read_path, read_welltory
from medpredict.wearables.resting import RestingHeartRate
from medpredict.wearables.store import WearableStore

HEALTHY = "4985083f4d"  # Welltory participant without reported symptoms, 4 months of data


@pytest.fixture(scope="module")
def welltory() -> tuple[pd.DataFrame, pd.DataFrame]:
    batches, participants = read_welltory(require_data("wearables/welltory"))
    store = WearableStore()
    for source, frame in batches:
        store.append(frame, source=source)
    return daily_features(store), participants


@pytest.fixture(scope="module")
def shifted(welltory) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """A healthy person's real days, and a copy with +10 bpm on 8 days from the 60th."""
    daily, _ = welltory
    person = daily[daily["person"] == HEALTHY].reset_index(drop=True)
    start = person.dropna(subset=["resting_hr"])["date"].iloc[60]
    window = (person["date"] >= start) & (person["date"] < start + pd.Timedelta(days=8))
    shift = person.copy()
    shift.loc[window, ["resting_hr", "heart_rate_avg"]] += 10
    return person, shift, window


def _alert_days(scores: pd.DataFrame) -> set[pd.Timestamp]:
    return set(scores.loc[scores["level"] != "none", "date"])


def test_resting_minutes_follow_twelve_still_minutes_on_stanford_stream() -> None:
    batches = dict(read_path(require_data("wearables/stanford_covid")))
    hr, steps = batches["A0NVTRV_hr.csv.zip"], batches["A0NVTRV_steps.csv.zip"]

    def minutes(frame: pd.DataFrame) -> np.ndarray:
        return pd.to_datetime(frame["time"]).to_numpy().astype("datetime64[m]").astype(np.int64)

    rest = RestingHeartRate()
    step_min, step_val = minutes(steps), steps["value"].to_numpy(float)
    rest_min, rest_hr = rest.resting_minutes(
        minutes(hr), hr["value"].to_numpy(float), step_min, step_val
    )
    assert 10_000 < rest_min.size < hr.shape[0]
    moving = set(step_min[step_val > 0].tolist())
    sample = np.random.default_rng(0).choice(rest_min, 500, replace=False)
    assert not any(m - k in moving for m in sample for k in range(13))
    assert rest_hr.mean() < hr["value"].mean()
    daily = rest.summarise("A0NVTRV", rest_min, rest_hr)
    assert daily["overnight_rhr"].notna().sum() >= 40
    assert (daily["resting_minutes"] > 0).all()


def test_cusum_alerts_soon_after_a_known_shift_and_not_before(shifted) -> None:
    original, shift, window = shifted
    detector = CuSumDetector()
    assert _alert_days(detector.detect(original)) == set()
    alerts = sorted(_alert_days(detector.detect(shift)))
    start = shift.loc[window, "date"].min()
    assert alerts and start <= alerts[0] <= start + pd.Timedelta(days=3)


def test_overnight_rule_turns_red_on_the_second_shifted_night(shifted) -> None:
    original, shift, window = shifted
    detector = OvernightRHRAlert()
    before = detector.detect(original)
    after = detector.detect(shift)
    shifted_days = set(shift.loc[window, "date"])
    red = set(after.loc[after["level"] == "red", "date"])
    assert len(red & shifted_days) >= 6
    assert not _alert_days(before) & shifted_days
    assert all(d == ("resting_hr",) for d in after.loc[after["level"] == "red", "drivers"])


def test_multivariate_flags_a_multi_signal_shift_fitted_on_other_people(welltory, shifted):
    daily, _ = welltory
    original, _, window = shifted
    change = original.copy()
    change.loc[window, ["resting_hr", "heart_rate_avg"]] += 12
    change.loc[window, "daily_steps"] *= 0.3
    detector = BaselineDeviationForest().fit(daily[daily["person"] != HEALTHY])
    before = detector.detect(original).set_index("date")
    after = detector.detect(change).set_index("date")
    days = sorted(set(change.loc[window, "date"]) & set(after.index))
    first = days[:3]  # the rolling baseline absorbs a sustained change within days
    assert (after.loc[first, "value"] > before.loc[first, "value"]).all()
    flagged = after.loc[days][after.loc[days, "level"] != "none"]
    assert len(flagged) >= 2
    assert all("resting_hr" in d for d in flagged["drivers"])


def test_online_cusum_memory_does_not_grow_with_readings() -> None:
    """Synthetic stream: the per-reading state must stay the same size."""
    rng = np.random.default_rng(0)
    detector = OnlineCuSum(baseline_size=100)
    for x in rng.normal(60, 2, 1_000):
        detector.update(float(x))
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    for x in rng.normal(60, 2, 100_000):
        detector.update(float(x))
    grown, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert grown - base < 2_000
    assert detector.ready and detector.n_seen == 101_000


def test_batch_detector_equals_the_online_update(shifted) -> None:
    _, shift, _ = shifted
    scores = CuSumDetector().detect(shift)
    online = OnlineCuSum()
    stats = []
    for value in shift.dropna(subset=["resting_hr"])["resting_hr"]:
        if online.update(value) not in ("baseline", "missing"):
            stats.append(online.statistic)
    np.testing.assert_allclose(scores["statistic"], stats)


def test_p2_quantile_tracks_the_exact_quantile() -> None:
    values = np.random.default_rng(1).gamma(2.0, size=20_000)
    for p in (0.5, 0.95, 0.99):
        est = P2Quantile(p)
        for v in values:
            est.update(float(v))
        assert est.value() == pytest.approx(np.quantile(values, p), rel=0.03)
    with pytest.raises(ValueError, match="between 0 and 1"):
        P2Quantile(1.0)


def test_alerts_carry_level_drivers_baseline_insights_and_disclaimer(shifted, tmp_path):
    _, shift, _ = shifted
    shift = shift.copy()
    shift.loc[shift.index[-4:], "sleep_hours"] = 3.0
    scores = OvernightRHRAlert().detect(shift)
    alerts = build_alerts(scores, shift)
    assert not alerts.empty and (alerts["note"] == DISCLAIMER).all()
    assert "not a diagnosis" in DISCLAIMER
    text = " ".join(i for row in alerts["insights"] for i in row)
    assert "above your usual" in text
    csv_path, json_path = write_alerts(alerts, tmp_path)
    assert len(pd.read_csv(csv_path)) == len(alerts)
    assert json_path.read_text().count('"level"') == len(alerts)


def test_detectors_follow_the_sklearn_contract() -> None:
    for detector in (
        CuSumDetector(baseline_days=21),
        OvernightRHRAlert(red_bpm=5),
        BaselineDeviationForest(contamination=0.1),
    ):
        copy = clone(detector)
        assert copy.get_params() == detector.get_params()


def test_welltory_evaluation_is_person_level(welltory) -> None:
    daily, participants = welltory
    onsets, excluded = onset_dates(participants)
    assert len(excluded) > 0 and excluded["reason"].str.startswith("outside").all()
    outcomes = person_outcomes(OvernightRHRAlert().detect(daily), daily, onsets)
    assert outcomes["person"].is_unique
    summary = summarise_outcomes(outcomes, n_boot=50)
    assert summary["positives"] >= 5 and summary["negatives"] >= 5
    share = summary["detection_share"]
    assert 0 <= share.low <= share.value <= share.high <= 1

    seen: list[tuple[set, set]] = []

    class Spy(BaselineDeviationForest):
        def fit(self, d, y=None):
            self.fitted_on_ = set(d["person"])
            return super().fit(d)

        def detect(self, d):
            seen.append((self.fitted_on_, set(d["person"])))
            return super().detect(d)

    cross_fitted_scores(Spy(n_estimators=20), daily, n_splits=3)
    assert len(seen) == 3 and all(not (fit & scored) for fit, scored in seen)
