"""The real pipeline under DVC, end to end on a tiny digits configuration, in a temporary git repository: every stage
by `dvc repro`, what re-runs after an edit, plots, a remote, then experiments: `dvc exp run` re-runs the classifier
side only, and a curve grid runs through DVC's queue. One repository for all (in file order): each stage process
costs seconds of imports, so the experiments start from the study's results (DVC skips every stage whose inputs
did not change)."""

import json
import shutil
import sys

import pytest
import torch

from dvc_project import new_project, ran, sh

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return new_project(tmp_path_factory.mktemp("study"))


def test_repro_runs_every_stage(project):
    repo, out = project
    stages = ran(out)
    assert {"download", "train_ddpm@linear", "train_ddpm@cosine", "sample_grid@linear-10", "sample_grid@cosine-10",
            "generate", "merge", "train_classifier_simple_cnn@augmented-0", "train_matched_simple_cnn@0",
            "evaluate_simple_cnn@baseline_matched-0", "evaluate_simple_cnn@baseline-0", "compare",
            "fid_reference", "ablation_sample@linear-ancestral-10", "ablation_sample@linear-dpmsolver++-10",
            "ablation"} <= stages
    cmp = json.loads((repo / "metrics" / "comparison.json").read_text())
    assert set(cmp) == {"simple_cnn"}
    # the small files a results folder takes are exactly what the stages wrote to metrics/, reports/ and plots/
    from dreaming_data.config import load_params
    from dreaming_data.tools.registry import small_outputs

    written = {f.relative_to(repo).as_posix() for d in ("metrics", "reports", "plots") for f in (repo / d).rglob("*")
               if f.is_file()}
    assert written == {f for fs in small_outputs(load_params(repo / "params.yaml")).values() for f in fs}
    assert cmp["simple_cnn"]["variants"]["baseline"]["accuracy"]["n"] == 1
    assert set(cmp["simple_cnn"]["differences"]) == {"augmented_minus_baseline", "augmented_minus_matched"}
    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    assert summary["simple_cnn"]["augmented_minus_matched_low"] <= summary["simple_cnn"]["augmented_minus_matched"]
    steps = {v: json.loads((repo / "metrics" / "train" / f"simple_cnn-{v}-seed0.json").read_text())["optimizer_steps"]
             for v in ("baseline", "baseline_matched", "augmented")}
    # 30 real (batch 64: 1 step/epoch) + 60 dreams: 90 images, 2 steps/epoch; 2 epochs
    assert steps == {"baseline": 2, "baseline_matched": 4, "augmented": 4}
    report = (repo / "reports" / "comparison.md").read_text()
    assert "## simple_cnn" in report and "CI [" in report
    ablation = json.loads((repo / "metrics" / "ablation.json").read_text())
    cells = ablation["cells"]
    assert set(cells) == {"linear-ancestral-10", "linear-dpmsolver++-10"}
    for cell in cells.values():
        assert cell["images"] == 10 and cell["kid"] is not None and 0 <= cell["precision"] <= 1 and 0 <= cell["recall"] <= 1
    assert ablation["reference"] == {"split": "train", "images": 40, "features_for_kid_and_pr": 40}
    assert ablation["cas_real_images"] == 10 and 0 <= ablation["cas_real"] <= 1  # 1 real image x 10 classes
    for picture in ("noise", "linear-10", "cosine-10"):
        assert (repo / "plots" / "samples" / f"{picture}.png").stat().st_size > 0
    assert "Data and pipelines are up to date" in sh("dvc", "status", cwd=repo).stdout


def test_projection_counts_what_the_run_did(project):
    """benchmarks/project_default.py multiplies rates by projection.pipeline_work: its counts are the run's own."""
    from dreaming_data.config import load_params
    from dreaming_data.tools import projection

    repo, _ = project
    p = load_params(repo / "params.yaml")
    work = {stage: {(part.path, part.key): part.units for part in parts}
            for stage, parts in projection.pipeline_work(p, projection.data_sizes(p, repo / "metrics" / "data.json"))}
    metrics = lambda path: json.loads((repo / "metrics" / path).read_text())  # noqa: E731
    for s in p.ddpm.schedules:
        assert work[f"train_ddpm@{s}"] == {("ddpm_step", s): metrics(f"ddpm-{s}.json")["steps"]}
    trained = list((repo / "metrics" / "train").glob("*.json"))
    assert len(trained) == 3  # variants x seeds
    for path in trained:
        m = metrics(f"train/{path.name}")
        seed = path.stem.rsplit("seed", 1)[1]
        stage = (f"train_matched_{m['arch']}@{seed}" if m["variant"] == "baseline_matched"
                 else f"train_classifier_{m['arch']}@{m['variant']}-{seed}")
        assert work[stage][("classifier_step", m["arch"])] == m["optimizer_steps"], stage
    assert sum(work["generate"].values()) == metrics("generate.json")["total"] * p.generate.steps
    assert work["fid_reference"] == {("inception", ""): metrics("ablation.json")["reference"]["images"]}
    for cell, info in metrics("ablation.json")["cells"].items():
        assert sum(work[f"ablation_sample@{cell}"].values()) == info["images"] * info["steps"]


