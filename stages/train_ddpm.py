"""DVC stage ``train_ddpm@<schedule>``: train the class-conditional DDPM of one noise schedule."""

import typer

from dreaming_data import pipeline
from dreaming_data.runner import run_stage


def main(schedule: str, params: str = "params.yaml") -> None:
    """Train the DDPM with the linear or cosine schedule; resumes from checkpoints/ddpm-<schedule>.pt."""
    run_stage(pipeline.train_ddpm, params, schedule=schedule)


if __name__ == "__main__":
    typer.run(main)
