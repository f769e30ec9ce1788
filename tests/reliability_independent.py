#!/usr/bin/env python
"""Adversarial probes of skfindkit (independent of the project's tests).

Written by a tester who read only the public documentation and the package's
source, not the project's tests (the second family of ``tests/reliability_report.py``).

Run: python tests/reliability_independent.py  (from the repository root)
Each group of probes runs in a child process; a child that dies (signal) or stops making
progress (timeout) marks its current probe as crash/hang and the group resumes after it.
"""
import json
import os
import subprocess
import sys
import time
import tempfile
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE_TIMEOUT = 25  # seconds without progress -> hang
GROUPS = ["files_exact", "files_hnsw", "files_annoy", "files_nmslib", "files_faiss",
          "files_sharded", "files_bm25", "files_pipe", "files_milvus", "parameters",
          "concurrency", "service"]


# ============================================================== parent side
def run_group(group, work, results, deadline):
    start = 0
    log = os.path.join(work, f"{group}.log")
    restarts = 0
    while restarts < 40 and time.time() < deadline:
        restarts += 1
        if os.path.exists(log):
            os.unlink(log)
        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONWARNINGS"] = "ignore"
        errf = open(os.path.join(work, f"{group}.stderr"), "ab")
        proc = subprocess.Popen([sys.executable, __file__, "--child", group, str(start), log, work],
                                stdout=subprocess.DEVNULL, stderr=errf, env=env,
                                start_new_session=True)
        last, last_size, killed = time.time(), -1, False
        while proc.poll() is None:
            time.sleep(0.2)
            size = os.path.getsize(log) if os.path.exists(log) else 0
            if size != last_size:
                last, last_size = time.time(), size
            limit = 120 if size == 0 else PROBE_TIMEOUT  # setup may take longer
            if time.time() - last > limit or time.time() > deadline:
                try:
                    os.killpg(proc.pid, 9)
                except ProcessLookupError:
                    pass
                proc.wait()
                killed = True
        errf.close()
        current, finished, total = None, False, None
        if os.path.exists(log):
            with open(log) as fh:
                for line in fh:
                    if not line.endswith("\n"):
                        continue
                    kind, _, rest = line.rstrip("\n").partition(" ")
                    if kind == "T":
                        total = int(rest)
                    elif kind == "S":
                        current = json.loads(rest)
                    elif kind == "D":
                        results.append(json.loads(rest))
                        current = None
                    elif kind == "END":
                        finished = True
        if finished:
            return
        rc = proc.returncode
        if current is None:
            results.append({"area": "files" if group.startswith("files") else group,
                            "case": f"{group}: setup", "outcome": "hang" if killed else "crash",
                            "detail": f"child exited rc={rc} outside a probe"})
            return
        outcome = "hang" if killed else "crash"
        current.update(outcome=outcome, detail=f"child {'killed after timeout' if killed else f'died rc={rc}'} "
                       f"during this probe; stderr tail: {_tail(work, group)}")
        results.append(current)
        start = current["index"] + 1
        if total is not None and start >= total:
            return


def _tail(work, group):
    try:
        with open(os.path.join(work, f"{group}.stderr"), "rb") as fh:
            data = fh.read()[-300:]
        return data.decode("utf-8", "replace").replace("\n", " | ")
    except OSError:
        return ""


def main():
    t0 = time.time()
    deadline = t0 + 540
    work = tempfile.mkdtemp(prefix="attack19-", dir="/tmp")
    results = []
    only = sys.argv[1:] or GROUPS
    try:
        for group in only:
            run_group(group, work, results, deadline)
            print(f"# {group}: {len(results)} probes so far, {time.time() - t0:.0f}s",
                  file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for r in results:
        r.pop("index", None)
    counts = {}
    for r in results:
        key = f"{r['area']}/{r['outcome']}"
        counts[key] = counts.get(key, 0) + 1
    print(json.dumps(counts, sort_keys=True), file=sys.stderr)
    print(json.dumps({"probes": results}))


# ============================================================== child side
class Logger:
    def __init__(self, path):
        self.fh = open(path, "a")

    def line(self, text):
        self.fh.write(text + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())


def child(group, start, logpath, work):
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
    import warnings
    warnings.filterwarnings("ignore")
    os.chdir(work)
    sys.path.insert(0, os.path.join(work, "canary"))
    _make_canary(work)
    log = Logger(logpath)
    mod = sys.modules[__name__]
    probes = getattr(mod, "probes_" + group.split("_")[0])(group, work)
    log.line(f"T {len(probes)}")
    for i, (area, case, fn) in enumerate(probes):
        if i < start:
            continue
        rec = {"area": area, "case": case, "index": i}
        log.line("S " + json.dumps(rec))
        try:
            outcome, detail = fn()
        except Exception as exc:  # the probe itself failed
            outcome, detail = "unclear-error", f"probe raised {type(exc).__name__}: {str(exc)[:200]}"
        if os.path.exists(os.path.join(work, "CANARY_RAN")):
            outcome, detail = "code-execution", "canary module ran: " + detail
            os.unlink(os.path.join(work, "CANARY_RAN"))
        rec.update(outcome=outcome, detail=str(detail)[:300])
        log.line("D " + json.dumps(rec))
    log.line("END")


def _make_canary(work):
    folder = os.path.join(work, "canary")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "evilmod.py"), "w") as fh:
        fh.write("import os\nopen(os.path.join(%r, 'CANARY_RAN'), 'w').close()\n"
                 "class Evil:\n    pass\n" % work)


