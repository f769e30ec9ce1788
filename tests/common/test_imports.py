"""Every skfindkit module imports alone (no import circle), and module hygiene.

Each module is imported first, in a process that has imported no skfindkit
module before it: one fresh interpreter preloads every third-party module that
a skfindkit module imports at its top level (numpy, scipy, scikit-learn,
joblib, PIL, librosa, fastapi, dask... where installed) and forks children. An
import circle breaks only for some entry points, so each module must be tried
as the first one; importing ``skfindkit.x.y`` runs the package's ``__init__``
to its end first, so for the modules ``import skfindkit`` loads, going first is
``import skfindkit`` (one child), and each module it does not load gets a child
of its own, forked after ``import skfindkit``.
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "skfindkit"


def _modules():
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


_FORK_EACH = r"""
import importlib, os, sys, traceback
modules, third_party = sys.argv[1].split(), sys.argv[2].split()
for name in third_party:  # an optional library that is not installed stays absent
    try:
        importlib.import_module(name)
    except Exception:
        pass
assert not [m for m in sys.modules if m.startswith("skfindkit")]


def first_import(name):
    # in a forked child: import ``name`` first; the exit status says how it went
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            sys.stderr.write(f"--- import {name} failed:\n{traceback.format_exc()}")
            os._exit(1)
        os._exit(0)
    return os.waitpid(pid, 0)[1] == 0


# Importing any skfindkit.x.y runs the package's __init__ first, to its end, in
# its own order: for every module that ``import skfindkit`` loads, importing it
# first IS importing skfindkit. The modules it does not load are each imported
# first in a child forked after ``import skfindkit`` -- the state any fresh
# process is in when it reaches them.
tried, failed = ["skfindkit"], [] if first_import("skfindkit") else ["skfindkit"]
if not failed:
    import skfindkit  # noqa: F401
    tried += [name for name in modules if name not in sys.modules]
    failed = [name for name in tried[1:] if not first_import(name)]
print("TRIED:", " ".join(tried))
print("FAILED:", " ".join(failed))
"""


def _third_party_imported_at_module_level():
    """Modules outside skfindkit and the standard library that skfindkit's modules
    import when they are imported (not those imported inside functions)."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        todo = list(ast.parse(path.read_text()).body)
        while todo:
            node = todo.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            else:
                todo.extend(ast.iter_child_nodes(node))
    return sorted(name for name in names if name.split(".")[0] not in
                  {"skfindkit", *sys.stdlib_module_names})


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX) to stay fast")
def test_every_module_imports_alone_in_a_fresh_process():
    modules = _modules()
    assert len(modules) > 30 and "skfindkit.loaders._base" in modules
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent) + os.pathsep
           + os.environ.get("PYTHONPATH", "")}
    preload = _third_party_imported_at_module_level()
    assert "sklearn.base" in preload and "numpy" in preload
    run = subprocess.run([sys.executable, "-c", _FORK_EACH, " ".join(modules), " ".join(preload)],
                         env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    tried, failed = run.stdout.strip().splitlines()[-2:]
    assert failed == "FAILED:", run.stdout + run.stderr[-5000:]
    # the modules ``import skfindkit`` leaves out (CLI, service, demo...) each went first
    tried = tried.split()[1:]
    assert "skfindkit.serve._routes" in tried and "skfindkit.indexes._brute" not in tried, tried


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def test_sklearn_private_api_is_imported_in_one_module():
    compat = PACKAGE / "utils" / "_sklearn_compat.py"
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path == compat:
            continue
        for module, names in _imports(path):
            if not module.startswith("sklearn"):
                continue
            private = [n for n in names if n.startswith("_")]
            if any(part.startswith("_") for part in module.split(".")) or private:
                offenders.append(f"{path.relative_to(PACKAGE)}: {module} {private}")
    assert not offenders, "import these from skfindkit/utils/_sklearn_compat.py:\n" + "\n".join(
        offenders)


def test_plotting_and_progress_libraries_are_imported_lazily():
    """matplotlib (extra ``plot``) and tqdm are imported on use, not on import."""
    run = subprocess.run(
        [sys.executable, "-c", "import sys, skfindkit, skfindkit.cli, skfindkit.plotting; "
         "print(sorted(m for m in ('matplotlib', 'tqdm') if m in sys.modules))"],
        env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)}, capture_output=True,
        text=True, check=True, timeout=120,
    )
    assert run.stdout.strip() == "[]", run.stdout
