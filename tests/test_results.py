"""Committed results: the GPU study profile at tiny size end to end (run, collect, render), and README's table and
docs/results.md checked against the committed results folders."""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from conftest import ROOT, SHARED_CIFAR, TINY, default_params

from dreaming_data.cli import app
from dreaming_data.overrides import PROFILES, apply_overrides, load_profile
from dreaming_data.tools import registry, results
from dreaming_data.config import parse_params
from dreaming_data.errors import UserError

# The GPU study profile made tiny for a CPU: digits at 8x8 as in the quickstart, TINY's sizes with fewer images for
# Inception, one seed (the profile's 3 are checked by test_every_profile_is_valid_and_listed; several seeds end to
# end: test_dvc_contract.py), its ablation cells at one step count on the linear schedule, Inception 2 images at a
# time (the projection times one such batch per call). Every other key (both schedules and archs, DDIM generation,
# the samplers) is the profile's.
TINY_GPU_STUDY = {
    "runtime.device": "cpu", "runtime.num_workers": 2,
    "data.source": "digits", "data.path": None, "data.image_size": 8,
    "unet.channels": 16, "unet.channel_mult": [1, 2], "unet.num_res_blocks": 1, "unet.attention_resolutions": [4],
    "ddpm.batch_size": 32, "ddpm.hflip": False, "generate.batch_size": 20,
    "classifier.resnet18.batch_size": 32, "classifier.resnet18.crop_padding": 1, "classifier.resnet18.hflip": False,
    "classifier.judge": "simple_cnn",
    **TINY,
    "ddpm.epochs": 2, "classifier.simple_cnn.epochs": 1, "classifier.resnet18.epochs": 1,
    "classifier.seeds.simple_cnn": [0], "classifier.seeds.resnet18": [0], "ablation.schedules": ["linear"], "data.train_per_class": 3, "data.val_size": 10,
    "novelty.per_class": 1,
    "ablation.steps": [10], "ablation.per_class": 1, "eval.batch_size": 2,
}


def test_every_profile_is_valid_and_listed():
    """Each committed profile applies to params.yaml and passes its validation; every profile file is offered."""
    files = {p.stem for p in (ROOT / "src" / "dreaming_data" / "profiles").glob("*.yaml")}
    assert files == set(PROFILES)
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name in PROFILES:
        parse_params(apply_overrides(base, load_profile(name)), f"{name} profile")
    study = parse_params(apply_overrides(base, load_profile("gpu-study")))
    assert study.data.train_per_class is None and list(study.ddpm.schedules) == ["linear", "cosine"]
    assert study.classifier.seeds_of("resnet18") == (0, 1, 2) and study.classifier.archs == ("simple_cnn", "resnet18")
    assert study.diffusion.timesteps == 500 and study.diffusion.guidance == 1.8


# What comes back from the GPU machine (DEVELOPERS.md): at most 8 files, 16 MiB each, 64 MiB together, no deeper than
# OUT/a/b/file, names of letters, digits, '.', '_' and '-'; and what travels there: at most 62 MiB with the tree.
RETURN_FILES, RETURN_FILE_BYTES, RETURN_BYTES, RETURN_DEPTH = 8, 16 * 2 ** 20, 64 * 2 ** 20, 3
JOB_OUTPUTS = {"gpu.txt", "study.log", "results-gpu-study.tgz", "projection-default.json", "projection.log",
               "bench.log"}
# The throughput benchmark and the projection at rehearsal size (the job's own arguments come first; these win)
JOB_ENV = {"BENCH_ARGS": "--unet-channels 16 --image-size 8 --channels 1 --batches 4 --sample-batch 8 --seconds 0.1 "
                         "--warmup 1", "PROJECTION_ARGS": "--seconds 0"}


