"""A backbone with a linear classification head, and batched inference helpers.

Examples
--------
>>> import numpy as np
>>> net = ImageNetwork("small_cnn", image_size=28, n_outputs=2, pretrained=False)
>>> batched_logits(net, np.zeros((3, 28, 28), np.uint8)).shape
(3, 2)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from medpredict.imaging.backbones import Backbone, build_backbone
from medpredict.imaging.transforms import as_unit_tensor, match_channels, normalise, resize


class ImageNetwork(nn.Module):
    """Backbone -> global average pool -> dropout -> linear logits.

    Parameters
    ----------
    backbone : registered backbone name.
    image_size : side the images are resized to.
    n_outputs : number of classes.
    pretrained, weights : see :func:`~medpredict.imaging.backbones.build_backbone`.
    dropout : dropout before the linear layer.
    """

    def __init__(
        self,
        backbone: str,
        image_size: int,
        n_outputs: int,
        pretrained: bool | None = None,
        weights: str | Path | None = None,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.image_size = image_size
        self.backbone: Backbone = build_backbone(backbone, image_size, pretrained, weights)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.backbone.feature_dim, n_outputs)

    def to_input(self, unit: torch.Tensor) -> torch.Tensor:
        """Channel-matched, resized, normalised input from images in [0, 1]."""
        x = resize(match_channels(unit, self.backbone.in_channels), self.image_size)
        return normalise(x, self.backbone.mean, self.backbone.std)

    def classify(self, feature_map: torch.Tensor) -> torch.Tensor:
        """Logits from the backbone's last feature map."""
        return self.head(self.dropout(feature_map.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a normalised input batch."""
        return self.classify(self.backbone(x))


def batched_logits(
    network: ImageNetwork, images: np.ndarray, batch_size: int = 64, tta: bool = False
) -> np.ndarray:
    """Logits for every image, in batches, in eval mode; ``tta`` averages a mirrored copy."""
    unit = as_unit_tensor(images)
    network.eval()
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(unit), batch_size):
            x = network.to_input(unit[start : start + batch_size])
            logits = network(x)
            if tta:
                logits = (logits + network(torch.flip(x, dims=[3]))) / 2
            outputs.append(logits)
    if not outputs:
        return np.zeros((0, network.head.out_features), dtype=np.float64)
    return torch.cat(outputs).double().numpy()
