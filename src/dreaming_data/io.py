"""Small file helpers: atomic writes, the canonical ``.npz`` image format, strict JSON metrics, torch files
that are byte-stable and load safely."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import pickle
import struct
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dreaming_data.errors import UserError
from dreaming_data.paths import remake


class WriteError(UserError):
    """A file that could not be written (disk full, file too large, permission denied): the environment, not the
    params; one line naming the file (the runner adds the stage)."""


_PENDING: list[list[tuple[Path, Path]]] = []  # the open ``outputs()`` blocks: (temporary, final) renames to do
_AFTER: list[list] = []  # per open block: what to do once its outputs are in place


def _is_checkpoint(path: Path) -> bool:
    from dreaming_data.paths import CHECKPOINTS

    return path.resolve().is_relative_to(CHECKPOINTS.resolve())


@contextlib.contextmanager
def outputs() -> Iterator[None]:
    """All of a stage's outputs or none: inside the block, ``atomic_path`` leaves each finished file under its
    temporary name; when the block ends normally they are renamed into place together (``_commit``), when it fails
    they are deleted and the previous outputs stay as they were. Checkpoints are written at once (a resume needs
    them); what ``after_outputs`` registers (deleting a checkpoint) runs only once every output is in place."""
    pending: list[tuple[Path, Path]] = []
    _PENDING.append(pending)
    _AFTER.append([])
    try:
        yield
    except BaseException:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        _PENDING.remove(pending)
        after = _AFTER.pop()
    _commit(pending)
    for fn in after:
        fn()


def after_outputs(fn) -> None:
    """Call ``fn`` once the open ``outputs()`` block has put every output in place (at once outside one)."""
    if _AFTER:
        _AFTER[-1].append(fn)
    else:
        fn()


def _commit(pending: list[tuple[Path, Path]]) -> None:
    """Rename every temporary file onto its output; if one rename fails, put back the outputs already replaced (from
    their backups) and delete the rest: the previous set stays whole. A ``WriteError`` names the output."""
    for tmp, path in pending:
        if path.is_dir():
            for t, _ in pending:
                t.unlink(missing_ok=True)
            raise WriteError(f"{path}: cannot be written (a folder is in its place)")
    done: list[tuple[Path, Path | None]] = []  # (output, its backup or None when it did not exist)
    try:
        for tmp, path in pending:
            backup = None
            if path.exists():
                backup = tmp.with_name(tmp.name + ".old")
                os.replace(path, backup)
            done.append((path, backup))
            os.replace(tmp, path)
    except OSError as exc:
        for out, backup in reversed(done):
            if backup is not None:
                os.replace(backup, out)
            else:
                out.unlink(missing_ok=True)
        for t, _ in pending:
            t.unlink(missing_ok=True)
        raise WriteError(f"{path}: cannot be written ({exc.strerror or type(exc).__name__})") from None
    for _, backup in done:
        if backup is not None:
            backup.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds (inside
    ``outputs()``: when that block ends). A failed write (disk full, file too large, no permission) is a
    ``WriteError`` naming ``path``."""
    path = Path(path)
    deferred = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise WriteError(f"{path}: cannot be written ({exc.strerror or type(exc).__name__})") from None
    tmp = Path(name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o644)
        if _PENDING and not _is_checkpoint(path):
            _PENDING[-1].append((tmp, path))
            deferred = True
        else:
            os.replace(tmp, path)
    except OSError as exc:
        raise WriteError(f"{path}: cannot be written ({exc.strerror or type(exc).__name__})") from None
    finally:
        if not deferred:
            tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_csv(table, path: str | Path) -> None:
    """A table as CSV (what DVC's plot templates read), written atomically: a pandas DataFrame (without its index),
    or a list of rows, dicts with the same keys (the csv module: a stage that writes one needs no pandas)."""
    with atomic_path(path) as tmp:
        if isinstance(table, list):
            import csv

            with open(tmp, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=list(table[0]) if table else [], lineterminator="\n")
                writer.writeheader()
                writer.writerows(table)
        else:
            table.to_csv(tmp, index=False)


def pyplot():
    """matplotlib.pyplot on the Agg backend (files, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    """A matplotlib figure as PNG, written atomically; the figure is closed."""
    plt = pyplot()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)


def save_png(image, path: str | Path) -> None:
    """A PIL image as PNG, written atomically."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def _remake_hint(path: Path) -> str:
    how = remake(path)
    return f" ({how})" if how else ""


def missing(path: str | Path) -> UserError:
    """``path``, an input, does not exist: one line naming the stage that writes it and the commands that remake
    it (with DVC and without)."""
    path = Path(path)
    how = remake(path)
    return UserError(f"{path}: missing" + (f"; {how}" if how else ""))


def _not_numbers(obj: Any, where: str = "") -> Iterator[str]:
    """Dotted keys of every NaN or infinite float in ``obj``."""
    if isinstance(obj, float) and not math.isfinite(obj):
        yield f"{where or 'the value'} = {obj}"
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _not_numbers(v, f"{where}.{k}" if where else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _not_numbers(v, f"{where}[{i}]")


def write_json(path: str | Path, obj: Any) -> None:
    """Strict JSON, written atomically. A NaN or infinite number is refused (null is how a number that does not
    exist is written): a metric that is not a number means the computation behind it broke."""
    bad = list(_not_numbers(obj))
    if bad:
        raise UserError(f"{path}: {bad[0]}, not a number (what computed it diverged{_remake_hint(Path(path))})")
    write_bytes(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode())


def check_finite(tensors: dict, what: str) -> None:
    """Every floating tensor of a state dict finite, else a ``UserError`` naming the first that is not."""
    for name, t in tensors.items():
        if getattr(t, "is_floating_point", lambda: False)() and not bool(t.isfinite().all()):
            raise UserError(f"{what}: weights {name} hold NaN or infinite values")


def read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise missing(path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc}){_remake_hint(Path(path))}") from None


