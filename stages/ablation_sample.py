"""DVC stage ``ablation_sample@<schedule>-<sampler>-<steps>``: ablation.per_class images per class for one cell."""

import typer

from dreaming_data import pipeline
from dreaming_data.runner import run_stage


def main(schedule: str, sampler: str, steps: int, params: str = "params.yaml") -> None:
    """Sample one schedule x sampler x sampling-steps cell from the fixed ablation seed into data/ablation/."""
    run_stage(pipeline.ablation_sample, params, schedule=schedule, sampler=sampler, steps=steps)


if __name__ == "__main__":
    typer.run(main)
