"""The data stage on real formats: an official-format CIFAR-10 archive, image folders, digits, the shared archive."""

import io
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dreaming_data import data as data_mod
from dreaming_data.config import parse_params
from dreaming_data.data import load_source, md5sum, prepare_data
from dreaming_data.errors import UserError
from dreaming_data.io import load_images

from conftest import ROOT, SHARED_CIFAR, default_params, stage_cmd, stage_env, write_params

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def data_cfg(**kw):
    raw = default_params()
    raw["data"].update(kw)
    raw["unet"]["attention_resolutions"] = [raw["data"]["image_size"] // 2]  # a size the UNet has
    return parse_params(raw).data


def make_cifar_archive(path: Path, per_batch: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A tiny archive in the official CIFAR-10 python format: cifar-10-batches-py/{data_batch_1..5,test_batch,
    batches.meta}, each batch a latin1 pickle of {'data': [N, 3072] uint8 (R, G, B planes), 'labels': [...]}."""
    rng = np.random.default_rng(seed)
    first = None
    with tarfile.open(path, "w:gz") as tar:
        def add(name, obj):
            blob = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))

        add("batches.meta", {"label_names": CLASSES, "num_cases_per_batch": per_batch, "num_vis": 3072})
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            x = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            y = [int(v) for v in np.arange(per_batch) % 10]
            add(name, {"batch_label": name, "labels": y, "data": x, "filenames": [f"{i}.png" for i in range(per_batch)]})
            if first is None:
                first = (x, np.array(y))
    return first


def test_cifar10_local_archive_official_format(tmp_path, monkeypatch):
    archive = tmp_path / "cifar-10-python.tar.gz"
    x0, y0 = make_cifar_archive(archive)
    monkeypatch.setattr(data_mod, "CIFAR10_MD5", md5sum(archive))
    train, test = load_source(data_cfg(source="cifar10", path=str(archive)))
    assert train.classes == tuple(CLASSES)
    assert train.x.shape == (100, 32, 32, 3) and test.x.shape == (20, 32, 32, 3)
    # pixel (row 0, col 1) of image 0: R, G, B planes are 1024 apart in the flat record
    assert tuple(train.x[0, 0, 1]) == (x0[0, 1], x0[0, 1025], x0[0, 2049])
    assert (train.y[:20] == y0).all()


@pytest.fixture
def http_mirror(tmp_path):
    """A loopback HTTP server serving tmp_path/mirror, standing in for the official CIFAR-10 host."""
    import functools
    import http.server
    import threading

    (tmp_path / "mirror").mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "mirror"))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path / "mirror", f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_cifar10_download_path_verifies_md5(tmp_path, monkeypatch, http_mirror):
    """torchvision's download code, over HTTP from a loopback mirror of an official-format archive."""
    mirror, url = http_mirror
    src = mirror / "cifar-10-python.tar.gz"
    make_cifar_archive(src)
    monkeypatch.setattr(data_mod, "CIFAR10_URL", f"{url}/cifar-10-python.tar.gz")
    monkeypatch.setattr(data_mod, "CIFAR10_MD5", md5sum(src))
    train, test = load_source(data_cfg(source="cifar10", path=None, root=str(tmp_path / "raw")))
    assert (tmp_path / "raw" / "cifar-10-python.tar.gz").is_file()
    assert len(train) == 100 and len(test) == 20
    monkeypatch.setattr(data_mod, "CIFAR10_MD5", "0" * 32)  # what a corrupted download looks like
    (tmp_path / "raw" / "cifar-10-python.tar.gz").unlink()
    with pytest.raises(UserError, match="could not download CIFAR-10"):
        load_source(data_cfg(source="cifar10", path=None, root=str(tmp_path / "raw")))


def test_cifar10_wrong_md5_and_corrupt_archive(tmp_path, monkeypatch):
    archive = tmp_path / "cifar-10-python.tar.gz"
    make_cifar_archive(archive)
    with pytest.raises(UserError, match=r"cifar-10-python\.tar\.gz: md5 [0-9a-f]+ does not match the official"):
        load_source(data_cfg(source="cifar10", path=str(archive)))
    truncated = tmp_path / "truncated" / "cifar-10-python.tar.gz"
    truncated.parent.mkdir()
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    monkeypatch.setattr(data_mod, "CIFAR10_MD5", md5sum(truncated))
    with pytest.raises(UserError, match="corrupt or truncated archive"):
        load_source(data_cfg(source="cifar10", path=str(truncated)))


def make_folder(root: Path, classes=("cat", "dog"), train_n=6, test_n=2, size=8, mode="RGB") -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", train_n), ("test", test_n)):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(arr).convert(mode).save(d / f"{i:04d}.png")
    return root


def test_image_folder_directory_and_tarball(tmp_path):
    root = make_folder(tmp_path / "imgs" / "mydata", classes=("zebra", "ant"))
    train, test = load_source(data_cfg(source="folder", path=str(root), image_size=8))
    assert train.classes == ("ant", "zebra")  # sorted folder names
    assert train.x.shape == (12, 8, 8, 3) and test.x.shape == (4, 8, 8, 3)
    first = np.asarray(Image.open(root / "train" / "ant" / "0000.png"))
    assert (train.x[0] == first).all()
    archive = tmp_path / "mydata.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="mydata")  # one top-level folder inside the archive
    t2, _ = load_source(data_cfg(source="folder", path=str(archive), image_size=8))
    assert (t2.x == train.x).all() and (t2.y == train.y).all()


def test_image_folder_jpeg_pixels_match_pillow(tmp_path):
    root = make_folder(tmp_path / "d", size=16)
    for f in sorted(root.rglob("*.png")):  # re-save as JPEG quality 75, like the shared CIFAR-10 archive
        Image.open(f).save(f.with_suffix(".jpg"), quality=75)
        f.unlink()
    train, test = load_source(data_cfg(source="folder", path=str(root), image_size=16))
    files = sorted((root / "train" / "cat").glob("*.jpg")) + sorted((root / "train" / "dog").glob("*.jpg"))
    expected = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    assert (train.x == expected).all()


def test_image_folder_converts_mixed_modes_and_sizes(tmp_path, capsys):
    root = make_folder(tmp_path / "d")
    Image.new("L", (12, 10), 128).save(root / "train" / "cat" / "gray.png")
    train, _ = load_source(data_cfg(source="folder", path=str(root), image_size=8))
    assert train.x.shape == (13, 8, 8, 3)
    assert "converted 1 images to RGB and resized 1 to 8x8" in capsys.readouterr().out


@pytest.mark.parametrize("breakage, message", [
    ("class_mismatch", r"train and test class folders differ \(only in train: \['bird'\]"),
    ("not_image", r"train/cat/notes\.png: not a readable image"),
    ("empty_class", r"train/dog: empty class folder"),
    ("sixteen_bit", r"train/cat/deep\.png: a I;16 image \(expected 8 bits per channel"),  # was clipped to white
    ("nested", r"train/cat/more: a folder inside a class folder"),  # its images were left out
])
def test_image_folder_bad_input(tmp_path, breakage, message):
    root = make_folder(tmp_path / "d")
    if breakage == "class_mismatch":
        make_folder(tmp_path / "extra", classes=("bird",))
        (tmp_path / "extra" / "train" / "bird").rename(root / "train" / "bird")
    elif breakage == "not_image":
        (root / "train" / "cat" / "notes.png").write_text("not a picture")
    elif breakage == "empty_class":
        for f in (root / "train" / "dog").iterdir():
            f.unlink()
    elif breakage == "sixteen_bit":
        Image.fromarray(np.full((8, 8), 14_000, dtype=np.uint16)).save(root / "train" / "cat" / "deep.png")
    elif breakage == "nested":
        make_folder(tmp_path / "extra", classes=("cat",))
        (tmp_path / "extra" / "train" / "cat").rename(root / "train" / "cat" / "more")
    with pytest.raises(UserError, match=message):
        load_source(data_cfg(source="folder", path=str(root), image_size=8))


def test_truncated_folder_archive(tmp_path):
    root = make_folder(tmp_path / "d")
    archive = tmp_path / "d.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="d")
    archive.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(UserError, match=r"d\.tar\.gz: corrupt or truncated archive"):
        load_source(data_cfg(source="folder", path=str(archive), image_size=8))


def test_per_class_sample():
    from dreaming_data.io import per_class_sample

    y = np.array([0, 1, 0, 0, 1, 0, 0, 2])
    idx = per_class_sample(y, 3, seed=0)
    assert list(np.bincount(y[idx])) == [3, 2, 1]  # a class with fewer rows gives all of them
    assert (np.diff(idx) > 0).all() and (idx == per_class_sample(y, 3, seed=0)).all()
    assert {tuple(per_class_sample(y, 2, seed=s)) for s in range(20)} != {tuple(per_class_sample(y, 2, seed=0))}


def test_digits_split_and_subset(tmp_path):
    cfg = data_cfg(source="digits", image_size=16, val_size=100, train_per_class=7)
    m = prepare_data(cfg, {s: tmp_path / f"{s}.npz" for s in ("train", "val", "test")}, tmp_path / "m.json")
    train, val, test = (load_images(tmp_path / f"{s}.npz") for s in ("train", "val", "test"))
    assert train.x.shape == (70, 16, 16, 1) and train.x.dtype == np.uint8
    assert set(train.counts().values()) == {7}
    assert len(val) == 100 and len(test) == 360
    assert m["source_counts"]["train"]["0"] + m["source_counts"]["test"]["0"] == 178  # digit 0 in sklearn
    assert train.x.max() > 200  # strokes are bright: the 0..16 range was scaled to 0..255


def test_train_per_class_too_large(tmp_path):
    cfg = data_cfg(source="digits", image_size=8, val_size=100, train_per_class=500)
    with pytest.raises(UserError, match=r"data\.train_per_class: 500 but class '\d' has only \d+ training images"):
        prepare_data(cfg, {s: tmp_path / f"{s}.npz" for s in ("train", "val", "test")}, tmp_path / "m.json")
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_stage_script_reports_one_line_and_writes_nothing(workdir):
    raw = default_params()
    raw["data"].update(source="folder", path=str(workdir / "missing-folder"))
    write_params(workdir / "params.yaml", raw)
    r = subprocess.run(stage_cmd("download"), capture_output=True, text=True,
                       env=stage_env())
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: data.path: {workdir / 'missing-folder'} does not exist"
    assert not (workdir / "data").exists() and not (workdir / "metrics").exists()
    raw["data"]["source"] = "mnist"
    write_params(workdir / "params.yaml", raw)
    r = subprocess.run(stage_cmd("download"), capture_output=True, text=True,
                       env=stage_env())
    assert r.returncode == 2 and "'data.source' must be one of cifar10, folder, digits, got 'mnist'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not SHARED_CIFAR.exists(), reason="needs ../shared/data/cifar10-jpeg.tar.gz")
def test_shared_cifar10_jpeg_archive():
    train, test = load_source(data_cfg(source="folder", path=str(SHARED_CIFAR), image_size=32))
    assert train.classes == tuple(CLASSES)
    assert set(train.counts().values()) == {5000} and set(test.counts().values()) == {1000}
    assert train.x.shape == (50000, 32, 32, 3)
