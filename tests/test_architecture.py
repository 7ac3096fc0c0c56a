"""Architecture rules, checked on the source: no import cycles (imports inside functions count), no
target imports another target, one import style across the targets, every module says what it does."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"dmlc": ROOT / "dmlc", "dmlc_targets": ROOT / "targets"}


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


MODULES = _modules()


def _type_checking_lines(tree: ast.AST) -> set[int]:
    """Lines under `if TYPE_CHECKING:` (never executed, so never part of a cycle)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _resolve(name: str) -> str | None:
    """The longest known module `name` starts with."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """Every project module `module` imports, at the top or inside a function (parents included)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", 0) in skip:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        for name in names:
            target = _resolve(name)
            while target:
                if target != module and not module.startswith(target + "."):
                    found.add(target)
                target = target.rpartition(".")[0] if "." in target else ""
                target = target if target in MODULES else ""
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def _cycle() -> list[str] | None:
    from graphlib import CycleError, TopologicalSorter

    try:
        TopologicalSorter(GRAPH).prepare()
    except CycleError as exc:
        return list(exc.args[1])
    return None


def test_no_import_cycles() -> None:
    assert _cycle() is None, "import cycle: " + " -> ".join(_cycle() or [])


def _target_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "dmlc_targets" and len(parts) > 1 else None


def test_no_target_imports_another_target() -> None:
    bad = [
        f"{m} imports {i}"
        for m, imported in GRAPH.items()
        for i in imported
        if _target_of(m) and _target_of(i) and _target_of(i) != _target_of(m)
    ]
    assert not bad


def test_the_core_never_imports_a_target() -> None:
    bad = [f"{m} imports {i}" for m, imported in GRAPH.items() if m.startswith("dmlc.") for i in imported]
    assert not [b for b in bad if " imports dmlc_targets" in b]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("dmlc_targets.")))
def test_targets_use_absolute_imports(module: str) -> None:
    tree = ast.parse(MODULES[module].read_text())
    relative = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]
    assert not relative, f"{module}: use `from dmlc_targets.x import y`, not {relative}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_has_a_docstring(module: str) -> None:
    tree = ast.parse(MODULES[module].read_text())
    assert ast.get_docstring(tree), f"{module} has no docstring saying what it takes and gives"


def test_the_checker_sees_a_cycle_and_a_function_level_import(tmp_path: Path) -> None:
    """The walker itself: an import inside a function is an edge."""
    tree = ast.parse("def f():\n    from dmlc.ir import model\n")
    names = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert names == ["dmlc.ir"]
    assert "dmlc.ir.model" in imports_of("dmlc.ir.graph")


def _third_party(module: str) -> set[str]:
    """Top-level names of the packages `module` imports that are neither ours nor the standard library."""
    import sys

    tree = ast.parse(MODULES[module].read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and not n.level}
    tops = {name.split(".")[0] for name in names}
    return {t for t in tops if t not in sys.stdlib_module_names and t not in PACKAGES and t != "tests"}


def test_every_imported_package_is_declared() -> None:
    """A package dmlc imports arrives because pyproject names it, not because another package pins it
    (`kubernetes`, imported by the KFP launcher, came only through kfp)."""
    import re
    import tomllib
    from importlib.metadata import packages_distributions

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *(d for ds in project["optional-dependencies"].values() for d in ds)]
    names = {re.split(r"[<>=;\[ ]", d, maxsplit=1)[0].lower().replace("_", "-") for d in declared}
    dists = packages_distributions()
    missing = {}
    for module in MODULES:
        for top in _third_party(module):
            owners = {d.lower().replace("_", "-") for d in dists.get(top, [top])}
            if not owners & (names | {"tensorflow", "tensorflow-cpu"}):
                missing[top] = module
    assert missing == {}
