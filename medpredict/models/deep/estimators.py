"""Deep tabular classifiers with the scikit-learn contract.

:class:`TabularMLPClassifier` (MLP with categorical embeddings, batch/layer norm and
dropout) and :class:`TabularResNetClassifier` (residual MLP) take a pandas DataFrame of
raw feature columns, numeric and categorical, or a numeric array. Inside ``fit`` they
encode the table (:class:`~medpredict.models.deep.encoding.TabularEncoder`), hold out an
inner validation split of the training rows for early stopping, and train on the CPU
with a fixed seed. Fitted weights are kept as NumPy arrays when the model is saved, so
:func:`medpredict.artifact.save_model` stores them without pickle.

Examples
--------
>>> from sklearn.datasets import load_breast_cancer
>>> X, y = load_breast_cancer(return_X_y=True, as_frame=True)
>>> model = TabularMLPClassifier(max_epochs=30, random_state=0).fit(X, y)
>>> model.predict_proba(X.iloc[:2]).shape
(2, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)
from torch import nn
from torch.nn import functional

from medpredict.evaluation.splits import inner_split
from medpredict.models.deep.encoding import TabularEncoder
from medpredict.models.deep.networks import MLPNet, ResNet
from medpredict.models.deep.training import (
    LogitClassifierMixin,
    NumpyWeightsMixin,
    fit_network,
    torch_threads,
)


class _TabularNetClassifier(
    LogitClassifierMixin, NumpyWeightsMixin, ClassifierMixin, BaseEstimator
):
    """Fitting, prediction and serialisation shared by the tabular networks."""

    # patient ids reach ``fit`` through scikit-learn metadata routing, even inside a Pipeline
    __metadata_request__fit: ClassVar[dict[str, bool]] = {"groups": True}

    def _network(self, n_numeric: int, cardinalities: list[int], n_outputs: int) -> nn.Module:
        raise NotImplementedError

    def _validate_features(self, X: Any, reset: bool) -> Any:
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=reset, skip_check_array=True)
            return X
        return validate_data(self, X, reset=reset, dtype=np.float64, ensure_all_finite="allow-nan")

    def _row_weights(self, y: np.ndarray, sample_weight: Any, X: Any) -> np.ndarray:
        weights = _check_sample_weight(sample_weight, X, dtype=np.float64)
        if self.class_weight is not None:
            per_class = (
                compute_class_weight(self.class_weight, classes=np.arange(self.classes_.size), y=y)
                if self.class_weight == "balanced"
                else np.array([self.class_weight.get(c, 1.0) for c in self.classes_], dtype=float)
            )
            weights = weights * per_class[y]
        return weights

    def fit(
        self, X: Any, y: Any, sample_weight: Any = None, groups: Any = None
    ) -> _TabularNetClassifier:
        """Fit the network, early-stopping on an inner split of these rows.

        Parameters
        ----------
        X : DataFrame of raw features (numeric, boolean, categorical) or numeric array.
        y : class labels (two or more classes).
        sample_weight : optional weight per row, multiplied into the loss.
        groups : optional patient id per row; the early-stopping split keeps a
            patient's rows together.
        """
        X = self._validate_features(X, reset=True)
        check_classification_targets(y)
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        if y.size < 2:
            raise ValueError(
                f"{type(self).__name__} needs n_samples >= 2 rows, got n_samples={y.size}"
            )
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if self.classes_.size < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least two classes in y; got only "
                f"{self.classes_.tolist()}"
            )
        weights = self._row_weights(y_index, sample_weight, X)
        self.encoder_ = TabularEncoder(numeric=self.numeric).fit(X)
        numeric, codes = self.encoder_.encode(X)
        n_outputs = 1 if self.classes_.size == 2 else int(self.classes_.size)
        self.network_config_ = {
            "n_numeric": int(numeric.shape[1]),
            "cardinalities": [int(c) for c in self.encoder_.cardinalities_],
            "n_outputs": n_outputs,
        }
        groups = None if groups is None else np.asarray(groups)
        train, val = inner_split(y_index, groups, self.validation_fraction, self.random_state)
        tensors = (
            torch.from_numpy(numeric),
            torch.from_numpy(codes),
            torch.from_numpy(y_index.astype(np.int64)),
            torch.from_numpy(weights.astype(np.float32)),
        )

        def loss_on(rows: torch.Tensor) -> torch.Tensor:
            num, cat, target, weight = (t[rows] for t in tensors)
            logits = self.module_(num, cat)
            if n_outputs == 1:
                losses = functional.binary_cross_entropy_with_logits(
                    logits[:, 0], target.float(), reduction="none"
                )
            else:
                losses = functional.cross_entropy(logits, target, reduction="none")
            return (losses * weight).sum() / weight.sum().clamp_min(1e-12)

        train_rows = torch.from_numpy(train)
        val_rows = torch.from_numpy(val)
        log = fit_network(
            self,
            lambda rows: loss_on(train_rows[rows]),
            (lambda: float(loss_on(val_rows))) if val.size else None,
            int(train.size),
        )
        self.loss_curve_ = log.train_loss
        self.validation_loss_curve_ = log.validation_loss
        return self

    def _inputs(self, X: Any) -> tuple[torch.Tensor, torch.Tensor]:
        check_is_fitted(self, "module_")
        X = self._validate_features(X, reset=False)
        numeric, codes = self.encoder_.encode(X)
        return torch.from_numpy(numeric), torch.from_numpy(codes)

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits: shape (n_rows,) for two classes, (n_rows, n_classes) otherwise."""
        numeric, codes = self._inputs(X)
        with torch.inference_mode(), torch_threads(self.n_threads):
            logits = self.module_(numeric, codes).double().numpy()
        return logits[:, 0] if logits.shape[1] == 1 else logits

    def embed(self, X: Any) -> np.ndarray:
        """Penultimate-layer representation of each row (the learned features)."""
        numeric, codes = self._inputs(X)
        with torch.inference_mode(), torch_threads(self.n_threads):
            return self.module_.features(numeric, codes).double().numpy()

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


