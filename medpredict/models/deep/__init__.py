"""Deep tabular models (PyTorch, CPU) with the scikit-learn estimator API.

Registered names: ``deep_mlp`` (MLP with categorical embeddings) and ``deep_resnet``
(residual MLP). Both take the raw feature table and preprocess it inside ``fit``; on
tables above ``LARGE_TABLE`` rows they default to batches of 1,024 and at most 60 epochs.

Examples
--------
>>> from medpredict.models import make_model
>>> make_model("deep_resnet", seed=1).random_state
1
"""

from __future__ import annotations

from typing import Any

from medpredict.models.classical import LARGE_TABLE
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


def _size_defaults(n_samples: int | None) -> dict[str, Any]:
    """Larger batches and fewer epochs on large tables keep a fit to minutes."""
    if n_samples and n_samples > LARGE_TABLE:
        return {"batch_size": 1024, "learning_rate": 3e-3, "max_epochs": 60, "patience": 8}
    return {}


@register_model(
    "deep_mlp", "MLP with categorical embeddings, batch norm and dropout", raw_input=True
)
def deep_mlp(
    seed: int, class_weight: str | None, n_samples: int | None = None, **params: Any
) -> TabularMLPClassifier:
    """MLP with categorical embeddings, batch norm and dropout."""
    settings = _size_defaults(n_samples) | params
    return TabularMLPClassifier(random_state=seed, class_weight=class_weight, **settings)


@register_model("deep_resnet", "residual MLP (tabular ResNet) with embeddings", raw_input=True)
def deep_resnet(
    seed: int, class_weight: str | None, n_samples: int | None = None, **params: Any
) -> TabularResNetClassifier:
    """Residual MLP (tabular ResNet) with categorical embeddings."""
    settings = _size_defaults(n_samples) | params
    return TabularResNetClassifier(random_state=seed, class_weight=class_weight, **settings)
