"""The dependency rule, enforced on the source tree.

- ``liquid_drive`` (the base error) imports nothing of the project.
- ``perception`` imports neither ``driving`` nor ``sim``.
- ``sim`` imports neither ``driving`` nor ``perception`` nor torch; ``carla`` only in
  ``sim/carla``.
- ``driving`` imports ``sim``'s public face only (``sim``, ``sim.spec``, ``sim.wrappers``),
  never ``sim.builtin`` or ``sim.carla``.
- ``tools`` and ``benchmarks`` sit on top; nothing imports them, and a tool imports no other
  tool (only the shared ``tools._cli``).
- No module over 600 lines (tests aside), tools thin, and no import cycle between modules.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("liquid_drive", "sim", "perception", "driving", "tools", "benchmarks")

FORBIDDEN_ROOTS = {
    "liquid_drive": {"sim", "perception", "driving", "tools", "benchmarks", "torch"},
    "perception": {"driving", "sim", "tools", "benchmarks"},
    "sim": {"driving", "perception", "tools", "benchmarks", "torch", "torchvision"},
    "driving": {"tools", "benchmarks"},
}
SIM_PUBLIC_FACE = {"sim", "sim.spec", "sim.wrappers"}
MAX_MODULE_LINES = 600
MAX_TOOL_LINES = 90


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    files = [f for p in PACKAGES for f in sorted((ROOT / p).rglob("*.py"))]
    return {_module_name(f): f for f in files}


SOURCES = _sources()


def _imports(path: Path) -> set[str]:
    """Dotted names a file imports (``from a import b`` gives ``a.b`` when that is a module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                names.add(full if full in SOURCES else base)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN_ROOTS))
def test_package_imports_respect_the_layering(package):
    offenders = {}
    for name, path in SOURCES.items():
        if name.split(".")[0] != package:
            continue
        bad = sorted({n for n in _imports(path) if n.split(".")[0] in FORBIDDEN_ROOTS[package]})
        if bad:
            offenders[name] = bad
    assert not offenders, f"forbidden imports: {offenders}"


def test_driving_uses_only_the_public_face_of_sim():
    offenders = {}
    for name, path in SOURCES.items():
        if name.split(".")[0] != "driving":
            continue
        bad = sorted(
            n for n in _imports(path) if n.split(".")[0] == "sim" and n not in SIM_PUBLIC_FACE
        )
        if bad:
            offenders[name] = bad
    assert not offenders, f"driving reaches into sim internals: {offenders}"


def test_carla_is_imported_only_inside_sim_carla():
    for name, path in SOURCES.items():
        if name.startswith("sim.carla"):
            continue
        assert not any(n.split(".")[0] == "carla" for n in _imports(path)), f"{name} imports carla"


def test_nothing_imports_tools_or_benchmarks_and_tools_do_not_import_each_other():
    for name, path in SOURCES.items():
        for imported in _imports(path):
            top = imported.split(".")[0]
            if top == "benchmarks":
                assert name.startswith("benchmarks"), f"{name} imports {imported}"
            if top == "tools" and imported not in ("tools", "tools._cli"):
                raise AssertionError(f"{name} imports the tool {imported}")


def test_modules_are_small_and_tools_thin():
    long = {}
    for name, path in SOURCES.items():
        n = len(path.read_text().splitlines())
        limit = MAX_TOOL_LINES if name.startswith("tools.") else MAX_MODULE_LINES
        if n > limit:
            long[name] = n
    assert not long, f"modules over their line limit: {long}"


def test_no_import_cycles():
    graph = {name: {n for n in _imports(path) if n in SOURCES} for name, path in SOURCES.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"
