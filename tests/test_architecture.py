"""The module boundaries of docs/architecture.md, checked: what each part must not import.

Imports anywhere in a file count (module level and inside functions), so a lazy import of a
framework outside its exporter is caught too; imports under ``if TYPE_CHECKING:`` name types
only and do not count."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "onnxparity"

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

#: module (path relative to src/onnxparity, a folder meaning every file in it) -> what it must
#: not import: top-level packages, or onnxparity modules written as ".name".
RULES: dict[str, set[str]] = {
    "spec": FRAMEWORKS
    | {"onnx", "onnxruntime", "pytest", "hypothesis", ".exporters", ".variants", ".runner"},
    "planning.py": FRAMEWORKS | {"onnx", "onnxruntime", "pytest", "hypothesis", ".exporters", ".variants"},
    "boundaries.py": FRAMEWORKS
    | {"onnxruntime", "pytest", "hypothesis", ".exporters", ".variants", ".runner"},
    "forensics": FRAMEWORKS | {"pytest", "hypothesis", ".runner", ".plugin", ".search"},
    "coverage.py": FRAMEWORKS | {"pytest", "hypothesis", ".exporters", ".variants", ".runner"},
    "fills.py": FRAMEWORKS
    | {"onnx", "onnxruntime", "pytest", "hypothesis", ".exporters", ".variants", ".runner"},
    "strategies.py": FRAMEWORKS | {"onnxruntime", "pytest", ".exporters", ".variants", ".runner"},
    "onnxutils.py": FRAMEWORKS
    | {"onnxruntime", "pytest", "hypothesis", ".exporters", ".variants", ".runner"},
    "exporters": {
        "onnxruntime",
        "pytest",
        ".variants",
        ".runner",
        ".search",
        ".report",
        ".plugin",
        ".budgets",
    },
    "variants": FRAMEWORKS | {"pytest", ".exporters", ".runner", ".search", ".plugin"},
    "compare.py": FRAMEWORKS | {"onnx", "onnxruntime", "pytest", ".exporters", ".variants", ".runner"},
    "agreement.py": FRAMEWORKS
    | {"onnx", "onnxruntime", "pytest", "hypothesis", ".exporters", ".variants", ".runner", ".compare"},
    "explanation.py": FRAMEWORKS
    | {"onnx", "onnxruntime", "pytest", "hypothesis", ".exporters", ".variants", ".runner"},
    "cache.py": FRAMEWORKS | {"onnxruntime", "pytest", ".exporters", ".variants", ".runner"},
    "tally.py": FRAMEWORKS | {"onnxruntime", "pytest", "hypothesis", ".exporters", ".variants", ".runner"},
    "parsers.py": FRAMEWORKS
    | {"onnx", "onnxruntime", "pytest", "hypothesis", ".exporters", ".variants", ".runner", ".report"},
    "stored_results.py": FRAMEWORKS | {"pytest", "hypothesis", ".variants", ".runner", ".plugin", ".search"},
    "persist.py": FRAMEWORKS
    | {"onnx", "onnxruntime", "pytest", "hypothesis", ".exporters", ".variants", ".runner", ".report"},
    "domains": FRAMEWORKS
    | {"onnxruntime", "pytest", "hypothesis", ".exporters", ".variants", ".runner", ".report", ".plugin"},
    "distribution.py": FRAMEWORKS
    | {"onnx", "onnxruntime", "pytest", "hypothesis", ".exporters", ".variants", ".runner"},
    "resources.py": FRAMEWORKS
    | {"onnx", "onnxruntime", "pytest", "hypothesis", ".exporters", ".variants", ".runner"},
    "power.py": FRAMEWORKS
    | {"onnx", "onnxruntime", "pytest", "hypothesis", ".exporters", ".variants", ".runner"},
    "search.py": FRAMEWORKS | {"onnxruntime", "pytest", ".exporters", ".plugin"},
    "anchor.py": FRAMEWORKS | {"onnxruntime", "pytest", ".exporters", ".plugin"},
    "diagnosis.py": FRAMEWORKS | {"onnxruntime", "pytest", ".exporters", ".plugin"},
    "reproducer.py": FRAMEWORKS | {"onnxruntime", "pytest", ".exporters", ".plugin"},
    "budgets.py": FRAMEWORKS | {"pytest", ".exporters", ".runner", ".plugin"},
    "runner.py": FRAMEWORKS | {"pytest", ".plugin"},
    "report": FRAMEWORKS | {"pytest", "hypothesis", ".exporters", ".variants", ".runner", ".plugin"},
    "cli.py": FRAMEWORKS | {"pytest", ".exporters", ".variants", ".runner", ".plugin"},
    "config.py": FRAMEWORKS
    | {"onnx", "onnxruntime", "pytest", "hypothesis", ".exporters", ".variants", ".runner"},
    "plugin.py": FRAMEWORKS | {"onnx", "onnxruntime"},
}

#: each exporter imports its own framework, and no other's.
OWN_FRAMEWORK = {
    "exporters/torch.py": {"torch", "onnxscript"},
    "exporters/tensorflow.py": {"tensorflow", "keras", "tf_keras", "tf2onnx"},
    "exporters/sklearn.py": {"sklearn", "skl2onnx", "pandas"},
    "exporters/tabular.py": {"sklearn"},
    "exporters/transformers.py": {"torch", "transformers"},
    "exporters/gbdt.py": {"xgboost", "lightgbm", "catboost", "onnxmltools", "pandas", "sklearn"},
}


def imports_of(path: pathlib.Path) -> set[str]:
    """Top-level packages and onnxparity modules (".name") a file imports, anywhere in it."""
    package = path.relative_to(SRC).parent.parts
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
        for inner in ast.walk(node)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:  # type names only: no dependency when the code runs
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.add((node.module or "").split(".")[0])
                if (node.module or "").startswith("onnxparity."):
                    found.add("." + node.module.split(".")[1])
                continue
            base = list(package[: len(package) - (node.level - 1)])
            target = [*base, *(node.module.split(".") if node.module else [])]
            names = [target] if node.module else [[*base, alias.name] for alias in node.names]
            for parts in names:
                if parts:
                    found.add("." + parts[0])
    return found


def files(rule: str) -> list[pathlib.Path]:
    target = SRC / rule
    return sorted(target.rglob("*.py")) if target.is_dir() else [target]


@pytest.mark.parametrize("rule", sorted(RULES))
def test_module_imports_respect_the_architecture(rule):
    broken = []
    for path in files(rule):
        own = OWN_FRAMEWORK.get(str(path.relative_to(SRC)), set())
        own_package = "." + path.relative_to(SRC).parts[0]
        bad = (imports_of(path) & RULES[rule]) - own - {own_package}
        if bad:
            broken.append(f"{path.relative_to(SRC)} imports {sorted(bad)}")
    assert not broken, "; ".join(broken)


def test_every_module_has_a_rule_and_none_is_over_450_lines():
    covered = {p for rule in RULES for p in files(rule)}
    allowed = {SRC / "__init__.py", SRC / "errors.py", SRC / "_machine.py"}
    unruled = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if p not in covered | allowed]
    assert not unruled, f"add these to RULES and docs/architecture.md: {unruled}"
    long = {
        str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 470
    }
    assert not long, f"split these modules (about 450 lines at most): {long}"


def test_importing_onnxparity_and_the_plugin_imports_no_framework():
    code = (
        "import sys, onnxparity, onnxparity.plugin, onnxparity.exporters; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{sorted(FRAMEWORKS | {'onnxruntime'})!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
