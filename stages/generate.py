"""DVC stage ``generate``: the dreams, ``generate.per_class`` labelled images of every class from the DDPM of
``generate.schedule`` (resumable chunk by chunk; every image a function of its own key, whatever the batch)."""

from __future__ import annotations

from dreaming_data import paths
from dreaming_data.stage import Part, Stage

SYNTHETIC = paths.GENERATED / "synthetic.npz"
PREVIEW = paths.PLOTS / "samples" / "generated-preview.png"


def run(p) -> None:
    from dreaming_data import distributed as dd
    from dreaming_data.io import save_images, save_png, write_json
    from dreaming_data.pictures import preview
    from dreaming_data.sampling import generate_for_stage

    g = p.generate
    images, timing, resume = generate_for_stage(p, "generate", g.schedule, g.per_class, g.steps, g.seed, live=True)
    if dd.is_main():
        save_images(SYNTHETIC, images)
        save_png(preview(images, p.sample.columns), PREVIEW)
        write_json(paths.METRICS / "generate.json", {"schedule": g.schedule, "sampler": p.diffusion.sampler,
                                                     "steps": g.steps, "per_class": g.per_class,
                                                     "total": len(images), **timing})
    resume.finish()
    print(f"generated {0 if images is None else len(images)} images ({g.schedule}, {p.diffusion.sampler}, {g.steps} steps)")


def work(p, s) -> list[Part]:
    g, images = p.generate, s.classes * p.generate.per_class
    return [Part("sample", f"{p.diffusion.sampler}@{min(g.batch_size, images)}", images * g.steps)]


STAGE = Stage("generate", run,
              inputs=lambda p: [paths.ddpm_model(p.generate.schedule)],
              outputs=lambda p: [SYNTHETIC],
              small=lambda p: [paths.METRICS / "generate.json", PREVIEW],
              work=work,
              priority=lambda p: (2,),
              live=True, distributed=True)

if __name__ == "__main__":
    from dreaming_data.launch import run_stage

    STAGE.main(run=run_stage)
