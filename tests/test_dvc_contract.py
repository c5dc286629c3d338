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
    """Keys interpolated into the stage's definition (``matrix: schedule: ${ddpm.schedules}``, a dependency's path
    ``models/classifier/${classifier.judge}-...``): a change rewrites the stage, so DVC re-runs or re-creates it,
    and the stage may read them. Bracketed indices are dropped (``classifier.seeds[0]`` -> ``classifier.seeds``)."""
    text = str({k: v for k, v in spec.items() if k != "params"})
    return {re.sub(r"\[\d+\]", "", m.group(1)) for m in re.finditer(r"\$\{([^}]+)\}", text)
            if not m.group(1).startswith("item.")}


def declared(spec: dict, item: dict, raw_params: dict) -> set[str]:
    """The params keys a stage instance declares, ``${item.x}`` and ``${section.key}`` filled in as DVC does."""

    def value(name: str):
        if name.startswith("item."):
            return item[name[5:]]
        node = raw_params
        for part in re.findall(r"[^.\[\]]+", name):
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node

    keys = [k for k in spec.get("params", []) if isinstance(k, str)]
    return {re.sub(r"\$\{([^}]+)\}", lambda m: str(value(m.group(1))), k) for k in keys}


def covers(declared_key: str, key: str) -> bool:
    """A declared key covers itself and everything under it (``merge`` covers ``merge.filter``)."""
    return key == declared_key or key.startswith(declared_key + ".")


def recording(params, log: set[str]):
    """``params`` with every (nested) section replaced by an instance of a subclass that logs each leaf read."""
    classes: dict = {}

    def wrap(obj, prefix: str):
        cls = type(obj)
        names = frozenset(x.name for x in dataclasses.fields(cls))
        if cls not in classes:
            def getter(self, name, _names=names):
                value = object.__getattribute__(self, name)
                if name in _names:
                    key = f"{object.__getattribute__(self, '_prefix')}.{name}".lstrip(".")
                    if dataclasses.is_dataclass(value):
                        return wrap(value, key)
                    log.add(key)
                return value

            classes[cls] = type(cls.__name__, (cls,), {"__getattribute__": getter})
        sub = classes[cls](**{n: object.__getattribute__(obj, n) for n in names})
        object.__setattr__(sub, "_prefix", prefix)
        return sub

    return wrap(params, "")


TINY_RUN = TINY_PIPELINE | {
    "merge.filter": "confident",  # reads merge.keep_fraction and the judge
    "merge.synthetic_per_class": 3,
}


@pytest.fixture(scope="module")
def stage_reads(tmp_path_factory):
    """Run every stage in order on a tiny configuration, recording the params fields each one reads."""
    import os

    from dreaming_data import pipeline
    from dreaming_data.config import parse_params

    raw = tiny_params(**TINY_RUN)
    p = parse_params(raw)
    work = tmp_path_factory.mktemp("reads")
    old = os.getcwd()
    os.chdir(work)
    reads = {}
    try:
        for name, fn, kwargs in pipeline.stage_calls(p):
            log: set[str] = set()
            fn(recording(p, log), **kwargs)
            reads[name] = (log, kwargs)
    finally:
        os.chdir(old)
    return reads, work, raw


def test_every_param_a_stage_reads_is_declared(stage_reads):
    reads, _, raw = stage_reads
    problems = []
    for name, (keys, item) in reads.items():
        spec = DVC[name.split("@")[0]]
        decl = declared(spec, item, raw)
        allowed = matrix_keys(spec)
        for key in sorted(keys):
            if any(covers(d, key) for d in decl) or key in allowed or undeclared_ok(key):
                continue
            problems.append(f"{name} reads {key}")
    assert not problems, "params read but not declared in dvc.yaml: " + "; ".join(problems)


def test_declared_params_are_read(stage_reads):
    """The other way round: a declared key that no run of the stage reads re-runs it for nothing."""
    reads, _, raw = stage_reads
    problems = []
    for name, (keys, item) in reads.items():
        problems += [f"{name} declares {d}" for d in sorted(declared(DVC[name.split("@")[0]], item, raw))
                     if not any(covers(d, k) for k in keys)]
    assert not problems, "declared in dvc.yaml but never read: " + "; ".join(problems)


def test_metrics_are_strict_json(stage_reads):
    _, work, _ = stage_reads
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
