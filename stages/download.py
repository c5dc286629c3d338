"""DVC stage ``download``: read the configured data source into data/prepared/{train,val,test}.npz."""

import typer

from dreaming_data import pipeline
from dreaming_data.runner import run_stage


def main(params: str = "params.yaml") -> None:
    """Prepare the dataset named by the ``data`` section of params.yaml."""
    run_stage(pipeline.download, params)


if __name__ == "__main__":
    typer.run(main)
