"""The package's import graph: no cycles and no upward imports (module- and function-level)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "medpredict"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts).removesuffix(".__init__")] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                kept = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*kept, *([base] if base else [])])
            names = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        for target in names:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and modules[target].name != "__init__.py":
                targets.add(target)
    return targets


def test_no_import_cycles():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target):], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


# Lower layers never import higher ones. A module belongs to the layer of its longest
# matching prefix; docs/architecture.md draws the same stack.
LAYERS = (
    ("medpredict", "medpredict.versions", "medpredict.trusted_types", "medpredict.progress",
     "medpredict.optional", "medpredict.spec_io", "medpredict.data.errors",
     "medpredict.cluster"),
    ("medpredict.evaluation",),
    ("medpredict.data", "medpredict.spec", "medpredict.settings", "medpredict.timeline",
     "medpredict.forecasting", "medpredict.survival.spec", "medpredict.survival.outcome",
     "medpredict.survival.scoring", "medpredict.survival.baseline", "medpredict.survival.conformal",
     "medpredict.effects.spec"),
    ("medpredict.report",),
    ("medpredict.encoders", "medpredict.models", "medpredict.safe_skops", "medpredict.effects",
     "medpredict.model_metadata", "medpredict.artifact", "medpredict.timeline.sequence",
     "medpredict.survival.models", "medpredict.survival.deep"),
    ("medpredict.imaging", "medpredict.signals", "medpredict.wearables", "medpredict.trust",
     "medpredict.monitoring", "medpredict.predict", "medpredict.batch",
     "medpredict.timeline.report", "medpredict.timeline.scoring",
     "medpredict.forecasting.outputs", "medpredict.forecasting.report"),
    ("medpredict.study", "medpredict.survival", "medpredict.effects.runner",
     "medpredict.effects.outputs", "medpredict.effects.report"),
    ("medpredict.serve", "medpredict.cli", "medpredict.forecasting.cli"),
)


def _layer(module: str) -> int:
    matches = [
        (len(prefix), level)
        for level, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    assert matches, f"{module} is in no layer: add it to LAYERS"
    return max(matches)[1]


def test_no_upward_imports():
    modules = _modules()
    upward = [
        f"{name} -> {target}"
        for name, path in sorted(modules.items())
        for target in sorted(_imports(name, path, modules))
        if _layer(target) > _layer(name)
    ]
    assert not upward, "imports against the layering: " + "; ".join(upward)
