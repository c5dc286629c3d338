"""DVC stage ``sample_grid@<schedule>-<steps>``: one row per class, ``sample.columns`` images each, drawn from the
shared initial noise with ``steps`` sampling steps (respaced when fewer than T)."""

from __future__ import annotations

from dreaming_data import paths
from dreaming_data.stage import Part, Stage


def picture(schedule: str, steps: int):
    return paths.PLOTS / "samples" / f"{schedule}-{steps}.png"


def run(p, schedule: str, steps: int) -> None:
    from dreaming_data import distributed as dd
    from dreaming_data.io import save_png
    from dreaming_data.sampling import load_sampler, sample_grid

    image, wall = sample_grid(load_sampler(p, schedule), steps, p.sample.columns, p.sample.seed, p.sample.batch_size)
    if dd.is_main():
        save_png(image, picture(schedule, steps))
    print(f"grid {schedule} x {steps} steps: {wall:.1f} s")


def work(p, s, schedule: str, steps: int) -> list[Part]:
    images = s.classes * p.sample.columns
    return [Part("sample", f"{p.diffusion.sampler}@{min(p.sample.batch_size, images)}", images * steps)]


STAGE = Stage(
    "sample_grid", run,
    matrix=lambda p: [{"schedule": s, "steps": n} for s in p.ddpm.schedules for n in p.sample.steps],
    inputs=lambda p, schedule, steps: [paths.ddpm_model(schedule)],
    small=lambda p, schedule, steps: [picture(schedule, steps)],
    work=work,
    priority=lambda p, schedule, steps: (5, 1, p.ddpm.schedules.index(schedule), p.sample.steps.index(steps)),
    distributed=True)

if __name__ == "__main__":
    from dreaming_data.launch import run_stage

    STAGE.main(run=run_stage)
