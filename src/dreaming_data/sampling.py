"""Sampling from a trained DDPM: comparable grids, and resumable bulk generation of labelled images."""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from tqdm.auto import tqdm  # noqa: F401 (type of the progress bars)

from dreaming_data.config import DiffusionConfig, RuntimeConfig
from dreaming_data.ddpm import LoadedDDPM, fingerprint_array, seed_for
from dreaming_data.diffusion import respaced_timesteps, sample, to_uint8
from dreaming_data.io import ImageSet, atomic_path, save_images
from dreaming_data.runtime import autocast, maybe_compile, progress_bar


BAR_FORMAT = "{l_bar}{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


def initial_noise(n: int, image_shape: tuple[int, int, int], seed: int) -> torch.Tensor:
    """x_T: [n, C, H, W] standard normal drawn on the CPU from ``seed``, identical on every device."""
    H, W, C = image_shape
    return torch.randn((n, C, H, W), generator=torch.Generator().manual_seed(seed))


class Sampler:
    """Batched, guided ancestral sampling with one model; compiled and bf16 on CUDA."""

    def __init__(self, ddpm: LoadedDDPM, diffusion: DiffusionConfig, runtime: RuntimeConfig, device: torch.device):
        self.ddpm, self.diffusion, self.runtime, self.device = ddpm, diffusion, runtime, device
        self.null_class = len(ddpm.classes)
        self.fwd = maybe_compile(ddpm.model, device, runtime)

    def model(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.runtime):
            return self.fwd(x, t, y)

    def __call__(self, y: torch.Tensor, x_T: torch.Tensor, steps: int, seed: int | list[tuple[int, int]],
                 bar: tqdm | None = None) -> torch.Tensor:
        """y: [B] int64; x_T: [B, C, H, W]; returns [B, H, W, C] uint8 on the CPU.

        ``seed`` seeds the sampling noise of the whole batch, or is a list of (seed, rows) giving consecutive
        groups of rows their own noise streams, so an image does not depend on what else shares its batch.
        """
        timesteps = respaced_timesteps(self.ddpm.schedule.timesteps, steps)
        new = lambda s: torch.Generator(device=self.device).manual_seed(s)  # noqa: E731
        gen = new(seed) if isinstance(seed, int) else [(new(s), n) for s, n in seed]
        per_step = len(y) / len(timesteps)  # the bar counts images, advanced a fraction at every step
        x = sample(self.model, self.ddpm.schedule, y.to(self.device), x_T.to(self.device), timesteps,
                   self.diffusion.variance, self.null_class, self.diffusion.guidance, gen,
                   progress=None if bar is None else lambda _: bar.update(per_step))
        if bar is not None:
            bar.n = round(bar.n)  # no float drift from the fractional steps
        return to_uint8(x).cpu()


# ---------------------------------------------------------------------------------------------------------
# Pictures


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


def save_png(image: Image.Image, path: Path) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def noise_picture(image_shape: tuple[int, int, int], classes: tuple[str, ...], columns: int, seed: int) -> Image.Image:
    """The shared x_T of every grid, clipped to [-1, 1] for display, laid out like the grids."""
    x = initial_noise(len(classes) * columns, image_shape, seed)
    u8 = to_uint8(x.clamp(-1, 1)).numpy()
    return image_grid([u8[i * columns:(i + 1) * columns] for i in range(len(classes))], list(classes))


def sample_grid(sampler: Sampler, steps: int, columns: int, seed: int) -> tuple[Image.Image, float]:
    """One row per class in label order, ``columns`` samples each, all from the fixed x_T of ``seed``.

    Returns the picture and the sampling wall time in seconds.
    """
    classes = sampler.ddpm.classes
    K = len(classes)
    y = torch.arange(K).repeat_interleave(columns)
    x_T = initial_noise(K * columns, sampler.ddpm.image_shape, seed)
    t0 = time.perf_counter()
    u8 = sampler(y, x_T, steps, seed).numpy()
    wall = time.perf_counter() - t0
    return image_grid([u8[i * columns:(i + 1) * columns] for i in range(K)], list(classes)), wall


# ---------------------------------------------------------------------------------------------------------
# Bulk generation in resumable chunks


@dataclass(frozen=True)
class GenerationPlan:
    per_class: int
    steps: int
    seed: int
    batch_size: int
    chunk_size: int

    def chunks(self, num_classes: int) -> list[tuple[int, int, int]]:
        """(class, chunk index, images) for every chunk, class-major."""
        n_chunks = math.ceil(self.per_class / self.chunk_size)
        return [(c, j, min(self.chunk_size, self.per_class - j * self.chunk_size))
                for c in range(num_classes) for j in range(n_chunks)]


