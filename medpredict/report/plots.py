"""Standard figures of a risk-model report: ROC, precision-recall, calibration, decision curve.

Each function takes named prediction sets ``{label: (y, risk)}`` and returns a
matplotlib Figure, so the same plot serves cross-validated and hold-out predictions.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from medpredict.evaluation.metrics import net_benefit

Predictions = Mapping[str, tuple[np.ndarray, np.ndarray]]


def roc_figure(predictions: Predictions) -> plt.Figure:
    """ROC curves with the chance diagonal."""
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for label, (y, risk) in predictions.items():
        fpr, tpr, _ = roc_curve(y, risk)
        ax.plot(fpr, tpr, label=label, lw=1.6)
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC curve")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def pr_figure(predictions: Predictions) -> plt.Figure:
    """Precision-recall curves with each set's prevalence as the no-skill line."""
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for label, (y, risk) in predictions.items():
        precision, recall, _ = precision_recall_curve(y, risk)
        line = ax.step(recall, precision, where="post", label=label, lw=1.6)[0]
        ax.axhline(np.mean(y), ls=":", c=line.get_color(), lw=0.8)
    ax.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", title="Precision-recall")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="lower left")
    return fig


def calibration_points(
    y: np.ndarray, risk: np.ndarray, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean predicted risk, observed rate and count in quantile bins of risk."""
    edges = np.unique(np.quantile(risk, np.linspace(0, 1, n_bins + 1)))
    bins = np.clip(np.searchsorted(edges, risk, side="right") - 1, 0, max(len(edges) - 2, 0))
    counts = np.bincount(bins)
    filled = counts > 0
    predicted = np.bincount(bins, weights=risk)[filled] / counts[filled]
    observed = np.bincount(bins, weights=y)[filled] / counts[filled]
    return predicted, observed, counts[filled]


def calibration_figure(predictions: Predictions) -> plt.Figure:
    """Reliability diagram: observed event rate against predicted risk (deciles)."""
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for label, (y, risk) in predictions.items():
        predicted, observed, _ = calibration_points(y, risk)
        ax.plot(predicted, observed, marker="o", ms=4, label=label, lw=1.4)
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect calibration")
    ax.set(xlabel="predicted risk", ylabel="observed event rate", title="Calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def decision_curve_figure(
    predictions: Predictions, threshold_range: tuple[float, float]
) -> plt.Figure:
    """Net benefit across risk thresholds, against treat-all and treat-none."""
    thresholds = np.linspace(*threshold_range, 60)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    floor = 0.0
    for label, (y, risk) in predictions.items():
        curve = net_benefit(y, risk, thresholds)
        ax.plot(thresholds, curve["model"], label=label, lw=1.6)
        floor = min(floor, float(np.min(curve["model"])))
    first_y = next(iter(predictions.values()))[0]
    curve = net_benefit(first_y, np.zeros_like(first_y, dtype=float), thresholds)
    ax.plot(thresholds, curve["treat_all"], c="black", lw=1, label="treat all")
    ax.axhline(0, c="grey", ls="--", lw=1, label="treat none")
    top = max(float(np.mean(first_y)), 0.05)
    ax.set_ylim(max(floor, -0.05) - 0.01, top * 1.1)
    ax.set(xlabel="risk threshold", ylabel="net benefit", title="Decision curve")
    ax.legend(fontsize=8)
    return fig