def travelling_tree(dest: Path) -> Path:
    """What a device call carries (tracked and untracked-not-ignored files) as a fresh repository at ``dest``."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "tree"]):
        subprocess.run(["git", *cmd], cwd=dest, check=True, capture_output=True)
    return dest


def start_job(work: Path, out: Path, budget: int, site: Path) -> subprocess.Popen:
    """benchmarks/gpu_study.sh as the GPU machine runs it, at tiny size on this CPU, with the project's
    dependencies that the GPU image lacks made unimportable; in a session of its own (``kill_session``)."""
    env = dict(os.environ, OUT=str(out), BUDGET=str(budget), PYTHONPATH=str(site), **JOB_ENV)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    args = [a for k, v in TINY_GPU_STUDY.items() for a in ("-S", f"{k}={json.dumps(v)}")]
    return subprocess.Popen(["bash", "benchmarks/gpu_study.sh", *args], cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=900)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def kill_session(leader: subprocess.Popen) -> None:
    """SIGKILL every process of ``leader``'s session, as the device machine ends a command at its time limit
    (`timeout` inside the job puts the study in a process group of its own, not in a session of its own)."""
    import psutil

    def living() -> list:
        found = []
        for proc in psutil.process_iter():
            try:
                if proc.pid != leader.pid and os.getsid(proc.pid) == leader.pid and \
                        proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except (OSError, psutil.Error):  # gone meanwhile
                pass
        return found

    leader.kill()  # first: it starts no one else; Popen reaps it (psutil's wait would, and lose its status)
    while victims := living():  # again: a stage may have started while the first ones died
        for proc in victims:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(victims, timeout=30)


def job(work: Path, out: Path, budget: int, site: Path) -> subprocess.CompletedProcess:
    return finish(start_job(work, out, budget, site))


def killed_after_first_archive(work: Path, out: Path, site: Path) -> subprocess.CompletedProcess:
    """The job killed whole (SIGKILL, no clean-up of its own) as soon as its results archive first appears: after
    its first stage, long before its end, whatever this machine's speed (an event, not a clock)."""
    import time

    proc = start_job(work, out, 900, site)
    archive = out / "results-gpu-study.tgz"
    while proc.poll() is None and not archive.exists():
        time.sleep(0.05)
    kill_session(proc)
    return finish(proc)


def check_returnable(out: Path) -> list[Path]:
    files = sorted(f for f in out.rglob("*") if f.is_file())
    assert len(files) <= RETURN_FILES, [f.name for f in files]
    for f in files:
        rel = f.relative_to(out)
        assert len(rel.parts) <= RETURN_DEPTH and all(re.fullmatch(r"[A-Za-z0-9._-]+", p) for p in rel.parts), rel
        assert f.stat().st_size <= RETURN_FILE_BYTES, rel
    assert sum(f.stat().st_size for f in files) <= RETURN_BYTES
    return files


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """The GPU job rehearsed in a fresh copy of the tree: prepare (here), then the job (the GPU machine: no .git, no
    DVC, only the image's packages and .gpu/), once to the end and once killed whole after its first stage."""
    from gpu_image import blocker

    base = tmp_path_factory.mktemp("job")
    work = travelling_tree(base / "work")
    archive = SHARED_CIFAR if SHARED_CIFAR.is_file() else tiny_image_folder(base / "folder.tar.gz")
    prep = subprocess.run(["bash", "benchmarks/gpu_study.sh", "prepare", str(archive)], cwd=work, capture_output=True,
                          text=True, env=dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep
                                              + os.environ["PATH"]))
    assert prep.returncode == 0, prep.stdout[-2000:] + prep.stderr[-2000:]
    shutil.rmtree(work / ".git")
    site = blocker(base / "site")
    cut = base / "cut"
    shutil.copytree(work, cut)
    full = job(work, base / "out", 900, site)
    assert full.returncode == 0, full.stdout[-3000:] + full.stderr[-3000:]
    short = killed_after_first_archive(cut, base / "out-cut", site)
    assert short.returncode == -9, short.stdout[-3000:] + short.stderr[-3000:]  # killed, not finished
    return work, base, prep, short, full


@pytest.fixture(scope="module")
def study(rehearsal):
    """The rehearsed job's results archive, unpacked into the work folder's results/ as after a real job."""
    work, base, _, _, _ = rehearsal
    r = CliRunner().invoke(app, ["results", "unpack", str(base / "out" / "results-gpu-study.tgz"), "--out",
                                 str(work / "results")])
    assert r.exit_code == 0, r.output
    folder, = (work / "results").glob("gpu-study-*")
    return work, folder, r.output


