"""DVC stages ``train_classifier_<arch>@<variant>-<seed>`` (a group per architecture, each with its own seeds):
``baseline`` (the real images) or ``augmented`` (real and dreamed), the recipe's epochs over the variant's own
training set (resumable)."""

from __future__ import annotations

from dreaming_data import paths
from dreaming_data.config import training_steps
from dreaming_data.stage import Part, Sizes, Stage, augmented_size, classifier_work

VARIANTS = ("baseline", "augmented")  # baseline_matched is train_matched's


def run(p, arch: str, variant: str, seed: int) -> None:
    from dreaming_data.classifier_training import train_and_save
    from dreaming_data.io import load_images

    train_set = load_images(paths.train_set(variant))
    train_and_save(p, arch, variant, seed, STAGE.label(arch=arch, variant=variant, seed=seed), train_set,
                   training_steps(p.classifier.recipe(arch), len(train_set)))


def work(p, s: Sizes, arch: str, variant: str, seed: int) -> list[Part]:
    n = s.train if variant == "baseline" else augmented_size(p, s)
    return classifier_work(p, s, arch, n, training_steps(p.classifier.recipe(arch), n))


def outputs(p, arch: str, variant: str, seed: int) -> list:
    return [paths.classifier_model(paths.classifier_name(arch, variant, seed))]


def small(p, arch: str, variant: str, seed: int) -> list:
    name = paths.classifier_name(arch, variant, seed)
    return [paths.METRICS / "train" / f"{name}.json", paths.PLOTS / "classifier" / f"{name}.csv"]


STAGE = Stage(
    "train_classifier", run,
    matrix=lambda p: [{"arch": a, "variant": v, "seed": s} for a in p.classifier.archs for v in VARIANTS
                      for s in p.classifier.seeds_of(a)],
    inputs=lambda p, arch, variant, seed: [paths.train_set(variant), paths.prepared("val")],
    outputs=outputs, small=small, work=work,
    priority=lambda p, arch, variant, seed: (3, p.classifier.archs.index(arch), VARIANTS.index(variant), seed),
    live=True, distributed=True, per_arch=True)

if __name__ == "__main__":
    from dreaming_data.launch import run_stage

    STAGE.main(run=run_stage)
