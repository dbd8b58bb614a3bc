"""Where a dashboard view's load time goes: one fresh page of a view under a Chromium trace,
until every chart in view holds its data, then a breakdown of that time.

- the page's requests to the API: when each was sent and answered (the page's resource
  timing), the server's share (request sent to first byte) and the bytes;
- the same requests sent again one by one from Python, so the server's time without the
  page's work beside it shows;
- the page's main thread: CPU time by kind (scripting, style and layout, paint, parsing and
  compiling, garbage collection, other) and the compositor's raster time.

Views ``hover`` and ``scroll`` instead run the benchmark's moves (a cursor over 10 synced
charts; the runs table flung a screenful a frame) under a trace and break each thread's CPU
per frame down by task (page main, compositor, display compositor, raster workers), then list
each frame over 20 ms with what its main thread ran.

Run it against a `waddle serve` of the benchmark's data (benchmarks/dashboard.py writes it
into ``_data/dashboard/full/waddle``), under the shared lock:
``flock /work/wt/bench.lock python benchmarks/dashboard_trace.py --url http://127.0.0.1:PORT``.
Tracing slows the page: its totals run above the benchmark's, its structure is what counts.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dashboard as bench

CATEGORIES = [
    "toplevel",
    "devtools.timeline",
    "disabled-by-default-devtools.timeline",
    "v8",
    "v8.execute",
    "blink.user_timing",
]
KINDS = {
    "scripting": {"FunctionCall", "EvaluateScript", "v8.evaluateModule", "TimerFire",
                  "FireAnimationFrame", "EventDispatch", "RunMicrotasks", "V8.Execute",
                  "v8.run", "XHRReadyStateChange", "FireIdleCallback", "v8.callFunction"},
    "parse+compile": {"ParseHTML", "v8.compile", "v8.compileModule", "V8.CompileCode",
                      "v8.parseOnBackground", "CompileScript", "CompileCode",
                      "v8.produceModuleCache", "ParseAuthorStyleSheet", "v8.compileEval"},
    "style+layout": {"UpdateLayoutTree", "Layout", "RecalculateStyles", "IntersectionObserverController::computeIntersections",
                     "UpdateLayerTree", "HitTest", "ScheduleStyleRecalculation",
                     "InvalidateLayout"},
    "paint": {"Paint", "PrePaint", "Layerize", "PaintImage", "UpdateLayer", "CompositeLayers",
              "Commit", "UpdateLayerTree", "PaintSetup"},
    "gc": {"MinorGC", "MajorGC", "V8.GCScavenger", "V8.GCFinalizeMC", "BlinkGC.AtomicPhase",
           "V8.GC_MC_BACKGROUND_MARKING", "ThreadState::performIdleLazySweep", "V8.GCIncrementalMarking",
           "V8.GCCompactor", "V8.GCMarkCompactor", "V8.GCIncrementalMarkingFinalize"},
}  # fmt: skip
KIND_OF = {name: kind for kind, names in KINDS.items() for name in names}


def self_times(events: list[dict], tid_name: dict, want: str) -> dict[str, float]:
    """CPU-ish self time (wall duration, ms) per kind of the thread named ``want``."""
    spans = sorted(
        (e for e in events if e.get("ph") == "X" and tid_name.get((e["pid"], e["tid"])) == want),
        key=lambda e: (e["ts"], -e.get("dur", 0)),
    )
    out: dict[str, float] = defaultdict(float)
    by_name: dict[str, float] = defaultdict(float)
    stack: list[list] = []  # [end, kind, child time]

    def close(upto: float) -> None:
        while stack and stack[-1][0] <= upto:
            end, kind, name, start, children = stack.pop()
            own = (end - start) - children
            out[kind] += own / 1000
            by_name[name] += own / 1000
            if stack:
                stack[-1][4] += end - start

    for e in spans:
        close(e["ts"])
        name = e["name"]
        kind = KIND_OF.get(name) or (stack[-1][1] if stack else "other")
        stack.append([e["ts"] + e.get("dur", 0), kind, name, e["ts"], 0.0])
    close(float("inf"))
    top = sorted(by_name.items(), key=lambda item: -item[1])[:12]
    return dict(out), dict(top)


def trace_view(browser, url: str, viewport: dict, ready: str, path: Path) -> dict:
    page = bench.fresh_page(browser, viewport, bypass_csp=True)
    bodies: list = []
    page.on(
        "request",
        lambda r: bodies.append((r.method, r.url, r.post_data)) if "/api/" in r.url else None,
    )
    browser.start_tracing(page=page, path=str(path), categories=CATEGORIES)
    page.goto(url, wait_until="commit")
    done = bench.in_page_ms(page, ready)
    browser.stop_tracing()
    resources = page.evaluate(
        """() => performance.getEntriesByType('resource').map((r) => ({
          name: r.name.replace(location.origin, ''), start: r.startTime, sent: r.requestStart,
          first: r.responseStart, end: r.responseEnd, bytes: r.encodedBodySize,
          type: r.initiatorType}))"""
    )
    nav = page.evaluate(
        """() => { const n = performance.getEntriesByType('navigation')[0];
          return {first_byte: n.responseStart, dom_interactive: n.domInteractive}; }"""
    )
    page.context.close()
    trace = json.loads(path.read_text())["traceEvents"]
    path.unlink()
    names = bench.thread_names(trace)
    main, main_top = self_times(trace, names, "CrRendererMain")
    raster = defaultdict(float)
    for e in trace:
        thread = names.get((e.get("pid"), e.get("tid")), "")
        if e.get("ph") == "X" and e["name"] in ("RasterTask", "TileManager::FlushAndIssueSignals"):
            raster[thread] += e.get("dur", 0) / 1000
    return {
        "done_ms": done,
        "nav": nav,
        "resources": resources,
        "bodies": bodies,
        "main": main,
        "main_top": main_top,
        "raster": dict(raster),
    }


FRAME_CATEGORIES = [*bench.TRACE_CATEGORIES, "devtools.timeline", "cc", "viz", "blink", "gpu"]


def per_frame(events: list[dict], frames: int) -> dict[str, tuple[float, list]]:
    """Each thread's CPU ms per frame (self time of each task, from its thread time), in all
    and for its top tasks."""
    names = bench.thread_names(events)
    by_thread: dict[str, list] = defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and "dur" in e:
            by_thread[names.get((e["pid"], e["tid"]), "?")].append(e)
    out = {}
    for thread, items in by_thread.items():
        own = {name: ms / frames for name, ms in _own_cpu(items).items()}
        total = sum(own.values())
        if total >= 0.05:
            out[thread] = (total, sorted(own.items(), key=lambda i: -i[1])[:8])
    return out


def _own_cpu(items: list[dict]) -> dict[str, float]:
    """CPU ms of one thread's tasks by name, each less the tasks inside it."""
    own: dict[str, float] = defaultdict(float)
    stack: list[list] = []  # [end, name, cpu, children's cpu]

    def close(upto: float) -> None:
        while stack and stack[-1][0] <= upto:
            _, name, cpu, children = stack.pop()
            own[name] += (cpu - children) / 1000
            if stack:
                stack[-1][3] += cpu

    for e in sorted(items, key=lambda e: (e["ts"], -e["dur"])):
        close(e["ts"])
        stack.append([e["ts"] + e["dur"], e["name"], e.get("tdur", e["dur"]), 0.0])
    close(float("inf"))
    return own


