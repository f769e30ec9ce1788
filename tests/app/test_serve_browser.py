"""The search page in a real headless browser (Debian's chromium + chromedriver).

``skfindkit serve`` runs in a subprocess on a free loopback port; selenium
drives chromium through ``/usr/bin/chromedriver`` (never selenium-manager, so
nothing is downloaded). Skips, saying why, only where chromium is missing or
cannot start. Set ``SKFINDKIT_SCREENSHOT_DIR`` to keep the screenshot.
"""

import base64
import os

import joblib
import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("PIL", reason="Pillow (image extra) is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from skfindkit import io as skio  # noqa: E402

from .._serve_fixtures import (DOCS, ServeProcess, browser as _browser,  # noqa: E402
                              digit_image_pipeline, text_file_pipeline, write_digit_pngs)

pytestmark = pytest.mark.slow  # a real browser against a served subprocess

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``skfindkit serve`` on a digits image pipeline; yields (url, folder, query path)."""
    folder = tmp_path_factory.mktemp("served")
    paths, _ = write_digit_pngs(folder, n=160)
    collection, queries = paths[:150], paths[150:]
    for path in queries:  # held-out queries live outside the items folder
        os.replace(path, folder.parent / os.path.basename(path))
    skio.save(digit_image_pipeline(collection, n_neighbors=10), folder / "pipeline.skfk")
    with ServeProcess(folder / "pipeline.skfk") as served:
        yield served.url, folder, str(folder.parent / os.path.basename(queries[3]))


def test_upload_a_query_see_k_results_and_open_one(server, tmp_path):
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, _, query = server
    driver = _browser()
    try:
        wait = WebDriverWait(driver, 20)
        driver.get(url + "/")
        wait.until(ec.text_to_be_present_in_element((By.ID, "about"), "150 indexed items"))
        k = driver.find_element(By.ID, "k")
        assert k.get_attribute("max") == "150" and k.get_attribute("value") == "10"
        k.clear()
        k.send_keys("8")
        driver.find_element(By.ID, "query-file").send_keys(query)
        driver.find_element(By.ID, "search-button").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results li")) == 8)
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "8 results"))

        with open(query, "rb") as handle:
            expected = httpx.post(url + "/search?k=8", timeout=10,
                                  files={"file": ("q.png", handle.read())}).json()["results"]
        shown = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#results .key")]
        assert shown == [hit["key"] for hit in expected]
        images = driver.find_elements(By.CSS_SELECTOR, "#results img")
        assert len(images) == 8 and all(img.get_attribute("alt").startswith("result ")
                                        for img in images)
        wait.until(lambda d: d.execute_script(
            "return Array.from(document.querySelectorAll('#results img'))"
            ".every(i => i.complete && i.naturalWidth > 0)"))

        driver.find_elements(By.CSS_SELECTOR, "#results a.hit-link")[2].click()
        wait.until(ec.visibility_of_element_located((By.ID, "detail")))
        assert expected[2]["key"] in driver.find_element(By.ID, "detail-key").text
        assert driver.switch_to.active_element.get_attribute("id") == "detail"

        driver.find_elements(By.CSS_SELECTOR, "#results a.hit-link")[0].send_keys(Keys.ENTER)
        wait.until(ec.text_to_be_present_in_element((By.ID, "detail-key"), expected[0]["key"]))
        selected = driver.find_elements(By.CSS_SELECTOR, "#results li.selected")
        assert [s.get_attribute("data-id") for s in selected] == [str(expected[0]["id"])]

        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1100, min(int(height) + 140, 2400))  # the whole page
        driver.execute_script("window.scrollTo(0, 0)")
        shot = tmp_path / "serve_page.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 5_000
        keep = os.environ.get("SKFINDKIT_SCREENSHOT_DIR")
        if keep:
            shutil.copy(shot, os.path.join(keep, "serve_screenshot.png"))
    finally:
        driver.quit()


def test_a_bad_upload_shows_the_server_s_error(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, _, _ = server
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not an image" * 10)
    driver = _browser()
    try:
        wait = WebDriverWait(driver, 20)
        driver.get(url + "/")
        wait.until(ec.text_to_be_present_in_element((By.ID, "about"), "indexed items"))
        driver.find_element(By.ID, "query-file").send_keys(str(bad))
        driver.find_element(By.ID, "search-button").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "'broken.png'"))
        status = driver.find_element(By.ID, "status")
        assert status.get_attribute("role") == "alert" and "error" in status.get_attribute("class")
    finally:
        driver.quit()


def test_type_a_text_and_read_the_snippets(tmp_path):
    pytest.importorskip("gensim", reason="the text extra (gensim) is not installed")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    pipeline = text_file_pipeline(tmp_path)
    joblib.dump(pipeline, tmp_path / "texts.joblib")
    driver = _browser()
    try:
        # a Doc2Vec model: joblib only, served with --trust-pickle (a file this test wrote)
        with ServeProcess(tmp_path / "texts.joblib", "--trust-pickle") as served:
            wait = WebDriverWait(driver, 20)
            driver.get(served.url + "/")
            wait.until(ec.text_to_be_present_in_element((By.ID, "about"), "6 indexed items"))
            assert driver.find_element(By.ID, "text-field").is_displayed()
            driver.find_element(By.ID, "query-text").send_keys("a happy cat")
            driver.find_element(By.ID, "search-button").click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .snippet")) == 3)
            wait.until(lambda d: all(s.text in DOCS for s in
                                     d.find_elements(By.CSS_SELECTOR, "#results .snippet")))
            keys = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#results .key")]
            snippets = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#results .snippet")]
            assert snippets == [DOCS[int(key[3])] for key in keys]  # docN.txt -> docs[N]
    finally:
        driver.quit()


def test_a_server_with_a_read_token_asks_the_browser_and_the_page_works_with_it(tmp_path):
    """Without the token the browser gets the 401 and nothing of the collection; with it
    (sent as the browser sends the password it asked for) the page, its search and its
    thumbnails all work."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    paths, _ = write_digit_pngs(tmp_path, n=30)
    skio.save(digit_image_pipeline(paths, n_neighbors=4), tmp_path / "pipeline.skfk")
    token = "browser-read-token"
    driver = _browser()
    try:
        with ServeProcess(tmp_path / "pipeline.skfk",
                          env={"SKFINDKIT_SERVE_READ_TOKEN": token}) as served:
            driver.get(served.url + "/")  # a 401: the browser asks for the password
            assert "indexed items" not in driver.page_source
            assert "digit_" not in driver.page_source
            wait = WebDriverWait(driver, 20)
            driver.get(served.url.replace("http://", f"http://me:{token}@") + "/")
            wait.until(ec.text_to_be_present_in_element((By.ID, "about"), "30 indexed items"))
            driver.find_element(By.ID, "query-file").send_keys(paths[6])
            driver.find_element(By.ID, "search-button").click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results li")) == 4)
            keys = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#results .key")]
            assert keys[0] == "digit_0006.png"
            wait.until(lambda d: d.execute_script(
                "return Array.from(document.querySelectorAll('#results img'))"
                ".every(i => i.complete && i.naturalWidth > 0)"))
    finally:
        driver.quit()


HOSTILE = '<img src=x onerror="window.injected=1"><b>bold</b>'


def test_each_hit_shows_its_metadata_as_text_and_the_where_box_restricts(tmp_path):
    """The metadata columns under each result and in the detail, as text (a value holding
    HTML is shown literally, never parsed), and the where box sent with the search."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from skfindkit import attach_metadata

    paths, labels = write_digit_pngs(tmp_path, n=40)
    pipeline = digit_image_pipeline(paths, n_neighbors=6)
    attach_metadata(pipeline, {"label": labels, "note": [HOSTILE if i % 2 else "plain"
                                                         for i in range(40)]})
    skio.save(pipeline, tmp_path / "pipeline.skfk")
    driver = _browser()
    try:
        with ServeProcess(tmp_path / "pipeline.skfk") as served:
            wait = WebDriverWait(driver, 20)
            driver.get(served.url + "/")
            wait.until(ec.text_to_be_present_in_element((By.ID, "about"), "40 indexed items"))
            assert driver.find_element(By.ID, "where-field").is_displayed()
            assert "label (numeric), note (text)" in driver.find_element(By.ID, "where-help").text
            driver.find_element(By.ID, "query-file").send_keys(paths[3])
            driver.find_element(By.ID, "search-button").click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results li")) == 6)
            hits = driver.find_elements(By.CSS_SELECTOR, "#results li")
            notes = [h.find_elements(By.CSS_SELECTOR, ".metadata dd")[1].text for h in hits]
            assert HOSTILE in notes and set(notes) <= {HOSTILE, "plain"}
            assert not driver.find_elements(By.CSS_SELECTOR, ".metadata img, .metadata b")
            assert driver.execute_script("return window.injected") is None
            hits[0].find_element(By.CSS_SELECTOR, "a.hit-link").click()
            wait.until(ec.visibility_of_element_located((By.ID, "detail")))
            detail = driver.find_element(By.CSS_SELECTOR, "#detail .metadata").text
            assert f"label\n{labels[3]}" in detail

            driver.find_element(By.ID, "where").send_keys("note == 'plain' and label != 0")
            driver.find_element(By.ID, "search-button").click()
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results .metadata dd")
                       and all(e.text == "plain" for e in d.find_elements(
                           By.CSS_SELECTOR, "#results .metadata dd:nth-of-type(2)")))
            keys = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#results .key")]
            assert all(int(k[6:10]) % 2 == 0 and labels[int(k[6:10])] != 0 for k in keys)
            where = driver.find_element(By.ID, "where")
            where.clear()
            where.send_keys("colour == 1")
            driver.find_element(By.ID, "search-button").click()
            wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "unknown column"))
    finally:
        driver.quit()
