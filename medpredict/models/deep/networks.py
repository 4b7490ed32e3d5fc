"""Small PyTorch networks for tables: categorical embeddings + MLP or residual MLP.

Both take ``(numeric, codes)`` (see :class:`~medpredict.models.deep.encoding.TabularEncoder`)
and return logits; :meth:`features` returns the penultimate representation, which the
hybrid models feed to classical heads. The residual network follows the tabular ResNet of
Gorishniy et al., "Revisiting Deep Learning Models for Tabular Data" (NeurIPS 2021).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _norm(kind: str | None, width: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(width)
    if kind == "layer":
        return nn.LayerNorm(width)
    if kind in (None, "none"):
        return nn.Identity()
    raise ValueError(f"norm must be 'batch', 'layer' or 'none', got {kind!r}")


class CategoricalInput(nn.Module):
    """Concatenate the numeric block with one learned embedding per categorical column."""

    def __init__(self, n_numeric: int, cardinalities: Sequence[int], embedding_dim: int) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(
            nn.Embedding(card, min(embedding_dim, card)) for card in cardinalities
        )
        self.width = n_numeric + sum(e.embedding_dim for e in self.embeddings)

    def forward(self, numeric: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        parts = [numeric] + [emb(codes[:, j]) for j, emb in enumerate(self.embeddings)]
        return torch.cat(parts, dim=1)


class _TabularNet(nn.Module):
    """Inputs (numbers and embedded categories) -> ``body`` -> ``head``."""

    inputs: CategoricalInput
    body: nn.Module
    head: nn.Linear

    def features(self, numeric: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return self.body(self.inputs(numeric, codes))

    def forward(self, numeric: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(numeric, codes))


class MLPNet(_TabularNet):
    """Embeddings -> [Linear -> norm -> ReLU -> dropout] x len(hidden) -> Linear."""

    def __init__(
        self,
        n_numeric: int,
        cardinalities: Sequence[int],
        n_outputs: int,
        hidden: Sequence[int] = (128, 64),
        dropout: float = 0.2,
        norm: str | None = "batch",
        embedding_dim: int = 8,
    ) -> None:
        super().__init__()
        self.inputs = CategoricalInput(n_numeric, cardinalities, embedding_dim)
        layers: list[nn.Module] = []
        width = self.inputs.width
        for size in hidden:
            layers += [nn.Linear(width, size), _norm(norm, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_outputs)


class _ResidualBlock(nn.Module):
    def __init__(self, width: int, hidden: int, dropout: float, norm: str | None) -> None:
        super().__init__()
        self.block = nn.Sequential(
            _norm(norm, width),
            nn.Linear(width, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, width),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResNet(_TabularNet):
    """Embeddings -> Linear -> residual blocks -> norm -> ReLU -> Linear."""

    def __init__(
        self,
        n_numeric: int,
        cardinalities: Sequence[int],
        n_outputs: int,
        width: int = 64,
        n_blocks: int = 2,
        hidden_factor: float = 2.0,
        dropout: float = 0.2,
        norm: str | None = "batch",
        embedding_dim: int = 8,
    ) -> None:
        super().__init__()
        self.inputs = CategoricalInput(n_numeric, cardinalities, embedding_dim)
        hidden = max(1, round(width * hidden_factor))
        self.body = nn.Sequential(
            nn.Linear(self.inputs.width, width),
            *(_ResidualBlock(width, hidden, dropout, norm) for _ in range(n_blocks)),
            _norm(norm, width),
            nn.ReLU(),
        )
        self.head = nn.Linear(width, n_outputs)


class AutoencoderNet(nn.Module):
    """Embeddings -> MLP -> code -> MLP -> reconstructed numbers and category logits."""

    def __init__(
        self,
        n_numeric: int,
        cardinalities: Sequence[int],
        code_size: int = 16,
        hidden: int = 64,
        dropout: float = 0.1,
        embedding_dim: int = 8,
    ) -> None:
        super().__init__()
        self.inputs = CategoricalInput(n_numeric, cardinalities, embedding_dim)
        self.cardinalities = list(cardinalities)
        self.n_numeric = n_numeric
        self.encoder = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(self.inputs.width, hidden),
            nn.ReLU(),
            nn.Linear(hidden, code_size),
        )
        self.decoder = nn.Sequential(
            nn.Linear(code_size, hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_numeric + sum(self.cardinalities)),
        )

    def forward(self, numeric: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.inputs(numeric, codes))

    def reconstruction_loss(
        self, noisy: torch.Tensor, codes: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """Mean squared error on numbers plus cross-entropy per categorical column."""
        out = self.decoder(self(noisy, codes))
        loss = nn.functional.mse_loss(out[:, : self.n_numeric], target, reduction="sum")
        loss = loss / max(1, target.numel())
        start = self.n_numeric
        for j, card in enumerate(self.cardinalities):
            logits = out[:, start : start + card]
            loss = loss + nn.functional.cross_entropy(logits, codes[:, j]) / len(self.cardinalities)
            start += card
        return loss
