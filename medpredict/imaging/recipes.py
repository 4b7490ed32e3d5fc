"""Ready-made image candidates by name (image arrays in, probabilities out).

Each is also a registered model of the same name for study specs, reading an image
column (:mod:`medpredict.imaging.models`).

``probe``
    hybrid probe: pooled EfficientNet-Lite0 (ImageNet) features of stages 4-7 at
    96 px, averaged with the mirrored image, standardised, then L2 logistic regression
    with C chosen by 5-fold cross-validated AUROC on the training images.
``probe_svm`` / ``probe_lightgbm``
    the same features with an RBF SVM or LightGBM head.
``finetune``
    EfficientNet-Lite0 (ImageNet) at 96 px: head trained alone first, then every stage
    fine-tuned with layer-wise learning rates, augmentation, early stopping.
``probe_finetune``
    the mean of ``probe``'s and ``finetune``'s probabilities (the default).
``last_blocks`` / ``linear_probe``
    EfficientNet-Lite0 with only the last 3 stages (or only the head) trained.
``cnn``
    small CNN trained from scratch at the native resolution.
``lightgbm_pixels``
    gradient boosting on the raw pixel values.

Examples
--------
>>> sorted(make_candidates(["probe", "cnn"], seed=0))
['cnn', 'probe']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegressionCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from medpredict.imaging.encoder import PretrainedImageEncoder
from medpredict.imaging.ensemble import AveragedImageModels
from medpredict.imaging.transfer import ImageTransferClassifier
from medpredict.models.classical import lightgbm, svm

PROBE_STAGES = (4, 5, 6, 7)
PROBE_SIZE = 96
FINETUNE_SIZE = 96


def flatten_pixels(images: np.ndarray) -> np.ndarray:
    """``(N, ...)`` images -> ``(N, pixels)`` float rows (for classical models on raw pixels)."""
    array = np.asarray(images)
    return array.reshape(len(array), -1).astype(np.float32)


def probe_encoder() -> PretrainedImageEncoder:
    """The probe's feature extractor (stages 4-7 of EfficientNet-Lite0 at 96 px, mirrored)."""
    return PretrainedImageEncoder(image_size=PROBE_SIZE, stages=PROBE_STAGES, tta=True)


def probe(seed: int) -> Pipeline:
    """CNN features -> standardisation -> logistic regression (C by inner CV AUROC)."""
    head = LogisticRegressionCV(
        Cs=[0.003, 0.01, 0.03, 0.1], l1_ratios=(0.0,), cv=5, scoring="roc_auc", max_iter=5000,
        random_state=seed, use_legacy_attributes=False,
    )
    return Pipeline([("cnn", probe_encoder()), ("scale", StandardScaler()), ("head", head)])


def probe_svm(seed: int) -> Pipeline:
    """CNN features -> standardisation -> RBF SVM."""
    return Pipeline(
        [("cnn", probe_encoder()), ("scale", StandardScaler()), ("head", svm(seed, None))]
    )


def probe_lightgbm(seed: int) -> Pipeline:
    """CNN features -> LightGBM."""
    return Pipeline([("cnn", probe_encoder()), ("head", lightgbm(seed, None))])


def finetune(seed: int) -> ImageTransferClassifier:
    """EfficientNet-Lite0, head warm-up then full fine-tuning with layer-wise rates."""
    return ImageTransferClassifier(
        strategy="full", image_size=FINETUNE_SIZE, head_epochs=20, learning_rate=5e-4,
        max_epochs=15, patience=5, random_state=seed,
    )


def probe_finetune(seed: int) -> AveragedImageModels:
    """The probe and the fine-tuned network, their probabilities averaged."""
    return AveragedImageModels([("probe", probe(seed)), ("finetune", finetune(seed))])


def last_blocks(seed: int) -> ImageTransferClassifier:
    """EfficientNet-Lite0 with the last 3 stages and the head fine-tuned."""
    return ImageTransferClassifier(
        strategy="last_blocks", trainable_stages=3, image_size=FINETUNE_SIZE, head_epochs=20,
        learning_rate=5e-4, max_epochs=15, patience=5, random_state=seed,
    )


def linear_probe(seed: int) -> ImageTransferClassifier:
    """EfficientNet-Lite0 frozen; a linear head trained with augmentation."""
    return ImageTransferClassifier(
        strategy="linear_probe", image_size=FINETUNE_SIZE, learning_rate=5e-3, max_epochs=30,
        patience=8, random_state=seed,
    )


def cnn(seed: int) -> ImageTransferClassifier:
    """Small CNN from scratch at the images' own resolution."""
    return ImageTransferClassifier(
        backbone="small_cnn", pretrained=False, strategy="full", max_epochs=60, patience=12,
        learning_rate=1e-3, random_state=seed,
    )


def lightgbm_pixels(seed: int) -> Pipeline:
    """LightGBM on the raw pixel values."""
    return Pipeline([
        ("pixels", FunctionTransformer(flatten_pixels)), ("head", lightgbm(seed, None)),
    ])


RECIPES: dict[str, Callable[[int], Any]] = {
    "probe": probe,
    "probe_svm": probe_svm,
    "probe_lightgbm": probe_lightgbm,
    "finetune": finetune,
    "probe_finetune": probe_finetune,
    "last_blocks": last_blocks,
    "linear_probe": linear_probe,
    "cnn": cnn,
    "lightgbm_pixels": lightgbm_pixels,
}


def check_recipe_names(names: list[str]) -> None:
    """Refuse names that are not recipes, listing the recipes.

    Examples
    --------
    >>> check_recipe_names(["probe", "resnet"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: unknown image model(s) ['resnet']; expected from: probe, probe_svm, ...
    """
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise ValueError(f"unknown image model(s) {unknown}; expected from: {', '.join(RECIPES)}")


def make_candidates(names: list[str], seed: int = 0) -> dict[str, Any]:
    """Unfitted estimators (image arrays in) for the named recipes."""
    check_recipe_names(names)
    return {name: RECIPES[name](seed) for name in names}
