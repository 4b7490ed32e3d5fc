"""Signal models by name for study specs, and the encoder for the ``signal`` column kind.

A ``signal`` column holds references to ECG windows (:mod:`medpredict.signals.reference`).
Every classical model (logistic regression, random forest, LightGBM, ...) runs on it
through :func:`signal_encoder`: the windows' HRV features (NeuroKit2), median-imputed
and standardised. The raw-window networks are registered models taking the cohort's
raw feature table (``raw_input=True``); their pipeline reads the reference column with
:class:`~medpredict.signals.loader.SignalLoader` and trains on the samples:

``cnn1d``
    :class:`~medpredict.signals.nets.CNN1DClassifier`, three conv blocks averaged over time.
``cnn_gru``
    :class:`~medpredict.signals.nets.CNNGRUClassifier`, conv features read by a GRU.

Parameters in the spec go to the network (``epochs``, ``width``, ``learning_rate``, ...),
except ``signal_column`` (needed when the table has several feature columns) and
``signal_root`` (the folder relative references resolve from), which configure the loader.

Examples
--------
>>> from medpredict.models import make_model
>>> pipeline = make_model("cnn1d", seed=3, epochs=2, signal_column="ecg")
>>> pipeline.named_steps["load"].column, pipeline.named_steps["model"].random_state
('ecg', 3)
"""

from __future__ import annotations

from typing import Any

from sklearn.impute import SimpleImputer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import StandardScaler

from medpredict.encoders.tabular import register_encoder
from medpredict.models.registry import register_model
from medpredict.signals.features import SignalHRVFeatures
from medpredict.signals.loader import SignalLoader
from medpredict.signals.nets import CNN1DClassifier, CNNGRUClassifier


def _network_pipeline(
    network: type[CNN1DClassifier | CNNGRUClassifier],
    seed: int,
    class_weight: str | None,
    params: dict[str, Any],
) -> Pipeline:
    loader = SignalLoader(
        column=params.pop("signal_column", None), root=params.pop("signal_root", None)
    )
    model = network(random_state=seed, class_weight=class_weight, **params)
    return Pipeline([("load", loader), ("model", model)])


@register_model("cnn1d", "1D-CNN on raw signal windows", raw_input=True)
def cnn1d(seed: int, class_weight: str | None, **params: Any) -> Pipeline:
    """1D-CNN on the raw windows of the signal column."""
    return _network_pipeline(CNN1DClassifier, seed, class_weight, params)


@register_model("cnn_gru", "CNN features read by a GRU over raw signal windows", raw_input=True)
def cnn_gru(seed: int, class_weight: str | None, **params: Any) -> Pipeline:
    """CNN feature extractor and bidirectional GRU on the raw windows of the signal column."""
    return _network_pipeline(CNNGRUClassifier, seed, class_weight, params)


@register_encoder("signal")
def signal_encoder(columns: list[str], seed: int = 0) -> Pipeline | FeatureUnion:
    """Signal-reference column(s) -> standardised HRV features (21 per column)."""
    per_column = [
        (c, Pipeline([
            ("hrv", SignalHRVFeatures(column=c)),
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]))
        for c in columns
    ]
    return per_column[0][1] if len(per_column) == 1 else FeatureUnion(per_column)