@pytest.mark.slow
def test_the_gpu_job_travels_imports_and_returns_within_the_limits(rehearsal):
    work, base, prep, short, full = rehearsal
    carried = re.search(r"carried: the tree \d+ bytes \+ \.gpu/ = (\d+) bytes", prep.stdout)
    assert carried and int(carried.group(1)) <= 62 * 2 ** 20, prep.stdout
    assert {f.name for f in check_returnable(base / "out")} == JOB_OUTPUTS
    log = (base / "out" / "study.log").read_text()
    assert "ModuleNotFoundError" not in log + full.stderr and "Traceback" not in log, log[-3000:]
    assert "=== ablation:" in log and "study wall:" in log
    check_projection(json.loads((base / "out" / "projection-default.json").read_text()),
                     (base / "out" / "projection.log").read_text())
    assert "sample guided batch" in (base / "out" / "bench.log").read_text()


def check_projection(result: dict, log: str) -> None:
    """benchmarks/project_default.py as the job ran it: params.yaml with the job's data and the rehearsal's overrides,
    every stage of those params in order, a rate for each code path they use, totals that add up."""
    p = parse_params(apply_overrides(default_params(), result["overrides"]))
    # the job's own three (the CIFAR-10 archive, the fp16 Inception weights), then the rehearsal's, which win
    assert result["overrides"] == {"eval.fid_weights": ".gpu/inception-fp16.pt"} | TINY_GPU_STUDY
    assert result["params"] == f"params.yaml + {3 + len(TINY_GPU_STUDY)} overrides"
    assert result["device"].startswith("CPU")
    assert [row["stage"] for row in result["stages"]] == [i.label for i in registry.ordered(p)]
    assert result["total_s"] == pytest.approx(sum(row["total_s"] for row in result["stages"]))
    assert {(r["path"], r["key"]) for r in result["rates"]} == {
        ("ddpm_step", "linear"), ("ddpm_step", "cosine"), ("sample", "ancestral@4"), ("sample", "ancestral@30"),
        ("sample", "ddim@4"), ("classifier_step", "simple_cnn"), ("classifier_step", "resnet18"),
        ("predict", "simple_cnn"), ("predict", "resnet18"), ("inception", "")}
    assert all(r["units_per_s"] > 0 for r in result["rates"])
    rows = {row["stage"]: row for row in result["stages"]}
    assert rows["generate"]["total_s"] > 0 and rows["compare"]["total_s"] == 0
    assert "| **total** |" in log


@pytest.mark.slow
def test_a_job_cut_short_returns_every_stage_that_finished(rehearsal, tmp_path):
    work, base, _, short, _ = rehearsal
    files = {f.name for f in check_returnable(base / "out-cut")}
    assert {"gpu.txt", "study.log", "results-gpu-study.tgz"} <= files, (files, short.stdout[-2000:])
    r = CliRunner().invoke(app, ["results", "unpack", str(base / "out-cut" / "results-gpu-study.tgz"), "--out",
                                 str(tmp_path / "results")])
    assert r.exit_code == 0 and "partial:" in r.output, r.output
    folder, = (tmp_path / "results").iterdir()
    env = json.loads((folder / "environment.json").read_text())
    done, total = env["partial"]["stages_finished"], env["partial"]["stages"]
    assert 1 <= done < total and (folder / "metrics" / "data.json").is_file()
    assert set(json.loads((folder / "timing.json").read_text())["stages"]) >= {"download"}
    text = results.render(tmp_path / "results")
    assert f"**A partial run**: {done} of {total} stages finished" in text
    assert results.unmatched_numbers(results.render_folder(folder), results.folder_values(folder)) == []


def tiny_image_folder(path: Path) -> Path:
    """A CIFAR-like image-folder archive, for a machine without ../shared."""
    import tarfile

    from PIL import Image

    src = path.parent / "folder"
    for split, n in (("train", 3), ("test", 1)):
        for c in ("a", "b"):
            (src / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.new("RGB", (32, 32), (40 * i, 100, 200)).save(src / split / c / f"{i}.jpg")
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src, arcname="folder")
    return path


