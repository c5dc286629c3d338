"""The dreaming curve: how the gain from dreamed images depends on the real-data size and the synthetic count.

The grid lives in a committed YAML file (``curve.yaml``). ``queue_commands`` turns it into DVC's own sweep
(``dvc exp run --queue <target> -S key=v1,v2,...``, one experiment per combination, run by ``dvc queue start``), one
per block when the grid has several (``blocks:``, each with its own fixed keys: a DDPM's epochs per real-set size);
``curve_rows`` reads the finished experiments back from ``dvc exp show --json``; ``write_curve`` draws
``curve.png`` and writes ``curve.md`` in the grid's results folder (``results/<grid file's name>/``). The finished
points' rows are kept there in ``curve.json`` (committed with the report): a grid longer than a sitting goes on from
them in a fresh clone, queueing only the points it lacks.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dreaming_data.errors import UserError

GRID_FILE = Path("curve.yaml")
X_KEY = "merge.synthetic_per_class"  # the x axis
LINE_KEY = "data.train_per_class"  # one line per value
STYLE_KEY = "merge.filter"  # line style
RUNNING_NOW = "9999"  # a running experiment has no timestamp yet: it sorts after every finished one (the newest)
DATA_PATH = "data.path"  # a local dataset archive or folder (resolved against the project directory)
SUMMARY = "metrics/summary.json"  # per architecture: mean accuracy per variant, paired gains with 95% intervals
NOVELTY = "metrics/novelty.json"  # near-copy shares of the dreams, when the grid's targets include novelty
SAVED = "curve.json"  # in the grid's folder: the finished points' rows, with the setting they were measured in


@dataclass(frozen=True)
class Block:
    sweep: dict[str, list]  # key -> values; every combination is one experiment
    fixed: dict[str, Any]  # the same overrides in every experiment of this block

    def combinations(self) -> list[dict[str, Any]]:
        keys = list(self.sweep)
        return [self.fixed | dict(zip(keys, values)) for values in itertools.product(*(self.sweep[k] for k in keys))]


@dataclass(frozen=True)
class Grid:
    targets: tuple[str, ...]  # the stages each experiment reproduces (with what they need)
    blocks: tuple[Block, ...]  # the grid's points: every block's combinations
    fixed: dict[str, Any]  # the same overrides in every experiment
    profile: str | None  # a committed profile applied first (quickstart: CPU digits)

    def combinations(self) -> list[dict[str, Any]]:
        """Every point of the grid: its own keys (a block's fixed keys and its sweep's) and their values."""
        return [c for b in self.blocks for c in b.combinations()]

    def keys(self) -> list[str]:
        """The keys that tell the grid's points apart, in the order of the grid file (the report's columns)."""
        return list(dict.fromkeys(k for b in self.blocks for k in (*b.fixed, *b.sweep)))

    def overrides(self) -> dict[str, Any]:
        """Profile, then ``fixed``: what every experiment sets besides its own point (a key of a point is the
        point's, also when the profile sets it)."""
        from dreaming_data.overrides import load_profile

        merged = (load_profile(self.profile) if self.profile else {}) | self.fixed
        path = merged.get(DATA_PATH)
        if isinstance(path, str) and not Path(path).is_absolute():
            # DVC's queue runs each experiment in a copy of the project under .dvc/tmp/exps/: a path relative to
            # the project (the cifar-cpu profile's ../shared/...) would not be found from there
            merged[DATA_PATH] = str(Path(path).resolve())
        return {k: v for k, v in merged.items() if k not in self.keys()}


def _mapping(raw: Any, what: str, path: Path) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: {what} must map params keys to values")
    for key in raw:
        if not isinstance(key, str) or not key:
            raise UserError(f"{path}: {key!r} is not a params key (expected dotted names like merge.filter)")
    return raw


def _block(raw: Any, path: Path, where: str) -> Block:
    if not isinstance(raw, dict) or set(raw) - {"sweep", "fixed"} or "sweep" not in raw:
        raise UserError(f"{path}: {where} must be a mapping with sweep (and optionally fixed)")
    sweep, fixed = _mapping(raw["sweep"], f"{where}: sweep", path), _mapping(raw.get("fixed"), f"{where}: fixed", path)
    if not sweep or not all(isinstance(v, list) and v for v in sweep.values()):
        raise UserError(f"{path}: {where}: sweep must map params keys to non-empty lists of values")
    if both := sorted(set(sweep) & set(fixed)):
        raise UserError(f"{path}: {', '.join(both)} both fixed and swept; keep each key in one of them")
    for key in (X_KEY, LINE_KEY):
        if key not in sweep and key not in fixed:
            raise UserError(f"{path}: {where}: sweep must include {key} (the curve's "
                            f"{'x axis' if key == X_KEY else 'lines'}), or its fixed set it")
    return Block(sweep, fixed)


def load_grid(path: Path, params: dict) -> Grid:
    """Read and check a grid file against the project's params (every combination must be valid params): ``sweep``
    (with ``fixed``), or ``blocks``, a list of ``{sweep, fixed}`` (with ``fixed`` for all of them)."""
    from dreaming_data.config import parse_params, read_yaml
    from dreaming_data.overrides import PROFILES, apply_overrides
    from dreaming_data.tools import registry

    raw = read_yaml(path)
    if not isinstance(raw, dict) or set(raw) - {"target", "sweep", "fixed", "profile", "blocks"} or \
            ("sweep" in raw) == ("blocks" in raw):
        raise UserError(f"{path}: expected a mapping with sweep or blocks (and optionally target, fixed, profile)")
    fixed = _mapping(raw.get("fixed"), "fixed", path)
    if "sweep" in raw:
        blocks = (_block({"sweep": raw["sweep"], "fixed": {}}, path, "the grid"),)
    elif not isinstance(raw["blocks"], list) or not raw["blocks"]:
        raise UserError(f"{path}: blocks must be a non-empty list of {{sweep, fixed}} mappings")
    else:
        blocks = tuple(_block(b, path, f"blocks[{i}]") for i, b in enumerate(raw["blocks"]))
    if both := sorted(set(fixed) & {k for b in blocks for k in (*b.sweep, *b.fixed)}):
        raise UserError(f"{path}: {', '.join(both)} both fixed and swept; keep each key in one of them")
    target, profile = raw.get("target") or "compare", raw.get("profile")
    targets = tuple(target) if isinstance(target, list) and target else (target,)
    names = {g for stage in registry.stages().values() for g in stage.groups()}
    if not all(isinstance(t, str) and t.split("@")[0] in names for t in targets):
        raise UserError(f"{path}: target must be a dvc.yaml stage such as compare, or a list of them (such as "
                        f"[compare, novelty]), got {target!r}")
    if profile is not None and profile not in PROFILES:
        raise UserError(f"{path}: profile must be null or one of {', '.join(PROFILES)}, got {profile!r}")
    grid = Grid(targets, blocks, fixed, profile)
    points = [json.dumps([c.get(k, "<unset>") for k in grid.keys()]) for c in grid.combinations()]
    if len(set(points)) != len(points):
        raise UserError(f"{path}: two blocks share a point; each experiment must be one point of the grid")
    for combo in grid.combinations():
        parse_params(apply_overrides(params, grid.overrides() | combo), f"{path} ({combo})")
    return grid


def _sweep_value(values: list) -> str:
    """Hydra's choice-sweep syntax, which ``dvc exp run -S`` parses: v1,v2,... with each value in JSON form."""
    return ",".join(json.dumps(v) for v in values)


def point_key(grid: Grid, combination: dict[str, Any]) -> str:
    """A grid point as text (its values in the order of ``grid.keys()``; a value may be a list of seeds)."""
    return json.dumps([combination.get(k) for k in grid.keys()])


def queue_commands(grid: Grid, present: frozenset[str] | set[str] = frozenset()) -> list[list[str]]:
    """The DVC commands (arguments after ``dvc``) that queue every combination but those in ``present``
    (``point_key``s): one ``exp run --queue`` sweep per block, or, for a block some of whose points are present,
    one per point it lacks."""
    commands = []
    for block in grid.blocks:
        lacking = [c for c in block.combinations() if point_key(grid, c) not in present]
        if not lacking:
            continue
        sweeps = [block.fixed | {k: [v] for k, v in c.items() if k in block.sweep} for c in lacking] \
            if len(lacking) < len(block.combinations()) else [block.fixed | block.sweep]
        for point in sweeps:
            args = ["exp", "run", "--queue", *grid.targets]
            for key, value in (grid.overrides() | point).items():
                if key in block.sweep:
                    args += ["-S", f"{key}={_sweep_value(value) if len(value) > 1 else json.dumps(value[0])}"]
                else:
                    args += ["-S", f"{key}={json.dumps(value)}"]
            commands.append(args)
    return commands


def _lookup(tree: dict, dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return KeyError
        node = node[part]
    return node


def experiments(show: list) -> list[dict]:
    """Every experiment in ``dvc exp show --json`` output, whatever its state: {name, rev, timestamp, params,
    metrics, base (the metrics of the commit it started from), state (queued | running | success | failed), log (the
    queue's log file of it, when there is one), commit (a commit itself, not an experiment), code (the commit it
    ran: its own for a commit, its parent's for an experiment)}."""
    out = []

    def metrics_of(data: dict) -> dict:
        return {path: (m or {}).get("data") or {} for path, m in (data.get("metrics") or {}).items()}

    def visit(entry: dict, executor: dict, base: dict, code: str | None = None) -> None:
        data = entry.get("data") or {}
        rev = entry.get("rev") or data.get("rev")  # a running one's data is its temporary workspace's: rev "workspace"
        if rev not in (None, "workspace"):  # (the top entry); a failed run's entry has an "error" too: it counts
            params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
            state = executor.get("state") or ("failed" if entry.get("error") else "success")
            out.append({"name": entry.get("name") or rev, "rev": rev,
                        "timestamp": data.get("timestamp") or (RUNNING_NOW if state == "running" else ""),
                        "params": params, "metrics": metrics_of(data), "base": base, "state": state,
                        "log": (executor.get("local") or {}).get("log"), "commit": code is None,
                        "code": code or rev})
        for group in entry.get("experiments") or []:
            for rev in group.get("revs") or []:
                visit(rev | {"name": rev.get("name") or group.get("name")}, group.get("executor") or {},
                      metrics_of(data), code or entry.get("rev") or data.get("rev"))

    for entry in show:
        visit(entry, {}, {})
    return out


def _in_grid(exp: dict, grid: Grid) -> tuple | None:
    """The grid combination ``exp`` runs, or None when it is no experiment of the grid."""
    if any(_lookup(exp["params"], k) != v for k, v in grid.overrides().items()):
        return None
    for point in grid.combinations():
        if all(_lookup(exp["params"], k) == v for k, v in point.items()):
            return tuple(point.get(k) for k in grid.keys())
    return None


def present(show: list, grid: Grid) -> set[str]:
    """The ``point_key``s of the grid's points that ``dvc exp show`` has done, queued or running: what running the
    grid again must not queue twice."""
    by_state = progress(show, grid)
    return {e["point"] for state in ("success", "queued", "running") for e in by_state[state]}


def last_line(log: str | None) -> str:
    """What a failed experiment's log says last: its one-line error when it has one."""
    try:
        lines = [line.strip() for line in Path(log).read_text(errors="replace").splitlines() if line.strip()]
    except (OSError, TypeError):
        return "(no log)"
    errors = [line for line in lines if line.startswith(("error:", "ERROR:"))]
    return (errors or lines or ["(an empty log)"])[0 if errors else -1]


def progress(show: list, grid: Grid) -> dict[str, list[dict]]:
    """The grid's experiments by state (queued, running, success, failed): the newest experiment of each
    combination counts; a running one carries its live step: a DVCLive summary it has written (one that differs
    from the commit's it started from: its workspace starts with those)."""
    newest: dict[str, dict] = {}
    for exp in sorted(experiments(show), key=lambda e: e["timestamp"]):
        combo = _in_grid(exp, grid) if not exp["commit"] else None  # a commit with a point's params: no experiment
        if combo is not None:
            exp["point"] = point_key(grid, dict(zip(grid.keys(), combo)))
            newest[exp["point"]] = exp
    by_state: dict[str, list[dict]] = {"queued": [], "running": [], "success": [], "failed": []}
    for exp in newest.values():
        live = [(path, m) for path, m in exp["metrics"].items()
                if Path(path).parts[0] == "dvclive" and "step" in m and m != exp["base"].get(path)]
        exp["live"] = live[-1] if live else None
        by_state.setdefault(exp["state"], []).append(exp)
    return by_state


def progress_line(by_state: dict[str, list[dict]]) -> str:
    running = "; ".join(f"{e['name']}: {Path(e['live'][0]).parent.name} step {e['live'][1]['step']}"
                        + (f", loss {e['live'][1]['loss']:.4f}" if isinstance(e['live'][1].get('loss'), float) else "")
                        if e["live"] else e["name"] for e in by_state["running"])
    return (f"curve: {len(by_state['queued'])} queued, {len(by_state['running'])} running"
            + (f" ({running})" if running else "") + f", {len(by_state['success'])} done, "
            f"{len(by_state['failed'])} failed")


def curve_rows(show: list, grid: Grid) -> list[dict]:
    """One row per (finished experiment of a grid combination, architecture): params and the paired gains read from
    ``metrics/summary.json``. The latest experiment of each combination wins; baselines without the grid's
    fixed overrides are skipped."""
    latest: dict[str, tuple[tuple, dict]] = {}  # by the point's values in JSON (a value may be a list of seeds)
    for exp in sorted(experiments(show), key=lambda e: e["timestamp"]):
        combo = _in_grid(exp, grid) if exp["state"] == "success" and not exp["commit"] else None
        if combo is not None:
            latest[json.dumps(combo)] = combo, exp
    rows = []
    for combo, exp in latest.values():
        metric = lambda name: next((m for path, m in exp["metrics"].items() if Path(path).as_posix() == name), {})  # noqa: E731
        summary = metric(SUMMARY)  # a file the targets do not write is the commit's own: not this point's
        views = (metric(NOVELTY).get("views") or {}) if "novelty" in grid.targets else {}
        copies = {f"near_copies_{view}": (views.get(view) or {}).get("near_copies") for view in ("inception", "pixel")}
        for arch, m in sorted(summary.items()):
            if not isinstance(m, dict) or "augmented_minus_baseline" not in m:
                continue
            row = {"experiment": exp["name"], "commit": exp["code"], **dict(zip(grid.keys(), combo)), "arch": arch,
                   **copies}
            for metric in ("baseline", "baseline_matched", "augmented"):
                row[metric] = m.get(metric)
            for gain in ("augmented_minus_baseline", "augmented_minus_matched"):
                for part in ("", "_low", "_high", "_stable"):
                    row[gain + part] = m.get(gain + part)
            rows.append(row)
    return rows


def machine() -> str:
    """This machine, where the experiments `dvc exp show` lists ran, as far as it moves results by float rounding
    (runtime.precision bf16 computes fp32 on a CPU without native bf16)."""
    import os

    import torch

    from dreaming_data.runtime import native_bf16_cpu

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"{os.cpu_count()} CPU cores, " + ("native bf16" if native_bf16_cpu() else "no native bf16 (fp32)")


def setting(grid: Grid) -> dict:
    """What the grid's points share but the dataset's place on the machine: a saved row is this grid's only when
    it was measured with the same targets and overrides (profile included)."""
    overrides = {k: v for k, v in grid.overrides().items() if k != DATA_PATH}
    return json.loads(json.dumps({"targets": list(grid.targets), "overrides": overrides}))


def folder(grid_file: Path) -> Path:
    """The grid's results folder (its report, figure and saved rows), one per grid file: results/curve-cifar-cpu/."""
    return Path("results") / grid_file.stem


def save_rows(rows: list[dict], grid: Grid, path: Path) -> None:
    """The measured rows (not the drawn zeros) with the grid's setting: what ``saved_rows`` reads back."""
    from dreaming_data.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"setting": setting(grid), "rows": [r for r in rows if not r.get("derived")]},
                                  indent=1) + "\n")


