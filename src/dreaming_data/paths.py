"""Where each stage reads and writes, relative to the project root. ``dvc.yaml`` lists the same paths."""

from pathlib import Path

PREPARED = Path("data/prepared")
GENERATED = Path("data/generated")
MERGED = Path("data/merged")
MODELS = Path("models")
METRICS = Path("metrics")
PLOTS = Path("plots")
REPORTS = Path("reports")


def prepared(split: str) -> Path:
    return PREPARED / f"{split}.npz"


def ddpm_dir(schedule: str) -> Path:
    return MODELS / "ddpm" / schedule


def ddpm_checkpoint(schedule: str) -> Path:
    """Outside DVC's outputs (``checkpoints/`` is git- and dvc-ignored), so a failed run never loses it."""
    return Path("checkpoints") / f"ddpm-{schedule}.pt"


def classifier_name(variant: str, seed: int) -> str:
    return f"{variant}-seed{seed}"
