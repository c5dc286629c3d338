"""DVC stage ``train_classifier@<variant>-<seed>``: one classifier variant (baseline or augmented) and seed."""

import typer

from dreaming_data import pipeline
from dreaming_data.runner import run_stage


def main(variant: str, seed: int, params: str = "params.yaml") -> None:
    """Train the classifier on the real (baseline) or merged (augmented) training set."""
    run_stage(pipeline.train_classifier, params, variant=variant, seed=seed)


if __name__ == "__main__":
    typer.run(main)