@pytest.mark.slow
def test_tiny_gpu_study_runs_and_collects(study):
    work, folder, out = study
    assert folder.name.startswith("gpu-study-cpu-") and f"{folder}: unpacked" in out and "partial" not in out
    env = json.loads((folder / "environment.json").read_text())
    assert env["device"] == "cpu" and env["profile"] == "gpu-study" and env["torch"]
    run = yaml.safe_load((folder / "params.yaml").read_text())
    assert run["generate"]["per_class"] == 6 and run["diffusion"]["sampler"] == "ddim"
    setting = json.loads((folder / "setting.json").read_text())["differences"]
    assert setting["generate.per_class"] == [6, 5000] and setting["diffusion.sampler"] == ["ddim", "ancestral"]
    timing = json.loads((folder / "timing.json").read_text())
    stages = timing["stages"]
    assert len(stages) == 1 + 2 + 1 + 4 + 1 + 2 * 3 + 1 + 2 * 3 + 1 + 1 + 2 + 1 + 1  # every stage of the run
    assert all(s["this_params"] and s["seconds"] > 0 for s in stages.values())
    assert timing["families"]["evaluate"]["stages"] == 6
    # exactly what the run wrote to metrics/, reports/ and plots/ (registry.small_outputs), and the folder's own files
    written = {f.relative_to(work).as_posix() for d in ("metrics", "reports", "plots") for f in (work / d).rglob("*")
               if f.is_file()}
    collected = {f.relative_to(folder).as_posix() for f in folder.rglob("*") if f.is_file()}
    p = parse_params(yaml.safe_load((folder / "params.yaml").read_text()))
    assert written == {f for fs in registry.small_outputs(p).values() for f in fs}
    confusion = {f for f in written if f.startswith(results.CONFUSION)}
    assert len(confusion) == 2 * 6  # a CSV and a heatmap per evaluation, kept as one npz of the CSVs' rows
    assert collected == written - confusion | {results.PREDICTIONS, "params.yaml", "dvc.yaml", ".dvc/config",
                                               ".dvc/.gitignore", "timing.json", "environment.json", "setting.json"}
    kept = results.read_predictions(folder / results.PREDICTIONS)
    for f in sorted(confusion)[::2]:
        rows = pd.read_csv(work / f, dtype=str, keep_default_na=False)
        assert kept[Path(f).stem] == (rows["actual"].tolist(), rows["predicted"].tolist()), f
    assert not list(folder.rglob("*.pt")) and list(folder.rglob("*.npz")) == [folder / results.PREDICTIONS]
    assert max(f.stat().st_size for f in folder.rglob("*") if f.is_file()) < results.MAX_FILE_BYTES


@pytest.mark.slow
def test_results_folder_answers_dvc_metrics_and_plots_show(study):
    """The folder is a DVC subproject: `dvc metrics show` / `dvc plots show` there show the collected run."""
    _, folder, _ = study
    shown = subprocess.run([sys.executable, "-m", "dvc", "metrics", "show", "--json"], cwd=folder,
                           capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    data = next(iter(json.loads(shown.stdout).values()))["data"]
    assert data["metrics/summary.json"]["data"]["simple_cnn"]["augmented"] == \
        json.loads((folder / "metrics/summary.json").read_text())["simple_cnn"]["augmented"]
    plots = subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "--json"], cwd=folder,
                           capture_output=True, text=True)
    assert plots.returncode == 0, plots.stderr
    names = set(json.loads(plots.stdout)["data"])
    assert {"DDPM training loss per epoch", "plots/samples/linear-40.png"} <= names
    assert not any("confusion" in n for n in names)  # the rows travel as plots/predictions.npz, not as plots


@pytest.mark.slow
def test_collect_refuses_stale_or_existing_results(study, monkeypatch):
    work, folder, _ = study
    monkeypatch.chdir(work)
    used = work / ".dreaming-data" / "params-gpu-study.yaml"
    with pytest.raises(UserError, match="already exists"):
        results.collect("gpu-study", used, date=folder.name[-10:])
    changed = work / "changed.yaml"
    changed.write_text(used.read_text().replace("guidance: 1.8", "guidance: 2.0"))
    with pytest.raises(UserError, match="stage download last ran with other params"):
        results.collect("gpu-study", changed, out_root=work / "elsewhere")
    assert not (work / "elsewhere").exists() or not any((work / "elsewhere").iterdir())


