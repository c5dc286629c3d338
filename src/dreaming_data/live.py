"""Live metrics the DVC way: DVCLive files (``metrics.json``, ``plots/metrics/<name>.tsv``) written while a stage
runs, so that ``dvc exp show`` of a running experiment shows its step and loss, ``dvc plots show`` draws step-level
curves, and the DVC VS Code extension follows them, offline, without DVC Studio.

One directory per stage instance (``dvclive/train_ddpm-linear``), declared in ``dvc.yaml`` as that stage's metrics
and plots (``persist: true``: a resumed run goes on with them); DVCLive writes no ``dvc.yaml`` of its own. Rank 0
logs. The values only go out: nothing read back changes what is trained or sampled. A resumed run first cuts the
files back to the step it resumes from, so its curves have neither a gap nor a repeat. Without DVCLive (a GPU job
on an image without DVC) or with ``runtime.live_every: 0`` nothing is logged live; the stage's own outputs are the
same either way.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dreaming_data import distributed as dd

ROOT = Path("dvclive")


def live_dir(stage: str) -> Path:
    """``dvclive/<stage>`` with DVC's ``@`` as ``-``: ``dvclive/train_ddpm-linear``."""
    return ROOT / stage.replace("@", "-")


def cut_to(folder: Path, step: int) -> None:
    """Drop every row logged after ``step`` (an interrupted run logged past the checkpoint it resumes from)."""
    for tsv in (folder / "plots" / "metrics").glob("*.tsv"):
        lines = tsv.read_text(encoding="utf-8").splitlines(keepends=True)
        keep = lines[:1] + [line for line in lines[1:] if int(float(line.split("\t")[0])) <= step]
        tsv.write_text("".join(keep), encoding="utf-8")
    summary = folder / "metrics.json"
    if summary.is_file():
        data = json.loads(summary.read_text() or "{}")
        if data.get("step", 0) > step:
            data["step"] = step
            summary.write_text(json.dumps(data, indent=4))


class LiveLog:
    """DVCLive for one stage instance: ``log(step, metrics)`` records ``metrics`` at ``step`` (rank 0; a no-op when
    off). ``resume_step``: the step the stage resumes from (0 or None: a fresh run, the directory starts empty)."""

    def __init__(self, stage: str, every: int, resume_step: int | None = None):
        self.every, self.live = every, None
        if every <= 0 or not dd.is_main():
            return
        try:
            from dvclive import Live
        except ImportError:  # an image without DVC: the stage's log and outputs say it all
            return
        folder = live_dir(stage)
        if resume_step:
            cut_to(folder, resume_step)
        try:
            self.live = Live(str(folder), resume=bool(resume_step), report=None, save_dvc_exp=False, dvcyaml=None)
        except Exception as exc:  # noqa: BLE001 - e.g. scmrepo's "Empty git repo": the stage's own outputs go on
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            print(f"{stage}: live metrics off ({type(exc).__name__}: {first}); the stage goes on without them",
                  file=sys.stderr)

    def due(self, step: int, last: bool = False) -> bool:
        """Whether a per-step metric is logged at ``step``: every ``runtime.live_every`` steps and at the end."""
        return self.live is not None and (step % self.every == 0 or last)

    def log(self, step: int, metrics: dict) -> None:
        if self.live is None:
            return
        self.live.step = step
        for name, value in metrics.items():
            if value is not None:
                self.live.log_metric(name, value)
        self.live.make_summary()

    def close(self) -> None:
        if self.live is not None:
            self.live.end()
