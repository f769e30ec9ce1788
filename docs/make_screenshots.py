"""Screenshots of ``skfindkit serve`` on CLI-built folders: images, sounds, texts.

Makes three small folders (offline: drawn shapes, synthesized sounds, short
notes), indexes each with ``skfindkit index``, serves it with ``skfindkit
serve`` and photographs the search page after one query with headless
chromium (Debian's ``chromium`` and ``chromium-driver``; selenium is told where
the driver is, so nothing is downloaded)::

    python docs/make_screenshots.py            # writes docs/img/serve-*.png
    python docs/make_screenshots.py --out DIR
"""

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CHROMEDRIVER = "/usr/bin/chromedriver"
NOTES = {
    "cats": ["Cats sleep most of the day and hunt at dusk; a kitten learns to pounce early.",
             "A purring cat is usually content; whiskers help it judge narrow gaps.",
             "Indoor cats need scratching posts and a quiet place to hide."],
    "sailing": ["Reef the mainsail before the wind rises; a calm harbour hides the swell.",
                "The anchor held through the night while the tide turned twice.",
                "Tacking upwind costs time, but a broad reach is fast and easy."],
    "baking": ["Bread dough rises best in a warm kitchen; knead until it is smooth.",
               "Sourdough starter needs flour and water every day to stay lively.",
               "A hot oven and a tray of water give the loaf a crisp crust."],
}


def draw_shapes(root):
    """``root/<shape>/<colour>_<n>.png``: circles, squares and triangles in colours."""
    from PIL import Image, ImageDraw

    rng = np.random.RandomState(0)
    colours = {"red": (210, 50, 40), "blue": (40, 90, 200), "green": (40, 160, 70)}
    for shape in ("circles", "squares", "triangles"):
        (root / shape).mkdir(parents=True, exist_ok=True)
        for name, colour in colours.items():
            for n in range(2):
                image = Image.new("RGB", (96, 96), (245, 245, 240))
                draw = ImageDraw.Draw(image)
                a, b = rng.randint(8, 24, size=2)
                box = (a, b, 96 - rng.randint(8, 24), 96 - rng.randint(8, 24))
                if shape == "circles":
                    draw.ellipse(box, fill=colour)
                elif shape == "squares":
                    draw.rectangle(box, fill=colour)
                else:
                    draw.polygon([(box[0], box[3]), (box[2], box[3]),
                                  ((box[0] + box[2]) // 2, box[1])], fill=colour)
                image.save(root / shape / f"{name}_{n}.png")
    return root / "circles" / "blue_1.png"


def synthesize_sounds(root):
    """``root/<family>/<n>.wav``: tones, chirps and click trains."""
    import soundfile

    rate, rng = 22050, np.random.RandomState(0)
    t = np.arange(int(0.8 * rate)) / rate
    for family in ("tones", "chirps", "clicks"):
        (root / family).mkdir(parents=True, exist_ok=True)
        for n in range(3):
            if family == "tones":
                f0 = rng.uniform(200, 400)
                y = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 4))
            elif family == "chirps":
                f0, f1 = rng.uniform(300, 600), rng.uniform(3000, 5000)
                y = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / 1.6))
            else:
                y = np.zeros(t.size)
                y[:: int(rate / rng.uniform(8, 14))] = 1.0
                y = np.convolve(y, np.hanning(64), mode="same")
            y = 0.5 * y / np.max(np.abs(y)) + 0.003 * rng.randn(t.size)
            soundfile.write(root / family / f"{family[:-1]}_{n}.wav", y, rate)
    return root / "chirps" / "chirp_1.wav"


def write_notes(root):
    """``root/<topic>/<n>.txt``: three short notes per topic."""
    for topic, texts in NOTES.items():
        (root / topic).mkdir(parents=True, exist_ok=True)
        for n, text in enumerate(texts):
            (root / topic / f"note_{n}.txt").write_text(text + "\n", encoding="utf-8")
    return "a kitten with long whiskers"


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _skfindkit(*args):
    subprocess.run([sys.executable, "-m", "skfindkit.cli", *map(str, args)], check=True)


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1100,900", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def photograph(pipeline, query, path, n_results):
    """Serve ``pipeline``, ask ``query`` (a file, or a text) in the page, save ``path``."""
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "skfindkit.cli", "serve", str(pipeline),
                               "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        driver = _browser()
        try:
            wait = WebDriverWait(driver, 60)
            driver.get(url + "/")
            wait.until(lambda d: "indexed items" in d.find_element(By.ID, "about").text)
            k = driver.find_element(By.ID, "k")
            k.clear()
            k.send_keys(str(n_results))
            if isinstance(query, Path):
                driver.find_element(By.ID, "query-file").send_keys(str(query))
            else:
                driver.find_element(By.ID, "query-text").send_keys(query)
            driver.find_element(By.ID, "search-button").click()
            wait.until(lambda d: "results in" in d.find_element(By.ID, "status").text)
            time.sleep(1.5)  # thumbnails and snippets arrive after the results
            driver.save_screenshot(str(path))
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "img"), help="folder of the screenshots")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="skfindkit-screenshots-") as scratch:
        scratch = Path(scratch)
        for kind, make, results in (("image", draw_shapes, 8), ("audio", synthesize_sounds, 6),
                                    ("text", write_notes, 6)):
            folder = scratch / kind
            query = make(folder)
            pipeline = scratch / f"{kind}.skfk"
            _skfindkit("index", folder, "--kind", kind, "--out", pipeline, "--quiet")
            photograph(pipeline, query, out / f"serve-{kind}.png", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
