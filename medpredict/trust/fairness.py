"""Fairness audit: per-group performance with bootstrap CIs, flagged disparities.

For each sensitive attribute and each intersection of attributes (e.g. sex x age
group), every group gets its size, number of events, AUROC, sensitivity,
specificity, PPV (at the study's operating threshold), calibration-in-the-large
(observed minus mean predicted risk) and Brier score, each with a bootstrap 95% CI.
A disparity is the difference between a group and all other patients on a metric;
it is flagged when its whole 95% CI lies beyond the tolerance (``|difference| >
tolerance`` with confidence), so chance differences in small samples are not
flagged. Groups with fewer than ``min_group_size`` patients or ``min_events`` events
or non-events are reported as too small to interpret and never flagged.

All metrics are on the same [0, 1] scale, so one tolerance (default 0.05) applies
to every metric.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> risk = rng.uniform(size=600); y = (rng.uniform(size=600) < risk).astype(int)
>>> sex = pd.DataFrame({"sex": rng.choice(["F", "M"], 600)})
>>> audit = audit_fairness(y, risk, sex, n_boot=100)
>>> len(audit.flagged)
0
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any, Literal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from fairlearn.postprocessing import ThresholdOptimizer
from sklearn.base import BaseEstimator, ClassifierMixin

from medpredict.evaluation.bootstrap import resample_indices
from medpredict.evaluation.metrics import auroc, threshold_metrics
from medpredict.evaluation.splits import inner_folds
from medpredict.report.html import Section, callout, escape, figure, table

METRICS = (
    "auroc",
    "sensitivity",
    "specificity",
    "ppv",
    "calibration_in_the_large",
    "brier",
)
MISSING = "missing"
Constraint = Literal[
    "true_positive_rate_parity", "false_positive_rate_parity", "equalized_odds",
    "demographic_parity",
]


def _metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> np.ndarray:
    """The audit's metrics for one sample, in :data:`METRICS` order."""
    if y.size == 0:
        return np.full(len(METRICS), np.nan)
    at = threshold_metrics(y, p, threshold)
    return np.array(
        [
            auroc(y, p),
            at["sensitivity"],
            at["specificity"],
            at["ppv"],
            float(y.mean() - p.mean()),
            float(np.mean((p - y) ** 2)),
        ]
    )


def group_labels(sensitive: pd.DataFrame, max_order: int = 2) -> dict[str, np.ndarray]:
    """Group label per row for each attribute and each intersection up to ``max_order``.

    Missing values form their own group (``"missing"``); no row is dropped.

    Examples
    --------
    >>> frame = pd.DataFrame({"sex": ["F", "M"], "age": ["<40", None]})
    >>> group_labels(frame)["sex x age"].tolist()
    ['sex=F & age=<40', 'sex=M & age=missing']
    """
    base = {
        str(c): sensitive[c].map(lambda v: MISSING if pd.isna(v) else str(v)).to_numpy(dtype=str)
        for c in sensitive.columns
    }
    out = dict(base)
    names = list(base)
    for order in range(2, min(max_order, len(names)) + 1):
        for combo in combinations(names, order):
            parts = [np.char.add(f"{c}=", base[c]) for c in combo]
            label = parts[0]
            for part in parts[1:]:
                label = np.char.add(np.char.add(label, " & "), part)
            out[" x ".join(combo)] = label
    return out


