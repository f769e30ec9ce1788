"""Regenerate ``tests/RELIABILITY.md``: bad inputs, corrupted files, concurrency, crashes.

Every group of cases runs in a child process (``_isolation.run_isolated``), so a
native crash is counted instead of ending the run (each concurrency scenario
has a child of its own, as they are the ones expected to crash).

Usage (from the repository root)::

    python tests/reliability_report.py [--backends exact,annoy,...] [--out tests/RELIABILITY.md]

Two families of probes, reported apart:

* the project's own (``_reliability``, ``_corruption``): bad inputs, corrupted
  files and concurrency for every backend;
* an independent family (``tests/reliability_independent.py``), written by a
  tester who read only the public documentation and the package's source, not
  these tests: tampered safe-format files with their checksums recomputed,
  the service, concurrency and parameters. It runs as its own process (each
  probe in a child of it) and reports one JSON line.

Exit status 1 when any case crashed or gave a silent wrong answer (accepted bad
input, a corrupted file loaded with different answers, concurrent results
different from serial, lost items) or, in the independent family, anything but
"handled"; 0 otherwise. Takes a few minutes.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import platform
import sys
import tempfile
import time
from collections import Counter
from importlib.metadata import version

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests import _corruption, _reliability  # noqa: E402
from tests._isolation import ChildCrashed, run_isolated  # noqa: E402

_NEEDS = {"annoy": "annoy", "nmslib": "nmslib", "hnswlib": "hnswlib",
          "faiss-hnsw": "faiss", "faiss-flat": "faiss"}
BAD = {"silent", "silent-wrong", "crash"}


def _guarded(func, *args):
    """Cases of one group; a crash is recorded as one 'crash' case."""
    try:
        return run_isolated(func, *args)
    except ChildCrashed as exc:
        return [(f"{func.__name__}{args}", "crash", str(exc)[:200])]


def corrupted_file_cases(backend, tmp):
    """All corruption cases of one backend, as (case, outcome, detail) rows."""
    rows = []
    flips = _corruption.bitflip_cases(backend)
    for outcome in ("refused", "refused-other", "identical", "silent-wrong"):
        rows += [(f"{backend} pickle bit flip", outcome, flips["examples"].get(outcome, ""))
                 ] * flips.get(outcome, 0)
    rows += [(f"{backend} pickle truncated", r, "") for r in _corruption.truncation_cases(backend)]
    rows.append((f"{backend} native bytes (exact: stored data) of another index",
                 *_corruption.swapped_blob_case(backend)))
    if backend != "exact":
        rows.append((f"{backend} native index of another dimension, checksums recomputed",
                     *_corruption.foreign_dims_case(backend)))
    rows.append((f"{backend} n_features_in_ changed", *_corruption.tampered_dims_case(
        backend, False)))
    rows.append((f"{backend} n_features_in_ changed, checksums recomputed",
                 *_corruption.tampered_dims_case(backend, True)))
    safe = _corruption.safe_file_bitflip_cases(backend, tmp)
    for outcome in ("refused", "refused-other", "identical", "silent-wrong"):
        rows += [(f"{backend} skfindkit.io file bit flip/truncation", outcome,
                  safe["examples"].get(outcome, ""))] * safe.get(outcome, 0)
    return rows


INDEPENDENT = os.path.join(ROOT, "tests", "reliability_independent.py")


def independent_family(timeout=1200):
    """The independent tester's probes: ``[(area, case, outcome, detail)]``, or one
    'crash' row if the script itself failed."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        done = subprocess.run([sys.executable, INDEPENDENT], capture_output=True, text=True,
                              timeout=timeout, cwd=tempfile.gettempdir(), env=env)
    except subprocess.TimeoutExpired:
        return [("runner", "the independent probes", "hang", f"over {timeout} s")]
    for line in reversed(done.stdout.splitlines()):
        if line.startswith('{"probes"'):
            return [(p["area"], p["case"], p["outcome"], str(p.get("detail", "")))
                    for p in json.loads(line)["probes"]]
    return [("runner", "the independent probes", "crash",
             f"exit {done.returncode}: {done.stderr[-300:]}")]


