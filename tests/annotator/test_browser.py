"""The annotation page in a real browser: headless Chromium driven by selenium.

The app serves a tiny cluster run (test_annotator.make_run) on a free loopback port from a
thread; the test loads the page, selects a class, clicks a cluster, and checks the mapping JSON
on disk, the labelled view as drawn, the legend, the sample beside every layer and the arrow
keys. A full-page screenshot is saved as an artefact: under $SEMSYNTH_ARTIFACTS when set, else
in the test's tmp dir; the path is printed (pytest -s shows it).

Browser policy: Debian's `chromium` and `chromium-driver` packages (/usr/bin/chromium,
/usr/bin/chromedriver) and selenium (requirements-test.txt). CI installs the two packages when
missing (.ci/run), so there a missing browser is a failure, never a silent skip. Locally, set
SEMSYNTH_ALLOW_NO_BROWSER=1 to skip this test (with the reason) where they are not installed:
    sudo apt-get install -y chromium chromium-driver
"""

import io
import json
import os
import shutil
import tempfile
import threading
import time

import numpy as np
import pytest
from PIL import Image
from test_annotator import DISPLAY, LAYERS, PALETTE_SIMPLE, K, make_run

from annotator.app import LOOPBACK_HOSTS, create_app

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
]
WAIT_S = 15
CSS_SIZE = 256  # img.layer-image width and height in CSS pixels (annotator.css)
BLUE = (0, 0, 255)  # printed_text in PALETTE_SIMPLE


def _find(name: str, fallback: str) -> str | None:
    found = shutil.which(name)
    return found or (fallback if os.path.exists(fallback) else None)


def _browser_or_fail():
    """(chromium, chromedriver, webdriver module); fails, or skips when allowed (docstring)."""
    chromium = _find("chromium", "/usr/bin/chromium")
    driver = _find("chromedriver", "/usr/bin/chromedriver")
    try:
        from selenium import webdriver
    except ImportError:
        webdriver = None
    missing = [
        what
        for what, found in (
            ("chromium", chromium),
            ("chromedriver", driver),
            ("selenium", webdriver),
        )
        if found is None
    ]
    if missing:
        reason = (
            f"not installed: {', '.join(missing)} (apt-get install -y chromium chromium-driver; "
            "pip install -r requirements-test.txt)"
        )
        if os.environ.get("SEMSYNTH_ALLOW_NO_BROWSER") == "1":
            pytest.skip(f"browser test skipped (SEMSYNTH_ALLOW_NO_BROWSER=1): {reason}")
        pytest.fail(f"the browser test needs a headless browser: {reason}", pytrace=False)
    return chromium, driver, webdriver


@pytest.fixture
def server(tmp_path):
    """The app on a free loopback port, from a thread: (base url, run directory)."""
    from werkzeug.serving import make_server

    run_dir = make_run(tmp_path / "run")
    palette = tmp_path / "palette.json"
    palette.write_text(json.dumps(PALETTE_SIMPLE))
    app = create_app(
        run_dir, k=K, palette=str(palette), display_size=DISPLAY, trusted_hosts=LOOPBACK_HOSTS
    )
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}", run_dir
    http.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def browser():
    chromium, driver_path, webdriver = _browser_or_fail()
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="semsynth-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def artefact_path(tmp_path, name: str) -> str:
    folder = os.environ.get("SEMSYNTH_ARTIFACTS") or str(tmp_path)
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, name)


def wait_for(condition, what: str):
    """Polls condition() until it is truthy; fails naming `what` after WAIT_S seconds."""
    deadline = time.monotonic() + WAIT_S
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {WAIT_S} s waiting for {what}", pytrace=False)
        time.sleep(0.05)


def read_mapping(run_dir):
    path = os.path.join(run_dir, f"annotations_k{K:02d}.json")
    if not os.path.exists(path):
        return None
    with open(path) as file:
        return json.load(file)


