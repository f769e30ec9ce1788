"""HTTP overhead of ``skfindkit serve``: /search throughput and latency vs in-process calls.

A 100k x 128 clustered collection (``_common.clustered``, the data of
``bench_ann.py``: intrinsic dimension 16, so neighbours are meaningful) is
indexed by an ``HNSWIndex`` pipeline, saved in skfindkit's safe format
(``skfindkit.io.save``, ``.skfk``), and served by ``skfindkit serve`` (uvicorn, default settings
and access log, ``--workers 4``) in a subprocess on 127.0.0.1. Held-out
queries from the same distribution are sent as JSON vectors by 1, 4 and 16
concurrent clients (threads with keep-alive ``httpx`` clients, in this
process); each level is bounded by ``--requests`` and ``--seconds``. Every
answer is checked against the in-process result (ids must be identical) and
every non-200 counts as an error. The same queries through
``skfindkit.search`` in-process with 1, 4 and 16 threads give the baseline.
File queries (multipart PNG uploads to a digits ``ImageLoader`` pipeline) are
measured the same way at 1 and 4 clients. With one client, ``POST /search`` is
set against ``GET /health`` (the HTTP floor) and the in-process search: its
p50 against 1.5 x /health's p50 + the in-process p50, its requests/s against
60 % of /health's; both are measured once more on a server started with
``--no-access-log``, for what uvicorn's access log costs.

The client measures the server, not itself. Each JSON query is encoded once,
before the run, and sent as ``content=`` with its ``Content-Type`` (as a
client that sends many queries keeps them encoded; ``json=`` would add
httpx's ``json.dumps`` of 128 numbers to every measured request, a cost
/health does not have), and answers are checked against the in-process ids
after their latency is taken, not inside it. httpx sends the headers and the
body in two writes, with ``TCP_NODELAY`` set (httpcore does so for every
connection), so Nagle's algorithm does not hold the body back. The server's
own work is also measured independently of the load on the machine: its CPU
time (user + system, from ``/proc/<pid>/stat``; Linux only) per request, in
the column "server CPU ms/request".

Usage::

    python benchmarks/bench_serve.py [--n 100000] [--requests 3000] [--seconds 15]
    python benchmarks/bench_serve.py --quick  # 2,000 vectors, 300 digits, 20 requests

writes ``benchmarks/results/serve.md`` (``--quick``: into a temporary folder
unless ``--out`` is given). Loopback only.
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from _common import clustered, machine_text, parse, parser, split, write_results

from skfindkit import HNSWIndex, attach_keys, search
from skfindkit import io as skio

K = 10
PACKAGES = ("hnswlib", "fastapi", "starlette", "uvicorn", "httpx", "pillow")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``skfindkit serve`` in a subprocess; ``with Server(path) as server: server.url``."""

    def __init__(self, pipeline_path, *options, workers=4):
        self.args = [sys.executable, "-m", "skfindkit.cli", "serve", pipeline_path,
                     "--workers", str(workers), *options]

    def __enter__(self):
        import httpx

        port = free_port()
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(self.args + ["--port", str(port)], stdout=self.log,
                                        stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    self.url = url
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.log.seek(0)
        raise RuntimeError(f"the server did not start: {self.log.read().decode()[-2000:]}")

    def cpu_seconds(self):
        """The server process's CPU time so far (user + system; None off Linux)."""
        try:
            with open(f"/proc/{self.process.pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(20)
        self.log.close()


def run_level(n_threads, requests, max_seconds, call, session=contextlib.nullcontext,
              check=None):
    """``call(session, i)`` for i < ``requests`` from ``n_threads`` threads, each in its own
    ``session()``, for at most ``max_seconds``; (calls/s, latencies s, problems).

    Only ``call`` is timed; ``check(i, answer)`` (if given) then turns its answer into a
    problem text or None, outside the measured latency."""
    latencies, problems, lock = [], [], threading.Lock()
    counter = iter(range(requests))
    stop = time.perf_counter() + max_seconds

    def worker(_):
        with session() as own:
            while time.perf_counter() < stop:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                answer = call(own, i)
                dt = time.perf_counter() - t0
                problem = check(i, answer) if check is not None else answer
                with lock:
                    latencies.append(dt)
                    if problem:
                        problems.append(problem)

    start = time.perf_counter()
    with ThreadPoolExecutor(n_threads) as pool:
        list(pool.map(worker, range(n_threads)))
    return len(latencies) / (time.perf_counter() - start), np.array(latencies), problems


def http_level(server, url, n_clients, requests, max_seconds, send, check):
    """``run_level`` with one keep-alive httpx client per thread; (requests/s, latencies,
    problems, the server's CPU seconds per request or None)."""
    import httpx

    cpu = server.cpu_seconds()
    qps, lat, problems = run_level(n_clients, requests, max_seconds, send, check=check,
                                   session=lambda: httpx.Client(base_url=url, timeout=60))
    after = server.cpu_seconds()
    return qps, lat, problems, None if cpu is None or after is None else (after - cpu) / len(lat)


def answer_check(expected):
    """``check`` for ``run_level``: a 200 whose ids are ``expected[i]``'s, else the problem."""
    def check(i, response):
        if response.status_code != 200:
            return f"{response.status_code}: {response.text[:200]}"
        ids = [hit["id"] for hit in response.json()["results"]]
        return None if ids == expected[i % len(expected)].tolist() else f"ids differ for {i}"
    return check


HEADER = ("| path | concurrent clients | requests | requests/s | p50 ms | p99 ms | errors | "
          "in-process q/s / HTTP q/s | server CPU ms/request |\n"
          "|---|---|---|---|---|---|---|---|---|")


def row(name, clients, qps, lat, errors, base_qps=None, cpu=None):
    p50, p99 = np.percentile(lat, [50, 99]) * 1000
    ratio = f"{base_qps / qps:.1f}x" if base_qps else ""
    return (f"| {name} | {clients} | {len(lat)} | {qps:.0f} | {p50:.2f} | {p99:.2f} | "
            f"{'' if errors is None else len(errors)} | {ratio} | "
            f"{'' if cpu is None else f'{cpu * 1000:.2f}'} |")


def overhead_lines(floor_p50, floor_qps, search_p50, p50, qps, floor_cpu=None, cpu=None):
    """The one-client /search figures against the HTTP floor and the in-process search."""
    budget = 1.5 * floor_p50 + search_p50
    cpu_line = [] if cpu is None or floor_cpu is None else [
        f"- server CPU time per request: `POST /search` {cpu * 1000:.2f} ms, `GET /health` "
        f"{floor_cpu * 1000:.2f} ms: {(cpu - floor_cpu) * 1000:.2f} ms more, of which the "
        f"search itself is about the in-process p50 ({search_p50 * 1000:.2f} ms) (independent "
        "of the client and, mostly, of the load)."]
    return [
        "One client, JSON vector queries, against `GET /health` (the HTTP floor) and the "
        "in-process `search()`:", "",
        f"- p50: `POST /search` {p50 * 1000:.2f} ms = {p50 / (floor_p50 + search_p50):.2f}x "
        f"(/health p50 {floor_p50 * 1000:.2f} ms + in-process p50 {search_p50 * 1000:.2f} ms); "
        f"target <= 1.5 x /health p50 + in-process p50 = {budget * 1000:.2f} ms: "
        f"{'met' if p50 <= budget else 'NOT met'};",
        f"- throughput: `POST /search` {qps:.0f} requests/s = {qps / floor_qps:.0%} of "
        f"/health's {floor_qps:.0f} requests/s; target >= 60 %: "
        f"{'met' if qps >= 0.6 * floor_qps else 'NOT met'}.",
        *cpu_line,
    ]


def vector_pipeline(n, n_queries):
    from sklearn.pipeline import Pipeline

    X, Q = split(clustered(n + n_queries), n_queries)
    index = HNSWIndex(n_neighbors=K, M=16, ef_construction=100, random_state=0, n_jobs=-1)
    knob = "ef_search" if "ef_search" in index.get_params() else "ef"
    pipeline = Pipeline([("index", index.set_params(**{knob: 50}))])
    t0 = time.perf_counter()
    pipeline.fit(X)
    build = time.perf_counter() - t0
    pipeline[-1].set_params(n_jobs=1)  # one thread per query: concurrency comes from requests
    attach_keys(pipeline, [f"item-{i}" for i in range(n)])
    return pipeline, Q, build, knob


def image_pipeline(folder, n_digits):
    """An ImageLoader -> ExactIndex pipeline over the first 5/6 of ``n_digits``
    digit PNGs written in ``folder``; (pipeline, the other PNGs)."""
    from tests._serve_fixtures import digit_image_pipeline, write_digit_pngs

    paths, _ = write_digit_pngs(Path(folder), n=n_digits)
    cut = n_digits * 1500 // 1797
    return digit_image_pipeline(paths[:cut], n_neighbors=K), paths[cut:]


def measure(args, lines):
    levels = [1, 4, 16]
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        pipeline, Q, build, knob = vector_pipeline(args.n, args.queries)
        path = os.path.join(folder, "hnsw.skfk")
        skio.save(pipeline, path)
        expected = search(pipeline, Q, n_neighbors=K).indices
        lines += [f"## JSON vector queries: HNSWIndex over {args.n} x 128 clustered vectors",
                  "", f"HNSWIndex(M=16, ef_construction=100, {knob}=50), k={K}; built in "
                  f"{build:.1f} s (all cores), queried with one thread per request; "
                  f"{len(Q)} held-out queries from the same distribution, cycled.", "",
                  HEADER]
        base, base_p50 = {}, {}
        for threads in levels:
            qps, lat, _ = run_level(
                threads, args.requests, args.seconds,
                lambda _, i: search(pipeline, Q[i % len(Q)][None], n_neighbors=K) and None)
            base[threads], base_p50[threads] = qps, np.median(lat)
            lines.append(row("in-process `search()`", threads, qps, lat, None))
            print(lines[-1], flush=True)
        bodies = [json.dumps({"vector": q.tolist()}).encode() for q in Q]  # encoded once
        json_type = {"Content-Type": "application/json"}
        with Server(path) as server:
            url = server.url
            def send(client, i):
                return client.post(f"/search?k={K}", content=bodies[i % len(Q)],
                                   headers=json_type)
            check = answer_check(expected)
            if not args.quick:  # --quick only checks that the script runs
                http_level(server, url, 4, 200, 10, send, check)  # warm-up

            def health(client, i):
                return client.get("/health")

            def health_check(i, response):
                return None if response.status_code == 200 else str(response.status_code)
            floor_qps, lat, errors, floor_cpu = http_level(server, url, 1, args.requests,
                                                           args.seconds, health, health_check)
            floor_p50 = np.median(lat)
            lines.append(row("HTTP `GET /health` (no pipeline: the HTTP floor)", 1, floor_qps,
                             lat, errors, cpu=floor_cpu))
            print(lines[-1], flush=True)
            for clients in levels:
                qps, lat, errors, cpu = http_level(server, url, clients, args.requests,
                                                   args.seconds, send, check)
                lines.append(row("HTTP `POST /search` (JSON)", clients, qps, lat, errors,
                                 base[clients], cpu))
                print(lines[-1], flush=True)
                if errors:
                    lines.append(f"\nerrors: {errors[:5]}")
                if clients == 1:
                    one = (np.median(lat), qps)
                    one_cpu = cpu
            lines += ["", *overhead_lines(floor_p50, floor_qps, base_p50[1], *one,
                                          floor_cpu, one_cpu)]
        lines += ["", "The same server started with `--no-access-log` (one client):", "",
                  HEADER]
        with Server(path, "--no-access-log") as server:
            http_level(server, server.url, 4, 200, 10, send, check)  # warm-up
            for name, call, verdict in (("`GET /health`", health, health_check),
                                        ("`POST /search` (JSON)", send, check)):
                qps, lat, errors, cpu = http_level(server, server.url, 1, args.requests,
                                                   args.seconds, call, verdict)
                lines.append(row(f"HTTP {name}, no access log", 1, qps, lat, errors,
                                 None if call is health else base[1], cpu))
                print(lines[-1], flush=True)
        os.makedirs(os.path.join(folder, "digits"))
        images, queries = image_pipeline(os.path.join(folder, "digits"), args.digits)
        image_path = os.path.join(folder, "digits", "pipeline.skfk")
        skio.save(images, image_path)
        lines += ["", "## File queries: multipart PNG upload, digits ImageLoader pipeline", "",
                  f"ImageLoader(8x8 grayscale) -> ExactIndex over {args.digits - len(queries)} "
                  f"digit PNGs, k=10; {len(queries)} held-out digit PNGs as queries (each "
                  "upload is written to a temporary file and loaded by the pipeline).", "",
                  HEADER]
        uploads = [open(q, "rb").read() for q in queries]
        expected = search(images, queries, n_neighbors=K).indices
        n_file = args.requests if args.quick else max(args.requests // 3, 50)
        base = {}
        for threads in (1, 4):
            qps, lat, _ = run_level(threads, n_file, args.seconds, lambda _, i: search(
                images, [queries[i % len(queries)]], n_neighbors=K) and None)
            base[threads] = qps
            lines.append(row("in-process `search()` on the file", threads, qps, lat, None))
            print(lines[-1], flush=True)
        with Server(image_path) as server:
            url = server.url
            def send_file(client, i):
                return client.post(f"/search?k={K}", files={
                    "file": ("q.png", uploads[i % len(uploads)], "image/png")})
            check = answer_check(expected)
            if not args.quick:  # --quick only checks that the script runs
                http_level(server, url, 2, 50, 10, send_file, check)  # warm-up
            for clients in (1, 4):
                qps, lat, errors, cpu = http_level(server, url, clients, n_file, args.seconds,
                                                   send_file, check)
                lines.append(row("HTTP `POST /search` (upload)", clients, qps, lat, errors,
                                 base[clients], cpu))
                print(lines[-1], flush=True)
                if errors:
                    lines.append(f"\nerrors: {errors[:5]}")
        return time.perf_counter() - t0


def main(argv=None):
    options = parser(__doc__, repeats=None)
    options.add_argument("--n", type=int, default=100_000)
    options.add_argument("--queries", type=int, default=2000)
    options.add_argument("--digits", type=int, default=1797,
                         help="digit PNGs of the file-query part (5/6 indexed)")
    options.add_argument("--requests", type=int, default=3000,
                         help="most requests per level (default: %(default)s)")
    options.add_argument("--seconds", type=float, default=15.0,
                         help="most seconds per level (default: %(default)s)")
    args = parse(options, argv, n=2000, queries=50, digits=300, requests=20, seconds=2.0)
    load_before = os.getloadavg()
    lines = []
    took = measure(args, lines)
    load_after = os.getloadavg()
    command = "python benchmarks/bench_serve.py " + " ".join(argv or sys.argv[1:])
    header = [
        "# `skfindkit serve`: HTTP overhead of /search", "",
        f"Command: `{command.strip()}` ({took / 60:.1f} min).  ",
        f"Machine: {machine_text(*PACKAGES)}.  ",
        f"Load average before / after: {load_before[0]:.1f} / {load_after[0]:.1f} "
        f"(on {os.cpu_count()} CPUs).", "",
        "Server: `skfindkit serve PIPELINE --workers 4` (one uvicorn process, 4 threads run "
        "the pipeline, access log on) in a subprocess; clients: threads of the benchmark "
        "process, one keep-alive httpx client each, over 127.0.0.1. Client and server share "
        "the same CPUs, so at 4 and 16 clients the client's own work (JSON, httpx, the GIL) "
        "is part of the measured latency. Every HTTP answer's ids were compared with the "
        "in-process answer: an error is a non-200 answer or different ids. Latencies are per "
        "request as the client sees them (each JSON body encoded before the run, the answer "
        "checked after its latency is taken); 'in-process q/s / HTTP q/s' is how many times "
        "faster the in-process path is at the same concurrency; 'server CPU ms/request' is "
        "the server process's CPU time (user + system, /proc) over the level's requests, "
        "which the client's work does not enter.", "",
    ]
    if max(load_before[0], load_after[0]) > os.cpu_count():
        header += ["**The machine was shared with other jobs during this run** (load average "
                   "above the number of CPUs): absolute figures are pessimistic and noisy, and "
                   "a p99 mostly measures waiting for a CPU; the zero-error, identical-ids "
                   "checks hold regardless.", ""]
    text = "\n".join(header + lines) + "\n"
    print(text)
    write_results(args, "serve.md", text)


if __name__ == "__main__":
    main()
