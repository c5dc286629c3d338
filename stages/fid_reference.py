"""DVC stage ``fid_reference``: Inception statistics of the real split every FID, KID and precision/recall uses."""

import typer

from dreaming_data import pipeline
from dreaming_data.runner import run_stage


def main(params: str = "params.yaml") -> None:
    """Compute the eval.fid_reference split's Inception mean, covariance and kept features into data/reference/."""
    run_stage(pipeline.fid_reference, params)


if __name__ == "__main__":
    typer.run(main)
