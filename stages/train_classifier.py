"""DVC stage ``train_classifier@<arch>-<variant>-<seed>``: baseline or augmented, the recipe's epochs."""

import typer

from dreaming_data import pipeline
from dreaming_data.runner import run_stage


def main(arch: str, variant: str, seed: int, params: str = "params.yaml") -> None:
    """Train classifier.<arch>'s recipe on data/train/<variant>.npz with one seed."""
    run_stage(pipeline.train_classifier, params, arch=arch, variant=variant, seed=seed)


if __name__ == "__main__":
    typer.run(main)
