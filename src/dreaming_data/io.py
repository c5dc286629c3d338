"""Small file helpers: atomic writes, the canonical ``.npz`` image format, JSON metrics."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dreaming_data.errors import UserError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: missing (run the stage that makes it first)") from None


@dataclass(frozen=True)
class ImageSet:
    """Labelled images. ``x``: [N, H, W, C] uint8; ``y``: [N] int64; ``classes``: names in label order.

    ``synthetic``: [N] bool, True for rows a diffusion model made (all False for real data).
    """

    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    synthetic: np.ndarray

    @classmethod
    def real(cls, x: np.ndarray, y: np.ndarray, classes: tuple[str, ...]) -> ImageSet:
        return cls(x, y.astype(np.int64), tuple(classes), np.zeros(len(y), dtype=bool))

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> ImageSet:
        return ImageSet(self.x[idx], self.y[idx], self.classes, self.synthetic[idx])

    def counts(self) -> dict[str, int]:
        counts = np.bincount(self.y, minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, counts)}


def save_images(path: str | Path, images: ImageSet) -> None:
    """Write ``images`` to ``path`` (``.npz``) atomically."""
    assert images.x.dtype == np.uint8 and images.x.ndim == 4, (images.x.dtype, images.x.shape)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, x=images.x, y=images.y, classes=np.array(images.classes), synthetic=images.synthetic)


def load_images(path: str | Path) -> ImageSet:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            synthetic = z["synthetic"] if "synthetic" in z.files else np.zeros(len(z["y"]), dtype=bool)
            return ImageSet(z["x"], z["y"].astype(np.int64), tuple(str(c) for c in z["classes"]), synthetic)
    except FileNotFoundError:
        raise UserError(f"{path}: missing (run the stage that makes it first)") from None
    except (KeyError, ValueError, OSError) as exc:
        raise UserError(f"{path}: not an image set written by dreaming-data ({exc})") from None
