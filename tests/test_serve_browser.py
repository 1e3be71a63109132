"""The playground end to end in Debian's Chromium, driven headless by Playwright: typing,
totals, an error marked at its column, a shared link, a download.  Skipped (with the
reason) where Chromium or playwright is missing; never downloads a browser."""

import shutil
import threading
import time
import xml.etree.ElementTree as ET

import pytest

import cnnkit
from cnnkit.serve.server import make_server

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed (pip install playwright)")
if shutil.which(CHROMIUM) is None:
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)",
                allow_module_level=True)

VGG_START = "INPUT 64x64x3\n-> [CONV3-32 -> RELU]*2 -> POOL2\n-> FC-10"
BROKEN = "INPUT 64x64x3\n-> CONV3-32 -> FCC-10"


@pytest.fixture(scope="module")
def url():
    playground = make_server("127.0.0.1", 0)
    thread = threading.Thread(target=playground.serve_forever, daemon=True)
    thread.start()
    yield playground.url
    playground.shutdown()
    playground.server_close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def params_text(spec: str) -> str:
    return f"{cnnkit.parse(spec).summary().params:,}"


def replace_text(page, text: str) -> None:
    """Select all and type, as a person would."""
    page.click("#spec")
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.type(text, delay=2)


def test_typing_fills_the_table_and_the_totals(page, url):
    page.goto(url)
    page.wait_for_selector("#total-params")
    replace_text(page, VGG_START)
    page.wait_for_function(
        "n => document.querySelector('#total-params').textContent.includes(n)",
        arg=params_text(VGG_START))
    rows = page.locator("#table tbody tr")
    assert rows.count() == len(cnnkit.parse(VGG_START).nodes)
    assert "(3*3*3)*32 = 864" in page.locator("#table tbody").inner_text()
    page.select_option("#optimizer", "adam")
    page.wait_for_function("() => document.querySelector('#total-training')"
                           ".textContent.includes('adam')")
    page.click("#table tbody tr:nth-child(2)")
    assert "size (64 - 3 + 2*1)/1 + 1 = 64" in page.locator("tr.explain").inner_text()
    page.wait_for_selector("#drawing img")


def test_an_error_is_marked_at_its_column_with_the_hint(page, url):
    page.goto(url)
    page.wait_for_selector("#total-params")
    replace_text(page, BROKEN)
    page.wait_for_selector("#error:not([hidden])")
    assert "did you mean `FC-10`?" in page.inner_text("#error")
    assert "2:16: error:" in page.inner_text("#error")
    marked = page.locator("#highlight .t-error")
    assert marked.all_inner_texts() == ["FCC-10"]
    before = page.evaluate("""() => {
        const range = document.createRange();
        const text = document.querySelector('#highlight');
        range.setStart(text, 0);
        range.setEndBefore(text.querySelector('.t-error'));
        return range.toString();
    }""")
    assert before.split("\n")[-1] == "-> CONV3-32 -> "  # column 16 of line 2
    assert page.inner_text("#gutter .bad") == "2"


def test_a_shared_link_reproduces_the_network(page, browser, url):
    page.goto(url)
    page.wait_for_selector("#total-params")
    replace_text(page, VGG_START)
    page.fill("#batch", "16")
    page.wait_for_function("() => location.hash.includes('z=') && "
                           "location.hash.includes('batch=16')")
    time.sleep(0.3)  # the fragment follows the last keystroke
    link = page.evaluate("location.href")
    other = browser.new_page()
    other.goto(link)
    other.wait_for_selector("#total-params")
    other.wait_for_function("() => document.querySelector('#total-training')"
                            ".textContent.includes('batch 16')")
    assert other.input_value("#spec") == VGG_START
    assert other.inner_text("#totals") == page.inner_text("#totals")
    other.close()


def test_the_drawing_downloads_as_svg(page, url):
    page.goto(url)
    page.wait_for_selector("#drawing img")
    with page.expect_download() as event:
        page.click("[data-download=svg]")
    download = event.value
    assert download.suggested_filename.endswith(".svg")
    root = ET.parse(download.path()).getroot()
    assert root.tag.endswith("svg") and "CONV3-64" in "".join(root.itertext())
