"""The declaration each stage module makes. A stage is one file, ``stages/<name>.py`` at the project's top level,
whose ``STAGE`` says its body, its matrix, the files it reads and writes, and the work the projection counts.
``python stages/<name>.py ARGS... [--params P]`` is the stage's command in ``dvc.yaml``;
``dreaming_data.tools.registry`` collects the declarations for ``--no-dvc`` runs, ``results collect`` and the
projection. A stage module imports the library modules it uses and nothing of another stage, so DVC re-runs a stage
only when code it executes changes (``dreaming-data deps`` writes each stage's code deps from its imports).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Part:
    """Work of one measured code path: ``units`` DDPM steps, sampling image-steps (one image through one guided step,
    at a batch size), classifier steps, classifier forwards or Inception forwards (``benchmarks/project_default.py``
    times each)."""

    path: str  # ddpm_step | sample | classifier_step | predict | inception
    key: str  # schedule, "<sampler>@<batch>", arch, or "" (inception)
    units: int

    def describe(self) -> str:
        what = {"ddpm_step": "DDPM steps", "sample": "sampling image-steps", "classifier_step": "optimizer steps",
                "predict": "classifier forwards", "inception": "Inception forwards"}[self.path]
        return f"{self.units:,} {what}" + (f" ({self.key})" if self.key else "")


@dataclass(frozen=True)
class Sizes:
    """The prepared data's size, what a stage's work is counted from."""

    classes: int
    image_shape: tuple[int, int, int]  # H, W, C
    train: int  # real training images (what the baselines and the DDPMs learn from)
    val: int
    test: int


def classifier_work(p, s: Sizes, arch: str, train_images: int, steps: int) -> list[Part]:
    """A classifier's training: its optimizer steps, and a pass over the validation split after every epoch."""
    from dreaming_data.config import steps_per_epoch

    epochs = -(-steps // steps_per_epoch(train_images, p.classifier.recipe(arch).batch_size))
    return [Part("classifier_step", arch, steps), Part("predict", arch, epochs * s.val)]


def augmented_size(p, s: Sizes) -> int:
    """Images of the merged training set: the real ones and the dreams merge keeps."""
    from dreaming_data.config import merged_per_class

    return s.train + s.classes * merged_per_class(p)


def _none(p, *sizes, **kw) -> list:
    return []


def _single(p) -> list[dict]:
    return [{}]


@dataclass(frozen=True)
class Stage:
    """A DVC stage (a family of instances when it has a matrix), declared once, in its module.

    Every function takes the parsed params and one instance's matrix arguments (``run(p, schedule="linear")``):
    ``inputs`` are the data files ``run`` reads and ``outputs`` the files DVC caches (dvc.yaml's deps besides code,
    and outs); ``small`` the metrics, plots and reports it writes (``cache: false``: git keeps them, ``results
    collect`` copies them); ``work`` what it computes, for the projection. ``tests/test_dvc_contract.py`` checks all
    of them against dvc.yaml. ``priority`` orders a run without DVC: among stages whose inputs are ready, the one
    that leads to the most valuable result (lowest tuple) runs first."""

    name: str
    run: Callable[..., Any]
    matrix: Callable[[Any], list[dict]] = _single
    inputs: Callable[..., list] = _none
    outputs: Callable[..., list] = _none
    small: Callable[..., list] = _none
    work: Callable[..., list[Part]] = _none
    live: bool = False  # logs to DVCLive while it runs: dvclive/<label>/ (metrics.json, plots/), declared in dvc.yaml
    priority: Callable[..., tuple] = field(default=lambda p, **kw: (99,))
    distributed: bool = False  # runs in runtime.nproc x runtime.nnodes processes (DDP, shared sampling)
    per_arch: bool = False  # one stage group per architecture in dvc.yaml (``<name>_<arch>``, its own seeds)

    def group(self, **kw: Any) -> str:
        """The dvc.yaml stage (group) the instance belongs to: the name, or ``<name>_<arch>`` when ``per_arch``."""
        return f"{self.name}_{kw['arch']}" if self.per_arch else self.name

    def groups(self) -> list[str]:
        """Every dvc.yaml stage (group) this module declares."""
        from dreaming_data.config import ARCHS

        return [f"{self.name}_{a}" for a in ARCHS] if self.per_arch else [self.name]

    def label(self, **kw: Any) -> str:
        """The instance's name as DVC spells it: ``evaluate_resnet18@augmented-0``, ``train_ddpm@linear``,
        ``compare``."""
        rest = [v for k, v in kw.items() if not (self.per_arch and k == "arch")]
        return self.group(**kw) + ("@" + "-".join(map(str, rest)) if rest else "")

    def live_dir(self, **kw: Any) -> str | None:
        """The instance's DVCLive directory (``paths.live_dir``), or None."""
        from dreaming_data.paths import live_dir

        return live_dir(self.label(**kw)).as_posix() if self.live else None

    @property
    def script(self) -> str:
        """The stage's file as dvc.yaml runs it from the project root: ``stages/<name>.py``."""
        return f"stages/{self.name}.py"

    @property
    def file(self) -> str:
        """The file this declaration was read from (what torchrun runs again, wherever the process started)."""
        return inspect.getfile(self.run)

    def arguments(self) -> dict[str, type]:
        """The matrix arguments of ``run`` in order, with their types (str or int)."""
        hints = typing.get_type_hints(self.run)
        return {n: hints.get(n, str) for n in list(inspect.signature(self.run).parameters)[1:]}

    def command(self, params_path: str | Path, kw: dict) -> list[str]:
        """``FILE ARGS... --params PATH``: what torchrun (or a shell, with ``python`` first) runs."""
        return [self.file, *map(str, kw.values()), "--params", str(params_path)]

    def parse(self, argv: list[str] | None = None) -> tuple[dict, str]:
        """``ARGS... [--params P]`` (the command line) -> (matrix arguments, params file)."""
        import argparse

        parser = argparse.ArgumentParser(prog=f"python {self.script}", description=(self.run.__doc__ or "").strip())
        for name, tp in self.arguments().items():
            parser.add_argument(name, type=tp)
        parser.add_argument("--params", default="params.yaml", help="the params file (default: params.yaml)")
        args = vars(parser.parse_args(argv))
        return args, args.pop("params")

    def main(self, argv: list[str] | None = None, run: Callable[..., Any] | None = None) -> None:
        """The DVC command: run this stage with the command line's arguments, by ``run``: ``runner.run_stage``, or
        for a ``distributed`` stage ``launch.run_stage`` (which its module imports, so that only such stages depend
        on the launching code). SIGTERM (a ``kill``, a batch scheduler's time limit) stops it as Ctrl-C does: one
        line, exit 2, and the checkpoint kept."""
        import signal

        if self.distributed and run is None:
            raise RuntimeError(f"{self.script}: a distributed stage starts with STAGE.main(run=launch.run_stage)")
        from dreaming_data.runner import leave, run_stage

        kwargs, params = self.parse(argv)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        (run or run_stage)(self, params, **kwargs)
        leave()
