"""The HTML report in a real browser: Debian's headless Chromium, driven over the DevTools
protocol by Playwright (launched on /usr/bin/chromium; Playwright's own browser download
is never used). The page loads with no console error, no failed load and no request
but itself; its matrix has one cell per device × model; a cell opens its details; at
phone width nothing but the tables' own scrollers is wider than the screen. Screenshots
(desktop and phone, first screen and whole page) go to out/lab-report/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from edgeq.lab import report
from edgeq.lab.history import History
from tests.support import report_history as rh

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def need_browser():
    """Playwright's sync API, or a skip saying how to get it (a failure in CI, which
    installs both: there the test must run)."""
    missing = None
    if CHROMIUM is None:
        missing = "no Chromium: apt-get install chromium (.ci/run installs it)"
    try:
        from playwright import sync_api
    except ImportError:
        missing = missing or "no Playwright: pip install -e '.[dev]'"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {missing}")
        pytest.skip(missing)
    return sync_api


#: Quiet in a closed network: no sync, no component or safe-browsing updates.
ARGS = [
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-sandbox",  # root in CI; the page is our own file
]
SHOTS = Path(__file__).resolve().parents[2] / "out" / "lab-report"


@pytest.fixture(scope="module")
def page_file(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("browser")
    with History(rh.fill(folder / "history.sqlite")) as h:
        doc = report.build(h)
    return report.write(doc, "html", folder / "lab-report.html"), doc


@pytest.fixture(scope="module")
def browser():
    api = need_browser()
    with api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def open_page(browser, path: Path, width: int, height: int):
    """Open the report as a person would (file://), recording everything that happens."""
    page = browser.new_page(viewport={"width": width, "height": height})
    seen = {"console": [], "errors": [], "failed": [], "requests": []}
    page.on("console", lambda m: seen["console"].append((m.type, m.text)))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("requestfailed", lambda r: seen["failed"].append((r.url, r.failure)))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    return page, seen


def assert_quiet(seen: dict, path: Path) -> None:
    problems = [c for c in seen["console"] if c[0] in ("error", "warning")]
    assert problems == [] and seen["errors"] == [], (problems, seen["errors"])
    assert seen["failed"] == []
    others = [u for u in seen["requests"] if u != path.as_uri()]
    assert all(u.startswith(("data:", "about:")) for u in others), others


def test_report_in_chromium_at_desktop_width(browser, page_file):
    path, doc = page_file
    page, seen = open_page(browser, path, 1280, 900)
    assert_quiet(seen, path)
    cells = page.locator("table.matrix td.cell")
    pairs = [(c.get_attribute("data-device"), c.get_attribute("data-model")) for c in cells.all()]
    expected = {(r["device"], r["model_label"]) for r in doc["results"]}
    assert len(pairs) == len(set(pairs)) == len(expected) == 10 and set(pairs) == expected
    # Every figure decoded (a broken data: URI would show as a 0×0 image).
    widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
    assert len(widths) == 10 and min(widths) > 300
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / "desktop.png")
    page.screenshot(path=SHOTS / "desktop-full.png", full_page=True)

    # A cell opens the details of its result.
    pi4 = page.locator('td.cell[data-device="pi4"][data-model="model_int8.tflite"] a')
    pi4.click()
    anchor = next(
        r["anchor"] for r in doc["results"] if r["device"] == "pi4" and r["mode"] == "int8"
    )
    assert page.evaluate("location.hash") == f"#{anchor}"
    details = page.locator(f"#{anchor}")
    assert details.is_visible() and "regression:latency_p90" in details.inner_text()
    top = page.evaluate(f"document.getElementById('{anchor}').getBoundingClientRect().top")
    assert 0 <= top < 100  # scrolled to it
    page.close()


def test_report_in_chromium_at_phone_width(browser, page_file):
    path, doc = page_file
    page, seen = open_page(browser, path, 390, 844)
    assert_quiet(seen, path)
    # Nothing but the tables' own scrollers is wider than the phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator("table.matrix td.cell").count() == len(doc["results"])
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / "phone.png")
    page.screenshot(path=SHOTS / "phone-full.png", full_page=True)
    page.close()


def test_the_checks_catch_a_page_that_reaches_out(browser, tmp_path):
    """The quiet-page checks can fail: a page that loads an image from the loopback
    (nothing listens on port 9) shows a failed load and a request that is not data:."""
    page_path = tmp_path / "leaky.html"
    page_path.write_text(
        "<!doctype html><title>x</title><img src='http://127.0.0.1:9/x.png'>"
        "<script>console.error('boom')</script>"
    )
    page, seen = open_page(browser, page_path, 800, 600)
    page.close()
    with pytest.raises(AssertionError):
        assert_quiet(seen, page_path)
    assert any(u.startswith("http://127.0.0.1:9/") for u, _ in seen["failed"])
    assert ("error", "boom") in seen["console"]
