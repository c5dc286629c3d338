"""Experiments under DVC on the tiny pipeline up to `compare` (no sample quality: test_pipeline_dvc.py runs every
stage): `dvc exp run` re-runs the classifier side only, and a curve grid runs through DVC's queue."""

import json
import sys

import pytest

from dvc_project import new_project, ran, sh

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return new_project(tmp_path_factory.mktemp("experiments"), "compare")


def test_experiment_reruns_only_classifier_side(project):
    repo, _ = project
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "results", cwd=repo)
    r = sh("dvc", "exp", "run", "compare", "-S", "classifier.simple_cnn.epochs=3", cwd=repo)
    stages = ran(r.stdout)
    assert {"train_classifier@simple_cnn-baseline-0", "train_matched@simple_cnn-0", "evaluate@simple_cnn-augmented-0",
            "compare"} <= stages
    # merge re-runs (it lists the judge's model, simple_cnn here) but writes the same bytes: nothing upstream runs
    assert not {s for s in stages if s.startswith(("train_ddpm", "generate", "download", "sample_"))}, stages
    diff = json.loads(sh("dvc", "metrics", "diff", "--json", cwd=repo).stdout)
    assert "metrics/comparison.json" in diff and "simple_cnn.augmented" in diff["metrics/summary.json"]


def test_curve_queues_a_grid_and_reports_it(project):
    """A 2 x 2 grid on digits at tiny size, run by DVC's own queue (the data, DDPMs, generation and baselines come
    from DVC's run cache), followed through `dvc exp show --json` and read back; the grid's 1,000 real images per class
    do not exist, so those two points fail, each said by name with its error; `dvc metrics diff` compares a point
    without dreams with one with them."""
    repo, _ = project
    sh("git", "checkout", "params.yaml", cwd=repo)  # an earlier test's experiment left its params in the workspace
    (repo / "grid.yaml").write_text(
        "target: compare\nfixed:\n  classifier.archs: [simple_cnn]\n  classifier.judge: simple_cnn\n"
        "  merge.filter: none\nsweep:\n  data.train_per_class: [10, 1000]\n  merge.synthetic_per_class: [0, 3]\n")
    sh("git", "add", "grid.yaml", cwd=repo)
    sh("git", "commit", "-qm", "grid", cwd=repo)
    r = sh(sys.executable, "-m", "dreaming_data.cli", "curve", "--grid", "grid.yaml", "--jobs", "2", cwd=repo,
           check=False)
    assert r.returncode == 2 and "dvc exp run --queue compare" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    failures = [line for line in r.stderr.splitlines() if line.startswith("curve: ") and " failed: " in line]
    assert len(failures) == 2 and all("data.train_per_class: 1000 but class" in line for line in failures), r.stderr
    assert "curve: 0 queued, 0 running, 2 done, 2 failed" in r.stdout
    assert r.stderr.strip().splitlines()[-1].startswith("error: 2 experiment(s) of the grid failed: ")
    md = (repo / "reports" / "curve.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| simple_cnn |")]
    assert len(rows) == 2, md
    zero = next(line for line in rows if line.startswith("| simple_cnn | 10 | 0 |"))
    assert "+0.0000 [+0.0000, +0.0000]" in zero  # no dreams: augmented trains exactly like baseline
    assert (repo / "plots" / "curve.png").stat().st_size > 10000
    show = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    assert len([e for entry in show for e in (entry.get("experiments") or [])]) == 4
    none_exp = zero.split("|")[-2].strip()
    some_exp = next(line for line in rows if line.startswith("| simple_cnn | 10 | 3 |")).split("|")[-2].strip()
    diff = sh("dvc", "metrics", "diff", none_exp, some_exp, "--targets", "metrics/summary.json", cwd=repo).stdout
    assert "simple_cnn.augmented" in diff and "simple_cnn.baseline" in diff
