"""Every input a stage reads, when missing, is one line that names the stage writing it and the commands (with and
without DVC) that remake it; a full disk at a stage's final write names the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dreaming_data.config import parse_params
from dreaming_data.paths import remake
from dreaming_data.tools.registry import instances

from conftest import tiny_params, write_params

HOW = re.compile(r"stage (?P<stage>\S+) writes it: `dvc repro (?P=stage)` \(without DVC: `python "
                 r"stages/\w+\.py[^`]*`\)")


def _writes(inst, path: str) -> bool:
    return any(path == out or path.startswith(out.rstrip("/") + "/") for out in inst.outputs + inst.small)


def test_every_input_of_every_stage_names_the_stage_that_writes_it(workdir):
    """Derived from dvc.yaml, checked against the stages' own declarations: for each input of each stage, the
    stage named is one that declares the file among its outputs, and its command is that instance's."""
    p = parse_params(tiny_params())
    found = instances(p)
    by_label = {inst.label: inst for inst in found}
    checked = 0
    for inst in found:
        for path in inst.inputs:
            how = remake(path)
            m = HOW.search(how or "")
            assert m, f"{inst.label} reads {path}: {how!r}"
            producer = by_label[m.group("stage")]
            assert _writes(producer, path), f"{path}: {producer.label} does not write it"
            args = " ".join(str(v) for v in producer.kwargs.values())
            assert how.endswith(f"stages/{producer.stage.name}.py{' ' + args if args else ''}`)"), how
            checked += 1
    assert checked > 50


def test_each_stage_with_a_missing_input_says_who_remakes_it(workdir, capsys):
    """One instance of every stage that reads files, run in a project where none exists: exit 2, one line naming a
    missing input, its stage and the commands."""
    from dreaming_data.runner import run_stage

    write_params(workdir / "params.yaml", tiny_params())
    seen = set()
    for inst in instances(parse_params(tiny_params())):
        if not inst.inputs or inst.stage.name in seen:
            continue
        seen.add(inst.stage.name)
        with pytest.raises(SystemExit) as exit_:
            run_stage(inst.stage, "params.yaml", **inst.kwargs)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert exit_.value.code == 2 and len(lines) == 1, (inst.label, err)
        assert re.search(r"error: \S+: missing; " + HOW.pattern, lines[0]), (inst.label, lines[0])
    assert len(seen) >= 12, seen


@pytest.mark.slow
def test_a_full_disk_at_each_stages_final_write_names_the_file(workdir, capsys, monkeypatch):
    """The whole tiny pipeline in this process (as `--no-dvc` runs it), then each stage once more with every rename
    into place failing as on a full disk (ENOSPC: the OS names no file): one line naming an output of that stage and
    what to do, and its previous outputs byte for byte as they were (its live metrics start anew, as every run's)."""
    import os

    from dreaming_data import io
    from dreaming_data.runner import run_stage
    from dreaming_data.tools.registry import ordered

    from conftest import TINY_PIPELINE

    small = TINY_PIPELINE | {"classifier.seeds.simple_cnn": [0], "classifier.seeds.resnet18": [], "ablation.samplers": ["ddim"],
                             "ddpm.schedules": ["linear"], "sample.steps": [10],  # an instance of every stage
                             "data.train_per_class": 4, "data.val_size": 20, "novelty.per_class": 2}  # less Inception
    write_params(workdir / "params.yaml", tiny_params(**small))
    p = parse_params(tiny_params(**small))
    order = ordered(p)
    for inst in order:
        run_stage(inst.stage, "params.yaml", **inst.kwargs)
    capsys.readouterr()
    real = os.replace

    def full(src, dst):
        if "checkpoints" in Path(dst).parts:  # a checkpoint may still be saved; the stage's outputs may not
            return real(src, dst)
        raise OSError(28, "No space left on device")

    seen = set()
    for inst in order:
        if inst.stage.name in seen:
            continue
        seen.add(inst.stage.name)
        kept = [Path(f) for f in inst.outputs + inst.small]  # the live files start anew with every run (DVCLive)
        mine = kept + ([Path(inst.live)] if inst.live else [])
        files = [f for out in kept for f in ([out] if out.is_file() else sorted(out.rglob("*")) if out.is_dir() else [])]
        before = {f: f.read_bytes() for f in files if f.is_file()}
        monkeypatch.setattr(io.os, "replace", full)
        with pytest.raises(SystemExit) as exit_:
            run_stage(inst.stage, "params.yaml", **inst.kwargs)
        monkeypatch.setattr(io.os, "replace", real)
        lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert exit_.value.code == 2 and len(lines) == 1, (inst.label, lines)
        m = re.match(rf"error: {re.escape(inst.label)}: (\S+): cannot be written \(No space left on device\); "
                     r"free disk space and run it again", lines[0])
        assert m and any(Path(m.group(1)) == out or out in Path(m.group(1)).parents for out in mine), lines[0]
        assert {f: f.read_bytes() for f in before} == before, inst.label
    assert len(seen) == 14, seen
