"""The GPU machine's software, imitated on this one: every project dependency that its image lacks made unimportable
from site-packages (a ``sitecustomize`` on PYTHONPATH), so that a rehearsal of the GPU job fails here as it would
there. Packages the job carries (``.gpu/site``) stay importable from there."""

from __future__ import annotations

import re
import site
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image_packages() -> set[str]:
    lines = (ROOT / "benchmarks" / "gpu-image-packages.txt").read_text().splitlines()
    return {normalized(line) for line in lines if line.strip() and not line.startswith("#")}


def project_dependencies() -> set[str]:
    """The project's own requirements and its dev extras, by distribution name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for extra in project.get("optional-dependencies", {}).values() for r in extra]
    return {normalized(re.match(r"[A-Za-z0-9_.\-]+", r).group(0)) for r in reqs}


def missing_on_image() -> dict[str, list[str]]:
    """Import name -> distributions, for the top-level modules of every project dependency the image lacks."""
    missing = project_dependencies() - image_packages()
    names: dict[str, list[str]] = {}
    for module, dists in packages_distributions().items():
        if any(normalized(d) in missing for d in dists):
            names[module] = sorted(dists)
    return names


SITECUSTOMIZE = '''
import importlib.machinery, os, sys

BLOCKED = {blocked!r}
SITE = {site!r}


class NotOnTheGPUImage:
    """Refuse a blocked module found in site-packages; a copy elsewhere on sys.path (the job's .gpu/site) is fine."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] not in BLOCKED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        where = [spec.origin] if spec is not None and spec.origin else list(getattr(spec, "submodule_search_locations", None) or [])
        if spec is not None and where and all(any(str(w).startswith(s) for s in SITE) for w in where):
            raise ModuleNotFoundError(f"No module named {{name!r}} (not on the GPU machine's image)", name=name)
        return None


sys.meta_path.insert(0, NotOnTheGPUImage())
'''


def blocker(folder: Path) -> Path:
    """Write the ``sitecustomize.py`` into ``folder`` (to put first on PYTHONPATH) and return ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    dirs = [d for d in site.getsitepackages() + [site.getusersitepackages()] if d]
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE.format(blocked=sorted(missing_on_image()), site=dirs))
    return folder
