"""DVC stage ``train_ddpm@<schedule>``: the class-conditional DDPM of one noise schedule, trained on the real
training images (resumable: an interrupted run continues from its checkpoint)."""

from __future__ import annotations

from dreaming_data import paths
from dreaming_data.stage import Part, Stage


def run(p, schedule: str) -> None:
    from dreaming_data import distributed as dd
    from dreaming_data.checkpoints import ResumeDir
    from dreaming_data.ddpm import save_ddpm
    from dreaming_data.ddpm_training import train_ddpm, training_identity
    from dreaming_data.io import load_images, write_csv, write_json

    train_set = load_images(paths.train_set("baseline"))
    stage = STAGE.label(schedule=schedule)
    resume = ResumeDir(paths.resume_dir(stage), training_identity(p, schedule, train_set), stage)
    ema, r = train_ddpm(p, schedule, train_set, resume, live_stage=stage)
    if dd.is_main():
        save_ddpm(paths.ddpm_model(schedule), ema, p, schedule, train_set)
        write_csv([{"epoch": e, "loss": loss} for e, loss in enumerate(r.epoch_losses, start=1)],
                  paths.PLOTS / "ddpm" / f"loss-{schedule}.csv")
        write_json(paths.METRICS / f"ddpm-{schedule}.json", {
            "schedule": schedule,
            "final_loss": None if r.final_loss is None else round(r.final_loss, 6),
            "images_per_s": None if r.images_per_s is None else round(r.images_per_s, 2),
            "wall_s": round(r.wall_s, 2),
            "parameters": r.parameters,
            "steps": r.steps,
            "resumed_from_step": r.resumed_from,
        })
    resume.finish()
    speed = "" if r.images_per_s is None else f", {r.images_per_s:.0f} img/s"
    print(f"ddpm {schedule}: final epoch loss {r.final_loss:.4f}{speed}, {r.wall_s:.0f} s")


STAGE = Stage(
    "train_ddpm", run,
    matrix=lambda p: [{"schedule": s} for s in p.ddpm.schedules],
    inputs=lambda p, schedule: [paths.train_set("baseline")],
    outputs=lambda p, schedule: [paths.ddpm_model(schedule)],
    small=lambda p, schedule: [paths.METRICS / f"ddpm-{schedule}.json", paths.PLOTS / "ddpm" / f"loss-{schedule}.csv"],
    work=lambda p, s, schedule: [Part("ddpm_step", schedule, p.ddpm.epochs * max(1, s.train // p.ddpm.batch_size))],
    priority=lambda p, schedule: (1, schedule != p.generate.schedule, p.ddpm.schedules.index(schedule)),
    live=True, distributed=True)

if __name__ == "__main__":
    from dreaming_data.launch import run_stage

    STAGE.main(run=run_stage)