def slow_frames(events: list[dict], over_us: float = 20_000) -> list[str]:
    """Frames (between animation frame callbacks) longer than ``over_us``: the main thread's
    tasks of over 0.5 ms in each, with their longest parts."""
    names = bench.thread_names(events)
    main = sorted(
        (
            e
            for e in events
            if e.get("ph") == "X"
            and "dur" in e
            and names.get((e["pid"], e["tid"])) == "CrRendererMain"
        ),
        key=lambda e: e["ts"],
    )
    starts = [e["ts"] for e in main if e["name"] == "FireAnimationFrame"]
    top, end = [], -1.0
    for e in main:
        if e["ts"] >= end:
            top.append(e)
            end = e["ts"] + e["dur"]
    out = []
    for a, b in itertools.pairwise(starts):
        if b - a <= over_us:
            continue
        tasks = []
        for task in (t for t in top if a <= t["ts"] < b and t["dur"] > 500):
            inside = [
                e
                for e in main
                if task["ts"] < e["ts"] < task["ts"] + task["dur"] and e["dur"] > 1000
            ]
            parts = ", ".join(
                f"{e['name']} {e['dur'] / 1000:.1f}"
                for e in sorted(inside, key=lambda e: -e["dur"])[:4]
            )
            tasks.append(f"{task['dur'] / 1000:.1f} ms ({parts})")
        out.append(f"{(b - a) / 1000:.1f} ms: " + "; ".join(tasks))
    return out


def trace_moves(browser, url: str, view: str, path: Path) -> str:
    """The benchmark's hover or scroll moves once untraced (warm), then under a trace."""
    if view == "hover":
        d2 = [r["id"] for r in bench.get_json(f"{url}/api/projects/d2/runs?limit=100")["runs"]]
        page = bench.fresh_page(browser, {"width": 1280, "height": 1600}, bypass_csp=True)
        page.goto(f"{url}/p/d2/compare?runs={','.join(d2)}", wait_until="commit")
        bench.in_page_ms(
            page,
            "[...document.querySelectorAll('.chart')].filter(c => c.chart?.plot"
            " && c.chart.series.length === 10).length >= 10",
        )
        script = bench.HOVER_SCRIPT
    else:
        page = bench.fresh_page(browser, bypass_csp=True)
        page.goto(f"{url}/p/big?cols=summary.loss,config.lr", wait_until="commit")
        bench.in_page_ms(page, "document.querySelectorAll('.runs-rows .row[data-run]').length > 10")
        script = bench.SCROLL_SCRIPT
    page.evaluate(script)
    if view == "scroll":
        page.evaluate("document.querySelector('.runs-rows').scrollTop = 0")
    page.wait_for_timeout(300)
    browser.start_tracing(page=page, path=str(path), categories=FRAME_CATEGORIES)
    frames = page.evaluate(script)["frames"]
    browser.stop_tracing()
    page.context.close()
    events = json.loads(path.read_text())["traceEvents"]
    path.unlink()
    lines = [f"## {view}: {len(frames)} frames, CPU ms per frame by thread and task", ""]
    for thread, (total, top) in sorted(
        per_frame(events, len(frames)).items(), key=lambda i: -i[1][0]
    ):
        lines.append(f"- {thread}: {total:.2f} ms: " + ", ".join(f"{n} {ms:.2f}" for n, ms in top))
    slow = slow_frames(events)
    lines += ["", f"frames over 20 ms: {len(slow)}", ""] + [f"- {line}" for line in slow]
    return "\n".join(lines) + "\n"


