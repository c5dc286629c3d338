"""Artifacts: byte-stable saves, safe loading, one-line errors for truncated or foreign files, strict JSON."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from dreaming_data.errors import UserError
from dreaming_data.io import ImageSet, load_images, load_torch, save_images, save_torch, write_json

from conftest import ROOT, stage_cmd, stage_env, tiny_params, write_params


def test_same_contents_give_same_bytes(tmp_path):
    state = {"format": "dreaming-data ddpm", "ema": torch.nn.Linear(3, 2).state_dict(), "classes": ["a", "b"]}
    save_torch(tmp_path / "a.pt", state)
    save_torch(tmp_path / "sub" / "b.pt", state)  # another name, another folder
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "sub" / "b.pt").read_bytes()
    images = ImageSet.real(np.zeros((2, 4, 4, 1), np.uint8), np.array([0, 1]), ("a", "b"))
    save_images(tmp_path / "a.npz", images)
    save_images(tmp_path / "b.npz", images)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


class Payload:
    def __reduce__(self):
        import os

        return os.system, ("touch pwned",)


def test_model_files_cannot_run_code(workdir):
    tmp_path = workdir
    path = tmp_path / "models" / "ddpm" / "linear" / "model.pt"
    path.parent.mkdir(parents=True)
    torch.save({"format": "dreaming-data ddpm", "x": Payload()}, path)
    with pytest.raises(UserError, match=r"not a dreaming-data ddpm file written by dreaming-data .*"
                                        r"dvc repro train_ddpm@linear"):
        load_torch(path, "dreaming-data ddpm")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04garbage", b"not a model", b"junk\n", b"b", b"G"])
def test_broken_model_file_is_one_line(tmp_path, content):
    path = tmp_path / "models" / "classifier" / "baseline-seed0.pt"
    path.parent.mkdir(parents=True)
    save_torch(path, {"format": "dreaming-data classifier"})
    if content:
        path.write_bytes(content)
    else:
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # truncated
    with pytest.raises(UserError) as err:
        load_torch(path, "dreaming-data classifier")
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    save_torch(path, {"format": "something else"})
    with pytest.raises(UserError, match="not a dreaming-data classifier file"):
        load_torch(path, "dreaming-data classifier")


def test_truncated_or_foreign_image_set_is_one_line(workdir):
    tmp_path = workdir
    path = tmp_path / "data" / "train" / "baseline.npz"
    save_images(path, ImageSet.real(np.zeros((20, 8, 8, 1), np.uint8), np.arange(20) % 2, ("a", "b")))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"baseline\.npz: not an image set written by dreaming-data .*"
                                        r"dvc repro download"):
        load_images(path)
    np.savez(path, x=np.zeros((3, 8, 8), np.float32), y=np.zeros(3), classes=np.array(["a"]))
    with pytest.raises(UserError, match="not an image set"):
        load_images(path)
    with pytest.raises(UserError, match=r"missing; stage merge writes it: `dvc repro merge` \(without DVC: "
                                        r"`python stages/merge.py`\)"):
        load_images(tmp_path / "data" / "train" / "augmented.npz")


def test_metrics_json_is_strict(tmp_path):
    """null is a number that does not exist; NaN or infinity is a computation that broke: refused, nothing written."""
    write_json(tmp_path / "m.json", {"a": None, "b": [1.0, 2], "c": {"d": 0.5}})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": None, "b": [1.0, 2], "c": {"d": 0.5}}
    for bad, key in (({"a": float("nan")}, "a = nan"), ({"b": [1.0, float("inf")]}, "b[1] = inf"),
                     ({"c": {"d": -float("inf")}}, "c.d = -inf")):
        with pytest.raises(UserError, match=re.escape(key) + ", not a number"):
            write_json(tmp_path / "n.json", bad)
        assert not (tmp_path / "n.json").exists()


def test_stage_with_an_empty_model_says_one_line(workdir):
    tmp_path = workdir
    write_params(tmp_path / "params.yaml", tiny_params())
    (tmp_path / "models" / "classifier").mkdir(parents=True)
    (tmp_path / "models" / "classifier" / "simple_cnn-baseline-seed0.pt").write_bytes(b"")
    import numpy as np

    save_images(tmp_path / "data" / "prepared" / "test.npz",
                ImageSet.real(np.zeros((3, 8, 8, 1), np.uint8), np.arange(3), ("a", "b", "c")))
    r = subprocess.run(stage_cmd("evaluate", "simple_cnn", "baseline", "0"), cwd=tmp_path,
                       capture_output=True, text=True, env=stage_env())
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: models/classifier/simple_cnn-baseline-seed0.pt: not a "
                                                   "dreaming-data classifier file"), r.stderr
    assert "dvc repro train_classifier_simple_cnn@baseline-0" in lines[0]


@pytest.mark.parametrize("make", ["npy", "text", "zero-d", "empty-pixels"])
def test_foreign_image_files_are_one_line_errors(tmp_path, make):
    """Found by a breaking session: each of these was a traceback."""
    import numpy as np

    path = tmp_path / "set.npz"
    if make == "npy":
        np.save(tmp_path / "set.npy", np.zeros((6, 8, 8, 1), np.uint8))
        path = tmp_path / "set.npy"
    elif make == "text":
        path.write_text("not an archive")
    elif make == "zero-d":
        np.savez(path, x=np.array(3, np.uint8), y=np.array(0), classes=np.array("a"))
    else:
        np.savez(path, x=np.zeros((2, 0, 0, 1), np.uint8), y=np.zeros(2, np.int64), classes=np.array(["a"]))
    with pytest.raises(UserError, match="not an image set written by dreaming-data"):
        load_images(path)


def test_outputs_put_back_the_old_set_when_a_rename_fails(tmp_path, monkeypatch):
    """All outputs or none also in the rename phase: a folder where an output goes is refused before any rename, a
    rename that fails half-way puts back the outputs already replaced, and what runs after the outputs (deleting a
    checkpoint) does not run."""
    import os

    from dreaming_data.io import WriteError, after_outputs, atomic_path, outputs

    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text("old a")
    b.mkdir()
    ran = []

    def stage():
        with outputs():
            for path in (a, b, c):
                with atomic_path(path) as tmp:
                    tmp.write_text("new")
            after_outputs(lambda: ran.append(1))

    with pytest.raises(WriteError, match=r"b.json: cannot be written \(a folder is in its place\)"):
        stage()
    assert a.read_text() == "old a" and not c.exists() and not ran
    b.rmdir()
    b.write_text("old b")
    real, calls = os.replace, []

    def flaky(src, dst):
        calls.append(dst)
        if str(dst) == str(c):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(WriteError, match=r"c.json: cannot be written \(No space left on device\)"):
        stage()
    monkeypatch.setattr(os, "replace", real)
    assert (a.read_text(), b.read_text(), c.exists(), ran) == ("old a", "old b", False, [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]  # no temporary or backup left
    stage()
    assert (a.read_text(), b.read_text(), c.read_text(), ran) == ("new", "new", "new", [1])


@pytest.mark.parametrize("labels, classes, message", [
    (np.zeros(6, np.int64), ("a", "b", "c"), "no images of class b, c"),  # a class-missing training set
    (np.zeros(6, np.int64), ("a",), r"one class \(a\)"),
    (np.array([0, 1, 2, 0, 1, 2.7]), ("a", "b", "c"), "labels are float64, expected integers"),  # 2.7 became 2
])
def test_every_image_set_has_every_class_and_integer_labels(tmp_path, labels, classes, message):
    path = tmp_path / "set.npz"
    np.savez(path, x=np.zeros((6, 2, 2, 1), np.uint8), y=labels, classes=np.array(classes),
             synthetic=np.zeros(6, bool))
    with pytest.raises(UserError, match=message):
        load_images(path)


def test_compare_refuses_metrics_that_disagree_with_their_predictions(tmp_path, monkeypatch):
    """compare took the means from the metrics JSON and the differences from the predictions: an edited or
    mismatched JSON gave a summary that contradicted itself, and a non-number a traceback."""
    import csv

    from dreaming_data.config import parse_params
    from dreaming_data.tools.registry import module

    compare = module("compare")

    monkeypatch.chdir(tmp_path)
    p = parse_params(tiny_params(**{"classifier.seeds.simple_cnn": [0, 1], "classifier.seeds.resnet18": []}))
    y = np.arange(20) % 2
    for arch, variant, seed in compare.runs(p):
        pred = np.where(np.arange(20) < 2 + seed, 1 - y, y)
        write_json(compare.eval_json(arch, variant, seed), {
            "arch": arch, "variant": variant, "seed": seed, "accuracy": float((pred == y).mean()), "macro_f1": 0.5,
            "per_class": {c: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 10} for c in "ab"}})
        for path, header, rows in ((compare.predictions_csv(arch, variant, seed), ["actual", "predicted"],
                                    [["ab"[t], "ab"[q]] for t, q in zip(y, pred)]),
                                   (compare.history_csv(arch, variant, seed), ["epoch", "steps", "val_acc"],
                                    [[1, 4, 0.5]])):
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", newline="") as f:
                csv.writer(f).writerows([header, *rows])
    compare.run(p)  # consistent files: the comparison is written
    path = compare.eval_json("simple_cnn", "augmented", 0)
    for bad in (0.99, "high", None):
        write_json(path, json.loads(path.read_text()) | {"accuracy": bad})
        with pytest.raises(UserError, match=rf"simple_cnn-augmented-seed0.json: accuracy {re.escape(repr(bad))} but "
                                            r"its predictions .* give 0.90000 \(run `dvc repro evaluate_"):
            compare.run(p)
