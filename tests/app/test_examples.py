"""Every example runs offline from a clean working directory and saves its plot.

The examples run one after the other in one fresh interpreter, each as
``python examples/plot_x.py`` would run it, in its own empty working directory
and temporary folder (``tests/_scripts.py``): numpy, scikit-learn, matplotlib
and skfindkit are imported once for all of them.
"""

import os
from pathlib import Path

import pytest

from .._scripts import run_scripts

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("plot_*.py"))
#: keras/TensorFlow start threads when imported: the examples that import them run last
LAST = ("plot_cnn_image_retrieval",)


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory):
    """``{stem: (exit status or None if it never ran, output)}`` and the runner's output."""
    root = tmp_path_factory.mktemp("examples")
    jobs = []
    for script in sorted(EXAMPLES, key=lambda p: (p.stem in LAST, p.stem)):
        (root / script.stem).mkdir()
        jobs.append((script.stem, script, [], root / script.stem, root / script.stem))
    env = {**os.environ, "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "2",
           "SKFINDKIT_EXAMPLE_QUICK": "1"}  # examples with a long study run a reduced one
    return run_scripts(jobs, root, env, timeout=1200)


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_and_saves_its_plot(script, example_runs):
    runs, runner_output = example_runs
    code, output, _ = runs[script.stem]
    assert code == 0, f"exit status {code}:\n{output[-3000:]}\n{runner_output}"
    assert "plot saved to" in output
    saved = Path(output.split("plot saved to", 1)[1].split()[0])
    assert saved.exists() and saved.stat().st_size > 5_000
