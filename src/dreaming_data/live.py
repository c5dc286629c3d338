"""Live metrics the DVC way: DVCLive files (``metrics.json``, ``plots/metrics/<name>.tsv``) written while a stage
runs, so that ``dvc exp show`` of a running experiment shows its step and loss, ``dvc plots show`` draws step-level
curves, and the DVC VS Code extension follows them, offline, without DVC Studio.

One directory per stage instance (``dvclive/train_ddpm-linear``), declared in ``dvc.yaml`` as that stage's metrics
and plots; DVCLive writes no ``dvc.yaml`` of its own. Rank 0 logs. The values only go out: nothing read back changes
what is trained or sampled. They are not ``persist`` outputs (DVC's run cache skips a stage with one, and every
experiment of a grid would train its DDPM again), so DVC deletes them before it runs a stage again: each checkpoint
keeps a copy (``keep``), and a resumed run starts from that copy cut back to the step it resumes from, so its curves
have neither a gap nor a repeat. Without DVCLive (a GPU job
on an image without DVC) or with ``runtime.live_every: 0`` nothing is logged live; the stage's own outputs are the
same either way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path

from dreaming_data import distributed as dd

from dreaming_data.paths import live_dir

# The live folders a plots page draws (`dreaming-data plots`, a results folder): the DDPMs' per-step curves. Every
# stage's are plots in dvc.yaml (so that DVC's run cache can serve it); plain `dvc plots show` draws them all.
DRAWN = r"dvclive/train_ddpm-[^/]+/plots$"


def replace_text(path: str | Path, text: str) -> None:
    """``text`` into a temporary file beside ``path``, then renamed onto it: a reader (``dvc exp show``, a script
    polling the summary) sees the old file or the new one, never half of one. Not ``io.atomic_path``: that defers
    the rename to the end of the stage, and live files are read while it runs."""
    from dreaming_data.io import WriteError

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise WriteError(f"{path}: cannot be written ({exc.strerror or type(exc).__name__})") from None
    finally:
        tmp.unlink(missing_ok=True)


def _dump_json(content, output_file, indent=4, **kwargs) -> None:
    """DVCLive's ``serialize.dump_json`` (the summary, ``metrics.json``), written by ``replace_text``: DVCLive itself
    opens the file with "w" and writes over it, so a reader could find it half-written."""
    replace_text(output_file, json.dumps(content, indent=indent, **kwargs) + "\n")


def cut_to(folder: Path, step: int) -> None:
    """Drop every row logged after ``step`` (an interrupted run logged past the checkpoint it resumes from)."""
    for tsv in (folder / "plots" / "metrics").glob("*.tsv"):
        lines = tsv.read_text(encoding="utf-8").splitlines(keepends=True)
        keep = lines[:1] + [line for line in lines[1:] if int(float(line.split("\t")[0])) <= step]
        replace_text(tsv, "".join(keep))
    summary = folder / "metrics.json"
    if summary.is_file():
        data = json.loads(summary.read_text() or "{}")
        if data.get("step", 0) > step:
            data["step"] = step
            replace_text(summary, json.dumps(data, indent=4) + "\n")


class LiveLog:
    """DVCLive for one stage instance: ``log(step, metrics)`` records ``metrics`` at ``step`` (rank 0; a no-op when
    off). ``resume_step``: the step the stage resumes from (0 or None: a fresh run, the directory starts empty);
    ``kept``: where its checkpoint keeps the live files (``keep``), restored from when it resumes."""

    def __init__(self, stage: str, every: int, resume_step: int | None = None, kept: Path | None = None):
        self.every, self.live, self.kept = every, None, kept
        if every <= 0 or not dd.is_main():
            return
        try:
            import dvclive.live
            from dvclive import Live
        except ImportError:  # an image without DVC: the stage's log and outputs say it all
            return
        dvclive.live.dump_json = _dump_json  # the summary replaced whole, never written over (rows are appended)
        folder = live_dir(stage)
        if resume_step:
            copies = [kept, kept.with_name(kept.name + ".old")] if kept is not None else []
            copy = next((c for c in copies if c.is_dir()), None)  # (.old: a copy cut between its two renames)
            if copy is not None:  # the checkpoint's, not what a run killed after it logged (DVC may delete that)
                shutil.rmtree(folder, ignore_errors=True)
                shutil.copytree(copy, folder)
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
        with self._writing():
            self.live.step = step
            for name, value in metrics.items():
                if value is not None:
                    self.live.log_metric(name, value)
            self.live.make_summary()

    def keep(self) -> None:
        """Copy the live files into the checkpoint (``kept``), called when it is saved: a copy of the whole folder
        is renamed into place, so an interrupted copy leaves the previous one."""
        if self.live is None or self.kept is None:
            return
        tmp, old = self.kept.with_name(self.kept.name + ".tmp"), self.kept.with_name(self.kept.name + ".old")
        with self._writing():
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(self.live.dir, tmp)
            shutil.rmtree(old, ignore_errors=True)
            if self.kept.exists():
                self.kept.rename(old)
            tmp.rename(self.kept)
            shutil.rmtree(old, ignore_errors=True)

    def close(self) -> None:
        if self.live is not None:
            with self._writing():
                self.live.end()

    @contextlib.contextmanager
    def _writing(self):
        """A live file that cannot be written (a full disk) is a ``WriteError`` naming it, or its folder when the
        OS does not say which file: one line, like every other output's."""
        from dreaming_data.io import WriteError

        try:
            yield
        except WriteError:
            raise
        except OSError as exc:
            where = exc.filename or f"{self.live.dir}/"
            raise WriteError(f"{where}: cannot be written ({exc.strerror or type(exc).__name__})") from None
