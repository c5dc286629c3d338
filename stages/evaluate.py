"""DVC stage ``evaluate@<variant>-<seed>``: one classifier variant (baseline or augmented) and seed."""

import typer

from dreaming_data import pipeline
from dreaming_data.runner import run_stage


def main(variant: str, seed: int, params: str = "params.yaml") -> None:
    """Test accuracy, per-class precision/recall/F1 and the confusion matrix of one classifier."""
    run_stage(pipeline.evaluate, params, variant=variant, seed=seed)


if __name__ == "__main__":
    typer.run(main)
