"""One function per DVC stage: read the stage's inputs from their fixed paths, call the library, write outputs.

Each takes the parsed ``Params`` first, then the stage's matrix arguments. ``stages/*.py`` are their entry
points; ``dvc.yaml`` names the same paths.
"""

from __future__ import annotations

from dreaming_data import paths
from dreaming_data.config import Params


def download(p: Params) -> None:
    from dreaming_data.data import prepare_data

    m = prepare_data(p.data, paths.PREPARED, paths.METRICS / "data.json")
    print(f"prepared {m['source']}: {len(m['classes'])} classes, image {m['image_shape']}, "
          f"train {m['totals']['train']}, val {m['totals']['val']}, test {m['totals']['test']}")


def _check_schedule(p: Params, schedule: str) -> None:
    from dreaming_data.errors import UserError

    if schedule not in p.ddpm.schedules:
        raise UserError(f"schedule {schedule!r} is not in ddpm.schedules {list(p.ddpm.schedules)}")


def train_ddpm(p: Params, schedule: str) -> None:
    import pandas as pd

    from dreaming_data.ddpm import save_ddpm, train_ddpm as train
    from dreaming_data.io import load_images, write_json

    _check_schedule(p, schedule)
    train_set = load_images(paths.prepared("train"))
    ema, r = train(p, schedule, train_set, paths.ddpm_checkpoint(schedule))
    save_ddpm(paths.ddpm_dir(schedule) / "model.pt", ema, p, schedule, train_set)
    loss_csv = paths.PLOTS / "ddpm" / f"loss-{schedule}.csv"
    loss_csv.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"epoch": range(1, len(r.epoch_losses) + 1), "loss": r.epoch_losses})
    frame.to_csv(loss_csv, index=False)
    write_json(paths.METRICS / f"ddpm-{schedule}.json", {
        "schedule": schedule,
        "final_loss": round(r.final_loss, 6),
        "images_per_s": round(r.images_per_s, 2),
        "wall_s": round(r.wall_s, 2),
        "parameters": r.parameters,
        "steps": r.steps,
        "resumed_from_step": r.resumed_from,
    })
    print(f"ddpm {schedule}: final epoch loss {r.final_loss:.4f}, {r.images_per_s:.0f} img/s, {r.wall_s:.0f} s")


def _sampler(p: Params, schedule: str):
    from dreaming_data.ddpm import load_ddpm
    from dreaming_data.runtime import resolve_device, setup_backends
    from dreaming_data.sampling import Sampler

    device = resolve_device(p.runtime)
    setup_backends(device)
    return Sampler(load_ddpm(paths.ddpm_dir(schedule) / "model.pt", device), p.diffusion, p.runtime, device)


def sample_noise(p: Params) -> None:
    from dreaming_data.io import load_images
    from dreaming_data.sampling import noise_picture, save_png

    train_set = load_images(paths.prepared("val"))
    save_png(noise_picture(train_set.x.shape[1:], train_set.classes, p.sample.columns, p.sample.seed),
             paths.PLOTS / "samples" / "noise.png")


def sample_grid(p: Params, schedule: str, steps: int) -> None:
    from dreaming_data.errors import UserError
    from dreaming_data.sampling import sample_grid as grid, save_png

    _check_schedule(p, schedule)
    if steps not in p.sample.steps:
        raise UserError(f"steps {steps} is not in sample.steps {list(p.sample.steps)}")
    picture, wall = grid(_sampler(p, schedule), steps, p.sample.columns, p.sample.seed)
    save_png(picture, paths.PLOTS / "samples" / f"{schedule}-{steps}.png")
    print(f"grid {schedule} x {steps} steps: {wall:.1f} s")
