"""dvc.yaml's code dependencies, derived from the code: each stage depends on its file (``stages/<name>.py``) and the
package files it imports, transitively. ``dreaming-data deps`` writes them; ``dreaming-data deps --check`` (and a test) fails when dvc.yaml
differs.

Every ``import`` in a module counts, wherever it sits (a function's lazy import as much as a top-level one), and a
package's ``__init__.py`` counts for each module inside it: the closure cannot miss code that a stage may run. It
may over-count (a lazy import on a path the stage never takes), which only ever re-runs a stage for nothing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path, PurePosixPath

from dreaming_data.errors import UserError

PACKAGE = "dreaming_data"
SRC = Path("src")
STAGES = Path("stages")
COMMAND = re.compile(r"python (stages/\w+\.py)\b")


def module_file(name: str, root: Path = Path(".")) -> Path | None:
    """The file of package module ``name`` (``dreaming_data.x.y``) under ``root/src``, or None for a module outside
    the package."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    path = root.joinpath(SRC, *name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def imported(path: Path, root: Path = Path(".")) -> set[str]:
    """The package modules that the file ``path`` imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        named = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
        for name in named:  # the stage would die of it: a missing module is no dependency to leave out
            if (name == PACKAGE or name.startswith(PACKAGE + ".")) and module_file(name, root) is None:
                raise UserError(f"{path}: line {node.lineno} imports {name}, which is not a module of the package")
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # `from pkg import module`
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise UserError(f"{path}: relative import at line {node.lineno}; write it absolute (the deps follow "
                            f"absolute imports)")
    return {m for m in found if module_file(m, root) is not None}


def closure(target: str, root: Path = Path(".")) -> list[str]:
    """Every project file that running ``target`` may execute, as sorted POSIX paths relative to ``root``: a stage
    file (``stages/x.py``) first, then the package files it imports (``src/dreaming_data/...``), transitively; or,
    for a package module (``dreaming_data.x``), the module and what it imports."""
    if target.endswith(".py"):
        first = root / target
        if not first.is_file():
            raise UserError(f"{target}: no such stage file")
        todo, head = sorted(imported(first, root)), [PurePosixPath(target).as_posix()]
    else:
        todo, head = [target], []
    files: set[Path] = set()
    while todo:
        name = todo.pop()
        path = module_file(name, root)
        if path is None or path in files:
            continue
        files.add(path)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # a module's packages' __init__ run first
        todo += sorted(imported(path, root))
    return head + sorted(p.relative_to(root).as_posix() for p in files)


def derived(text: str, root: Path = Path("."), where: str = "dvc.yaml") -> str:
    """dvc.yaml's ``text`` with every stage's code deps (its ``stages/`` and ``src/`` lines) replaced by the closure
    of the file its ``cmd`` runs, first in its ``deps`` block list; every other line stays as it is."""
    import yaml

    stages = (yaml.safe_load(text) or {}).get("stages") or {}
    code = {}
    for name, spec in stages.items():
        m = COMMAND.search(str((spec or {}).get("cmd", "")))
        if m is None:
            raise UserError(f"{where}: stage {name}'s cmd does not run `python stages/<name>.py`")
        code[name] = closure(m.group(1), root)
    out, top, stage, in_deps, written = [], None, None, False, set()
    for line in text.splitlines(keepends=True):
        if in_deps and not re.match(r"^      [-#]", line):
            in_deps = False
        if in_deps and line.startswith((f"      - {SRC.as_posix()}/", f"      - {STAGES.as_posix()}/")):
            continue  # an old code dep: replaced by the closure
        out.append(line)
        if re.match(r"^[^\s#]", line):
            top, stage = line.split(":")[0], None
        elif top == "stages" and (m := re.match(r"^  ([A-Za-z_]\w*):", line)):
            stage = m.group(1)
        elif stage in code and re.match(r"^    deps:\s*$", line):
            out += [f"      - {f}\n" for f in code[stage]]
            in_deps = True
            written.add(stage)
    if missing := sorted(set(code) - written):
        raise UserError(f"{where}: stage {missing[0]} has no `deps:` block list to write its code deps into")
    return "".join(out)


def write(dvc_yaml: Path = Path("dvc.yaml"), check: bool = False) -> bool:
    """Write the derived code deps into ``dvc_yaml`` (unless ``check``). Returns True when it already had them."""
    from dreaming_data.io import write_text

    if not dvc_yaml.is_file():
        raise UserError(f"{dvc_yaml}: not found (run from the project root)")
    old = dvc_yaml.read_text(encoding="utf-8")
    new = derived(old, dvc_yaml.parent, str(dvc_yaml))
    if old != new and not check:
        write_text(dvc_yaml, new)
    return old == new
