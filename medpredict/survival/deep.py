"""Neural survival models in PyTorch: DeepSurv (neural Cox) and a discrete-time network.

Both take the preprocessed feature matrix and scikit-survival's structured outcome,
train with :func:`medpredict.models.deep.training.fit_network` (AdamW, early stopping
on a held-out part stratified by event, best epoch kept) and store their weights as
NumPy arrays, so a saved model never holds a torch object.

- :class:`DeepSurv` (Katzman et al. 2018): a multilayer perceptron's output is the log
  hazard ratio, trained on the Cox partial likelihood (Breslow ties) within each
  mini-batch; survival curves use the Breslow baseline hazard of the training rows.
- :class:`LogisticHazard` (Gensheimer & Narasimhan 2019; Kvamme & Borgan 2021): follow-up
  is cut into intervals at quantiles of the event times and the network predicts the
  hazard of each interval; a patient censored inside an interval counts as event-free
  in the intervals before it.

Examples
--------
>>> import numpy as np
>>> from medpredict.survival.outcome import SURVIVAL_DTYPE
>>> rng = np.random.default_rng(0); X = rng.normal(size=(400, 3)).astype("float32")
>>> y = np.empty(400, dtype=SURVIVAL_DTYPE)
>>> y["time"] = rng.exponential(np.exp(-X[:, 0])); y["event"] = rng.random(400) < 0.8
>>> from medpredict.evaluation.survival import harrell_c
>>> model = DeepSurv(max_epochs=30).fit(X, y)
>>> harrell_c(y["time"], y["event"], model.predict(X)) > 0.65
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from torch import nn

from medpredict.models.deep.training import NumpyWeightsMixin, fit_network, torch_threads
from medpredict.models.registry import register_model
from medpredict.survival.baseline import BreslowCurves
from medpredict.survival.outcome import from_structured
from medpredict.survival.scoring import risk_scores


def _mlp(n_inputs: int, hidden: tuple[int, ...], dropout: float, n_outputs: int) -> nn.Module:
    layers: list[nn.Module] = []
    width = n_inputs
    for size in hidden:
        layers += [nn.Linear(width, size), nn.SELU(), nn.AlphaDropout(dropout)]
        width = size
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


def cox_partial_likelihood(log_hazard: torch.Tensor, time: torch.Tensor,
                           event: torch.Tensor) -> torch.Tensor:
    """Mean negative Cox partial log-likelihood (Breslow ties) of one batch."""
    order = torch.argsort(time, descending=True)
    log_hazard, time, event = log_hazard[order], time[order], event[order]
    log_risk = torch.logcumsumexp(log_hazard, dim=0)
    # tied times share the risk set of the earliest row with that time (Breslow)
    _, inverse, counts = torch.unique_consecutive(time, return_inverse=True,
                                                  return_counts=True)
    last = torch.cumsum(counts, 0) - 1
    log_risk = log_risk[last][inverse]
    n_events = event.sum().clamp(min=1.0)
    return -torch.sum((log_hazard - log_risk) * event) / n_events


class _SurvivalNet(NumpyWeightsMixin, BaseEstimator):
    """What both networks share: inputs, the held-out split, threads and prediction."""

    def _prepare(self, X: Any, y: np.ndarray) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        time, event = from_structured(y)
        if X.shape[0] != time.size:
            raise ValueError(f"X has {X.shape[0]} rows but y has {time.size}")
        self.n_features_in_ = X.shape[1]
        return X, time, event

    def _split(self, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(event.size)
        if self.validation_fraction <= 0 or event.sum() < 10:
            return rows, rows[:0]
        return train_test_split(rows, test_size=self.validation_fraction, stratify=event,
                                random_state=self.random_state)

    def _outputs(self, X: Any) -> torch.Tensor:
        with torch.inference_mode(), torch_threads(self.n_threads):
            return self.module_(torch.as_tensor(np.asarray(X, dtype=np.float32)))


class DeepSurv(BreslowCurves, _SurvivalNet):
    """A neural Cox model: an MLP's output is the log hazard ratio.

    Parameters
    ----------
    hidden : widths of the hidden layers (SELU, alpha dropout).
    dropout : dropout rate of the hidden layers.
    learning_rate, weight_decay, max_epochs, batch_size, patience : training settings.
    validation_fraction : held-out share watched by early stopping (0: none).
    n_threads : torch threads while fitting and predicting.
    random_state : seed of the weights, batches and held-out split.

    Attributes
    ----------
    unique_times_ : event times of the training rows (the baseline hazard's steps).
    baseline_cumulative_hazard_ : Breslow cumulative baseline hazard at those times.
    """

    def __init__(
        self,
        hidden: tuple[int, ...] = (32, 32),
        dropout: float = 0.1,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-3,
        max_epochs: int = 200,
        batch_size: int = 256,
        patience: int = 20,
        validation_fraction: float = 0.2,
        n_threads: int | None = 1,
        random_state: int = 0,
    ) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.n_threads = n_threads
        self.random_state = random_state

    def _network(self, n_inputs: int) -> nn.Module:
        return _mlp(n_inputs, tuple(self.hidden), self.dropout, 1)

    def fit(self, X: Any, y: np.ndarray) -> DeepSurv:
        X, time, event = self._prepare(X, y)
        train, held = self._split(event)
        t = torch.as_tensor(time, dtype=torch.float32)
        e = torch.as_tensor(event, dtype=torch.float32)
        rows = torch.as_tensor(train)
        held_rows = torch.as_tensor(held)
        self.network_config_ = {"n_inputs": X.shape[1]}

        def batch_loss(batch: torch.Tensor) -> torch.Tensor:
            index = rows[batch]
            return cox_partial_likelihood(self.module_(X[index])[:, 0], t[index], e[index])

        def validation_loss() -> float:
            return float(cox_partial_likelihood(self.module_(X[held_rows])[:, 0],
                                                t[held_rows], e[held_rows]))

        fit_network(self, batch_loss, validation_loss if held.size else None, train.size)
        self._fit_baseline(self.predict(X.numpy()), time, event)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Log hazard ratio of each row (the risk score)."""
        return self._outputs(X)[:, 0].numpy().astype(float)


class LogisticHazard(_SurvivalNet):
    """A discrete-time survival network: the hazard of each follow-up interval.

    Parameters
    ----------
    n_intervals : intervals, cut at quantiles of the training event times.
    hidden, dropout, learning_rate, weight_decay, max_epochs, batch_size, patience,
    validation_fraction, n_threads, random_state : as :class:`DeepSurv`.

    Attributes
    ----------
    unique_times_ : the end of each interval.
    """

    def __init__(
        self,
        n_intervals: int = 20,
        hidden: tuple[int, ...] = (32, 32),
        dropout: float = 0.1,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-3,
        max_epochs: int = 200,
        batch_size: int = 256,
        patience: int = 20,
        validation_fraction: float = 0.2,
        n_threads: int | None = 1,
        random_state: int = 0,
    ) -> None:
        self.n_intervals = n_intervals
        self.hidden = hidden
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.n_threads = n_threads
        self.random_state = random_state

    def _network(self, n_inputs: int, n_intervals: int) -> nn.Module:
        return _mlp(n_inputs, tuple(self.hidden), self.dropout, n_intervals)

    def fit(self, X: Any, y: np.ndarray) -> LogisticHazard:
        X, time, event = self._prepare(X, y)
        cuts = np.unique(np.quantile(time[event], np.linspace(0, 1, self.n_intervals + 1)[1:]))
        cuts[-1] = max(cuts[-1], time.max())
        self.unique_times_ = cuts
        interval = np.minimum(np.searchsorted(cuts, time, side="left"), cuts.size - 1)
        k = torch.arange(cuts.size)[None, :]
        idx = torch.as_tensor(interval)[:, None]
        ev = torch.as_tensor(event)[:, None]
        # targets: 0 in intervals survived, 1 in the event's interval; mask: known intervals
        target = ((k == idx) & ev).float()
        mask = ((k < idx) | ((k == idx) & ev)).float()
        train, held = self._split(event)
        rows, held_rows = torch.as_tensor(train), torch.as_tensor(held)
        self.network_config_ = {"n_inputs": X.shape[1], "n_intervals": cuts.size}
        loss = nn.BCEWithLogitsLoss(reduction="none")

        def mean_loss(index: torch.Tensor) -> torch.Tensor:
            per_interval = loss(self.module_(X[index]), target[index]) * mask[index]
            return per_interval.sum() / index.numel()

        def batch_loss(batch: torch.Tensor) -> torch.Tensor:
            return mean_loss(rows[batch])

        def validation_loss() -> float:
            return float(mean_loss(held_rows))

        fit_network(self, batch_loss, validation_loss if held.size else None, train.size)
        return self

    def predict_survival_function(self, X: Any, return_array: bool = True) -> np.ndarray:
        if not return_array:
            raise ValueError("LogisticHazard gives survival curves as arrays only")
        hazard = torch.sigmoid(self._outputs(X)).numpy().astype(float)
        return np.cumprod(1.0 - hazard, axis=1)

    def predict(self, X: Any) -> np.ndarray:
        """Minus the restricted mean survival time over the intervals (the risk score)."""
        return risk_scores(self.predict_survival_function(X), self.unique_times_)


@register_model("deepsurv", "DeepSurv: neural Cox model (MLP log hazard ratio)", survival=True)
def _deepsurv(seed: int = 0, class_weight: str | None = None, **params: Any) -> DeepSurv:
    return DeepSurv(random_state=seed, **params)


@register_model("logistic_hazard", "Discrete-time neural survival model (logistic hazard)",
                survival=True)
def _logistic_hazard(seed: int = 0, class_weight: str | None = None,
                     **params: Any) -> LogisticHazard:
    return LogisticHazard(random_state=seed, **params)