def test_forced_rerun_trains_again(project):
    repo, _ = project
    before = json.loads((repo / "metrics" / "ddpm-linear.json").read_text())
    assert not (repo / "checkpoints").exists() or not any((repo / "checkpoints").iterdir())
    out = sh("dvc", "repro", "-f", "-s", "train_ddpm@linear", cwd=repo).stdout  # -s: not its upstream data stage
    assert ran(out) == {"train_ddpm@linear"} and "resuming" not in out
    after = json.loads((repo / "metrics" / "ddpm-linear.json").read_text())
    assert after["resumed_from_step"] == 0 and after["steps"] == before["steps"]
    assert isinstance(after["images_per_s"], float) and after["images_per_s"] > 0
    # a code edit DVC reacts to re-runs the stages that execute the file, and they recompute: the merged set is the
    # same bytes, so nothing downstream follows; back to the committed code, DVC's run cache has its outputs
    merge = repo / "stages" / "merge.py"
    text = merge.read_text()
    try:
        merge.write_text(text + "\n# edited\n")
        assert set(json.loads(sh("dvc", "status", "--json", cwd=repo).stdout)) == {"merge"}
        assert ran(sh("dvc", "repro", cwd=repo).stdout) == {"merge"}
    finally:
        merge.write_text(text)
    out = sh("dvc", "repro", cwd=repo).stdout
    assert ran(out) == set() and "Stage 'merge' is cached" in out, out
    # rewording the ablation's report marks that stage alone: no training, generation or merge stage executes it
    report = repo / "stages" / "ablation.py"
    text = report.read_text()
    try:
        report.write_text(text.replace("# Sample quality per schedule", "# Sample quality (reworded) per schedule"))
        changed = set(json.loads(sh("dvc", "status", "--json", cwd=repo).stdout))
        assert changed == {"ablation"}, changed
    finally:
        report.write_text(text)
    # what a kill during an atomic write leaves behind is not part of any tracked folder
    junk = [repo / "data" / "ablation" / ".linear-ancestral-10.npz.x1y2.tmp", repo / "metrics" / "eval" / ".a.json.k.tmp"]
    for path in junk:
        path.write_bytes(b"half")
    assert "up to date" in sh("dvc", "status", cwd=repo).stdout
    for path in junk:
        path.unlink()


def test_params_changes_rerun_only_dependent_stages(project):
    repo, _ = project
    ddpm_lr_line = "  lr: 0.001\n  grad_clip"
    params = (repo / "params.yaml").read_text()
    try:
        would_run = lambda: ran(sh("dvc", "repro", "--dry", cwd=repo).stdout)  # noqa: E731
        (repo / "params.yaml").write_text(params.replace("root: data/raw", "root: elsewhere"))
        assert "download" in would_run()  # data.* is the stage's own section
        (repo / "params.yaml").write_text(params.replace("cas_steps: 4", "cas_steps: 5"))
        assert would_run() == {"ablation"}  # an unrelated key leaves the data stage alone
        (repo / "params.yaml").write_text(params.replace("guidance: 1.8", "guidance: 2.0"))
        stages = would_run()
        assert "sample_grid@linear-10" in stages and "train_ddpm@linear" not in stages
        # fewer dreams: the largest count stays generated and the baselines stay trained; only merge re-runs
        # (a dry run cannot know yet that its output changes: then the augmented and matched runs follow)
        (repo / "params.yaml").write_text(params.replace("synthetic_per_class: 6", "synthetic_per_class: 3"))
        assert would_run() == {"merge"}
        assert ddpm_lr_line in params
        (repo / "params.yaml").write_text(params.replace(ddpm_lr_line, "  lr: 0.002\n  grad_clip", 1))
        assert {"train_ddpm@linear", "train_ddpm@cosine"} <= would_run()
        # a real run does what the dry run said: a new guidance redraws the grid and trains nothing
        (repo / "params.yaml").write_text(params.replace("guidance: 1.8", "guidance: 2.0"))
        assert ran(sh("dvc", "repro", "sample_grid@linear-10", cwd=repo).stdout) == {"sample_grid@linear-10"}
    finally:
        (repo / "params.yaml").write_text(params)
    # back to the committed params: DVC's run cache has the grid's outputs, nothing runs
    out = sh("dvc", "repro", cwd=repo).stdout
    assert ran(out) == set() and "Stage 'sample_grid@linear-10' is cached" in out, out
    assert "up to date" in sh("dvc", "status", cwd=repo).stdout


