"""DVC stage ``ablation_sample@<schedule>-<sampler>-<steps>``: one cell of the sample-quality ablation,
``ablation.per_class`` images of every class from that schedule's DDPM with that sampler and step count."""

from __future__ import annotations

from dreaming_data import paths
from dreaming_data.stage import Part, Stage


def cells(p) -> list[dict]:
    a = p.ablation
    return [{"schedule": s, "sampler": k, "steps": n} for s in a.schedules for k in a.samplers for n in a.steps]


def run(p, schedule: str, sampler: str, steps: int) -> None:
    from dreaming_data import distributed as dd
    from dreaming_data.io import save_images, write_json
    from dreaming_data.sampling import generate_for_stage

    a = p.ablation
    cell = paths.ablation_cell(schedule, sampler, steps)
    images, timing, resume = generate_for_stage(p, STAGE.label(schedule=schedule, sampler=sampler, steps=steps),
                                                schedule, a.per_class, steps, a.seed, sampler)
    if dd.is_main():
        save_images(paths.ABLATION / f"{cell}.npz", images)
        write_json(paths.METRICS / "ablation" / f"sampling-{cell}.json",
                   {"schedule": schedule, "sampler": sampler, "steps": steps, **timing})
    resume.finish()


def work(p, s, schedule: str, sampler: str, steps: int) -> list[Part]:
    images = s.classes * p.ablation.per_class
    return [Part("sample", f"{sampler}@{min(p.generate.batch_size, images)}", images * steps)]


STAGE = Stage(
    "ablation_sample", run, matrix=cells,
    inputs=lambda p, schedule, sampler, steps: [paths.ddpm_model(schedule)],
    outputs=lambda p, schedule, sampler, steps: [paths.ABLATION / f"{paths.ablation_cell(schedule, sampler, steps)}.npz"],
    small=lambda p, schedule, sampler, steps: [
        paths.METRICS / "ablation" / f"sampling-{paths.ablation_cell(schedule, sampler, steps)}.json"],
    work=work,
    priority=lambda p, schedule, sampler, steps: (6, 1, cells(p).index(
        {"schedule": schedule, "sampler": sampler, "steps": steps})),
    distributed=True)

if __name__ == "__main__":
    from dreaming_data.launch import run_stage

    STAGE.main(run=run_stage)
