"""The models that `model=NAME` picks (configs/model/NAME.yaml names the class); torchvision's and timm's models with
pretrained weights in pretrained.py; saved weights fitted to a model whose output layer was resized in weights.py.

Each takes what it needs from the dataset's metadata by interpolation, so any sensible
model x dataset pair works without hand edits. A model of your own needs no registration:
any importable `nn.Module` named by `_target_` in a YAML file works the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from runner.io.errors import RunnerError


class MLP(nn.Module):
    """Flatten, then Linear-ReLU-Dropout blocks, then a linear head."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        hidden: Sequence[int] = (256, 128),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, num_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# 2-D for images (C, H, W), 1-D for signals (C, L): the same architecture in either
LAYERS = {
    2: (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d),
    1: (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d),
}


class CNN(nn.Module):
    """Stages of two 3-wide conv-BN-ReLU layers and a 2-wide max-pool, then global average pooling.

    Global pooling is what lets one architecture take 8x8 digits and 32x32 CIFAR alike; `dims=1`
    makes every layer 1-D, for signals of shape (C, L). configs/model/cnn.yaml sets `dims` from the
    dataset's input_shape.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        channels: Sequence[int] = (32, 64),
        dropout: float = 0.1,
        dims: int = 2,
    ) -> None:
        super().__init__()
        if dims not in LAYERS:
            raise RunnerError(
                f"model CNN takes images (C, H, W) or signals (C, L), so its dims must be 2 or 1, not {dims} "
                f"(the dataset's input_shape gives it). For samples without a channel dimension (features "
                f"of shape [N]), use model=mlp."
            )
        conv, norm, pool, global_pool = LAYERS[dims]
        stages: list[nn.Module] = []
        c_in = in_channels
        for c in channels:
            for a, b in ((c_in, c), (c, c)):
                stages.append(nn.Sequential(conv(a, b, 3, padding=1, bias=False), norm(b), nn.ReLU()))
            stages.append(pool(2))
            c_in = c
        self.features = nn.Sequential(*stages)
        self.head = nn.Sequential(global_pool(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class LeNet(nn.Module):
    """Exactly the `Net` of the PyTorch CIFAR-10 tutorial (for 3x32x32 input and 10 classes).

    `padding=2` pads 28x28 MNIST digits to the 32x32 that LeNet-5 was built for (LeCun et al. 1998).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, padding: int = 0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=padding)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def input_hint(self, input_shape: Sequence[int]) -> str:
        """The fix build.summarize names when images of `input_shape` do not fit: the padding that makes them 32x32."""
        height, width = input_shape[-2:]
        if height == width < 32 and (32 - height) % 2 == 0:
            return (
                f"LeNet needs 32x32 images: model.padding={(32 - height) // 2} pads {height}x{width} ones to that "
                f"(as experiment=mnist_lenet does for 28x28 MNIST)"
            )
        return "LeNet needs 32x32 images; model=cnn takes images of any size"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


def resnet18(in_channels: int = 3, num_classes: int = 10, cifar_stem: bool = False) -> nn.Module:
    """torchvision's ResNet-18 with random weights; the stem takes `in_channels` (e.g. 1 for MNIST).

    `cifar_stem` swaps the ImageNet stem (7x7 stride-2 conv, then a max-pool: 32x32 shrinks to 8x8
    before the first block) for a 3x3 stride-1 conv and no max-pool, as CIFAR recipes do (He et al.
    2016, section 4.2; kuangliu/pytorch-cifar).
    """
    from torchvision.models import resnet18 as tv_resnet18

    model = tv_resnet18(weights=None, num_classes=num_classes)
    if cifar_stem:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


class FastNet(nn.Module):
    """The network of airbench94 (Jordan 2024, arXiv:2404.00498) without its tricks: a 2x2 conv stem, three
    conv-pool-BN-GELU-conv-BN-GELU groups, a global max-pool and a bias-free head scaled by 1/9.

    Its BatchNorm is airbench's own: `bn_momentum` in airbench's convention (the weight of the running
    average, 0.6), i.e. torch's momentum 1 - 0.6 = 0.4; eps 1e-12; the scale (weight) frozen at one, only the
    shift (bias) trained (airbench94.py, class BatchNorm). airbench also initialises the stem by patch
    whitening and freezes it, initialises the convolutions as identity (dirac), trains the BatchNorm biases
    with a 64x learning rate, and evaluates with test-time flips and translations; those are left out here
    (docs/recipes.md says what that costs).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        widths: Sequence[int] = (64, 256, 256),
        stem_width: int = 24,
        bn_momentum: float = 0.6,
    ) -> None:
        super().__init__()
        layers, c_in = [nn.Conv2d(in_channels, stem_width, 2, bias=True), nn.GELU()], stem_width
        for width in widths:
            layers += [
                nn.Conv2d(c_in, width, 3, padding=1, bias=False),
                nn.MaxPool2d(2),
                airbench_batchnorm(width, bn_momentum),
                nn.GELU(),
                nn.Conv2d(width, width, 3, padding=1, bias=False),
                airbench_batchnorm(width, bn_momentum),
                nn.GELU(),
            ]
            c_in = width
        layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes, bias=False)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) / 9


def airbench_batchnorm(width: int, momentum: float) -> nn.BatchNorm2d:
    """airbench's BatchNorm2d: `momentum` is the running average's own weight (torch's is the new batch's),
    eps 1e-12, and a scale frozen at one."""
    norm = nn.BatchNorm2d(width, eps=1e-12, momentum=1 - momentum)
    norm.weight.requires_grad = False
    return norm
