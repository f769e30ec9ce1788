"""Every example runs offline from a clean working directory and saves its plot."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("plot_*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_and_saves_its_plot(script, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "TMPDIR": str(tmp_path),
           "TF_CPP_MIN_LOG_LEVEL": "2",
           "SKFINDKIT_EXAMPLE_QUICK": "1"}  # examples with a long study run a reduced one
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "plot saved to" in proc.stdout
    saved = Path(proc.stdout.split("plot saved to", 1)[1].split()[0])
    assert saved.exists() and saved.stat().st_size > 5_000
