"""Transfer learning for images as a scikit-learn classifier.

:class:`ImageTransferClassifier` adapts a backbone (by default EfficientNet-Lite0 with
ImageNet weights) to a labelled image set with one of three strategies:

``"linear_probe"``
    the backbone stays frozen; only the linear head trains.
``"last_blocks"``
    the last ``trainable_stages`` stages of the backbone and the head train.
``"full"``
    every stage trains, earlier stages at geometrically lower learning rates
    (``layer_decay`` per stage).

Training uses seeded augmentation (flips, small affine warps, brightness/contrast),
AdamW with a cosine schedule, and early stopping on a validation set: the one passed
as ``X_val``/``y_val`` to :meth:`~ImageTransferClassifier.fit`, or else an inner split of
the training images (by patient when ``groups`` are given). With ``source`` naming a
labelled dataset, the network is first fine-tuned on that source task, then
transferred to the target (inductive transfer). A classical head on frozen features
(the hybrid probe) is :class:`~medpredict.imaging.encoder.PretrainedImageEncoder` in a
pipeline with any scikit-learn classifier.

Examples
--------
>>> from medpredict.imaging.cohort import load_medmnist
>>> from medpredict.settings import require_data
>>> data = load_medmnist(require_data("images/breastmnist_28.npz"))
>>> model = ImageTransferClassifier(backbone="small_cnn", pretrained=False, max_epochs=1)
>>> model.fit(data["train"].images[:64], data["train"].labels[:64]).predict_proba(
...     data["test"].images[:3]).shape
(3, 2)
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from medpredict.data.errors import DataError
from medpredict.evaluation.splits import inner_split
from medpredict.imaging.cohort import load_image_folder, load_medmnist
from medpredict.imaging.network import ImageNetwork, batched_logits
from medpredict.imaging.training import FitLog, TrainConfig, train_network
from medpredict.imaging.transforms import as_unit_tensor
from medpredict.models.deep.training import (
    NumpyWeightsMixin,
    seeded,
    state_to_safetensors,
    torch_threads,
)

STRATEGIES = ("linear_probe", "last_blocks", "full")
DEFAULT_SIZES = {"efficientnet_lite0": 128, "small_cnn": None}


def image_array(X: Any, name: str = "X") -> np.ndarray:
    """Check that ``X`` is an image array ``(N, H, W)`` or ``(N, C, H, W)`` and return it."""
    array = np.asarray(X)
    if array.dtype == object or array.ndim not in (3, 4):
        raise DataError(
            f"{name} must be an image array of shape (N, H, W) or (N, C, H, W); got "
            f"{'object values' if array.dtype == object else f'shape {array.shape}'} "
            "(use ImageLoader to read a column of image references)"
        )
    return array


def load_source(
    source: str | Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Training images/labels (and validation ones, if the source has them) of a source dataset.

    ``source`` is a MedMNIST-format ``.npz`` (its train and val splits) or a labels CSV
    for :func:`~medpredict.imaging.cohort.load_image_folder`.
    """
    path = Path(source)
    if path.suffix == ".npz":
        splits = load_medmnist(path)
        return (splits["train"].images, splits["train"].labels,
                splits["val"].images, splits["val"].labels)
    if path.suffix == ".csv":
        cohort = load_image_folder(path)
        return cohort.images, cohort.labels, None, None
    raise DataError(f"source {path} must be a MedMNIST .npz file or a labels .csv file")


