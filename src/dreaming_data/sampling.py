"""Sampling from a trained DDPM: comparable grids, and resumable bulk generation of labelled images.

Every image is drawn from its own noise (``randomness.image_keys`` of seed, class and index within the class), so
batch sizes, chunk sizes and the order of work never change a byte of what is written.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm  # noqa: F401 (type of the progress bars)

from dreaming_data import distributed as dd, paths
from dreaming_data.checkpoints import ResumeDir
from dreaming_data.config import DiffusionConfig, Params, RuntimeConfig
from dreaming_data.ddpm import LoadedDDPM, load_ddpm
from dreaming_data.diffusion import respaced_timesteps, sample, to_uint8
from dreaming_data.errors import UserError
from dreaming_data.io import ImageSet, atomic_path
from dreaming_data.pictures import class_rows, grid_labels
from dreaming_data.randomness import fingerprint_file, image_keys, initial_noise, normal_noise
from dreaming_data.runtime import autocast, maybe_compile, memory_format, precision, progress_bar


BAR_FORMAT = "{l_bar}{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


class Sampler:
    """Batched, guided sampling with one model (``diffusion.sampler``, or ``sampler`` when given); bf16 where
    ``runtime.precision`` says so and the device has it, compiled on CUDA."""

    def __init__(self, ddpm: LoadedDDPM, diffusion: DiffusionConfig, runtime: RuntimeConfig, device: torch.device,
                 sampler: str | None = None):
        self.ddpm, self.runtime, self.device = ddpm, runtime, device
        self.guidance, self.variance = diffusion.guidance, diffusion.variance
        self.sampler, self.eta = sampler or diffusion.sampler, diffusion.ddim_eta
        if self.guidance > 0 and not ddpm.process["p_uncond"] > 0:
            raise UserError(f"diffusion.guidance: {self.guidance} needs a model trained with label dropout, but this "
                            f"one had diffusion.p_uncond 0 (set guidance to 0 or retrain with p_uncond > 0)")
        self.null_class = len(ddpm.classes)
        ddpm.model.to(memory_format=memory_format(device, runtime, "unet"))
        self.fwd = maybe_compile(ddpm.model, device, runtime)

    def identity(self) -> dict:
        """What, besides the model, seed, class and index, decides a sampled image (the precision by float rounding:
        chunks of a bf16 run never join an fp32 one)."""
        return {"guidance": self.guidance, "sampler": self.sampler, "precision": precision(self.device, self.runtime),
                **({"variance": self.variance} if self.sampler == "ancestral" else {}),
                **({"ddim_eta": self.eta} if self.sampler == "ddim" else {})}

    def model(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.runtime):
            return self.fwd(x, t, y)

    def __call__(self, y: torch.Tensor, keys: torch.Tensor, steps: int, bar: tqdm | None = None) -> torch.Tensor:
        """y: [B] int64 labels; keys: [B, 2] image keys; returns [B, H, W, C] uint8 on the CPU.

        x_T and the noise of every step come from each image's key alone (never from a shared generator).
        """
        H, W, C = self.ddpm.image_shape
        keys = keys.to(self.device)
        timesteps = respaced_timesteps(self.ddpm.schedule.timesteps, steps)
        per_step = len(y) / len(timesteps)  # the bar counts images, advanced a fraction at every step
        x = sample(self.model, self.ddpm.schedule, y.to(self.device), initial_noise(keys, self.ddpm.image_shape),
                   timesteps, self.variance, self.null_class, self.guidance,
                   noise=lambda t: normal_noise(keys, 1 + t, (C, H, W)),
                   progress=None if bar is None else lambda _: bar.update(per_step), sampler=self.sampler, eta=self.eta)
        if bar is not None:
            bar.n = round(bar.n)  # no float drift from the fractional steps
        if not bool(torch.isfinite(x).all()):  # would round to black pixels without a word
            raise UserError(f"sampling produced NaN or infinite values (guidance {self.guidance}, {self.sampler}): "
                            f"the model's predictions overflowed")
        return to_uint8(x).cpu()

    def images(self, y: torch.Tensor, index: torch.Tensor, seed: int, steps: int, batch_size: int,
               bar: tqdm | None = None) -> np.ndarray:
        """Images ``index`` of classes ``y`` under ``seed`` ([B] each), sampled ``batch_size`` at a time:
        [B, H, W, C] uint8, the same bytes whatever ``batch_size`` and number of processes (each samples its share;
        every rank gets all)."""
        mine = dd.share(len(y))
        y, keys = y[mine], image_keys(seed, y, index)[mine]
        out = [self(y[s:s + batch_size], keys[s:s + batch_size], steps, bar).numpy()
               for s in range(0, len(y), batch_size)]
        H, W, C = self.ddpm.image_shape
        return np.concatenate(dd.gather(np.concatenate(out) if out else np.zeros((0, H, W, C), dtype=np.uint8)))


def sample_grid(sampler: Sampler, steps: int, columns: int, seed: int, batch_size: int) -> tuple[Image.Image, float]:
    """One row per class in label order, ``columns`` samples each; cell (c, j) is image j of class c under
    ``seed``, so every grid of a model starts from the same x_T (``pictures.noise_picture``).

    Returns the picture and the sampling wall time in seconds.
    """
    classes = sampler.ddpm.classes
    y, index = grid_labels(len(classes), columns)
    t0 = time.perf_counter()
    u8 = sampler.images(y, index, seed, steps, batch_size)
    return class_rows(u8, classes, columns), time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------------------
# Bulk generation in resumable chunks


def chunk_name(c: int, start: int, n: int) -> str:
    return f"class{c:03d}-{start:07d}-{n}.npy"


def generate(sampler: Sampler, per_class: int, steps: int, seed: int, batch_size: int, chunk_size: int,
             resume: ResumeDir, label: str = "generate", live_stage: str | None = None,
             live_every: int = 0) -> tuple[ImageSet | None, dict]:
    """Generate images 0 .. ``per_class`` - 1 of every class, saved a chunk at a time in ``resume``'s folder.

    A chunk is ``chunk_size`` consecutive images of one class; an interrupted run of the same identity keeps its
    finished chunks and samples only the rest. ``batch_size`` images are sampled together (classes mix). The
    caller deletes the folder (``resume.finish()``) once the result is written. Returns the images (None on ranks
    other than 0) and timing.

    With several processes the chunks still to do are dealt out in turn; each rank writes its own chunk files, and
    rank 0 assembles them all once every rank is done. The bytes are the same for any number of processes.
    With ``live_stage``, DVCLive records the images done and the rate after every chunk (rank 0's share), its step
    the number of chunks done (a resumed run goes on from the chunks it found).
    """
    from dreaming_data.live import LiveLog

    classes = sampler.ddpm.classes
    H, W, C = sampler.ddpm.image_shape
    resume.open()
    chunks = [(c, start, min(chunk_size, per_class - start))
              for c in range(len(classes)) for start in range(0, per_class, chunk_size)]

    def finished(chunk) -> bool:
        path = resume.path(chunk_name(*chunk))
        try:
            a = np.load(path, mmap_mode="r") if path.is_file() else None
        except Exception:  # an unreadable chunk is sampled again
            return False
        return a is not None and a.dtype == np.uint8 and a.shape == (chunk[2], H, W, C)

    todo = dd.broadcast([ch for ch in chunks if not finished(ch)] if dd.is_main() else None)
    if len(todo) < len(chunks):
        print(f"{label}: resuming, {len(chunks) - len(todo)} of {len(chunks)} chunks already done")
    total = sum(n for _, _, n in todo)
    done_before = len(chunks) - len(todo)
    images_before = sum(n for _, _, n in chunks) - total
    live = LiveLog(live_stage, live_every if live_stage else 0, done_before, resume.path("live"))
    todo = todo[dd.rank()::dd.world_size()]
    y = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, _, n in todo] or [torch.zeros(0, dtype=torch.int64)])
    index = torch.cat([torch.arange(start, start + n) for _, start, n in todo] or [torch.zeros(0, dtype=torch.int64)])
    keys = image_keys(seed, y, index)
    pending: list[np.ndarray] = []  # sampled rows not yet saved, in the order of ``todo``
    waiting = list(todo)
    t0 = time.perf_counter()
    share = "" if dd.world_size() == 1 else f" (rank 0's share of {dd.world_size()})"
    with progress_bar(total=len(y), desc=label + share, unit="img", bar_format=BAR_FORMAT) as bar:
        for s in range(0, len(y), batch_size):
            pending.append(sampler(y[s:s + batch_size], keys[s:s + batch_size], steps, bar).numpy())
            rows = np.concatenate(pending)
            while waiting and len(rows) >= waiting[0][2]:  # the oldest chunk is complete: save it
                chunk = waiting.pop(0)
                if live.live is not None:  # logged and kept first: a resumed run cuts a row its chunks lack
                    saved = len(todo) - len(waiting)
                    images = sum(n for _, _, n in todo[:saved])
                    live.log(done_before + saved, {"images_done": images_before + images,
                                                   "images_per_s": images / max(time.perf_counter() - t0, 1e-9)})
                    live.keep()
                with atomic_path(resume.path(chunk_name(*chunk))) as tmp:
                    with open(tmp, "wb") as f:
                        np.save(f, rows[:chunk[2]])
                rows = rows[chunk[2]:]
            pending = [rows]
    live.close()
    dd.barrier()  # every rank's chunks are written
    wall = time.perf_counter() - t0
    timing = {"images": total, "wall_s": round(wall, 3),
              "images_per_s": round(total / wall, 2) if total and wall > 0 else None}
    if not dd.is_main():
        return None, timing
    xs = [np.load(resume.path(chunk_name(*ch))) for ch in chunks]
    ys = [np.full(n, c, dtype=np.int64) for c, _, n in chunks]
    images = ImageSet(np.concatenate(xs), np.concatenate(ys), classes, np.ones(sum(map(len, ys)), dtype=bool))
    return images, timing


def load_sampler(p: Params, schedule: str, sampler: str | None = None) -> Sampler:
    """The sampler of the trained model of ``schedule`` (``diffusion.sampler``, or ``sampler``), on the params'
    device."""
    from dreaming_data.launch import claim_device
    from dreaming_data.runtime import setup_backends

    device = claim_device(p.runtime)
    setup_backends(device)
    return Sampler(load_ddpm(paths.ddpm_model(schedule), device, p, schedule), p.diffusion, p.runtime, device, sampler)


def generate_for_stage(p: Params, stage: str, schedule: str, per_class: int, steps: int, seed: int,
                       sampler_name: str | None = None, live: bool = False) -> tuple[ImageSet | None, dict, ResumeDir]:
    """Images 0 .. per_class - 1 of every class from the model of ``schedule``, resumable in the stage's checkpoint
    folder: (images (None on ranks but 0), timing, the folder, for ``finish()`` once the outputs are written). With
    ``live``, its progress goes to DVCLive (``dvclive/<stage>``)."""
    model = paths.ddpm_model(schedule)
    sampler = load_sampler(p, schedule, sampler_name)
    identity = {"model": fingerprint_file(model), **sampler.identity(), "steps": steps,
                "seed": seed}  # chunk files are named by their images: sizes may change on resume
    resume = ResumeDir(paths.resume_dir(stage), identity, stage)
    images, timing = generate(sampler, per_class, steps, seed, p.generate.batch_size, p.generate.chunk_size, resume,
                              label=stage, live_stage=stage if live else None, live_every=p.runtime.live_every)
    return images, timing, resume


