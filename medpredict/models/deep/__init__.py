"""Deep tabular models (PyTorch, CPU) with the scikit-learn estimator API.

Registered names: ``deep_mlp`` (MLP with categorical embeddings) and ``deep_resnet``
(residual MLP). Both take the raw feature table and preprocess it inside ``fit``.

Examples
--------
>>> from medpredict.models import make_model
>>> make_model("deep_resnet", seed=1).random_state
1
"""

from __future__ import annotations

from typing import Any

from medpredict.models.deep.autoencoder import TabularAutoencoder
from medpredict.models.deep.encoding import TabularEncoder
from medpredict.models.deep.estimators import TabularMLPClassifier, TabularResNetClassifier
from medpredict.models.registry import register_model

__all__ = [
    "TabularAutoencoder",
    "TabularEncoder",
    "TabularMLPClassifier",
    "TabularResNetClassifier",
]


@register_model(
    "deep_mlp", "MLP with categorical embeddings, batch norm and dropout", raw_input=True
)
def deep_mlp(seed: int, class_weight: str | None, **params: Any) -> TabularMLPClassifier:
    """MLP with categorical embeddings, batch norm and dropout."""
    return TabularMLPClassifier(random_state=seed, class_weight=class_weight, **params)


@register_model("deep_resnet", "residual MLP (tabular ResNet) with embeddings", raw_input=True)
def deep_resnet(seed: int, class_weight: str | None, **params: Any) -> TabularResNetClassifier:
    """Residual MLP (tabular ResNet) with categorical embeddings."""
    return TabularResNetClassifier(random_state=seed, class_weight=class_weight, **params)
