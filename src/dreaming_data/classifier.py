"""Image classifiers (a small CNN like the report's, and ResNet-18 with a CIFAR stem): the networks, their input
normalisation, batched prediction, and the model files."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn

from dreaming_data import paths
from dreaming_data.config import Params, Recipe, RuntimeConfig
from dreaming_data.errors import UserError
from dreaming_data.io import ImageSet, check_finite, load_torch, save_torch
from dreaming_data.runtime import autocast, memory_format

MODEL_FORMAT = "dreaming-data classifier"


class SimpleCNN(nn.Module):
    """Two conv-pool blocks and a dense head: the scale of the reference report's network (~54% on CIFAR-10)."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int, dropout: float):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * (image_size // 4) ** 2, 256), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a residual connection (He et al. 2016, Fig. 2)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:  # projection shortcut (option B)
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18(nn.Module):
    """ResNet-18 (He et al. 2016) with the CIFAR stem: a 3x3 stride-1 first convolution and no max-pool. Module names,
    shapes and initialisation are torchvision's ``resnet18`` with that stem (a test loads one into the other and
    compares outputs); written here so that a classifier stage does not import torchvision (1.9 s of start-up)."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
        for i, (c_in, c_out, stride) in enumerate(widths, start=1):
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))  # [B, 64, H, W]
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # [B, 512, H / 8, W / 8]
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build_classifier(arch: str, in_channels: int, num_classes: int, image_size: int, dropout: float) -> nn.Module:
    if arch == "simple_cnn":
        return SimpleCNN(in_channels, num_classes, image_size, dropout)
    if arch == "resnet18":
        return ResNet18(in_channels, num_classes)
    raise UserError(f"unknown classifier architecture {arch!r} (expected simple_cnn or resnet18)")


@dataclass(frozen=True)
class Normalizer:
    mean: tuple[float, ...]  # per channel, in [0, 1] units
    std: tuple[float, ...]

    @classmethod
    def fit(cls, x: np.ndarray) -> Normalizer:
        f = x.reshape(-1, x.shape[-1]).astype(np.float64) / 255
        return cls(tuple(f.mean(0).tolist()), tuple(np.maximum(f.std(0), 1e-3).tolist()))

    def __call__(self, x: torch.Tensor, fmt: torch.memory_format) -> torch.Tensor:
        """[B, H, W, C] uint8 -> [B, C, H, W] float32, standardised."""
        mean = torch.tensor(self.mean, device=x.device)
        std = torch.tensor(self.std, device=x.device)
        return ((x.float() / 255 - mean) / std).permute(0, 3, 1, 2).contiguous(memory_format=fmt)


@torch.no_grad()
def predict(model: nn.Module, normalizer: Normalizer, x: np.ndarray, device: torch.device, runtime: RuntimeConfig,
            batch_size: int = 1000) -> np.ndarray:
    """Class probabilities of x: [N, H, W, C] uint8 -> [N, K] float32 (a numpy array)."""
    fmt = memory_format(device, runtime, "classifier")
    model.eval().to(memory_format=fmt)
    out = []
    for start in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[start:start + batch_size]).to(device)
        with autocast(device, runtime):
            logits = model(normalizer(xb, fmt))
        out.append(logits.float().softmax(1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def save_classifier(path, model: nn.Module, normalizer: Normalizer, classes: tuple[str, ...], arch: str, cfg: Recipe,
                    image_shape: tuple[int, ...]) -> None:
    check_finite(model.state_dict(), f"{path}: not written")
    save_torch(path, {"format": MODEL_FORMAT, "arch": arch, "dropout": cfg.dropout,
                      "model": model.state_dict(), "normalizer": asdict(normalizer),
                      "classes": list(classes), "image_shape": list(image_shape)})


def load_classifier(path, device: torch.device, images: ImageSet | None = None, what: str = "these images",
                    arch: str | None = None) -> tuple[nn.Module, Normalizer, tuple[str, ...]]:
    """A saved classifier; with ``images``, a one-line error unless they have its class names and image shape; with
    ``arch``, unless it is one."""
    state = load_torch(path, MODEL_FORMAT)
    if arch is not None and isinstance(state, dict) and state.get("arch") not in (None, arch):
        raise UserError(f"{path}: a {state['arch']} model, loaded as a {arch} one (retrain it: `dvc repro`)")
    if images is not None and isinstance(state, dict) and "classes" in state and "image_shape" in state:
        if tuple(state["classes"]) != images.classes:
            raise UserError(f"{path}: classifies {list(state['classes'])}, but {what} are of classes "
                            f"{list(images.classes)} (retrain it: `dvc repro`)")
        if tuple(state["image_shape"]) != tuple(images.x.shape[1:]):
            raise UserError(f"{path}: takes images of shape {list(state['image_shape'])}, but {what} are "
                            f"{list(images.x.shape[1:])} (retrain it: `dvc repro`)")
    try:
        H, W, C = state["image_shape"]
        model = build_classifier(state["arch"], C, len(state["classes"]), H, state["dropout"])
        model.load_state_dict(state["model"])
        norm = Normalizer(tuple(state["normalizer"]["mean"]), tuple(state["normalizer"]["std"]))
    except (KeyError, TypeError, ValueError, RuntimeError, UserError) as exc:
        from dreaming_data.paths import remake

        raise UserError(f"{path}: a classifier file of another version or a damaged one ({type(exc).__name__}); "
                        f"remake it: {remake(path) or 'train it again'}") from None
    check_finite(state["model"], str(path))
    return model.to(device).eval(), norm, tuple(state["classes"])  # its layout: predict's


def load_judge(p: Params, device, images: ImageSet, what: str):
    """The judge (``paths.judge_model``), checked against ``images``: (model, normalizer, its file)."""
    path = paths.judge_model(p)
    model, norm, _ = load_classifier(path, device, images, what)
    return model, norm, path
