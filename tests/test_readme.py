"""The README's Python snippets run as written."""

import os
import re
from pathlib import Path

from ._optional import require_mxnet

README = Path(__file__).parents[1] / "README.md"


def _blocks(mxnet):
    """The README's Python blocks: the MXNet ones run in the MXNet environment."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    return [b for b in blocks if ("import_mxnet" in b) == mxnet]


def test_readme_mxnet_block_runs():
    require_mxnet()
    blocks = _blocks(mxnet=True)
    assert len(blocks) == 1
    namespace = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    assert namespace["hidden"].shape == (100, 16)


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = _blocks(mxnet=False)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)  # the tour writes system.joblib
    namespace = {}
    for block in blocks:  # later blocks reuse names from earlier ones
        exec(compile(block, str(README), "exec"), namespace)
    assert os.path.exists("system.joblib")
    assert namespace["result"].keys.shape == (3, 10)
    assert namespace["ann"].best_score_ > 0.9
