"""Explanations: SHAP feature attributions mapped back to the original clinical columns."""

from medpredict.explain.attributions import (
    Attribution,
    explain,
    explanation_method,
    global_importance,
    make_background,
    top_factors,
)

__all__ = [
    "Attribution",
    "explain",
    "explanation_method",
    "global_importance",
    "make_background",
    "top_factors",
]
