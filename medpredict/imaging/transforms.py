"""Image arrays to network input, and random augmentation, in plain PyTorch.

Images enter as NumPy arrays ``(N, H, W)`` or ``(N, C, H, W)``: ``uint8`` (0-255),
``uint16`` (0-65535) or floating point already scaled to [0, 1] (what the medpredict
loaders produce). :func:`prepare` scales, repeats greyscale to the backbone's channels,
resizes and normalises; :func:`augment` applies seeded flips, small affine warps and
brightness/contrast jitter on the GPU-free ``torch`` ops, so nothing needs torchvision.

Examples
--------
>>> import numpy as np
>>> x = prepare(np.zeros((2, 28, 28), np.uint8), 3, 64, (0.5,) * 3, (0.25,) * 3)
>>> tuple(x.shape)
(2, 3, 64, 64)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional


def as_unit_tensor(images: np.ndarray) -> torch.Tensor:
    """``(N, C, H, W)`` float32 tensor in [0, 1] from an image array.

    Raises
    ------
    ValueError
        If the array is not 3-D/4-D, or floating point values fall outside [0, 1].
    """
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise ValueError(
            f"images must have shape (N, H, W) or (N, C, H, W); got shape {array.shape}"
        )
    if array.dtype == np.uint8:
        return torch.from_numpy(array.astype(np.float32) / 255.0)
    if array.dtype == np.uint16:
        return torch.from_numpy(array.astype(np.float32) / 65535.0)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"images must be uint8, uint16 or float in [0, 1]; got dtype {array.dtype}"
        )
    array = array.astype(np.float32, copy=False)
    if array.size and (not np.isfinite(array).all() or array.min() < 0 or array.max() > 1):
        raise ValueError(
            "floating-point images must be finite and scaled to [0, 1]; got values in "
            f"[{np.nanmin(array):.3g}, {np.nanmax(array):.3g}]"
        )
    return torch.from_numpy(np.ascontiguousarray(array))


def match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Repeat greyscale to ``channels``, or average colour to one channel."""
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, channels, -1, -1)
    if channels == 1:
        return x.mean(dim=1, keepdim=True)
    raise ValueError(f"cannot map {x.shape[1]}-channel images to {channels} channels")


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize to ``size`` x ``size`` (antialiased when shrinking)."""
    if x.shape[-2:] == (size, size):
        return x
    shrink = x.shape[-1] > size or x.shape[-2] > size
    return functional.interpolate(
        x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
    )


def normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Subtract the per-channel ``mean`` and divide by ``std``."""
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


def prepare(
    images: np.ndarray | torch.Tensor,
    channels: int,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> torch.Tensor:
    """Scaled, channel-matched, resized and normalised network input."""
    x = images if isinstance(images, torch.Tensor) else as_unit_tensor(images)
    return normalise(resize(match_channels(x, channels), size), mean, std)


def augment(
    x: torch.Tensor,
    generator: torch.Generator,
    flip: bool = True,
    degrees: float = 10.0,
    translate: float = 0.08,
    scale: tuple[float, float] = (0.9, 1.1),
    jitter: float = 0.1,
) -> torch.Tensor:
    """Random horizontal flip, rotation/translation/scale and brightness/contrast jitter.

    ``x`` is a batch in [0, 1] (before normalisation); the result stays in [0, 1].
    All draws come from ``generator``, so a seeded generator gives the same batch.
    """
    n = x.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    angle = uniform(-degrees, degrees) * math.pi / 180
    factor = uniform(*scale)
    shift = torch.stack([uniform(-translate, translate), uniform(-translate, translate)], 1) * 2
    mirror = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if flip else 1.0
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos * mirror
    theta[:, 0, 1] = -sin
    theta[:, 1, 0] = sin * mirror
    theta[:, 1, 1] = cos
    theta[:, :, 2] = shift
    grid = functional.affine_grid(theta, list(x.shape), align_corners=False)
    out = functional.grid_sample(
        x, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    if jitter > 0:
        brightness = uniform(-jitter, jitter).view(n, 1, 1, 1)
        contrast = uniform(1 - jitter, 1 + jitter).view(n, 1, 1, 1)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * contrast + mean + brightness
    return out.clamp(0.0, 1.0)
