"""``zerodce serve`` in a real headless browser: Debian's Chromium
(/usr/bin/chromium) driven by Playwright, which downloads no browser of its
own. Loads the page, uploads the bundled low-light sample, moves the
strength slider and the split, downloads the result and checks it equals
``zerodce enhance`` with the same settings.

Skipped (with the reason) without playwright or chromium, except under
``ZERODCE_STRICT=1`` (CI), where that is a failure. With
``ZERODCE_SCREENSHOT=PATH`` the page is also saved as a PNG there (the
documentation's docs/images/serve.png comes from this test).
"""

import os

import numpy as np
import pytest

from _support import STRICT
from zerodce_jax import cli
from zerodce_jax.apps import serve
from zerodce_jax.formats import image_io, weights

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--no-first-run"]
STRENGTH = "1.3"


def _missing(why: str):
  (pytest.fail if STRICT else pytest.skip)(why)


@pytest.fixture(scope="module")
def browser():
  try:
    from playwright.sync_api import sync_playwright
  except ImportError as e:
    _missing(f"needs playwright (pip install -e '.[test]'): {e}")
  if not os.access(CHROMIUM, os.X_OK):
    _missing(f"needs Debian's Chromium at {CHROMIUM} (apt-get install "
             "chromium)")
  with sync_playwright() as p:
    b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
      yield b
    finally:
      b.close()


def test_page_enhances_and_downloads_like_zerodce_enhance(browser, tmp_path):
  sample = weights.asset_path(weights.SAMPLE_IMAGE)
  (tmp_path / "serve").mkdir()
  engine = serve.Engine(tmp_parent=str(tmp_path / "serve"))
  with serve.running(engine) as srv:
    ctx = browser.new_context(viewport={"width": 1280, "height": 760},
                              accept_downloads=True)
    page = ctx.new_page()
    problems = []  # script errors and CSP violations show up here
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: m.type == "error" and problems.append(
        m.text))
    page.goto(srv.url)
    page.locator("body[data-ready='1']").wait_for()
    assert page.locator("#model option").count() == 2

    # a file that is not an image: one clear line on the page
    page.set_input_files("#files", files=[{
        "name": "notes.txt", "mimeType": "text/plain",
        "buffer": b"not an image"}])
    msg = page.locator("#message")
    msg.filter(has_text="not a readable image").wait_for()
    assert msg.text_content().startswith("notes.txt: ")
    problems.clear()  # the refused upload's 400 is logged as an error

    page.set_input_files("#files", sample)
    page.locator("#list li").wait_for()
    assert page.locator("#list li .name").text_content() == (
        "sample_lowlight.jpg")
    page.locator("#after[data-key*='strength=1&']").wait_for(
        state="attached", timeout=90_000)
    # the bundled model's default exposure picks the strength (the slider
    # is greyed out) until the exposure is turned off, as `--strength` on
    # the command line replaces it
    assert page.locator("#strength").is_disabled()
    page.locator("#exposure-mode").select_option("off")
    page.locator("#after[data-key*='exposure=off']").wait_for(
        state="attached", timeout=90_000)
    page.locator("#strength").fill(STRENGTH)
    page.locator(f"#after[data-key*='strength={STRENGTH}&']").wait_for(
        state="attached", timeout=30_000)
    assert page.locator("#strength-out").text_content() == "1.30"
    page.locator("#split").fill("30")
    assert "30%" in page.locator("#after").get_attribute("style")
    page.locator("#split").fill("50")
    assert page.locator("#busy").is_hidden()
    shot = os.environ.get("ZERODCE_SCREENSHOT")
    if shot:
      page.screenshot(path=shot)

    with page.expect_download(timeout=90_000) as info:
      page.locator("#download").click()
    download = info.value
    assert download.suggested_filename == "sample_lowlight_enhanced.jpg"
    got = tmp_path / download.suggested_filename
    download.save_as(got)
    assert not problems, problems
    ctx.close()

  out = tmp_path / "cli"
  assert cli.main(["enhance", sample, "-o", str(out), "--strength", STRENGTH,
                   "--no-progress"]) == 0
  want, want_info = image_io.read_image(str(out / "sample_lowlight.jpg"))
  have, have_info = image_io.read_image(str(got))
  assert (have_info.format, have_info.bit_depth) == ("jpeg", 8)
  assert have.shape == want.shape
  assert np.abs(have - want).max() <= 1 / 255 + 1e-6
  assert not os.listdir(tmp_path / "serve"), "temporary folder left behind"
