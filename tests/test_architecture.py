"""The architecture of docs/architecture.md, checked from the package's own imports (read with
ast, so a lazy import inside a function counts; an import under ``if TYPE_CHECKING:`` names
types only and does not):

- each part (a package of ``src/onnxparity`` or a top-level module) sits at the layer the table
  in docs/architecture.md gives it and imports only parts of lower layers: data flows one way;
- no cycle among modules, over module- and function-level imports;
- what a part must not import (a framework, pytest, Hypothesis, ONNX Runtime) is checked over
  everything importing it runs — the transitive closure of module-level imports — and over its
  own lazy imports; Hypothesis is imported by the search's engine and strategies alone;
- no private name (``_x``) is imported from another module;
- no session below the runner: the stages get values and callables, never ``ParitySession``;
- every module belongs to a part; none is over 470 lines.
"""

from __future__ import annotations

import ast
import pathlib
import re
import subprocess
import sys
from collections import defaultdict

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "onnxparity"

FRAMEWORKS = {
    "torch",
    "tensorflow",
    "keras",
    "tf_keras",
    "sklearn",
    "skl2onnx",
    "tf2onnx",
    "onnxscript",
    "pandas",
    "transformers",
    "xgboost",
    "lightgbm",
    "catboost",
    "onnxmltools",
}
LIGHT = FRAMEWORKS | {"onnx", "onnxruntime", "pytest", "hypothesis"}

#: part -> external packages it must not import (its own lazy imports and everything its
#: module-level imports run)
BANNED: dict[str, set[str]] = {
    "errors": LIGHT,
    "environment": FRAMEWORKS | {"onnx", "pytest", "hypothesis"},
    "parsers": LIGHT,
    "persist": LIGHT,
    "spec": LIGHT,
    "config": LIGHT,
    "graph": FRAMEWORKS | {"onnxruntime", "pytest", "hypothesis"},
    "draw": LIGHT,
    "verdict": LIGHT,
    "results": LIGHT,
    "planning": LIGHT,
    "exporters": {"onnxruntime", "pytest", "hypothesis"},
    "variants": FRAMEWORKS | {"pytest", "hypothesis"},
    "budgets": FRAMEWORKS | {"pytest", "hypothesis"},
    "report": FRAMEWORKS | {"onnxruntime", "pytest", "hypothesis"},
    "forensics": FRAMEWORKS | {"pytest", "hypothesis"},
    "search": FRAMEWORKS | {"pytest"},
    "diagnosis": FRAMEWORKS | {"pytest", "hypothesis"},
    "runner": FRAMEWORKS | {"pytest"},
    "onnxparity": FRAMEWORKS | {"pytest"},
    "plugin": FRAMEWORKS,
    "cli": FRAMEWORKS | {"pytest", "hypothesis"},
}

#: each exporter imports its own framework, and no other's.
OWN_FRAMEWORK = {
    "onnxparity.exporters.torch": {"torch", "onnxscript"},
    "onnxparity.exporters.torch_call": {"torch", "onnxscript"},
    "onnxparity.exporters.torch_values": {"torch"},
    "onnxparity.exporters.tensorflow": {"tensorflow", "keras", "tf_keras", "tf2onnx"},
    "onnxparity.exporters.keras_values": {"tensorflow", "keras", "tf_keras", "tf2onnx"},
    "onnxparity.exporters.sklearn": {"sklearn", "skl2onnx", "pandas"},
    "onnxparity.exporters.sklearn_convert": {"sklearn", "skl2onnx", "pandas"},
    "onnxparity.exporters.sklearn_values": {"sklearn", "skl2onnx", "pandas"},
    "onnxparity.exporters.tabular": {"sklearn"},
    "onnxparity.exporters.transformers": {"torch", "transformers"},
    "onnxparity.exporters.gbdt": {"xgboost", "lightgbm", "catboost", "onnxmltools", "pandas", "sklearn"},
}

#: the modules that import Hypothesis: the search's engine and the strategies it draws with
#: (those only when a strategy is made); and the most modules whose import runs it
HYPOTHESIS_IMPORTERS = ["onnxparity.search.engine", "onnxparity.search.strategies"]
HYPOTHESIS_AT_IMPORT = 3

#: parts that may hold a session: the runner owns it, the plugin and the facade make it
SESSION_OWNERS = {"runner", "plugin", "onnxparity", "cli"}  # the entry points, and the runner


class Module:
    """One module's imports: onnxparity modules (module-level, lazy) and external packages."""

    def __init__(self, name: str, path: pathlib.Path) -> None:
        self.name, self.path = name, path
        self.eager: set[str] = set()  # onnxparity modules imported at module level
        self.lazy: set[str] = set()  # ... inside a function
        self.external_eager: set[str] = set()
        self.external_lazy: set[str] = set()
        self.private: list[str] = []
        self.tree = ast.parse(path.read_text())

    @property
    def part(self) -> str:
        parts = self.name.split(".")
        return parts[1] if len(parts) > 1 else "onnxparity"


def _modules() -> dict[str, Module]:
    found = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        found[name] = Module(name, path)
    for module in found.values():
        _read_imports(module, found)
    return found


