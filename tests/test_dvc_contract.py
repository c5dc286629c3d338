"""dvc.yaml against the code: every file a stage executes is a dependency, every param it reads is declared, and the
stage graph is the one ``pipeline.stage_calls`` runs without DVC. The lists are derived from the code, not kept."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, TINY_PIPELINE, tiny_params

PACKAGE = ROOT / "src" / "dreaming_data"
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]

# Params a stage may read without declaring them, and why. One place; everything else must be in dvc.yaml.
UNDECLARED = {
    "runtime.*": "the machine (device, precision, compilation, CPU threads): moves training results by float rounding "
                 "only; sampling on a CPU not at all; checkpoints record it",
    "ddpm.checkpoint_minutes": "how often an interrupted run saves: resuming is bit-exact",
    "sample.batch_size": "speed knob: an image depends on (seed, class, index), not on its batch",
    "generate.batch_size": "speed knob, as sample.batch_size (ablation_sample uses it too)",
    "generate.chunk_size": "speed knob: the unit an interrupted generation resumes from",
    "eval.batch_size": "speed knob of Inception feature extraction",
}


def undeclared_ok(key: str) -> bool:
    return any(key == k or (k.endswith(".*") and key.startswith(k[:-1])) for k in UNDECLARED)


# ---------------------------------------------------------------------------------------------------------
# Import closure


def module_file(name: str) -> Path | None:
    """The file of module ``dreaming_data.x`` (None outside the package)."""
    if name != "dreaming_data" and not name.startswith("dreaming_data."):
        return None
    parts = name.split(".")[1:]
    path = PACKAGE.joinpath(*parts)
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imports_in(node: ast.AST) -> set[str]:
    """Modules of the package that ``node`` (a module, or a function with its nested imports) imports."""
    found = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Import):
            found |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
            found.add(n.module)
            found |= {f"{n.module}.{a.name}" for a in n.names if module_file(f"{n.module}.{a.name}") is not None
                      and module_file(f"{n.module}.{a.name}").exists()}
    return {m for m in found if module_file(m) is not None and module_file(m).exists()}


def pipeline_entry_imports(functions: set[str]) -> set[str]:
    """pipeline.py imports lazily inside each stage function: the module's own top-level imports, plus those of
    the entry functions and of the pipeline helpers they call (by name), transitively."""
    tree = ast.parse((PACKAGE / "pipeline.py").read_text())
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    top = {n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))}
    found = set().union(*(imports_in(n) for n in top))
    todo, seen = list(functions), set()
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        found |= imports_in(defs[name])
        todo += [n.id for n in ast.walk(defs[name]) if isinstance(n, ast.Name) and n.id in defs]
    return found


def stage_closure(script: Path) -> set[Path]:
    """Files of ``dreaming_data`` that running ``script`` executes: its imports, closed transitively (every import
    of a module counts, except pipeline.py's per-stage lazy ones, resolved per entry function)."""
    tree = ast.parse(script.read_text())
    entry = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
             and isinstance(n.value, ast.Name) and n.value.id == "pipeline"}
    todo = list(imports_in(tree))
    files: set[Path] = set()
    while todo:
        mod = todo.pop()
        path = module_file(mod)
        if path in files:
            continue
        files.add(path)
        if "." in mod:
            todo.append(mod.rsplit(".", 1)[0])  # a package's __init__ runs before its modules
        todo += pipeline_entry_imports(entry) if mod == "dreaming_data.pipeline" else imports_in(ast.parse(path.read_text()))
    return files


def covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(ROOT).as_posix()
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("stage", sorted(DVC))
def test_deps_cover_every_file_the_stage_executes(stage):
    spec = DVC[stage]
    script = ROOT / spec["cmd"].split()[1]
    closure = stage_closure(script) | {script}
    deps = spec["deps"]
    missing = sorted(p.relative_to(ROOT).as_posix() for p in closure if not covered(p, deps))
    assert not missing, f"dvc.yaml stage {stage} executes but does not list: {missing}"
    assert (PACKAGE / "pipeline.py") in closure and (PACKAGE / "config.py") in closure  # the analysis sees through


