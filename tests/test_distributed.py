"""Several processes per stage: the real stage scripts under torchrun with 2 CPU processes (gloo), against the same
scripts in one process, on tiny digits configurations."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT, prepare_data, stage_cmd, stage_env, tiny_params, write_params
from dreaming_data import distributed as dd
from dreaming_data.config import parse_params
from dreaming_data.tools import registry

pytestmark = pytest.mark.slow

# Each process one thread (2 cores); no dropout, so that 2 processes compute what 1 does up to float rounding.
EXACT = {"runtime.num_workers": 1, "unet.dropout": 0.0, "classifier.simple_cnn.dropout": 0.0}

# A sitecustomize.py that logs every file written through atomic_path (every output and checkpoint) with the rank.
WRITE_LOG = '''
import contextlib, os
log = os.environ.get("DD_WRITE_LOG")
if log:
    import dreaming_data.io as io
    _atomic = io.atomic_path

    @contextlib.contextmanager
    def atomic_path(path):
        with _atomic(path) as tmp:
            yield tmp
        with open(log, "a") as f:
            f.write(f"{os.environ.get('RANK', 'launcher')} {path}\\n")

    io.atomic_path = atomic_path
'''


def test_shares_cover_the_range_in_order():
    for n in range(0, 12):
        for parts in range(1, 5):
            shares = [dd.share(n, parts, i) for i in range(parts)]
            assert [i for s in shares for i in range(n)[s]] == list(range(n))
            sizes = [s.stop - s.start for s in shares]
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_the_multi_node_recipe_runs_torchrun_on_every_node():
    runtime = parse_params(tiny_params(**{"runtime.nproc": 2, "runtime.nnodes": 2,
                                          "runtime.rdzv_endpoint": "node1:29500"})).runtime
    script = ["stages/generate.py", "--params", "p.yaml"]
    cmd = dd.launch_command(runtime, "generate", script)
    assert cmd[:4] == ["srun", "--nodes=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    assert cmd[5:7] == ["-m", "dreaming_data.distributed"]  # a quiet torchrun on each node
    assert {"--nproc-per-node=2", "--nnodes=2", "--rdzv-backend=c10d", "--rdzv-endpoint=node1:29500",
            "--rdzv-id=generate"} <= set(cmd)
    assert cmd[-len(script):] == script
    local = dd.torchrun_args(parse_params(tiny_params(**{"runtime.nproc": 4})).runtime, "x", ["s.py"])
    assert local == ["--nproc-per-node=4", "--nnodes=1", "--standalone", "s.py"]


def test_every_distributed_stage_relaunches_its_own_module_with_its_arguments():
    """The launcher runs `<the stage's file> ARGS... --params P`, which the file's main parses back."""
    p = parse_params(tiny_params())
    found = [i for i in registry.instances(p) if i.stage.distributed]
    assert {i.stage.name for i in found} == {"train_ddpm", "sample_grid", "generate", "train_classifier",
                                             "train_matched", "fid_reference", "ablation_sample", "ablation",
                                             "novelty"}
    for i in found:
        cmd = i.stage.command("p.yaml", i.kwargs)
        assert cmd == [str(ROOT / "stages" / f"{i.stage.name}.py"), *map(str, i.kwargs.values()), "--params", "p.yaml"]
        assert i.stage.parse(cmd[1:]) == (i.kwargs, "p.yaml")


# ---------------------------------------------------------------------------------------------------------
# Real processes


def stage(name: str, *args: str) -> list[str]:
    return stage_cmd(name, *args)


def run(cmd, cwd: Path, env: dict | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env or stage_env(), timeout=600)
    if ok:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def project(root: Path, **overrides) -> Path:
    """A project folder: dvc.yaml, params with ``overrides``, and the data stage's outputs."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dvc.yaml", root / "dvc.yaml")
    write_params(root / "params.yaml", tiny_params(**EXACT | overrides))
    return prepare_data(root)


def data_of(trained: Path, root: Path) -> Path:
    """A project folder with the data stage's outputs of ``trained`` (the same data params) and no model."""
    SPLITS = registry.module("download").SPLITS

    root.mkdir(parents=True)
    shutil.copy(ROOT / "dvc.yaml", root / "dvc.yaml")
    for path in [*SPLITS.values(), Path("metrics/data.json")]:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(trained / path, root / path)
    return root


