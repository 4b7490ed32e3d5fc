"""Candidate models by name: classical, deep and hybrid estimators with the sklearn API."""

from medpredict.models.registry import available_models, make_model, register_model

__all__ = ["available_models", "make_model", "register_model"]
