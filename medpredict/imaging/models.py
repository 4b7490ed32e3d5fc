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

The ready-made candidates of :mod:`~medpredict.imaging.recipes` are registered under their
own names (``probe``, ``probe_finetune``, ``finetune``, ``cnn``, ...) with the same defaults
and seeds, behind the same loader. Their spec parameters (besides the loader's three) are
the recipe's own, by scikit-learn name, e.g. ``{cnn__image_size: 32}`` for ``probe`` or
``{max_epochs: 5}`` for ``cnn``; ``class_weight: balanced`` reaches every part that has one.
The hybrid probe needs no registration: a column of kind ``image`` is encoded by
:func:`image_encoder` (standardised pretrained CNN embeddings), so every classical model
(logistic regression, SVM, LightGBM, ...) becomes a classical head on CNN features.

Examples
--------
>>> from medpredict.models import make_model
>>> make_model("image_cnn", seed=3).named_steps["model"].random_state
3
>>> [name for name, _ in make_model("probe", seed=3, cnn__image_size=32).steps]
['load', 'cnn', 'scale', 'head']
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import StandardScaler

from medpredict.encoders.tabular import register_encoder
from medpredict.imaging.ensemble import AveragedImageModels
from medpredict.imaging.loader import ImageLoader
from medpredict.imaging.recipes import RECIPES, probe_encoder
from medpredict.imaging.transfer import ImageTransferClassifier
from medpredict.models.registry import register_model


def _loader(params: dict[str, Any]) -> ImageLoader:
    """The reference-column loader, taking its three parameters out of ``params``."""
    return ImageLoader(
        column=params.pop("image_column", None),
        root=params.pop("image_root", None),
        size=params.pop("image_size_on_load", None),
    )


def _image_pipeline(
    seed: int, class_weight: str | None, defaults: dict[str, Any], params: dict[str, Any]
) -> Pipeline:
    loader = _loader(params)
    model = ImageTransferClassifier(
        random_state=seed, class_weight=class_weight, **defaults | params
    )
    return Pipeline([("load", loader), ("model", model)])


def _with_class_weight(estimator: Any, class_weight: str) -> Any:
    """``estimator`` with ``class_weight`` set on every part that has the parameter."""
    if isinstance(estimator, AveragedImageModels):
        members = [(name, _with_class_weight(m, class_weight)) for name, m in estimator.members]
        return estimator.set_params(members=members)
    names = [k for k in estimator.get_params() if k.split("__")[-1] == "class_weight"]
    return estimator.set_params(**dict.fromkeys(names, class_weight))


def _recipe_model(
    recipe: Callable[[int], Any], seed: int, class_weight: str | None, **params: Any
) -> Pipeline:
    """A recipe behind the loader; a recipe pipeline's steps follow the loader directly."""
    loader = _loader(params)
    estimator = recipe(seed)
    if class_weight is not None:
        estimator = _with_class_weight(estimator, class_weight)
    estimator.set_params(**params)
    steps = estimator.steps if isinstance(estimator, Pipeline) else [("model", estimator)]
    return Pipeline([("load", loader), *steps])


for _name, _recipe in RECIPES.items():
    register_model(
        _name, "image: " + (_recipe.__doc__ or "").strip().split("\n")[0], raw_input=True
    )(partial(_recipe_model, _recipe))


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
