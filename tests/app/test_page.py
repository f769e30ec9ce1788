"""The search page on a CLI-built folder of faces, in headless chromium."""

import os

import pytest

from ._folders import write_faces

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("skimage", reason="scikit-image (image extra) is not installed")
pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from .._serve_fixtures import ServeProcess, browser as _browser  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from skfindkit.cli import main

    root = tmp_path_factory.mktemp("page")
    paths = write_faces(root / "faces", n_people=2)
    out = root / "faces.skfk"
    assert main(["index", str(root / "faces"), "--kind", "image", "--out", str(out),
                 "--quiet"]) == 0
    with ServeProcess(out) as server:
        yield server.url, paths, root


def _search(driver, url, upload):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 30)
    driver.get(url + "/")
    wait.until(ec.text_to_be_present_in_element((By.ID, "about"), "indexed items"))
    driver.find_element(By.ID, "query-file").send_keys(str(upload))
    driver.find_element(By.ID, "search-button").click()
    return wait


def _broken_images(driver):
    return driver.execute_script(
        "return Array.from(document.images).filter(i => i.complete && i.naturalWidth === 0)"
        ".map(i => i.alt)")


def test_thumbnails_and_captions_of_a_served_faces_folder(served):
    from selenium.webdriver.common.by import By

    url, paths, _ = served
    driver = _browser()
    try:
        wait = _search(driver, url, paths[1])
        wait.until(lambda d: d.execute_script(
            "var imgs = document.querySelectorAll('#results img');"
            "return imgs.length > 0 && Array.from(imgs).every(i => i.complete);"))
        assert not _broken_images(driver)
        first = driver.find_element(By.CSS_SELECTOR, "#results li .key")
        folder = first.find_element(By.CSS_SELECTOR, ".folder").text
        name = first.find_element(By.CSS_SELECTOR, ".name").text
        assert (folder, name) == ("s1/", "2.pgm")
        # a .pgm query: chromium cannot show it, the page says so instead of a broken image
        assert "no preview" in driver.find_element(By.ID, "query-preview").text
    finally:
        driver.quit()


def test_a_bad_upload_is_one_sentence_and_no_broken_image(served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    url, _, root = served
    bad = root / "holiday.png"
    bad.write_bytes(b"not a picture at all")
    driver = _browser()
    try:
        wait = _search(driver, url, bad)
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "'holiday.png'"))
        wait.until(lambda d: "no preview" in d.find_element(By.ID, "query-preview").text)
        status = driver.find_element(By.ID, "status").text
        assert status == ("Error: could not read 'holiday.png' as an image: cannot identify "
                          "image file 'holiday.png'.")
        assert not _broken_images(driver)
        assert os.path.basename(str(bad)) in driver.find_element(By.ID, "query-preview").text
    finally:
        driver.quit()
