"""The data stage: read CIFAR-10, an image folder or scikit-learn's digits into one canonical format.

Every source ends as ``ImageSet``s of uint8 ``[N, H, W, C]`` images. ``prepare_data`` carves a stratified
validation split from the real training split, then keeps ``train_per_class`` training images per class.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
import tarfile
import tempfile
import warnings
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from dreaming_data.config import DataConfig
from dreaming_data.errors import UserError
from dreaming_data.io import ImageSet, per_class_sample, save_images, write_json

# The official release (https://www.cs.toronto.edu/~kriz/cifar.html), as torchvision.datasets.CIFAR10 names it.
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_FILENAME = "cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR10_TEST_BATCH = "test_batch"

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# PIL modes of 8 bits per channel, which convert("RGB") maps exactly (I;16, I and F would clip)
EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"})


def broken_archive(archive: Path, exc: Exception) -> UserError:
    """One line for an archive tarfile cannot read (its own message lists every method it tried, with reprs)."""
    if isinstance(exc, tarfile.ReadError) and "could not be opened" in str(exc):
        return UserError(f"{archive}: not a tar archive (plain, gzip, bz2 or xz)")
    first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
    return UserError(f"{archive}: corrupt or truncated archive ({first})")


def extract_tar(archive: Path, dest: Path) -> None:
    """Extract a (gzipped) tar archive; a truncated or corrupt one is a ``UserError`` naming it."""
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise broken_archive(archive, exc) from None


# ---------------------------------------------------------------------------------------------------------
# CIFAR-10, official python format


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="latin1")
        x = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        y = np.asarray(batch.get("labels", batch.get("fine_labels")), dtype=np.int64)
    except FileNotFoundError:
        raise UserError(f"{path}: missing from the CIFAR-10 archive") from None
    except Exception as exc:  # a pickle that is not a CIFAR batch
        raise UserError(f"{path}: not a CIFAR-10 batch ({type(exc).__name__})") from None
    return np.ascontiguousarray(x), y


def read_cifar10_folder(folder: Path) -> tuple[ImageSet, ImageSet]:
    """Read an extracted ``cifar-10-batches-py`` folder into (train, test)."""
    with open(folder / "batches.meta", "rb") as f:
        classes = tuple(pickle.load(f, encoding="latin1")["label_names"])
    parts = [_read_cifar_batch(folder / name) for name in CIFAR10_TRAIN_BATCHES]
    train = ImageSet.real(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), classes)
    test = ImageSet.real(*_read_cifar_batch(folder / CIFAR10_TEST_BATCH), classes)
    return train, test


def load_cifar10(cfg: DataConfig) -> tuple[ImageSet, ImageSet]:
    """CIFAR-10 from ``cfg.path`` (a local ``cifar-10-python.tar.gz``) or torchvision's download into ``cfg.root``.

    Either way the archive's md5 is checked against the official release before it is extracted.
    """
    from torchvision.datasets.utils import download_url

    if cfg.path is not None:
        archive = Path(cfg.path)
        if not archive.is_file():
            raise UserError(f"data.path: {archive} is not a file (expected {CIFAR10_FILENAME})")
    else:
        root = Path(cfg.root)
        archive = root / CIFAR10_FILENAME
        if not archive.is_file() or md5sum(archive) != CIFAR10_MD5:
            print(f"downloading {CIFAR10_URL} to {root}")
            try:
                download_url(CIFAR10_URL, str(root), filename=CIFAR10_FILENAME, md5=CIFAR10_MD5)
            except Exception as exc:
                raise UserError(f"could not download CIFAR-10 from {CIFAR10_URL} ({exc}); "
                                f"set data.path to a local {CIFAR10_FILENAME}") from None
    digest = md5sum(archive)
    if digest != CIFAR10_MD5:
        raise UserError(f"{archive}: md5 {digest} does not match the official CIFAR-10 archive ({CIFAR10_MD5})")
    with tempfile.TemporaryDirectory() as tmp:
        extract_tar(archive, Path(tmp))
        folder = Path(tmp) / CIFAR10_FOLDER
        if not (folder / "batches.meta").is_file():
            raise UserError(f"{archive}: no {CIFAR10_FOLDER}/batches.meta inside")
        return read_cifar10_folder(folder)


# ---------------------------------------------------------------------------------------------------------
# Image folders: <root>/{train,test}/<class>/<image>


class _Tree:
    """The files of an image folder or of a tar archive of one, by POSIX path relative to its top.

    An archive is read into memory in one pass (no extraction to disk: 60,000 small files extract slower than
    they decode); a directory is listed and read lazily.
    """

    def __init__(self, path: Path):
        self.shown = path
        self.files: dict[PurePosixPath, Path | bytes] = {}
        self.dirs: set[PurePosixPath] = set()
        if path.is_file():
            try:
                with tarfile.open(path) as tar:
                    for m in tar:
                        name = PurePosixPath(m.name)
                        if m.isdir():
                            self.dirs.add(name)
                        elif m.isfile():
                            self.files[name] = tar.extractfile(m).read()
            except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
                raise broken_archive(path, exc) from None
        else:
            for folder, dirnames, filenames in os.walk(path):
                rel = PurePosixPath(Path(folder).relative_to(path).as_posix())
                self.dirs.update(rel / d for d in dirnames)
                self.files.update({rel / f: Path(folder, f) for f in filenames})
        for name in self.files:  # folders that only appear as a file's parents
            self.dirs.update(name.parents)
        self.dirs.discard(PurePosixPath("."))
        self.inside: dict[PurePosixPath, tuple[list, list]] = {}  # folder -> (sub-folders, files), hidden skipped
        for kind, names in ((0, self.dirs), (1, self.files)):
            for p in names:
                if not p.name.startswith("."):
                    self.inside.setdefault(p.parent, ([], []))[kind].append(p)

    def children(self, folder: PurePosixPath) -> tuple[list[PurePosixPath], list[PurePosixPath]]:
        """(sub-folders, files) directly inside ``folder``, sorted."""
        dirs, files = self.inside.get(folder, ([], []))
        return sorted(dirs), sorted(files)

    def where(self, rel: PurePosixPath) -> str:
        return f"{self.shown}: {rel}"

    def read(self, rel: PurePosixPath) -> bytes:
        src = self.files[rel]
        return src if isinstance(src, bytes) else src.read_bytes()

    def open_image(self, rel: PurePosixPath, blob: bytes) -> Image.Image:
        try:
            with Image.open(io.BytesIO(blob)) as im:
                im.load()
                return im.copy()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise UserError(f"{self.where(rel)}: not a readable image ({type(exc).__name__})") from None


def _fast_decoder(image_size: int):
    """torchvision's libjpeg-turbo/libpng decoder (20x faster than PIL on 32x32 JPEGs, same pixels): a function
    of the file's bytes giving an ``[H, W, 3]`` uint8 array, or None for anything but a 3-channel 8-bit image of
    the wanted size. None where torchvision no longer decodes images (deprecated in 0.29 for TorchCodec)."""
    try:
        from torchvision.io import ImageReadMode, decode_image
    except ImportError:
        return None

    def decode(blob: bytes) -> np.ndarray | None:
        try:
            img = decode_image(torch.frombuffer(bytearray(blob), dtype=torch.uint8), mode=ImageReadMode.UNCHANGED)
        except (RuntimeError, ValueError):
            return None
        if img.dtype != torch.uint8 or img.shape != (3, image_size, image_size):
            return None
        return img.permute(1, 2, 0).numpy()

    return decode


def _find_split_root(tree: _Tree, top: PurePosixPath = PurePosixPath(".")) -> PurePosixPath:
    dirs, files = tree.children(top)
    if top / "train" in dirs and top / "test" in dirs:
        return top
    if len(dirs) == 1 and not files:
        return _find_split_root(tree, dirs[0])
    raise UserError(f"{tree.shown}: expected train/<class>/ and test/<class>/ folders (or one folder holding them)")


def _class_files(tree: _Tree, split: PurePosixPath) -> dict[str, list[PurePosixPath]]:
    files = {}
    for folder in tree.children(split)[0]:
        inner, found = tree.children(folder)
        if inner:  # its images would be left out without a word
            raise UserError(f"{tree.where(inner[0])}: a folder inside a class folder (expected image files only)")
        if not found:
            raise UserError(f"{tree.where(folder)}: empty class folder (expected at least one image)")
        files[folder.name] = found
    if not files:
        raise UserError(f"{tree.where(split)}: no class folders")
    return files


def read_image_folder(path: Path, image_size: int) -> tuple[ImageSet, ImageSet]:
    """Read ``train/`` and ``test/`` of an image folder (or ``.tar.gz`` of one) into (train, test).

    Images are converted to RGB, and resized (bicubic) to ``image_size`` when their size differs; a line says
    how many were converted.
    """
    if not path.exists():
        raise UserError(f"data.path: {path} does not exist")
    tree = _Tree(path)
    root = _find_split_root(tree)
    train_files, test_files = _class_files(tree, root / "train"), _class_files(tree, root / "test")
    if set(train_files) != set(test_files):
        only_train = sorted(set(train_files) - set(test_files))
        only_test = sorted(set(test_files) - set(train_files))
        raise UserError(f"{path}: train and test class folders differ (only in train: {only_train}; only in test: {only_test})")
    classes = tuple(sorted(train_files))
    converted = {"mode": 0, "size": 0}
    decode = _fast_decoder(image_size)

    def load(rel: PurePosixPath) -> np.ndarray:
        blob = tree.read(rel)
        fast = decode(blob) if decode is not None else None
        if fast is not None:
            return fast
        im = tree.open_image(rel, blob)  # other formats and modes, resizing, and the error for a broken file
        if im.mode not in EIGHT_BIT_MODES:  # PIL's convert("RGB") clips 16-bit and float values to white
            raise UserError(f"{tree.where(rel)}: a {im.mode} image (expected 8 bits per channel: one of "
                            f"{', '.join(sorted(EIGHT_BIT_MODES))})")
        if im.mode != "RGB":
            converted["mode"] += 1
            im = im.convert("RGB")
        if im.size != (image_size, image_size):
            converted["size"] += 1
            im = im.resize((image_size, image_size), Image.Resampling.BICUBIC)
        return np.asarray(im, dtype=np.uint8)

    sets = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The image decoding", DeprecationWarning)
        for files in (train_files, test_files):
            rels = [p for name in classes for p in files[name]]
            labels = np.array([i for i, name in enumerate(classes) for _ in files[name]], dtype=np.int64)
            sets.append(ImageSet.real(np.stack([load(r) for r in rels]), labels, classes))
    if converted["mode"] or converted["size"]:
        print(f"{path}: converted {converted['mode']} images to RGB and resized {converted['size']} "
              f"to {image_size}x{image_size}")
    return sets[0], sets[1]


# ---------------------------------------------------------------------------------------------------------
# scikit-learn's digits: real handwriting, bundled with scikit-learn, no download


def load_digits(image_size: int, seed: int, test_fraction: float = 0.2) -> tuple[ImageSet, ImageSet]:
    """The 1,797 8x8 digits, upsampled (bilinear) to ``image_size``, 1 channel; a stratified 20% test split."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    d = sk_digits()
    x = torch.from_numpy(d.images).float()[:, None] / 16.0  # [N, 1, 8, 8] in [0, 1]
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # [N, H, W, 1]
    y = d.target.astype(np.int64)
    classes = tuple(str(i) for i in range(10))
    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=test_fraction, stratify=y, random_state=seed)
    full = ImageSet.real(np.ascontiguousarray(x), y, classes)
    return full.subset(np.sort(idx_train)), full.subset(np.sort(idx_test))