def test_the_run_cache_serves_a_training_stage(project, monkeypatch):
    """A DDPM trained with other params, then the committed params again: DVC restores the first DDPM, its metrics
    and its DVCLive files from the run cache (a curve's points of one real-set size share one DDPM); a results
    folder takes it, with the time of a run of these params."""
    from dreaming_data.runner import TIMING, params_digest
    from dreaming_data.tools import results

    repo, _ = project
    model = repo / "models" / "ddpm" / "linear" / "model.pt"
    live = repo / "dvclive" / "train_ddpm-linear" / "metrics.json"
    before, live_before = model.read_bytes(), live.read_text()
    params = (repo / "params.yaml").read_text()
    try:
        (repo / "params.yaml").write_text(params.replace("  lr: 0.001\n  grad_clip", "  lr: 0.002\n  grad_clip", 1))
        assert ran(sh("dvc", "repro", "-s", "train_ddpm@linear", cwd=repo).stdout) == {"train_ddpm@linear"}
        assert model.read_bytes() != before
    finally:
        (repo / "params.yaml").write_text(params)
    out = sh("dvc", "repro", cwd=repo).stdout
    assert ran(out) == set() and "Stage 'train_ddpm@linear' is cached" in out, out
    assert model.read_bytes() == before and live.read_text() == live_before
    assert "up to date" in sh("dvc", "status", cwd=repo).stdout
    monkeypatch.chdir(repo)
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    digest, stage = params_digest("params.yaml"), "train_ddpm@linear"
    ours = [e for e in results.timing_lines(TIMING) if e["stage"] == stage and e["params_sha256"] == digest]
    assert results.timing_lines(TIMING)[-1]["params_sha256"] != digest  # the latest run: the other lr's
    assert results.stage_times([stage], digest, TIMING)[stage] == {"seconds": ours[-1]["seconds"],
                                                                   "finished": ours[-1]["finished"], "this_params": True}
    assert results.dvc_unchanged([stage, "no_such_stage"]) == {stage}  # what --partial takes beside timed runs


def test_code_edits_rerun_only_the_stages_that_execute_the_code(project):
    """An edit of the GPU locks or the live logging marks the training and sampling stages stale, and leaves the
    stages that never run that code (data, merge, comparison, evaluation) up to date; the same for the launcher."""
    repo, _ = project
    for name in ("gpus.py", "live.py", "launch.py", "distributed.py"):
        path = repo / "src" / "dreaming_data" / name
        text = path.read_text()
        try:
            path.write_text(text + "\n# an edit\n")
            stale = ran(sh("dvc", "repro", "--dry", cwd=repo).stdout)
        finally:
            path.write_text(text)
        assert "train_ddpm@linear" in stale and "train_classifier_simple_cnn@baseline-0" in stale, (name, stale)
        assert not stale & {"download", "merge", "compare", "evaluate_simple_cnn@baseline-0", "sample_noise"}, (
            name, stale)
    assert "up to date" in sh("dvc", "status", cwd=repo).stdout


