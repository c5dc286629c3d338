"""DVC stage ``ablation``: FID, KID, precision/recall, CAS and recognisability of every ablation cell."""

import typer

from dreaming_data import pipeline
from dreaming_data.runner import run_stage


def main(params: str = "params.yaml") -> None:
    """Score every schedule x sampler x steps cell into metrics/ablation.json, plots/ablation/ and reports/ablation.md."""
    run_stage(pipeline.ablation, params)


if __name__ == "__main__":
    typer.run(main)
