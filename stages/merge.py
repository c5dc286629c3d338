"""DVC stage ``merge``: Merge the real training split with the synthetic images into data/merged/train.npz.."""

import typer

from dreaming_data import pipeline
from dreaming_data.runner import run_stage


def main(params: str = "params.yaml") -> None:
    """Merge the real training split with the synthetic images into data/merged/train.npz."""
    run_stage(pipeline.merge, params)


if __name__ == "__main__":
    typer.run(main)
