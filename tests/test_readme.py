"""The README's Python snippets run as written."""

import os
import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)  # the tour writes system.joblib
    namespace = {}
    for block in blocks:  # later blocks reuse names from earlier ones
        exec(compile(block, str(README), "exec"), namespace)
    assert os.path.exists("system.joblib")
    assert namespace["result"].keys.shape == (3, 10)
    assert namespace["ann"].best_score_ > 0.9
