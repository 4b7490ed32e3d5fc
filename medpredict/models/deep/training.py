"""The torch toolkit of every medpredict network: threads, seeding, weights, the epoch loop.

The deep tabular models, the image networks and the raw-window signal nets all train
through this module:

- :func:`torch_threads` and :func:`seeded` fix the CPU threads and the torch RNG for a
  block and restore both afterwards, so a fit is reproducible and disturbs no other code;
- :func:`run_epochs` is the one training loop: shuffled mini-batches, and optionally an
  early-stopping watch that keeps the best epoch's weights. What differs between networks
  (optimiser, learning-rate schedule, frozen layers, augmentation) comes in as the
  optimiser, the loss function and the ``start_epoch`` hook;
- :func:`fit_network` builds an estimator's ``module_`` and trains it with its settings;
- weights travel as NumPy arrays (:func:`state_to_numpy`, :func:`load_numpy_state`,
  :class:`NumpyWeightsMixin`) or safetensors bytes (:func:`state_to_safetensors`),
  never as pickled torch objects.

Examples
--------
>>> net = torch.nn.Linear(3, 1)
>>> x, target = torch.randn(40, 3), torch.randn(40, 1)
>>> optimiser = torch.optim.SGD(net.parameters(), lr=0.1)
>>> log = run_epochs(net, optimiser, lambda rows: ((net(x[rows]) - target[rows]) ** 2).mean(),
...                  40, max_epochs=3, batch_size=16, generator=torch.Generator().manual_seed(0))
>>> log.epochs_run, len(log.train_loss), log.best_epoch
(3, 3, 2)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from medpredict.progress import remaining, report_detail

__all__ = [
    "LogitClassifierMixin",
    "NumpyWeightsMixin",
    "TrainingLog",
    "batches",
    "fit_network",
    "load_numpy_state",
    "run_epochs",
    "seeded",
    "state_to_numpy",
    "state_to_safetensors",
    "torch_threads",
]


@contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Use ``n_threads`` intra-op threads inside the block (None: leave as is), then restore.

    Small networks train fastest on one thread, and far faster than on several
    when other processes share the CPU.

    Examples
    --------
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    previous = torch.get_num_threads()
    if n_threads is not None and n_threads != previous:
        torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU RNG seeded, restoring the previous state after.

    Examples
    --------
    >>> with seeded(0):
    ...     first = torch.rand(2)
    >>> with seeded(0):
    ...     torch.equal(first, torch.rand(2))
    True
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@dataclass
class TrainingLog:
    """What happened in a fit.

    Attributes
    ----------
    best_epoch : the epoch whose weights were kept (the last one without early stopping).
    epochs_run : epochs trained.
    train_loss : mean training loss per epoch.
    validation_loss : the value early stopping watched per epoch (lower is better).
    """

    best_epoch: int
    epochs_run: int
    train_loss: list[float]
    validation_loss: list[float]


def batches(order: torch.Tensor, batch_size: int, even: bool = True) -> list[torch.Tensor]:
    """Split a permutation of row positions into mini-batches, none of a single row.

    ``even`` makes ``ceil(n / batch_size)`` batches of (nearly) equal size, fewer if a
    batch would hold one row; otherwise batches hold ``batch_size`` rows in order and a
    last batch of one row is dropped (batch norm cannot train on a single row).

    Examples
    --------
    >>> [b.numel() for b in batches(torch.arange(9), 4)]
    [3, 3, 3]
    >>> [b.numel() for b in batches(torch.arange(9), 4, even=False)]
    [4, 4]
    """
    if not even:
        return [batch for batch in torch.split(order, batch_size) if batch.numel() >= 2]
    n_rows = order.numel()
    n_batches = max(1, math.ceil(n_rows / batch_size))
    if n_rows // n_batches < 2:
        n_batches = max(1, n_rows // 2)
    return list(torch.tensor_split(order, n_batches))


def run_epochs(
    module: nn.Module,
    optimiser: torch.optim.Optimizer,
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    n_rows: int,
    *,
    max_epochs: int,
    batch_size: int,
    generator: torch.Generator,
    validation: Callable[[], float] | None = None,
    patience: int = 0,
    min_improvement: float = 1e-5,
    start_epoch: Callable[[int], None] | None = None,
    even_batches: bool = True,
) -> TrainingLog:
    """Minimise ``batch_loss`` over shuffled mini-batches; keep the best validation epoch.

    Parameters
    ----------
    module : network trained in place; left in eval mode.
    optimiser : optimiser over the parameters that train.
    batch_loss : maps a tensor of row positions to the mean loss on those rows.
    n_rows : number of training rows.
    max_epochs : epoch limit.
    batch_size : rows per step (see :func:`batches`).
    generator : draws the batch order (and whatever else ``batch_loss`` draws from it).
    validation : run in eval and inference mode after each epoch, returns the value to
        minimise; None trains ``max_epochs`` and keeps the last weights.
    patience : stop after this many epochs without an improvement.
    min_improvement : how much lower than the best value counts as an improvement.
    start_epoch : called with the epoch number before each epoch (learning-rate
        schedule, train/eval modes); default ``module.train()``.
    even_batches : see :func:`batches`.

    Returns
    -------
    TrainingLog
        With the best epoch's weights loaded into ``module`` when ``validation`` is given.
    """
    best = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch = -1
    train_losses: list[float] = []
    validation_values: list[float] = []
    started = time.perf_counter()
    for epoch in range(max_epochs):
        if start_epoch is None:
            module.train()
        else:
            start_epoch(epoch)
        order = torch.randperm(n_rows, generator=generator)
        total, seen = 0.0, 0
        for batch in batches(order, batch_size, even_batches):
            optimiser.zero_grad(set_to_none=True)
            loss = batch_loss(batch)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * batch.numel()
            seen += batch.numel()
        train_losses.append(total / seen if seen else math.nan)
        report_detail(f"epoch {epoch + 1}/{max_epochs}, "
                      f"{remaining(started, epoch + 1, max_epochs)} at most")
        if validation is None:
            continue
        module.eval()
        with torch.inference_mode():
            current = validation()
        validation_values.append(current)
        if current < best - min_improvement:
            best, best_epoch = current, epoch
            best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        elif epoch - best_epoch >= patience:
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    else:
        best_epoch = len(train_losses) - 1
    module.eval()
    return TrainingLog(best_epoch, len(train_losses), train_losses, validation_values)


def fit_network(
    estimator: Any,
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    validation_loss: Callable[[], float] | None,
    n_rows: int,
) -> TrainingLog:
    """Build ``estimator.module_`` and train it with AdamW and the estimator's own settings.

    The estimator provides ``_network(**network_config_)`` and the parameters
    ``learning_rate``, ``weight_decay``, ``max_epochs``, ``batch_size``, ``patience``,
    ``random_state`` and ``n_threads``; the losses may refer to ``estimator.module_``.
    Sets ``n_epochs_`` and ``best_epoch_``; see :func:`run_epochs` for the rest.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> est = SimpleNamespace(
    ...     _network=lambda width: torch.nn.Linear(width, 1), network_config_={"width": 2},
    ...     learning_rate=0.01, weight_decay=0.0, max_epochs=2, batch_size=8, patience=1,
    ...     random_state=0, n_threads=1)
    >>> x = torch.ones(16, 2)
    >>> fit_network(est, lambda rows: est.module_(x[rows]).pow(2).mean(), None, 16).epochs_run
    2
    """
    with seeded(estimator.random_state), torch_threads(estimator.n_threads):
        module = estimator._network(**estimator.network_config_)
        estimator.module_ = module
        optimiser = torch.optim.AdamW(
            module.parameters(),
            lr=estimator.learning_rate,
            weight_decay=estimator.weight_decay,
            foreach=True,
        )
        log = run_epochs(
            module,
            optimiser,
            batch_loss,
            n_rows,
            max_epochs=estimator.max_epochs,
            batch_size=estimator.batch_size,
            generator=torch.Generator().manual_seed(estimator.random_state),
            validation=validation_loss,
            patience=estimator.patience,
        )
    estimator.n_epochs_ = log.epochs_run
    estimator.best_epoch_ = log.best_epoch
    return log


def state_to_numpy(module: nn.Module) -> dict[str, np.ndarray]:
    """The module's parameters and buffers as NumPy arrays (copies).

    Examples
    --------
    >>> state_to_numpy(torch.nn.Linear(2, 1))["weight"].shape
    (1, 2)
    """
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load_numpy_state(module: nn.Module, state: dict[str, np.ndarray]) -> nn.Module:
    """Load NumPy arrays from :func:`state_to_numpy` into ``module`` (strict) and eval it.

    Examples
    --------
    >>> source, target = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    >>> torch.equal(load_numpy_state(target, state_to_numpy(source)).weight, source.weight)
    True
    """
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    module.eval()
    return module


def state_to_safetensors(module: nn.Module) -> bytes:
    """The module's parameters and buffers as a safetensors file (bytes).

    Examples
    --------
    >>> from safetensors.torch import load
    >>> sorted(load(state_to_safetensors(torch.nn.Linear(2, 1))))
    ['bias', 'weight']
    """
    from safetensors.torch import save

    return save({k: v.detach().contiguous() for k, v in module.state_dict().items()})


class LogitClassifierMixin:
    """``predict_proba`` and ``predict`` of a classifier whose ``decision_function`` gives
    logits: shape ``(n_rows,)`` for two classes (sigmoid), ``(n_rows, n_classes)`` otherwise
    (softmax).

    Examples
    --------
    >>> class Fixed(LogitClassifierMixin):
    ...     classes_ = np.array(["no", "yes"])
    ...     def decision_function(self, X):
    ...         return np.array([-2.0, 0.0, 3.0])
    >>> Fixed().predict_proba(None)[:, 1].round(3).tolist(), Fixed().predict(None).tolist()
    ([0.119, 0.5, 0.953], ['no', 'no', 'yes'])
    """

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        logits = torch.from_numpy(np.atleast_1d(self.decision_function(X)))
        if logits.ndim == 1:
            positive = torch.sigmoid(logits).numpy()
            return np.column_stack([1 - positive, positive])
        return torch.softmax(logits, dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class per row."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class NumpyWeightsMixin:
    """Serialise a fitted ``module_`` as NumPy arrays and rebuild it on load.

    The estimator provides ``_network(**self.network_config_)`` returning an untrained
    module of the right shape (or overrides :meth:`_untrained_network`). The arrays are
    stored under ``_weights_key``. Pickle, ``copy.deepcopy`` and skops all go through
    ``__getstate__``/``__setstate__``, so none of them ever sees a torch object.

    Examples
    --------
    >>> import copy
    >>> from sklearn.base import BaseEstimator
    >>> class Net(NumpyWeightsMixin, BaseEstimator):
    ...     def _network(self, width):
    ...         return torch.nn.Linear(width, 1)
    >>> est = Net()
    >>> est.network_config_, est.module_ = {"width": 2}, torch.nn.Linear(2, 1)
    >>> restored = copy.deepcopy(est)
    >>> torch.equal(restored.module_.weight, est.module_.weight)
    True
    """

    _weights_key = "module_weights_"

    def _untrained_network(self) -> nn.Module:
        return self._network(**self.network_config_)  # type: ignore[attr-defined]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # type: ignore[misc]
        module = state.pop("module_", None)
        if module is not None:
            state[self._weights_key] = state_to_numpy(module)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        weights = state.pop(self._weights_key, None)
        super().__setstate__(state)  # type: ignore[misc]
        if weights is not None:
            with seeded(0):
                network = self._untrained_network()
            self.module_ = load_numpy_state(network, weights)
