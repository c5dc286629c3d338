"""dvc.yaml against the code: every file a stage executes is a dependency (written by `dreaming-data deps`), every
param it reads is declared, and each stage module's declared data deps and outputs are the ones dvc.yaml lists."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, TINY_PIPELINE, tiny_params

from dreaming_data.errors import UserError

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
# Code deps: written by `dreaming-data deps` from each stage module's imports


def test_dvc_yaml_lists_the_code_each_stage_executes():
    """dvc.yaml's src/ deps are what `dreaming-data deps` derives from the stage modules' imports (run it after
    changing an import)."""
    from dreaming_data.tools import deps

    text = (ROOT / "dvc.yaml").read_text()
    assert deps.derived(text, ROOT) == text, "run `dreaming-data deps`"


def test_the_deps_command_checks_and_writes(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from dreaming_data.cli import app

    monkeypatch.chdir(ROOT)
    assert CliRunner().invoke(app, ["deps", "--check"]).exit_code == 0
    (tmp_path / "src").symlink_to(ROOT / "src")
    (tmp_path / "stages").symlink_to(ROOT / "stages")
    text = (ROOT / "dvc.yaml").read_text()
    (tmp_path / "dvc.yaml").write_text(text.replace("      - src/dreaming_data/unet.py\n", "", 1))  # one dep lost
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["deps", "--check"])
    assert r.exit_code == 1 and "differ from the stages' imports" in r.output
    assert CliRunner().invoke(app, ["deps"]).exit_code == 0 and (tmp_path / "dvc.yaml").read_text() == text


def test_closure_follows_every_import_and_nothing_else(tmp_path):
    from dreaming_data.tools.deps import closure

    train_ddpm = {Path(f).name for f in closure("stages/train_ddpm.py", ROOT)}
    # no other stage's code, and nothing of the classifiers, the comparison or sample quality
    assert "train_ddpm.py" in train_ddpm and "unet.py" in train_ddpm and "training.py" in train_ddpm
    assert not train_ddpm & ({p.name for p in (PACKAGE / "stages").glob("*.py")} - {"__init__.py", "train_ddpm.py"})
    assert not train_ddpm & {"evaluation.py", "comparison.py", "stats.py", "classifier.py", "quality.py", "data.py"}
    assert {"data.py"} <= {Path(f).name for f in closure("stages/download.py", ROOT)}
    # an import inside a function counts as much as one at the top, and a package's __init__ with its modules
    pkg = tmp_path / "src" / "dreaming_data"
    (pkg / "sub").mkdir(parents=True)
    for name, text in {"__init__.py": "", "a.py": "def f():\n    from dreaming_data import b\n", "b.py": "",
                       "sub/__init__.py": "", "sub/c.py": "import dreaming_data.a\n", "unused.py": ""}.items():
        (pkg / name).write_text(text)
    assert closure("dreaming_data.sub.c", tmp_path) == [f"src/dreaming_data/{f}" for f in (
        "__init__.py", "a.py", "b.py", "sub/__init__.py", "sub/c.py")]
    (pkg / "b.py").write_text("\n\nimport dreaming_data.nosuchmodule\n")  # the stage would die of it
    with pytest.raises(UserError, match=r"b.py: line 3 imports dreaming_data.nosuchmodule, which is not a module"):
        closure("dreaming_data.sub.c", tmp_path)


def test_every_dvc_stage_is_a_module_s_and_every_architecture_has_its_groups():
    """dvc.yaml's stages (groups) are exactly those the stage modules declare: one per architecture for the classifier
    stages, so that an architecture added to ``config.Arch`` without its dvc.yaml groups fails here."""
    from dreaming_data.tools.registry import stages

    declared = {g: s.name for s in stages().values() for g in s.groups()}
    assert sorted(declared) == sorted(DVC)
    for group, spec in DVC.items():
        assert f"python stages/{declared[group]}.py " in spec["cmd"] + " ", group


def test_no_stage_file_shadows_a_module():
    """`python stages/<name>.py` puts stages/ first on the process's import path: a stage named like an importable
    module (a package called evaluate, say) would replace it for every import in that process."""
    import importlib.util

    names = [p.stem for p in (ROOT / "stages").glob("*.py")]
    assert len(names) == 14 and not [n for n in names if importlib.util.find_spec(n) is not None]


def test_no_stage_imports_another_stage_or_the_tools():
    from dreaming_data.tools.deps import closure

    for group, spec in DVC.items():  # a module may run several groups (one per architecture)
        name = re.search(r"python stages/(\w+)\.py", spec["cmd"]).group(1)
        files = closure(f"stages/{name}.py", ROOT)
        others = [f for f in files if "/stages/" in f and not f.endswith(("/__init__.py", f"/{name}.py"))]
        assert not others and not [f for f in files if "/tools/" in f or f.endswith("/cli.py")], (name, files)


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
    # fewer images for Inception (on a CPU core, ~5 per second): what a stage reads does not depend on how many
    "data.val_size": 10, "data.train_per_class": 3, "novelty.per_class": 1, "ablation.per_class": 1,
}


@pytest.fixture(scope="module")
def stage_reads(tmp_path_factory):
    """Run every stage in order on a tiny configuration, recording the params fields each one reads."""
    import os

    from dreaming_data.config import parse_params
    from dreaming_data.tools.registry import ordered

    raw = tiny_params(**TINY_RUN)
    p = parse_params(raw)
    work = tmp_path_factory.mktemp("reads")
    old = os.getcwd()
    os.chdir(work)
    reads = {}
    try:
        for instance in ordered(p):
            log: set[str] = set()
            instance.stage.run(recording(p, log), **instance.kwargs)
            reads[instance.label] = (log, instance.kwargs)
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


# ---------------------------------------------------------------------------------------------------------
# The stage modules' declarations against DVC's own reading of dvc.yaml


@pytest.fixture(scope="module")
def dvc_stages():
    """DVC's stages of the repository's dvc.yaml and params.yaml: name -> (data deps, cached outs, uncached outs)."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    out = {}
    with Repo(str(ROOT)) as repo:
        for stage in repo.index.stages:
            rel = lambda o: Path(str(o.fs_path)).relative_to(ROOT).as_posix()  # noqa: E731
            deps = {rel(d) for d in stage.deps
                    if not isinstance(d, ParamsDependency) and not rel(d).startswith(("src/", "stages/"))}
            out[stage.addressing] = (deps, {rel(o) for o in stage.outs if o.use_cache},
                                     {rel(o) for o in stage.outs if not o.use_cache})
    return out


