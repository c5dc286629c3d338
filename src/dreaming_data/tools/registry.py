"""Every stage of the pipeline, collected from the stage files' declarations (``stages/<name>.py``: ``STAGE``),
expanded into instances for a params file, and ordered for a run without DVC.

A stage file is found by being in ``stages/``: adding a stage is its file and its ``dvc.yaml`` entry. Importing a
stage file is cheap (its body imports torch and the rest when it runs), so the tools can read them all.
"""

from __future__ import annotations

import functools
import heapq
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

from dreaming_data.errors import UserError
from dreaming_data.stage import Part, Sizes, Stage

CHECKOUT = Path(__file__).resolve().parents[3]  # the repository this package runs from (src/dreaming_data/tools/..)


def stages_dir() -> Path:
    """The stage files: ``stages/`` of the current folder when it is a project (it has a dvc.yaml), else of the
    checkout this package runs from."""
    here = Path("stages")
    if here.is_dir() and Path("dvc.yaml").is_file():
        return here
    if (CHECKOUT / "stages").is_dir():
        return CHECKOUT / "stages"
    raise UserError("no stages/ folder here or in the checkout of dreaming_data (run from the project's root)")


@functools.lru_cache(maxsize=4)
def _modules(folder: str) -> dict[str, ModuleType]:
    found = {}
    for path in sorted(Path(folder).glob("*.py")):
        name = f"stages.{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        stage = getattr(module, "STAGE", None)
        if not isinstance(stage, Stage) or stage.name != path.stem:
            raise RuntimeError(f"{path}: declares no STAGE named {path.stem!r}")
        found[path.stem] = module
    return found


def module(name: str) -> ModuleType:
    """The stage file ``stages/<name>.py`` as a module (its helpers: ``module("compare").runs``)."""
    return _modules(str(stages_dir().resolve()))[name]


def stages() -> dict[str, Stage]:
    """Stage name -> declaration, for every file of ``stages/``."""
    return {name: m.STAGE for name, m in _modules(str(stages_dir().resolve())).items()}


def _posix(paths) -> tuple[str, ...]:
    return tuple(PurePosixPath(Path(f).as_posix()).as_posix() for f in paths)


@dataclass(frozen=True)
class Instance:
    """One stage of ``dvc.yaml`` with its matrix arguments filled in."""

    stage: Stage
    kwargs: dict[str, Any]
    label: str  # as DVC shows it: train_ddpm@linear
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]  # cached by DVC (models, data)
    small: tuple[str, ...]  # metrics, plots, reports
    live: str | None  # its DVCLive directory, when it logs live
    priority: tuple

    def work(self, p, sizes: Sizes) -> list[Part]:
        return self.stage.work(p, sizes, **self.kwargs)


def instances(p) -> list[Instance]:
    """Every stage instance under the params ``p``, in name order."""
    out = []
    for stage in stages().values():
        for kw in stage.matrix(p):
            out.append(Instance(stage, kw, stage.label(**kw), _posix(stage.inputs(p, **kw)),
                                _posix(stage.outputs(p, **kw)), _posix(stage.small(p, **kw)), stage.live_dir(**kw),
                                tuple(stage.priority(p, **kw))))
    return out


def _inside(path: str, output: str) -> bool:
    return path == output or path.startswith(output.rstrip("/") + "/")


def upstream(items: list[Instance]) -> dict[str, set[str]]:
    """label -> labels of the instances whose outputs it reads."""
    producers = {f: i.label for i in items for f in (*i.outputs, *i.small)}
    needs: dict[str, set[str]] = {}
    for i in items:
        needs[i.label] = {label for f in i.inputs for out, label in producers.items() if _inside(f, out)}
    return needs


def ordered(p) -> list[Instance]:
    """Every instance in an order that respects their inputs. Among the instances whose inputs are ready, the one
    that leads to the most valuable result runs first: an instance ranks by the lowest ``priority`` of itself and of
    everything downstream of it (the DDPMs, generation and the small CNN's variants before the rest of the study)."""
    items = {i.label: i for i in instances(p)}
    needs = upstream(list(items.values()))
    users: dict[str, set[str]] = {label: set() for label in items}
    for label, ups in needs.items():
        for u in ups:
            users[u].add(label)

    @functools.lru_cache(maxsize=None)
    def rank(label: str) -> tuple:
        return min([items[label].priority, *(rank(u) for u in users[label])])

    waiting = {label: set(ups) for label, ups in needs.items()}
    ready = [(rank(label), items[label].priority, label) for label, ups in waiting.items() if not ups]
    heapq.heapify(ready)
    out = []
    while ready:
        *_, label = heapq.heappop(ready)
        out.append(items[label])
        for u in sorted(users[label]):
            waiting[u].discard(label)
            if not waiting[u]:
                heapq.heappush(ready, (rank(u), items[u].priority, u))
    if len(out) != len(items):
        stuck = sorted(set(items) - {i.label for i in out})
        raise UserError(f"stages {', '.join(stuck[:3])} wait on each other's outputs (a cycle in the declarations)")
    return out


def small_outputs(p) -> dict[str, list[str]]:
    """Per instance (in run order), the small files it writes: what ``results collect`` copies."""
    return {i.label: list(i.small) for i in ordered(p)}
