"""Training loop shared by the networks: AdamW, mini-batches, early stopping, seeded RNG.

Everything random (weight initialisation, dropout, batch order, the inner validation
split) derives from one seed, and the global torch RNG is restored afterwards, so a fit
is reproducible and does not disturb other code. Weights travel as NumPy arrays
(:func:`state_to_numpy` / :func:`load_numpy_state`), never as pickled torch objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import GroupShuffleSplit, train_test_split
from torch import nn

_MIN_VALIDATION_ROWS = 10


@contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Use ``n_threads`` intra-op threads inside the block (None: leave as is), then restore.

    Small networks train fastest on one thread, and far faster than on several
    when other processes share the CPU.
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
    """Run the block with torch's CPU RNG seeded, restoring the previous state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def inner_split(
    y: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Training and early-stopping row positions, drawn from the training data only.

    Stratified by ``y`` (or whole groups kept together when ``groups`` is given). When
    the validation part would be smaller than 10 rows, every row trains and the
    validation part is empty (no early stopping).
    """
    rows = np.arange(y.size)
    if fraction <= 0 or y.size * fraction < _MIN_VALIDATION_ROWS:
        return rows, rows[:0]
    if groups is not None:
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        train, val = next(splitter.split(rows, y, groups))
        return train, val
    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 else None
    train, val = train_test_split(rows, test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(val)


@dataclass
class TrainingLog:
    """What happened in a fit: the epoch whose weights were kept and the losses."""

    best_epoch: int
    epochs_run: int
    train_loss: list[float]
    validation_loss: list[float]


def train_module(
    module: nn.Module,
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    validation_loss: Callable[[], float] | None,
    n_rows: int,
    *,
    learning_rate: float,
    weight_decay: float,
    max_epochs: int,
    batch_size: int,
    patience: int,
    seed: int,
) -> TrainingLog:
    """Minimise ``batch_loss`` over shuffled mini-batches; keep the best validation epoch.

    Parameters
    ----------
    module : network to train in place.
    batch_loss : maps a tensor of row positions to the mean loss on those rows.
    validation_loss : loss on the early-stopping rows, or None to train ``max_epochs``.
    n_rows : number of training rows.
    learning_rate, weight_decay : AdamW settings.
    max_epochs, patience : stop after ``patience`` epochs without improvement.
    batch_size : rows per step; batches are equal-sized so none has a single row.
    seed : seeds the batch order.
    """
    optimiser = torch.optim.AdamW(
        module.parameters(), lr=learning_rate, weight_decay=weight_decay, foreach=True
    )
    generator = torch.Generator().manual_seed(seed)
    n_batches = max(1, int(np.ceil(n_rows / batch_size)))
    if n_rows // n_batches < 2:
        n_batches = max(1, n_rows // 2)
    best = float("inf")
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch = 0
    train_losses: list[float] = []
    val_losses: list[float] = []
    for epoch in range(max_epochs):
        module.train()
        order = torch.randperm(n_rows, generator=generator)
        total = 0.0
        for batch in torch.tensor_split(order, n_batches):
            optimiser.zero_grad(set_to_none=True)
            loss = batch_loss(batch)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * batch.numel()
        train_losses.append(total / n_rows)
        if validation_loss is None:
            continue
        module.eval()
        with torch.inference_mode():
            current = validation_loss()
        val_losses.append(current)
        if current < best - 1e-5:
            best, best_epoch = current, epoch
            best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        elif epoch - best_epoch >= patience:
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    else:
        best_epoch = len(train_losses) - 1
    module.eval()
    return TrainingLog(best_epoch, len(train_losses), train_losses, val_losses)


def fit_network(
    estimator: Any,
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    validation_loss: Callable[[], float] | None,
    n_rows: int,
) -> TrainingLog:
    """Build ``estimator.module_`` and train it with the estimator's own settings.

    The estimator provides ``_network(**network_config_)`` and the parameters
    ``learning_rate``, ``weight_decay``, ``max_epochs``, ``batch_size``, ``patience``,
    ``random_state`` and ``n_threads``; the losses may refer to ``estimator.module_``.
    Sets ``n_epochs_`` and ``best_epoch_``; see :func:`train_module` for the rest.
    """
    with seeded(estimator.random_state), torch_threads(estimator.n_threads):
        estimator.module_ = estimator._network(**estimator.network_config_)
        log = train_module(
            estimator.module_,
            batch_loss,
            validation_loss,
            n_rows,
            learning_rate=estimator.learning_rate,
            weight_decay=estimator.weight_decay,
            max_epochs=estimator.max_epochs,
            batch_size=estimator.batch_size,
            patience=estimator.patience,
            seed=estimator.random_state,
        )
    estimator.n_epochs_ = log.epochs_run
    estimator.best_epoch_ = log.best_epoch
    return log


def state_to_numpy(module: nn.Module) -> dict[str, np.ndarray]:
    """The module's parameters and buffers as NumPy arrays (copies)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load_numpy_state(module: nn.Module, state: dict[str, np.ndarray]) -> nn.Module:
    """Load NumPy arrays from :func:`state_to_numpy` into ``module`` (strict) and eval it."""
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    module.eval()
    return module


class NumpyWeightsMixin:
    """Serialise a fitted ``module_`` as NumPy arrays and rebuild it on load.

    The estimator provides ``_network(**self.network_config_)`` returning an untrained
    module of the right shape. Pickle, ``copy.deepcopy`` and skops all go through
    ``__getstate__``/``__setstate__``, so none of them ever sees a torch object.
    """

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # type: ignore[misc]
        module = state.pop("module_", None)
        if module is not None:
            state["module_weights_"] = state_to_numpy(module)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        weights = state.pop("module_weights_", None)
        super().__setstate__(state)  # type: ignore[misc]
        if weights is not None:
            with seeded(0):
                network = self._network(**self.network_config_)  # type: ignore[attr-defined]
            self.module_ = load_numpy_state(network, weights)