def covered_by(files: set[str], dirs: set[str]) -> tuple[list[str], list[str]]:
    """(files under none of ``dirs``, entries of ``dirs`` holding none of ``files``): DVC may name a folder."""
    inside = lambda f, d: f == d or f.startswith(d.rstrip("/") + "/")  # noqa: E731
    return (sorted(f for f in files if not any(inside(f, d) for d in dirs)),
            sorted(d for d in dirs if not any(inside(f, d) for f in files)))


def test_stage_modules_declare_what_dvc_yaml_says(dvc_stages):
    """Every instance's declared inputs, outputs and small files are dvc.yaml's deps, outs and uncached outs."""
    from dreaming_data.config import load_params
    from dreaming_data.tools.registry import instances

    ours = {i.label: i for i in instances(load_params(ROOT / "params.yaml"))}
    assert sorted(ours) == sorted(dvc_stages)
    problems = []
    for label, i in ours.items():
        deps, cached, small = dvc_stages[label]
        live = {f"{i.live}/metrics.json", f"{i.live}/plots"} if i.live else set()  # DVCLive's, written as it runs
        for what, declared, listed in (("inputs", i.inputs, deps), ("outputs", i.outputs, cached),
                                       ("small", set(i.small) | live, small)):
            extra, unused = covered_by(set(declared), listed)
            problems += [f"{label}: {what} declares {f}, not in dvc.yaml" for f in extra]
            problems += [f"{label}: dvc.yaml lists {d}, not in its {what}" for d in unused]
    assert not problems, "; ".join(problems)


def test_stage_graph_matches_dvc():
    from dreaming_data.config import load_params
    from dreaming_data.tools.registry import ordered

    r = subprocess.run([str(Path(sys.executable).parent / "dvc"), "stage", "list", "--name-only"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == sorted(i.label for i in ordered(load_params(ROOT / "params.yaml")))


def test_the_run_cache_can_serve_every_stage_but_three_cheap_ones():
    """DVC's run cache restores a stage only when no output is `persist` and every uncached output is a metric or a
    plot (DVC 3: `_can_hash` in dvc/stage/cache.py, `no_cache_outs` in `Stage.run`): then a curve's points of one
    real-set size share its DDPM, dreams and baselines. The exceptions are cheap: the reports, and the pictures that
    top-level plot definitions draw (a stage plot of the same file would be drawn twice)."""
    persist, blocking = [], {}
    for name, stage in DVC.items():
        for kind in ("outs", "metrics", "plots"):
            for out in stage.get(kind) or []:
                path, opts = (out, {}) if isinstance(out, str) else next(iter(out.items()))
                if (opts or {}).get("persist"):
                    persist.append(path)
                if kind == "outs" and (opts or {}).get("cache") is False:
                    blocking.setdefault(name, []).append(path)
    assert persist == []
    assert blocking == {"compare": ["reports/comparison.md"], "ablation": ["reports/ablation.md",
                        "plots/ablation/ablation.png"], "novelty": ["plots/novelty/nearest.png",
                                                                     "plots/novelty/distances.png"]}
