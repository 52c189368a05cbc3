"""The models that `model=NAME` picks (configs/model/NAME.yaml names the class).

Each takes what it needs from the dataset's metadata by interpolation, so any sensible
model x dataset pair works without hand edits. A model of your own needs no registration:
any importable `nn.Module` named by `_target_` in a YAML file works the same way.
"""

import math

import torch
from torch import nn

from runner.errors import RunnerError


class MLP(nn.Module):
    """Flatten, then Linear-ReLU-Dropout blocks, then a linear head."""

    def __init__(self, input_shape, num_outputs, hidden=(256, 128), dropout=0.1):
        super().__init__()
        layers, width = [nn.Flatten()], math.prod(input_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, num_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


# 2-D for images (C, H, W), 1-D for signals (C, L): the same architecture in either
LAYERS = {2: (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d),
          1: (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d)}


class CNN(nn.Module):
    """Stages of two 3-wide conv-BN-ReLU layers and a 2-wide max-pool, then global average pooling.

    Global pooling is what lets one architecture take 8x8 digits and 32x32 CIFAR alike; `dims=1`
    makes every layer 1-D, for signals of shape (C, L). configs/model/cnn.yaml sets `dims` from the
    dataset's input_shape.
    """

    def __init__(self, in_channels, num_classes, channels=(32, 64), dropout=0.1, dims=2):
        super().__init__()
        if dims not in LAYERS:
            raise RunnerError(f"model CNN takes images (C, H, W) or signals (C, L), so its dims must be 2 or 1, not {dims} "
                              f"(the dataset's input_shape gives it). For samples without a channel dimension (features "
                              f"of shape [N]), use model=mlp.")
        conv, norm, pool, global_pool = LAYERS[dims]
        stages, c_in = [], in_channels
        for c in channels:
            for a, b in ((c_in, c), (c, c)):
                stages.append(nn.Sequential(conv(a, b, 3, padding=1, bias=False), norm(b), nn.ReLU()))
            stages.append(pool(2))
            c_in = c
        self.features = nn.Sequential(*stages)
        self.head = nn.Sequential(
            global_pool(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, num_classes)
        )

    def forward(self, x):
        return self.head(self.features(x))


class LeNet(nn.Module):
    """Exactly the `Net` of the PyTorch CIFAR-10 tutorial (for 3x32x32 input and 10 classes)."""

    def __init__(self, in_channels=3, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


def resnet18(in_channels=3, num_classes=10):
    """torchvision's ResNet-18 with random weights; the stem takes `in_channels` (e.g. 1 for MNIST)."""
    from torchvision.models import resnet18 as tv_resnet18

    model = tv_resnet18(weights=None, num_classes=num_classes)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model
