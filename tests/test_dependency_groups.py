"""The core install stays light: optional packages are imported only where their extra applies.

``pyproject.toml`` lists the core dependencies and one extra per kind of data or
service. These tests read it and check, on this installation (which has every extra),
that the core modules import none of the extras' packages, that each module importing
an extra's package at import time belongs to that extra, that every third-party import
is declared, and that ``requirements.lock`` pins everything ``make setup`` installs.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from medpredict.optional import MissingExtraError, require

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "medpredict"
# Modules that make up each extra; the rest of medpredict is the core.
EXTRA_MODULES = {
    "serve": ("medpredict.serve",),
    "imaging": ("medpredict.imaging",),
    "text": (
        "medpredict.encoders.text",
        "medpredict.encoders.text_explain",
        "medpredict.encoders.text_finetune",
        "medpredict.encoders.onnx_text",
        "medpredict.encoders.embedding_cache",
        "medpredict.models.fusion",  # builds text modalities with the sentence encoder
    ),
    "signals": ("medpredict.signals",),
    "wearables": ("medpredict.wearables",),
    "timeline": ("medpredict.timeline",),
    "deep": ("medpredict.models.deep", "medpredict.models.hybrid",
             "medpredict.models.feature_hybrids", "medpredict.timeline.sequence"),
    "genomics": (),
    "survival": ("medpredict.survival.models", "medpredict.survival.deep",
                 "medpredict.survival.datasets", "medpredict.survival.runner"),
    "forecasting": ("medpredict.forecasting",),
    "cluster": ("medpredict.cluster",),  # imports distributed only when a cluster is asked for
}
# What `medpredict run` on a tabular spec, `predict`, `report` and the trust layer import.
CORE_MODULES = (
    "medpredict.cli",
    "medpredict.study",
    "medpredict.predict",
    "medpredict.artifact",
    "medpredict.spec",
    "medpredict.data",
    "medpredict.evaluation",
    "medpredict.report",
    "medpredict.trust",
    "medpredict.trust.assess",
    "medpredict.trust.explanations",
    "medpredict.trust.fairness",
    "medpredict.trust.conformal",
    "medpredict.trust.model_card",
    "medpredict.models.registry",
    "medpredict.models.classical",
    "medpredict.models.calibration",
    "medpredict.models.ensembles",
    "medpredict.encoders.tabular",
    "medpredict.encoders.genes",
    "medpredict.optional",
)
# Core paths that still import an extra's package; each is a gap to close in that module.
CORE_GAPS: dict[str, str] = {}
# Packages of an extra that a core dependency imports itself.
BROUGHT_BY_CORE = {"PIL": "matplotlib draws with pillow"}


@cache
def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def core() -> set[str]:
    return names(project()["dependencies"])


def extras() -> dict[str, set[str]]:
    groups = project()["optional-dependencies"]
    return {extra: names(groups[extra]) for extra in EXTRA_MODULES}


@cache
def import_names() -> dict[str, set[str]]:
    """Top-level import name -> installed distributions providing it."""
    return {
        module: {canonicalize_name(d) for d in dists}
        for module, dists in packages_distributions().items()
    }


def modules_of(distributions: set[str]) -> set[str]:
    return {module for module, dists in import_names().items() if dists & distributions}


def optional_import_names() -> set[str]:
    """Import names of the packages only an extra brings, less those the core brings anyway."""
    only_extras = set().union(*extras().values()) - core()
    return modules_of(only_extras) - set(BROUGHT_BY_CORE)


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def extras_of_module(module: str) -> set[str]:
    return {
        extra
        for extra, packages in EXTRA_MODULES.items()
        if any(module == p or module.startswith(f"{p}.") for p in packages)
    }


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name.split(".")[0] for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module.split(".")[0]]
    return []


def _import_time_nodes(tree: ast.Module) -> list[ast.AST]:
    """Statements run on import: module and class bodies, not functions or TYPE_CHECKING."""
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        found.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return found


def third_party_imports(import_time_only: bool) -> list[tuple[str, int, str]]:
    """``(module, line, top-level name)`` of every non-stdlib, non-medpredict import."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        nodes = _import_time_nodes(tree) if import_time_only else list(ast.walk(tree))
        for node in nodes:
            for name in _imported(node):
                if name not in sys.stdlib_module_names and name not in ("medpredict", "__future__"):
                    out.append((module_name(path), node.lineno, name))
    return out


def test_every_extra_package_is_installed_here():
    """The checks below read import names from the installed packages (make setup: all)."""
    installed = set().union(*import_names().values())
    declared = core() | set().union(*extras().values())
    assert sorted(declared - installed) == []


def test_all_is_every_extra_and_test_needs_all():
    groups = project()["optional-dependencies"]
    assert Requirement(groups["all"][0]).extras == set(EXTRA_MODULES)
    assert "medpredict[all]" in groups["test"]