def saved_rows(grid: Grid, path: Path) -> tuple[list[dict], int]:
    """The rows of ``path`` that are points of this grid measured in its setting (a grid that a session's end cut
    goes on from them), and how many rows it leaves out."""
    if not path.exists():
        return [], 0
    try:
        raw = json.loads(path.read_text())
        rows = raw["rows"]
        assert isinstance(rows, list) and all(isinstance(r, dict) for r in rows)
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise UserError(f"{path}: not a saved curve (rows of finished points); restore it with git or delete it")
    if raw.get("setting") != setting(grid):
        return [], len(rows)
    points = {point_key(grid, c) for c in grid.combinations()}
    kept = [r for r in rows if point_key(grid, r) in points and "arch" in r]
    return kept, len(rows) - len(kept)


def merge_rows(measured: list[dict], saved: list[dict], grid: Grid) -> list[dict]:
    """``dvc exp show``'s rows, and the saved rows of the points it does not have."""
    have = {point_key(grid, r) for r in measured}
    return measured + [r for r in saved if point_key(grid, r) not in have]


def with_zero(rows: list[dict], grid: Grid) -> list[dict]:
    """``rows`` and, for each line whose grid has no point without dreams, that point drawn from its baseline:
    augmented and baseline_matched without a dream train on the baseline's images with its seeds and its steps, so
    they are the baseline (gains exactly 0: tests/test_pipeline_dvc.py, test_experiment_reruns_only_classifier_side)."""
    others = [k for k in grid.keys() if k != X_KEY]
    line = lambda r: json.dumps([r.get(k) for k in others])  # noqa: E731
    with_zeros = {line(c) for c in grid.combinations() if c.get(X_KEY) == 0}
    zeros = {}
    for row in sorted(rows, key=lambda r: _order(r.get(X_KEY))):
        key = (row["arch"], line(row))
        if line(row) not in with_zeros and key not in zeros:
            base = row["baseline"]
            zeros[key] = row | {X_KEY: 0, "experiment": "(its baseline)", "derived": True, "augmented": base,
                                "baseline_matched": base, "near_copies_inception": None, "near_copies_pixel": None}
            zeros[key] |= {g + part: (True if part == "_stable" else 0.0) for g in ("augmented_minus_baseline",
                           "augmented_minus_matched") for part in ("", "_low", "_high", "_stable")}
    return rows + list(zeros.values())


