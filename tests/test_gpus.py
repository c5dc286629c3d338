"""The GPU picker for several experiments on one machine, on the CPU with a stated number of GPUs: each process
takes GPUs no other one holds, a process that needs more waits, and a killed process's GPUs are free at once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from conftest import stage_env
from dreaming_data import gpus

HOLD = """
import sys, time
from pathlib import Path
from dreaming_data import gpus
print(gpus.take(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), poll_s=0.05), flush=True)
time.sleep(float(sys.argv[4]))
"""


def holder(n: int, count: int, folder, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLD, str(n), str(count), str(folder), str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=stage_env())


def taken(proc: subprocess.Popen) -> list[int]:
    return json.loads(proc.stdout.readline())  # the list it printed


@pytest.fixture(autouse=True)
def no_locks_held():
    yield
    gpus.release_all()


def test_each_process_takes_gpus_no_other_holds(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    a, b = holder(1, 4, tmp_path, 30), holder(2, 4, tmp_path, 30)
    try:
        first, second = taken(a), taken(b)
        assert len(first) == 1 and len(second) == 2 and not set(first) & set(second)
        mine = gpus.take(1, 4, tmp_path, poll_s=0.05)  # the one left
        assert mine == sorted(set(range(4)) - set(first) - set(second))
        assert gpus.take(1, 4, tmp_path) == mine  # this process already holds it
        with pytest.raises(TimeoutError):  # and none is free for more
            gpus.take(2, 4, tmp_path, poll_s=0.05, timeout_s=0.3)
        b.send_signal(signal.SIGKILL)  # a killed stage's GPUs are free at once: the kernel drops its locks
        b.wait()
        gpus.release_all()
        assert gpus.take(3, 4, tmp_path, poll_s=0.05, timeout_s=5) == sorted(set(range(4)) - set(first))
    finally:
        for p in (a, b):
            p.kill()
            p.wait()


def test_a_stage_waits_for_a_free_gpu_and_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    a = holder(2, 2, tmp_path, 1.0)
    try:
        assert taken(a) == [0, 1]
        b = holder(1, 2, tmp_path, 0)
        start = time.monotonic()
        assert len(taken(b)) == 1 and time.monotonic() - start > 0.3  # after a released them
        assert "waiting for 1 of the 2 GPUs" in b.stderr.read()
    finally:
        a.kill()
        a.wait()


def test_locks_follow_the_machines_gpu_ids(tmp_path, monkeypatch):
    """Processes that see different subsets (CUDA_VISIBLE_DEVICES) lock the same files for the same GPU."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    assert gpus.visible_ids(4) == ["4", "5", "6", "7"]
    assert gpus.take(2, 4, tmp_path) == [0, 1] and {p.name for p in tmp_path.iterdir()} >= {"gpu-4.lock", "gpu-5.lock"}
    with pytest.raises(Exception, match="runtime.nproc: 5 processes, but this machine shows 4"):
        gpus.take(5, 4, tmp_path)