def _summary(rows, good):
    counts = Counter(outcome for _, outcome, _ in rows)
    return len(rows), sum(counts[g] for g in good), counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(_corruption.BACKENDS))
    parser.add_argument("--out", default=os.path.join(ROOT, "tests", "RELIABILITY.md"))
    args = parser.parse_args()
    started = time.perf_counter()
    backends, skipped = [], []
    for b in args.backends.split(","):
        missing = b in _NEEDS and importlib.util.find_spec(_NEEDS[b]) is None
        (skipped if missing else backends).append(b)
    sections = {"bad inputs": [], "corrupted files": [], "concurrency": []}
    with tempfile.TemporaryDirectory() as tmp:
        for b in backends:
            print(f"{b}: bad inputs, corrupted files, concurrency...", flush=True)
            sections["bad inputs"] += _guarded(_reliability.bad_input_cases, b)
            sections["corrupted files"] += _guarded(corrupted_file_cases, b, tmp)
            for which in _reliability.CONCURRENCY:  # one child each: a crash hides nothing
                sections["concurrency"] += _guarded(_reliability.concurrency_cases, b, which)
    print("independent family...", flush=True)
    independent = independent_family()
    good = {"bad inputs": ("handled",), "corrupted files": ("refused", "refused-other",
                                                           "identical"),
            "concurrency": ("identical", "consistent")}
    all_rows = [r for rows in sections.values() for r in rows]
    crashes = sum(1 for r in all_rows if r[1] == "crash")
    silent = sum(1 for r in all_rows if r[1] in ("silent", "silent-wrong"))
    not_handled = [r for r in independent if r[2] != "handled"]
    lines = [
        "# Reliability report",
        "",
        "Generated by `python tests/reliability_report.py` in "
        f"{time.perf_counter() - started:.0f} s "
        f"on {platform.platform()}, Python {platform.python_version()}, skfindkit from "
        f"`{ROOT}`; numpy {version('numpy')}, scikit-learn {version('scikit-learn')}. Each group "
        "of cases ran in a child process, so a native crash is counted here instead of ending "
        "the run." + (f" Not installed, not run: {', '.join(skipped)}." if skipped else ""),
        "",
        "## Family 1: the project's own probes",
        "",
        "| area | cases tried | handled as they should | crashes | silent wrong answers |",
        "|---|---|---|---|---|",
    ]
    for name, rows in sections.items():
        tried, ok, counts = _summary(rows, good[name])
        lines.append(f"| {name} | {tried} | {ok} | {counts['crash']} "
                     f"| {counts['silent'] + counts['silent-wrong']} |")
    lines += ["", f"**Total: {crashes} crashes, {silent} silent wrong answers.**", ""]
    lines += [
        "## Family 2: an independent tester's probes",
        "",
        "Written by a tester who read only the public documentation and the package's "
        "source (not these tests), in `tests/reliability_independent.py`; every probe runs "
        "in a child process with a timeout. Outcomes: *handled* (a clear error naming the "
        "file, parameter or field, or the correct behaviour), *crash*, *hang*, "
        "*code-execution*, *disclosure*, *unusable-save*, *silent-wrong*, *unclear-error*. "
        "What this family found before the fixes is listed in the change that added it; "
        "each finding is a test in the suite.",
        "",
        "| area | probes | handled | not handled |",
        "|---|---|---|---|",
    ]
    for area in sorted({r[0] for r in independent}):
        rows = [r for r in independent if r[0] == area]
        handled = sum(1 for r in rows if r[2] == "handled")
        lines.append(f"| {area} | {len(rows)} | {handled} | {len(rows) - handled} |")
    lines += ["", f"**Total: {len(independent)} probes, {len(not_handled)} not handled.**", ""]
    for area, case, outcome, detail in not_handled:
        lines.append(f"- **{outcome}** ({area}) {case}: {detail[:200]}")
    lines.append("")
    lines.append("## Family 1 in detail")
    lines.append("")
    lines += [
        "Outcomes: bad inputs are *handled* when a ValueError/TypeError with a message is "
        "raised (*unclear*: another exception; *silent*: accepted, or NaN/inf returned). "
        "Corrupted files are *refused* with `CorruptFileError`/`CorruptIndexError` naming what "
        "failed (*refused-other*: pickle's own error on a broken opcode before skfindkit runs; "
        "*identical*: a harmless byte such as pickle framing). Concurrent runs are "
        "*identical* to serial, or *consistent* (the final state holds every added item, "
        "native index in step); *error*: a clear exception.",
        "",
    ]
    for name, rows in sections.items():
        lines += [f"### {name}", "", "| case | outcome | count | example |", "|---|---|---|---|"]
        grouped = Counter((case, outcome) for case, outcome, _ in rows)
        detail = {(case, outcome): d for case, outcome, d in rows}
        for (case, outcome), count in sorted(grouped.items(),
                                             key=lambda kv: (kv[0][1] not in BAD, kv[0])):
            if name == "bad inputs" and outcome == "handled":
                continue  # listed in the summary counts; the table shows the rest
            text = detail[(case, outcome)].replace("|", "\\|").replace("\n", " ")[:160]
            mark = "**" if outcome in BAD else ""
            lines.append(f"| {case} | {mark}{outcome}{mark} | {count} | {text} |")
        if name == "bad inputs":
            handled = sum(1 for r in rows if r[1] == "handled")
            lines.append(f"| every other case ({handled}) | handled | {handled} | |")
        lines.append("")
    from skfindkit.io import atomic_write

    with atomic_write(args.out, mode="w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    print("\n".join(lines[6:14]))
    print(f"independent family: {len(independent)} probes, {len(not_handled)} not handled")
    print(f"wrote {args.out}")
    return 1 if crashes or silent or not_handled else 0


if __name__ == "__main__":
    sys.exit(main())
