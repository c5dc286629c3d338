"""DVC stage ``ablation_sample@<schedule>-<steps>``: ablation.per_class images per class for one cell."""

import typer

from dreaming_data import pipeline
from dreaming_data.runner import run_stage


def main(schedule: str, steps: int, params: str = "params.yaml") -> None:
    """Sample one schedule x sampling-steps cell from the fixed ablation seed into data/ablation/."""
    run_stage(pipeline.ablation_sample, params, schedule=schedule, steps=steps)


if __name__ == "__main__":
    typer.run(main)
