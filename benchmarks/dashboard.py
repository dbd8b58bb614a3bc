"""Dashboard benchmark: waddle's browser dashboard against its targets, and the same data in
TensorBoard's and trackio's UIs, in headless Chromium on this machine (software rendering).

Run it with the peers' venv (it holds playwright, tensorboard, tensorboardX, trackio and waddle,
installed from this checkout with ``pip install -e .``: check that ``waddle.server`` is this
checkout's, or another build is measured): ``.venv-peers/bin/python benchmarks/dashboard.py`` (about 10-15 minutes the first time,
most of it writing TensorBoard's event files; the data is kept in ``benchmarks/_data/dashboard``
and reused), ``--quick`` for small data. It prints markdown tables and writes them to
``benchmarks/results/dashboard.md``.

Data, each written with the tracker's own client:
- D1: one run, 50 metrics x 100,000 steps (5M points);
- D2: 10 runs x 10 metrics x 10,000 steps (compare view);
- a project of 10,000 finished runs (waddle only: its runs table);
- a live run logging its own wall-clock stamp every 50 ms (waddle only: log() -> pixel).

"Drawn", for every UI alike: a full-page screenshot is taken again and again after navigation,
and a chart counts as drawn once its box holds at least 150 coloured pixels (max - min channel
>= 30: a data line, not grey text or grid). Times run from the navigation's start to the
screenshot that showed it, so they include up to one screenshot's time (~50-150 ms here).
Each figure is the median of 3 fresh pages (``--tries`` for waddle's), each opened in a window
that has finished starting up (``fresh_page``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import gzip
import io
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "_data" / "dashboard"
RESULTS = HERE / "results" / "dashboard.md"
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 800}
# A frame interval longer than this missed the display's next refresh (60 Hz: 16.7 ms apart,
# with room for its jitter): the hover's and the runs table's dropped frames.
LATE_MS = 25.0
TRIES = 3

# Targets from GitHub issue 9.
TARGETS = {
    "first_chart": 500.0,  # ms after navigation
    "d1_drawn": 1500.0,  # ms, 50 metrics x 100k points fully drawn
    "compare": 1500.0,  # ms, 10 runs x 10 metrics
    "hover": 16.0,  # ms per frame
    "heap": 150.0,  # MB for 50 charts
    "bundle": 150.0,  # KB gzipped
    "table": 1000.0,  # ms, 10,000 runs interactive
    "live_p99": 1000.0,  # ms, log() -> pixel
}
FULL = {"d1": (50, 100_000), "d2": (10, 10, 10_000), "big": 10_000, "live_s": 20.0}
QUICK = {"d1": (50, 10_000), "d2": (10, 10, 2_000), "big": 2_000, "live_s": 8.0}
# The CSS selector of one chart's drawing area, per UI.
CHARTS = {"waddle": ".chart .uplot", "tensorboard": ".series-view", "trackio": ".vega-embed"}


# ---------------------------------------------------------------- data, per tracker's client


def curve(key: int, steps: int, run: int = 0) -> np.ndarray:
    """A loss-like curve with noise, different per key and run (deterministic)."""
    rng = np.random.default_rng(key * 1000 + run)
    x = np.arange(steps) / max(1, steps - 1)
    return (1.5 + key % 7) * np.exp(-3 * x * (1 + run / 10)) + 0.05 * rng.standard_normal(steps)


def write_waddle(root: Path, sizes: dict) -> None:
    import waddle
    from waddle import event, segment

    quiet = waddle.Settings(console=False, system_metrics_interval=0)
    keys, steps = sizes["d1"]
    run = waddle.init(project="d1", dir=root, name="d1", settings=quiet)
    columns = [curve(k, steps) for k in range(keys)]
    for step in range(steps):
        run.log({f"m/k{k:02d}": float(columns[k][step]) for k in range(keys)})
    run.finish()
    runs, keys, steps = sizes["d2"]
    for r in range(runs):
        run = waddle.init(
            project="d2", dir=root, name=f"run{r}", config={"lr": 10**-r}, settings=quiet
        )
        columns = [curve(k, steps, r) for k in range(keys)]
        for step in range(steps):
            run.log({f"m/k{k}": float(columns[k][step]) for k in range(keys)})
        run.finish()
    start = time.time() - 10 * 86400
    for i in range(sizes["big"]):
        run_id = f"run-{i:05d}"
        folder = root / "big" / run_id
        folder.mkdir(parents=True)
        events = [
            {"type": "run_start", "project": "big", "run_id": run_id, "name": f"r{i:05d}",
             "config": {"lr": 10 ** -(i % 5), "depth": i % 7}, "tags": ["sweep"], "notes": None,
             "group": f"g{i % 10}", "job_type": "train", "resumed": False, "context": {}},
            {"type": "log", "step": 0, "data": {"loss": 1 / (1 + i), "acc": (i % 100) / 100}},
            {"type": "finish", "exit_code": 0, "status": "finished", "last_step": 0,
             "dropped": {"steps": 0, "values": 0}, "stalled_seconds": 0.0, "lost_events": 0,
             "lost_values": 0},
        ]  # fmt: skip
        lines = [
            event.encode({"v": 1, "seq": seq, "t": start + i + seq, **body})
            for seq, body in enumerate(events)
        ]
        (folder / segment.segment_name(0)).write_bytes(b"".join(lines))


def write_tensorboard(root: Path, sizes: dict) -> None:
    from tensorboardX import SummaryWriter

    keys, steps = sizes["d1"]
    writer = SummaryWriter(str(root / "d1" / "d1"))
    columns = [curve(k, steps) for k in range(keys)]
    for step in range(steps):
        for k in range(keys):
            writer.add_scalar(f"m/k{k:02d}", float(columns[k][step]), step)
    writer.close()
    runs, keys, steps = sizes["d2"]
    for r in range(runs):
        writer = SummaryWriter(str(root / "d2" / f"run{r}"))
        columns = [curve(k, steps, r) for k in range(keys)]
        for step in range(steps):
            for k in range(keys):
                writer.add_scalar(f"m/k{k}", float(columns[k][step]), step)
        writer.close()


def write_trackio(root: Path, sizes: dict) -> None:
    os.environ["TRACKIO_DIR"] = str(root)
    os.environ["HF_HOME"] = str(root / "hf")
    import trackio

    keys, steps = sizes["d1"]
    trackio.init(project="d1", name="d1")
    columns = [curve(k, steps) for k in range(keys)]
    for step in range(steps):
        trackio.log({f"m/k{k:02d}": float(columns[k][step]) for k in range(keys)})
    trackio.finish()
    runs, keys, steps = sizes["d2"]
    for r in range(runs):
        trackio.init(project="d2", name=f"run{r}", config={"lr": 10**-r})
        columns = [curve(k, steps, r) for k in range(keys)]
        for step in range(steps):
            trackio.log({f"m/k{k}": float(columns[k][step]) for k in range(keys)})
        trackio.finish()


WRITERS = {"waddle": write_waddle, "tensorboard": write_tensorboard, "trackio": write_trackio}


def ensure_data(name: str, sizes: dict, label: str) -> Path:
    """The tracker's data folder, written in a subprocess unless this size is already there."""
    root = DATA / label / name
    stamp = root / ".complete"
    if stamp.exists() and stamp.read_text() == json.dumps(sizes):
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    started = time.monotonic()
    code = (
        f"import json, sys; from pathlib import Path; sys.path.insert(0, {str(HERE)!r});"
        f"import dashboard; dashboard.WRITERS[{name!r}](Path({str(root)!r}), json.loads({json.dumps(sizes)!r}))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
    stamp.write_text(json.dumps(sizes))
    print(f"  wrote {name}'s data in {time.monotonic() - started:.0f} s", flush=True)
    return root


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
        except OSError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(0.2)


@contextlib.contextmanager
def process(args: list[str], env: dict | None = None) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(
        args,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def serve_waddle(
    root: Path, sizes: dict, python: str = sys.executable, name: str = "waddle"
) -> Iterator[str]:
    """`waddle serve` of the install `python` belongs to (another one with --baseline)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # A fresh index each time: every run measures the same catch-up and sees no stale run.
    db = root.parent / f"{name}-index.duckdb"
    for stale in (db, Path(f"{db}.wal")):
        stale.unlink(missing_ok=True)
    args = [
        python,
        "-P",  # not the current folder first: in a clone, its waddle/ would shadow a baseline's
        "-m",
        "waddle.cli",
        "serve",
        str(root),
        "--port",
        str(port),
        "--db",
        str(db),
    ]
    with process(args):

        def ready():
            health = get_json(f"{url}/api/health")
            if not health["ingest"]["caught_up"]:
                return False
            total = get_json(f"{url}/api/projects/big/runs?limit=1")["total"]
            return total == sizes["big"]

        wait_for(ready, 600, "waddle serve")
        yield url


@contextlib.contextmanager
def serve_tensorboard(root: Path, sizes: dict, project: str) -> Iterator[str]:
    port = free_port()
    binary = str(Path(sys.executable).with_name("tensorboard"))
    args = [binary, "--logdir", str(root / project), "--host", "127.0.0.1", "--port", str(port)]
    with process(args):
        url = f"http://127.0.0.1:{port}"
        steps = sizes["d1"][1] if project == "d1" else sizes["d2"][2]
        run = "d1" if project == "d1" else "run9"
        tag = "m/k49" if project == "d1" else "m/k9"

        def loaded():
            points = get_json(f"{url}/data/plugin/scalars/scalars?tag={tag}&run={run}")
            return points and points[-1][1] == steps - 1

        wait_for(loaded, 900, "tensorboard")
        yield f"{url}/#timeseries"


@contextlib.contextmanager
def serve_trackio(root: Path, sizes: dict, project: str) -> Iterator[str]:
    port = free_port()
    binary = str(Path(sys.executable).with_name("trackio"))
    env = {"TRACKIO_DIR": str(root), "HF_HOME": str(root / "hf"), "GRADIO_SERVER_PORT": str(port)}
    with process([binary, "show", "--project", project], env=env):
        url = f"http://127.0.0.1:{port}/?project={project}"
        wait_for(lambda: urllib.request.urlopen(url, timeout=10).status == 200, 120, "trackio")
        yield url


# ---------------------------------------------------------------- measuring in Chromium

BOXES = """(selector) => [...document.querySelectorAll(selector)].map((el) => {
  const r = el.getBoundingClientRect();
  return [r.left, r.top, r.width, r.height];
}).filter(([x, y, w, h]) => w > 20 && h > 20 && y >= 0 && y + h <= innerHeight && x < innerWidth)"""


def drawn_charts(page, selector: str) -> tuple[int, int]:
    """(charts drawn, charts wholly in view) from one screenshot."""
    from PIL import Image

    boxes = page.evaluate(BOXES, selector)
    if not boxes:
        return 0, 0
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(np.int16)
    coloured = (shot.max(axis=2) - shot.min(axis=2)) >= 30
    drawn = 0
    for x, y, w, h in boxes:
        x0, y0 = max(0, int(x)), max(0, int(y))
        if coloured[y0 : int(y + h), x0 : int(x + w)].sum() >= 150:
            drawn += 1
    return drawn, len(boxes)


def time_until_drawn(page, url: str, selector: str, need: str, timeout: float = 120) -> float:
    """ms from navigation to the screenshot showing `need` ("first": one chart; "all": every
    chart in view, at least two) drawn."""
    started = time.perf_counter()
    page.goto(url, wait_until="commit")
    while True:
        try:
            drawn, shown = drawn_charts(page, selector)
        except Exception:  # the page is still being replaced: look again
            drawn, shown = 0, 0
        if (need == "first" and drawn >= 1) or (need == "all" and shown >= 2 and drawn == shown):
            return (time.perf_counter() - started) * 1000
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{url}: {drawn} of {shown} charts drawn after {timeout:.0f} s")


def heap_mb(page) -> float:
    session = page.context.new_cdp_session(page)
    session.send("HeapProfiler.collectGarbage")
    return session.send("Runtime.getHeapUsage")["usedSize"] / 2**20


def median_of(browser, measure, viewport=VIEWPORT) -> tuple[float, float | None]:
    """Median over fresh pages of measure(page) -> ms, and the JS heap of the last page."""
    times, heap = [], None
    for _ in range(TRIES):
        page = fresh_page(browser, viewport)
        times.append(measure(page))
        heap = heap_mb(page)
        page.context.close()
    return statistics.median(times), heap


def in_page_ms(page, expression: str, timeout_ms: float = 60_000) -> float:
    """performance.now() (ms since navigation) at the first animation frame where
    `expression` holds, polled in the page itself."""
    return page.evaluate(
        """([expression, timeout]) => new Promise((resolve, reject) => {
          const test = new Function(`return (${expression})`);
          const tick = () => {
            let ok = false;
            try { ok = test(); } catch (e) {}
            if (ok) resolve(performance.now());
            else if (performance.now() > timeout) reject(new Error('timed out: ' + expression));
            else requestAnimationFrame(tick);
          };
          tick();
        })""",
        [expression, timeout_ms],
    )


def fresh_page(browser, viewport=VIEWPORT, bypass_csp: bool = False):
    """A page in a context of its own (no cache, no storage), its window open on about:blank
    and done starting up before the measured navigation, as a user's browser is when they
    open the dashboard. Each context is a new window, whose start-up (Chromium's omnibox
    WebUI) took both cores for ~0.3 s right as the measured page drew its first rows.
    `bypass_csp`: page-side polling may compile code (CDP evaluation is not bound by the
    page's CSP, but new Function inside the page is); used only for in-page timers."""
    page = browser.new_context(viewport=viewport, bypass_csp=bypass_csp).new_page()
    page.goto("about:blank")
    machine_quiet()
    return page


def machine_quiet(busy: float = 0.25, window: float = 0.1, timeout: float = 3.0) -> None:
    """Wait until the machine's CPUs were busy less than `busy` of a `window` (at most
    `timeout` seconds: a shared machine may never be quiet)."""

    def ticks() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(n) for n in stat.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all, idle + iowait

    deadline = time.monotonic() + timeout
    total, idle = ticks()
    while time.monotonic() < deadline:
        time.sleep(window)
        now_total, now_idle = ticks()
        spent = now_total - total
        if spent and 1 - (now_idle - idle) / spent < busy:
            return
        total, idle = now_total, now_idle


# ---------------------------------------------------------------- waddle's own figures


# Every figure of one fresh-page round, by name; `--figures` picks some.
FIGURES = ("first", "views", "hover", "table", "heap", "bundle", "live")


def waddle_figures(
    browser,
    urls: dict[str, str],
    sizes: dict,
    figures=FIGURES,
    pythons: dict | None = None,
    tries: int = TRIES,
) -> dict:
    """Each install's figures (``urls``: label -> its server), medians of `tries` rounds; the
    installs take turns round by round, so a noisy moment of the machine falls on both."""
    samples: dict = {label: [] for label in urls}
    for round_number in range(tries):
        order = list(urls) if round_number % 2 == 0 else list(reversed(urls))
        for label in order:
            samples[label].append(one_round(browser, urls[label], sizes, figures))
    out = {}
    for label, rounds in samples.items():
        out[label] = {name: median_dict([r[name] for r in rounds]) for name in rounds[0]}
        if "bundle" in figures:
            out[label]["bundle"] = bundle_kb((pythons or {}).get(label, sys.executable))
        if "live" in figures:
            out[label]["live"] = live_latency(browser, urls[label], sizes["live_s"])
    return out


def median_dict(values: list):
    """The median of numbers, or of each key of dicts of numbers."""
    if isinstance(values[0], dict):
        return {k: median_dict([v[k] for v in values]) for k in values[0]}
    return statistics.median(values)


def one_round(browser, url: str, sizes: dict, figures) -> dict:
    """Each chosen figure once, each on a fresh page."""
    out: dict = {}
    d1 = get_json(f"{url}/api/projects/d1/runs")["runs"][0]["id"]
    d2 = [r["id"] for r in get_json(f"{url}/api/projects/d2/runs?limit=100")["runs"]]
    run_url = f"{url}/p/d1/r/{d1}"
    compare_url = f"{url}/p/d2/compare?runs={','.join(d2)}"
    sel = CHARTS["waddle"]
    charts_ready = "[...document.querySelectorAll('.chart')].filter(c => c.chart?.plot && c.chart.series[0]?.xs.length).length"
    if "first" in figures:
        page = fresh_page(browser)
        out["first_chart"] = time_until_drawn(page, run_url, sel, "first")
        page.context.close()
        page = fresh_page(browser)
        out["first_chart_cast"] = first_drawn_frame(page, run_url, sel)
        page.context.close()
        page = fresh_page(browser, bypass_csp=True)
        page.goto(run_url, wait_until="commit")
        out["first_chart_in_page"] = in_page_ms(page, f"{charts_ready} >= 1")
        page.context.close()
    if "views" in figures:
        page = fresh_page(browser)
        out["d1_view"] = time_until_drawn(page, run_url, sel, "all")
        out["heap_view"] = heap_mb(page)
        page.context.close()
        page = fresh_page(browser)
        out["compare"] = time_until_drawn(page, compare_url, sel, "all")
        out["heap_compare"] = heap_mb(page)
        page.context.close()
    if "heap" in figures:
        # All 50 charts, with a viewport tall enough to hold them (every chart on screen).
        keys = sizes["d1"][0]
        page = fresh_page(browser, {"width": 1280, "height": 270 * keys // 2 + 400}, True)
        page.goto(run_url, wait_until="commit")
        out["d1_all"] = in_page_ms(page, f"{charts_ready} >= {keys}")
        page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        out["heap_all"] = heap_mb(page)
        page.context.close()
    if "hover" in figures:
        out["hover"] = hover_frames(browser, compare_url)
    if "table" in figures:
        out["table"], out["scroll"] = table_figures(browser, url)
    return out


def first_drawn_frame(page, url: str, selector: str, timeout: float = 60) -> float:
    """ms from navigation to the first frame the page's compositor made that shows a chart
    drawn (the rule of drawn_charts), from a screencast: each frame carries the time it was
    made, so no screenshot's encoding and transfer is counted. The browser sends the next
    frame only once the last is acknowledged, so this waits without other work meanwhile."""
    session = page.context.new_cdp_session(page)
    frames: list = []

    def on_frame(frame):
        session.send("Page.screencastFrameAck", {"sessionId": frame["sessionId"]})
        frames.append((frame["metadata"]["timestamp"], frame["data"]))

    session.on("Page.screencastFrame", on_frame)
    session.send("Page.startScreencast", {"format": "jpeg", "quality": 90})
    page.goto(url, wait_until="commit")
    started = looked = time.perf_counter()
    while time.perf_counter() - started < timeout:
        page.wait_for_timeout(20)  # frames are acknowledged while Playwright waits
        if frames and time.perf_counter() - looked > 0.5:
            looked = time.perf_counter()
            if frame_shows_a_chart(frames[-1][1], page.evaluate(BOXES, selector)):
                break
    session.send("Page.stopScreencast")
    boxes = page.evaluate(BOXES, selector)
    origin = page.evaluate("performance.timeOrigin") / 1000
    for stamp, data in sorted(frames):
        if frame_shows_a_chart(data, boxes):
            return (stamp - origin) * 1000
    raise TimeoutError(f"{url}: no screencast frame showed a chart drawn")


def frame_shows_a_chart(data: str, boxes: list) -> bool:
    from PIL import Image

    shot = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
    coloured = (shot.astype(np.int16).max(axis=2) - shot.min(axis=2)) >= 30
    for x, y, w, h in boxes:
        x0, y0 = max(0, int(x)), max(0, int(y))
        if coloured[y0 : int(y + h), x0 : int(x + w)].sum() >= 150:
            return True
    return False


# Trace categories for CPU per frame: each thread's top-level tasks carry their CPU time.
TRACE_CATEGORIES = ["toplevel", "disabled-by-default-devtools.timeline"]
THREADS = {"CrRendererMain": "main", "Compositor": "compositor", "VizCompositorThread": "viz"}


def thread_names(events: list[dict]) -> dict[tuple, str]:
    """A trace's thread names, by (pid, tid)."""
    return {
        (e["pid"], e["tid"]): e["args"]["name"]
        for e in events
        if e.get("ph") == "M" and e.get("name") == "thread_name"
    }


def cpu_per_frame(browser, page, script: str) -> dict:
    """Run `script` (which resolves to {frames: [intervals]}) under a trace: CPU ms per
    frame of the page's main thread, its compositor thread and the display compositor. Unlike
    frame intervals, these barely move with what else the machine runs."""
    path = DATA / "trace.json"
    browser.start_tracing(page=page, path=str(path), categories=TRACE_CATEGORIES)
    frames = page.evaluate(script)["frames"]
    browser.stop_tracing()
    events = json.loads(path.read_text())["traceEvents"]
    path.unlink()
    names = thread_names(events)
    spans: dict = {name: [] for name in THREADS.values()}
    for e in events:
        thread = THREADS.get(names.get((e.get("pid"), e.get("tid"))))
        if thread and e.get("ph") == "X" and "tdur" in e:
            spans[thread].append((e["ts"], e["dur"], e["tdur"]))
    out = {}
    for thread, items in spans.items():
        total, end = 0.0, -1.0
        for ts, dur, tdur in sorted(items, key=lambda i: (i[0], -i[1])):
            if ts >= end:  # a top-level task; those inside it are part of its CPU time
                total, end = total + tdur / 1000, ts + dur
        out[thread] = total / len(frames)
    return out


HOVER_SCRIPT = """() => new Promise((resolve) => {
  const over = document.querySelector('.chart .u-over');
  const box = over.getBoundingClientRect();
  const handler = [], frames = [];
  over.dispatchEvent(new MouseEvent('mouseenter', { clientX: box.left + 5, clientY: box.top + 5 }));
  let i = 0, last = performance.now();
  const step = () => {
    const now = performance.now();
    frames.push(now - last);
    last = now;
    const t0 = performance.now();
    over.dispatchEvent(new MouseEvent('mousemove', {
      clientX: box.left + 5 + (i * 7) % (box.width - 10), clientY: box.top + box.height / 2, bubbles: true,
    }));
    handler.push(performance.now() - t0);
    if (++i < 180) requestAnimationFrame(step);
    else resolve({ handler, frames: frames.slice(2) });
  };
  requestAnimationFrame(step);
})"""


def hover_frames(browser, compare_url: str) -> dict:
    """Moving the cursor over a chart of the compare view (10 runs, every chart on screen and
    synced): the handler's time per mouse move and the frame interval while moving; then the
    same moves under a trace, for the CPU each frame took."""
    page = fresh_page(browser, {"width": 1280, "height": 1600}, bypass_csp=True)
    page.goto(compare_url, wait_until="commit")
    in_page_ms(
        page, "[...document.querySelectorAll('.chart')].filter(c => c.chart?.plot).length >= 10"
    )
    result = page.evaluate(HOVER_SCRIPT)
    charts = page.evaluate("document.querySelectorAll('.chart').length")
    cpu = cpu_per_frame(browser, page, HOVER_SCRIPT)
    page.context.close()
    pct = lambda xs, q: float(np.percentile(xs, q))  # noqa: E731
    return {
        "handler_p50": pct(result["handler"], 50),
        "handler_p95": pct(result["handler"], 95),
        "frame_p50": pct(result["frames"], 50),
        "frame_p95": pct(result["frames"], 95),
        # A frame that missed the display's next refresh (60 Hz: 16.7 ms apart): the page's
        # work, or the machine's, did not fit in a frame.
        "late": sum(1 for f in result["frames"] if f > LATE_MS),
        "frames": len(result["frames"]),
        "charts": charts,
        "cpu": cpu,
    }


SCROLL_SCRIPT = """() => new Promise((resolve) => {
  const rows = document.querySelector('.runs-rows');
  const frames = [];
  let last = performance.now(), i = 0;
  const step = () => {
    const now = performance.now();
    frames.push(now - last);
    last = now;
    rows.scrollTop += rows.clientHeight;
    if (++i < 120) requestAnimationFrame(step);
    else resolve({ frames: frames.slice(1) });
  };
  requestAnimationFrame(step);
})"""


def table_figures(browser, url: str) -> tuple[float, dict]:
    """The 10,000-run table: ms until its first rows are shown; then a fast scroll, one
    screenful per frame for 120 frames, and how many frames took longer than 25 ms; then the
    same scroll from the top again under a trace, for the CPU each frame took."""
    page = fresh_page(browser, bypass_csp=True)
    page.goto(f"{url}/p/big?cols=summary.loss,config.lr", wait_until="commit")
    shown = in_page_ms(page, "document.querySelectorAll('.runs-rows .row[data-run]').length > 10")
    frames = page.evaluate(SCROLL_SCRIPT)["frames"]
    rows = page.evaluate("document.querySelectorAll('.runs-rows .row').length")
    page.evaluate("document.querySelector('.runs-rows').scrollTop = 0")
    page.wait_for_timeout(300)
    cpu = cpu_per_frame(browser, page, SCROLL_SCRIPT)
    page.context.close()
    return shown, {
        "p95": float(np.percentile(frames, 95)),
        "slow": sum(1 for f in frames if f > LATE_MS),
        "frames": len(frames),
        "rows_in_dom": rows,
        "cpu": cpu,
    }


def bundle_kb(python: str = sys.executable) -> float:
    """The built dashboard of the install `python` belongs to, gzipped."""
    code = "from waddle.server.routes import dashboard; print(dashboard.DIST)"
    run = subprocess.run([python, "-P", "-c", code], capture_output=True, text=True)
    dist = Path(run.stdout.strip())
    total = 0
    for path in dist.iterdir():
        if path.suffix in (".js", ".css", ".html", ".svg"):
            total += len(gzip.compress(path.read_bytes(), 9))
    return total / 1024


LIVE_SCRIPT = """
import sys, time, waddle
run = waddle.init(project="live", dir=sys.argv[1], name=sys.argv[4],
                  settings=waddle.Settings(console=False, system_metrics_interval=0))
run.log({"stamp": time.time()})
time.sleep(float(sys.argv[3]))  # the page opens the run meanwhile
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    run.log({"stamp": time.time()})
    time.sleep(0.05)
run.finish()
"""


def live_latency(browser, url: str, seconds: float) -> dict:
    """A training process logs time.time() as the value every 50 ms; the page, open on that
    run, notes Date.now() at the animation frame after each point reached the chart."""
    root = Path(get_json(f"{url}/api/health")["log_dir"])
    # A name of its own: with --baseline both servers watch one folder, and the live project
    # holds the other install's finished run too.
    name = f"live-{time.time_ns()}"
    trainer = subprocess.Popen(
        [sys.executable, "-c", LIVE_SCRIPT, str(root), str(seconds), "6", name]
    )
    try:
        run = wait_for(
            lambda: next(
                (r for r in get_json(f"{url}/api/projects/live/runs")["runs"] if r["name"] == name),
                None,
            ),
            60,
            "the live run",
        )
        page = fresh_page(browser, bypass_csp=True)
        page.goto(f"{url}/p/live/r/{run['id']}", wait_until="commit")
        in_page_ms(page, "document.querySelector('.chart')?.chart?.series[0]?.xs.length >= 1")
        page.evaluate(
            """() => {
              // Points logged before this moment were waiting for the page, not for waddle.
              const since = Date.now() / 1000;
              window.__latency = [];
              const chart = document.querySelector('.chart').chart;
              const extend = chart.extend.bind(chart);
              chart.extend = (id, points, raw) => {
                extend(id, points, raw);
                requestAnimationFrame(() => {
                  const now = Date.now() / 1000;
                  for (const y of points.ys) if (y >= since) window.__latency.push((now - y) * 1000);
                });
              };
            }"""
        )
        trainer.wait(timeout=seconds + 60)
        page.wait_for_timeout(1500)
        latencies = page.evaluate("window.__latency")
        page.context.close()
    finally:
        if trainer.poll() is None:
            trainer.kill()
    if not latencies:
        return {"points": 0}
    return {
        "points": len(latencies),
        "p50": float(np.percentile(latencies, 50)),
        "p99": float(np.percentile(latencies, 99)),
        "max": float(max(latencies)),
    }


# ---------------------------------------------------------------- peers


def peer_figures(browser, name: str, root: Path, sizes: dict) -> dict:
    out: dict = {}
    serve = serve_tensorboard if name == "tensorboard" else serve_trackio
    sel = CHARTS[name]
    with serve(root, sizes, "d1") as url:
        out["first_chart"], out["heap_view"] = median_of(
            browser, lambda page: time_until_drawn(page, url, sel, "first")
        )
        out["d1_view"], _ = median_of(browser, lambda page: time_until_drawn(page, url, sel, "all"))
    with serve(root, sizes, "d2") as url:
        out["compare"], out["heap_compare"] = median_of(
            browser, lambda page: time_until_drawn(page, url, sel, "all")
        )
    return out


# ---------------------------------------------------------------- report


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for name in ("waddle", "tensorboard", "tensorboardX", "trackio", "playwright"):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} missing")
    chromium = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout
    return ", ".join(parts) + f", {chromium.strip()}"


def fmt(value, digits=0) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}"


PEER_KEYS = {"first_chart", "d1_view", "compare", "heap_view", "heap_compare"}


def cpu_text(cpu: dict | None) -> str:
    return "–" if cpu is None else " / ".join(fmt(cpu[t], 1) for t in THREADS.values()) + " ms"


def report(
    results: dict, sizes: dict, label: str, baseline: str | None = None, tries: int = TRIES
) -> str:
    w = results["waddle"]
    keys, steps = sizes["d1"]
    runs, ckeys, csteps = sizes["d2"]
    installs = ["baseline", "waddle"] if baseline else ["waddle"]

    def get(install, *path):
        value = results[install]
        for part in path:
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return value

    def ms(*path, digits=0):
        return lambda i: f"{fmt(get(i, *path), digits)} ms" if get(i, *path) is not None else "–"

    def pair(a, b, unit="ms", digits=1):
        return lambda i: (
            "–"
            if get(i, *a) is None
            else f"{fmt(get(i, *a), digits)} / {fmt(get(i, *b), digits)} {unit}".strip()
        )

    rows = [
        (
            "first chart drawn after navigation (screenshot loop)",
            ms("first_chart"),
            TARGETS["first_chart"],
        ),
        (
            "first chart drawn: the first screencast frame showing it",
            ms("first_chart_cast"),
            TARGETS["first_chart"],
        ),
        (
            "first chart drawn, in the page's clock (rAF)",
            ms("first_chart_in_page"),
            TARGETS["first_chart"],
        ),
        (
            f"D1: all {keys} charts drawn (viewport tall enough for all)",
            ms("d1_all"),
            TARGETS["d1_drawn"],
        ),
        ("D1: every chart in a 1280×800 view drawn", ms("d1_view"), None),
        ("D2 compare view, every chart in view drawn", ms("compare"), TARGETS["compare"]),
        (
            f"hover: handler per mouse move p50 / p95 ({get('waddle', 'hover', 'charts')} synced charts)",
            pair(("hover", "handler_p50"), ("hover", "handler_p95"), digits=2),
            None,
        ),
        (
            "hover: frames that missed a refresh (over 25 ms) while moving / CPU per frame, all"
            " threads",
            lambda i: (
                "–"
                if get(i, "hover") is None
                else f"{get(i, 'hover', 'late')} of {get(i, 'hover', 'frames')} /"
                f" {fmt(sum(get(i, 'hover', 'cpu').values()), 1)} ms"
            ),
            f"none / ≤ {TARGETS['hover']:.0f} ms",
        ),
        (
            "hover: frame interval p50 / p95 while moving (a 60 Hz display refreshes every"
            " 16.7 ms)",
            pair(("hover", "frame_p50"), ("hover", "frame_p95"), digits=1),
            None,
        ),
        (
            "hover: CPU per frame, page main / compositor / display threads",
            lambda i: cpu_text(get(i, "hover", "cpu")),
            None,
        ),
        (
            f"JS heap with all {keys} charts drawn",
            lambda i: f"{fmt(get(i, 'heap_all'), 1)} MB" if get(i, "heap_all") is not None else "–",
            TARGETS["heap"],
        ),
        (
            "bundle, gzipped (every script chunk, style, page, icon)",
            lambda i: f"{fmt(get(i, 'bundle'), 1)} KB" if get(i, "bundle") is not None else "–",
            TARGETS["bundle"],
        ),
        (f"runs table of {sizes['big']:,} runs: first rows shown", ms("table"), TARGETS["table"]),
        (
            "runs table: a screenful per frame for 119 frames, frame p95 / frames over 25 ms",
            lambda i: (
                "–"
                if get(i, "scroll") is None
                else f"{fmt(get(i, 'scroll', 'p95'), 1)} ms / {get(i, 'scroll', 'slow')}"
            ),
            "no dropped frames",
        ),
        (
            "runs table scrolling: CPU per frame, page main / compositor / display threads",
            lambda i: cpu_text(get(i, "scroll", "cpu")),
            None,
        ),
        (
            f"log() → pixel on screen, p50 / p99 / max ({get('waddle', 'live', 'points') or 0} points)",
            lambda i: (
                "–"
                if not get(i, "live", "p50")
                else f"{fmt(get(i, 'live', 'p50'))} / {fmt(get(i, 'live', 'p99'))} / {fmt(get(i, 'live', 'max'))} ms"
            ),
            TARGETS["live_p99"],
        ),
    ]
    head = " | ".join(
        [
            "figure",
            *(("before (baseline)", "after (this install)") if baseline else ("waddle",)),
            "target",
        ]
    )
    lines = [
        "# Dashboard benchmark",
        "",
        f"`benchmarks/dashboard.py{' --quick' if label == 'quick' else ''}` on "
        f"{datetime.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {versions()}. Headless Chromium, "
        f"`--disable-gpu` (software rendering), {VIEWPORT['width']}×{VIEWPORT['height']} unless "
        f"said, medians of {tries} fresh pages (the peers' of {TRIES}). D1: one run, "
        f"{keys} metrics × {steps:,} steps; D2: {runs} runs × {ckeys} metrics × {csteps:,} steps; "
        "each written with the tracker's own client.",
        "",
    ]
    if baseline:
        lines += [
            f"Before and after: the baseline is the install of `{baseline}`, serving the same "
            "folder at the same time; the two took turns, round by round (in alternating order), "
            "so a noisy moment of the shared machine falls on both.",
            "",
        ]
    lines += [
        "## waddle against its targets",
        "",
        f"| {head} |",
        "|---|" + "---:|" * (len(installs) + 1),
    ]
    for name, cell, target in rows:
        cells = [cell(i) for i in installs]
        if all(c == "–" for c in cells):
            continue
        goal = target if isinstance(target, str) or target is None else f"≤ {target:.0f}"
        if isinstance(target, (int, float)):
            goal += " MB" if "heap" in name else " KB" if "bundle" in name else " ms"
        lines.append(f"| {name} | {' | '.join(cells)} | {goal or ''} |")
    lines += [
        "",
        "## The same data in the peers' UIs",
        "",
        "| UI | first chart D1 | D1 view drawn | D2 view drawn | JS heap D1 / D2 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        # The peers' table: each UI's three times (waddle's only when those figures were taken).
        if name == "baseline" or ("error" not in r and not r.keys() >= PEER_KEYS):
            continue
        if "error" in r:
            lines.append(f"| {name} | {r['error']} | | | |")
            continue
        lines.append(
            f"| {name} | {fmt(r['first_chart'])} ms | {fmt(r['d1_view'])} ms | "
            f"{fmt(r['compare'])} ms | {fmt(r['heap_view'], 0)} / {fmt(r['heap_compare'], 0)} MB |"
        )
    lines += ["", "Ratios (peer ÷ waddle, above 1: waddle is faster):", ""]
    for name, r in results.items():
        if name in ("waddle", "baseline") or "error" in r or not w.keys() >= PEER_KEYS:
            continue
        ratios = ", ".join(
            f"{label} {r[k] / w[k]:.1f}×"
            for k, label in (
                ("first_chart", "first chart"),
                ("d1_view", "D1 view"),
                ("compare", "D2 view"),
            )
        )
        lines.append(f"- {name}: {ratios}")
    lines += [
        "",
        'Notes: "drawn" is judged on screenshots for every UI alike (a chart\'s box holds at least '
        "150 coloured pixels), so each time includes up to one screenshot (~50–150 ms here, its "
        "encoding and transfer); the screencast figure applies the same rule to the frames the "
        "page's compositor made, each stamped with when it was made. The in-page figures use the "
        "page's own clock at the animation frame where the charts hold their data. CPU per frame "
        "sums, from a trace of the same moves, the CPU time of each thread's tasks over the "
        "frames: unlike frame intervals it barely moves with the machine's load. Every UI draws "
        "only the charts in view; waddle's all-charts figure uses a viewport that holds all of "
        "them. The machine is shared and noisy: compare ratios from one run.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small data, a few minutes")
    parser.add_argument("--only", default="waddle,tensorboard,trackio")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument(
        "--figures", default=",".join(FIGURES), help=f"waddle's figures to take, of {FIGURES}"
    )
    parser.add_argument("--tries", type=int, default=TRIES, help="waddle's fresh pages per figure")
    parser.add_argument(
        "--baseline",
        metavar="PYTHON",
        help="another install's interpreter: its dashboard measured in turns with this one",
    )
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    label = "quick" if args.quick else "full"
    only = args.only.split(",")
    figures = args.figures.split(",")
    from playwright.sync_api import sync_playwright

    results: dict = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        print("waddle: writing data (once) and serving", flush=True)
        root = ensure_data("waddle", sizes, label)
        pythons = {"waddle": sys.executable}
        if args.baseline:
            pythons = {"baseline": args.baseline, **pythons}
        try:
            with contextlib.ExitStack() as stack:
                urls = {
                    name: stack.enter_context(serve_waddle(root, sizes, python, name))
                    for name, python in pythons.items()
                }
                results.update(waddle_figures(browser, urls, sizes, figures, pythons, args.tries))
        finally:
            shutil.rmtree(root / "live", ignore_errors=True)
        for name in ("tensorboard", "trackio"):
            if name not in only:
                continue
            print(f"{name}: writing data (once) and serving", flush=True)
            try:
                results[name] = peer_figures(browser, name, ensure_data(name, sizes, label), sizes)
            except Exception as error:  # a peer that fails is a row with its error
                results[name] = {"error": f"{type(error).__name__}: {error}"[:200]}
        browser.close()
    text = report(results, sizes, label, args.baseline, args.tries)
    print(text)
    Path(args.results).write_text(text)
    print(json.dumps(results, indent=1, default=str), file=sys.stderr)


if __name__ == "__main__":
    main()
