"""Item functions for the dask tests, importable by worker processes.

``vector_of`` turns a text item into a small deterministic vector; an item
ending in ``.kill-once`` makes the worker process running it die the first
time (a marker file next to it records that), one ending in ``.kill-always``
every time: what a crashed or OOM-killed worker looks like to dask.
"""

import os
import signal

import numpy as np


def vector_of(item):
    item = str(item)
    if item.endswith(".kill-always") or (
        item.endswith(".kill-once") and not os.path.exists(item + ".done")
    ):
        with open(item + ".done", "w"):
            pass
        os.kill(os.getpid(), signal.SIGKILL)
    if item.endswith(".bad"):
        raise ValueError("unreadable item")
    codes = np.frombuffer(item.encode()[-6:].rjust(6), dtype=np.uint8)
    return np.concatenate([[len(item)], codes]).astype(np.float64)