# ---------------------------------------------------------------------------------------------------------


def load_source(cfg: DataConfig) -> tuple[ImageSet, ImageSet]:
    """(train, test) of the configured source, before any split or subsetting."""
    if cfg.source == "cifar10":
        train, test = load_cifar10(cfg)
        if cfg.image_size != 32:
            raise UserError(f"data.image_size: CIFAR-10 images are 32x32, got {cfg.image_size}")
        return train, test
    if cfg.source == "folder":
        return read_image_folder(Path(cfg.path), cfg.image_size)
    if cfg.source == "digits":
        return load_digits(cfg.image_size, cfg.seed)
    raise UserError(f"data.source: unknown source {cfg.source!r} (expected cifar10, folder or digits)")


def split_train(train: ImageSet, cfg: DataConfig) -> tuple[ImageSet, ImageSet]:
    """Carve a stratified validation set of ``val_size`` images, then keep ``train_per_class`` per class."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(train))
    if cfg.val_size > 0:
        if cfg.val_size >= len(train) or cfg.val_size < len(train.classes):
            raise UserError(f"data.val_size: {cfg.val_size} must be between {len(train.classes)} and "
                            f"{len(train) - 1} for {len(train)} training images")
        idx, idx_val = train_test_split(idx, test_size=cfg.val_size, stratify=train.y, random_state=cfg.seed)
    else:
        idx_val = np.array([], dtype=np.int64)
    if cfg.train_per_class is not None:
        counts = np.bincount(train.y[idx], minlength=len(train.classes))
        for name, count in zip(train.classes, counts):
            if count < cfg.train_per_class:
                raise UserError(f"data.train_per_class: {cfg.train_per_class} but class '{name}' has only "
                                f"{count} training images after the validation split")
        idx = idx[per_class_sample(train.y[idx], cfg.train_per_class, cfg.seed)]
    return train.subset(np.sort(idx)), train.subset(np.sort(idx_val))


def prepare_data(cfg: DataConfig, outputs: dict[str, Path], metrics_path: Path) -> dict:
    """Run the data stage: write the ``train``, ``val`` and ``test`` sets to ``outputs[split]`` and counts to
    ``metrics_path``. Everything is read and checked before the first file is written."""
    source_train, test = load_source(cfg)
    if len(source_train.classes) < 2:
        raise UserError(f"data: {len(source_train.classes)} class ({', '.join(source_train.classes)}); a classifier "
                        f"needs at least 2 (every accuracy would be 1.0)")
    train, val = split_train(source_train, cfg)
    for split, images in (("train", train), ("val", val), ("test", test)):
        if split == "val" and cfg.val_size == 0:
            continue
        if empty := [c for c, n in images.counts().items() if n == 0]:
            raise UserError(f"data: the {split} split has no images of class {', '.join(empty[:5])} "
                            f"({images.counts()}); every class needs at least one in each split")
    metrics = {
        "source": cfg.source,
        "classes": list(train.classes),
        "image_shape": list(train.x.shape[1:]),
        "source_counts": {"train": source_train.counts(), "test": test.counts()},
        "counts": {"train": train.counts(), "val": val.counts(), "test": test.counts()},
        "totals": {"train": len(train), "val": len(val), "test": len(test)},
    }
    for split, images in (("train", train), ("val", val), ("test", test)):
        save_images(outputs[split], images)
    write_json(metrics_path, metrics)
    return metrics