# ---------------------------------------------------------------- file format helpers
def _aligned(n):
    return -(-n // 64) * 64


def parse_file(path):
    import struct
    data = open(path, "rb").read()
    magic, ver, res, tlen = struct.unpack("<8sIIQ", data[:24])
    tree = json.loads(data[24:24 + tlen])
    start = _aligned(24 + tlen)
    blobs = [data[start + off:start + off + n] for off, n in tree["blobs"]]
    return tree, blobs


def write_file(path, tree, blobs, *, keep_table=False, version=2, tlen=None, text=None,
               fix=True, reserved=0):
    import struct
    import xxhash
    offsets, pos, body = [], 0, b""
    for b in blobs:
        offsets.append([pos, len(b)])
        pad = _aligned(pos + len(b)) - pos - len(b)
        body += bytes(b) + bytes(pad)
        pos = _aligned(pos + len(b))
    if not keep_table:
        tree = dict(tree, blobs=offsets)
    if text is None:
        text = json.dumps(tree, separators=(",", ":")).encode()
    head = struct.pack("<8sIIQ", b"SKFKSAFE", version, reserved, len(text) if tlen is None else tlen)
    start = _aligned(24 + len(text))
    data = head + text + bytes(start - 24 - len(text)) + body
    digest = xxhash.xxh3_128(data).digest() if fix else bytes(16)
    with open(path, "wb") as fh:
        fh.write(data + digest)


def encode_state(obj_cls, state):
    from skfindkit.utils._safe_tree import Encoder, qualified
    enc = Encoder()
    node = enc.encode(state)
    root = {"$": "object", "class": qualified(obj_cls), "id": 10**6, "state": node}
    return {"root": root, "blobs": []}, [bytes(memoryview(v).cast("B")) for v in enc.blobs]


DELETE = object()


def reseal(obj, changes):
    from skfindkit.utils._persist import _digest, _combined
    st = dict(obj.__getstate__())
    rec = st["_checksums"]
    fields = dict(rec["fields"])
    children = getattr(type(obj), "_child_attrs", ())
    for k, v in changes.items():
        if v is DELETE:
            st.pop(k, None)
            fields.pop(k, None)
        else:
            st[k] = v
            if k not in children:
                fields[k] = _digest(v)
    st["_checksums"] = {"version": rec["version"], "fields": fields, "all": _combined(fields)}
    return st


def judge_load(path, *, should_refuse=False, ref=None, queries=None, trusted=None):
    """Load a (tampered) file and exercise it: (outcome, detail)."""
    import numpy as np
    from skfindkit import io
    from skfindkit.io import CorruptFileError, UntrustedTypeError
    watch = ["sklearn.experimental.enable_iterative_imputer", "antigravity", "this", "evilmod",
             "http.server", "sklearn.utils._testing"]
    before = {m for m in watch if m in sys.modules}
    try:
        obj = io.load(path, trusted=trusted)
    except UntrustedTypeError as exc:
        return _imports(before, watch) or ("handled", f"UntrustedTypeError: {str(exc)[:150]}")
    except CorruptFileError as exc:
        if _imports(before, watch):
            return _imports(before, watch)
        if repr(os.fspath(path)) not in str(exc) and os.fspath(path) not in str(exc):
            return "unclear-error", f"CorruptFileError without the file name: {str(exc)[:200]}"
        return "handled", f"{type(exc).__name__}: {str(exc)[:150]}"
    except MemoryError as exc:
        return "unclear-error", f"MemoryError at load: {exc}"
    except Exception as exc:
        if type(exc).__name__ == "UntrustedEndpointError":
            return "handled", f"consent needed: {str(exc)[:150]}"
        return "unclear-error", f"{type(exc).__name__} at load: {str(exc)[:200]}"
    except Exception as exc:
        return "unclear-error", f"{type(exc).__name__} at load: {str(exc)[:200]}"
    if _imports(before, watch):
        return _imports(before, watch)
    qobj = obj
    Qx = queries if queries is not None else np.random.RandomState(1).rand(4, 8).astype(np.float32)
    if type(obj).__name__ == "GridSearchCV":
        return "handled", "an allowed scikit-learn class was built (no code ran)"
    try:
        if hasattr(obj, "steps") and not hasattr(obj, "kneighbors"):
            Qx = obj[:-1].transform(Qx)
            qobj = obj[-1]
    except Exception as exc:
        return _query_error(exc, "transform")
    if type(obj).__name__ == "GridSearchCV":
        return "handled", "an allowed scikit-learn class was built (no code ran)"
    if not hasattr(qobj, "kneighbors"):
        return ("silent-wrong" if should_refuse else "handled"), f"loaded a {type(obj).__name__}"
    try:
        ind = np.asarray(qobj.kneighbors(Qx, return_distance=False))
    except Exception as exc:
        return _query_error(exc, "query")
    n = getattr(qobj, "n_samples_fit_", None)
    if isinstance(n, (int, np.integer)) and ind.size and (ind.min() < 0 or ind.max() >= n):
        return "silent-wrong", f"loaded; query returned ids outside [0,{n}): {ind[:2].tolist()}"
    if ref is not None and (ind.shape != ref.shape or not np.array_equal(ind, ref)):
        return "silent-wrong", (f"tampered file loaded without error; answers differ from the "
                                f"original: {ind[:1].tolist()} vs {ref[:1].tolist()}")
    return "handled", f"loaded; answers identical to the original ({ind[:1].tolist()})"


_CLEAR = ("n_neighbors", "metric", "n_jobs", "must be", "expected", "corrupt", "mode", "k1", " b ",
          "features", "refus", "invalid", "not a", "shard")


def _query_error(exc, when):
    from skfindkit.io import CorruptFileError
    msg = f"{type(exc).__name__}: {str(exc)[:200]}"
    if isinstance(exc, CorruptFileError):
        return "handled", f"refused at {when}: {msg}"
    if isinstance(exc, (ValueError, TypeError)) and any(w in str(exc) for w in _CLEAR) and \
            "object of type" not in str(exc) and "operand" not in str(exc):
        return "handled", f"loaded; clear error at {when} only: {msg}"
    return "unclear-error", f"loaded without error; {when} then raised {msg}"


def _imports(before, watch):
    new = [m for m in watch if m in sys.modules and m not in before]
    if new:
        return "code-execution", f"load imported {new}"
    return None


# ---------------------------------------------------------------- file probes
def _data():
    import numpy as np
    rng = np.random.RandomState(0)
    return rng.rand(40, 8).astype(np.float32), rng.rand(4, 8).astype(np.float32)


def _base(kind):
    import numpy as np
    from scipy import sparse
    import skfindkit as s
    from sklearn.pipeline import make_pipeline
    from sklearn.decomposition import PCA
    X, Q = _data()
    mk = {"exact": lambda: s.ExactIndex(n_neighbors=3),
          "hnsw": lambda: s.HNSWIndex(n_neighbors=3),
          "annoy": lambda: s.AnnoyIndex(n_neighbors=3, random_state=0),
          "nmslib": lambda: s.NMSLibIndex(n_neighbors=3),
          "faiss": lambda: s.FaissIndex(n_neighbors=3),
          "sharded": lambda: s.ShardedIndex(s.ExactIndex(n_neighbors=3), 2, n_neighbors=3),
          "pipe": lambda: make_pipeline(s.SklearnFeatureExtractor(PCA(4, random_state=0)),
                                        s.ExactIndex(n_neighbors=3))}
    if kind == "bm25":
        C = sparse.csr_matrix(np.random.RandomState(0).poisson(1, (40, 8)).astype(np.float32))
        return s.BM25Index(n_neighbors=3).fit(C), sparse.csr_matrix(Q)
    return mk[kind]().fit(X), Q


BAD_CLASSES = ["builtins.eval", "os.system", "subprocess.Popen", "evilmod.Evil",
               "sklearn.experimental.enable_iterative_imputer.IterativeImputer",
               "sklearn.utils._testing.TempMemmap", "skfindkit.io.UntrustedTypeError",
               "skfindkit.serve._app._Service", "skfindkit.indexes.tests.x.X",
               "sklearn.neighbors.tests.test_neighbors.X", "skfindkit.indexes._base.np",
               "skfindkit.indexes.ExactIndex", "sklearn.neighbors._base.NeighborsBase",
               "skfindkit.indexes._lock.threading.Thread", "skfindkit.loaders.evilmod.Evil",
               "sklearn.pipeline.evilmod.Evil", "skfindkit.indexes._milvus.store",
               "antigravity.X", "this.X", "http.server.HTTPServer", "skfindkit.features.np",
               "sklearn.base.BaseEstimator", "skfindkit.indexes..X", "skfindkit.indexes._exact.",
               "skfindkit.indexes._exact.ExactIndex.__init__", "numpy.random.RandomState",
               "skfindkit.utils._persist.pickle", "skfindkit.utils._persist.CorruptFileError",
               "sklearn.model_selection._search.GridSearchCV",
               "skfindkit.indexes.\u0660x.X", "skfindkit.indexes._test_x.X"]
BAD_FUNCS = ["skfindkit.io.save", "skfindkit.io.load", "os.system", "builtins.exec",
             "skfindkit.utils._native_bytes.load_from_bytes", "skfindkit.demo.main",
             "skfindkit.cli.main", "evilmod.Evil", "skfindkit.features.np.load",
             "sklearn.pipeline.make_pipeline", "skfindkit.io.atomic_write"]


def _set_state_item(tree, key, value):
    items = tree["root"]["state"]["items"]
    for item in items:
        if item[0] == key:
            item[1] = value
            return True
    items.append([key, value])
    return False


def _nodes(node, out):
    if isinstance(node, list):
        for v in node:
            _nodes(v, out)
    elif isinstance(node, dict):
        out.append(node)
        for k, v in node.items():
            _nodes(v, out)
    return out


def probes_files(group, work):
    import copy
    import numpy as np
    kind = group.split("_", 1)[1]
    if kind == "milvus":
        return probes_milvus(work)
    from skfindkit import io
    obj, Q = _base(kind)
    base = os.path.join(work, f"base_{kind}.skfk")
    io.save(obj, base)
    ref = obj.kneighbors(Q, return_distance=False) if hasattr(obj, "kneighbors") else \
        obj[-1].kneighbors(obj[:-1].transform(Q), return_distance=False)
    tree0, blobs0 = parse_file(base)
    raw = open(base, "rb").read()
    probes = []
    counter = [0]

    def path():
        counter[0] += 1
        return os.path.join(work, f"t_{kind}_{counter[0]}.skfk")

    def tree_probe(case, edit, should_refuse=True, **kw):
        def fn():
            tree, blobs = copy.deepcopy(tree0), list(blobs0)
            res = edit(tree, blobs)
            p = path()
            if res is not None and "text" in res:
                write_file(p, tree, blobs, **res)
            else:
                write_file(p, tree, blobs, **(res or {}))
            try:
                return judge_load(p, should_refuse=should_refuse, queries=Q, ref=ref)
            finally:
                os.unlink(p)
        probes.append(("files", f"{kind}: {case}", fn))

    def raw_probe(case, data):
        def fn():
            p = path()
            with open(p, "wb") as fh:
                fh.write(data)
            try:
                return judge_load(p, should_refuse=True, queries=Q)
            finally:
                os.unlink(p)
        probes.append(("files", f"{kind}: {case}", fn))

    # -- raw: truncation, flips, appended bytes (no checksum fix)
    n = len(raw)
    for cut in sorted({0, 7, 8, 23, 24, 40, 64, n // 3, n // 2, n - 17, n - 16, n - 1}):
        raw_probe(f"truncated at {cut}/{n}", raw[:cut])
    for pos in [8, 12, 16, 30, n // 4, n // 2, n - 20, n - 1]:
        b = bytearray(raw)
        b[pos] ^= 0x40
        raw_probe(f"bit flip at {pos}", bytes(b))
    raw_probe("appended 1 byte", raw + b"\0")
    raw_probe("appended 1 MB", raw + bytes(1 << 20))
    raw_probe("pickle header", b"\x80\x04" + raw)
    raw_probe("zip header", b"PK\x03\x04" + raw)

    # -- header edits with checksum recomputed
    tree_probe("version 1", lambda t, b: {"version": 1})
    tree_probe("version 2**32-1", lambda t, b: {"version": 2**32 - 1})
    tree_probe("tree length 2**63", lambda t, b: {"tlen": 2**63})
    tree_probe("tree length 0", lambda t, b: {"tlen": 0})
    tree_probe("reserved nonzero", lambda t, b: {"reserved": 7}, should_refuse=False)
    tree_probe("tree not utf-8", lambda t, b: {"text": b"\xff\xfe" + json.dumps(t).encode()})
    tree_probe("tree is a list", lambda t, b: {"text": b"[1,2,3]"})
    tree_probe("tree NaN literal in an unknown key", lambda t, b: {"text": json.dumps(t).replace('"id":', '"x":NaN,"id":', 1).encode()}, should_refuse=False)
    tree_probe("tree huge int literal", lambda t, b: {"text": json.dumps(t).replace('"id":', '"x":' + "9" * 5000 + ',"id":', 1).encode()})
    tree_probe("tree no root", lambda t, b: t.pop("root") and None)
    tree_probe("JSON nested 100000 deep", lambda t, b: {"text": b'{"root":' + b"[" * 100000 + b"]" * 100000 + b',"blobs":[]}'})
    # -- class / function names
    for name in BAD_CLASSES:
        def ed(t, b, name=name):
            t["root"]["class"] = name
        tree_probe(f"root class -> {name}", ed, should_refuse=not name.startswith("sklearn.model_selection"))
    for name in BAD_FUNCS:
        def ed(t, b, name=name):
            _set_state_item(t, "mode", {"$": "function", "name": name})
        tree_probe(f"function node -> {name}", ed)
    for name in ["evilmod.Evil", "skfindkit.io.UntrustedTypeError", "os.system"]:
        def ed(t, b, name=name):
            _set_state_item(t, "extra", {"$": "object", "class": name, "id": 777, "state": {"$": "dict", "items": []}})
        tree_probe(f"nested object of class {name}", ed)
    # -- nesting
    for depth in [150, 199, 201, 5000, 50000]:
        def ed(t, b, depth=depth):
            _set_state_item(t, "mode", "@@DEEP@@")
            txt = json.dumps(t, separators=(",", ":")).replace('"@@DEEP@@"', "[" * depth + "1" + "]" * depth)
            return {"text": txt.encode()}
        tree_probe(f"list nested {depth} deep", ed, should_refuse=depth > 200)
    for depth in [90, 150]:
        def ed(t, b, depth=depth):
            v = 1
            for _ in range(depth):
                v = {"$": "tuple", "items": [v]}
            _set_state_item(t, "mode", v)
        tree_probe(f"tuple nested {depth} deep", ed)
    # -- block table
    for case, table in [("huge size", lambda tb: [[0, 2**62]] + tb[1:]),
                        ("negative size", lambda tb: [[0, -1]] + tb[1:]),
                        ("float entries", lambda tb: [[0.0, float(tb[0][1])]] + tb[1:]),
                        ("bool entries", lambda tb: [[False, tb[0][1]]] + tb[1:]),
                        ("missing entry", lambda tb: tb[:-1]),
                        ("extra entry", lambda tb: tb + [[tb[-1][0] + 64, 0]]),
                        ("dict table", lambda tb: {"0": tb}),
                        ("offset 2**63", lambda tb: [[2**63, 1]] + tb[1:]),
                        ("swapped", lambda tb: tb[::-1])]:
        def ed(t, b, table=table):
            t["blobs"] = table([list(e) for e in tree0["blobs"]]) if tree0["blobs"] else [[0, 2**62]]
            return {"keep_table": True}
        tree_probe(f"block table {case}", ed)
    # -- array nodes
    arrays = [nd for nd in _nodes(tree0["root"], []) if nd.get("$") == "array"]
    for case, mod in [("dtype O", {"dtype": "|O"}), ("dtype V0 huge shape", {"dtype": "|V0", "shape": [10**12, 10**12]}),
                      ("dtype <U0", {"dtype": "<U0", "shape": [10**15]}), ("dtype (2,3)f4", {"dtype": "(2,3)<f4"}),
                      ("dtype struct with object", {"dtype": "O,i4"}), ("dtype not str", {"dtype": ["<f4"]}),
                      ("dtype bogus", {"dtype": "zz9"}), ("dtype >f4 (byte-swapped)", {"dtype": ">f4"}),
                      ("dtype <f8 half rows", {"dtype": "<f8"}), ("shape negative", {"shape": [-1]}),
                      ("shape huge", {"shape": [2**62, 2**62]}), ("shape bool", {"shape": [True]}),
                      ("blob out of range", {"blob": 10**6}), ("blob negative", {"blob": -1}),
                      ("blob bool", {"blob": True}), ("dtype M8[as]", {"dtype": "<M8[as]"})]:
        def ed(t, b, mod=mod):
            nodes = [nd for nd in _nodes(t["root"], []) if nd.get("$") == "array"]
            if not nodes:
                _set_state_item(t, "mode", {"$": "array", "id": 555, "blob": 0, "dtype": "<f4", "shape": [1], **mod})
                b.append(b"\0\0\0\0")
            else:
                nodes[0].update(mod)
        tree_probe(f"array {case}", ed)

    # zero-size block + V0 array with huge shape placed where data is read
    def ed(t, b):
        b.append(b"")
        _set_state_item(t, "mode", {"$": "array", "id": 556, "blob": len(b) - 1, "dtype": "|V0", "shape": [10**9, 10**9]})
    tree_probe("empty block as V0 array 1e18 elements", ed)
    # -- other node kinds
    others = {
        "float nan": {"$": "float", "v": "nan"}, "float 1e999": {"$": "float", "v": "1e999"},
        "float hex": {"$": "float", "v": "0x10"}, "float int": {"$": "float", "v": 5},
        "scalar V0": {"$": "scalar", "dtype": "|V0", "hex": ""}, "scalar O": {"$": "scalar", "dtype": "|O", "hex": "00" * 8},
        "scalar bad hex": {"$": "scalar", "dtype": "<f4", "hex": "zz"},
        "ref unknown": {"$": "ref", "id": 123456789}, "ref bool": {"$": "ref", "id": True},
        "dict bad items": {"$": "dict", "items": [[1]]}, "dict unhashable key": {"$": "dict", "items": [[[1], 2]]},
        "sparse huge shape": {"$": "sparse", "format": "csr", "shape": [2**62, 2**62],
                              "data": [], "indices": [], "indptr": []},
        "sparse no parts": {"$": "sparse", "format": "csr", "shape": [2, 2]},
        "sparse coo": {"$": "sparse", "format": "coo", "shape": [1, 1], "data": [1.0], "indices": [0], "indptr": [0, 1]},
        "sparse index out of range": {"$": "sparse", "format": "csr", "shape": [1, 1], "data": [1.0], "indices": [5], "indptr": [0, 1]},
        "RandomState bad": {"$": "RandomState", "state": [1, 2, 3]},
        "RandomState str": {"$": "RandomState", "state": "MT19937"},
        "objarray huge shape": {"$": "objarray", "id": 558, "shape": [10**10], "items": [1]},
        "objarray shape str": {"$": "objarray", "id": 559, "shape": "x", "items": [1]},
        "unknown tag": {"$": "eval", "v": "1+1"}, "tag not str": {"$": 5},
        "nptype O": {"$": "nptype", "v": "|O"}, "dtype V2**40": {"$": "dtype", "v": "V1099511627776"},
        "bytes blob str": {"$": "bytes", "blob": "0"}, "function name int": {"$": "function", "name": 3},
        "object class int": {"$": "object", "class": 3, "id": 560, "state": {"$": "dict", "items": []}},
        "object state list": {"$": "object", "class": "skfindkit.indexes._exact.ExactIndex", "id": 561, "state": []},
        "object duplicate id": {"$": "object", "class": "skfindkit.indexes._exact.ExactIndex", "id": 10**6, "state": {"$": "dict", "items": []}},
    }
    for case, node in others.items():
        def ed(t, b, node=node):
            _set_state_item(t, "mode", node)
        tree_probe(f"node {case}", ed)

    def ed(t, b):  # self-reference: a cycle through the state
        _set_state_item(t, "mode", [{"$": "ref", "id": 10**6}])
    tree_probe("state refers to its own object (cycle)", ed)

    def ed(t, b):  # a billion-laughs of refs: list of many refs to the same big list
        _set_state_item(t, "mode", {"$": "tuple", "items": [[{"$": "ref", "id": 10**6}] * 1000] * 1})
    tree_probe("many refs to root", ed)
    # -- JSON text mutations with checksum recomputed
    text0 = json.dumps(tree0, separators=(",", ":"))
    rng = np.random.RandomState(hash(kind) % 1000)
    for j in range(12):
        pos = int(rng.randint(0, len(text0)))
        ch = "0123456789\"[]{},:x-."[rng.randint(0, 20)]
        txt = text0[:pos] + ch + text0[pos + 1:]

        def ed(t, b, txt=txt):
            return {"text": txt.encode(), "keep_table": True}
        tree_probe(f"tree char {pos} -> {ch!r}", ed)
    # -- data blocks altered, checksum recomputed (estimator seals must catch)
    for j in range(min(len(blobs0), 6)):
        def ed(t, b, j=j):
            bb = bytearray(b[j])
            if bb:
                bb[len(bb) // 2] ^= 0xFF
            b[j] = bytes(bb)
        tree_probe(f"block {j} byte flipped, file checksum recomputed", ed)
    probes.extend(_reseal_probes(kind, obj, Q, work, path))
    return probes


def _reseal_probes(kind, obj, Q, work, path):
    import numpy as np
    from skfindkit.utils._persist import NativeBlob
    probes = []
    if kind == "pipe":
        idx = obj.steps[0][1]
        return _pipe_probes(obj, Q, work, path)

    def rp(case, changes, should_refuse=True):
        def fn():
            st = reseal(obj, changes() if callable(changes) else changes)
            tree, blobs = encode_state(type(obj), st)
            p = path()
            write_file(p, tree, blobs)
            try:
                return judge_load(p, should_refuse=should_refuse, queries=Q, ref=ref)
            finally:
                os.unlink(p)
        probes.append(("files", f"{kind} (seal recomputed): {case}", fn))

    ref = obj.kneighbors(Q, return_distance=False)
    n, f = obj.n_samples_fit_, obj.n_features_in_
    rp("unchanged state re-encoded", {}, should_refuse=False)
    for v in [0, 1, n - 1, n + 1, -1, 10**12, 3 * 10**8, 2**62, 2.5, True, "40", None]:
        rp(f"n_samples_fit_={v!r}", {"n_samples_fit_": v})
    for v in [0, f - 1, f + 1, -1, 10**9, 8.0]:
        rp(f"n_features_in_={v!r}", {"n_features_in_": v})
    for v in [0, -1, 2.5, True, 10**9, "3", float("nan")]:
        rp(f"n_neighbors={v!r}", {"n_neighbors": v})
    for v in ["bogus", 5, None]:
        rp(f"metric_={v!r}", {"metric_": v})
    rp("_fit_y wrong length", {"_fit_y": np.arange(n - 3)})
    rp("_fit_y object-like strings", {"_fit_y": np.array(["a"] * n)}, should_refuse=False)
    rp("_fit_keys wrong length", {"_fit_keys": ["k"] * (n + 2)})
    rp("_zero_rows out of range", {"_zero_rows": np.array([10**9, -5])})
    rp("_scale nan", {"_scale": float("nan")})
    rp("_fit_params garbage", {"_fit_params": {"x": [1, 2]}})
    rp("n_jobs=10**6", {"n_jobs": 10**6})
    rp("mode bogus", {"mode": "bogus"})
    st = obj.__getstate__()
    if "_fit_X" in st and st["_fit_X"] is not None:
        X = st["_fit_X"]
        if hasattr(X, "toarray"):
            from scipy import sparse
            rp("_fit_X sparse wrong shape", {"_fit_X": sparse.csr_matrix(np.ones((n, f + 3), np.float32))})
            bad = X.copy()
            bad.data[:] = -1e30
            rp("_fit_X sparse negative counts", {"_fit_X": bad})
            bad = X.copy()
            bad.data[:] = np.nan
            rp("_fit_X sparse NaN counts", {"_fit_X": bad})
            for v in [-1.0, float("nan"), 1e308]:
                rp(f"k1={v}", {"k1": v})
                rp(f"b={v}", {"b": v})
        else:
            rp("_fit_X wrong shape", {"_fit_X": np.ones((n, f + 1), np.float32)})
            rp("_fit_X float64", {"_fit_X": X.astype(np.float64)})
            rp("_fit_X NaN", {"_fit_X": np.full_like(X, np.nan)})
            rp("_fit_X fortran", {"_fit_X": np.asfortranarray(X)}, should_refuse=False)
            rp("_fit_X 1-d", {"_fit_X": X.ravel()})
            rp("_fit_X int", {"_fit_X": X.astype(np.int32)})
    if kind == "sharded":
        shards = list(obj.__getstate__()["shards_"])
        rp("one shard dropped", {"shards_": shards[:1]})
        rp("shards duplicated", {"shards_": shards + shards})
        rp("shards not a list", {"shards_": 5})
        rp("shard replaced by None", {"shards_": [None] * len(shards)})
        ids = obj.__getstate__()["shard_ids_"]
        rp("shard_ids_ shuffled", {"shard_ids_": [np.asarray(i)[::-1].copy() for i in ids] if isinstance(ids, list) else ids[::-1].copy()})
        rp("shard_ids_ out of range", {"shard_ids_": [np.full(len(np.asarray(i)), 10**9) for i in ids] if isinstance(ids, list) else np.full(len(ids), 10**9)})
        rp("n_shards=0", {"n_shards": 0})
    blob = st.get("_index_blob")
    if isinstance(blob, NativeBlob):
        backend = blob.kind
        payload = blob.payload
        rp("_index_blob None (rebuild)", {"_index_blob": None})
        rp("blob kind swapped", lambda: {"_index_blob": NativeBlob("faiss" if backend != "faiss" else "annoy", np.zeros(64, np.uint8))})
        rp("blob payload not bytes", lambda: {"_index_blob": _blob_with(backend, np.zeros(8, np.float64))})
        if isinstance(payload, dict):
            probes.extend(_dict_payload_probes(kind, obj, rp, backend, payload, n))
        else:
            pl = np.asarray(payload).copy()
            rng = np.random.RandomState(7)
            rp("payload truncated half", lambda: {"_index_blob": _blob_with(backend, pl[:len(pl) // 2].copy())})
            rp("payload truncated -4", lambda: {"_index_blob": _blob_with(backend, pl[:-4].copy())})
            rp("payload + 64 bytes", lambda: {"_index_blob": _blob_with(backend, np.concatenate([pl, np.full(64, 0xff, np.uint8)]))})
            rp("payload zeros", lambda: {"_index_blob": _blob_with(backend, np.zeros_like(pl))})
            rp("payload 0xff", lambda: {"_index_blob": _blob_with(backend, np.full_like(pl, 0xff))})
            rp("payload empty", lambda: {"_index_blob": _blob_with(backend, pl[:0].copy())})
            words = len(pl) // 4
            for j in range(36):
                pos = int(rng.randint(0, words)) * 4
                val = [0x7FFFFFFF, -1, n, n + 1, 10**6, -(2**31), 0][j % 7]

                def ch(pos=pos, val=val):
                    q = pl.copy()
                    q[pos:pos + 4] = np.frombuffer(np.int32(val).tobytes(), np.uint8)
                    return {"_index_blob": _blob_with(backend, q)}
                rp(f"payload int32 at byte {pos} = {val}", ch, should_refuse=False)
            for pos in list(range(len(pl) - 4, len(pl) // 2, -4))[:400:20]:  # floats of split nodes / tail
                def ch(pos=pos):
                    q = pl.copy()
                    q[pos:pos + 4] = np.frombuffer(np.float32(np.nan).tobytes(), np.uint8)
                    return {"_index_blob": _blob_with(backend, q)}
                rp(f"payload float32 NaN at byte {pos}", ch, should_refuse=False)
            frng = np.random.RandomState(11)
            for j in range(40):  # random multi-byte fuzz
                spots = frng.randint(0, len(pl), size=frng.randint(1, 5))
                vals = frng.randint(0, 256, size=len(spots)).astype(np.uint8)

                def ch(spots=spots, vals=vals):
                    q = pl.copy()
                    q[spots] = vals
                    return {"_index_blob": _blob_with(backend, q)}
                rp(f"payload random bytes {spots.tolist()} = {vals.tolist()}", ch, should_refuse=False)
            for j in range(8):  # the header area
                pos = j * 4

                def ch(pos=pos):
                    q = pl.copy()
                    q[pos:pos + 4] = np.frombuffer(np.int32(0x7FFFFFF0).tobytes(), np.uint8)
                    return {"_index_blob": _blob_with(backend, q)}
                rp(f"payload header word {pos} = 0x7ffffff0", ch, should_refuse=False)
    return probes


def _blob_with(kind, payload):
    from skfindkit.utils._persist import NativeBlob
    b = NativeBlob(kind, b"")
    b.payload = payload
    return b


def _dict_payload_probes(kind, obj, rp, backend, payload, n):
    import numpy as np
    probes = []

    def with_(**kw):
        def make():
            p = dict(payload)
            for k, v in kw.items():
                if v is DELETE:
                    p.pop(k, None)
                else:
                    p[k] = v
            return {"_index_blob": _blob_with(backend, p)}
        return make
    for key, val in list(payload.items()):
        if isinstance(val, np.ndarray):
            if val.dtype == np.uint8 and val.ndim == 1:
                alts = {"truncated": val[:len(val) // 2].copy(), "empty": val[:0].copy(),
                        "longer": np.concatenate([val, np.zeros(64, np.uint8)])}
            else:
                alts = {"truncated": val[:len(val) // 2].copy(), "reversed": val[::-1].copy(),
                        "huge values": np.full_like(val, np.iinfo(val.dtype).max if val.dtype.kind in "iu" else 1e30),
                        "negative": (np.full_like(val, -1) if val.dtype.kind in "if" else val.copy())}
            for what, alt in alts.items():
                rp(f"{backend} {key} {what}", with_(**{key: alt}))
        elif isinstance(val, bool):
            rp(f"{backend} {key} flipped", with_(**{key: not val}), should_refuse=False)
        elif isinstance(val, int):
            for alt in sorted({val + 1, val - 1, 0, -1, 2**31, 2**63 - 1, 2**64}):
                rp(f"{backend} {key}={alt}", with_(**{key: alt}), should_refuse=False)
        elif isinstance(val, float):
            for alt in [0.0, -1.0, float("nan"), float("inf")]:
                rp(f"{backend} {key}={alt}", with_(**{key: alt}), should_refuse=False)
        elif isinstance(val, str):
            for alt in ["ip", "cosine", "bogus", ""]:
                rp(f"{backend} {key}={alt!r}", with_(**{key: alt}), should_refuse=False)
        rp(f"{backend} {key} missing", with_(**{key: DELETE}))
    if backend == "hnswlib":
        d0 = payload["data_level0"]
        size = payload["size_data_per_element"]
        off = payload["offset_data"]
        for e in [0, 5, n - 1]:
            for slot, val in [(0, 0xFFFF), (1, 10**6), (1, n), (1, 0x7FFFFFFF), (2, 0xFFFFFFFF)]:
                def ch(e=e, slot=slot, val=val):
                    q = d0.copy()
                    pos = e * size + payload["offset_level0"] + slot * 4
                    q[pos:pos + 4] = np.frombuffer(np.uint32(val).tobytes(), np.uint8)
                    return {"_index_blob": _blob_with(backend, dict(payload, data_level0=q))}
                rp(f"hnswlib level-0 links of element {e}, word {slot} = {val}", ch, should_refuse=False)
        ll = payload["link_lists"]
        for pos, val in [(0, 0xFFFF), (4, 10**6), (4, n), (8, 0xFFFFFFFF)]:
            if pos + 4 <= len(ll):
                def ch(pos=pos, val=val):
                    q = ll.copy()
                    q[pos:pos + 4] = np.frombuffer(np.uint32(val).tobytes(), np.uint8)
                    return {"_index_blob": _blob_with(backend, dict(payload, link_lists=q))}
                rp(f"hnswlib upper link_lists word {pos} = {val}", ch, should_refuse=False)
        lv = payload["element_levels"]
        rp("hnswlib element_levels all 5", with_(element_levels=np.full_like(lv, 5)))
        rp("hnswlib element_levels all 0 (links dropped)", with_(element_levels=np.zeros_like(lv)), should_refuse=False)
        rp("hnswlib label_lookup swapped", with_(label_lookup_external=payload["label_lookup_external"][::-1].copy()), should_refuse=False)
    if backend == "nmslib":
        for part in ["file", "file.dat"]:
            pl = payload[part]
            rng = np.random.RandomState(3)
            for j in range(14):
                pos = int(rng.randint(0, max(1, len(pl) // 4))) * 4
                val = [0x7FFFFFFF, -1, n, 10**6, -(2**31), 0, n + 1][j % 7]

                def ch(pos=pos, val=val, part=part, pl=pl):
                    q = pl.copy()
                    q[pos:pos + 4] = np.frombuffer(np.int32(val).tobytes(), np.uint8)
                    return {"_index_blob": _blob_with(backend, dict(payload, **{part: q}))}
                rp(f"nmslib {part} int32 at {pos} = {val}", ch, should_refuse=False)
            for pos in range(0, 32, 4):
                def ch(pos=pos, part=part, pl=pl):
                    q = pl.copy()
                    q[pos:pos + 4] = np.frombuffer(np.int32(0x7FFFFFF0).tobytes(), np.uint8)
                    return {"_index_blob": _blob_with(backend, dict(payload, **{part: q}))}
                rp(f"nmslib {part} header word {pos} = 0x7ffffff0", ch, should_refuse=False)
    return probes


def _pipe_probes(pipe, Q, work, path):
    import copy
    import numpy as np
    from skfindkit import io
    probes = []
    base = os.path.join(work, "base_pipe.skfk")
    tree0, blobs0 = parse_file(base)
    ref = pipe[-1].kneighbors(pipe[:-1].transform(Q), return_distance=False)

    def find(tree, clsfrag):
        return [nd for nd in _nodes(tree["root"], []) if nd.get("$") == "object" and clsfrag in nd.get("class", "")]

    def setitem(node, key, value):
        for item in node["state"]["items"]:
            if item[0] == key:
                item[1] = value
                return
        node["state"]["items"].append([key, value])

    def arr(blobs, a, ident):
        a = np.ascontiguousarray(a)
        blobs.append(a.tobytes())
        return {"$": "array", "id": ident, "blob": len(blobs) - 1, "dtype": a.dtype.str, "shape": list(a.shape)}

    cases = {
        "PCA components_ transposed": lambda t, b: setitem(find(t, "PCA")[0], "components_", arr(b, np.ones((8, 4), np.float64), 901)),
        "PCA mean_ wrong length": lambda t, b: setitem(find(t, "PCA")[0], "mean_", arr(b, np.ones(3), 902)),
        "PCA components_ NaN": lambda t, b: setitem(find(t, "PCA")[0], "components_", arr(b, np.full((4, 8), np.nan), 903)),
        "PCA n_components_ 10**9": lambda t, b: setitem(find(t, "PCA")[0], "n_components_", 10**9),
        "extractor estimator -> ExactIndex": lambda t, b: setitem(find(t, "SklearnFeatureExtractor")[0], "estimator", {"$": "object", "class": "skfindkit.indexes._exact.ExactIndex", "id": 904, "state": {"$": "dict", "items": []}}),
        "pipeline steps not a list": lambda t, b: setitem(find(t, "sklearn.pipeline.Pipeline")[0], "steps", 5),
        "pipeline steps empty": lambda t, b: setitem(find(t, "sklearn.pipeline.Pipeline")[0], "steps", []),
        "pipeline memory path": lambda t, b: setitem(find(t, "sklearn.pipeline.Pipeline")[0], "memory", os.path.join(work, "memdir")),
        "extractor n_jobs 10**6": lambda t, b: setitem(find(t, "SklearnFeatureExtractor")[0], "n_jobs", 10**6),
        "extractor batch_size -1": lambda t, b: setitem(find(t, "SklearnFeatureExtractor")[0], "batch_size", -1),
    }
    for case, ed in cases.items():
        def fn(ed=ed, case=case):
            tree, blobs = copy.deepcopy(tree0), list(blobs0)
            ed(tree, blobs)
            p = path()
            write_file(p, tree, blobs)
            try:
                out = judge_load(p, should_refuse=True, queries=Q, ref=ref)
                if case == "pipeline memory path" and os.path.exists(os.path.join(work, "memdir")):
                    return "disclosure", "a file-named cache folder was written: " + out[1]
                return out
            finally:
                os.unlink(p)
        probes.append(("files", f"pipe (file checksum recomputed): {case}", fn))
    return probes


def probes_milvus(work):
    """A MilvusIndex state naming a server (an endpoint from the file) must need consent."""
    import socket
    import threading
    import numpy as np
    import skfindkit as s
    from skfindkit.utils._persist import NativeBlob, seal_state
    probes = []
    Q = np.random.RandomState(1).rand(4, 8).astype(np.float32)
    for variant in ["plain", "with keys"]:
        def fn(variant=variant):
            srv = socket.socket()
            srv.bind(("127.0.0.1", 0))
            srv.listen(5)
            srv.settimeout(3)
            port = srv.getsockname()[1]
            hits = []

            def accept():
                try:
                    c, _ = srv.accept()
                    hits.append(1)
                    c.close()
                except OSError:
                    pass
            th = threading.Thread(target=accept, daemon=True)
            th.start()
            idx = s.MilvusIndex.__new__(s.MilvusIndex)
            ref = json.dumps({"uri": f"http://127.0.0.1:{port}", "name": "c", "token": "t", "lite": False}).encode() + b"\n"
            proto = s.MilvusIndex()
            state = {k: v for k, v in vars(proto).items()}
            state.update(n_samples_fit_=40, n_features_in_=8, metric_="euclidean", _scale=1.0,
                         _zero_rows=np.zeros(0, np.int64), _fit_y=None, _fit_keys=None, _fit_params={},
                         _index_blob=NativeBlob("milvus", np.frombuffer(ref, np.uint8)))
            state = seal_state(state)
            tree, blobs = encode_state(s.MilvusIndex, state)
            p = os.path.join(work, f"milvus_{variant.replace(' ', '')}.skfk")
            write_file(p, tree, blobs)
            out = judge_load(p, should_refuse=True, queries=Q)
            th.join(4)
            srv.close()
            if hits:
                return "disclosure", f"load connected to the file's endpoint 127.0.0.1:{port} ({out})"
            return out
        probes.append(("files", f"milvus: file names a server endpoint ({variant})", fn))
    return probes


# ---------------------------------------------------------------- parameters
def probes_parameters(group, work):
    import numpy as np
    import skfindkit as s
    X, Q = _data()
    classes = {"ExactIndex": s.ExactIndex, "HNSWIndex": s.HNSWIndex, "AnnoyIndex": s.AnnoyIndex,
               "NMSLibIndex": s.NMSLibIndex, "FaissIndex": s.FaissIndex,
               "ShardedIndex": lambda **kw: s.ShardedIndex(s.ExactIndex(), 2, **kw)}
    bad_k = [0, -1, 2.5, True, False, 10**9, "3", float("nan"), None]
    bad_jobs = [10**6, -10**6, 0, 2.5, True, "4", 10**3]
    probes = []

    def judge(make, what, ok_values_ok=False):
        def fn():
            try:
                est = make()
                est.fit(X)
                ind = est.kneighbors(Q, return_distance=False)
            except (ValueError, TypeError) as exc:
                if what.split("=")[0] in str(exc):
                    return "handled", f"{type(exc).__name__}: {str(exc)[:150]}"
                return "unclear-error", f"{type(exc).__name__} not naming {what.split('=')[0]}: {str(exc)[:150]}"
            except Exception as exc:
                return "unclear-error", f"{type(exc).__name__}: {str(exc)[:150]}"
            if ok_values_ok:
                return "handled", f"accepted, shape {np.shape(ind)}"
            return "silent-wrong", f"accepted {what}: answered shape {np.shape(ind)}"
        return fn

    for cname, cls in classes.items():
        for k in bad_k:
            ok = k is None
            probes.append(("parameters", f"{cname}(n_neighbors={k!r})", judge(lambda cls=cls, k=k: cls(n_neighbors=k), f"n_neighbors={k!r}", ok)))
        for j in bad_jobs:
            probes.append(("parameters", f"{cname}(n_jobs={j!r})", judge(lambda cls=cls, j=j: cls(n_jobs=j), f"n_jobs={j!r}", type(j) is int and j != 0)))
        for k in [0, -1, 2.5, True, 10**9, "3", np.int64(3), np.float64(3.0)]:
            def fn(cls=cls, k=k):
                est = cls().fit(X)
                try:
                    ind = est.kneighbors(Q, n_neighbors=k, return_distance=False)
                except (ValueError, TypeError) as exc:
                    good = "n_neighbors" in str(exc) or "k" in str(exc)
                    return ("handled" if good else "unclear-error"), f"{type(exc).__name__}: {str(exc)[:150]}"
                except Exception as exc:
                    return "unclear-error", f"{type(exc).__name__}: {str(exc)[:150]}"
                if isinstance(k, np.integer):
                    return "handled", f"accepted numpy int, shape {np.shape(ind)}"
                return "silent-wrong", f"kneighbors(n_neighbors={k!r}) accepted: shape {np.shape(ind)}"
            probes.append(("parameters", f"{cname}.kneighbors(n_neighbors={k!r})", fn))
    from scipy import sparse
    C = sparse.csr_matrix(np.random.RandomState(0).poisson(1, (40, 8)).astype(np.float32))
    for k in bad_k:
        def fn(k=k):
            try:
                s.BM25Index(n_neighbors=k).fit(C).kneighbors(C[:2], return_distance=False)
            except (ValueError, TypeError) as exc:
                return ("handled" if "n_neighbors" in str(exc) else "unclear-error"), str(exc)[:150]
            except Exception as exc:
                return "unclear-error", f"{type(exc).__name__}: {str(exc)[:150]}"
            return ("handled" if k is None else "silent-wrong"), f"BM25Index(n_neighbors={k!r}) accepted"
        probes.append(("parameters", f"BM25Index(n_neighbors={k!r})", fn))
    for v in [-1.0, float("nan"), float("inf"), "x"]:
        for p in ["k1", "b"]:
            def fn(v=v, p=p):
                try:
                    ind = s.BM25Index(**{p: v}).fit(C).kneighbors(C[:2], return_distance=False)
                except (ValueError, TypeError) as exc:
                    return ("handled" if p in str(exc) else "unclear-error"), str(exc)[:150]
                except Exception as exc:
                    return "unclear-error", f"{type(exc).__name__}: {str(exc)[:150]}"
                return "silent-wrong", f"BM25Index({p}={v!r}) accepted, answered {ind[:1].tolist()}"
            probes.append(("parameters", f"BM25Index({p}={v!r})", fn))
    return probes


# ---------------------------------------------------------------- concurrency
def probes_concurrency(group, work):
    import pickle
    import threading
    import numpy as np
    import skfindkit as s
    from skfindkit import io
    X, Q = _data()
    makers = {"ExactIndex": lambda: s.ExactIndex(n_neighbors=1), "HNSWIndex": lambda: s.HNSWIndex(n_neighbors=1),
              "AnnoyIndex": lambda: s.AnnoyIndex(n_neighbors=1), "NMSLibIndex": lambda: s.NMSLibIndex(n_neighbors=1),
              "FaissIndex": lambda: s.FaissIndex(n_neighbors=1),
              "ShardedIndex": lambda: s.ShardedIndex(s.ExactIndex(), 2, n_neighbors=1)}
    probes = []
    for name, mk in makers.items():
        saved = []

        def run(name=name, mk=mk, saved=saved):
            rng = np.random.RandomState(5)
            est = mk().fit(X)
            batches = [rng.rand(5, 8).astype(np.float32) for _ in range(12)]
            errors = []

            def writer():
                for b in batches:
                    try:
                        est.partial_fit(b)
                    except Exception as exc:
                        errors.append(f"partial_fit: {type(exc).__name__}: {exc}"[:150])
                        return
            th = threading.Thread(target=writer)
            th.start()
            for i in range(12):
                p = os.path.join(work, f"conc_{name}_{i}.skfk")
                try:
                    io.save(est, p)
                    saved.append(("safe", p))
                    data = pickle.dumps(est)
                    pp = p + ".pkl"
                    open(pp, "wb").write(data)
                    saved.append(("pickle", pp))
                except Exception as exc:
                    errors.append(f"save: {type(exc).__name__}: {exc}"[:150])
            th.join(60)
            if errors:
                return "unusable-save", "; ".join(errors[:2])
            return "handled", f"{len(saved)} snapshots taken during partial_fit"
        probes.append(("concurrency", f"{name}: save+pickle during partial_fit", run))
        for i in range(24):
            def load(i=i, saved=saved, name=name):
                if i >= len(saved):
                    return "handled", "no snapshot (fewer taken)"
                kind, p = saved[i]
                try:
                    est = io.load(p) if kind == "safe" else pickle.load(open(p, "rb"))
                except Exception as exc:
                    return "unusable-save", f"{kind} snapshot {os.path.basename(p)} does not load: {type(exc).__name__}: {str(exc)[:200]}"
                n = est.n_samples_fit_
                allX = np.vstack([X] + [np.random.RandomState(5).rand(5, 8).astype(np.float32) for _ in range(0)])
                try:
                    # every row of the snapshot must find itself
                    fitX = getattr(est, "_fit_X", None)
                    if fitX is None or not isinstance(fitX, np.ndarray):
                        ind = est.kneighbors(X[:3], n_neighbors=1, return_distance=False)
                        if ind.ravel().tolist() != [0, 1, 2]:
                            return "silent-wrong", f"first rows do not find themselves: {ind.ravel().tolist()}"
                        return "handled", f"loaded n={n}, first rows find themselves"
                    if fitX.shape[0] != n:
                        return "unusable-save", f"n_samples_fit_={n} but data has {fitX.shape[0]} rows"
                    d, ind = est.kneighbors(fitX[-3:], n_neighbors=1)
                    if not np.allclose(d[:, 0], 0, atol=1e-3):
                        return "silent-wrong", f"last rows do not find themselves: {d.ravel().tolist()} {ind.ravel().tolist()}"
                except Exception as exc:
                    return "unusable-save", f"query failed: {type(exc).__name__}: {str(exc)[:200]}"
                finally:
                    os.unlink(p)
                return "handled", f"{kind} snapshot loaded, n={n}, consistent"
            probes.append(("concurrency", f"{name}: load snapshot {i}", load))
    return probes

# ---------------------------------------------------------------- service
def _png(w, h, color=0, real=True):
    import io as _io
    import struct
    import zlib
    if real:
        from PIL import Image
        buf = _io.BytesIO()
        Image.new("RGB", (w, h), (color, 255 - color, (color * 7) % 256)).save(buf, "PNG")
        return buf.getvalue()

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _gif(w, h):
    import struct
    return b"GIF89a" + struct.pack("<HH", w, h) + b"\x80\x00\x00" + b"\0" * 6 + b",\0\0\0\0" + \
        struct.pack("<HH", w, h) + b"\0\x02\x02\x44\x01\0;"


def _bmp(w, h):
    import struct
    return b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 0, 0, 0, 0)


def probes_service(group, work):
    import socket
    import threading
    import numpy as np
    import httpx
    import uvicorn
    import skfindkit as s
    from sklearn.pipeline import make_pipeline
    from skfindkit.serve import create_app
    items = os.path.join(work, "items")
    outside = os.path.join(work, "outside")
    os.makedirs(items, exist_ok=True)
    os.makedirs(outside, exist_ok=True)
    secret = b"TOP-SECRET-" + os.urandom(8).hex().encode()
    for name in ["secret.png", "secret.txt"]:
        with open(os.path.join(outside, name), "wb") as fh:
            fh.write(_png(8, 8, 3) + secret if name.endswith(".png") else secret)
    files = []
    for j in range(8):
        p = os.path.join(items, f"img{j}.png")
        open(p, "wb").write(_png(8, 8, j * 30))
        files.append(p)
    os.symlink(os.path.join(outside, "secret.png"), os.path.join(items, "link.png"))
    os.makedirs(os.path.join(items, "sub"), exist_ok=True)
    os.symlink(outside, os.path.join(items, "sub", "dirlink"))
    hostile_keys = ["../outside/secret.png", os.path.join(outside, "secret.png"), "link.png",
                    "%2e%2e/outside/secret.png", "..\\outside\\secret.png", "sub/../../outside/secret.png",
                    "sub/dirlink/secret.png", "/etc/passwd", "file://" + os.path.join(outside, "secret.png"),
                    "..%2Foutside%2Fsecret.png", "%252e%252e/outside/secret.png", "img0.png\x00../outside/secret.png",
                    "C:\\outside\\secret.png", "~/secret.png", "sub/%2e%2e/%2e%2e/outside/secret.png",
                    "/proc/self/environ"]
    all_files = files + [files[j % 8] for j in range(len(hostile_keys))]
    keys = [os.path.basename(p) for p in files] + hostile_keys
    pipe = make_pipeline(s.ImageLoader(size=(8, 8), flatten=True), s.ExactIndex(n_neighbors=3))
    pipe.fit(all_files)
    s.attach_keys(pipe, keys)
    W, R = "w" * 24, "r" * 24
    app = create_app(pipe, items_dir=items, token=W, read_token=R, max_upload_bytes=2 << 20,
                     max_pixels=1_000_000)
    vpipe = s.ExactIndex(n_neighbors=3).fit(np.random.RandomState(0).rand(20, 4).astype(np.float32))
    vapp = create_app(vpipe, items_dir=items, token=W)

    def start(a):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        cfg = uvicorn.Config(a, log_level="critical", lifespan="on")
        srv = uvicorn.Server(cfg)
        th = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
        th.start()
        for _ in range(100):
            if srv.started:
                break
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}", srv
    url, srv1 = start(app)
    vurl, srv2 = start(vapp)
    client = httpx.Client(timeout=20)
    rb = {"Authorization": f"Bearer {R}"}
    wb = {"Authorization": f"Bearer {W}"}
    good_png = _png(8, 8, 60)
    probes = []

    def still_ok():
        r1 = client.post(url + "/search", files={"file": ("q.png", good_png, "image/png")}, headers=rb)
        r2 = client.post(vurl + "/search", json={"vector": [0.1, 0.2, 0.3, 0.4]})
        return r1.status_code == 200 and r2.status_code == 200, (r1.status_code, r2.status_code)

    def check(case, do, expect, forbid_secret=True):
        def fn():
            try:
                r = do()
            except httpx.HTTPError as exc:
                return "hang", f"request failed: {type(exc).__name__}: {exc}"
            body = r.content
            if forbid_secret and (secret in body or b"root:x:0:0" in body or b"PATH=" in body):
                return "disclosure", f"status {r.status_code}, body leaks file content: {body[:80]!r}"
            ok, codes = still_ok()
            if not ok:
                return "crash", f"after this request the good requests answered {codes}"
            if r.status_code >= 500:
                return "unclear-error", f"status {r.status_code}: {body[:200]!r}"
            exp = expect if isinstance(expect, (set, tuple, list)) else {expect}
            if r.status_code not in exp:
                kind = "disclosure" if r.status_code == 200 else "unclear-error"
                return kind, f"status {r.status_code}, expected {sorted(exp)}: {body[:150]!r}"
            return "handled", f"status {r.status_code}"
        probes.append(("service", case, fn))

    # --- tokens
    endpoints = [("GET", "/"), ("GET", "/info"), ("GET", "/items/0"), ("GET", "/docs"), ("GET", "/openapi.json"),
                 ("POST", "/search")]
    for meth, ep in endpoints:
        for label, hdr, exp in [("no token", {}, 401), ("wrong bearer", {"Authorization": "Bearer nope"}, 401),
                                ("bare Bearer", {"Authorization": "Bearer"}, 401),
                                ("read token prefix", {"Authorization": f"Bearer {R[:-1]}"}, 401),
                                ("basic wrong", {"Authorization": "Basic " + __import__("base64").b64encode(b"u:nope").decode()}, 401),
                                ("token as query", None, 401),
                                ("read bearer", rb, (200, 404) if ep in ("/docs", "/openapi.json") else 200)]:
            def do(meth=meth, ep=ep, hdr=hdr, label=label):
                u = url + ep + (f"?token={R}&access_token={R}" if label == "token as query" else "")
                if meth == "GET":
                    return client.get(u, headers=hdr or {})
                return client.post(u, files={"file": ("q.png", good_png, "image/png")}, headers=hdr or {})
            check(f"{meth} {ep} with {label}", do, exp)
    check("GET /health without token (must not show details)", lambda: client.get(url + "/health"), 200)

    def health_leak():
        r = client.get(url + "/health")
        if set(r.json()) - {"status"}:
            return "disclosure", f"/health without token shows {sorted(r.json())}"
        return "handled", "only status"
    probes.append(("service", "/health without token shows only status", health_leak))
    import base64
    for label, hdr, exp in [("no token", {}, 401), ("read token", rb, 403), ("wrong token", {"Authorization": "Bearer x"}, (401, 403)),
                            ("basic write token", {"Authorization": "Basic " + base64.b64encode(f"u:{W}".encode()).decode()}, 401),
                            ("lowercase bearer", {"Authorization": f"bearer {W}"}, (201, 401)),
                            ("two tokens", {"Authorization": f"Bearer {R} {W}"}, (401, 403))]:
        check(f"POST /items with {label}",
              lambda hdr=hdr: client.post(url + "/items", files={"file": ("a.png", good_png, "image/png")}, headers=hdr), exp)
    check("POST /items on vector server without token",
          lambda: client.post(vurl + "/items", json={"vectors": [[0.1] * 4]}), 401)
    # --- items and path keys
    n_items = len(keys)
    for j, key in enumerate(keys):
        legit = j < 8
        check(f"GET /items/{j} (key {key!r})", lambda j=j: client.get(url + f"/items/{j}", headers=rb),
              200 if legit else 404)
    for raw in ["..%2f..%2fetc%2fpasswd", "../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "-1", "1e3", "0x1",
                "99999999999999999999999999", "%00", "0%00", "+1", " 1", "1.0", "\u0661", "00000000001",
                "/etc/passwd", "%2e%2e", "0%2f..%2f1", "0?x=1", "0%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd"]:
        check(f"GET /items/{raw!r}", lambda raw=raw: client.get(url + "/items/" + raw, headers=rb),
              (200, 404, 422) if raw in ("+1", " 1", "00000000001", "0?x=1", "\u0661", "0%00") else (404, 422, 400))

    def search_keys():
        r = client.post(url + "/search?k=24", files={"file": ("q.png", good_png, "image/png")}, headers=rb)
        leaks = [x for x in r.json().get("results", []) if x.get("url") and x.get("key") in hostile_keys]
        if leaks:
            return "disclosure", f"/search gives a url for hostile keys: {leaks[:3]}"
        return "handled", "hostile keys have url null"
    probes.append(("service", "/search urls for hostile keys", search_keys))
    # --- images
    for label, data, name, exp in [
            ("PNG declaring 100000x100000", _png(100000, 100000, real=False), "q.png", 413),
            ("PNG declaring 2**31-1 x 1", _png(2**31 - 1, 1, real=False), "q.png", (413, 422)),
            ("PNG declaring 0x0", _png(0, 0, real=False), "q.png", 422),
            ("PNG 2000x2000 real (4 Mpx > limit)", _png(2000, 2000), "q.png", 413),
            ("GIF declaring 65535x65535", _gif(65535, 65535), "q.gif", (413, 422)),
            ("BMP declaring 60000x60000", _bmp(60000, 60000), "q.bmp", (413, 422)),
            ("BMP declaring negative height", _bmp(100, -2**31), "q.bmp", (413, 422)),
            ("EPS bytes named .png", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", "q.png", 415),
            ("empty file", b"", "q.png", 422), ("truncated PNG", good_png[:30], "q.png", 422),
            ("exe name", good_png, "q.exe", 415), ("no name", good_png, "", (200, 415, 400, 422)),
            ("name with path", good_png, "../../../etc/q.png", (200,)),
            ("name with NUL", good_png, "q\x00.png", (200, 400, 415, 422)),
            ("SVG named png", b"<svg xmlns='http://www.w3.org/2000/svg' width='99999' height='99999'/>", "q.png", (415, 422)),
            ("PNG 3 MB body (> 2 MiB limit)", good_png + bytes(3 << 20), "q.png", 413)]:
        check(f"search upload: {label}", lambda data=data, name=name: client.post(
            url + "/search", files={"file": (name, data, "image/png")}, headers=rb), exp)
    check("search two files", lambda: client.post(url + "/search", files=[("file", ("a.png", good_png, "image/png")), ("file", ("b.png", good_png, "image/png"))], headers=rb), 400)
    check("search multipart without file", lambda: client.post(url + "/search", files={"other": ("a.png", good_png, "image/png")}, headers=rb), 400)
    check("search broken multipart", lambda: client.post(url + "/search", content=b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\nabc", headers={**rb, "Content-Type": "multipart/form-data; boundary=x"}), (400, 422))
    check("search multipart no boundary", lambda: client.post(url + "/search", content=b"abc", headers={**rb, "Content-Type": "multipart/form-data"}), 400)

    def stream():
        def gen():
            yield (b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
                   b'Content-Type: image/png\r\n\r\n')
            for _ in range(40):
                yield bytes(100_000)
        return client.post(url + "/search", content=gen(), headers={**rb, "Content-Type": "multipart/form-data; boundary=x"})
    check("streamed 4 MB body without length", stream, 413)
    def declared():
        host, port = url.rsplit(":", 1)
        c = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
        c.sendall(f"POST /search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {R}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {10**12}\r\n\r\n{{".encode())
        data = b""
        try:
            data = c.recv(4096)
        except socket.timeout:
            return "hang", "no answer in 10 s to a body declaring 10**12 bytes"
        finally:
            c.close()
        ok, codes = still_ok()
        if not ok:
            return "crash", f"server unusable afterwards {codes}"
        return ("handled" if b" 413 " in data[:20] else "unclear-error"), data[:60].decode("latin-1")
    probes.append(("service", "declared Content-Length 10**12", declared))
    check("text to image pipeline", lambda: client.post(url + "/search", json={"text": "hello"}, headers=rb), 415)
    check("vector to image pipeline", lambda: client.post(url + "/search", json={"vector": [1.0] * 192}, headers=rb), 415)
    # --- items add
    check("POST /items key outside folder", lambda: client.post(url + "/items", files={"file": ("a.png", good_png, "image/png")}, data={"keys": "../outside/x.png"}, headers=wb), (422, 201))
    check("POST /items huge PNG", lambda: client.post(url + "/items", files={"file": ("a.png", _png(100000, 100000, real=False), "image/png")}, headers=wb), 413)
    check("POST /items 70 files", lambda: client.post(url + "/items", files=[("file", (f"a{j}.png", good_png, "image/png")) for j in range(70)], headers=wb), (400, 413, 422, 201))
    check("POST /items valid", lambda: client.post(url + "/items", files={"file": ("new.png", _png(8, 8, 99), "image/png")}, headers=wb), 201)
    # --- hostile JSON (vector server)
    V = vurl + "/search"
    bodies = {
        "deep JSON 100000": ("[" * 100000 + "]" * 100000, 400),
        "deep object 5000": ('{"vector":' + '{"a":' * 5000 + "1" + "}" * 5000 + "}", (400, 422)),
        "NaN": ('{"vector":[NaN,1,2,3]}', (400, 422)), "Infinity": ('{"vector":[Infinity,1,2,3]}', (400, 422)),
        "1e400": ('{"vector":[1e400,1,2,3]}', (400, 422)), "1e39": ('{"vector":[1e39,1,2,3]}', 422),
        "huge int": ('{"vector":[' + "9" * 5000 + ',1,2,3]}', (400, 422)),
        "wrong length": ('{"vector":[1,2,3]}', 422), "empty vector": ('{"vector":[]}', 422),
        "nested vector": ('{"vector":[[1,2,3,4]]}', 422), "strings": ('{"vector":["1","2","3","4"]}', 422),
        "bools": ('{"vector":[true,false,true,false]}', (200, 422)), "nulls": ('{"vector":[null,1,2,3]}', 422),
        "null body": ("null", (400, 422)), "list body": ("[1,2,3,4]", (400, 422)), "number body": ("1", (400, 422)),
        "string body": ('"x"', (400, 422)), "unknown field": ('{"vector":[1,2,3,4],"x":1}', 400),
        "duplicate key": ('{"vector":[1,2,3,4],"vector":[1,2]}', (200, 400, 422)),
        "invalid utf-8": (b'{"vector":[1,2,3,4],"x":"\xff"}', 400), "lone surrogate": ('{"text":"\\ud800"}', (415, 422)),
        "truncated": ('{"vector":[1,2', 400), "empty": ("", 400), "BOM": ("\ufeff{\"vector\":[1,2,3,4]}", (200, 400)),
        "vector object": ('{"vector":{"0":1}}', 422), "10**5 elements": ('{"vector":[' + ",".join(["1"] * 100000) + "]}", 422),
        "text to vector pipeline": ('{"text":"hello"}', 415),
        "vectors on search": ('{"vectors":[[1,2,3,4]]}', (400, 422)),
    }
    for label, (body, exp) in bodies.items():
        data = body.encode() if isinstance(body, str) else body
        check(f"JSON {label}", lambda data=data: client.post(V, content=data, headers={"Content-Type": "application/json"}), exp)
    for label, ct in [("text/plain", "text/plain"), ("no content type", None), ("json with charset", "application/json; charset=latin-1"),
                      ("x-www-form-urlencoded", "application/x-www-form-urlencoded"), ("APPLICATION/JSON", "APPLICATION/JSON")]:
        hdr = {"Content-Type": ct} if ct else {}
        check(f"content type {label}", lambda hdr=hdr: client.post(V, content=b'{"vector":[1,2,3,4]}', headers=hdr),
              200 if ct and "json" in ct.lower() else 415)
    for k in ["0", "-1", "10**30", "1.5", "abc", "1000000", "", "nan", "1e3", "21", "20", "True", "00003", "%00"]:
        kk = str(10**30) if k == "10**30" else k
        exp = 200 if k in ("20", "00003") else (422, 400)
        check(f"k={k!r}", lambda kk=kk: client.post(V + f"?k={kk}", json={"vector": [1, 2, 3, 4]}), exp)
    check("two k params", lambda: client.post(V + "?k=1&k=999999", json={"vector": [1, 2, 3, 4]}), (200, 422))
    for label, body, exp in [("vectors with NaN key", {"vectors": [[1, 2, 3, 4]], "keys": ["../../etc/passwd"]}, (201, 422)),
                             ("vectors wrong length", {"vectors": [[1, 2]]}, 422),
                             ("keys length mismatch", {"vectors": [[1, 2, 3, 4]], "keys": ["a", "b"]}, 422),
                             ("keys not strings", {"vectors": [[1, 2, 3, 4]], "keys": [{"a": 1}]}, (201, 422)),
                             ("10000 vectors", {"vectors": [[1, 2, 3, 4]] * 10000}, (201, 413, 422)),
                             ("empty vectors", {"vectors": []}, 422), ("vectors 1e39", {"vectors": [[1e39, 1, 1, 1]]}, 422)]:
        check(f"POST /items JSON {label}", lambda body=body: client.post(vurl + "/items", json=body, headers=wb), exp)
    # many tiny requests
    def many():
        bad = 0
        for _ in range(300):
            r = client.get(vurl + "/info")
            bad += r.status_code != 200
        return ("handled" if bad == 0 else "unclear-error"), f"{bad} of 300 /info failed"
    probes.append(("service", "300 sequential requests", many))

    def many_parallel():
        import concurrent.futures as cf
        def one(_):
            try:
                return client.post(V, json={"vector": [0.1, 0.2, 0.3, 0.4]}).status_code
            except httpx.HTTPError as exc:
                return type(exc).__name__
        with cf.ThreadPoolExecutor(32) as ex:
            codes = list(ex.map(one, range(200)))
        odd = [c for c in codes if c not in (200, 503)]
        return ("handled" if not odd else "unclear-error"), f"codes: {sorted(set(map(str, codes)))}"
    probes.append(("service", "200 concurrent searches", many_parallel))
    return probes

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
    else:
        main()