@dataclass
class FairnessAudit:
    """Per-group metrics and flagged disparities.

    Attributes
    ----------
    groups : one row per (attribute, group): ``n``, ``events``, ``small`` and, per
        metric, ``<metric>``, ``<metric>_low``, ``<metric>_high``.
    disparities : one row per (attribute, group, metric): ``difference`` (group minus
        all other patients) with ``low``/``high`` 95% CI and ``flagged``.
    threshold, tolerance, min_group_size, min_events : the audit's settings.
    mitigation : trade-off table of group-aware thresholds, when requested.
    """

    groups: pd.DataFrame
    disparities: pd.DataFrame
    threshold: float
    tolerance: float
    min_group_size: int
    min_events: int
    mitigation: pd.DataFrame | None = None

    @property
    def flagged(self) -> pd.DataFrame:
        """Disparities whose 95% CI lies entirely beyond the tolerance."""
        return self.disparities[self.disparities["flagged"]].reset_index(drop=True)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready digest for the model card."""
        return {
            "attributes": sorted(self.groups["attribute"].unique().tolist()),
            "threshold": self.threshold,
            "tolerance": self.tolerance,
            "min_group_size": self.min_group_size,
            "small_groups": [
                f"{r.attribute}: {r.group} (n={r.n})"
                for r in self.groups[self.groups["small"]].itertuples()
            ],
            "flagged": [
                f"{r.attribute}: {r.group}, {r.metric} {r.difference:+.3f} "
                f"(95% CI {r.low:+.3f} to {r.high:+.3f})"
                for r in self.flagged.itertuples()
            ],
        }


def audit_fairness(
    y: np.ndarray,
    risk: np.ndarray,
    sensitive: pd.DataFrame,
    threshold: float = 0.5,
    tolerance: float = 0.05,
    min_group_size: int = 30,
    min_events: int = 5,
    max_order: int = 2,
    n_boot: int = 200,
    seed: int = 0,
    patients: np.ndarray | None = None,
) -> FairnessAudit:
    """Audit out-of-fold risks ``risk`` of outcomes ``y`` across sensitive groups.

    Parameters
    ----------
    y : 0/1 outcomes.
    risk : predicted risk of the event (out-of-fold or hold-out, never in-sample).
    sensitive : one column per sensitive attribute, aligned with ``y``.
    threshold : risk at or above which a patient is flagged positive.
    tolerance : a disparity is flagged when its 95% CI lies beyond +/- this value.
    min_group_size, min_events : groups below these are reported, never flagged.
    max_order : largest intersection of attributes audited (1 = none).
    n_boot : bootstrap resamples for every interval.
    seed : random seed.
    patients : optional patient id per row for a clustered bootstrap.

    Returns
    -------
    FairnessAudit
    """
    y = np.asarray(y).astype(int)
    risk = np.asarray(risk, dtype=float)
    if not isinstance(sensitive, pd.DataFrame) or sensitive.shape[1] == 0:
        raise ValueError("sensitive must be a DataFrame with at least one attribute column")
    if not (len(y) == len(risk) == len(sensitive)):
        raise ValueError(
            f"y ({len(y)}), risk ({len(risk)}) and sensitive ({len(sensitive)}) must have "
            "one entry per patient"
        )
    if tolerance <= 0:
        raise ValueError(f"tolerance must be positive, got {tolerance}")
    # rows ordered by risk: every (ascending) bootstrap resample stays ordered, so the
    # AUROC's sort runs in linear time
    order = np.argsort(-risk, kind="stable")
    y, risk = y[order], risk[order]
    labels = {k: v[order] for k, v in group_labels(sensitive, max_order).items()}
    patients = None if patients is None else np.asarray(patients)[order]
    resamples = [(i, y[i], risk[i]) for i in resample_indices(y, n_boot, seed, patients)]
    group_rows, disparity_rows = [], []
    for attribute, label in labels.items():
        for group in np.unique(label):
            member = label == group
            point = _metrics(y[member], risk[member], threshold)
            rest = _metrics(y[~member], risk[~member], threshold)
            draws = np.full((len(resamples), len(METRICS)), np.nan)
            rest_draws = draws.copy()
            for b, (i, y_b, risk_b) in enumerate(resamples):
                inside = member[i]
                draws[b] = _metrics(y_b[inside], risk_b[inside], threshold)
                rest_draws[b] = _metrics(y_b[~inside], risk_b[~inside], threshold)
            events = int(y[member].sum())
            n = int(member.sum())
            small = n < min_group_size or min(events, n - events) < min_events
            row: dict[str, Any] = {
                "attribute": attribute, "group": str(group), "n": n, "events": events,
                "small": small,
            }
            low, high = _interval(draws)
            for m, name in enumerate(METRICS):
                row[name], row[f"{name}_low"], row[f"{name}_high"] = point[m], low[m], high[m]
            group_rows.append(row)
            d_low, d_high = _interval(draws - rest_draws)
            for m, name in enumerate(METRICS):
                beyond = d_low[m] > tolerance or d_high[m] < -tolerance
                disparity_rows.append(
                    {
                        "attribute": attribute, "group": str(group), "metric": name,
                        "difference": point[m] - rest[m], "low": d_low[m], "high": d_high[m],
                        "flagged": bool(beyond and not small),
                    }
                )
    return FairnessAudit(
        groups=pd.DataFrame(group_rows),
        disparities=pd.DataFrame(disparity_rows),
        threshold=threshold,
        tolerance=tolerance,
        min_group_size=min_group_size,
        min_events=min_events,
    )


def _interval(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Percentile 95% interval per column, ignoring resamples where a metric is undefined."""
    low = np.full(draws.shape[1], np.nan)
    high = np.full(draws.shape[1], np.nan)
    for m in range(draws.shape[1]):
        finite = draws[:, m][np.isfinite(draws[:, m])]
        if finite.size:
            low[m], high[m] = np.quantile(finite, [0.025, 0.975])
    return low, high


