"""DVC stage ``evaluate@<arch>-<variant>-<seed>``: test-set metrics and confusion matrix of one classifier."""

import typer

from dreaming_data import pipeline
from dreaming_data.runner import run_stage


def main(arch: str, variant: str, seed: int, params: str = "params.yaml") -> None:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix on the real test split."""
    run_stage(pipeline.evaluate, params, arch=arch, variant=variant, seed=seed)


if __name__ == "__main__":
    typer.run(main)
