"""Pretrained CNN embeddings as a scikit-learn transformer: the hybrid probe.

``Pipeline([("cnn", PretrainedImageEncoder()), ("head", LogisticRegression())])`` is a
classical classifier on frozen ImageNet features. The encoder learns nothing from the
training data, so it cannot leak across folds; its network weights are kept as NumPy
arrays, so a saved pipeline is self-contained (no weights are fetched on load).

Examples
--------
>>> import numpy as np
>>> encoder = PretrainedImageEncoder(image_size=64).fit(np.zeros((2, 28, 28), np.uint8))
>>> encoder.transform(np.zeros((3, 28, 28), np.uint8)).shape
(3, 1280)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from medpredict.imaging.backbones import Backbone, build_backbone
from medpredict.imaging.transfer import DEFAULT_SIZES, image_array
from medpredict.imaging.transforms import as_unit_tensor, match_channels, normalise, resize
from medpredict.models.deep.training import NumpyWeightsMixin, torch_threads
from medpredict.progress import remaining, report_detail


class PretrainedImageEncoder(NumpyWeightsMixin, TransformerMixin, BaseEstimator):
    """Images -> pooled CNN features from a frozen (pretrained or user-weighted) backbone.

    Parameters
    ----------
    backbone : registered backbone name.
    image_size : side images are resized to (default 128 for EfficientNet).
    stages : which stages' pooled outputs to concatenate, by index (negative counts
        from the end); default ``(-1,)``, the last feature map (1280 features for
        EfficientNet-Lite0).
    pretrained : use the bundled ImageNet weights (default: where they exist).
    weights : a weights file (safetensors or state dict) for the backbone instead,
        e.g. one written by :meth:`ImageTransferClassifier.export_weights`.
    batch_size : images per forward pass.
    tta : average the features of the image and its mirror.
    n_threads : torch CPU threads while transforming (None: torch's setting).

    Attributes
    ----------
    module_ : the backbone.
    n_features_out_ : number of output features.
    """

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        image_size: int | None = None,
        stages: Sequence[int] = (-1,),
        pretrained: bool | None = None,
        weights: str | None = None,
        batch_size: int = 64,
        tta: bool = False,
        n_threads: int | None = None,
    ) -> None:
        self.backbone = backbone
        self.image_size = image_size
        self.stages = stages
        self.pretrained = pretrained
        self.weights = weights
        self.batch_size = batch_size
        self.tta = tta
        self.n_threads = n_threads

    def _network(self, backbone: str, image_size: int) -> Backbone:
        return build_backbone(backbone, image_size, pretrained=False)

    def fit(self, X: Any, y: Any = None) -> PretrainedImageEncoder:
        """Load the backbone; ``X`` only fixes the default image size."""
        images = image_array(X)
        size = self.image_size or DEFAULT_SIZES.get(self.backbone) or int(images.shape[-1])
        self.network_config_ = {"backbone": self.backbone, "image_size": int(size)}
        self.module_ = build_backbone(self.backbone, size, self.pretrained, self.weights).eval()
        n_stages = len(self.module_.stages)
        self.stage_indices_ = sorted({int(s) % n_stages for s in self.stages})
        channels = self.module_.stage_channels()
        self.n_features_out_ = int(sum(channels[i] for i in self.stage_indices_))
        return self

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        outputs = self.module_.stage_outputs(x)
        return torch.cat([outputs[i].mean(dim=(2, 3)) for i in self.stage_indices_], dim=1)

    def transform(self, X: Any) -> np.ndarray:
        """Pooled features, shape ``(N, n_features_out_)``, float32."""
        check_is_fitted(self, "module_")
        unit = as_unit_tensor(image_array(X))
        net = self.module_.eval()
        size = self.network_config_["image_size"]
        chunks = []
        started, passes = time.perf_counter(), -(-len(unit) // self.batch_size)
        with torch_threads(self.n_threads), torch.inference_mode():
            for start in range(0, len(unit), self.batch_size):
                done = start // self.batch_size
                if done:
                    report_detail(f"image features, batch {done}/{passes}, "
                                  f"{remaining(started, done, passes)}")
                batch = unit[start : start + self.batch_size]
                x = resize(match_channels(batch, net.in_channels), size)
                x = normalise(x, net.mean, net.std)
                features = self._features(x)
                if self.tta:
                    features = (features + self._features(torch.flip(x, dims=[3]))) / 2
                chunks.append(features)
        if not chunks:
            return np.zeros((0, self.n_features_out_), dtype=np.float32)
        return torch.cat(chunks).numpy()

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``cnn_0`` ... ``cnn_{n-1}``."""
        check_is_fitted(self, "n_features_out_")
        return np.array([f"cnn_{i}" for i in range(self.n_features_out_)], dtype=object)