class ImageTransferClassifier(NumpyWeightsMixin, ClassifierMixin, BaseEstimator):
    """Fine-tune a (pretrained) CNN backbone on image arrays.

    Parameters
    ----------
    backbone : ``"efficientnet_lite0"`` or ``"small_cnn"``.
    strategy : ``"linear_probe"``, ``"last_blocks"`` or ``"full"`` (see module docstring).
    trainable_stages : backbone stages that train under ``"last_blocks"``
        (EfficientNet-Lite0 has 9: stem, 7 block groups, head convolution).
    image_size : side images are resized to; default 128 for EfficientNet, the input
        size for the small CNN.
    pretrained : use the backbone's ImageNet weights (default: where they exist).
    weights : a weights file (safetensors or state dict) for the backbone instead.
    source : a labelled source dataset (MedMNIST ``.npz`` or labels ``.csv``) to
        fine-tune on first; the target then starts from those weights.
    source_epochs : epoch limit of the source stage.
    head_epochs : before fine-tuning, train the head alone on frozen features for up to
        this many epochs at 10 x ``learning_rate`` ("linear probe, then fine-tune":
        a trained head disturbs the pretrained features less than a random one).
    learning_rate : AdamW learning rate of the head and last trained stage's successor.
    layer_decay : each earlier stage's learning rate is this times the next one's.
    weight_decay : AdamW weight decay.
    max_epochs, patience : epoch limit and early-stopping patience.
    batch_size : images per step.
    dropout : dropout before the linear head.
    augment : apply random augmentation during training.
    freeze_batchnorm : keep batch-norm statistics fixed while fine-tuning; default True
        when starting from pretrained or given weights, False for a network from scratch.
    monitor : early-stopping score on the validation set, ``"loss"`` or ``"auroc"``.
    validation_fraction : share of training images held out when no ``X_val`` is given.
    class_weight : None, ``"balanced"`` or ``{label: weight}``.
    tta : average predictions over the image and its mirror.
    random_state : seed for initialisation, dropout, batch order and augmentation.
    n_threads : torch CPU threads while fitting/predicting (None: torch's setting).

    Attributes
    ----------
    classes_ : class labels.
    module_ : the trained :class:`~medpredict.imaging.network.ImageNetwork`.
    network_config_ : arguments that rebuild the network's architecture.
    image_shape_ : shape of one training image.
    fit_log_, head_log_, source_log_ : training histories (:class:`FitLog`; the head
        warm-up and source stage are None unless used).
    """

    # patient ids reach ``fit`` through scikit-learn metadata routing, even inside a Pipeline
    __metadata_request__fit: ClassVar[dict[str, bool]] = {"groups": True}

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        strategy: str = "full",
        trainable_stages: int = 3,
        image_size: int | None = None,
        pretrained: bool | None = None,
        weights: str | None = None,
        source: str | None = None,
        source_epochs: int = 10,
        head_epochs: int = 0,
        learning_rate: float = 1e-3,
        layer_decay: float = 0.7,
        weight_decay: float = 1e-4,
        max_epochs: int = 30,
        patience: int = 6,
        batch_size: int = 32,
        dropout: float = 0.2,
        augment: bool = True,
        freeze_batchnorm: bool | None = None,
        monitor: str = "loss",
        validation_fraction: float = 0.15,
        class_weight: str | dict[Any, float] | None = None,
        tta: bool = False,
        random_state: int = 0,
        n_threads: int | None = None,
    ) -> None:
        self.backbone = backbone
        self.strategy = strategy
        self.trainable_stages = trainable_stages
        self.image_size = image_size
        self.pretrained = pretrained
        self.weights = weights
        self.source = source
        self.source_epochs = source_epochs
        self.head_epochs = head_epochs
        self.learning_rate = learning_rate
        self.layer_decay = layer_decay
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.dropout = dropout
        self.augment = augment
        self.freeze_batchnorm = freeze_batchnorm
        self.monitor = monitor
        self.validation_fraction = validation_fraction
        self.class_weight = class_weight
        self.tta = tta
        self.random_state = random_state
        self.n_threads = n_threads

    def _network(
        self, backbone: str, image_size: int, n_outputs: int, dropout: float
    ) -> ImageNetwork:
        return ImageNetwork(backbone, image_size, n_outputs, pretrained=False, dropout=dropout)

    def _trainable(self, n_stages: int) -> int:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}; got {self.strategy!r}")
        if self.monitor not in ("loss", "auroc"):
            raise ValueError(f"monitor must be 'loss' or 'auroc'; got {self.monitor!r}")
        return {"linear_probe": 0, "last_blocks": self.trainable_stages, "full": n_stages}[
            self.strategy
        ]

    def _config(self, trainable: int, epochs: int, class_weights: np.ndarray | None) -> TrainConfig:
        freeze = self.freeze_batchnorm
        if freeze is None:
            freeze = bool(self.weights or self.source) or (
                self.pretrained if self.pretrained is not None else self.backbone != "small_cnn"
            )
        return TrainConfig(
            trainable=trainable,
            learning_rate=self.learning_rate,
            layer_decay=self.layer_decay,
            weight_decay=self.weight_decay,
            max_epochs=epochs,
            batch_size=self.batch_size,
            patience=self.patience,
            augment=self.augment,
            freeze_batchnorm=freeze,
            monitor=self.monitor,
            class_weights=class_weights,
            seed=self.random_state,
        )

    def _class_weights(self, y_index: np.ndarray) -> np.ndarray | None:
        if self.class_weight is None:
            return None
        if self.class_weight == "balanced":
            return compute_class_weight(
                "balanced", classes=np.arange(self.classes_.size), y=y_index
            )
        return np.array([self.class_weight.get(c, 1.0) for c in self.classes_], dtype=float)

    def _encode(self, y: Any, name: str) -> np.ndarray:
        y = column_or_1d(y, warn=True)
        unseen = sorted(set(np.unique(y).tolist()) - set(self.classes_.tolist()))
        if unseen:
            raise DataError(f"{name} has labels {unseen} that are not in the training labels")
        return np.searchsorted(self.classes_, y)

    def _source_backbone(self, size: int) -> dict[str, Any]:
        images, labels, val_images, val_labels = load_source(self.source)
        classes, y_index = np.unique(labels, return_inverse=True)
        source_net = ImageNetwork(
            self.backbone, size, int(classes.size), self.pretrained, self.weights, self.dropout
        )
        if val_images is None:
            train, val = inner_split(y_index, None, self.validation_fraction, self.random_state)
            val_images, val_index = images[val], y_index[val]
            images, y_index = images[train], y_index[train]
        else:
            val_index = np.searchsorted(classes, val_labels)
        n_stages = len(source_net.backbone.stages)
        self.source_log_ = train_network(
            source_net, as_unit_tensor(images), y_index, as_unit_tensor(val_images), val_index,
            self._config(n_stages, self.source_epochs, None),
        )
        return source_net.backbone.state_dict()

    def fit(
        self, X: Any, y: Any, groups: Any = None, X_val: Any = None, y_val: Any = None
    ) -> ImageTransferClassifier:
        """Fit on images ``X`` with labels ``y``.

        Parameters
        ----------
        X : image array ``(N, H, W)`` or ``(N, C, H, W)`` (uint8, uint16 or float in [0, 1]).
        y : class labels.
        groups : patient id per image; the inner early-stopping split keeps a
            patient's images together. Ignored when ``X_val`` is given.
        X_val, y_val : a validation set for early stopping (e.g. an official split).
        """
        images = image_array(X)
        check_classification_targets(y)
        y = column_or_1d(y, warn=True)
        if len(y) != len(images):
            raise DataError(f"X has {len(images)} images but y has {len(y)} labels")
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if self.classes_.size < 2:
            raise DataError(f"y needs at least two classes; got only {self.classes_.tolist()}")
        if X_val is not None:
            val_images, val_index = image_array(X_val, "X_val"), self._encode(y_val, "y_val")
            train_images, train_index = images, y_index
        else:
            groups = None if groups is None else np.asarray(groups)
            train, val = inner_split(y_index, groups, self.validation_fraction, self.random_state)
            train_images, train_index = images[train], y_index[train]
            val_images, val_index = (images[val], y_index[val]) if val.size else (None, None)
        self.image_shape_ = tuple(images.shape[1:])
        size = self.image_size or DEFAULT_SIZES.get(self.backbone) or int(images.shape[-1])
        self.network_config_ = {
            "backbone": self.backbone,
            "image_size": int(size),
            "n_outputs": int(self.classes_.size),
            "dropout": float(self.dropout),
        }
        self.source_log_: FitLog | None = None
        with torch_threads(self.n_threads), seeded(self.random_state):
            source_state = self._source_backbone(size) if self.source else None
            network = ImageNetwork(
                self.backbone, size, int(self.classes_.size), self.pretrained, self.weights,
                self.dropout,
            )
            if source_state is not None:
                network.backbone.load_state_dict(source_state)
            config = self._config(
                self._trainable(len(network.backbone.stages)), self.max_epochs,
                self._class_weights(y_index),
            )
            train_unit = as_unit_tensor(train_images)
            val_unit = None if val_images is None else as_unit_tensor(val_images)
            self.head_log_: FitLog | None = None
            if self.head_epochs > 0 and config.trainable > 0:
                warm = replace(
                    config, trainable=0, augment=False, max_epochs=self.head_epochs,
                    learning_rate=10 * self.learning_rate,
                )
                self.head_log_ = train_network(
                    network, train_unit, train_index, val_unit, val_index, warm
                )
            self.fit_log_ = train_network(
                network, train_unit, train_index, val_unit, val_index, config
            )
        self.module_ = network
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits ``(N, n_classes)``; for two classes, the log-odds of ``classes_[1]``."""
        check_is_fitted(self, "module_")
        with torch_threads(self.n_threads):
            logits = batched_logits(self.module_, image_array(X), tta=self.tta)
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            positive = 1.0 / (1.0 + np.exp(-scores))
            return np.column_stack([1.0 - positive, positive])
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class per image."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def export_weights(self) -> bytes:
        """The fitted backbone's weights as safetensors bytes, loadable with ``weights=``."""
        check_is_fitted(self, "module_")
        return state_to_safetensors(self.module_.backbone)