class _GivenRisk(ClassifierMixin, BaseEstimator):
    """A fitted 'model' whose predicted risk is its single input column."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> _GivenRisk:
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        risk = np.asarray(X, dtype=float)[:, 0]
        return np.column_stack([1 - risk, risk])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def mitigate_thresholds(
    y: np.ndarray,
    risk: np.ndarray,
    attribute: np.ndarray | pd.Series,
    threshold: float = 0.5,
    constraint: Constraint = "true_positive_rate_parity",
    seed: int = 0,
) -> pd.DataFrame:
    """Trade-off of group-aware thresholds (fairlearn's ThresholdOptimizer).

    The thresholds are chosen on one half of the patients and evaluated on the other
    (and vice versa), so the table shows what they would do on new patients. Each
    row gives a group's (or everyone's) sensitivity and specificity with the single
    ``threshold`` and with the group-aware thresholds.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> risk = rng.uniform(size=400); y = (rng.uniform(size=400) < risk).astype(int)
    >>> table = mitigate_thresholds(y, risk, rng.choice(["a", "b"], 400))
    >>> list(table["group"])
    ['a', 'b', 'all']
    """
    y = np.asarray(y).astype(int)
    risk = np.asarray(risk, dtype=float)
    labels = pd.Series(np.asarray(attribute, dtype=object)).map(
        lambda v: MISSING if pd.isna(v) else str(v)
    ).to_numpy(dtype=str)
    adjusted = np.zeros(len(y), dtype=int)
    for fit_rows, eval_rows in inner_folds(y, None, 2, seed):
        optimizer = ThresholdOptimizer(
            estimator=_GivenRisk().fit(None, None),
            constraints=constraint,
            objective="balanced_accuracy_score",
            prefit=True,
            predict_method="predict_proba",
        )
        optimizer.fit(risk[fit_rows, None], y[fit_rows], sensitive_features=labels[fit_rows])
        adjusted[eval_rows] = optimizer.predict(
            risk[eval_rows, None], sensitive_features=labels[eval_rows], random_state=seed
        )
    before = (risk >= threshold).astype(float)
    rows = []
    for group in [*np.unique(labels), "all"]:
        member = np.ones(len(y), bool) if group == "all" else labels == group
        row: dict[str, Any] = {"group": group, "n": int(member.sum())}
        for name, flagged in (("single", before), ("group-aware", adjusted.astype(float))):
            at = threshold_metrics(y[member], flagged[member], 0.5)
            row[f"sensitivity ({name})"] = at["sensitivity"]
            row[f"specificity ({name})"] = at["specificity"]
        rows.append(row)
    return pd.DataFrame(rows)


_LABELS = {
    "auroc": "AUROC",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "ppv": "PPV",
    "calibration_in_the_large": "observed − predicted",
    "brier": "Brier",
}


def _ci(row: Any, metric: str) -> str:
    value, low, high = (getattr(row, f) for f in (metric, f"{metric}_low", f"{metric}_high"))
    if not np.isfinite(value):
        return "–"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{value:.3f}"
    return f"{value:.3f} ({low:.3f}–{high:.3f})"


def _group_figure(groups: pd.DataFrame) -> str:
    """AUROC and observed-minus-predicted risk per group, with 95% CIs."""
    shown = groups.reset_index(drop=True)
    labels = [
        (r.group if " x " in r.attribute else f"{r.attribute}={r.group}")
        + (" (small)" if r.small else "")
        for r in shown.itertuples()
    ]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.35 * len(shown) + 1.2), sharey=True)
    ypos = np.arange(len(shown))[::-1]
    references = {"auroc": 0.5, "calibration_in_the_large": 0.0}
    for ax, (metric, ref) in zip(axes, references.items(), strict=True):
        value = shown[metric].to_numpy(dtype=float)
        err = np.vstack([value - shown[f"{metric}_low"], shown[f"{metric}_high"] - value])
        colours = ["#999999" if s else "#1f6feb" for s in shown["small"]]
        ax.errorbar(value, ypos, xerr=np.nan_to_num(err), fmt="none", ecolor=colours)
        ax.scatter(value, ypos, c=colours, zorder=3)
        ax.axvline(ref, color="#888888", lw=0.8, ls="--")
        ax.set_xlabel(_LABELS[metric])
    axes[0].set_yticks(ypos, labels)
    fig.tight_layout()
    return figure(fig, "Per-group AUROC and calibration-in-the-large with 95% CIs")


def fairness_section(audit: FairnessAudit) -> Section:
    """Report section: per-group metrics, flagged disparities, optional mitigation."""
    parts = [
        "<p>Out-of-fold predictions by sensitive group and intersection of groups. "
        f"Threshold metrics at risk ≥ {audit.threshold:.3g}. A disparity (group minus all "
        f"other patients) is flagged when its whole 95% bootstrap CI lies beyond ±"
        f"{audit.tolerance:g}. Groups with fewer than {audit.min_group_size} patients or "
        f"{audit.min_events} events or non-events are marked small and not interpreted."
        " Observed − predicted is calibration-in-the-large on the risk scale (positive: the "
        "model under-predicts the group's risk).</p>"
    ]
    flagged = audit.flagged
    if len(flagged):
        parts.append(
            callout(
                f"{len(flagged)} disparities exceed the tolerance of {audit.tolerance:g}: "
                "review them before use in these groups."
            )
        )
        parts.append(
            table(
                [
                    [r.attribute, r.group, _LABELS[r.metric],
                     f"{r.difference:+.3f} ({r.low:+.3f} to {r.high:+.3f})"]
                    for r in flagged.itertuples()
                ],
                ["attribute", "group", "metric", "difference vs. others (95% CI)"],
            )
        )
    else:
        parts.append(
            callout(f"No disparity exceeds the tolerance of {audit.tolerance:g}.", kind="note")
        )
    small = audit.groups[audit.groups["small"]]
    if len(small):
        parts.append(
            callout(
                f"{len(small)} groups are too small to interpret: "
                + "; ".join(f"{r.group} (n={r.n}, events={r.events})" for r in small.itertuples())
            )
        )
    header = ["group", "n", "events", *(_LABELS[m] for m in METRICS)]
    for attribute, rows in audit.groups.groupby("attribute", sort=False):
        parts.append(f"<h3>{escape(attribute)}</h3>")
        parts.append(
            table(
                [
                    [r.group + (" (small)" if r.small else ""), r.n, r.events,
                     *(_ci(r, m) for m in METRICS)]
                    for r in rows.itertuples()
                ],
                header,
            )
        )
    parts.append(_group_figure(audit.groups))
    if audit.mitigation is not None:
        parts.append(
            "<h3>Group-aware thresholds</h3><p>fairlearn ThresholdOptimizer thresholds, chosen "
            "on half the patients and evaluated on the other half: the price in overall "
            "sensitivity and specificity of equalising them across groups.</p>"
        )
        parts.append(
            table(
                [[f"{v:.3f}" if isinstance(v, float) else v for v in row]
                 for row in audit.mitigation.itertuples(index=False)],
                list(audit.mitigation.columns),
            )
        )
    return Section("Fairness", "".join(parts))
