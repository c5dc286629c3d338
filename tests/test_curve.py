"""The dreaming curve: a grid file becomes DVC's own queued sweep, and finished experiments become the report.
(The real queue on a 2 x 2 grid runs in test_pipeline_dvc.py, on the tiny study's repository.)"""

import json

import pytest

from dreaming_data.tools.curve import Block, Grid, curve_rows, load_grid, queue_commands, write_curve
from dreaming_data.errors import UserError

from conftest import ROOT, default_params


def test_queue_command_is_one_dvc_sweep():
    grid = Grid(("compare",), (Block({"data.train_per_class": [10, None], "merge.synthetic_per_class": [0, 6]}, {}),),
                {"classifier.seeds.resnet18": []}, None)
    assert len(grid.combinations()) == 4
    assert queue_commands(grid) == [["exp", "run", "--queue", "compare", "-S", "classifier.seeds.resnet18=[]",
                                     "-S", "data.train_per_class=10,null", "-S", "merge.synthetic_per_class=0,6"]]


def test_blocks_queue_one_sweep_each_with_their_own_fixed_keys(tmp_path):
    """A grid of blocks: each real-set size with its own DDPM epochs, its own sweep of dream counts; one queued DVC
    sweep per block, and the report's rows told apart by every key that varies."""
    path = tmp_path / "g.yaml"
    path.write_text("profile: quickstart\nfixed:\n  merge.filter: none\nblocks:\n"
                    "  - fixed: {data.train_per_class: 10, ddpm.epochs: 40}\n"
                    "    sweep: {merge.synthetic_per_class: [0, 30]}\n"
                    "  - fixed: {data.train_per_class: 40, ddpm.epochs: 10}\n"
                    "    sweep: {merge.synthetic_per_class: [0, 30]}\n")
    grid = load_grid(path, default_params())
    assert grid.keys() == ["data.train_per_class", "ddpm.epochs", "merge.synthetic_per_class"]
    assert len(grid.combinations()) == 4 and "ddpm.epochs" not in grid.overrides()
    first, second = queue_commands(grid)
    assert first[first.index("-S", len(first) - 6):] == [
        "-S", "data.train_per_class=10", "-S", "ddpm.epochs=40", "-S", "merge.synthetic_per_class=0,30"]
    assert second[-6:] == ["-S", "data.train_per_class=40", "-S", "ddpm.epochs=10", "-S", "merge.synthetic_per_class=0,30"]
    exp = _exp("forty", "2026-01-01T00:00:01", 40, 30, 0.01)
    params = exp["revs"][0]["data"]["params"]["params.yaml"]["data"]
    for key, value in grid.overrides().items():
        node = params
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    show = [{"rev": "abc", "name": "main", "data": {"rev": "abc"}, "error": None, "experiments": [exp]}]
    assert curve_rows(show, grid) == []  # its DDPM epochs are no block's (the profile's 100)
    params["ddpm"]["epochs"] = 10
    [row] = curve_rows(show, grid)
    assert (row["data.train_per_class"], row["ddpm.epochs"], row["merge.synthetic_per_class"]) == (40, 10, 30)
    path.write_text("blocks:\n  - fixed: {data.train_per_class: 10}\n    sweep: {merge.synthetic_per_class: [0]}\n"
                    "  - sweep: {data.train_per_class: [10], merge.synthetic_per_class: [0, 30]}\n")
    with pytest.raises(UserError, match="two blocks share a point"):
        load_grid(path, default_params())


