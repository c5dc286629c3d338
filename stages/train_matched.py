"""DVC stage ``train_matched@<arch>-<seed>``: baseline_matched, the real images for augmented's optimizer steps."""

import typer

from dreaming_data import pipeline
from dreaming_data.runner import run_stage


def main(arch: str, seed: int, params: str = "params.yaml") -> None:
    """Train classifier.<arch>'s recipe on data/train/baseline.npz for as many steps as the augmented run takes."""
    run_stage(pipeline.train_matched, params, arch=arch, seed=seed)


if __name__ == "__main__":
    typer.run(main)