GAINS = {"augmented_minus_baseline": "gain over baseline (same epochs)",
         "augmented_minus_matched": "gain over baseline_matched (same steps)"}


def _order(value: Any) -> tuple:
    """A sort key for grid values: numbers by size, then text, then missing (null: all real images)."""
    missing = value is None or value != value
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and not missing
    return missing, not number, value if number else 0, str(value)


def _line_label(row: dict, styled: bool) -> str:
    real = row[LINE_KEY]
    return f"{'all' if real is None or real != real else real} real/class" + (f", {row[STYLE_KEY]}" if styled else "")


def _line_and_band(data, color, label=None, **_) -> None:
    """One line of a facet: the mean gain per synthetic count, and its 95% interval as a band (the comparison's own
    intervals over seeds and test images, not seaborn's bootstrap)."""
    import matplotlib.pyplot as plt

    d = data.sort_values(X_KEY)
    ax = plt.gca()
    ax.plot(d[X_KEY], d["gain"], marker="o", color=color, label=label)
    if d["low"].notna().all():
        ax.fill_between(d[X_KEY], d["low"], d["high"], color=color, alpha=0.15, lw=0)


def draw_curve(rows: list[dict], png: Path):
    """``curve.png``: per architecture (rows) and comparison (columns), one line per real-set size (and
    filter, when the grid varies it) against synthetic images per class. Returns the (closed) seaborn FacetGrid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    from dreaming_data.io import atomic_path

    frame = pd.DataFrame(rows)
    styled = STYLE_KEY in frame and frame[STYLE_KEY].nunique(dropna=False) > 1
    frame["line"] = [_line_label(r, styled) for r in frame.to_dict("records")]
    records = sorted(frame.to_dict("records"), key=lambda r: (_order(r[LINE_KEY]), _order(r.get(STYLE_KEY))))
    order = list(dict.fromkeys(r["line"] for r in records))
    long = pd.concat([frame.assign(comparison=title, gain=frame[g], low=frame[g + "_low"], high=frame[g + "_high"])
                      for g, title in GAINS.items()], ignore_index=True).dropna(subset=["gain"])
    sns.set_theme(style="whitegrid", font_scale=0.85)
    grid = sns.FacetGrid(long, row="arch", col="comparison", hue="line", hue_order=order, height=3.6, aspect=1.45,
                         row_order=sorted(long["arch"].unique()), col_order=list(GAINS.values()), sharey="row",
                         dropna=False)
    grid.map_dataframe(_line_and_band)
    for ax in grid.axes.flat:  # (FacetGrid.refline maps over the hue: its black lines would take the legend)
        ax.axhline(0, color="black", lw=0.8)
    grid.set_axis_labels("synthetic images per class", "test accuracy difference")
    grid.set_titles("{row_name}: {col_name}")
    grid.add_legend(title="")
    with atomic_path(png) as tmp:
        grid.savefig(tmp, format="png", dpi=110)
    plt.close(grid.figure)
    sns.reset_defaults()
    return grid


def write_curve(rows: list[dict], grid: Grid, png: Path, md: Path, source: Path = GRID_FILE) -> None:
    from dreaming_data.io import atomic_path

    if not rows:
        raise UserError("no finished experiment of the grid yet (`dreaming-data curve` queues them; "
                        "`dvc queue status` shows their progress)")
    draw_curve(rows, png)

    def fmt(row, gain):
        mean, low, high = row[gain], row[gain + "_low"], row[gain + "_high"]
        if mean is None or mean != mean:
            return "-"
        fragile = " fragile" if row.get(gain + "_stable") is False else ""
        return f"{mean:+.4f}" + ("" if low is None or low != low else f" [{low:+.4f}, {high:+.4f}]") + fragile

    keys = grid.keys()
    machines = sorted({r["machine"] for r in rows if r.get("machine")})
    several = len(machines) > 1  # a grid run in pieces on different machines: a column says which
    copies = any(row.get("near_copies_inception") is not None for row in rows)
    near = lambda row: "-" if row.get("near_copies_inception") is None else \
        f"{row['near_copies_inception']:.1%} / {row['near_copies_pixel']:.1%}"  # noqa: E731
    lines = ["# The dreaming curve", "",
             f"Test accuracy gains per grid point of `{source}` (mean over seeds, in brackets the 95% interval over "
             f"the seeds and the test images, as in reports/comparison.md; *fragile*: leaving out one seed changes "
             f"the verdict, a demonstration, not a finding). "
             f"Gain over baseline: same epochs, so more optimizer steps for the augmented run; over baseline_matched: "
             f"the same number of steps on real images only. Plot: `{png}`."
             + (" Near copies: the share of the point's dreams nearer a training image than the closest 5% of "
                "held-out real images come (Inception features / pixels; metrics/novelty.json)." if copies else "")
             + (" A point without dreams marked *(its baseline)* is drawn from the line's baseline, not trained "
                "again: augmented and baseline_matched without a dream are the baseline's images, seeds and steps."
                if any(r.get("derived") for r in rows) else "")
             + f" Experiment: its name (`dvc exp show`) and the commit it ran; rows kept in {SAVED} beside this file."
             + (f" Measured on {machines[0]}." if len(machines) == 1 else ""), "",
             "| arch | " + " | ".join(keys) + " | baseline | augmented | gain over baseline | gain over matched | "
             + ("near copies | " if copies else "") + "experiment |" + (" machine |" if several else ""),
             "|---" * (len(keys) + 6 + copies + several) + "|"]
    for row in sorted(rows, key=lambda r: (str(r["arch"]), *[_order(r[k]) for k in keys])):
        acc = lambda v: "-" if v is None or v != v else f"{v:.4f}"  # noqa: E731
        lines.append(f"| {row['arch']} | " + " | ".join(str(row[k]) for k in keys)
                     + f" | {acc(row['baseline'])} | {acc(row['augmented'])} | {fmt(row, 'augmented_minus_baseline')} | "
                       f"{fmt(row, 'augmented_minus_matched')} | " + (f"{near(row)} | " if copies else "")
                     + f"{row['experiment']}{' (' + row['commit'][:7] + ')' if row.get('commit') else ''} |"
                     + (f" {row.get('machine') or '-'} |" if several else ""))
    with atomic_path(md) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
