"""Raw-window AF classifiers in PyTorch with the scikit-learn API: a 1D-CNN and a CNN+GRU.

Both take ECG windows ``(n, samples)`` or ``(n, leads, samples)``, standardise each
window per lead (no statistics shared across windows, so nothing leaks between folds),
and learn convolutional features of beat shape. :class:`CNN1DClassifier` averages them
over time; :class:`CNNGRUClassifier` reads their sequence with a GRU, combining the
spatial (waveform) and temporal (rhythm) views. Weights are kept as NumPy arrays when
the estimator is pickled or saved, so ``medpredict.artifact.save_model`` can store it.
Threads, seeding, the epoch loop and the weights come from
:mod:`medpredict.models.deep.training`.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(16, 2, 400)).astype("float32"); y = np.r_[np.zeros(8), np.ones(8)]
>>> X[y == 1, :, ::40] += 4.0
>>> model = CNN1DClassifier(epochs=3, random_state=0).fit(X, y)
>>> model.predict_proba(X).shape
(16, 2)
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import check_is_fitted
from torch import nn

from medpredict.data.errors import DataError
from medpredict.models.deep.training import NumpyWeightsMixin, run_epochs, seeded, torch_threads


class _Backbone(nn.Module):
    """Three conv blocks: ``(n, leads, samples)`` -> ``(n, width, samples / 64)``."""

    def __init__(self, leads: int, width: int, downsample: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.AvgPool1d(downsample)] if downsample > 1 else []
        sizes = [(leads, width // 2, 7, 4), (width // 2, width, 7, 4), (width, width, 5, 4)]
        for cin, cout, kernel, pool in sizes:
            layers += [
                nn.Conv1d(cin, cout, kernel, padding=kernel // 2),
                nn.BatchNorm1d(cout),
                nn.ReLU(),
                nn.MaxPool1d(pool),
            ]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        std = x.std(dim=-1, keepdim=True).clamp_min(1e-6)
        return self.layers((x - mean) / std)


class _CNN(nn.Module):
    def __init__(self, leads: int, width: int, downsample: int) -> None:
        super().__init__()
        self.backbone = _Backbone(leads, width, downsample)
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x).mean(dim=-1)).squeeze(-1)


class _CNNGRU(nn.Module):
    def __init__(self, leads: int, width: int, downsample: int) -> None:
        super().__init__()
        self.backbone = _Backbone(leads, width, downsample)
        self.gru = nn.GRU(width, width, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sequence = self.backbone(x).transpose(1, 2)
        _, hidden = self.gru(sequence)
        return self.head(torch.cat([hidden[0], hidden[1]], dim=-1)).squeeze(-1)


class _WindowClassifier(NumpyWeightsMixin, ClassifierMixin, BaseEstimator):
    """Shared fit/predict for the raw-window networks (binary)."""

    _network: type[nn.Module]
    _weights_key = "weights_"

    def __init__(
        self,
        epochs: int = 20,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        width: int = 32,
        downsample: int = 2,
        class_weight: str | None = "balanced",
        random_state: int = 0,
        n_threads: int = 1,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.width = width
        self.downsample = downsample
        self.class_weight = class_weight
        self.random_state = random_state
        self.n_threads = n_threads

    def _untrained_network(self) -> nn.Module:
        return self._network(self.n_leads_, self.width, self.downsample)

    def _as_tensor(self, X: np.ndarray) -> torch.Tensor:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 2:
            X = X[:, None, :]
        if X.ndim != 3:
            raise DataError(f"expected windows (n, samples) or (n, leads, samples), got {X.shape}")
        if hasattr(self, "n_leads_") and X.shape[1:] != (self.n_leads_, self.n_samples_):
            raise DataError(
                f"windows have shape {X.shape[1:]}, the model was fitted on "
                f"{(self.n_leads_, self.n_samples_)}"
            )
        if not np.isfinite(X).all():
            raise DataError("windows contain NaN or infinite samples")
        return torch.from_numpy(X)

    def fit(self, X: np.ndarray, y: np.ndarray) -> _WindowClassifier:
        """Train with Adam on binary cross-entropy (positives up-weighted if balanced)."""
        for attr in ("n_leads_", "n_samples_"):
            self.__dict__.pop(attr, None)
        data = self._as_tensor(X)
        self.classes_ = unique_labels(y)
        if self.classes_.size != 2:
            raise DataError(f"AF models need two classes, got {self.classes_.tolist()}")
        target = torch.from_numpy((np.asarray(y) == self.classes_[1]).astype(np.float32))
        self.n_leads_, self.n_samples_ = data.shape[1], data.shape[2]
        positives = float(target.sum())
        weight = (len(target) - positives) / max(positives, 1.0)
        loss_fn = nn.BCEWithLogitsLoss(
            pos_weight=torch.tensor(weight if self.class_weight == "balanced" else 1.0)
        )
        with seeded(self.random_state), torch_threads(self.n_threads):
            module = self._untrained_network()
            self.module_ = module
            optimiser = torch.optim.Adam(
                module.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
            )
            run_epochs(
                module,
                optimiser,
                lambda rows: loss_fn(module(data[rows]), target[rows]),
                len(target),
                max_epochs=self.epochs,
                batch_size=self.batch_size,
                generator=torch.Generator().manual_seed(self.random_state),
                even_batches=False,
            )
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(n, 2)`` probabilities of ``classes_``."""
        check_is_fitted(self, "module_")
        data = self._as_tensor(X)
        with torch.no_grad():
            logits = torch.cat([self.module_(data[i : i + 256]) for i in range(0, len(data), 256)])
        p = torch.sigmoid(logits).numpy().astype(float)
        return np.column_stack([1 - p, p])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class with probability at least 0.5."""
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]


class CNN1DClassifier(_WindowClassifier):
    """1D-CNN on raw ECG windows (three conv blocks, global average pooling).

    Parameters
    ----------
    epochs, batch_size, learning_rate, weight_decay : training settings (Adam).
    width : channels of the last conv block.
    downsample : average-pooling factor applied to the input first.
    class_weight : ``"balanced"`` weights AF windows by the class ratio; ``None`` does not.
    random_state : seed for weights and batch order.
    n_threads : torch CPU threads while fitting.
    """

    _network = _CNN


class CNNGRUClassifier(_WindowClassifier):
    """CNN feature extractor followed by a bidirectional GRU over time (hybrid).

    Parameters are those of :class:`CNN1DClassifier`.
    """

    _network = _CNNGRU
