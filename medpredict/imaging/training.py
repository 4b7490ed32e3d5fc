"""Training loop for image networks: frozen stages, layer-wise learning rates, early stopping.

The backbone's first ``n_stages - trainable`` stages are frozen (no gradients, batch-norm
statistics fixed); the remaining stages and the head train with AdamW, each earlier
stage at ``layer_decay`` times the learning rate of the stage after it, under a cosine
schedule. With ``freeze_batchnorm`` the batch-norm layers of trained stages keep their
(pretrained) running statistics and only their affine parameters learn: batches of a
small medical dataset give poor estimates of new statistics. Without augmentation,
the frozen part runs once and its output is cached.
The epoch with the best validation score is kept (the epoch loop is medpredict's one
loop, :func:`~medpredict.models.deep.training.run_epochs`). Everything random derives
from ``seed`` through explicit generators.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from medpredict.evaluation.metrics import auroc
from medpredict.imaging.network import ImageNetwork
from medpredict.imaging.transforms import augment as random_augment
from medpredict.imaging.transforms import match_channels, normalise, resize
from medpredict.models.deep.training import TrainingLog, run_epochs


@dataclass
class FitLog(TrainingLog):
    """What happened in one training run, with the validation AUROC per epoch.

    ``validation_loss`` is the validation cross-entropy whichever score is monitored.
    """

    validation_auroc: list[float] = field(default_factory=list)


@dataclass
class TrainConfig:
    """Settings of :func:`train_network` (see :class:`ImageTransferClassifier`)."""

    trainable: int
    learning_rate: float = 1e-3
    layer_decay: float = 0.7
    weight_decay: float = 1e-4
    max_epochs: int = 30
    batch_size: int = 32
    patience: int = 6
    augment: bool = True
    freeze_batchnorm: bool = False
    monitor: str = "loss"
    class_weights: np.ndarray | None = None
    seed: int = 0


def _resized(network: ImageNetwork, unit: torch.Tensor) -> torch.Tensor:
    return resize(match_channels(unit, network.backbone.in_channels), network.image_size)


def _normalised(network: ImageNetwork, x: torch.Tensor) -> torch.Tensor:
    return normalise(x, network.backbone.mean, network.backbone.std)


def _run_stages(network: ImageNetwork, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    for stage in network.backbone.stages[start:stop]:
        x = stage(x)
    return x


def _score(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    loss = float(functional.cross_entropy(logits, y))
    proba = torch.softmax(logits, dim=1).numpy()
    labels = y.numpy()
    if proba.shape[1] == 2:
        return loss, auroc(labels.astype(float), proba[:, 1])
    scores = [auroc((labels == k).astype(float), proba[:, k]) for k in range(proba.shape[1])]
    return loss, float(np.nanmean(scores))


def _set_modes(network: ImageNetwork, first: int, freeze_batchnorm: bool) -> None:
    """Train mode, except frozen stages (and, if asked, every batch-norm layer)."""
    network.train()
    for stage in network.backbone.stages[:first]:
        stage.eval()
    if freeze_batchnorm:
        for module in network.backbone.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def _param_groups(
    network: ImageNetwork, first: int, config: TrainConfig
) -> list[dict[str, object]]:
    groups: list[dict[str, object]] = [
        {"params": list(network.head.parameters()), "lr": config.learning_rate}
    ]
    stages = network.backbone.stages
    for i in range(first, len(stages)):
        params = [p for p in stages[i].parameters() if p.requires_grad]
        if params:
            rate = config.learning_rate * config.layer_decay ** (len(stages) - i)
            groups.append({"params": params, "lr": rate})
    return groups


def train_network(
    network: ImageNetwork,
    unit: torch.Tensor,
    y: np.ndarray,
    val_unit: torch.Tensor | None,
    val_y: np.ndarray | None,
    config: TrainConfig,
) -> FitLog:
    """Train ``network`` in place on images in [0, 1] (``(N, C, H, W)``) with class indices ``y``.

    The epochs run in :func:`~medpredict.models.deep.training.run_epochs`; this function
    adds the frozen stages, layer-wise learning rates, the cosine schedule, batch-norm
    freezing and augmentation. With no validation images it trains ``max_epochs`` and
    keeps the last weights.
    """
    stages = network.backbone.stages
    first = len(stages) - min(max(config.trainable, 0), len(stages))
    for i, stage in enumerate(stages):
        for p in stage.parameters():
            p.requires_grad_(i >= first)
    generator = torch.Generator().manual_seed(config.seed)
    target = torch.from_numpy(np.asarray(y, dtype=np.int64))
    weight = None if config.class_weights is None else torch.tensor(config.class_weights).float()

    def frozen_part(images: torch.Tensor) -> torch.Tensor:
        for stage in stages[:first]:
            stage.eval()
        with torch.no_grad():
            outs = [
                _run_stages(network, _normalised(network, _resized(network, batch)), 0, first)
                for batch in torch.split(images, 64)
            ]
        return torch.cat(outs)

    cached = None if config.augment else frozen_part(unit)
    optimiser = torch.optim.AdamW(
        _param_groups(network, first, config), weight_decay=config.weight_decay
    )
    base_rates = [g["lr"] for g in optimiser.param_groups]

    def start_epoch(epoch: int) -> None:
        factor = 0.5 * (1 + math.cos(math.pi * epoch / config.max_epochs))
        for group, rate in zip(optimiser.param_groups, base_rates, strict=True):
            group["lr"] = rate * factor
        _set_modes(network, first, config.freeze_batchnorm)

    def batch_loss(rows: torch.Tensor) -> torch.Tensor:
        if cached is not None:
            x = cached[rows]
        else:
            x = random_augment(_resized(network, unit[rows]), generator)
            with torch.no_grad():
                x = _run_stages(network, _normalised(network, x), 0, first)
        logits = network.classify(_run_stages(network, x, first, len(stages)))
        return functional.cross_entropy(logits, target[rows], weight=weight)

    losses: list[float] = []
    aurocs: list[float] = []
    validation = None
    if val_unit is not None and val_y is not None and len(val_y):
        val_cached = frozen_part(val_unit)
        val_target = torch.from_numpy(np.asarray(val_y, dtype=np.int64))

        def validation() -> float:
            logits = torch.cat([
                network.classify(_run_stages(network, val_cached[s : s + 64], first, len(stages)))
                for s in range(0, len(val_cached), 64)
            ])
            val_loss, val_auc = _score(logits, val_target)
            losses.append(val_loss)
            aurocs.append(val_auc)
            return val_loss if config.monitor == "loss" else -val_auc

    log = run_epochs(
        network,
        optimiser,
        batch_loss,
        len(target),
        max_epochs=config.max_epochs,
        batch_size=config.batch_size,
        generator=generator,
        validation=validation,
        patience=config.patience,
        min_improvement=1e-6,
        start_epoch=start_epoch,
    )
    for p in network.parameters():
        p.requires_grad_(True)
    return FitLog(log.best_epoch, log.epochs_run, log.train_loss, losses, aurocs)