def test_each_plot_is_drawn_once(project, monkeypatch):
    """`dreaming-data plots` asks DVC for dvc.yaml's definitions and the DDPMs' live curves: each picture once;
    plain `dvc plots show` draws every stage's plot files besides (each seed's confusion matrix, ...)."""
    from dreaming_data.cli import page_targets

    repo, _ = project
    everything = json.loads(sh("dvc", "plots", "show", "--json", cwd=repo).stdout)["data"]
    assert everything["plots/confusion/simple_cnn-baseline-seed0.csv"][0]["type"] == "vega"
    monkeypatch.chdir(repo)
    shown = json.loads(sh("dvc", "plots", "show", "--json", *page_targets(), cwd=repo).stdout)["data"]
    assert set(shown) < set(everything)
    missing = {k for k, v in shown.items() if not v}  # dvc.yaml's ResNet-18 plots: this study trains none
    assert missing and all("resnet18" in k for k in missing), missing
    shown = {k: v for k, v in shown.items() if v}
    images = {k for k, v in shown.items() if v[0]["type"] == "image"}
    assert images == {"plots/ablation/ablation.png", "plots/compare/val_accuracy.png", "plots/samples/noise.png",
                      "plots/samples/generated-preview.png", "plots/compare/per_class.png",
                      "plots/novelty/nearest.png", "plots/novelty/distances.png"} | {
        f"plots/samples/{s}-10.png" for s in ("linear", "cosine")}
    charts = {k for k, v in shown.items() if v[0]["type"] == "vega"}
    archs = ("simple_cnn",)
    live = {f"dvclive/train_ddpm-{s}/plots/metrics/{m}.tsv" for s in ("linear", "cosine")
            for m in ("loss", "lr", "ema_decay", "images_per_s", "epoch_loss")}  # the DDPMs' DVCLive, per step
    assert charts == {"DDPM training loss per epoch", "FID per sampling steps (ablation)",
                      "KID per sampling steps (ablation)"} | {
        f"Validation accuracy per optimizer step, {a} (mean over seeds)" for a in archs} | {
        f"Test confusion matrix, {a} {v} seed 0" for a in archs for v in ("baseline", "augmented")} | live
    assert all(len(v) == 1 for v in shown.values())


def test_offline_plots_page(project, tmp_path):
    from dreaming_data.tools.offline_plots import remote_references

    repo, _ = project
    r = sh(sys.executable, "-m", "dreaming_data.cli", "plots", "-o", str(tmp_path / "offline"), cwd=repo)
    assert "no network needed" in r.stdout
    html = (tmp_path / "offline" / "index.html").read_text()
    assert remote_references(html) == [] and "cdn.jsdelivr" not in html
    body = html[html.index("<body>"):]
    # dvc.yaml's 9 charts (the ResNet-18 ones empty here) + the DDPMs' 10 live curves; 7 pictures + 2 sample grids
    assert body.count("vegaEmbed(") == 9 + 10 and body.count("<img") == 7 + 2
    assert "Validation accuracy per optimizer step, simple_cnn (mean over seeds)" in body
    sh("dvc", "plots", "show", "-o", str(tmp_path / "online"), cwd=repo)  # dvc alone: scripts from a CDN
    assert remote_references((tmp_path / "online" / "index.html").read_text())


def test_remote_round_trip(project, tmp_path):
    """dvc push to a local-directory remote, clone, dvc pull: the study is back, nothing to recompute."""
    from dreaming_data.ddpm import load_ddpm
    from dreaming_data.io import load_images

    repo, _ = project
    (repo / "checkpoints" / "train_ddpm-linear").mkdir(parents=True, exist_ok=True)
    secret = repo / "checkpoints" / "train_ddpm-linear" / "state.pt"
    secret.write_bytes(b"resumable state never leaves this machine")
    sh("dvc", "remote", "add", "-d", "shared", str(tmp_path / "remote"), cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "results and remote", cwd=repo)
    sh("dvc", "push", cwd=repo)
    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(repo), str(clone), cwd=tmp_path)
    sh("dvc", "pull", cwd=clone)
    assert "Data and pipelines are up to date" in sh("dvc", "status", cwd=clone).stdout
    assert ran(sh("dvc", "repro", cwd=clone).stdout) == set()
    for path in ("models/ddpm/linear/model.pt", "models/classifier/simple_cnn-baseline-seed0.pt", "data/generated/synthetic.npz"):
        assert (clone / path).read_bytes() == (repo / path).read_bytes(), path
    assert load_ddpm(clone / "models/ddpm/linear/model.pt", torch.device("cpu")).classes == tuple(str(i) for i in range(10))
    assert len(load_images(clone / "data/generated/synthetic.npz")) > 0
    assert not (clone / "checkpoints").exists()
    stored = [f.read_bytes() for f in (tmp_path / "remote").rglob("*") if f.is_file()]
    assert stored and secret.read_bytes() not in stored
    shutil.rmtree(repo / "checkpoints")


