"""Committed profiles and ``-S key=value`` overrides: what `dreaming-data quickstart`, the curve's grid and the
benchmarks apply on top of ``params.yaml`` (and pass to ``dvc exp run -S``)."""

from __future__ import annotations

import copy
import json

from dreaming_data.errors import UserError

PROFILES = ("quickstart", "cpu-study", "cifar-cpu", "gpu-smoke", "gpu-study")


def load_profile(name: str) -> dict:
    """The committed ``-S key=value`` overrides of a profile (src/dreaming_data/profiles/<name>.yaml)."""
    from importlib.resources import files

    import yaml

    if name not in PROFILES:
        raise UserError(f"--profile: unknown profile {name!r} (expected one of {', '.join(PROFILES)})")
    return yaml.safe_load(files("dreaming_data").joinpath("profiles", f"{name}.yaml").read_text())


def apply_overrides(raw: dict, overrides: dict) -> dict:
    """A copy of the params mapping ``raw`` with dotted ``overrides`` set; an unknown key is a ``UserError``."""
    out = copy.deepcopy(raw)
    for key, value in overrides.items():
        if not isinstance(key, str):
            raise UserError(f"override {key!r}: not a params key (expected a dotted name like ddpm.lr)")
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            raise UserError(f"override {key}: no such key in params.yaml")
        node[leaf] = value
    return out


def parse_value(text: str, item: str):
    """An override's value parsed as YAML 1.2, as ``dvc exp run -S`` parses it (``010`` is 10, ``no`` a string)."""
    from dreaming_data.config import parse_yaml

    return parse_yaml(text, f"--set {item}")


def profile_overrides(profile: str | None, sets: list[str], data_path: str | None = None) -> dict:
    """A profile's overrides (none for ``None``), then ``data.path``, then ``KEY=VALUE`` items (values parsed as YAML,
    as ``dvc exp run -S`` parses them)."""
    overrides = load_profile(profile) if profile else {}
    if data_path is not None:
        overrides["data.path"] = data_path
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set {item}: expected KEY=VALUE")
        overrides[key] = parse_value(value, item)
    return overrides


def dvc_set_args(overrides: dict) -> list[str]:
    """``-S key=value`` arguments for ``dvc exp run``; values in YAML flow form (DVC parses them as YAML)."""
    args = []
    for key, value in overrides.items():
        args += ["-S", f"{key}={json.dumps(value)}"]
    return args