def _read_imports(module: Module, modules: dict[str, Module]) -> None:
    tree = module.tree
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    top = {id(node) for node in tree.body}
    package = module.name if module.path.name == "__init__.py" else module.name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in typing_only or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        eager = id(node) in top
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)] + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in modules else base)
                if alias.name.startswith("_") and not alias.name.startswith("__") and base in modules:
                    module.private.append(f"{base}.{alias.name}")
        for target in targets:
            if target.split(".")[0] == "onnxparity":
                while target not in modules and "." in target:
                    target = target.rpartition(".")[0]
                if target != module.name:
                    (module.eager if eager else module.lazy).add(target)
            else:
                (module.external_eager if eager else module.external_lazy).add(target.split(".")[0])


MODULES = _modules()


def _layer_rows() -> list[tuple[str, int]]:
    """(part, layer) of each part the table of docs/architecture.md names (rows
    ``| 3 | `exporters/` | ...``)."""
    rows = []
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        match = re.match(r"\|\s*(\d+)\s*\|([^|]*)\|", line)
        if match:
            rows += [(part, int(match.group(1))) for part in re.findall(r"`([a-z_]+)/?`", match.group(2))]
    return rows


def _layers() -> dict[str, int]:
    return dict(_layer_rows())


def _closure(name: str) -> set[str]:
    """The modules importing ``name`` runs (module-level imports, transitively), itself included."""
    seen, stack = set(), [name]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack.extend(MODULES[current].eager)
    return seen


def test_every_part_has_a_layer_and_imports_only_lower_layers():
    layers = _layers()
    parts = {m.part for m in MODULES.values()}
    assert not parts - set(layers), f"give these parts a layer in docs/architecture.md: {sorted(parts - set(layers))}"
    upward = sorted(
        f"{m.name} (layer {layers[m.part]}) imports {t} (layer {layers[MODULES[t].part]})"
        for m in MODULES.values()
        for t in m.eager | m.lazy
        if MODULES[t].part != m.part and layers[MODULES[t].part] >= layers[m.part]
    )
    assert not upward, "imports must point to lower layers:\n" + "\n".join(upward)


def test_no_cycle_among_modules():
    """Tarjan's strongly connected components over module- and function-level imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        for target in sorted(MODULES[name].eager | MODULES[name].lazy):
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in on_stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == name:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for name in sorted(MODULES):
            if name not in index:
                visit(name)
    finally:  # other tests rely on the default depth (a JSON report nested past it is refused)
        sys.setrecursionlimit(limit)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("part", sorted(BANNED))
def test_what_a_part_must_not_import_over_everything_its_import_runs(part):
    broken = []
    for module in (m for m in MODULES.values() if m.part == part):
        reached = set().union(*(MODULES[n].external_eager for n in _closure(module.name)))
        found = (reached | module.external_lazy) & BANNED[part]
        found -= OWN_FRAMEWORK.get(module.name, set())
        if found:
            broken.append(f"{module.name} imports {sorted(found)}")
    assert not broken, "; ".join(broken)


def test_hypothesis_is_imported_by_the_search_alone():
    direct = sorted(m.name for m in MODULES.values() if "hypothesis" in m.external_eager | m.external_lazy)
    assert direct == HYPOTHESIS_IMPORTERS
    at_import = sorted(
        m for m in MODULES if any("hypothesis" in MODULES[n].external_eager for n in _closure(m))
    )
    assert len(at_import) <= HYPOTHESIS_AT_IMPORT, at_import


def test_no_private_name_is_imported_from_another_module():
    found = sorted(f"{m.name} imports {name}" for m in MODULES.values() for name in m.private)
    assert not found, "make these public or keep them where they are used: " + "; ".join(found)


def test_no_session_below_the_runner():
    """The stages get values and callables: a parameter named ``session`` or a
    ``ParitySession`` anywhere outside the runner and the entry points (the plugin, the facade,
    the command line) is the runner handing itself down."""
    found = []
    for module in MODULES.values():
        if module.part in SESSION_OWNERS:
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.arg) and (
                node.arg == "session" or "ParitySession" in ast.unparse(node.annotation or ast.Constant(""))
            ):
                found.append(f"{module.name}:{node.lineno} parameter {node.arg}")
            elif isinstance(node, ast.Name) and node.id == "ParitySession":
                found.append(f"{module.name}:{node.lineno} names ParitySession")
    assert not found, "; ".join(found)


def test_no_module_is_over_470_lines():
    long = {m.name: n for m in MODULES.values() if (n := len(m.path.read_text().splitlines())) > 470}
    assert not long, f"split these modules (about 450 lines at most): {long}"


def test_the_facade_and_the_plugin_import_no_framework():
    code = (
        "import sys, onnxparity, onnxparity.plugin, onnxparity.exporters; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{sorted(FRAMEWORKS | {'onnxruntime', 'hypothesis'})!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_layers_table_names_every_part_once():
    rows = defaultdict(list)
    for part, layer in _layer_rows():
        rows[part].append(layer)
    assert {p: n for p, n in rows.items() if len(n) > 1} == {}
    assert set(rows) == {m.part for m in MODULES.values()}