def with_nproc(root: Path, n: int, **overrides) -> None:
    write_params(root / "params.yaml", tiny_params(**EXACT | {"runtime.nproc": n} | overrides))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A project with a DDPM trained in one process."""
    root = project(tmp_path_factory.mktemp("ddp") / "p", **{"ddpm.epochs": 2})
    run(stage("train_ddpm", "linear"), root)
    return root


def test_sampling_in_two_processes_writes_the_same_bytes_once(trained, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(WRITE_LOG)
    log = tmp_path / "writes.log"
    env = stage_env() | {"DD_WRITE_LOG": str(log)}
    env["PYTHONPATH"] = f"{site}{os.pathsep}{env['PYTHONPATH']}"
    outputs = ["data/generated/synthetic.npz", "plots/samples/generated-preview.png", "plots/samples/linear-10.png"]
    written = {}
    for n in (2, 1):
        with_nproc(trained, n, **{"generate.per_class": 7, "generate.chunk_size": 3, "generate.batch_size": 5})
        log.unlink(missing_ok=True)
        r = run(stage("generate"), trained, env)
        assert "OMP_NUM_THREADS" not in r.stderr and r.stdout.count("generated 70 images") == 1
        run(stage("sample_grid", "linear", "10"), trained, env)
        written[n] = {o: (trained / o).read_bytes() for o in outputs}
        lines = [line.split(" ", 1) for line in log.read_text().splitlines()]
        paths = [Path(p).relative_to(trained).as_posix() if Path(p).is_absolute() else p for _, p in lines]
        assert len(paths) == len(set(paths)), f"a file written twice: {sorted(paths)}"
        chunks = [p for p in paths if p.endswith(".npy")]
        assert len(chunks) == 10 * 3  # 7 images per class in chunks of 3, each written once
        outs = {p: r for (r, _), p in zip(lines, paths) if not p.startswith("checkpoints/")}
        assert set(outputs) <= set(outs)
        assert set(outs.values()) == ({"0"} if n == 2 else {"launcher"})  # rank 0 writes every output
        if n == 2:
            assert {r for (r, _), p in zip(lines, paths) if p.endswith(".npy")} == {"0", "1"}  # shared out
        assert not (trained / "checkpoints" / "generate").exists()
    assert written[2] == written[1]


def test_ddpm_training_in_two_processes_is_one_process_up_to_rounding(trained, tmp_path):
    """One optimizer step on the 100 training images (ddpm.batch_size 128 is more than there are: the batch is all
    100, split 50/50): the same loss and weights as one process."""
    root = data_of(trained, tmp_path / "p")
    models = {}
    for n in (1, 2):
        with_nproc(root, n, **{"ddpm.epochs": 1, "ddpm.batch_size": 128})
        r = run(stage("train_ddpm", "linear"), root)
        assert r.stdout.count("final epoch loss") == 1  # ranks other than 0 print nothing
        metrics = (root / "metrics" / "ddpm-linear.json").read_text()
        models[n] = (torch.load(root / "models/ddpm/linear/model.pt", weights_only=False)["ema"], metrics)
    loss1, loss2 = (json.loads(models[n][1])["final_loss"] for n in (1, 2))
    assert json.loads(models[2][1])["steps"] == 1
    assert loss2 == pytest.approx(loss1, rel=1e-6)
    for k, v in models[1][0].items():
        torch.testing.assert_close(models[2][0][k], v, rtol=1e-5, atol=1e-6)


def test_classifier_training_in_two_processes_is_one_process_up_to_rounding(trained, tmp_path):
    """Two epochs of 100 images at batch 64 (a short last batch of 36), crop + flip drawn for the whole batch. In fp32:
    under bf16 autocast a sum split over two ranks rounds differently by bf16's 3 digits, not fp32's 7."""
    root = trained
    extra = {"classifier.simple_cnn.augment": True, "classifier.simple_cnn.crop_padding": 1, "runtime.precision": "fp32"}
    states, histories = {}, {}
    for n in (1, 2):
        with_nproc(root, n, **extra)
        run(stage("train_classifier", "simple_cnn", "baseline", "0"), root)
        states[n] = torch.load(root / "models/classifier/simple_cnn-baseline-seed0.pt", weights_only=False)["model"]
        histories[n] = (root / "plots/classifier/simple_cnn-baseline-seed0.csv").read_text()
    for k, v in states[1].items():
        torch.testing.assert_close(states[2][k], v, rtol=1e-5, atol=1e-6)
    assert histories[2] == histories[1]
    # ResNet-18 on 8x8 digits ends in 1x1 maps: BatchNorm cannot train on one image, so a last batch of 2 (100 at
    # batch 98) is not split 1 + 1; per-rank BatchNorm statistics differ from one process's: it trains, not equal
    with_nproc(root, 2, **{"classifier.resnet18.batch_size": 98, "classifier.resnet18.epochs": 1})
    run(stage("train_classifier", "resnet18", "baseline", "0"), root)
    assert json.loads((root / "metrics/train/resnet18-baseline-seed0.json").read_text())["optimizer_steps"] == 2


def test_two_process_checkpoint_resumes_under_two_and_under_one(trained, tmp_path):
    longer = {"ddpm.epochs": 8, "ddpm.checkpoint_minutes": 0.0005, "unet.dropout": 0.1}
    root = data_of(trained, tmp_path / "p")
    with_nproc(root, 2, **longer)
    run(stage("train_ddpm", "linear"), root)
    uninterrupted = (root / "models/ddpm/linear/model.pt").read_bytes()

    state = root / "checkpoints" / "train_ddpm-linear" / "state.pt"
    proc = subprocess.Popen(stage("train_ddpm", "linear"), cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=stage_env())
    deadline = time.monotonic() + 120
    while not state.exists():
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: torchrun passes it on, the workers agree, save and stop
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err[-2000:]
    assert err.count("stopping after this step") == 1 and err.count("error: interrupted") == 1
    assert "Traceback" not in err and out.count("stopped at step") == 1
    saved = root / "saved"
    shutil.copytree(state.parent, saved)

    r = run(stage("train_ddpm", "linear"), root)  # two processes again: the bytes of an uninterrupted run
    assert "ddpm linear: resuming from" in r.stdout
    assert (root / "models/ddpm/linear/model.pt").read_bytes() == uninterrupted

    shutil.copytree(saved, state.parent)
    with_nproc(root, 1, **longer)
    r = run(stage("train_ddpm", "linear"), root)  # one process goes on from the same state
    assert "ddpm linear: resuming from" in r.stdout
    assert json.loads((root / "metrics" / "ddpm-linear.json").read_text())["resumed_from_step"] > 0
    assert not state.parent.exists()


def workers(launcher: int) -> dict[int, int]:
    """rank -> pid of the torchrun workers of a launcher process."""
    found = {}
    for pid in subprocess.run(["pgrep", "-P", str(launcher)], capture_output=True, text=True).stdout.split():
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ranks = [int(e[5:]) for e in env if e.startswith(b"RANK=")]
        if ranks:
            found[ranks[0]] = int(pid)
    return found


def start_generating(root: Path) -> tuple[subprocess.Popen, dict[int, int]]:
    """A 2-process generate long enough to be stopped, once both workers have finished a chunk."""
    slow = {"generate.per_class": 16, "generate.steps": 20, "generate.chunk_size": 4, "generate.batch_size": 4}
    with_nproc(root, 2, **slow)
    proc = subprocess.Popen(stage("generate"), cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=stage_env())
    chunks = lambda: len(list((root / "checkpoints" / "generate").glob("*.npy")))  # noqa: E731
    before, deadline = chunks(), time.monotonic() + 120
    while chunks() < before + 2 or len(workers(proc.pid)) < 2:
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc, workers(proc.pid)


def test_workers_die_with_a_killed_launcher_and_a_stopped_worker_is_one_line(trained):
    proc, ranks = start_generating(trained)
    assert set(ranks) == {0, 1}
    proc.kill()  # SIGKILL: no chance to stop the workers itself
    proc.communicate()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and b"generate" in Path(f"/proc/{pid}/cmdline").read_bytes()
              for pid in ranks.values()):
        assert time.monotonic() < deadline, "workers outlived their launcher"
        time.sleep(0.05)

    proc, ranks = start_generating(trained)  # resumes the chunks; then SIGTERM to one worker only
    os.kill(ranks[1], signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if "error:" in line] == [
        "error: interrupted; rerun the stage to resume from its last checkpoint"], err[-2000:]
    run(stage("generate"), trained)  # and it finishes from the chunks both left
    assert not (trained / "checkpoints" / "generate").exists()


def test_in_process_launch_leaves_the_signal_handlers_as_they_were(trained, monkeypatch):
    """--no-dvc runs stages in one process: a later stage's Ctrl-C must still be a KeyboardInterrupt."""
    from dreaming_data.launch import run_stage

    monkeypatch.chdir(trained)
    monkeypatch.setenv("PYTHONPATH", stage_env()["PYTHONPATH"])
    with_nproc(trained, 2)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    run_stage(registry.stages()["sample_grid"], "params.yaml", schedule="linear", steps=10)
    assert {s: signal.getsignal(s) for s in before} == before