@pytest.mark.slow
def test_collect_takes_only_this_runs_outputs_and_needs_all_of_them(study, monkeypatch, tmp_path):
    work, folder, _ = study
    monkeypatch.chdir(work)
    used = work / ".dreaming-data" / "params-gpu-study.yaml"
    leftover = [work / "plots/samples/linear-500.png", work / "metrics/ablation/sampling-linear-ancestral-500.json"]
    for f in leftover:  # what an earlier run with other params left in the workspace
        f.write_bytes((work / "plots/samples/noise.png").read_bytes() if f.suffix == ".png" else b"{}")
    out = results.collect("gpu-study", used, out_root=tmp_path / "a")
    assert not (out / "plots/samples/linear-500.png").exists()
    assert not (out / "metrics/ablation/sampling-linear-ancestral-500.json").exists()
    assert "sampling-linear-ancestral-500" not in (out / "dvc.yaml").read_text()
    for f in leftover:
        f.unlink()
    gone = work / "metrics/eval/resnet18-augmented-seed0.json"
    kept = gone.read_bytes()
    gone.unlink()
    try:
        with pytest.raises(UserError, match=r"metrics/eval/resnet18-augmented-seed0.json: missing \(written by stage "
                                            r"evaluate_resnet18@augmented-0"):
            results.collect("gpu-study", used, out_root=tmp_path / "b")
        gone.write_bytes(kept)  # back, but newer than the stage's run: restored by something else (a dvc checkout)
        with pytest.raises(UserError, match="outputs of stage evaluate_resnet18@augmented-0 changed after it last ran"):
            results.collect("gpu-study", used, out_root=tmp_path / "b")
    finally:
        gone.write_bytes(kept)
        finished = json.loads((folder / "timing.json").read_text())["stages"]["evaluate_resnet18@augmented-0"]["finished"]
        t = datetime.datetime.fromisoformat(finished).timestamp()
        os.utime(gone, (t, t))  # as the stage left it
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())


def test_timing_log_skips_malformed_lines(tmp_path):
    log = tmp_path / "timing.jsonl"
    good = {"stage": "compare", "seconds": 1.5, "params_sha256": "x", "finished": "2026-11-28T00:00:00+00:00"}
    log.write_bytes(b"[1, 2]\n" + json.dumps(good).encode() + b'\n{"stage": "merge"}\n\xff\xfe\n'
                    + json.dumps(good | {"stage": "merge", "seconds": float("nan")}).encode() + b"\n{\"stage\": \"me")
    assert results.timing_lines(log) == [good]
    assert results.stage_times(["compare", "merge"], "x", log) == {
        "compare": {"seconds": 1.5, "finished": good["finished"], "this_params": True}}


def test_render_refuses_what_is_not_a_results_folder(tmp_path):
    readme = tmp_path / "README.md"
    root = tmp_path / "results"
    (root / ".gpu-study-cpu-2026-11-28.tmp").mkdir(parents=True)  # a killed collect's: not a result
    readme.write_text(f"{results.END}\n{results.BEGIN}\nold\n{results.END}\n")
    assert results.update_section(readme, results.headline(root)) is False and "No results folder yet" in readme.read_text()
    (root / "half").mkdir()
    with pytest.raises(UserError, match="half/environment.json: not found"):
        results.headline(root)
    (root / "half" / "environment.json").write_text('{"date": "2026-11-28", "device": "cpu"}')
    with pytest.raises(UserError, match="half/params.yaml: not found"):
        results.render(root)
    r = CliRunner().invoke(app, ["results", "render", "--readme", str(readme), "--doc", str(tmp_path / "none.md"),
                                 "--root", str(root)])
    assert r.exit_code == 2 and "none.md: not found" in r.output and "old" in readme.read_text()