def test_grid_file_is_checked_against_params(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("sweep:\n  merge.synthetic_per_class: [0, 100]\n")
    with pytest.raises(UserError, match="must include data.train_per_class"):
        load_grid(path, default_params())
    path.write_text("sweep:\n  data.train_per_class: [10]\n  merge.synthetic_per_class: [0, 99999]\n")
    with pytest.raises(UserError, match="merge.synthetic_per_class"):  # more than generate.per_class
        load_grid(path, default_params())
    path.write_text("sweep:\n  data.train_per_class: [10]\n  merge.synthetic_per_class: [0]\n  nope.key: [1]\n")
    with pytest.raises(UserError, match="nope.key"):
        load_grid(path, default_params())
    path.write_text("profile: quickstart\nsweep:\n  data.train_per_class: [10, 40]\n  merge.synthetic_per_class: [0, 30]\n")
    grid = load_grid(path, default_params())
    assert grid.overrides()["data.source"] == "digits"
    # the profile sets data.train_per_class (20); the grid sweeps it: the sweep's values, not the profile's
    assert "data.train_per_class" not in grid.overrides()
    assert "data.train_per_class=20" not in queue_commands(grid)[0]
    exp = _exp("ten", "2026-01-01T00:00:01", 10, 30, 0.01)
    for key, value in grid.overrides().items():  # an experiment made by that queue records every override
        node = exp["revs"][0]["data"]["params"]["params.yaml"]["data"]
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    show = [{"rev": "abc", "name": "main", "data": {"rev": "abc"}, "error": None, "experiments": [exp]}]
    assert [r["experiment"] for r in curve_rows(show, grid)] == ["ten"]


def _exp(name, timestamp, real, synthetic, gain, state="success"):
    summary = {"cnn": {"baseline": 0.5, "baseline_matched": 0.51, "augmented": 0.5 + gain,
                       "augmented_minus_baseline": gain, "augmented_minus_baseline_low": gain - 0.01,
                       "augmented_minus_baseline_high": gain + 0.01, "augmented_minus_matched": gain - 0.01,
                       "augmented_minus_matched_low": gain - 0.02, "augmented_minus_matched_high": gain}}
    data = {"rev": name * 4, "timestamp": timestamp,
            "params": {"params.yaml": {"data": {"data": {"train_per_class": real},
                                                "merge": {"synthetic_per_class": synthetic}}}},
            "metrics": {"metrics/summary.json": {"data": summary}}}
    return {"revs": [{"rev": name * 4, "name": name, "data": data, "error": None, "experiments": None}],
            "executor": {"state": state}, "name": name}


def test_rows_come_from_finished_experiments_latest_wins(tmp_path):
    """The shape of `dvc exp show --json` (DVC 3): workspace, then the commit with its experiments."""
    show = [{"rev": "workspace", "name": None, "data": {"rev": "workspace"}, "error": None, "experiments": None},
            {"rev": "abc", "name": "main", "data": {"rev": "abc", "timestamp": "2026-01-01T00:00:00",
                                                     "params": {}, "metrics": {}},
             "error": None, "experiments": [
                 _exp("old", "2026-01-01T00:00:01", 10, 6, 0.9),
                 _exp("new", "2026-01-01T00:00:02", 10, 6, 0.02),
                 _exp("zero", "2026-01-01T00:00:01", 10, 0, 0.0),
                 _exp("broken", "2026-01-01T00:00:03", 20, 6, 0.5, state="failed"),
                 _exp("other", "2026-01-01T00:00:01", 30, 6, 0.5),  # not a grid point
             ]}]
    grid = Grid(("compare",), (Block({"data.train_per_class": [10, 20], "merge.synthetic_per_class": [0, 6]}, {}),), {},
                None)
    rows = curve_rows(show, grid)
    assert sorted((r["experiment"], r["augmented_minus_baseline"]) for r in rows) == [("new", 0.02), ("zero", 0.0)]
    write_curve(rows, grid, tmp_path / "curve.png", tmp_path / "curve.md")
    md = (tmp_path / "curve.md").read_text()
    assert "| cnn | 10 | 6 | 0.5000 | 0.5200 | +0.0200 [+0.0100, +0.0300] | +0.0100 [+0.0000, +0.0200] | new (abc) |" in md
    assert (tmp_path / "curve.png").stat().st_size > 10000
    with pytest.raises(UserError, match="no finished experiment"):
        write_curve([], grid, tmp_path / "c.png", tmp_path / "c.md")


def test_near_copies_come_only_from_experiments_that_ran_novelty(tmp_path):
    """With novelty among the grid's targets, each point's near-copy share reaches the report; without it, a
    metrics/novelty.json in the experiment is the commit's, not the point's, and is not read."""
    path = tmp_path / "g.yaml"
    path.write_text("target: [compare, novelty]\nsweep:\n  data.train_per_class: [10]\n"
                    "  merge.synthetic_per_class: [0, 6]\n")
    grid = load_grid(path, default_params())
    assert grid.targets == ("compare", "novelty")
    assert queue_commands(grid)[0][:5] == ["exp", "run", "--queue", "compare", "novelty"]
    exp = _exp("six", "2026-01-01T00:00:01", 10, 6, 0.02)
    exp["revs"][0]["data"]["metrics"]["metrics/novelty.json"] = {"data": {"views": {
        "inception": {"near_copies": 0.031}, "pixel": {"near_copies": 0.12}}}}
    show = [{"rev": "abc", "name": "main", "data": {"rev": "abc"}, "error": None, "experiments": [exp]}]
    [row] = curve_rows(show, grid)
    assert (row["near_copies_inception"], row["near_copies_pixel"]) == (0.031, 0.12)
    write_curve([row], grid, tmp_path / "curve.png", tmp_path / "curve.md")
    assert "| +0.0100 [+0.0000, +0.0200] | 3.1% / 12.0% | six (abc) |" in (tmp_path / "curve.md").read_text()
    [row] = curve_rows(show, Grid(("compare",), grid.blocks, {}, None))
    assert row["near_copies_inception"] is None
    write_curve([row], grid, tmp_path / "curve.png", tmp_path / "curve.md")
    assert "near copies" not in (tmp_path / "curve.md").read_text()


def test_curve_figure_has_a_facet_per_architecture_and_comparison(tmp_path):
    """curve.png (seaborn): a row of two facets (gain over baseline, over baseline_matched) per
    architecture, one line per real-set size, sorted by size (10 before 200)."""
    from PIL import Image

    from dreaming_data.tools.curve import draw_curve

    def row(arch, real, synthetic, gain):
        return {"arch": arch, "data.train_per_class": real, "merge.synthetic_per_class": synthetic,
                **{g + part: gain + d for g in ("augmented_minus_baseline", "augmented_minus_matched")
                   for part, d in (("", 0), ("_low", -0.01), ("_high", 0.01))}}

    rows = [row(arch, real, n, 0.001 * n) | {"near_copies_inception": None}  # (a missing value drops no row)
            for arch in ("cnn", "resnet") for real in (200, 10) for n in (0, 5, 10)]
    draw_curve([r for r in rows if r["arch"] == "cnn"], tmp_path / "one.png")
    grid = draw_curve(rows, tmp_path / "two.png")
    assert grid.axes.shape == (2, 2) and all(len(ax.lines) == 2 + 1 for ax in grid.axes.flat)  # and y = 0
    legend = grid.legend
    assert [t.get_text() for t in legend.texts] == ["10 real/class", "200 real/class"]
    assert len({str(h.get_color()) for h in legend.legend_handles}) == 2
    (w1, h1), (w2, h2) = Image.open(tmp_path / "one.png").size, Image.open(tmp_path / "two.png").size
    assert w1 == w2 and 1.8 < h2 / h1 < 2.2


@pytest.mark.parametrize("text, message", [
    ("sweep:\n  1: [5]\n  data.train_per_class: [5]\n  merge.synthetic_per_class: [0]\n", "not a params key"),
    ("fixed:\n  merge.synthetic_per_class: 0\nsweep:\n  data.train_per_class: [5]\n  merge.synthetic_per_class: [0, 10]\n",
     "both fixed and swept"),
    ("profile: laptop\nsweep:\n  data.train_per_class: [5]\n  merge.synthetic_per_class: [0]\n", "profile must be"),
    ("target: [a]\nsweep:\n  data.train_per_class: [5]\n  merge.synthetic_per_class: [0]\n", "target must be"),
    ("target: [compare, nvelty]\nsweep:\n  data.train_per_class: [5]\n  merge.synthetic_per_class: [0]\n",
     "target must be"),
    ("target: 3\nsweep:\n  data.train_per_class: [5]\n  merge.synthetic_per_class: [0]\n", "target must be"),
])
def test_bad_grid_files_are_one_line_errors(tmp_path, text, message):
    (tmp_path / "g.yaml").write_text(text)
    with pytest.raises(UserError, match=message):
        load_grid(tmp_path / "g.yaml", default_params())


def test_progress_is_read_from_dvcs_json(tmp_path):
    """Queued, running (with its live DVCLive step), done and failed experiments of the grid, from `dvc exp show
    --json`; a failed one's log gives its one-line error; an experiment of another grid does not count."""
    from dreaming_data.tools.curve import last_line, progress, progress_line

    grid = Grid(("compare",), (Block({"data.train_per_class": [10, 40], "merge.synthetic_per_class": [0, 5]}, {}),), {},
                None)
    log = tmp_path / "bad.out"
    log.write_text("Running stage 'download':\nerror: data.train_per_class: 40 but class '3' has only 30\n"
                   "ERROR: failed to reproduce 'download': failed to run: python stages/download.py\n")
    running = _exp("run", None, 10, 5, 0.0, "running")  # as DVC 3.67 shows one: its temporary workspace's data
    running["revs"][0]["data"]["rev"] = "workspace"
    stale = {"dvclive/train_matched-cnn-0/metrics.json": {"data": {"step": 6, "loss": 0.5}}}  # the commit's
    running["revs"][0]["data"]["metrics"] = {"dvclive/train_ddpm-linear/metrics.json": {"data": {
        "step": 120, "loss": 0.0812}}} | stale
    earlier = _exp("run-before", "2026-01-01T00:00:06", 10, 5, 0.0)  # the same point, finished earlier: the
    # running one is newer, whatever the timestamps
    failed = _exp("bad", "2026-01-01T00:00:03", 40, 0, 0.0, "failed")
    failed["executor"]["local"] = {"log": str(log)}
    failed["revs"][0]["error"] = {"msg": "Experiment run failed", "type": ""}  # as DVC marks a failed run
    show = [{"rev": "abc", "name": "main", "data": {"rev": "abc", "metrics": stale}, "error": None, "experiments": [
        _exp("done", "2026-01-01T00:00:01", 10, 0, 0.01), running, earlier, failed,
        _exp("wait", "2026-01-01T00:00:04", 40, 5, 0.0, "queued"), _exp("other", "2026-01-01T00:00:05", 20, 0, 0.0)]}]
    by_state = progress(show, grid)
    assert {k: [e["name"] for e in v] for k, v in by_state.items()} == {
        "queued": ["wait"], "running": ["run"], "success": ["done"], "failed": ["bad"]}
    assert progress_line(by_state) == ("curve: 1 queued, 1 running (run: train_ddpm-linear step 120, loss 0.0812), "
                                       "1 done, 1 failed")
    assert last_line(str(log)) == "error: data.train_per_class: 40 but class '3' has only 30"
    # only finished ones are reported: the point now running keeps its earlier result until it finishes
    assert [r["experiment"] for r in curve_rows(show, grid)] == ["done", "run-before"]


@pytest.mark.parametrize("name", sorted(p.name for p in ROOT.glob("curve*.yaml")))
def test_committed_grids_pass_their_checks(name):
    """Every combination of a committed grid, with its profile, is a valid params file (a profile change once left
    curve-quickstart.yaml asking for more dreams than the profile generates)."""
    grid = load_grid(ROOT / name, default_params())
    assert len(queue_commands(grid)) >= 1


@pytest.mark.parametrize("name", sorted(p.parent.name for p in (ROOT / "results").glob("*/curve.json")))
def test_a_committed_curve_is_still_its_grids(name):
    """Every saved row of a committed curve is a point of its grid file measured in the grid's setting: a change to
    the grid or its profile (cifar-cpu's ResNet-18 went from 4 to 24 epochs) would otherwise silently disown the
    committed points, and the next `dreaming-data curve` would queue hours of them again."""
    from dreaming_data.tools.curve import saved_rows

    grid = load_grid(ROOT / f"{name}.yaml", default_params())
    saved, left_out = saved_rows(grid, ROOT / "results" / name / "curve.json")
    assert left_out == 0 and saved, f"results/{name}/curve.json: {left_out} rows are not {name}.yaml's points"


def test_a_relative_data_path_reaches_the_queue_absolute(tmp_path, monkeypatch):
    """DVC's queue runs an experiment in a copy of the project under .dvc/tmp/exps/, where the cifar-cpu profile's
    ../shared/... does not exist: the grid queues (and matches experiments by) the path resolved from the project."""
    monkeypatch.chdir(tmp_path)
    grid = load_grid(ROOT / "curve-cifar-cpu.yaml", default_params())
    expected = str((tmp_path / "../shared/data/cifar10-jpeg.tar.gz").resolve())
    assert grid.overrides()["data.path"] == expected
    assert all(f"data.path={json.dumps(expected)}" in command for command in queue_commands(grid))


def test_cifar_grid_trains_each_sizes_ddpm_for_about_the_same_steps():
    """curve-cifar-cpu.yaml's promise: one DDPM per real-set size, each for ~550 optimizer steps (batch 64, the last
    partial batch dropped), ResNet-18 over 3 seeds at one size, the small CNN over 5 everywhere, two dream counts
    measured and 0 drawn from each size's baseline (three on the figure), and novelty run beside compare."""
    grid = load_grid(ROOT / "curve-cifar-cpu.yaml", default_params())
    batch = grid.overrides()["ddpm.batch_size"]
    steps = [(b.fixed["data.train_per_class"] * 10 // batch) * b.fixed["ddpm.epochs"] for b in grid.blocks]
    assert len(steps) >= 3 and max(steps) / min(steps) < 1.1, steps
    assert all(0 not in b.sweep["merge.synthetic_per_class"] and len(b.sweep["merge.synthetic_per_class"]) >= 2
               for b in grid.blocks)
    assert sum(len(b.fixed["classifier.seeds.resnet18"]) >= 3 for b in grid.blocks) >= 1
    assert len(grid.overrides()["classifier.seeds.simple_cnn"]) >= 5 and "novelty" in grid.targets


def test_exp_show_while_the_queue_runs_tries_again(monkeypatch):
    """An experiment that finishes during `dvc exp show` removes the temporary workspace DVC is reading (it exits 255,
    "directory '.../.dvc/tmp/exps/tmpXXXX/.dvc' does not exist"): the follower asks again; three failures in a row
    are one line and exit 2."""
    import subprocess

    from dreaming_data import cli

    answers = [(255, "", "ERROR: failed to show experiments - directory '/p/.dvc/tmp/exps/tmp1/.dvc' does not exist"),
               (0, "[]", "")]
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        rc, out, err = answers.pop(0) if answers else (255, "", "ERROR: still broken")
        return subprocess.CompletedProcess(cmd, rc, out, err)

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert cli._exp_show(attempts=3, wait_s=0) == [] and len(calls) == 2
    with pytest.raises(SystemExit) as stopped:
        cli._exp_show(attempts=3, wait_s=0)
    assert stopped.value.code == 2 and len(calls) == 5


def test_running_the_grid_again_queues_only_the_points_it_lacks():
    """After a stop (the session's end, a killed queue), `dreaming-data curve` again: the points `dvc exp show` has
    done, queued or running are not queued twice; a failed one is; a block with every point lacking stays one sweep."""
    from dreaming_data.tools.curve import point_key, present

    grid = Grid(("compare",), (Block({"data.train_per_class": [10, 20], "merge.synthetic_per_class": [0, 6]}, {}),
                               Block({"merge.synthetic_per_class": [0, 6]}, {"data.train_per_class": 40})), {}, None)
    show = [{"rev": "abc", "name": "main", "error": None,  # the commit has a point's params: not an experiment
             "data": {"rev": "abc", "params": {"params.yaml": {"data": {"data": {"train_per_class": 20},
                                                                       "merge": {"synthetic_per_class": 6}}}}},
             "experiments": [
        _exp("done", "2026-01-01T00:00:01", 10, 6, 0.02),
        _exp("waiting", "", 10, 0, 0.0, state="queued"),
        _exp("broken", "2026-01-01T00:00:02", 20, 0, 0.0, state="failed")]}]
    there = present(show, grid)
    assert there == {point_key(grid, {"data.train_per_class": 10, "merge.synthetic_per_class": n}) for n in (6, 0)}
    commands = queue_commands(grid, there)
    assert [c[c.index("-S"):] for c in commands] == [
        ["-S", "data.train_per_class=20", "-S", "merge.synthetic_per_class=0"],
        ["-S", "data.train_per_class=20", "-S", "merge.synthetic_per_class=6"],
        ["-S", "data.train_per_class=40", "-S", "merge.synthetic_per_class=0,6"]]
    assert queue_commands(grid) == queue_commands(grid, set()) and len(queue_commands(grid)) == 2
    everything = {point_key(grid, c) for c in grid.combinations()}
    assert queue_commands(grid, everything) == []


def test_the_follower_leaves_the_cores_to_the_experiments(monkeypatch):
    """`dvc exp show --json` takes seconds of CPU on a small machine: the follower waits at least nine times as long
    as it took before asking again."""
    from dreaming_data import cli

    grid = Grid(("compare",), (Block({"data.train_per_class": [10], "merge.synthetic_per_class": [6]}, {}),), {}, None)
    clock, sleeps = [0.0], []
    running = [{"rev": "abc", "name": "main", "data": {"rev": "abc"}, "error": None,
                "experiments": [_exp("run", "", 10, 6, 0.0, state="running")]}]
    answers = [running, running, [{"rev": "abc", "name": "main", "data": {"rev": "abc"}, "error": None,
                                   "experiments": [_exp("run", "2026-01-01T00:00:01", 10, 6, 0.01)]}]]

    def slow_show(attempts=1):
        clock[0] += 4.0  # each call takes 4 s
        return answers.pop(0)

    monkeypatch.setattr(cli, "_exp_show", slow_show)
    monkeypatch.setattr("time.monotonic", lambda: clock[0])
    monkeypatch.setattr("time.sleep", lambda s: sleeps.append(s))
    failed, show = cli._follow_queue(grid, 1, {}, poll_s=5.0)
    assert failed == [] and sleeps == [36.0, 36.0]


def _rows(grid, show):
    return sorted(curve_rows(show, grid), key=lambda r: (r["data.train_per_class"], r["merge.synthetic_per_class"]))


def test_a_line_without_a_zero_point_starts_at_its_baseline(tmp_path):
    """A grid that does not measure 0 dreams (curve-cifar-cpu.yaml) draws it per line and architecture from the
    baseline: augmented and baseline_matched without dreams are the baseline, so their gains are exactly 0; a grid
    that measures 0 keeps its own point."""
    from dreaming_data.tools.curve import with_zero

    grid = Grid(("compare",), (Block({"data.train_per_class": [10, 20], "merge.synthetic_per_class": [6, 9]}, {}),),
                {}, None)
    show = [{"rev": "abc", "name": "main", "data": {"rev": "abc"}, "error": None, "experiments": [
        _exp("a", "2026-01-01T00:00:01", 10, 6, 0.02), _exp("b", "2026-01-01T00:00:02", 10, 9, 0.03),
        _exp("c", "2026-01-01T00:00:03", 20, 9, -0.01)]}]
    rows = with_zero(_rows(grid, show), grid)
    zeros = [r for r in rows if r["merge.synthetic_per_class"] == 0]
    assert sorted(r["data.train_per_class"] for r in zeros) == [10, 20] and all(r["derived"] for r in zeros)
    assert all(r["augmented"] == r["baseline_matched"] == r["baseline"] == 0.5 and r["augmented_minus_baseline"] == 0.0
               and r["augmented_minus_matched_high"] == 0.0 and r["experiment"] == "(its baseline)" for r in zeros)
    write_curve(rows, grid, tmp_path / "curve.png", tmp_path / "curve.md")
    md = (tmp_path / "curve.md").read_text()
    assert "| cnn | 10 | 0 | 0.5000 | 0.5000 | +0.0000 [+0.0000, +0.0000] | +0.0000 [+0.0000, +0.0000] | (its baseline) (abc) |" \
        in md and "drawn from the line's baseline" in md
    measured = Grid(("compare",), (Block({"data.train_per_class": [10], "merge.synthetic_per_class": [0, 6]}, {}),),
                    {}, None)
    assert with_zero(_rows(measured, show), measured) == _rows(measured, show)  # 0 is its point: not drawn


def test_a_grid_goes_on_from_its_saved_rows(tmp_path):
    """results/<grid>/curve.json keeps the finished points' rows with the grid's setting: a fresh clone reads them back
    (dvc exp show's own row of a point wins), queues only the points neither has, and leaves out rows of another
    setting or of no point of the grid; a broken file is one line naming it."""
    from dreaming_data.tools.curve import merge_rows, point_key, save_rows, saved_rows

    grid = Grid(("compare",), (Block({"data.train_per_class": [10, 20], "merge.synthetic_per_class": [6]}, {}),),
                {"classifier.seeds.resnet18": []}, None)
    show = [{"rev": "abc", "name": "main", "data": {"rev": "abc"}, "error": None, "experiments": [
        _exp("a", "2026-01-01T00:00:01", 10, 6, 0.02)]}]
    for exp in show[0]["experiments"]:
        exp["revs"][0]["data"]["params"]["params.yaml"]["data"]["classifier"] = {"seeds": {"resnet18": []}}
    path = tmp_path / "curve.json"
    assert saved_rows(grid, path) == ([], 0)
    save_rows(_rows(grid, show), grid, path)
    saved, left_out = saved_rows(grid, path)
    assert left_out == 0 and [(r["experiment"], r["commit"], r["augmented_minus_baseline"]) for r in saved] == [
        ("a", "abc", 0.02)]
    assert queue_commands(grid, {point_key(grid, r) for r in saved})[0][-4:] == [
        "-S", "data.train_per_class=20", "-S", "merge.synthetic_per_class=6"]
    newer = [dict(saved[0], experiment="again", augmented_minus_baseline=0.03)]
    assert [r["experiment"] for r in merge_rows(newer, saved, grid)] == ["again"]
    other = Grid(grid.targets, grid.blocks, {"classifier.seeds.resnet18": [0]}, None)
    assert saved_rows(other, path) == ([], 1)  # measured with another setting
    smaller = Grid(grid.targets, (Block({"data.train_per_class": [20], "merge.synthetic_per_class": [6]}, {}),),
                   grid.fixed, None)
    assert saved_rows(smaller, path) == ([], 1)  # no point of this grid
    path.write_text("{not json")
    with pytest.raises(UserError, match="curve.json: not a saved curve"):
        saved_rows(grid, path)


def test_curve_with_every_point_saved_queues_nothing_and_reports(tmp_path, monkeypatch):
    """`dreaming-data curve` in a fresh clone of a finished grid: no experiment queued, no queue started, the report
    and the figure written again from results/<grid>/curve.json."""
    import shutil
    import subprocess

    from dreaming_data import cli
    from dreaming_data.tools.curve import save_rows

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "g.yaml").write_text("sweep:\n  data.train_per_class: [10]\n  merge.synthetic_per_class: [6]\n")
    monkeypatch.chdir(tmp_path)
    grid = load_grid(tmp_path / "g.yaml", default_params())
    show = [{"rev": "abc", "name": "main", "data": {"rev": "abc"}, "error": None,
             "experiments": [_exp("a", "2026-01-01T00:00:01", 10, 6, 0.02)]}]
    out = tmp_path / "results" / "g"  # the grid's own folder, beside the runs' results folders
    save_rows(curve_rows(show, grid), grid, out / "curve.json")
    calls = []
    monkeypatch.setattr(cli, "_exp_show", lambda attempts=1: [{"rev": "def", "name": "main", "data": {"rev": "def"},
                                                               "error": None, "experiments": None}])
    monkeypatch.setattr(subprocess, "call", lambda *a, **k: calls.append(a) or 0)
    cli.curve(grid=tmp_path / "g.yaml", report=False, start=True, wait=True, jobs=1)
    assert calls == []
    md = (out / "curve.md").read_text()
    assert "| cnn | 10 | 6 | 0.5000 | 0.5200 | +0.0200" in md and "| a (abc) |" in md
    assert "| cnn | 10 | 0 |" in md and (out / "curve.png").exists()
    assert "Measured on" not in md  # the saved row does not say where it ran
    (tmp_path / "results" / "run").mkdir()
    (tmp_path / "results" / "run" / "environment.json").write_text('{"date": "2026-01-01", "device": "cpu"}')
    from dreaming_data.tools import results
    assert results.folders(tmp_path / "results") == [tmp_path / "results" / "run"]  # a curve is not a run


def test_a_grid_run_on_two_machines_says_which_measured_each_point(tmp_path):
    grid = Grid(("compare",), (Block({"data.train_per_class": [10, 20], "merge.synthetic_per_class": [6]}, {}),),
                {}, None)
    show = [{"rev": "abc", "name": "main", "data": {"rev": "abc"}, "error": None, "experiments": [
        _exp("a", "2026-01-01T00:00:01", 10, 6, 0.02), _exp("b", "2026-01-01T00:00:02", 20, 6, 0.01)]}]
    first, second = _rows(grid, show)
    write_curve([first | {"machine": "2 CPU cores, native bf16"}], grid, tmp_path / "c.png", tmp_path / "c.md")
    assert "Measured on 2 CPU cores, native bf16." in (tmp_path / "c.md").read_text()
    write_curve([first | {"machine": "2 CPU cores, native bf16"}, second | {"machine": "2 CPU cores, no native bf16 "
                 "(fp32)"}], grid, tmp_path / "c.png", tmp_path / "c.md")
    md = (tmp_path / "c.md").read_text()
    assert "Measured on" not in md and "| b (abc) | 2 CPU cores, no native bf16 (fp32) |" in md
