"""Where each stage reads and writes, relative to the project root; and which stage of ``dvc.yaml`` writes a path
(for the hint in an error message: "run `dvc repro train_ddpm@linear`")."""

from __future__ import annotations

import functools
import re
from pathlib import Path

PREPARED = Path("data/prepared")
GENERATED = Path("data/generated")
MODELS = Path("models")
METRICS = Path("metrics")
PLOTS = Path("plots")
REPORTS = Path("reports")
CHECKPOINTS = Path("checkpoints")  # git- and dvc-ignored: the resumable state of interrupted runs only
ABLATION = Path("data/ablation")  # one .npz of samples per schedule x sampler x steps cell
REFERENCE = Path("data/reference/inception.npz")  # Inception statistics of the real split every FID compares with
DVC_YAML = Path("dvc.yaml")


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


def judge_model(p) -> Path:
    """The judge's real-data baseline (``classifier.judge`` at ``classifier.judge_seed``): what scores dreams for
    merge.filter and the ablation (``p``: the parsed params)."""
    return classifier_model(classifier_name(p.classifier.judge, "baseline", p.classifier.judge_seed))


def ablation_cell(schedule: str, sampler: str, steps: int) -> str:
    return f"{schedule}-{sampler}-{steps}"


LIVE = Path("dvclive")


def live_dir(stage: str) -> Path:
    """A stage instance's DVCLive files: ``dvclive/<stage>`` with DVC's ``@`` as ``-`` (``dvclive/train_ddpm-linear``).
    Here, not in live.py: every stage declares it, only the training and generation stages write it."""
    return LIVE / stage.replace("@", "-")


def resume_dir(stage: str) -> Path:
    """The folder where the run of ``stage`` (DVC's name, e.g. ``train_ddpm@linear``) keeps what it resumes from."""
    return CHECKPOINTS / stage.replace("@", "-")


# ---------------------------------------------------------------------------------------------------------
# Which stage writes a path: read from dvc.yaml's outs, so that it cannot drift from the pipeline


@functools.lru_cache(maxsize=4)
def _producers(dvc_yaml: Path) -> list[tuple[re.Pattern, str, list[str], dict, str]]:
    """(pattern of an output path, stage, its matrix keys, literal matrix values, its command) for every output in
    dvc.yaml; the most specific patterns (most literal characters) first."""
    import yaml

    try:
        stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return []
    found = []
    for name, spec in stages.items():
        if not isinstance(spec, dict):
            continue
        matrix = spec.get("matrix") or {}
        literal = {k: [str(v) for v in vals] for k, vals in matrix.items() if isinstance(vals, list)}
        for out in [*(spec.get("outs") or []), *(spec.get("metrics") or []), *(spec.get("plots") or [])]:
            path = out if isinstance(out, str) else next(iter(out), "")
            parts = re.split(r"(\$\{[^}]+\})", path)
            regex = "".join(f"(?P<{p[7:-1]}>[^/]+?)" if p.startswith("${item.") else "[^/]+?" if p.startswith("${")
                            else re.escape(p) for p in parts)
            weight = sum(len(p) for p in parts if not p.startswith("${"))
            found.append((weight, re.compile(f"(?:^|/){regex}(?:/.*)?$"), name, list(matrix), literal,
                          str(spec.get("cmd") or "")))
    return [f[1:] for f in sorted(found, key=lambda f: -f[0])]


def _producer(path: str | Path, dvc_yaml: Path) -> tuple[str, str | None] | None:
    """(stage, its command with the matrix values filled in, or None when the path does not fix them all)."""
    posix = Path(path).as_posix()
    for pattern, name, keys, literal, cmd in _producers(dvc_yaml):
        m = pattern.search(posix)
        if m is None or any(m.group(k) not in literal[k] for k in literal if k in m.groupdict()):
            continue
        values = {k: m.groupdict().get(k) for k in keys}
        if not keys:
            return name, cmd or None
        if None in values.values():
            return name, None
        filled = re.sub(r"\$\{item\.([^}]+)\}", lambda g: values.get(g.group(1)) or g.group(0), cmd)
        return f"{name}@{'-'.join(values.values())}", filled if "${" not in filled and filled else None
    return None


def made_by(path: str | Path, dvc_yaml: Path = DVC_YAML) -> str | None:
    """The stage of ``dvc_yaml`` that writes ``path`` (``train_ddpm@linear``), or None for a file no stage writes."""
    found = _producer(path, dvc_yaml)
    return found[0] if found else None


def remake(path: str | Path, dvc_yaml: Path = DVC_YAML) -> str | None:
    """How to remake ``path``: "stage train_ddpm@linear writes it: `dvc repro train_ddpm@linear` (without DVC:
    `python -m ...`)", or None for a file no stage writes."""
    found = _producer(path, dvc_yaml)
    if found is None:
        return None
    stage, cmd = found
    return f"stage {stage} writes it: `dvc repro {stage}`" + (f" (without DVC: `{cmd}`)" if cmd else "")
