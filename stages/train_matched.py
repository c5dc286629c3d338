"""DVC stages ``train_matched_<arch>@<seed>``: ``baseline_matched``, the real images only, for as many optimizer steps
as ``augmented`` takes (its recipe's epochs over the merged set), so that augmented - baseline_matched compares at
equal cost (resumable)."""

from __future__ import annotations

from dreaming_data import paths
from dreaming_data.config import training_steps
from dreaming_data.stage import Part, Sizes, Stage, augmented_size, classifier_work

VARIANT = "baseline_matched"


def run(p, arch: str, seed: int) -> None:
    from dreaming_data.classifier_training import train_and_save
    from dreaming_data.io import load_images

    n_augmented = len(load_images(paths.train_set("augmented")))
    train_and_save(p, arch, VARIANT, seed, STAGE.label(arch=arch, seed=seed), load_images(paths.train_set("baseline")),
                   training_steps(p.classifier.recipe(arch), n_augmented))


def work(p, s: Sizes, arch: str, seed: int) -> list[Part]:
    return classifier_work(p, s, arch, s.train, training_steps(p.classifier.recipe(arch), augmented_size(p, s)))


def small(p, arch: str, seed: int) -> list:
    name = paths.classifier_name(arch, VARIANT, seed)
    return [paths.METRICS / "train" / f"{name}.json", paths.PLOTS / "classifier" / f"{name}.csv"]


STAGE = Stage(
    "train_matched", run,
    matrix=lambda p: [{"arch": a, "seed": s} for a in p.classifier.archs for s in p.classifier.seeds_of(a)],
    inputs=lambda p, arch, seed: [paths.train_set("baseline"), paths.train_set("augmented"), paths.prepared("val")],
    outputs=lambda p, arch, seed: [paths.classifier_model(paths.classifier_name(arch, VARIANT, seed))],
    small=small, work=work,
    priority=lambda p, arch, seed: (3, p.classifier.archs.index(arch), 2, seed),
    live=True, distributed=True, per_arch=True)

if __name__ == "__main__":
    from dreaming_data.launch import run_stage

    STAGE.main(run=run_stage)