def test_closure_follows_only_the_stage_function():
    merge = stage_closure(ROOT / "stages" / "merge.py")
    assert PACKAGE / "data.py" in merge and PACKAGE / "unet.py" not in merge
    assert PACKAGE / "unet.py" in stage_closure(ROOT / "stages" / "train_ddpm.py")


# ---------------------------------------------------------------------------------------------------------
# Params read at run time


def matrix_keys(spec: dict) -> set[str]:
    """Keys that only say which stages exist (``matrix: schedule: ${ddpm.schedules}``): DVC re-creates the
    stages when they change, so a stage may read them to check its own arguments."""
    return {m.group(1) for v in spec.get("matrix", {}).values() for m in re.finditer(r"\$\{([^}]+)\}", str(v))}


def declared(spec: dict) -> tuple[set[str], set[str]]:
    keys = {k for k in spec.get("params", []) if isinstance(k, str)}
    return {k for k in keys if "." in k}, {k for k in keys if "." not in k}


def recording(params, log: set[str]):
    """``params`` with every section replaced by an instance of a subclass that logs each field read."""
    sections = {}
    for f in dataclasses.fields(params):
        section = getattr(params, f.name)
        cls = type(section)

        def getter(self, name, _section=f.name, _fields=frozenset(x.name for x in dataclasses.fields(cls))):
            if name in _fields:
                log.add(f"{_section}.{name}")
            return object.__getattribute__(self, name)

        sub = type(cls.__name__, (cls,), {"__getattribute__": getter})
        sections[f.name] = sub(**{x.name: object.__getattribute__(section, x.name) for x in dataclasses.fields(cls)})
    return type(params)(**sections)


TINY_RUN = TINY_PIPELINE | {
    "classifier.optimizer": "sgd",  # the default's optimizer: it reads classifier.momentum and nesterov
}


@pytest.fixture(scope="module")
def stage_reads(tmp_path_factory):
    """Run every stage in order on a tiny configuration, recording the params fields each one reads."""
    import os

    from dreaming_data import pipeline
    from dreaming_data.config import parse_params

    p = parse_params(tiny_params(**TINY_RUN))
    work = tmp_path_factory.mktemp("reads")
    old = os.getcwd()
    os.chdir(work)
    reads = {}
    try:
        for name, fn, kwargs in pipeline.stage_calls(p):
            log: set[str] = set()
            fn(recording(p, log), **kwargs)
            reads[name] = log
    finally:
        os.chdir(old)
    return reads, work


def test_every_param_a_stage_reads_is_declared(stage_reads):
    reads, _ = stage_reads
    problems = []
    for name, keys in reads.items():
        spec = DVC[name.split("@")[0]]
        fields, sections = declared(spec)
        allowed = matrix_keys(spec)
        for key in sorted(keys):
            if key in fields or key.split(".")[0] in sections or key in allowed or undeclared_ok(key):
                continue
            problems.append(f"{name} reads {key}")
    assert not problems, "params read but not declared in dvc.yaml: " + "; ".join(problems)


def test_declared_params_are_read(stage_reads):
    """The other way round: a declared key that no run of the stage reads re-runs it for nothing."""
    reads, _ = stage_reads
    problems = []
    for stage, spec in DVC.items():
        read = set().union(*(keys for name, keys in reads.items() if name.split("@")[0] == stage))
        fields, sections = declared(spec)
        problems += [f"{stage} declares {k}" for k in sorted(fields) if k not in read]
        problems += [f"{stage} declares {s}" for s in sorted(sections) if not any(k.startswith(s + ".") for k in read)]
    assert not problems, "declared in dvc.yaml but never read: " + "; ".join(problems)


def test_metrics_are_strict_json(stage_reads):
    _, work = stage_reads
    files = sorted((work / "metrics").rglob("*.json"))
    assert len(files) >= 10
    for path in files:
        json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{path}: {c} is not JSON"))


def test_stage_graph_matches_dvc():
    from dreaming_data import pipeline
    from dreaming_data.config import load_params

    r = subprocess.run([str(Path(sys.executable).parent / "dvc"), "stage", "list", "--name-only"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    listed = r.stdout.split()
    ours = [name for name, _, _ in pipeline.stage_calls(load_params(ROOT / "params.yaml"))]
    assert sorted(listed) == sorted(ours)
