"""Models with reparameterized normalization (docs/training.md#normalization) and their accelsim manifest description.

`cnn-small` (Fashion-MNIST, 1x28x28):
    conv(1->16, 3x3, pad 1, no bias) + GN(8 groups, reparam) + ReLU + maxpool 2
    conv(16->32, 3x3, pad 1, no bias) + GN(16 groups, reparam) + ReLU + maxpool 2
    flatten + linear(1568->64) + ReLU + linear(64->10)
105,914 parameters: 847,312 bits at 8 bit, fitting the paper's 128 KiB weight SRAM (32 arrays of 512x64 bits).

`mobilenet-small` (depthwise-separable, MobileNet-style, ReLU6; docs/training.md#architectures):
    conv(1->16, 3x3, pad 1) + GN + ReLU6
    4 blocks dw(3x3, groups = C, stride s) + GN + ReLU6 + pw(1x1) + GN + ReLU6, (C_in -> C_out, s):
    (16->32, 2), (32->32, 1), (32->64, 2), (64->64, 1)
    global average pool + linear(64->10)
10,500 parameters, 0.84 M MACs per image (the CNN: 1.1 M).

`resnet-small` (residual, ResNet-style basic blocks; docs/training.md#architectures):
    conv(1->16, 3x3, pad 1) + GN + ReLU + maxpool 2                      (16 x 14 x 14)
    block(16->16, stride 1): conv3x3 + GN + ReLU + conv3x3 + GN, + x, ReLU
    block(16->32, stride 2): the same with a strided first conv, shortcut conv1x1(stride 2) + GN   (32 x 7 x 7)
    global average pool + linear(32->10)
19,900 parameters, 1.7 M MACs per image.

Both: convolutions without bias (a GN follows each), reparameterized GroupNorm with the CNN's group rule, He init.
They are shipped through ONNX and `accelsim import` (accelsim_train.onnx_export), so they have no manifest_layers.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

ARCHS = ("cnn-small", "mobilenet-small", "resnet-small")


def gn_groups(channels: int) -> int:
    """Groups = the first of {32, 24, 16, 8}, each capped at C/2, that divides C (docs/training.md#normalization)."""
    for g in (32, 24, 16, 8):
        g = min(g, max(channels // 2, 1))
        if channels % g == 0:
            return g
    return 1


class ReparamGroupNorm(nn.Module):
    """GroupNorm whose scale is 1 + alpha', alpha' and bias initialised to 0, so clipped alpha' can still be the identity."""

    def __init__(self, groups: int, channels: int, eps: float = 1e-5):
        super().__init__()
        self.groups, self.channels, self.eps = groups, channels, eps
        self.weight = nn.Parameter(torch.zeros(channels))  # alpha'
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return F.group_norm(x, self.groups, 1.0 + self.weight, self.bias, self.eps)


class ReparamBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d with scale 1 + alpha' (alpha' and bias initialised to 0). Running stats stay float buffers."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__(channels, eps=eps)
        nn.init.zeros_(self.weight)

    def forward(self, x):
        if self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, 1.0 + self.weight, self.bias, True,
                                self.momentum, self.eps)
        return F.batch_norm(x, self.running_mean, self.running_var, 1.0 + self.weight, self.bias, False, 0.0,
                            self.eps)


class CnnSmall(nn.Module):
    def __init__(self, norm: str = "gn", num_classes: int = 10):
        super().__init__()
        if norm not in ("gn", "bn"):
            raise ValueError(f"--norm: '{norm}' is not one of gn, bn")
        self.norm = norm
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.norm1 = ReparamGroupNorm(gn_groups(16), 16) if norm == "gn" else ReparamBatchNorm(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.norm2 = ReparamGroupNorm(gn_groups(32), 32) if norm == "gn" else ReparamBatchNorm(32)
        self.fc1 = nn.Linear(32 * 7 * 7, 64)
        self.fc2 = nn.Linear(64, num_classes)
        for m in self.modules():  # He init (docs/training.md#randbet)
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # Called at every map the int8 datapath stores in the activation SRAM (accelsim_train.actquant, `--p-act`);
    # None (the default): the float network, unchanged.
    act_hook = None

    def forward(self, x):
        h = self.act_hook
        if h is None:
            x = F.max_pool2d(F.relu(self.norm1(self.conv1(x))), 2)
            x = F.max_pool2d(F.relu(self.norm2(self.conv2(x))), 2)
            x = torch.flatten(x, 1)
            return self.fc2(F.relu(self.fc1(x)))
        x = h(0, x)  # the quantized image
        x = h(2, F.max_pool2d(h(1, F.relu(self.norm1(self.conv1(x)))), 2))
        x = h(4, torch.flatten(F.max_pool2d(h(3, F.relu(self.norm2(self.conv2(x)))), 2), 1))
        return self.fc2(h(5, F.relu(self.fc1(x))))

    def manifest_layers(self) -> list[dict]:
        """Layers in execution order for docs/model-format.md; parameter order = model.parameters() order."""
        def norm(name, mod):
            if isinstance(mod, ReparamGroupNorm):
                return {"name": name, "type": "groupnorm", "groups": mod.groups, "channels": mod.channels,
                        "eps": mod.eps, "reparameterized": True, "weight": f"{name}.weight", "bias": f"{name}.bias"}
            return {"name": name, "type": "batchnorm", "channels": mod.num_features, "eps": mod.eps,
                    "reparameterized": True, "weight": f"{name}.weight", "bias": f"{name}.bias",
                    "running_mean": f"{name}.running_mean", "running_var": f"{name}.running_var"}

        def conv(name, mod):
            d = {"name": name, "type": "conv2d", "in_channels": mod.in_channels, "out_channels": mod.out_channels,
                 "kernel": list(mod.kernel_size), "stride": list(mod.stride), "padding": list(mod.padding),
                 "weight": f"{name}.weight"}
            if mod.bias is not None:
                d["bias"] = f"{name}.bias"
            return d

        def lin(name, mod):
            return {"name": name, "type": "linear", "in_features": mod.in_features, "out_features": mod.out_features,
                    "weight": f"{name}.weight", "bias": f"{name}.bias"}

        return [
            conv("conv1", self.conv1), norm("norm1", self.norm1), {"name": "relu1", "type": "relu"},
            {"name": "pool1", "type": "maxpool2d", "kernel": [2, 2], "stride": [2, 2]},
            conv("conv2", self.conv2), norm("norm2", self.norm2), {"name": "relu2", "type": "relu"},
            {"name": "pool2", "type": "maxpool2d", "kernel": [2, 2], "stride": [2, 2]},
            {"name": "flatten", "type": "flatten"},
            lin("fc1", self.fc1), {"name": "relu3", "type": "relu"}, lin("fc2", self.fc2),
        ]


def _norm(norm: str, channels: int) -> nn.Module:
    if norm not in ("gn", "bn"):
        raise ValueError(f"--norm: '{norm}' is not one of gn, bn")
    return ReparamGroupNorm(gn_groups(channels), channels) if norm == "gn" else ReparamBatchNorm(channels)


def _he_init(model: nn.Module) -> None:
    for m in model.modules():  # He init (docs/training.md#randbet)
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class DwSepBlock(nn.Module):
    """Depthwise 3x3 (groups = C_in, stride s) + norm + ReLU6, pointwise 1x1 (C_in -> C_out) + norm + ReLU6."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str):
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False)
        self.dw_norm = _norm(norm, cin)
        self.pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.pw_norm = _norm(norm, cout)

    def forward(self, x):
        x = F.relu6(self.dw_norm(self.dw(x)))
        return F.relu6(self.pw_norm(self.pw(x)))


class MobileNetSmall(nn.Module):
    BLOCKS = ((16, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1))

    def __init__(self, norm: str = "gn", num_classes: int = 10):
        super().__init__()
        self.norm = norm
        self.stem = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.stem_norm = _norm(norm, 16)
        self.blocks = nn.Sequential(*(DwSepBlock(a, b, s, norm) for a, b, s in self.BLOCKS))
        self.fc = nn.Linear(self.BLOCKS[-1][1], num_classes)
        _he_init(self)

    def forward(self, x):
        x = self.blocks(F.relu6(self.stem_norm(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class BasicBlock(nn.Module):
    """ResNet basic block: conv3x3(stride s) + norm + ReLU + conv3x3 + norm, plus the shortcut (identity, or
    conv1x1(stride s) + norm when the shape changes), then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = _norm(norm, cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), _norm(norm, cout))

    def forward(self, x):
        h = self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x)))))
        return F.relu(h + (x if self.short is None else self.short(x)))


class ResNetSmall(nn.Module):
    def __init__(self, norm: str = "gn", num_classes: int = 10):
        super().__init__()
        self.norm = norm
        self.stem = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.stem_norm = _norm(norm, 16)
        self.block1 = BasicBlock(16, 16, 1, norm)
        self.block2 = BasicBlock(16, 32, 2, norm)
        self.fc = nn.Linear(32, num_classes)
        _he_init(self)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.stem_norm(self.stem(x))), 2)
        x = self.block2(self.block1(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def build(arch: str, norm: str = "gn") -> nn.Module:
    if arch == "cnn-small":
        return CnnSmall(norm)
    if arch == "mobilenet-small":
        return MobileNetSmall(norm)
    if arch == "resnet-small":
        return ResNetSmall(norm)
    raise ValueError(f"--arch: '{arch}' is not one of {', '.join(ARCHS)}")