def test_requirements_lock_pins_everything_make_setup_installs():
    pinned = {
        canonicalize_name(Requirement(line).name)
        for line in (REPO / "requirements.lock").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "-"))
    }
    groups = project()["optional-dependencies"]
    declared = core() | names([r for extra in groups.values() for r in extra])
    assert sorted(declared - pinned - {"medpredict"}) == []
    makefile = (REPO / "Makefile").read_text()
    assert "pip install --quiet -r requirements.lock" in makefile
    assert "--no-deps" in makefile  # the project itself adds nothing beyond the lock


def test_extras_do_not_leak_into_core_dependencies():
    assert optional_import_names() >= {
        "torch", "fastapi", "duckdb", "neurokit2", "wfdb", "sentence_transformers",
        "onnxruntime", "pydicom", "sqlalchemy", "safetensors",
    }


def test_every_third_party_import_is_declared():
    declared = modules_of(core() | set().union(*extras().values()))
    undeclared = [
        f"{module}:{line} imports {name}"
        for module, line, name in third_party_imports(import_time_only=False)
        if name not in declared
    ]
    assert undeclared == []


def test_extra_packages_are_imported_at_import_time_only_by_their_extra():
    by_extra = {extra: modules_of(dists - core()) for extra, dists in extras().items()}
    misplaced = []
    for module, line, name in third_party_imports(import_time_only=True):
        if name not in optional_import_names():
            continue
        owners = {extra for extra, provided in by_extra.items() if name in provided}
        if not owners & extras_of_module(module):
            misplaced.append(f"{module}:{line} imports {name} (extra {'/'.join(sorted(owners))})")
    assert misplaced == []


_PROBE = """
import importlib, importlib.abc, json, sys
OPTIONAL = set(json.loads(sys.argv[2]))
chains = {}
class Witness(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        if top in OPTIONAL and top not in chains:
            frame, chain = sys._getframe(1), []
            while frame:
                owner = frame.f_globals.get("__name__", "")
                if frame.f_code.co_name == "<module>" and owner.startswith("medpredict"):
                    chain.append(owner)
                frame = frame.f_back
            chains[top] = " <- ".join(dict.fromkeys(chain))
        return None
sys.meta_path.insert(0, Witness())
importlib.import_module(sys.argv[1])
print(json.dumps(chains))
"""


def _probe(module: str) -> dict[str, str]:
    """Import ``module`` in a fresh interpreter: extra packages imported, with the chain."""
    optional = json.dumps(sorted(optional_import_names()))
    out = subprocess.run([sys.executable, "-c", _PROBE, module, optional],
                         capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def core_imports() -> dict[str, dict[str, str]]:
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        return dict(zip(CORE_MODULES, pool.map(_probe, CORE_MODULES), strict=True))


@pytest.mark.parametrize(
    "module",
    [
        pytest.param(m, marks=pytest.mark.xfail(strict=True, reason=CORE_GAPS[m]))
        if m in CORE_GAPS else m
        for m in CORE_MODULES
    ],
)
def test_core_module_imports_no_extra_package(module, core_imports):
    """Each core path, imported in a fresh interpreter, leaves every extra's packages alone."""
    chains = core_imports[module]
    assert not chains, "\n".join(f"{name} via {chain}" for name, chain in sorted(chains.items()))


_BLOCKED_RUN = """
import importlib.abc, json, sys
OPTIONAL = set(json.loads(sys.argv[1]))
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in OPTIONAL:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name.split(".")[0])
        return None
sys.meta_path.insert(0, Absent())
from medpredict.cli import app
app(sys.argv[2:], standalone_mode=False)
"""


def test_tabular_study_runs_without_any_extra(tmp_path):
    """`medpredict run` on the bundled Pima data with every extra's packages made absent."""
    (tmp_path / "study.yaml").write_text(
        "name: pima-core\ndata: {dataset: pima_tr}\ntarget: type\npositive_class: 'Yes'\n"
        "models: [logistic_regression]\nbootstrap: 20\n"
    )
    command = [sys.executable, "-c", _BLOCKED_RUN, json.dumps(sorted(optional_import_names())),
               "run", str(tmp_path / "study.yaml"), "--quiet",
               "--output-dir", str(tmp_path / "runs")]
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "runs" / "pima-core" / "model").is_dir()


def test_require_imports_an_installed_module():
    assert require("json.decoder", extra="serve").__name__ == "json.decoder"


def test_require_names_the_extra_for_a_missing_package():
    """A package name that exists nowhere stands in for an extra that is not installed."""
    with pytest.raises(MissingExtraError, match=r"pip install 'medpredict\[imaging\]'") as err:
        require("medpredict_absent_package.sub", extra="imaging")
    assert isinstance(err.value, ImportError) and err.value.extra == "imaging"
    assert err.value.name == "medpredict_absent_package.sub"


def test_require_does_not_hide_a_broken_installed_package(tmp_path, monkeypatch):
    """An import error from inside an installed package is not blamed on the extra."""
    (tmp_path / "medpredict_broken_package.py").write_text("import medpredict_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as err:
        require("medpredict_broken_package", extra="text")
    assert not isinstance(err.value, MissingExtraError)
    assert err.value.name == "medpredict_absent_dependency"