def test_experiment_reruns_only_classifier_side(project):
    """The point without dreams as an experiment in the workspace: the merged set and what trains on it re-run; the
    data, the DDPMs, generation and the baseline come from the study's run; no dreams, no gain."""
    repo, _ = project
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "results", "--allow-empty", cwd=repo)  # (the remote test may have committed them)
    r = sh("dvc", "exp", "run", "compare", "-S", "merge.synthetic_per_class=0", cwd=repo)
    stages = ran(r.stdout)
    assert {"merge", "train_classifier_simple_cnn@augmented-0", "train_matched_simple_cnn@0",
            "evaluate_simple_cnn@augmented-0", "compare"} <= stages
    assert not {s for s in stages if s.startswith(("train_ddpm", "generate", "download", "sample_"))
                or "baseline-0" in s}, stages
    summary = json.loads((repo / "metrics" / "summary.json").read_text())["simple_cnn"]
    assert summary["augmented"] == summary["baseline"] == summary["baseline_matched"]  # the curve's drawn zeros
    assert summary["augmented_minus_baseline"] == summary["augmented_minus_matched"] == 0
    diff = json.loads(sh("dvc", "metrics", "diff", "--json", cwd=repo).stdout)
    assert "metrics/comparison.json" in diff and "simple_cnn.augmented" in diff["metrics/summary.json"]


def test_curve_queues_a_grid_and_reports_it(project):
    """After the other tests (its grid commits): a 2 x 1 grid on digits at tiny size, run by DVC's own queue,
    followed through `dvc exp show --json` and read back. Its point with dreams is the study's own params (every stage
    up to date: nothing trains again); the grid's 1,000 real images per class do not exist, so that point fails,
    said by name with its error; `dvc metrics diff` compares the report's experiment with the previous test's,
    which has no dreams. (Grids of several values per key: test_curve.py, on DVC's JSON.)"""
    repo, _ = project
    sh("git", "checkout", "--", ".", cwd=repo)  # the previous test's experiment is in the workspace: the study's again
    study = json.loads((repo / "metrics" / "summary.json").read_text())["simple_cnn"]
    (repo / "grid.yaml").write_text(
        "target: compare\nfixed:\n  classifier.seeds.resnet18: []\n  classifier.judge: simple_cnn\n"
        "  merge.filter: none\nsweep:\n  data.train_per_class: [3, 1000]\n  merge.synthetic_per_class: [6]\n")
    sh("git", "add", "-A", cwd=repo)  # the grid, and the study's results if no earlier test committed them
    sh("git", "commit", "-qm", "grid", cwd=repo)
    r = sh(sys.executable, "-m", "dreaming_data.cli", "curve", "--grid", "grid.yaml", "--jobs", "2", cwd=repo,
           check=False)
    assert r.returncode == 2 and "dvc exp run --queue compare" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    failures = [line for line in r.stderr.splitlines() if line.startswith("curve: ") and " failed: " in line]
    assert len(failures) == 1 and "data.train_per_class: 1000 but class" in failures[0], r.stderr
    assert "curve: 0 queued, 0 running, 1 done, 1 failed" in r.stdout
    assert r.stderr.strip().splitlines()[-1].startswith("error: 1 experiment(s) of the grid failed: ")
    md = (repo / "results" / "grid" / "curve.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| simple_cnn | 3 | 6 |")]
    zero = [line for line in md.splitlines() if line.startswith("| simple_cnn | 3 | 0 |")]  # drawn from the baseline
    assert len(rows) == 1 and len(zero) == 1 and "(its baseline)" in zero[0], md
    gain = [study[f"augmented_minus_baseline{part}"] for part in ("", "_low", "_high")]
    assert "{:+.4f} [{:+.4f}, {:+.4f}]".format(*gain) in rows[0], (rows[0], gain)  # the study's own result
    exp = rows[0].split("|")[-2].split()[0]  # "name (commit)"
    assert ran(sh("dvc", "queue", "logs", exp, cwd=repo).stdout) == set()  # every stage up to date
    assert (repo / "results" / "grid" / "curve.png").stat().st_size > 10000
    show = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    assert len([e for entry in show for e in (entry.get("experiments") or [])]) == 2
    no_dreams, = sh("dvc", "exp", "list", "--rev", "HEAD~1", "--name-only", cwd=repo).stdout.split()
    diff = sh("dvc", "metrics", "diff", no_dreams, exp, "--targets", "metrics/summary.json", cwd=repo).stdout
    assert "simple_cnn.augmented" in diff and "simple_cnn.augmented_minus_baseline" in diff
