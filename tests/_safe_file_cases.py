"""Broken and tampered files of the safe format, for ``tests/utils/test_safe_file.py``.

Each case loads one edited copy of a file written by :func:`skfindkit.io.save`
and records how it ended: ``"corrupt"`` (:class:`~skfindkit.io.CorruptFileError`
naming the file), ``"untrusted"`` (:class:`~skfindkit.io.UntrustedTypeError`),
``"loaded"``, or the type and message of any other exception (a defect). The
cases run in a child process (``_isolation.run_isolated``): a crash fails the
test instead of the run.
"""

import json
import os

import numpy as np

from skfindkit import io as skio
from skfindkit.utils._persist import new_hash

__all__ = ["edited_tree_file", "sample_file", "outcomes_of", "structural_edits",
           "byte_cases", "tree_cases"]


def sample_file(path):
    """A small pipeline file: a scaler, a sharded index of exact shards, keys attached."""
    import warnings

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skfindkit import ExactIndex, ShardedIndex, attach_keys

    X = np.random.RandomState(0).rand(12, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = make_pipeline(StandardScaler(), ShardedIndex(ExactIndex(), 2, n_neighbors=2)).fit(X)
    attach_keys(pipe, [f"item{i}" for i in range(12)])
    skio.save(pipe, path)
    return path


def split(data):
    """``(header fields, tree, data blocks)`` of a safe file's bytes."""
    magic, version, reserved, tree_len = skio._HEADER.unpack_from(data)
    tree = json.loads(data[skio._HEADER.size:skio._HEADER.size + tree_len])
    start = -(-(skio._HEADER.size + tree_len) // 64) * 64
    return (magic, version, reserved), tree, data[start:-skio._DIGEST]


_DEEP = 10_000
_DEEP_TEXT = {  # nested 10,000 deep: written as text (json.dumps would recurse)
    "deep-list": "[" * _DEEP + "]" * _DEEP,
    "deep-tuple": '{"$": "tuple", "items": [' * _DEEP + "null" + "]}" * _DEEP,
}


def join(header, tree, blocks, tree_text=None):
    """A safe file of these parts, its checksum recomputed (what a tamperer writes).

    A string value ``"deep-list"`` or ``"deep-tuple"`` in ``tree`` becomes a
    structure nested 10,000 deep.
    """
    if tree_text is None:
        text = json.dumps(tree)
        for name, deep in _DEEP_TEXT.items():
            text = text.replace(f'"{name}"', deep)
        tree_text = text.encode()
    text = tree_text
    body = skio._HEADER.pack(*header, len(text)) + text
    body += bytes(-(-len(body) // 64) * 64 - len(body)) + blocks
    return body + new_hash(body).digest()


def edited_tree_file(src, dst, edit):
    """Copy ``src`` to ``dst`` with ``edit(tree)`` applied and every checksum recomputed."""
    with open(src, "rb") as fh:
        header, tree, blocks = split(fh.read())
    edit(tree)
    with open(dst, "wb") as fh:
        fh.write(join(header, tree, blocks))


def outcome(path, mmap_mode=None):
    try:
        skio.load(path, mmap_mode=mmap_mode)
    except skio.UntrustedTypeError:
        return "untrusted"
    except skio.CorruptFileError as exc:
        return "corrupt" if os.fspath(path) in str(exc) else f"corrupt-unnamed: {exc}"
    except BaseException as exc:  # noqa: BLE001 - every other ending is what the test reports
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return "loaded"


def outcomes_of(cases, tmp_dir, mmap_mode=None):
    """``{outcome: [case names]}`` of ``(name, bytes)`` cases, each loaded from a file."""
    found = {}
    path = os.path.join(tmp_dir, "case.skfk")
    for name, data in cases:
        # a new file each time: truncating one that holds data makes some file
        # systems (ext4's auto_da_alloc) flush it, milliseconds a case
        if os.path.exists(path):
            os.remove(path)
        with open(path, "wb") as fh:
            fh.write(data)
        found.setdefault(outcome(path, mmap_mode), []).append(name)
    return found


def byte_cases(tmp_dir, n_sampled=300, seed=0, mmap_mode=None):
    """Byte flips, truncations at every block boundary, appended bytes."""
    path = sample_file(os.path.join(tmp_dir, "sample.skfk"))
    with open(path, "rb") as fh:
        data = fh.read()
    (_, _, _), tree, _ = split(data)
    tree_len = skio._HEADER.unpack_from(data)[3]
    start = -(-(skio._HEADER.size + tree_len) // 64) * 64
    rng = np.random.RandomState(seed)
    offsets = sorted(set(range(0, start + 64)) | set(rng.randint(0, len(data), n_sampled)))
    cases = [(f"flip {p}", data[:p] + bytes([data[p] ^ 0xFF]) + data[p + 1:])
             for p in offsets if p < len(data)]
    bounds = {0, skio._HEADER.size, skio._HEADER.size + tree_len, start, len(data) - skio._DIGEST}
    for offset, nbytes in tree["blobs"]:
        end = start + offset + nbytes
        bounds |= {start + offset, end, start + -(-(offset + nbytes) // 64) * 64}
    cases += [(f"cut {c}", data[:c]) for c in sorted(bounds) if c < len(data)]
    cases += [(f"cut {c}-1", data[:c - 1]) for c in sorted(bounds) if 0 < c < len(data)]
    cases += [("appended 1", data + b"\0"), ("appended 64", data + bytes(64)),
              ("appended junk", data + b"junk" * 100)]
    return outcomes_of(cases, tmp_dir, mmap_mode)


def structural_edits(tree):
    """``(name, edit)``: every structural field of the tree changed in each way."""
    from skfindkit.utils._safe_tree import walk

    nodes = []
    walk(tree["root"], nodes)
    bad_values = {"missing": ..., "none": None, "string": "x", "negative": -1,
                  "huge": 10**30, "float": 1.5, "list": [], "dict": {}, "deep-list": "deep-list",
                  "deep-tuple": "deep-tuple"}
    edits = []
    for i, node in enumerate(nodes):
        for key in node:
            for how, value in bad_values.items():
                edits.append((f"node {i} ({node.get('$')}) {key}: {how}", (i, key, value)))
    for j in range(len(tree["blobs"])):
        for field in (0, 1):
            for how, value in (("negative", -1), ("huge", 2**62), ("string", "x"),
                               ("shifted", 64)):
                edits.append((f"blob {j}[{field}]: {how}", ("blob", j, field, value)))
    for what in ("root", "blobs"):
        for how, value in bad_values.items():
            edits.append((f"{what}: {how}", ("top", what, value)))
    return edits


def _apply(tree, edit):
    from skfindkit.utils._safe_tree import walk

    if edit[0] == "top":
        _, key, value = edit
        if value is ...:
            del tree[key]
        else:
            tree[key] = value
    elif edit[0] == "blob":
        _, j, field, value = edit
        tree["blobs"][j][field] = (tree["blobs"][j][field] + value if value == 64 else value)
    else:
        i, key, value = edit
        nodes = []
        walk(tree["root"], nodes)
        if value is ...:
            del nodes[i][key]
        else:
            nodes[i][key] = value


def tree_cases(tmp_dir, mmap_mode=None):
    """Every structural edit of the tree, checksums recomputed; plus header edits."""
    path = sample_file(os.path.join(tmp_dir, "sample.skfk"))
    with open(path, "rb") as fh:
        data = fh.read()
    header, tree, blocks = split(data)
    cases = []
    for name, edit in structural_edits(tree):
        edited = json.loads(json.dumps(tree))
        _apply(edited, edit)
        cases.append((name, join(header, edited, blocks)))
    text = json.dumps(tree).encode()
    cases += [
        ("tree: not JSON", join(header, None, blocks, tree_text=text[:-1])),
        ("tree: not UTF-8", join(header, None, blocks, tree_text=b"\xff" + text)),
        ("tree: a list", join(header, None, blocks, tree_text=b"[]")),
        ("tree: deep JSON", join(header, None, blocks, tree_text=b"[" * _DEEP + b"]" * _DEEP)),
        ("tree: huge number", join(header, None, blocks, tree_text=b"1" * 100_000)),
        ("header: version", join((header[0], 99, header[2]), tree, blocks)),
    ]
    body = bytearray(join(header, tree, blocks))
    skio._HEADER.pack_into(body, 0, header[0], header[1], header[2], 2**62)
    cases.append(("header: huge tree length", bytes(body[:-skio._DIGEST])
                  + new_hash(bytes(body[:-skio._DIGEST])).digest()))
    return outcomes_of(cases, tmp_dir, mmap_mode)