@dataclass(frozen=True)
class Piece:
    """Images ``start:start + n`` of class ``c``'s chunk ``j``, with their own sampling-noise seed."""

    c: int
    j: int
    start: int
    n: int
    seed: int


def chunk_pieces(plan: GenerationPlan, c: int, j: int, n: int) -> list[Piece]:
    return [Piece(c, j, start, min(plan.batch_size, n - start), seed_for(plan.seed, c, j, 1 + b))
            for b, start in enumerate(range(0, n, plan.batch_size))]


def pack(pieces: list[Piece], batch_size: int) -> list[list[Piece]]:
    """Consecutive pieces grouped into batches of at most ``batch_size`` images (classes mix in a batch)."""
    batches, current, size = [], [], 0
    for piece in pieces:
        if current and size + piece.n > batch_size:
            batches.append(current)
            current, size = [], 0
        current.append(piece)
        size += piece.n
    return batches + ([current] if current else [])


def generate(sampler: Sampler, plan: GenerationPlan, chunk_dir: Path, identity: dict, label: str = "generate") -> tuple[ImageSet, dict]:
    """Generate ``plan.per_class`` images of every class, one chunk file at a time in ``chunk_dir``.

    Finished chunks whose identity matches are kept and skipped, so an interrupted run resumes; a changed
    identity (model, guidance, steps, ...) clears the folder. Returns the images and timing figures.
    """
    classes = sampler.ddpm.classes
    manifest = chunk_dir / "identity.json"
    if chunk_dir.exists():
        old = json.loads(manifest.read_text()) if manifest.exists() else None
        if old != identity:
            print(f"{label}: {chunk_dir} holds chunks of another configuration; starting fresh")
            shutil.rmtree(chunk_dir)
    chunk_dir.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(identity, indent=1))
    chunks = plan.chunks(len(classes))
    path = lambda c, j: chunk_dir / f"class{c:03d}-chunk{j:04d}.npy"  # noqa: E731
    todo = [(c, j, n) for c, j, n in chunks if not path(c, j).exists()]
    total = sum(n for *_, n in todo)
    if len(todo) < len(chunks):
        print(f"{label}: resuming, {len(chunks) - len(todo)} of {len(chunks)} chunks already done")
    sizes = {(c, j): n for c, j, n in todo}
    x_T: dict[tuple[int, int], torch.Tensor] = {}  # initial noise of the chunks in flight
    done: dict[tuple[int, int], list[np.ndarray]] = {}
    t0 = time.perf_counter()
    with progress_bar(total=total, desc=label, unit="img", bar_format=BAR_FORMAT) as bar:
        for batch in pack([pc for c, j, n in todo for pc in chunk_pieces(plan, c, j, n)], plan.batch_size):
            for pc in batch:
                if (pc.c, pc.j) not in x_T:
                    x_T[pc.c, pc.j] = initial_noise(sizes[pc.c, pc.j], sampler.ddpm.image_shape,
                                                    seed_for(plan.seed, pc.c, pc.j, 0))
            xb = torch.cat([x_T[pc.c, pc.j][pc.start:pc.start + pc.n] for pc in batch])
            y = torch.cat([torch.full((pc.n,), pc.c, dtype=torch.int64) for pc in batch])
            out = sampler(y, xb, plan.steps, [(pc.seed, pc.n) for pc in batch], bar).numpy()
            for pc, images in zip(batch, np.split(out, np.cumsum([pc.n for pc in batch])[:-1])):
                key = (pc.c, pc.j)
                done.setdefault(key, []).append(images)
                if sum(map(len, done[key])) == sizes[key]:  # the chunk is complete: save it
                    with atomic_path(path(*key)) as tmp:
                        with open(tmp, "wb") as f:
                            np.save(f, np.concatenate(done.pop(key)))
                    del x_T[key]
    wall = time.perf_counter() - t0
    xs = [np.load(path(c, j)) for c, j, _ in chunks]
    ys = [np.full(n, c, dtype=np.int64) for c, _, n in chunks]
    images = ImageSet(np.concatenate(xs), np.concatenate(ys), classes, np.ones(sum(map(len, ys)), dtype=bool))
    timing = {"images": total, "wall_s": round(wall, 3), "images_per_s": round(total / wall, 2) if total and wall else None}
    return images, timing


def preview(images: ImageSet, columns: int) -> Image.Image:
    rows = [images.x[images.y == c][:columns] for c in range(len(images.classes))]
    return image_grid(rows, list(images.classes))


def model_identity(model_path: Path) -> str:
    return fingerprint_array(np.frombuffer(model_path.read_bytes(), dtype=np.uint8))


__all__ = ["Sampler", "sample_grid", "noise_picture", "generate", "GenerationPlan", "preview", "save_png",
           "save_images", "model_identity"]
