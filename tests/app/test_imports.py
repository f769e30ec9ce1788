"""The application layer's modules import the shared ``skfindkit._app``, never each other."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "skfindkit"


def _imported_modules(path):
    """Absolute names of the skfindkit modules ``path`` imports (at any depth)."""
    module = "skfindkit." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module[:-9]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def _is_cli(name):
    return any(part.startswith("_cli") for part in name.split(".")[1:2])


SERVE = sorted((PACKAGE / "serve").glob("*.py"))
CLI = sorted(PACKAGE.glob("_cli*.py"))


@pytest.mark.parametrize("path", SERVE, ids=lambda p: p.name)
def test_no_serve_module_imports_a_cli_module(path):
    assert not [name for name in _imported_modules(path) if _is_cli(name)]


@pytest.mark.parametrize("path", CLI, ids=lambda p: p.name)
def test_no_cli_module_imports_the_service(path):
    assert not [name for name in _imported_modules(path) if name.startswith("skfindkit.serve")]


def test_the_demo_imports_neither():
    names = _imported_modules(PACKAGE / "demo.py")
    assert not [n for n in names if _is_cli(n) or n.startswith("skfindkit.serve")]


def test_the_check_sees_relative_imports():
    names = _imported_modules(PACKAGE / "serve" / "_cli.py")
    assert "skfindkit._app.pipeline_files" in names
