"""The ``dreaming-data`` command, and the error handling every stage script shares."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from dreaming_data.config import Params, load_params
from dreaming_data.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True)


@app.callback()
def _root() -> None:
    """Dreaming Data: train class-conditional DDPMs, dream labelled images, measure what they add."""


def fail(message: str) -> None:
    """Print ``message`` as one line on stderr and exit 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def run_stage(fn: Callable[..., Any], params_path: str | Path = "params.yaml", **kwargs: Any) -> Any:
    """Load params, call the stage function ``fn(params, **kwargs)``; a ``UserError`` becomes one line, exit 2."""
    try:
        params = load_params(params_path)
        return fn(params, **kwargs)
    except UserError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted; rerun the stage to resume from its last checkpoint")


@app.command()
def check(params: Annotated[Path, typer.Option(help="params file to validate")] = Path("params.yaml")) -> None:
    """Validate a params file: every key present, none unknown, every value of the right type."""
    try:
        p: Params = load_params(params)
    except UserError as exc:
        fail(str(exc))
    print(f"{params}: ok (data.source={p.data.source}, {len(p.ddpm.schedules)} schedules, "
          f"{len(p.classifier.seeds)} classifier seeds)")


def main() -> None:  # pragma: no cover - console entry
    app()