def replay(url: str, bodies: list) -> list[tuple[str, float, int]]:
    """Each API request of the page again, one at a time: (what, ms, bytes)."""
    out = []
    with httpx.Client(timeout=60) as client:
        for method, address, data in bodies:
            started = time.perf_counter()
            if method == "POST":
                answer = client.post(
                    address, content=data, headers={"Content-Type": "application/json"}
                )
            else:
                answer = client.get(address)
            ms = (time.perf_counter() - started) * 1000
            what = address.split("/api/")[1][:60]
            if method == "POST":
                body = json.loads(data)
                what = f"POST scalars: {len(body['series'])} series, points={body['points']}"
            out.append((what, ms, len(answer.content)))
    return out


def report(name: str, result: dict, replayed: list) -> str:
    lines = [f"## {name}: every chart in view drawn at {result['done_ms']:.0f} ms (in-page)", ""]
    nav = result["nav"]
    lines.append(
        f"page: first byte {nav['first_byte']:.0f} ms, DOM interactive {nav['dom_interactive']:.0f} ms"
    )
    lines += [
        "",
        "| request | sent | server (sent → first byte) | done | bytes |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in result["resources"]:
        if r["name"].startswith("/api/") or r["name"].startswith("/assets/"):
            lines.append(
                f"| {r['name'][:70]} | {r['start']:.0f} | {r['first'] - r['sent']:.0f} |"
                f" {r['end']:.0f} | {r['bytes']:,} |"
            )
    lines += ["", "Replayed one at a time from Python (no page beside it):", ""]
    lines += ["| request | ms | bytes |", "|---|---:|---:|"]
    lines += [f"| {what} | {ms:.0f} | {size:,} |" for what, ms, size in replayed]
    main = result["main"]
    total = sum(main.values())
    lines += ["", f"main thread, self time by kind (total {total:.0f} ms):", ""]
    lines += [f"- {kind}: {ms:.0f} ms" for kind, ms in sorted(main.items(), key=lambda i: -i[1])]
    lines += ["", "main thread, top events by self time: " + ", ".join(
        f"{name} {ms:.0f}" for name, ms in result["main_top"].items())]  # fmt: skip
    lines += ["", "raster: " + ", ".join(f"{t} {ms:.0f} ms" for t, ms in result["raster"].items())]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--url", required=True, help="a running `waddle serve` of the benchmark's data"
    )
    parser.add_argument("--views", default="d1,d2,first", help="of d1, d2, first, hover, scroll")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    sizes = bench.FULL
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=bench.CHROMIUM, args=bench.BROWSER_ARGS
        )
        url = args.url
        d1 = bench.get_json(f"{url}/api/projects/d1/runs")["runs"][0]["id"]
        d2 = [r["id"] for r in bench.get_json(f"{url}/api/projects/d2/runs?limit=100")["runs"]]
        ready = "[...document.querySelectorAll('.chart')].filter(c => c.chart?.plot && c.chart.series[0]?.xs.length).length"
        keys = sizes["d1"][0]
        views = {
            "first": (f"{url}/p/d1/r/{d1}", bench.VIEWPORT, f"{ready} >= 1"),
            "d1": (
                f"{url}/p/d1/r/{d1}",
                {"width": 1280, "height": 270 * keys // 2 + 400},
                f"{ready} >= {keys}",
            ),
            "d2": (
                f"{url}/p/d2/compare?runs={','.join(d2)}",
                bench.VIEWPORT,
                # every chart wholly in view, as the benchmark's screenshots judge
                "(() => { const cs = [...document.querySelectorAll('.chart')].filter(c => {"
                " const r = c.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; });"
                " return cs.length >= 2 && cs.every(c => c.chart?.plot && c.chart.series.length === 10); })()",
            ),
        }
        for name in args.views.split(","):
            if name in ("hover", "scroll"):
                print(trace_moves(browser, url, name, bench.DATA / "trace.json"), flush=True)
                continue
            address, viewport, condition = views[name]
            result = trace_view(browser, address, viewport, condition, bench.DATA / "trace.json")
            replayed = replay(url, result["bodies"])
            print(report(name, result, replayed), flush=True)
        browser.close()


if __name__ == "__main__":
    main()
