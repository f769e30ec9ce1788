"""Test environments: the library on numpy 2, and MXNet/Gluon on numpy < 2.

MXNet 1.9.1, the last release of a retired project, needs numpy < 2, so its
extractors are tested in a separate environment; everything else targets
numpy 2. Run ``nox`` for both sessions, ``nox -s tests`` for one.
"""

import glob
import logging
import os

import nox

nox.options.sessions = ["tests", "tests_mxnet"]
nox.options.reuse_existing_virtualenvs = True
# uv where it is installed (``pip install "nox[uv]"``, as the README and CI do): it
# installs the environments in about half pip's time; plain virtualenv + pip otherwise.
nox.options.default_venv_backend = "uv|virtualenv"
# pip byte-compiles what it installs; uv only when asked. Without it every test worker
# and subprocess would compile the modules it imports (TensorFlow's thousands) itself.
os.environ.setdefault("UV_COMPILE_BYTECODE", "1")
# nox logs "uv binary not found." when it falls back to virtualenv: not an error.
logging.getLogger("nox").addFilter(
    lambda record: "uv binary not found" not in record.getMessage()
)

# Sessions run with the interpreter that runs nox (CI: python3 >= 3.10).
PYTHON = None


def _workers():
    return os.environ.get("PYTEST_WORKERS", "auto")


@nox.session(python=PYTHON)
def tests(session):
    """Everything but MXNet, on numpy 2, with every other optional backend."""
    session.install("-e", ".[all,test]")
    session.run(
        "python", "-m", "pytest", "-n", _workers(), "--dist", "loadfile",
        *(session.posargs or ["tests", "skfindkit", "--doctest-modules"]),
        env={"TF_CPP_MIN_LOG_LEVEL": "2"},
    )


@nox.session(python=PYTHON)
def quick(session):
    """The edit-test loop: everything not marked ``slow`` (CI runs those too)."""
    session.install("-e", ".[all,test]")
    session.run(
        "python", "-m", "pytest", "-n", _workers(), "--dist", "loadfile", "-m", "not slow",
        *(session.posargs or ["tests"]),
        env={"TF_CPP_MIN_LOG_LEVEL": "2"},
    )


@nox.session(python=PYTHON)
def tests_mxnet(session):
    """MXNet/Gluon extractors and their contract checks, on numpy < 2."""
    session.install("numpy<2", "-e", ".[mxnet,image,test]")
    # MXNet's own DeprecationWarnings (numpy APIs it still uses) are filtered
    # in setup.cfg, so that warnings from skfindkit and the tests stand out
    session.run(
        "python", "-m", "pytest", "-n", _workers(), "--dist", "loadfile",
        *(session.posargs or [
            *sorted(glob.glob("tests/extractors/test_mxnet*.py")),
            "tests/common/test_estimators.py", "tests/extractors/test_contract.py",
            "tests/test_readme.py", "-k", "MXNet or Gluon or mxnet or every_public",
        ]),
    )
