"""The models that `model=NAME` picks (configs/model/NAME.yaml names the class).

Each takes what it needs from the dataset's metadata by interpolation, so any sensible
model x dataset pair works without hand edits. A model of your own needs no registration:
any importable `nn.Module` named by `_target_` in a YAML file works the same way.
"""

import math

import torch
from torch import nn


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


def _conv_bn(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class CNN(nn.Module):
    """Stages of two 3x3 conv-BN-ReLU layers and a 2x2 max-pool, then global average pooling.

    Global pooling is what lets one architecture take 8x8 digits and 32x32 CIFAR alike.
    """

    def __init__(self, in_channels, num_classes, channels=(32, 64), dropout=0.1):
        super().__init__()
        stages, c_in = [], in_channels
        for c in channels:
            stages += [_conv_bn(c_in, c), _conv_bn(c, c), nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*stages)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, num_classes)
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
