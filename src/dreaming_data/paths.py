"""Where each stage reads and writes, relative to the project root. ``dvc.yaml`` lists the same paths."""

import re
from pathlib import Path

PREPARED = Path("data/prepared")
GENERATED = Path("data/generated")
MODELS = Path("models")
METRICS = Path("metrics")
PLOTS = Path("plots")
REPORTS = Path("reports")
CHECKPOINTS = Path("checkpoints")  # git- and dvc-ignored: the resumable state of interrupted runs only


def prepared(split: str) -> Path:
    """The real ``val`` and ``test`` sets (never augmented)."""
    if split not in ("val", "test"):
        raise ValueError(f"split must be val or test, got {split!r}")
    return PREPARED / f"{split}.npz"


def train_set(variant: str) -> Path:
    """The training set of a classifier variant: ``baseline`` (real images only, what the DDPMs learn from too)
    or ``augmented`` (real plus synthetic)."""
    return Path("data/train") / f"{variant}.npz"


def ddpm_model(schedule: str) -> Path:
    return MODELS / "ddpm" / schedule / "model.pt"


def classifier_name(arch: str, variant: str, seed: int) -> str:
    return f"{arch}-{variant}-seed{seed}"


def classifier_model(name: str) -> Path:
    return MODELS / "classifier" / f"{name}.pt"


ABLATION = Path("data/ablation")  # one .npz of samples per schedule x sampler x steps cell
REFERENCE = Path("data/reference/inception.npz")  # Inception statistics of the real split every FID compares with


def resume_dir(stage: str) -> Path:
    """The folder where the run of ``stage`` (DVC's name, e.g. ``train_ddpm@linear``) keeps what it resumes from."""
    return CHECKPOINTS / stage.replace("@", "-")


_MADE_BY = [  # (pattern on the POSIX path, the DVC stage that writes it)
    (r"data/train/baseline\.npz|data/prepared/.*", "download"),
    (r"data/train/augmented\.npz", "merge"),
    (r"data/generated/.*", "generate"),
    (r"models/ddpm/(?P<s>[^/]+)/model\.pt", "train_ddpm@{s}"),
    (r"models/classifier/(?P<m>[^/]+)-baseline_matched-seed(?P<n>\d+)\.pt", "train_matched@{m}-{n}"),
    (r"(?:plots/classifier/(?P<m>[^/]+)-baseline_matched-seed(?P<n>\d+)\.csv|"
     r"metrics/train/(?P<m2>[^/]+)-baseline_matched-seed(?P<n2>\d+)\.json)", "train_matched@{m}-{n}"),
    (r"models/classifier/(?P<s>[^/]+)\.pt", "train_classifier@{s}"),
    (r"data/ablation/(?P<s>[^/]+)\.npz", "ablation_sample@{s}"),
    (r"data/reference/inception\.npz", "fid_reference"),
    (r"plots/classifier/(?P<s>[^/]+)\.csv|metrics/train/(?P<t>[^/]+)\.json", "train_classifier@{s}"),
    (r"metrics/eval/(?P<s>[^/]+)\.json", "evaluate@{s}"),
]


def made_by(path: str | Path) -> str | None:
    """The stage that writes ``path`` (None for a file no stage writes), for error messages."""
    posix = Path(path).as_posix()
    for pattern, stage in _MADE_BY:
        if m := re.search(f"(?:^|/)(?:{pattern})$", posix):
            g = m.groupdict()
            name = g.get("s") or g.get("t") or ""
            return stage.format(s=name.replace("-seed", "-"), m=g.get("m") or g.get("m2"), n=g.get("n") or g.get("n2"))
    return None
