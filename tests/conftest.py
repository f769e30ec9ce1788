"""Collection rules shared by the whole suite."""

import importlib.util

# MXNet 1.9.1 (the last release of a retired project) needs numpy < 2, so its
# extractors are tested in their own environment (``nox -s tests_mxnet``); in
# the numpy-2 environment their modules are not collected at all.
collect_ignore_glob = [] if importlib.util.find_spec("mxnet") else ["test_extractors_mxnet*.py"]
