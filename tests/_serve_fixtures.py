"""Small collections and fitted pipelines for the service tests (digits as PNG files)."""

import numpy as np


def write_digit_pngs(folder, n=120):
    """The first ``n`` digits as 8x8 grayscale PNGs; (paths, labels)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.clip(digits.images[:n] * 16, 0, 255).astype(np.uint8)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"digit_{i:04d}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    return paths, digits.target[:n]


def digit_image_pipeline(paths, n_neighbors=5):
    """ImageLoader -> ExactIndex over ``paths``, keyed by file name."""
    import os

    from sklearn.pipeline import Pipeline

    from skfindkit import ExactIndex, ImageLoader, attach_keys

    pipeline = Pipeline([
        ("loader", ImageLoader(size=(8, 8), color_mode="grayscale", flatten=True)),
        ("index", ExactIndex(n_neighbors=n_neighbors)),
    ]).fit(paths)
    return attach_keys(pipeline, [os.path.basename(p) for p in paths])


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServeProcess:
    """``skfindkit serve PIPELINE ARGS...`` in a subprocess on a free loopback port.

    ``with ServeProcess(path) as server:`` waits for /health; ``server.url``,
    ``server.output()`` (what it printed so far, after exit).
    """

    def __init__(self, pipeline_path, *args, env=None):
        import os
        import sys

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, "-m", "skfindkit.cli", "serve", str(pipeline_path),
                        "--port", str(self.port), *args]
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **(env or {})}

    def __enter__(self):
        import subprocess
        import tempfile
        import time

        import httpx

        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(self.command, stdout=self._log,
                                        stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + 60
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"skfindkit serve did not start: {self.output()}")

    def output(self):
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


DOCS = ["the cat sat on the mat", "dogs run in the park", "a cat and a dog play",
        "stock markets fell today", "the market rallied on earnings", "cats purr when happy"]


def text_file_pipeline(folder):
    """``DOCS`` as ``doc{i}.txt`` under ``folder``, Doc2VecLoader(input="filename") ->
    cosine ExactIndex keyed by file name."""
    from sklearn.pipeline import Pipeline

    from skfindkit import Doc2VecLoader, ExactIndex, attach_keys

    paths = []
    for i, doc in enumerate(DOCS):
        paths.append(folder / f"doc{i}.txt")
        paths[-1].write_text(doc)
    return attach_keys(Pipeline([
        ("loader", Doc2VecLoader(input="filename", min_count=1, vector_size=16, epochs=20)),
        ("index", ExactIndex(n_neighbors=3, metric="cosine")),
    ]).fit([str(p) for p in paths]), [p.name for p in paths])


CHROMEDRIVER = "/usr/bin/chromedriver"


def browser():
    """Headless chromium driven through Debian's chromedriver (selenium-manager never
    runs, so nothing is downloaded); skips, saying why, where either is missing."""
    import os
    import shutil

    import pytest
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None or not os.path.exists(CHROMEDRIVER):
        pytest.skip("chromium or chromedriver not found (apt-get install chromium "
                    "chromium-driver; .ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1100,900", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    try:
        return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    except WebDriverException as exc:
        pytest.skip(f"chromium could not start: {exc.msg.splitlines()[0] if exc.msg else exc}")
