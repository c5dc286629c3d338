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
from dreaming_data.io import ImageSet, load_torch, save_torch
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


def build_classifier(arch: str, in_channels: int, num_classes: int, image_size: int, dropout: float) -> nn.Module:
    if arch == "simple_cnn":
        return SimpleCNN(in_channels, num_classes, image_size, dropout)
    if arch == "resnet18":
        from torchvision.models import resnet18

        net = resnet18(num_classes=num_classes)
        net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)  # CIFAR stem
        net.maxpool = nn.Identity()
        return net
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
    model.eval()
    out = []
    fmt = memory_format(device)
    for start in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[start:start + batch_size]).to(device)
        with autocast(device, runtime):
            logits = model(normalizer(xb, fmt))
        out.append(logits.float().softmax(1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def save_classifier(path, model: nn.Module, normalizer: Normalizer, classes: tuple[str, ...], arch: str, cfg: Recipe,
                    image_shape: tuple[int, ...]) -> None:
    save_torch(path, {"format": MODEL_FORMAT, "arch": arch, "dropout": cfg.dropout,
                      "model": model.state_dict(), "normalizer": asdict(normalizer),
                      "classes": list(classes), "image_shape": list(image_shape)})


def load_classifier(path, device: torch.device, images: ImageSet | None = None,
                    what: str = "these images") -> tuple[nn.Module, Normalizer, tuple[str, ...]]:
    """A saved classifier; with ``images``, a one-line error unless they have its class names and image shape."""
    state = load_torch(path, MODEL_FORMAT)
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
        raise UserError(f"{path}: a classifier file of another version or a damaged one ({type(exc).__name__}); "
                        f"remake it with `dvc repro train_classifier`") from None
    return model.to(device, memory_format=memory_format(device)).eval(), norm, tuple(state["classes"])


def load_judge(p: Params, device, images: ImageSet, what: str):
    """The judge (``paths.judge_model``), checked against ``images``: (model, normalizer, its file)."""
    path = paths.judge_model(p)
    model, norm, _ = load_classifier(path, device, images, what)
    return model, norm, path