class TabularMLPClassifier(_TabularNetClassifier):
    """MLP with categorical embeddings, normalisation and dropout, for raw tables.

    Parameters
    ----------
    hidden_layer_sizes : widths of the hidden layers.
    dropout : dropout rate after each hidden layer.
    norm : ``"batch"``, ``"layer"`` or ``"none"``.
    embedding_dim : largest embedding width per categorical column.
    numeric : numeric scaling, ``"quantile"`` (to a normal) or ``"standard"``.
    learning_rate, weight_decay : AdamW settings.
    batch_size : rows per step.
    max_epochs, patience : epoch limit and early-stopping patience.
    validation_fraction : share of the training rows held out for early stopping.
    class_weight : None, ``"balanced"`` or ``{label: weight}``.
    n_threads : torch threads while fitting and predicting (restored afterwards);
        one is fastest for these small networks. None leaves torch's setting.
    random_state : seed for initialisation, dropout, batch order and the inner split.

    Attributes
    ----------
    classes_ : class labels.
    encoder_ : the fitted :class:`TabularEncoder`.
    module_ : the trained ``torch.nn.Module``.
    n_epochs_, best_epoch_ : epochs run and the epoch whose weights were kept.
    loss_curve_, validation_loss_curve_ : losses per epoch.
    """

    def __init__(
        self,
        hidden_layer_sizes: Sequence[int] = (128, 64),
        dropout: float = 0.2,
        norm: str = "batch",
        embedding_dim: int = 8,
        numeric: str = "quantile",
        learning_rate: float = 2e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 128,
        max_epochs: int = 200,
        patience: int = 20,
        validation_fraction: float = 0.2,
        class_weight: str | dict[Any, float] | None = None,
        n_threads: int | None = 1,
        random_state: int = 0,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.norm = norm
        self.embedding_dim = embedding_dim
        self.numeric = numeric
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.class_weight = class_weight
        self.n_threads = n_threads
        self.random_state = random_state

    def _network(self, n_numeric: int, cardinalities: list[int], n_outputs: int) -> nn.Module:
        return MLPNet(
            n_numeric,
            cardinalities,
            n_outputs,
            hidden=tuple(self.hidden_layer_sizes),
            dropout=self.dropout,
            norm=self.norm,
            embedding_dim=self.embedding_dim,
        )


class TabularResNetClassifier(_TabularNetClassifier):
    """Residual MLP (tabular ResNet) with categorical embeddings, for raw tables.

    Parameters
    ----------
    width : width of the residual stream.
    n_blocks : number of residual blocks.
    hidden_factor : hidden width of each block as a multiple of ``width``.
    dropout, norm, embedding_dim, numeric, learning_rate, weight_decay, batch_size,
    max_epochs, patience, validation_fraction, class_weight, n_threads, random_state :
        as in :class:`TabularMLPClassifier`.
    """

    def __init__(
        self,
        width: int = 64,
        n_blocks: int = 2,
        hidden_factor: float = 2.0,
        dropout: float = 0.2,
        norm: str = "batch",
        embedding_dim: int = 8,
        numeric: str = "quantile",
        learning_rate: float = 2e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 128,
        max_epochs: int = 200,
        patience: int = 20,
        validation_fraction: float = 0.2,
        class_weight: str | dict[Any, float] | None = None,
        n_threads: int | None = 1,
        random_state: int = 0,
    ) -> None:
        self.width = width
        self.n_blocks = n_blocks
        self.hidden_factor = hidden_factor
        self.dropout = dropout
        self.norm = norm
        self.embedding_dim = embedding_dim
        self.numeric = numeric
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.class_weight = class_weight
        self.n_threads = n_threads
        self.random_state = random_state

    def _network(self, n_numeric: int, cardinalities: list[int], n_outputs: int) -> nn.Module:
        return ResNet(
            n_numeric,
            cardinalities,
            n_outputs,
            width=self.width,
            n_blocks=self.n_blocks,
            hidden_factor=self.hidden_factor,
            dropout=self.dropout,
            norm=self.norm,
            embedding_dim=self.embedding_dim,
        )
