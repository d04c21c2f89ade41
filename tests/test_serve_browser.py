"""The page of `snn serve` in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by Selenium) opens the page of a real `snn serve` process, draws
digits with pointer events, and uploads a file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.common.actions.action_builder import ActionBuilder  # noqa: E402
from selenium.webdriver.common.actions.pointer_input import PointerInput  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from test_serve import DIGITS, start_server  # noqa: E402

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="no Chromium and chromedriver found (Debian: apt-get install chromium chromium-driver)",
)

# Strokes of digits on the 280x280 pad, in pad pixels: a 7 (a bar, then a slanted stem) and
# a 1 (a vertical stroke).
SEVEN = [[(70, 60), (120, 60), (170, 60), (215, 62)], [(215, 62), (185, 120), (160, 175),
                                                      (140, 235)]]
ONE = [[(140, 40), (140, 100), (140, 170), (140, 240)]]


@pytest.fixture(scope="module")
def server():
    process, url = start_server()
    yield url
    process.terminate()
    process.communicate(timeout=30)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1100,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    try:
        driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER),
                                  options=options)
    except WebDriverException as exc:
        pytest.skip(f"Chromium did not start: {str(exc).splitlines()[0]}")
    yield driver
    driver.quit()


def draw(driver, strokes, kind: str = "mouse"):
    """Each stroke as a pointer (a mouse, or a finger: kind "touch") pressed at its first
    point, moved through the others and released (the pad's pixels scaled to its size on the
    page)."""
    pad = driver.find_element(By.ID, "pad")
    scale = pad.size["width"] / 280
    actions = ActionBuilder(driver, mouse=PointerInput(kind, kind), duration=20)
    for stroke in strokes:
        # Offsets are from the element's centre.
        points = [(round((x - 140) * scale), round((y - 140) * scale)) for x, y in stroke]
        actions.pointer_action.move_to(pad, *points[0]).pointer_down()
        for point in points[1:]:
            actions.pointer_action.move_to(pad, *point)
        actions.pointer_action.pointer_up()
    actions.perform()


def shown(driver, digit: str, timeout: float = 20):
    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return document.body.dataset.pending") == "no"
        and d.execute_script("return document.body.dataset.prediction") == digit
        and not d.find_element(By.ID, "error").is_displayed()
    )
    return driver.find_element(By.ID, "prediction").text


def spike_pixels(driver) -> int:
    """Pixels of the raster in the predicted class's colour (#e4572e): its spikes drawn."""
    return driver.execute_script("""
        const c = document.getElementById('raster');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {
          if (d[i] > 200 && d[i + 1] < 120 && d[i + 2] < 80) n++;
        }
        return n;""")


def test_draw_a_digit_and_upload_a_file(server, browser, tmp_path):
    browser.get(server)
    WebDriverWait(browser, 20).until(
        lambda d: d.execute_script("return document.body.dataset.ready") == "yes")
    assert "csnn" in browser.find_element(By.ID, "info").text
    assert browser.find_element(By.ID, "heading").text == "Draw a digit, watch the spikes"

    draw(browser, SEVEN)
    assert shown(browser, "7") == "7"
    assert spike_pixels(browser) > 1000  # the spike raster was drawn: 16 spikes of the 7
    bars = browser.find_elements(By.CSS_SELECTOR, "#bars .bar")
    assert len(bars) == 10 and "best" in bars[7].get_attribute("class")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#layers .bar")) == 4
    browser.save_screenshot(str(tmp_path / "seven.png"))

    browser.find_element(By.ID, "clear").click()
    WebDriverWait(browser, 10).until(
        lambda d: d.execute_script("return document.body.dataset.state") == "empty")
    draw(browser, ONE)
    assert shown(browser, "1") == "1"

    # Fewer time steps: the same weights simulated again, the raster 4 steps long.
    browser.execute_script("const s = document.getElementById('steps'); s.value = 4; "
                           "s.dispatchEvent(new Event('input'));")
    WebDriverWait(browser, 20).until(
        lambda d: d.execute_script("return document.getElementById('raster').dataset.steps")
        == "4")
    assert browser.find_element(By.ID, "steps-value").text == "4"
    assert shown(browser, "1") == "1"

    photo = sorted(DIGITS.glob("3_*_photo_*.jpg"))[0]
    browser.find_element(By.ID, "file").send_keys(str(photo))
    assert shown(browser, "3") == "3"
    assert photo.name in browser.find_element(By.ID, "source").text

    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    browser.find_element(By.ID, "file").send_keys(str(not_image))
    error = browser.find_element(By.ID, "error")
    WebDriverWait(browser, 20).until(
        lambda d: d.execute_script("return document.body.dataset.pending") == "no"
        and error.is_displayed())
    assert "not an image" in error.text
    browser.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_the_page_fits_a_phone(server, browser, tmp_path):
    browser.set_window_size(390, 844)
    try:
        browser.get(server)
        WebDriverWait(browser, 20).until(
            lambda d: d.execute_script("return document.body.dataset.ready") == "yes")
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0  # nothing wider than the screen
        pad = browser.find_element(By.ID, "pad")
        assert 250 <= pad.size["width"] <= 390
        draw(browser, SEVEN, kind="touch")  # a finger
        assert shown(browser, "7") == "7"
        browser.save_screenshot(str(tmp_path / "phone.png"))
    finally:
        browser.set_window_size(1100, 1000)


def test_a_fashion_checkpoint_asks_for_clothing(browser, tmp_path, tiny_mnist):
    """With a Fashion-MNIST checkpoint the page invites a piece of clothing, not a digit,
    and names the class it read."""
    from typer.testing import CliRunner

    from snncli.cli import app
    from snncli.datasets import FASHION_CLASSES

    path = tmp_path / "fashion.pt"
    trained = CliRunner().invoke(app, [
        "train", "-m", "mlp", "--dataset", "fashion-mnist", "--data-dir", str(tiny_mnist),
        "--epochs", "1", "--batch-size", "32", "--device", "cpu", "--out", str(path)])
    assert trained.exit_code == 0, trained.output
    process, url = start_server("--checkpoint", str(path))
    try:
        browser.get(url)
        WebDriverWait(browser, 20).until(
            lambda d: d.execute_script("return document.body.dataset.ready") == "yes")
        assert browser.find_element(By.ID, "heading").text == (
            "Draw a piece of clothing, watch the spikes")
        assert browser.find_element(By.ID, "input-title").text == "Your piece of clothing"
        assert browser.title == "snn serve: draw a piece of clothing"
        draw(browser, ONE)
        WebDriverWait(browser, 20).until(
            lambda d: d.execute_script("return document.body.dataset.pending") == "no"
            and d.find_element(By.ID, "prediction").text in FASHION_CLASSES)
    finally:
        process.terminate()
        process.communicate(timeout=30)