def save_torch(path: str | Path, obj: Any) -> None:
    """``torch.save`` through memory: the archive then names no temporary file, so equal contents give equal
    bytes (and DVC re-runs nothing downstream of a model that did not change)."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())


def load_torch(path: str | Path, kind: str, device: Any = "cpu") -> dict:
    """A dict saved by ``save_torch`` with ``format == kind``, loaded with ``weights_only=True`` (tensors and plain
    types only: a file from a shared remote cannot run code). Anything else is a one-line ``UserError``."""
    import torch

    import warnings

    path = Path(path)
    try:
        with warnings.catch_warnings():  # a refusal is our one line, not torch's paragraphs
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise missing(path) from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError,
            IndexError, struct.error) as exc:  # what torch's unpickler raises on bytes that are not a model
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a {kind} file written by dreaming-data ({first}){_remake_hint(path)}") from None
    if not isinstance(obj, dict) or obj.get("format") != kind:
        raise UserError(f"{path}: not a {kind} file written by dreaming-data{_remake_hint(path)}")
    return obj


@dataclass(frozen=True)
class ImageSet:
    """Labelled images. ``x``: [N, H, W, C] uint8; ``y``: [N] int64; ``classes``: names in label order.

    ``synthetic``: [N] bool, True for rows a diffusion model made (all False for real data).
    """

    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    synthetic: np.ndarray

    @classmethod
    def real(cls, x: np.ndarray, y: np.ndarray, classes: tuple[str, ...]) -> ImageSet:
        return cls(x, y.astype(np.int64), tuple(classes), np.zeros(len(y), dtype=bool))

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> ImageSet:
        return ImageSet(self.x[idx], self.y[idx], self.classes, self.synthetic[idx])

    def counts(self) -> dict[str, int]:
        counts = np.bincount(self.y, minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, counts)}


def save_images(path: str | Path, images: ImageSet) -> None:
    """Write ``images`` to ``path`` (``.npz``) atomically."""
    if images.x.dtype != np.uint8 or images.x.ndim != 4:
        raise ValueError(f"images must be [N, H, W, C] uint8, got {images.x.dtype} {images.x.shape}")
    buf = io.BytesIO()
    np.savez(buf, x=images.x, y=images.y, classes=np.array(images.classes), synthetic=images.synthetic)
    write_bytes(path, buf.getvalue())


def load_images(path: str | Path, every_class: bool = True) -> ImageSet:
    """An image set written by ``save_images``; a missing, truncated or foreign file is a one-line ``UserError``, and
    so is one without two classes or more each with images (``every_class``: the pipeline's sets; any set for
    ``dreaming-data fid``)."""
    path = Path(path)
    if path.is_file() and not zipfile.is_zipfile(path):  # a .npy, text, a pickle: np.load would not give an archive
        raise UserError(f"{path}: not an image set written by dreaming-data (not an .npz archive){_remake_hint(path)}")
    try:
        with np.load(path, allow_pickle=False) as z:
            x, y, classes = z["x"], z["y"], tuple(str(c) for c in np.atleast_1d(z["classes"]))
            synthetic = z["synthetic"] if "synthetic" in z.files else np.zeros(y.shape[:1], dtype=bool)
    except FileNotFoundError:
        raise missing(path) from None
    except (KeyError, ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not an image set written by dreaming-data ({first}){_remake_hint(path)}") from None
    if x.ndim == 4 and len(x) == 0:
        raise UserError(f"{path}: holds no images{_remake_hint(path)}")
    if x.dtype != np.uint8 or x.ndim != 4 or min(x.shape[1:]) < 1 or y.shape != (len(x),) or \
            synthetic.shape != (len(x),) or (len(y) and (y.min() < 0 or y.max() >= len(classes))):
        raise UserError(f"{path}: not an image set written by dreaming-data (x {x.dtype} {list(x.shape)}, "
                        f"y {list(y.shape)}, {len(classes)} classes){_remake_hint(path)}")
    if y.dtype.kind not in "iu":  # float labels would be truncated to another class
        raise UserError(f"{path}: labels are {y.dtype}, expected integers{_remake_hint(path)}")
    y = y.astype(np.int64)
    counts = np.bincount(y, minlength=len(classes))
    if every_class and (len(classes) < 2 or not counts.all()):  # every accuracy, merge and DDPM downstream would silently lose it
        absent = [c for c, n in zip(classes, counts) if n == 0]
        raise UserError(f"{path}: " + (f"no images of class {', '.join(absent[:5])}" if absent else
                                       f"one class ({classes[0]})") + " (expected two classes or more, each with "
                        f"images){_remake_hint(path)}")
    return ImageSet(x, y, classes, synthetic.astype(bool))


def per_class_sample(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` rows per label drawn without replacement (all rows of a label that has fewer)."""
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(y == c), size=min(n, int((y == c).sum())), replace=False) for c in np.unique(y)]
    return np.sort(np.concatenate(picked))


def check_same_kind(real: ImageSet, synthetic: ImageSet, what: str = "synthetic images",
                    rerun: str = "rerun generate") -> None:
    """Synthetic images (or ``what``) must have the real ones' class names and image shape."""
    if real.classes != synthetic.classes:
        raise UserError(f"{what} have other class names than the real ones: {list(synthetic.classes)} vs "
                        f"{list(real.classes)} ({rerun})")
    if real.x.shape[1:] != synthetic.x.shape[1:]:
        raise UserError(f"{what} are {list(synthetic.x.shape[1:])}, the real ones "
                        f"{list(real.x.shape[1:])} ({rerun})")
