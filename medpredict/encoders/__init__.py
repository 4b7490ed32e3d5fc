"""Encoders turn columns of one kind into model-ready features (scikit-learn transformers)."""

from medpredict.encoders.tabular import build_preprocessor, register_encoder

__all__ = ["build_preprocessor", "register_encoder"]
