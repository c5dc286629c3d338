"""DVC stage ``sample_grid@<schedule>-<steps>``: one sample grid per schedule and sampling-step count."""

import typer

from dreaming_data import pipeline
from dreaming_data.runner import run_stage


def main(schedule: str, steps: int, params: str = "params.yaml") -> None:
    """Draw plots/samples/<schedule>-<steps>.png: a row per class, all from the same initial noise."""
    run_stage(pipeline.sample_grid, params, schedule=schedule, steps=steps)


if __name__ == "__main__":
    typer.run(main)