def test_several_nodes_through_srun(trained, tmp_path):
    """A stand-in srun that starts the command as two "nodes" on this machine: the c10d rendezvous, the node
    launchers and the error path are the real ones. The grid is the one-process bytes; a user error is one line."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/bash\nwhile [[ $1 == --* ]]; do shift; done\n"
                               '"$@" & a=$!; "$@" & b=$!; wait $a; x=$?; wait $b; y=$?; exit $(( x > y ? x : y ))\n')
    (fake / "srun").chmod(0o755)
    env = stage_env()
    env["PATH"] = f"{fake}{os.pathsep}{env['PATH']}"
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    nodes = {"runtime.nproc": 1, "runtime.nnodes": 2, "runtime.rdzv_endpoint": f"127.0.0.1:{port}"}
    with_nproc(trained, 1)
    run(stage("sample_grid", "linear", "10"), trained)
    one = (trained / "plots/samples/linear-10.png").read_bytes()
    write_params(trained / "params.yaml", tiny_params(**EXACT | nodes))
    run(stage("sample_grid", "linear", "10"), trained, env)
    assert (trained / "plots/samples/linear-10.png").read_bytes() == one
    r = run(stage("sample_grid", "cosine", "10"), trained, env, ok=False)  # the workers find no cosine model
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert [line for line in r.stderr.splitlines() if line.strip()] == [
        "error: models/ddpm/cosine/model.pt: missing; stage train_ddpm@cosine writes it: `dvc repro train_ddpm@cosine` "
        "(without DVC: `python stages/train_ddpm.py cosine`)"], r.stderr[-3000:]


def test_a_worker_error_is_one_line(trained, tmp_path):
    root = data_of(trained, tmp_path / "p")
    with_nproc(root, 2)
    r = run(stage("generate"), root, ok=False)  # no trained model here
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines == ["error: models/ddpm/linear/model.pt: missing; stage train_ddpm@linear writes it: `dvc repro "
                     "train_ddpm@linear` (without DVC: `python stages/train_ddpm.py linear`)"], r.stderr
    assert "Traceback" not in r.stderr
