"""Model builders: a spiking MLP (the digits model), a spiking conv net given by a spec string (``cnn``,
default 32C3-P2-64C3-P2 then the classifier) and a small spiking VGG for 32x32 images.

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

from .layers import BinaryConv2d, BinaryLinear, make_batchnorm
from .network import SpikingNetwork
from .neuron import LIF, LIFParameters
from .options import BINARY_CHOICES, DEFAULT_CNN_SPEC, MODELS, parse_cnn_spec

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
              lif: LIFParameters | None = None, seed: int = 0, batchnorm: str = "shared",
              time_steps: int = 1) -> SpikingNetwork:
    """Spiking MLP ``sizes[0] -> ... -> sizes[-1]``: Linear [+BatchNorm1d] + LIF per hidden layer, then a
    Linear classifier whose per-step current is the output (logits). ``batchnorm`` and ``time_steps``
    choose the BatchNorm statistics (:func:`bso_deploy.layers.make_batchnorm`)."""
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
            layers += [BinaryLinear(n_in, n_out, generator=generator), make_batchnorm(n_out, 1, batchnorm, time_steps)]
        else:
            layers.append(nn.Linear(n_in, n_out))
        if index < count - 1:
            layers.append(LIF(lif))
    return SpikingNetwork(nn.Sequential(*layers))


def _vgg_blocks(channels: Sequence[int | str]) -> tuple[tuple[str, int], ...]:
    return tuple(("pool", 2) if item == "A" else ("conv", int(item)) for item in channels)


def build_cnn(input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10, spec: str = DEFAULT_CNN_SPEC,
              binary: str = "hidden", lif: LIFParameters | None = None, seed: int = 0,
              batchnorm: str = "shared", time_steps: int = 1) -> SpikingNetwork:
    """Spiking conv net of ``spec`` (:func:`bso_deploy.options.parse_cnn_spec`), then Flatten and a Linear
    classifier. The first conv and the classifier stay full precision unless ``binary="all"``; ``batchnorm``
    and ``time_steps`` choose the BatchNorm statistics (:func:`bso_deploy.layers.make_batchnorm`)."""
    return _conv_net("CNN", input_shape, num_classes, parse_cnn_spec(spec), binary, lif, seed, batchnorm, time_steps)


def build_vgg(input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10,
              channels: Sequence[int | str] = DEFAULT_VGG_CHANNELS, binary: str = "hidden",
              lif: LIFParameters | None = None, seed: int = 0) -> SpikingNetwork:
    """Small spiking VGG: 3x3 conv + BatchNorm2d + LIF blocks, ``"A"`` = 2x2 average pooling, then
    Flatten and a Linear classifier. The first conv stays full precision unless ``binary="all"``."""
    if sum(1 for c in channels if c != "A") == 0:
        raise ValueError("VGG channels must contain at least one convolution")
    return _conv_net("VGG", input_shape, num_classes, _vgg_blocks(channels), binary, lif, seed, "shared", 1)


def _conv_net(name: str, input_shape: Sequence[int], num_classes: int, blocks: Sequence[tuple[str, int]], binary: str,
              lif: LIFParameters | None, seed: int, batchnorm: str, time_steps: int) -> SpikingNetwork:
    _check_binary(binary)
    if len(input_shape) != 3:
        raise ValueError(f"{name} input_shape must be (channels, height, width), got {tuple(input_shape)}")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    lif = lif or LIFParameters()
    in_channels, height, width = (int(v) for v in input_shape)
    layers: list[nn.Module] = []
    conv_index = 0
    for kind, size in blocks:
        if kind == "pool":
            if height % size or width % size:
                raise ValueError(f"cannot {size}x{size}-pool a {height}x{width} feature map; adjust channels")
            layers.append(nn.AvgPool2d(size))
            height, width = height // size, width // size
            continue
        binary_conv = binary == "all" or (binary == "hidden" and conv_index > 0)
        conv: nn.Module
        if binary_conv:
            conv = BinaryConv2d(in_channels, size, 3, padding=1, generator=generator)
        else:
            conv = nn.Conv2d(in_channels, size, 3, padding=1, bias=False)
        layers += [conv, make_batchnorm(size, 2, batchnorm, time_steps), LIF(lif)]
        in_channels = size
        conv_index += 1
    layers.append(nn.Flatten())
    features = in_channels * height * width
    if binary == "all":
        layers += [BinaryLinear(features, num_classes, generator=generator),
                   make_batchnorm(num_classes, 1, batchnorm, time_steps)]
    else:
        layers.append(nn.Linear(features, num_classes))
    return SpikingNetwork(nn.Sequential(*layers))


def build_model(name: str, input_shape: Sequence[int], num_classes: int, binary: str = "hidden",
                lif: LIFParameters | None = None, seed: int = 0,
                hidden: Sequence[int] = (256, 256), cnn: str = DEFAULT_CNN_SPEC, batchnorm: str = "shared",
                time_steps: int = 1) -> SpikingNetwork:
    """Build a model by name (``MODELS``) for the given per-sample input shape: ``hidden`` sizes the MLP,
    ``cnn`` is the spec of the conv net (:func:`bso_deploy.options.parse_cnn_spec`); ``batchnorm`` /
    ``time_steps`` as in :func:`bso_deploy.layers.make_batchnorm` (mlp and cnn)."""
    if name == "mlp":
        n_in = 1
        for size in input_shape:
            n_in *= int(size)
        net = build_mlp((n_in, *hidden, num_classes), binary=binary, lif=lif, seed=seed, batchnorm=batchnorm,
                        time_steps=time_steps)
        if len(input_shape) > 1:
            net.layers.insert(0, nn.Flatten())
        return net
    if name == "vgg":
        return build_vgg(input_shape, num_classes, binary=binary, lif=lif, seed=seed)
    if name == "cnn":
        if len(input_shape) == 2:  # (H, W) images: one channel
            input_shape = (1, *input_shape)
        if len(input_shape) != 3:
            raise ValueError(f"--model cnn needs image samples (channels, height, width), but these have shape "
                             f"{tuple(input_shape)} (flat features); use --model mlp, or a data set of images")
        return build_cnn(input_shape, num_classes, cnn, binary=binary, lif=lif, seed=seed, batchnorm=batchnorm,
                         time_steps=time_steps)
    raise ValueError(f"unknown model {name!r}; valid models: {', '.join(MODELS)}")
