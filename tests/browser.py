"""Browser tests' helpers: a real Chromium (Playwright's if installed, else Debian's), pages that
fail their test on any console or page error, and screenshots under build/screenshots/.

Without a browser the tests skip and say why; without a built dashboard they fail and say how
to build it (CI builds it through ``pip install``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "build" / "screenshots"
DEBIAN_CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from waddle.server.routes import dashboard

    if not dashboard.built():
        pytest.fail(f"the dashboard is not built: run `{dashboard.BUILD_COMMAND}`")
    playwright = sync_api.sync_playwright().start()
    executable = playwright.chromium.executable_path
    if not os.path.exists(executable):
        executable = DEBIAN_CHROMIUM
    if not os.path.exists(executable):
        playwright.stop()
        pytest.skip("no Chromium: neither Playwright's nor Debian's (apt-get install -y chromium)")
    launched = playwright.chromium.launch(executable_path=executable, args=ARGS)
    yield launched
    launched.close()
    playwright.stop()


# A logged HTML page's own script refused by its sandbox (a frame from /files): the browser
# keeping the promise, not an error of the dashboard.
SANDBOX_REFUSAL = (
    "because the document's frame is sandboxed and the 'allow-scripts' permission is not set"
)


def _is_problem(message) -> bool:
    if message.type != "error":
        return False
    refused = SANDBOX_REFUSAL in message.text and "/files/" in message.text
    return not refused


@pytest.fixture
def page(browser):
    """A fresh page (1280×900); the test fails on any console error or uncaught page error,
    and on any dialog (alert, confirm): nothing the dashboard shows should open one."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    new = context.new_page()
    problems: list[str] = []
    new.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            if _is_problem(message)
            else None
        ),
    )
    new.on("pageerror", lambda error: problems.append(f"page error: {error}\n{error.stack}"))

    def dialog(d):
        problems.append(f"a dialog opened: {d.message}")
        d.dismiss()

    new.on("dialog", dialog)
    new.set_default_timeout(15_000)
    yield new
    context.close()
    assert not problems, "\n".join(problems)


def screenshot(page, name: str, full_page: bool = False, around: str | None = None) -> Path:
    """A screenshot of the page (``full_page``: all of it), or of the full width of the page
    around every element ``around`` selects."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    clip = page.evaluate(AROUND, around) if around else None
    page.screenshot(path=str(path), full_page=full_page or clip is not None, clip=clip)
    return path


# The page's full width, from above the first element a selector matches to below the last.
AROUND = """(selector) => {
  const boxes = [...document.querySelectorAll(selector)].map((e) => e.getBoundingClientRect());
  const top = Math.min(...boxes.map((b) => b.top)) + scrollY - 8;
  const bottom = Math.max(...boxes.map((b) => b.bottom)) + scrollY + 8;
  return { x: 0, y: Math.max(0, top), width: document.documentElement.clientWidth, height: bottom - Math.max(0, top) };
}"""


# JavaScript run in the page: how many canvas pixels of the chart (the n-th .chart) have each
# colour, by the legend's or the series' colour; and where the top-most such pixel lies.
CANVAS_PIXELS = """([index, colors]) => {
  const chart = document.querySelectorAll('.chart')[index].chart;
  const plot = chart.plot;
  const ctx = plot.ctx;
  const { left, top, width, height } = plot.bbox;
  const data = ctx.getImageData(left, top, width, height).data;
  const counts = colors.map(() => 0);
  const tops = colors.map(() => null);
  const rgb = colors.map((c) => {
    const n = parseInt(c.slice(1), 16);
    return [n >> 16, (n >> 8) & 255, n & 255];
  });
  for (let i = 0; i < data.length; i += 4) {
    rgb.forEach(([r, g, b], k) => {
      if (Math.abs(data[i] - r) < 8 && Math.abs(data[i + 1] - g) < 8 && Math.abs(data[i + 2] - b) < 8 && data[i + 3] > 200) {
        counts[k]++;
        const y = Math.floor(i / 4 / width);
        if (tops[k] === null || y < tops[k]) tops[k] = y;
      }
    });
  }
  return { counts, tops, height };
}"""


def wait_js(page, expression: str, timeout: float = 15.0):
    """Wait until ``expression`` is truthy in the page. Playwright's wait_for_function compiles
    its predicate with eval, which the dashboard's CSP forbids; evaluate() is not subject to it."""
    from tests.conftest import wait_until

    return wait_until(lambda: page.evaluate(expression), timeout=timeout, interval=0.02)
