"""Denoising autoencoder for tables: an unsupervised code that classical heads can use.

The code is learned without labels, so feeding it to a classifier fitted on the same
rows does not leak the outcome into the features.

Examples
--------
>>> from sklearn.datasets import load_breast_cancer
>>> X, _ = load_breast_cancer(return_X_y=True, as_frame=True)
>>> TabularAutoencoder(code_size=4, max_epochs=5).fit_transform(X).shape
(569, 4)
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from medpredict.evaluation.splits import inner_split
from medpredict.models.deep.encoding import TabularEncoder
from medpredict.models.deep.networks import AutoencoderNet
from medpredict.models.deep.training import NumpyWeightsMixin, fit_network, torch_threads


class TabularAutoencoder(NumpyWeightsMixin, TransformerMixin, BaseEstimator):
    """Denoising autoencoder; ``transform`` returns the code of each row.

    Parameters
    ----------
    code_size : width of the code.
    hidden : width of the encoder and decoder hidden layers.
    noise : standard deviation of the Gaussian noise added to scaled numbers in training.
    dropout : input dropout in training (also a denoising corruption).
    embedding_dim : largest embedding width per categorical column.
    numeric : numeric scaling, ``"quantile"`` or ``"standard"``.
    learning_rate, weight_decay, batch_size, max_epochs, patience : training settings.
    validation_fraction : share of rows held out to early-stop on reconstruction loss.
    n_threads : torch threads while fitting and predicting (restored afterwards).
    random_state : seed for everything random.
    """

    # patient ids reach ``fit`` through scikit-learn metadata routing, even inside a Pipeline
    __metadata_request__fit: ClassVar[dict[str, bool]] = {"groups": True}

    def __init__(
        self,
        code_size: int = 16,
        hidden: int = 64,
        noise: float = 0.1,
        dropout: float = 0.1,
        embedding_dim: int = 8,
        numeric: str = "quantile",
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-5,
        batch_size: int = 64,
        max_epochs: int = 200,
        patience: int = 20,
        validation_fraction: float = 0.2,
        n_threads: int | None = 1,
        random_state: int = 0,
    ) -> None:
        self.code_size = code_size
        self.hidden = hidden
        self.noise = noise
        self.dropout = dropout
        self.embedding_dim = embedding_dim
        self.numeric = numeric
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.n_threads = n_threads
        self.random_state = random_state

    def _network(self, n_numeric: int, cardinalities: list[int]) -> nn.Module:
        return AutoencoderNet(
            n_numeric,
            cardinalities,
            code_size=self.code_size,
            hidden=self.hidden,
            dropout=self.dropout,
            embedding_dim=self.embedding_dim,
        )

    def _validate_features(self, X: Any, reset: bool) -> Any:
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=reset, skip_check_array=True)
            return X
        return validate_data(self, X, reset=reset, dtype=np.float64, ensure_all_finite="allow-nan")

    def fit(self, X: Any, y: Any = None, groups: Any = None) -> TabularAutoencoder:
        """Learn the code from ``X`` alone (``y`` is ignored)."""
        X = self._validate_features(X, reset=True)
        self.encoder_ = TabularEncoder(numeric=self.numeric).fit(X)
        numeric, codes = self.encoder_.encode(X)
        self.network_config_ = {
            "n_numeric": int(numeric.shape[1]),
            "cardinalities": [int(c) for c in self.encoder_.cardinalities_],
        }
        groups = None if groups is None else np.asarray(groups)
        train, val = inner_split(
            np.zeros(len(numeric), dtype=int), groups, self.validation_fraction, self.random_state
        )
        num_t, cat_t = torch.from_numpy(numeric), torch.from_numpy(codes)
        train_rows, val_rows = torch.from_numpy(train), torch.from_numpy(val)

        def train_loss(rows: torch.Tensor) -> torch.Tensor:
            picked = train_rows[rows]
            clean = num_t[picked]
            noisy = clean + self.noise * torch.randn_like(clean)
            return self.module_.reconstruction_loss(noisy, cat_t[picked], clean)

        def val_loss() -> float:
            clean = num_t[val_rows]
            return float(self.module_.reconstruction_loss(clean, cat_t[val_rows], clean))

        fit_network(self, train_loss, val_loss if val.size else None, int(train.size))
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The code of each row, shape (n_rows, code_size)."""
        check_is_fitted(self, "module_")
        X = self._validate_features(X, reset=False)
        numeric, codes = self.encoder_.encode(X)
        with torch.inference_mode(), torch_threads(self.n_threads):
            return self.module_(torch.from_numpy(numeric), torch.from_numpy(codes)).double().numpy()

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
