"""DVC stage ``compare``: Mean and std across seeds per variant, and augmented minus baseline, to metrics/comparison.json.."""

import typer

from dreaming_data import pipeline
from dreaming_data.runner import run_stage


def main(params: str = "params.yaml") -> None:
    """Mean and std across seeds per variant, and augmented minus baseline, to metrics/comparison.json."""
    run_stage(pipeline.compare, params)


if __name__ == "__main__":
    typer.run(main)
