"""DVC stage ``generate``: Dream generate.per_class images per class into data/generated/synthetic.npz."""

import typer

from dreaming_data import pipeline
from dreaming_data.runner import run_stage


def main(params: str = "params.yaml") -> None:
    """Dream generate.per_class images per class into data/generated/synthetic.npz; resumes finished chunks."""
    run_stage(pipeline.generate, params)


if __name__ == "__main__":
    typer.run(main)
