"""Grad-CAM heat maps (Selvaraju et al., ICCV 2017) and a report section of overlays.

Works for a fitted :class:`~medpredict.imaging.transfer.ImageTransferClassifier` and for
a pipeline ``[ImageLoader?] -> PretrainedImageEncoder -> [StandardScaler?] -> linear model``
(any classifier with ``coef_``/``intercept_``, e.g. logistic regression). Heads without
gradients (trees, kernel SVMs) are refused with a clear error.

Examples
--------
>>> import numpy as np
>>> from medpredict.imaging.transfer import ImageTransferClassifier
>>> rng = np.random.default_rng(0)
>>> X = rng.integers(0, 255, (16, 28, 28), dtype=np.uint8); y = np.arange(16) % 2
>>> model = ImageTransferClassifier("small_cnn", pretrained=False, max_epochs=1).fit(X, y)
>>> grad_cam(model, X[:2]).shape
(2, 28, 28)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from torch.nn import functional

from medpredict.imaging.encoder import PretrainedImageEncoder
from medpredict.imaging.ensemble import AveragedImageModels
from medpredict.imaging.transfer import ImageTransferClassifier, image_array
from medpredict.imaging.transforms import as_unit_tensor, match_channels, normalise, resize
from medpredict.models.deep.training import torch_threads
from medpredict.report.html import Section, callout, escape, figure

# (normalised input, stage or None) -> (map at the chosen stage, logits for every class)
Scorer = Callable[[torch.Tensor, int | None], tuple[torch.Tensor, torch.Tensor]]
MIN_MAP_SIDE = 4


def _run_from(
    stages: Any, x: torch.Tensor, stage: int | None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run all stages; return the map after ``stage`` and every stage output.

    ``stage=None`` picks the last stage whose map is at least 4 x 4 (or the first).
    """
    outputs = []
    for module in stages:
        x = module(x)
        outputs.append(x)
    if stage is None:
        wide = [i for i, o in enumerate(outputs) if min(o.shape[-2:]) >= MIN_MAP_SIDE]
        stage = wide[-1] if wide else 0
    return outputs[stage], outputs


