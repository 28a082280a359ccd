"""The review app in headless Chromium (Debian's, through ChromeDriver): sign in, open a clip, accept a
label, draw a missed face, and find both decisions in the catalog. Saves a screenshot for the README."""

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from builders import REPO
from curation.review.app import create_app
from curation.storage.catalog import Catalog
from curation.storage.store import RegionStore

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SCREENSHOT = REPO / "build" / "screenshots" / "review.png"


@pytest.fixture
def server(region):
    _, params, tokens = region
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(params, "cn"), host="127.0.0.1", port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    while not instance.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", params, tokens
    instance.should_exit = True
    thread.join(10)


@pytest.fixture
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.fail("Debian chromium and chromium-driver are needed (make browser installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1500,1000", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.mark.slow
def test_a_labeler_reviews_a_clip_in_the_browser(server, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    url, params, tokens = server
    catalog = Catalog(RegionStore(params, "cn"))
    labeled = catalog.read("detections", ["clip_id", "index"], "index = 0").to_pandas()
    assert len(labeled), "the built region should have labels on a clip's first frame"
    wait = WebDriverWait(browser, 30)
    browser.get(url)
    wait.until(ready.visibility_of_element_located((By.ID, "token"))).send_keys(tokens["labeler"])
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait.until(ready.visibility_of_element_located((By.ID, "queue-rows")))
    rows = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#queue-rows tr"))
    target = next(r for r in rows if any(r.text.startswith(c[:12]) for c in labeled.clip_id))
    clip_id = next(c for c in labeled.clip_id if target.text.startswith(c[:12]))
    target.click()
    wait.until(lambda d: d.execute_script("return document.getElementById('video').readyState >= 2"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#labels li"))
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("a")
    wait.until(ready.text_to_be_present_in_element((By.ID, "status"), "accept recorded"))
    shown = lambda: int(browser.find_element(By.ID, "frame-info").text.split()[1])  # noqa: E731  ("frame N / M ...")
    drawn_on = shown()
    body.send_keys("f")
    canvas = browser.find_element(By.ID, "overlay")
    ActionChains(browser).move_to_element_with_offset(canvas, -150, -80).click_and_hold().move_by_offset(60, 70) \
        .release().perform()
    wait.until(ready.text_to_be_present_in_element((By.ID, "status"), "missed_face recorded"))
    body.send_keys(u"\ue014")  # arrow right: one frame on
    wait.until(lambda d: shown() == drawn_on + 1)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))

    reviews = catalog.read("reviews").to_pandas()
    accepted = reviews[reviews.decision == "accept"]
    drawn = reviews[reviews.decision == "missed_face"]
    assert len(accepted) == 1 and accepted.iloc[0].target == "detection" and accepted.iloc[0].reviewer == "labeler-1"
    assert len(drawn) == 1 and drawn.iloc[0].clip_id == clip_id and drawn.iloc[0]["index"] == drawn_on - 1
    import json

    x1, y1, x2, y2 = json.loads(drawn.iloc[0]["after"])["box"]
    assert 20 < x2 - x1 < 400 and 20 < y2 - y1 < 400  # the drag, in video pixels
