"""Pictures of image sets: labelled grids of uint8 images (the sample grids, the shared noise, previews)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from dreaming_data.diffusion import to_uint8
from dreaming_data.io import ImageSet
from dreaming_data.randomness import image_keys, initial_noise


def image_grid(rows: list[np.ndarray], row_names: list[str] | None, scale: int | None = None) -> Image.Image:
    """Tile uint8 images: rows[i] is [n, H, W, C]. Each row is labelled with its name on the left."""
    H, W, C = rows[0].shape[1:]
    scale = scale or max(1, 48 // H)
    cols = max(len(r) for r in rows)
    pad = 2
    label_w = 64 if row_names else 0
    tile_h, tile_w = H * scale + pad, W * scale + pad
    canvas = Image.new("RGB", (label_w + cols * tile_w + pad, len(rows) * tile_h + pad), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, row in enumerate(rows):
        y0 = pad + i * tile_h
        if row_names:
            draw.text((4, y0 + tile_h // 2 - 6), row_names[i], fill="black", font=font)
        for j, img in enumerate(row):
            tile = Image.fromarray(img[..., 0] if C == 1 else img).convert("RGB")
            tile = tile.resize((W * scale, H * scale), Image.Resampling.NEAREST)
            canvas.paste(tile, (label_w + pad + j * tile_w, y0))
    return canvas


def grid_labels(num_classes: int, columns: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(class, index within the class) of every grid cell, row by row: one row per class."""
    return torch.arange(num_classes).repeat_interleave(columns), torch.arange(columns).repeat(num_classes)


def class_rows(u8: np.ndarray, classes: tuple[str, ...], columns: int) -> Image.Image:
    """A grid of ``u8`` ([K * columns, H, W, C], class by class) with one labelled row per class."""
    return image_grid([u8[i * columns:(i + 1) * columns] for i in range(len(classes))], list(classes))


def noise_picture(image_shape: tuple[int, int, int], classes: tuple[str, ...], columns: int, seed: int) -> Image.Image:
    """The shared x_T of every grid, clipped to [-1, 1] for display, laid out like the grids."""
    y, index = grid_labels(len(classes), columns)
    u8 = to_uint8(initial_noise(image_keys(seed, y, index), image_shape).clamp(-1, 1)).numpy()
    return class_rows(u8, classes, columns)


def preview(images: ImageSet, columns: int) -> Image.Image:
    """The first ``columns`` images of each class, a row per class."""
    rows = [images.x[images.y == c][:columns] for c in range(len(images.classes))]
    return image_grid(rows, list(images.classes))
