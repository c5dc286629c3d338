"""Where each stage reads and writes, relative to the project root. ``dvc.yaml`` lists the same paths."""

from pathlib import Path

PREPARED = Path("data/prepared")
GENERATED = Path("data/generated")
MODELS = Path("models")
METRICS = Path("metrics")
PLOTS = Path("plots")
REPORTS = Path("reports")


def prepared(split: str) -> Path:
    """The real ``val`` and ``test`` sets (never augmented)."""
    assert split in ("val", "test"), split
    return PREPARED / f"{split}.npz"


def train_set(variant: str) -> Path:
    """The training set of a classifier variant: ``baseline`` (real images only, what the DDPMs learn from too)
    or ``augmented`` (real plus synthetic)."""
    return Path("data/train") / f"{variant}.npz"


def ddpm_dir(schedule: str) -> Path:
    return MODELS / "ddpm" / schedule


def ddpm_checkpoint(schedule: str) -> Path:
    """Outside DVC's outputs (``checkpoints/`` is git- and dvc-ignored), so a failed run never loses it."""
    return Path("checkpoints") / f"ddpm-{schedule}.pt"


GENERATE_CHUNKS = Path("checkpoints/generate")
ABLATION = Path("data/ablation")  # one .npz of samples per schedule x steps cell
ABLATION_CHUNKS = Path("checkpoints/ablation")


def classifier_checkpoint(name: str) -> Path:
    return Path("checkpoints") / f"classifier-{name}.pt"


def classifier_name(variant: str, seed: int) -> str:
    return f"{variant}-seed{seed}"