def column_colours(element) -> list[tuple[int, int, int]]:
    """Colour drawn at the middle of each of the 8 source columns of an 8 px layer image."""
    shot = np.array(Image.open(io.BytesIO(element.screenshot_as_png)).convert("RGB"))
    border = (shot.shape[1] - CSS_SIZE) // 2  # the img's 1 px border on each side
    row = shot[shot.shape[0] // 2]  # [width, 3]
    step = CSS_SIZE // 8
    return [tuple(int(v) for v in row[border + c * step + step // 2]) for c in range(8)]


def images_loaded(driver) -> bool:
    return driver.execute_script(
        "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"
    )


def test_annotation_page_in_a_real_browser(server, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    started = time.monotonic()
    base_url, run_dir = server
    layer = "conv01_8px"  # 8 px: stripes of clusters 0 | 1 | 2 at columns 0-2 | 3-5 | 6-7
    browser.get(base_url + "/")
    status = browser.find_element(By.ID, "status")
    wait_for(lambda: status.text == "ready", f"the page to load (status: {status.text!r})")
    wait_for(lambda: images_loaded(browser), "every image to load")

    # The sample is beside every layer; every layer has a legend of its clusters' colours.
    rows = browser.find_elements(By.CSS_SELECTOR, "#layers tbody tr")
    assert [row.get_attribute("data-layer") for row in rows] == [item["name"] for item in LAYERS]
    for row in rows:
        assert row.find_element(By.CSS_SELECTOR, "img.sample-image").get_attribute(
            "naturalWidth"
        ) == str(DISPLAY)
        legend = row.find_elements(By.CSS_SELECTOR, ".legend li")
        assert [item.text for item in legend] == ["0", "1", "2"]
    # Scrolled to the last layer, its sample is in view (the page's point of item 13).
    last_sample = rows[-1].find_element(By.CSS_SELECTOR, "img.sample-image")
    browser.execute_script("arguments[0].scrollIntoView({block: 'end'})", rows[-1])
    assert browser.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return r.top >= 0 && r.bottom <= window.innerHeight;",
        last_sample,
    )

    # Select printed_text (second class), click the middle of the layer's clusters image:
    # column 4 of 8, cluster 1.
    browser.find_elements(By.CSS_SELECTOR, ".class-button")[1].click()
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-layer="{layer}"]')
    clusters = row.find_element(By.CSS_SELECTOR, "img.clusters")
    labelled = row.find_element(By.CSS_SELECTOR, "img.labelled")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", clusters)
    ActionChains(browser).move_to_element(clusters).click().perform()
    mapping = wait_for(lambda: read_mapping(run_dir), "the click to write the mapping file")
    assert mapping["layers"] == {layer: {"1": "printed_text"}}
    wait_for(lambda: "saved" in status.text, "the status to say saved")
    assert status.text == f"{layer}: cluster 1 -> printed_text (saved)"

    # The labelled view as drawn: columns 3-5 blue, the others hatched grey.
    wait_for(lambda: "v=1" in labelled.get_attribute("src"), "the labelled view to refresh")
    wait_for(lambda: images_loaded(browser), "the labelled view to load")
    drawn = column_colours(labelled)
    assert [c == BLUE for c in drawn] == [c in (3, 4, 5) for c in range(8)], drawn
    assert all(c[0] == c[1] == c[2] for i, c in enumerate(drawn) if i not in (3, 4, 5)), drawn
    legend = row.find_elements(By.CSS_SELECTOR, ".legend li")
    wait_for(lambda: legend[1].text == "1 printed_text", "the legend to show the class")
    screenshot = artefact_path(tmp_path, "annotator_page.png")
    browser.save_screenshot(screenshot)
    print(f"\nannotator browser test: screenshot {screenshot}")

    # Arrow keys step the samples (wrapping): sample 1 shifts the stripes one column left, so
    # cluster 1 is drawn at columns 2-4.
    counter = browser.find_element(By.ID, "sample-counter")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.ARROW_RIGHT)
    wait_for(lambda: counter.text == "sample 2 / 3", f"sample 2 (shown: {counter.text!r})")
    wait_for(lambda: labelled.get_attribute("src").split("?")[0].endswith("/1.png"), "sample 1")
    wait_for(lambda: images_loaded(browser), "sample 1's images to load")
    drawn = column_colours(labelled)
    assert [c == BLUE for c in drawn] == [c in (2, 3, 4) for c in range(8)], drawn
    body.send_keys(Keys.ARROW_LEFT, Keys.ARROW_LEFT)
    wait_for(lambda: counter.text == "sample 3 / 3", f"sample 3 (shown: {counter.text!r})")
    # The sample beside every layer followed.
    for sample in row.find_elements(By.CSS_SELECTOR, "img.sample-image"):
        assert sample.get_attribute("src").endswith("/2.png")
    assert read_mapping(run_dir)["layers"] == {layer: {"1": "printed_text"}}
    print(f"annotator browser test: {time.monotonic() - started:.1f} s in the browser")


def test_missing_browser_fails_unless_allowed(monkeypatch):
    """The policy of the docstring: no silent skip; a skip only with SEMSYNTH_ALLOW_NO_BROWSER=1."""
    import test_browser

    monkeypatch.setattr(test_browser, "_find", lambda name, fallback: None)
    monkeypatch.delenv("SEMSYNTH_ALLOW_NO_BROWSER", raising=False)
    with pytest.raises(pytest.fail.Exception, match="chromium, chromedriver"):
        _browser_or_fail()
    monkeypatch.setenv("SEMSYNTH_ALLOW_NO_BROWSER", "1")
    with pytest.raises(pytest.skip.Exception, match="SEMSYNTH_ALLOW_NO_BROWSER=1"):
        _browser_or_fail()