def _transfer_scorer(model: ImageTransferClassifier) -> tuple[Any, Scorer]:
    network = model.module_.eval()

    def score(x: torch.Tensor, stage: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        chosen, outputs = _run_from(network.backbone.stages, x, stage)
        return chosen, network.classify(outputs[-1])

    return network.backbone, score


def _pipeline_scorer(model: Pipeline) -> tuple[Any, Scorer, list[Any]]:
    steps = [s for _, s in model.steps]
    position = next((i for i, s in enumerate(steps) if isinstance(s, PretrainedImageEncoder)), None)
    if position is None:
        raise TypeError("Grad-CAM needs a PretrainedImageEncoder step in the pipeline")
    encoder, after = steps[position], steps[position + 1 :]
    *middle, head = after
    if any(not isinstance(s, StandardScaler) for s in middle) or not hasattr(head, "coef_"):
        raise TypeError(
            "Grad-CAM needs a differentiable head after the encoder: optional StandardScaler, "
            f"then a linear model with coef_; got {[type(s).__name__ for s in after]}"
        )
    coef = torch.tensor(np.atleast_2d(head.coef_), dtype=torch.float32)
    intercept = torch.tensor(np.atleast_1d(head.intercept_), dtype=torch.float32)
    backbone = encoder.module_.eval()

    def score(x: torch.Tensor, stage: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        chosen, outputs = _run_from(backbone.stages, x, stage)
        features = torch.cat([outputs[i].mean(dim=(2, 3)) for i in encoder.stage_indices_], 1)
        for scaler in middle:
            mean = torch.tensor(scaler.mean_ if scaler.with_mean else 0.0, dtype=torch.float32)
            scale = torch.tensor(scaler.scale_ if scaler.with_std else 1.0, dtype=torch.float32)
            features = (features - mean) / scale
        logits = features @ coef.T + intercept
        if logits.shape[1] == 1:
            logits = torch.cat([torch.zeros_like(logits), logits], dim=1)
        return chosen, logits

    return backbone, score, steps[:position]


def grad_cam(
    model: Any,
    X: Any,
    target: Any = None,
    stage: int | None = None,
    n_threads: int | None = None,
) -> np.ndarray:
    """Grad-CAM maps in [0, 1] at the input images' resolution, shape ``(N, H, W)``.

    Parameters
    ----------
    model : fitted ImageTransferClassifier, a pipeline with a PretrainedImageEncoder
        and a linear head, or an AveragedImageModels of those (its members' maps for
        the averaged model's predicted class, averaged).
    X : images (or, for a pipeline starting with an ImageLoader, its input).
    target : class label to explain; default each image's predicted class.
    stage : backbone stage whose output map is weighted; default the last stage whose
        map is at least 4 x 4 (EfficientNet's last map is 1/32 of the input side, too
        coarse at small inputs).
    n_threads : torch CPU threads.
    """
    if isinstance(model, AveragedImageModels):
        return _averaged_cam(model, X, target, stage, n_threads)
    before: list[Any] = []
    if isinstance(model, ImageTransferClassifier):
        backbone, score = _transfer_scorer(model)
        size = model.network_config_["image_size"]
    elif isinstance(model, Pipeline):
        backbone, score, before = _pipeline_scorer(model)
        size = next(s for _, s in model.steps if isinstance(s, PretrainedImageEncoder))
        size = size.network_config_["image_size"]
    else:
        raise TypeError(f"Grad-CAM is not available for {type(model).__name__}")
    classes = model.classes_
    for step in before:
        X = step.transform(X)
    unit = as_unit_tensor(image_array(X))
    maps = []
    with torch_threads(n_threads):
        for start in range(0, len(unit), 32):
            batch = unit[start : start + 32]
            x = resize(match_channels(batch, backbone.in_channels), size)
            x = normalise(x, backbone.mean, backbone.std)
            chosen, logits = score(x, stage)
            if target is None:
                index = logits.argmax(dim=1)
            else:
                index = torch.full((len(x),), int(np.searchsorted(classes, target)))
            (gradient,) = torch.autograd.grad(logits.gather(1, index[:, None]).sum(), chosen)
            weights = gradient.mean(dim=(2, 3), keepdim=True)
            cam = functional.relu((weights * chosen).sum(dim=1, keepdim=True)).detach()
            cam = functional.interpolate(
                cam, size=tuple(batch.shape[-2:]), mode="bilinear", align_corners=False
            )[:, 0]
            peak = cam.amax(dim=(1, 2), keepdim=True)
            maps.append(torch.where(peak > 0, cam / peak.clamp_min(1e-12), cam))
    return torch.cat(maps).numpy()


def _averaged_cam(
    model: AveragedImageModels, X: Any, target: Any, stage: int | None, n_threads: int | None
) -> np.ndarray:
    images = image_array(X)
    targets = model.predict(images) if target is None else np.full(len(images), target)
    maps = np.zeros((len(images), *images.shape[-2:]))
    for label in np.unique(targets):
        rows = np.flatnonzero(targets == label)
        maps[rows] = np.mean(
            [grad_cam(m, images[rows], label, stage, n_threads) for m in model.members_], axis=0
        )
    return maps


def overlay_figure(
    images: np.ndarray, cams: np.ndarray, titles: list[str], columns: int = 4
) -> plt.Figure:
    """Images in grey with their Grad-CAM maps overlaid in colour."""
    unit = as_unit_tensor(image_array(images)).mean(dim=1).numpy()
    rows = max(1, int(np.ceil(len(unit) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, cam, title in zip(axes.ravel(), unit, cams, titles, strict=False):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.imshow(cam, cmap="jet", alpha=0.4, vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def gradcam_section(
    model: Any,
    images: np.ndarray,
    labels: np.ndarray,
    class_names: dict[Any, str] | None = None,
    n_each: int = 8,
    seed: int = 0,
    title: str = "Grad-CAM: where the model looks",
) -> Section:
    """A report section with Grad-CAM overlays for a sample of correct and wrong predictions.

    Maps explain each image's predicted class; ``images``/``labels`` should be held-out data.
    """
    names = class_names or {}
    try:
        proba = model.predict_proba(images)
        predicted = model.classes_[proba.argmax(axis=1)]
        cams = grad_cam(model, images)
    except TypeError as err:
        return Section(title, callout(f"Grad-CAM is not available for this model: {err}", "note"))
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    body = [
        "<p>Warm colours mark the image regions that raised the score of the predicted "
        "class (Grad-CAM on the last feature map of at least 4 x 4). Images are a random "
        "sample of held-out predictions. A map is a hint about what the network uses, "
        "not a segmentation, and it does not show that the reasoning is clinically right.</p>"
    ]
    for heading, mask in (("Correct predictions", predicted == labels),
                          ("Wrong predictions", predicted != labels)):
        rows = np.flatnonzero(mask)
        if rows.size == 0:
            body.append(f"<h3>{escape(heading)}</h3><p>None.</p>")
            continue
        rows = np.sort(rng.choice(rows, min(n_each, rows.size), replace=False))
        titles = [
            f"true {names.get(labels[i], labels[i])}\npred {names.get(predicted[i], predicted[i])} "
            f"({proba[i].max():.2f})"
            for i in rows
        ]
        fig = overlay_figure(images[rows], cams[rows], titles)
        body.append(f"<h3>{escape(heading)} ({mask.sum()} of {mask.size})</h3>")
        body.append(figure(fig, f"Grad-CAM overlays, {heading.lower()}"))
    return Section(title, "\n".join(body))
