"""Model builders: a spiking MLP (the digits model) and a small spiking VGG for 32x32 images.

Which layers are binary is explicit (``binary``):

- ``"hidden"`` (default, as in the BSO reference): the first synapse and the classifier stay full
  precision; every other synapse is binary and followed by BatchNorm, which absorbs the weight scale.
- ``"all"``: every synapse is binary, each followed by BatchNorm (the classifier too).
- ``"none"``: a full-precision network (BatchNorm placement as in ``"hidden"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

from .layers import BinaryConv2d, BinaryLinear
from .network import SpikingNetwork
from .neuron import LIF, LIFParameters
from .options import BINARY_CHOICES, MODELS

DEFAULT_VGG_CHANNELS: tuple[int | str, ...] = (64, 128, "A", 256, 256, "A", 512, "A")


def _check_binary(binary: str) -> None:
    if binary not in BINARY_CHOICES:
        raise ValueError(f"binary must be one of {BINARY_CHOICES}, got {binary!r}")


def _is_binary(binary: str, index: int, count: int) -> bool:
    if binary == "all":
        return True
    if binary == "none":
        return False
    return 0 < index < count - 1


def build_mlp(sizes: Sequence[int] = (64, 256, 256, 10), binary: str = "hidden",
              lif: LIFParameters | None = None, seed: int = 0) -> SpikingNetwork:
    """Spiking MLP ``sizes[0] -> ... -> sizes[-1]``: Linear [+BatchNorm1d] + LIF per hidden layer, then a
    Linear classifier whose per-step current is the output (logits)."""
    _check_binary(binary)
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise ValueError(f"MLP sizes need at least an input and an output size, all >= 1; got {sizes}")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    lif = lif or LIFParameters()
    count = len(sizes) - 1
    layers: list[nn.Module] = []
    for index, (n_in, n_out) in enumerate(pairwise(sizes)):
        if _is_binary(binary, index, count):
            layers += [BinaryLinear(n_in, n_out, generator=generator), nn.BatchNorm1d(n_out)]
        else:
            layers.append(nn.Linear(n_in, n_out))
        if index < count - 1:
            layers.append(LIF(lif))
    return SpikingNetwork(nn.Sequential(*layers))


def build_vgg(input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10,
              channels: Sequence[int | str] = DEFAULT_VGG_CHANNELS, binary: str = "hidden",
              lif: LIFParameters | None = None, seed: int = 0) -> SpikingNetwork:
    """Small spiking VGG: 3x3 conv + BatchNorm2d + LIF blocks, ``"A"`` = 2x2 average pooling, then
    Flatten and a Linear classifier. The first conv stays full precision unless ``binary="all"``."""
    _check_binary(binary)
    if len(input_shape) != 3:
        raise ValueError(f"VGG input_shape must be (channels, height, width), got {tuple(input_shape)}")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    lif = lif or LIFParameters()
    in_channels, height, width = (int(v) for v in input_shape)
    conv_count = sum(1 for c in channels if c != "A")
    layers: list[nn.Module] = []
    conv_index = 0
    for item in channels:
        if item == "A":
            if height % 2 or width % 2:
                raise ValueError(f"cannot 2x2-pool a {height}x{width} feature map; adjust channels")
            layers.append(nn.AvgPool2d(2))
            height, width = height // 2, width // 2
            continue
        out_channels = int(item)
        binary_conv = binary == "all" or (binary == "hidden" and conv_index > 0)
        conv: nn.Module
        if binary_conv:
            conv = BinaryConv2d(in_channels, out_channels, 3, padding=1, generator=generator)
        else:
            conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        layers += [conv, nn.BatchNorm2d(out_channels), LIF(lif)]
        in_channels = out_channels
        conv_index += 1
    if conv_count == 0:
        raise ValueError("VGG channels must contain at least one convolution")
    layers.append(nn.Flatten())
    features = in_channels * height * width
    if binary == "all":
        layers += [BinaryLinear(features, num_classes, generator=generator), nn.BatchNorm1d(num_classes)]
    else:
        layers.append(nn.Linear(features, num_classes))
    return SpikingNetwork(nn.Sequential(*layers))


def build_model(name: str, input_shape: Sequence[int], num_classes: int, binary: str = "hidden",
                lif: LIFParameters | None = None, seed: int = 0,
                hidden: Sequence[int] = (256, 256)) -> SpikingNetwork:
    """Build a model by registry name (``MODELS``) for the given per-sample input shape."""
    if name == "mlp":
        n_in = 1
        for size in input_shape:
            n_in *= int(size)
        net = build_mlp((n_in, *hidden, num_classes), binary=binary, lif=lif, seed=seed)
        if len(input_shape) > 1:
            net.layers.insert(0, nn.Flatten())
        return net
    if name == "vgg":
        return build_vgg(input_shape, num_classes, binary=binary, lif=lif, seed=seed)
    raise ValueError(f"unknown model {name!r}; valid models: {', '.join(MODELS)}")
