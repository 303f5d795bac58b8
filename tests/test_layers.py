"""The package's layers, read from the import statements themselves (not from what happens to
be in ``sys.modules`` after an import): a module imports only from its own layer or the layers
below it, imports between mmkit modules sit at the top of the file, and no modules import each
other in a circle. The layers are the package map of ``mmkit/__init__.py``."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mmkit"

#: lowest first; a module's layer is the one of its longest listed prefix
LAYERS: tuple[tuple[str, ...], ...] = (
    ("mmkit._version", "mmkit.errors", "mmkit.validate", "mmkit._io", "mmkit._setup",
     "mmkit._argparse"),
    ("mmkit.data", "mmkit.metrics", "mmkit.index", "mmkit.losses", "mmkit.miners",
     "mmkit.checkpoints", "mmkit.training", "mmkit.viz"),
    ("mmkit.features", "mmkit.scoring", "mmkit.configs"),
    ("mmkit.encoders",),
    ("mmkit.methods",),
    ("mmkit.align", "mmkit.fusion", "mmkit.scale", "mmkit.challenges"),
    ("mmkit.exercises", "mmkit.demo", "mmkit.serve", "mmkit.cli", "mmkit.__main__"),
)


def layer_of(module: str) -> int:
    best, layer = "", -1
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > len(best):
                best, layer = name, i
    if layer < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and the package map")
    return layer


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(target: str, name: str | None) -> str:
    """``from target import name``: the module ``target.name`` when it is one, else ``target``."""
    if name is not None:
        full = f"{target}.{name}"
        rel = Path(*full.split("."))
        if (ROOT / rel).with_suffix(".py").exists() or (ROOT / rel / "__init__.py").exists():
            return full
    return target


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: Path) -> list[tuple[str, int, bool]]:
    """``(imported mmkit module, line, at module level)`` of every import statement in
    ``path``; imports under ``if TYPE_CHECKING:`` are skipped (they never run)."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking(child):
                continue
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                   ast.Lambda, ast.ClassDef))
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0 \
                    and child.module.split(".")[0] == "mmkit":
                for alias in child.names:
                    found.append((_resolve(child.module, alias.name), child.lineno, top))
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "mmkit":
                        found.append((alias.name, child.lineno, top))
            visit(child, inner)

    visit(tree, True)
    return found


def graph() -> dict[str, list[tuple[str, int, bool]]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


GRAPH = graph()


def test_every_module_has_a_layer():
    for module in GRAPH:
        if module != "mmkit":
            layer_of(module)


def test_no_module_imports_from_a_higher_layer():
    upward = [f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)}), line {line}"
              for m, edges in GRAPH.items() if m != "mmkit"
              for t, line, _ in edges if t != "mmkit" and layer_of(t) > layer_of(m)]
    assert upward == [], "\n".join(upward)


def test_imports_between_mmkit_modules_are_at_the_top():
    hidden = [f"{m}:{line} imports {t} inside a function"
              for m, edges in GRAPH.items() for t, line, top in edges if not top]
    assert hidden == [], "\n".join(hidden)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            strong(v)
    return out


def test_no_import_circles():
    edges = {m: {t for t, _, _ in e if t != m} for m, e in GRAPH.items() if m != "mmkit"}
    circles = _cycles(edges)
    assert circles == [], circles


def test_the_checker_sees_what_it_should(tmp_path):
    """The reader finds an import inside a function, an upward import and a circle."""
    f = tmp_path / "m.py"
    f.write_text("import numpy\nfrom mmkit.errors import InputError\n"
                 "def f():\n    from mmkit.methods import get_method\n"
                 "if TYPE_CHECKING:\n    from mmkit.cli import main\n")
    found = imports_of(f)
    assert ("mmkit.errors", 2, True) in found
    assert ("mmkit.methods", 4, False) in found
    assert all(t != "mmkit.cli" for t, _, _ in found)
    assert layer_of("mmkit.methods.base") > layer_of("mmkit.data.world")
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("mmkit.nowhere")


@pytest.mark.subprocess
def test_import_mmkit_is_light_and_discoverable():
    """``import mmkit`` imports no subpackage and no heavy library; ``mmkit.<name>`` imports
    the subpackage on first use; ``dir(mmkit)`` lists every subpackage."""
    code = ("import sys, mmkit;"
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers',"
            " 'faiss', 'ray', 'sklearn', 'matplotlib') or m.startswith('mmkit.')"
            " and m not in ('mmkit._setup', 'mmkit._version')];"
            "print(','.join(sorted(heavy)));"
            "print(all(n in dir(mmkit) for n in mmkit.SUBMODULES));"
            "print(mmkit.metrics.__name__, mmkit.index.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.splitlines()
    assert out == ["", "True", "mmkit.metrics mmkit.index"]
