"""The package's structure: no import cycles, the layers import downwards only, no oversized class."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "sclc_lightning"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node) for n in ast.walk(node)
    }
    found: set[str] = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            # `from a.b import c`: c is a submodule, or a name taken from a.b's namespace.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for name in names:
            # Importing a submodule initialises its parent packages first; that is not an edge.
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(p, modules) - {_module_name(p)} for p in paths}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_is_read() -> None:
    graph = _graph()
    assert "sclc_lightning.loop.config" in graph["sclc_lightning.loop.callback"]
    assert "sclc_lightning.lightning_cli" in graph["sclc_lightning.grid.execution"]  # a function-level import
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycles() -> None:
    assert _cycle(_graph()) is None


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


_CALLERS = ("sclc_lightning.loop", "sclc_lightning.cli", "sclc_lightning.grid", "sclc_lightning.callbacks")
#: The paths that moved before the first release; removed, so that nothing forwards to them.
REMOVED = (
    "sclc_lightning.data",
    "sclc_lightning.generation_csv",
    "sclc_lightning.visuals",
    "sclc_lightning.metrics._evaluator",
    "sclc_lightning.loop.seeding",
)


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("sclc_lightning.seeding", ("sclc_lightning",)),
        (
            "sclc_lightning.items",
            (
                *_CALLERS,
                "sclc_lightning.correctors",
                "sclc_lightning.metrics",
                "sclc_lightning.store",
                "sclc_lightning.mixing",
                "sclc_lightning.datasets",
            ),
        ),
        (
            "sclc_lightning.store",
            (
                *_CALLERS,
                "sclc_lightning.correctors",
                "sclc_lightning.metrics",
                "sclc_lightning.mixing",
                "sclc_lightning.datasets",
            ),
        ),
        (
            "sclc_lightning.mixing",
            (
                *_CALLERS,
                "sclc_lightning.correctors",
                "sclc_lightning.metrics",
                "sclc_lightning.store",
                "sclc_lightning.datasets",
            ),
        ),
        (
            "sclc_lightning.datasets",
            (
                *_CALLERS,
                "sclc_lightning.correctors",
                "sclc_lightning.metrics",
                "sclc_lightning.store",
                "sclc_lightning.mixing",
            ),
        ),
        ("sclc_lightning.correctors", (*_CALLERS, "sclc_lightning.metrics")),
        ("sclc_lightning.metrics", (*_CALLERS, "sclc_lightning.models")),
        ("sclc_lightning.callbacks", ("sclc_lightning.loop", "sclc_lightning.cli", "sclc_lightning.grid")),
        ("sclc_lightning.grid", ("sclc_lightning.cli",)),
        # the run directory's checkpoints are read from the store, not from the grid a layer above
        ("sclc_lightning.lightning_cli", ("sclc_lightning.grid",)),
        # the fingerprint reads the config, never the other way round (no circle)
        ("sclc_lightning.loop.config", ("sclc_lightning.loop.fingerprint",)),
    ],
)
def test_layers_import_downwards(layer: str, forbidden: tuple[str, ...]) -> None:
    assert any(_within(m, (layer,)) for m in _graph()), f"no module {layer}"
    for module, imported in _graph().items():
        if _within(module, (layer,)):
            bad = sorted(m for m in imported if _within(m, forbidden))
            assert not bad, f"{module} imports {bad}"


def test_no_removed_path_is_back() -> None:
    assert not [m for m in _graph() if _within(m, REMOVED)]
    for module, imported in _graph().items():
        bad = sorted(m for m in imported if _within(m, REMOVED))
        assert not bad, f"{module} imports the removed {bad}"


def test_no_class_above_300_lines_no_function_above_60() -> None:
    classes, functions = {}, {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                classes[f"{_module_name(path)}.{node.name}"] = (node.end_lineno or 0) - node.lineno + 1
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions[f"{_module_name(path)}:{node.lineno} {node.name}"] = (node.end_lineno or 0) - node.lineno + 1
    assert classes["sclc_lightning.loop.callback.SelfConsumingLoop"] > 100  # the count reads the classes
    assert max(classes.values()) <= 300, sorted(classes.items(), key=lambda kv: -kv[1])[:3]
    assert max(functions.values()) <= 60, sorted(functions.items(), key=lambda kv: -kv[1])[:3]


def test_no_function_above_complexity_10() -> None:
    """McCabe complexity, as ruff's C901 counts it (pyproject: max-complexity = 10)."""
    import shutil
    import subprocess

    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    found = subprocess.run(
        [ruff, "check", "--select", "C901", "--output-format", "concise", "--no-cache", str(PACKAGE)],
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0, found.stdout[-3000:] + found.stderr[-1000:]


def test_the_package_and_the_light_commands_import_without_lightning() -> None:
    """`import sclc_lightning` and the `sclc grid`/`report` entry points load nothing heavy: the
    grid's own process used to import Lightning, torch and scikit-learn (about 7 s) before its
    worker imported them again, which made a one-point grid 1.15-1.5 times the same `sclc fit`."""
    import subprocess
    import sys

    code = (
        "import sys, sclc_lightning, sclc_lightning.cli, sclc_lightning.grid\n"
        "heavy = sorted(m for m in ('torch', 'lightning', 'sklearn', 'matplotlib') if m in sys.modules)\n"
        "print(','.join(heavy), 'SelfConsumingLoop' in dir(sclc_lightning))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == [" True"]  # nothing heavy imported; the names are there, imported when first used


def test_no_control_characters_in_the_sources() -> None:
    """A docstring written through an escaping layer once held ``\\v``, ``\\a`` and ``\\t`` bytes
    where ``\\varepsilon``, ``\\alpha`` and ``\\to`` were meant; the API site showed them."""
    import re

    control = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
    roots = [PACKAGE, PACKAGE.parent / "docs", PACKAGE.parent / "tests", PACKAGE.parent / "recipes"]
    found = [
        f"{path}:{number}"
        for root in roots
        for path in sorted(root.rglob("*"))
        if path.suffix in (".py", ".md", ".yaml") and path.is_file()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if control.search(line)
    ]
    assert not found, found


def test_the_map_lists_every_module() -> None:
    """``docs/architecture.md``'s module map names every module file of the package, under its
    folder (a folder named alone does not count)."""
    import re

    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    block = text.split("## Module map", 1)[1].split("```", 2)[1]
    section, listed = "", set()
    for line in block.splitlines():
        folder = re.match(r"^  (\w+)/(\s|$)", line)
        if folder:
            section = folder.group(1) + "/"
        elif re.match(r"^  \S", line):
            section = ""
        listed.update(section + name for name in re.findall(r"(\w+\.py)\b", line))
    modules = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    assert not sorted(modules - listed), f"missing from docs/architecture.md: {sorted(modules - listed)}"
    assert not sorted(listed - modules - {"__init__.py"}), f"no such module: {sorted(listed - modules)}"


def test_callbacks_is_the_one_public_home_of_every_callback() -> None:
    """Every Callback the package defines is exported by sclc_lightning.callbacks; metrics/ exports
    the functions and feature spaces, no callback (one import path per callback)."""
    import importlib
    import inspect
    import pkgutil

    from lightning.pytorch import Callback

    import sclc_lightning
    import sclc_lightning.callbacks as callbacks
    import sclc_lightning.metrics as metrics

    defined = set()
    for module in pkgutil.walk_packages(sclc_lightning.__path__, "sclc_lightning."):
        if module.name.startswith(("sclc_lightning.models", "sclc_lightning.datasets", "sclc_lightning.report")):
            continue
        namespace = importlib.import_module(module.name)
        for name, value in vars(namespace).items():
            if inspect.isclass(value) and issubclass(value, Callback) and value.__module__ == module.name:
                if not name.startswith("_") and not inspect.isabstract(value):
                    defined.add(name)
    assert {"PointMetrics", "ImageMetrics", "GenerationCSV", "SelfConsumingLoop"} <= defined
    internal = {"StopPoint", "GenerationalLoop"}  # the loop's own helpers, added by the loop itself
    assert defined - internal <= set(callbacks.__all__), sorted(defined - internal - set(callbacks.__all__))
    exported = [getattr(metrics, name) for name in metrics.__all__]
    assert not [v for v in exported if inspect.isclass(v) and issubclass(v, Callback)]
