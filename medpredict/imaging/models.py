"""Image models by name for study specs, and the encoder for the ``image`` column kind.

Registered models take the cohort's raw feature table (``raw_input=True``), read the
image-reference column with :class:`~medpredict.imaging.loader.ImageLoader` and train a
network on the pixels:

``image_finetune``
    EfficientNet-Lite0 (ImageNet), all stages fine-tuned with layer-wise learning rates.
``image_last_blocks``
    EfficientNet-Lite0 (ImageNet), last stages and head fine-tuned.
``image_linear_probe``
    EfficientNet-Lite0 (ImageNet) frozen, linear head trained.
``image_cnn``
    small CNN trained from scratch.

Parameters in the spec go to :class:`~medpredict.imaging.transfer.ImageTransferClassifier`,
except ``image_column``, ``image_root`` and ``image_size_on_load``, which configure the loader.
The hybrid probe needs no registration: a column of kind ``image`` is encoded by
:func:`image_encoder` (standardised pretrained CNN embeddings), so every classical model
(logistic regression, SVM, LightGBM, ...) becomes a classical head on CNN features.

Examples
--------
>>> from medpredict.models import make_model
>>> make_model("image_cnn", seed=3).named_steps["model"].random_state
3
"""

from __future__ import annotations

from typing import Any

from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import StandardScaler

from medpredict.encoders.tabular import register_encoder
from medpredict.imaging.loader import ImageLoader
from medpredict.imaging.recipes import probe_encoder
from medpredict.imaging.transfer import ImageTransferClassifier
from medpredict.models.registry import register_model


def _image_pipeline(
    seed: int, class_weight: str | None, defaults: dict[str, Any], params: dict[str, Any]
) -> Pipeline:
    loader = ImageLoader(
        column=params.pop("image_column", None),
        root=params.pop("image_root", None),
        size=params.pop("image_size_on_load", None),
    )
    model = ImageTransferClassifier(
        random_state=seed, class_weight=class_weight, **defaults | params
    )
    return Pipeline([("load", loader), ("model", model)])


@register_model(
    "image_finetune", "EfficientNet-Lite0 (ImageNet) fully fine-tuned", raw_input=True
)
def image_finetune(seed: int, class_weight: str | None, **params: Any) -> Pipeline:
    """EfficientNet-Lite0 (ImageNet), every stage fine-tuned, lower rates for early layers."""
    return _image_pipeline(seed, class_weight, {"strategy": "full"}, params)


@register_model(
    "image_last_blocks", "EfficientNet-Lite0 (ImageNet), last stages fine-tuned", raw_input=True
)
def image_last_blocks(seed: int, class_weight: str | None, **params: Any) -> Pipeline:
    """EfficientNet-Lite0 (ImageNet), the last stages and the head fine-tuned."""
    return _image_pipeline(seed, class_weight, {"strategy": "last_blocks"}, params)


@register_model(
    "image_linear_probe", "EfficientNet-Lite0 (ImageNet) frozen, linear head", raw_input=True
)
def image_linear_probe(seed: int, class_weight: str | None, **params: Any) -> Pipeline:
    """EfficientNet-Lite0 (ImageNet) frozen; a linear head trained with augmentation."""
    return _image_pipeline(seed, class_weight, {"strategy": "linear_probe"}, params)


@register_model("image_cnn", "small CNN trained from scratch on the images", raw_input=True)
def image_cnn(seed: int, class_weight: str | None, **params: Any) -> Pipeline:
    """Small CNN trained from scratch on the images."""
    defaults = {"backbone": "small_cnn", "pretrained": False, "strategy": "full"}
    return _image_pipeline(seed, class_weight, defaults, params)


@register_encoder("image")
def image_encoder(columns: list[str], seed: int = 0) -> Pipeline | FeatureUnion:
    """Image-reference column(s) -> standardised EfficientNet-Lite0 embeddings (704 per column).

    The features are those of the ``probe`` recipe (stages 4-7 at 96 px, mirrored).
    """
    per_column = [
        (c, Pipeline([
            ("load", ImageLoader(column=c)), ("cnn", probe_encoder()), ("scale", StandardScaler()),
        ]))
        for c in columns
    ]
    return per_column[0][1] if len(per_column) == 1 else FeatureUnion(per_column)
