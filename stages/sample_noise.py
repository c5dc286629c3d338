"""DVC stage ``sample_noise``: a picture of the initial noise every sample grid starts from."""

import typer

from dreaming_data import pipeline
from dreaming_data.runner import run_stage


def main(params: str = "params.yaml") -> None:
    """Draw plots/samples/noise.png from sample.seed."""
    run_stage(pipeline.sample_noise, params)


if __name__ == "__main__":
    typer.run(main)