def test_readme_shows_the_newest_run_of_each_profile(tmp_path):
    root = tmp_path / "results"
    for name, profile, date in [("cifar-cpu-cpu-2026-12-03", "cifar-cpu", "2026-12-03"),
                                ("cifar-cpu-cpu-2026-12-07", "cifar-cpu", "2026-12-07"),
                                ("quickstart-cpu-2026-12-01", "quickstart", "2026-12-01")]:
        (root / name).mkdir(parents=True)
        (root / name / "environment.json").write_text(json.dumps({"profile": profile, "device": "cpu", "date": date}))
    table = results.headline(root, Path("docs/results.md"))
    assert "cifar-cpu-cpu-2026-12-07" in table and "quickstart-cpu-2026-12-01" in table
    assert "cifar-cpu-cpu-2026-12-03" not in table and "1 older ones are in [docs/results.md]" in table
    assert len(results.folders(root)) == 3  # docs/results.md renders every folder


@pytest.mark.slow
def test_render_and_numbers_of_a_collected_run(study, tmp_path):
    _, folder, _ = study
    readme, doc = tmp_path / "README.md", tmp_path / "docs" / "results.md"
    doc.parent.mkdir()
    for path in (readme, doc):
        path.write_text(f"# x\n\n{results.BEGIN}\nOLD SECTION\n{results.END}\n\nafter\n")
    args = ["results", "render", "--readme", str(readme), "--doc", str(doc), "--root", str(folder.parent)]
    assert CliRunner().invoke(app, args + ["--check"]).exit_code == 1
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    for path in (readme, doc):
        text = path.read_text()
        assert text.endswith("\n\nafter\n") and "OLD SECTION" not in text
    table = readme.read_text()[slice(*results.section(readme.read_text()))]
    assert [line for line in table.splitlines() if folder.name in line] == results.headline_rows(folder, Path("docs/results.md"))
    assert f"[`{folder.name}`](docs/results.md#{folder.name})" in table and "| resnet18 |" in table
    full = doc.read_text()[slice(*results.section(doc.read_text()))]
    assert "| simple_cnn |" in full and "| resnet18 |" in full and "not comparable with the report" in full
    assert f"### `{folder.name}`" in full
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", full):  # image links resolve from the doc's folder
        assert (doc.parent / image).is_file(), image
    for text in (results.render_folder(folder), "\n".join(results.headline_rows(folder))):
        assert results.unmatched_numbers(text, results.folder_values(folder)) == []
    assert CliRunner().invoke(app, args + ["--check"]).exit_code == 0


def test_number_check_catches_a_number_not_in_the_results():
    values = [0.93122, 160.0, 0.004, 0.95, 1234.5]
    assert results.unmatched_numbers("0.931 ± 0.004 (160 steps), 95% CI, 1,234.5 s", values) == []
    assert results.unmatched_numbers("0.932 ± 0.004", values) == ["0.932"]
    assert results.unmatched_numbers("(161 steps)", values) == ["161"]
    assert results.unmatched_numbers("+0.931 and −0.004", [0.931, -0.004]) == []
    assert results.unmatched_numbers("−0.931 and +0.004", [0.931, -0.004]) == ["−0.931", "+0.004"]  # signs count
    assert results.unmatched_numbers("report: 54% → 57.12%; `commit 0123456` ![a-9](x/9.png)", []) == []


def test_readme_and_results_doc_are_rendered_from_committed_results():
    """README's table and docs/results.md are exactly what results/ renders, and every number in them is in the
    files of the folder it stands for."""
    readme, doc = (ROOT / "README.md").read_text(), (ROOT / "docs" / "results.md").read_text()
    assert readme[slice(*results.section(readme))] == in_root(results.headline), "run `dreaming-data results render`"
    assert doc[slice(*results.section(doc))] == in_root(lambda: results.render(base=Path("docs"))), \
        "run `dreaming-data results render`"
    for folder in results.folders(ROOT / "results"):  # each folder's part, against that folder's files alone
        for text in (results.render_folder(folder), "\n".join(results.headline_rows(folder))):
            assert results.unmatched_numbers(text, results.folder_values(folder)) == [], folder


def in_root(render):
    import os

    old = os.getcwd()
    os.chdir(ROOT)
    try:
        return render()
    finally:
        os.chdir(old)
