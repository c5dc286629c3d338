"""What every stage script shares: load params, run the stage function, turn a user mistake into one line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dreaming_data.config import load_params
from dreaming_data.errors import UserError


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
