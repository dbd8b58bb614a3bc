"""The dashboard in a real Chromium against a real server over seeded log folders: what a user
sees in each view, live updates, zoom, the token flow, and user text that never runs."""

from __future__ import annotations

import html
import math
import subprocess
from urllib.parse import quote

import numpy as np
import pytest

import waddle
from tests.browser import CANVAS_PIXELS, screenshot, wait_js
from tests.conftest import PYTHON, QUIET, child_env, wait_until
from tests.server_helpers import serving
from waddle import event, segment

XSS = "<img src=x onerror=alert(1)>"


def _seed(root):
    runs = {}
    for name, lr, scale, best in (("alpha", 0.1, 1.0, 0.3), ("beta", 0.01, 2.0, 0.9)):
        run = waddle.init(
            project="p",
            dir=root,
            name=name,
            config={"lr": lr, "depth": 2},
            tags=["base"],
            settings=QUIET,
        )
        run.define_metric("val/top", summary="max")  # its summary: {"max": best}
        for i in range(200):
            run.log({"train/loss": scale / (i + 1), "val/acc": i / 200})
        run.log({"val/top": best / 2})
        run.log({"val/top": best})
        run.summary["best"] = best
        run.finish()
        runs[name] = run.id
    # Every data type, logged by the demo in its own process (console captured for real).
    subprocess.run(
        [
            PYTHON,
            "-c",
            f"from waddle.demo import train; train({str(root)!r}, 'rich', 40, rich=True)",
        ],
        env=child_env(),
        check=True,
        capture_output=True,
        timeout=120,
    )
    hostile = waddle.init(
        project="xss",
        dir=root,
        name=XSS,
        tags=["<b>tag</b>"],
        notes="<script>alert(3)</script>",
        config={"<script>k": "<img src=x onerror=alert(2)>"},
        settings=QUIET,
    )
    hostile.log(
        {
            "<i>key</i>": 1.0,
            "md": waddle.Markdown(
                "# hello\n\n<script>alert(4)</script>\n\n<img src=x onerror=alert(5)>\n\n"
                "[link](javascript:alert(6))"
            ),
            "tbl": waddle.Table(columns=["<b>c</b>"], data=[["<img src=x onerror=alert(7)>"]]),
            "txt": waddle.Text("<script>alert(8)</script>", expected="<b>x</b>"),
        }
    )
    hostile.finish()
    runs["xss"] = hostile.id
    runs["kinds"] = _log_new_kinds(root)
    return runs


HTML_WITH_SCRIPT = (
    "<p id='hello'>hello from html</p>"
    "<script>document.getElementById('hello').textContent = 'script ran';"
    "parent.document.body.dataset.pwned = '1'; alert(9)</script>"
)


def _log_new_kinds(root):
    """A run with every chart preset, an HTML page with a script, point clouds, a model file
    and plain lists, at two steps (the step slider)."""
    run = waddle.init(project="kinds", dir=root, name="kinds", settings=QUIET)
    model = root.parent / f"{root.name}-tetra.obj"
    model.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\n")
    rgb = np.array(
        [[x, y, 0, 255, 0, 0] for x in range(10) for y in range(10)]
        + [[x, 0, z, 0, 0, 255] for x in range(10) for z in range(1, 10)],
        dtype=float,
    )
    category = np.array([[i, i % 3, i % 5, i % 2] for i in range(60)], dtype=float)
    # Scores that tell the three classes apart well, fairly and badly: three different curves.
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 90)
    probas = rng.random((90, 3)) + np.eye(3)[truth] * np.array([2.0, 0.6, 0.15])[truth, None]
    for step, (scale, per_class) in enumerate(((1.0, [1, 2, 3]), (2.0, [0.5, math.nan, 0.25]))):
        points = waddle.Table(
            columns=["x", "y", "group"],
            data=[[0, 0.0, "a"], [1, scale, "a"], [0, 1.0, "b"], [1, 0.5, "b"], [2, math.nan, "b"]],
        )
        counts = waddle.Table(
            columns=["label", "value"], data=[["cat", 3 * scale], ["dog", 5], ["<i>bird</i>", 1]]
        )
        spread = waddle.Table(columns=["v"], data=[[v] for v in [*range(20), math.inf]])
        run.log(
            {
                "plot/line": waddle.plot.line(points, "x", "y", stroke="group", title="line"),
                "plot/scatter": waddle.plot.scatter(points, "x", "y", title="<b>scatter</b>"),
                "plot/bar": waddle.plot.bar(counts, "label", "value", title="bar"),
                "plot/histogram": waddle.plot.histogram(spread, "v", title="histogram"),
                "plot/series": waddle.plot.line_series(
                    [0, 1, 2], [[1, 2, 3], [3, 2, 1]], keys=["up", "down"], xname="epoch"
                ),
                "plot/confusion": waddle.plot.confusion_matrix(
                    y_true=[0, 1, 2, 2], preds=[0, 2, 2, 2], class_names=["cat", "dog", "<b>x</b>"]
                ),
                "plot/pr": waddle.plot.pr_curve(truth, probas, labels=["cat", "dog", "bird"]),
                "plot/roc": waddle.plot.roc_curve(truth, probas, labels=["cat", "dog", "bird"]),
                "page": waddle.Html(HTML_WITH_SCRIPT),
                "cloud/rgb": waddle.Object3D(rgb, caption="red wall, blue floor"),
                "cloud/category": waddle.Object3D(category),
                "cloud/model": waddle.Object3D(str(model)),
                "per_class": per_class,
            },
            step=step,
        )
    run.finish()
    return run.id


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    root = tmp_path_factory.mktemp("logs")
    runs = _seed(root)
    with serving(root) as served:
        wait_until(
            lambda: served.caught_up() and len(served.json("/api/projects")["projects"]) == 4,
            timeout=60,
        )
        yield served, runs


def _run_id(served, project):
    return served.json(f"/api/projects/{project}/runs")["runs"][0]["id"]


def test_projects_and_the_runs_table_sorted_by_a_summary_column(seeded, page):
    served, _ = seeded
    page.goto(served.url + "/")
    page.get_by_role("link", name="p", exact=True).click()
    page.wait_for_selector(".runs-rows .row[data-run]")
    assert page.locator(".runs-rows .row[data-run]").count() == 2
    page.goto(served.url + "/p/p?cols=summary.best")
    header = page.locator(".runs-head button", has_text="summary.best")
    header.click()
    wait_js(page, "location.search.includes('sort=summary.best')")
    wait_js(
        page, "document.querySelector('.runs-rows .row[data-run]')?.textContent.includes('alpha')"
    )
    names = page.locator(".runs-rows .row[data-run] a").all_text_contents()
    assert names == ["alpha", "beta"]
    header.click()
    wait_js(
        page, "document.querySelector('.runs-rows .row[data-run]')?.textContent.includes('beta')"
    )
    assert page.locator(".runs-rows .row[data-run] a").all_text_contents() == ["beta", "alpha"]
    assert "0.9" in page.locator(".runs-rows .row[data-run]").first.text_content()
    # A min column, chosen in the picker, comes from the server and sorts there too.
    page.locator(".picker summary").click()
    page.locator(".pick-row", has_text="summary.train/loss").get_by_label("min").check()
    min_header = page.locator(".runs-head button", has_text="train/loss (min)")
    min_header.click()
    wait_js(page, "location.search.includes('sort=metric.train%2Floss.min')")
    wait_js(page, "document.querySelector('.runs-rows .row[data-run] a')?.textContent === 'alpha'")
    cells = page.locator(".runs-rows .row[data-run]").first.locator(".cell.num")
    assert "0.005" in cells.all_text_contents()  # alpha's loss went down to 1/200
    page.locator(".picker summary").click()  # closed again for the screenshot
    # The fixed columns' headers read whole (the 80 px duration column cut its own name).
    cut = page.evaluate(
        """[...document.querySelectorAll('.runs-head .cell')]
          .filter((c) => c.scrollWidth > c.clientWidth).map((c) => c.textContent)"""
    )
    assert all(label.startswith("train/loss") for label in cut), cut
    screenshot(page, "runs-table")
    # One aggregate of a summary define_metric made an object: a column of its own.
    page.goto(served.url + "/p/p?cols=summary.val/top.max&sort=-summary.val/top.max")
    wait_js(page, "document.querySelector('.runs-rows .row[data-run] a')?.textContent === 'beta'")
    assert page.locator(".runs-head button", has_text="summary.val/top.max").count() == 1
    top = page.locator(".runs-rows .row[data-run]").first.text_content()
    assert "0.9" in top and "{" not in top


def test_compare_overlays_one_line_per_run_and_marks_the_differing_config_key(seeded, page):
    served, runs = seeded
    page.goto(served.url + f"/p/p/compare?runs={runs['alpha']},{runs['beta']}")
    page.wait_for_selector(".config-diff tr.differs")
    assert page.locator(".config-diff tr.differs th").all_text_contents() == ["lr"]
    page.get_by_label("differences only").check()
    assert page.locator(".config-diff tbody tr").count() == 1
    wait_js(page, "document.querySelector('.chart')?.chart?.series.length === 2")
    colors = page.evaluate("document.querySelector('.chart').chart.series.map(s => s.color)")
    assert len(set(colors)) == 2
    page.wait_for_timeout(100)  # one frame for uPlot to paint
    pixels = page.evaluate(CANVAS_PIXELS, [0, colors])
    assert all(count > 50 for count in pixels["counts"]), pixels
    # val/top was logged at steps 200 and 201 only: its step axis is labelled in whole steps.
    axes = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('.chart')].map((c) =>
          [c.chart.options.title, c.chart.plot.axes.map((a) => [a._splits, a._values])]))"""
    )
    steps = axes["val/top"][0][1]
    assert steps and all(label.isdigit() for label in steps), steps
    # Every tick reads as the value it marks (val/acc's y ticks at 0.25 and 0.75 once read
    # 0.3 and 0.8).
    for title, chart_axes in axes.items():
        for splits, labels in chart_axes:
            for split, label in zip(splits, labels, strict=True):
                assert float(label) == pytest.approx(split, abs=1e-9), (title, splits, labels)
    screenshot(page, "compare")


def test_hover_lists_every_run_at_the_cursor_and_pins(seeded, page):
    served, runs = seeded
    page.goto(served.url + f"/p/p/compare?runs={runs['alpha']},{runs['beta']}")
    wait_js(page, "[...document.querySelectorAll('.chart')].filter(c => c.chart?.plot).length >= 2")
    chart = page.locator(".chart", has_text="train/loss")
    box = chart.locator(".u-over").bounding_box()
    for fraction in (0.2, 0.5):  # the same table, its values changed in place
        page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)
        wait_js(page, "!document.querySelector('.chart.hovered .hover').hidden")
    hover = chart.locator(".hover")
    names = hover.locator("tbody td:first-child").all_text_contents()
    assert sorted(names) == ["alpha", "beta"]
    values = [float(v) for v in hover.locator("tbody td:nth-child(2)").all_text_contents()]
    assert values == sorted(values, reverse=True)  # by value, highest first
    step = int(hover.locator("tbody td:nth-child(3)").first.text_content())
    assert abs(values[0] - 2.0 / (step + 1)) < 1e-3  # beta's loss, 2 / (step + 1)
    # The cursor's points: one per run, in its colour, on the chart under the pointer only; the
    # others follow its line.
    dots = "document.querySelectorAll('.chart%s .hover-pt:not([hidden])')"
    shown = page.evaluate(f"[...{dots % '.hovered'}].map(d => getComputedStyle(d).borderColor)")
    run_colors = page.evaluate(
        "[...document.querySelectorAll('.chart.hovered .hover .swatch')].map(s => getComputedStyle(s).backgroundColor)"
    )
    assert sorted(shown) == sorted(run_colors) and len(shown) == 2
    assert page.evaluate(f"{dots % ':not(.hovered)'}.length") == 0
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    wait_js(page, "document.querySelector('.chart.pinned') !== null")
    hover.locator("th", has_text="run").click()  # sorted by name
    assert hover.locator("tbody td:first-child").all_text_contents() == ["alpha", "beta"]
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)
    assert int(hover.locator("tbody td:nth-child(3)").first.text_content()) == step  # pinned


def test_every_rich_view_shows_what_was_logged(seeded, page):
    served, _ = seeded
    run = _run_id(served, "rich")
    page.goto(served.url + f"/p/rich/r/{run}?tab=media")
    page.wait_for_selector("figure.image img")
    assert page.locator(".media figure.image").count() == 4
    labels = " ".join(page.locator(".box-labels li").all_text_contents())
    assert "score" in labels and any(word in labels for word in ("cat", "dog", "bird"))
    assert page.locator("audio[src*='/files/rich/']").count() == 1
    assert page.locator(".video img[src*='/files/rich/'], .video video").count() == 1
    assert page.locator(".table-panel tbody tr").count() == 6
    # The summary names a key's last rich value by its type, never spelling out its content.
    page.goto(served.url + f"/p/rich/r/{run}?tab=overview")
    summary = page.locator(".overview section", has_text="summary").first
    row = summary.locator("tr", has_text="weights/layer1")
    assert row.locator("td").text_content() == "(histogram)"
    assert "weights/layer1.bins" not in summary.text_content()
    page.goto(served.url + f"/p/rich/r/{run}?tab=media")
    page.wait_for_selector("figure.image img")
    assert page.locator(".table-panel img.thumb").count() == 6
    assert page.locator(".histogram canvas.heatmap").count() == 1
    assert "5000 values" in page.locator(".hist-facts").text_content()
    assert page.locator(".diff ins, .diff del").count() > 0
    assert page.locator(".markdown h2").text_content().startswith("Step")
    # The evaluation W&B users log: preset charts, an HTML report, a point cloud, a list.
    assert page.locator(".panel.plot .confusion").count() == 1
    assert page.locator(".panel.plot .chart").count() == 2  # ROC and the accuracy bars
    report = page.frame_locator("iframe.html-frame").locator("h3")
    assert report.text_content().startswith("Evaluation at step")
    assert page.locator("canvas.points3d").count() == 1
    assert page.locator(".panel.text", has_text="eval/per_class").locator("pre.array").count() == 1
    # The step slider moves with the arrow keys, and the panel follows it.
    text_panel = page.locator(".panel.text", has_text="samples/text")
    before = text_panel.locator(".step-label").text_content()
    text_panel.locator("input.step-slider").focus()
    page.keyboard.press("ArrowLeft")
    assert text_panel.locator(".step-label").text_content() != before
    page.evaluate("scrollTo(0, 0)")  # the sticky header at the top of the picture
    screenshot(page, "run-media", full_page=True)

    page.get_by_role("tab", name="system").click()
    page.wait_for_selector(".system .chart canvas")
    titles = page.locator(".system .chart-title").all_text_contents()
    assert {"memory/used", "proc/rss"} <= set(titles), titles  # CPU needs a second sample
    page.get_by_role("tab", name="console").click()
    page.wait_for_selector(".console .line")
    assert "epoch 1: val/accuracy=" in page.locator(".console-lines").text_content()
    page.get_by_placeholder("search the console").fill("val/accuracy")
    wait_js(page, "document.querySelectorAll('.console .line').length === 1")
    page.get_by_role("tab", name="overview").click()
    page.wait_for_selector(".overview .alerts")
    overview = page.locator(".overview").text_content()
    assert "accuracy plateau" in overview and "optimizer" in overview and "host" in overview
    link = page.get_by_role("link", name="model.json")
    assert link.get_attribute("href").startswith(f"/files/rich/{run}/files/")
    assert link.get_attribute("target") == "_blank"
    assert page.locator(".artifacts-logged a").text_content() == "demo-model:v0"
    page.evaluate("scrollTo(0, 0)")
    screenshot(page, "run-overview", full_page=True)


# The colours of the i-th series of a logged chart (the chart palette's order).
SERIES_COLORS = "[...document.querySelectorAll('.chart')][%d].chart.series.map(s => s.color)"


def _plot(page, key):
    """Index among the page's charts, and the Chart's facts, of the logged chart of ``key``."""
    return page.evaluate(
        """(key) => {
          const charts = [...document.querySelectorAll('.chart')];
          const index = charts.findIndex((c) => c.closest('.panel')?.querySelector('h3')?.textContent === key);
          const chart = charts[index].chart;
          return { index, xLabel: chart.options.xLabel, draw: chart.options.draw || 'line',
                   series: chart.series.map((s) => ({ label: s.label, xs: s.xs, ys: s.ys, nan: s.marks.nan.length })),
                   names: chart.options.xFormat ? [0, 1, 2].map((x) => chart.options.xFormat(x)) : null };
        }""",
        key,
    )


def test_logged_charts_are_drawn_from_their_tables(seeded, page):
    served, runs = seeded
    page.goto(served.url + f"/p/kinds/r/{runs['kinds']}?tab=media")
    page.wait_for_selector(".panel.plot .confusion")
    assert page.locator(".panel.plot").count() == 8
    wait_js(page, "[...document.querySelectorAll('.plot .chart')].every(c => c.chart.plot)")
    page.wait_for_timeout(100)  # one frame for uPlot to paint

    line = _plot(page, "plot/line")  # the last step (2.0): a line per group, b's NaN marked
    assert [s["label"] for s in line["series"]] == ["a", "b"]
    assert line["series"][0]["ys"] == [0, 2] and line["series"][1]["nan"] == 1
    assert line["xLabel"] == "x"
    scatter = _plot(page, "plot/scatter")
    assert scatter["draw"] == "points" and len(scatter["series"][0]["xs"]) == 5
    assert page.locator(".chart-title", has_text="<b>scatter</b>").count() == 1  # as text
    bar = _plot(page, "plot/bar")
    assert bar["draw"] == "bars" and bar["series"][0]["ys"] == [6, 5, 1]
    assert bar["names"] == ["cat", "dog", "<i>bird</i>"]
    histogram = _plot(page, "plot/histogram")
    assert sum(histogram["series"][0]["ys"]) == 20  # the finite values, binned
    assert "+Inf ×1" in page.locator(".panel.plot", has_text="plot/histogram").text_content()
    series = _plot(page, "plot/series")
    assert [s["label"] for s in series["series"]] == ["up", "down"]
    assert series["xLabel"] == "epoch"
    for key in ("plot/pr", "plot/roc"):
        curves = _plot(page, key)
        assert [s["label"] for s in curves["series"]] == ["cat", "dog", "bird"]
    # ROC keeps its vertical steps: an x repeated in one series stays, with each y.
    roc = _plot(page, "plot/roc")["series"]
    assert any(a == b for s in roc for a, b in zip(s["xs"], s["xs"][1:], strict=False))
    for key in ("plot/line", "plot/bar", "plot/roc"):
        found = _plot(page, key)
        colors = page.evaluate(SERIES_COLORS % found["index"])
        pixels = page.evaluate(CANVAS_PIXELS, [found["index"], colors])
        assert all(count > 20 for count in pixels["counts"]), (key, pixels)

    matrix = page.locator(".confusion")
    assert matrix.locator("thead th").all_text_contents()[1:] == ["cat", "dog", "<b>x</b>"]
    rows = [r.locator("td").all_text_contents() for r in matrix.locator("tbody tr").all()]
    assert rows == [["1", "0", "0"], ["0", "0", "1"], ["0", "0", "2"]]
    assert page.evaluate("document.querySelectorAll('.view b, .view i').length") == 0

    screenshot(page, "run-charts-logged", around=".panel.plot")

    # The step slider: the first step's bar chart.
    bar_panel = page.locator(".panel.plot", has_text="plot/bar")
    bar_panel.locator("input.step-slider").focus()
    page.keyboard.press("ArrowLeft")
    wait_js(
        page,
        "[...document.querySelectorAll('.plot .chart')].some(c => c.chart.series[0]?.ys.join() === '3,5,1')",
    )


def test_html_3d_objects_and_lists_are_shown_and_html_never_runs(seeded, page):
    served, runs = seeded
    page.goto(served.url + f"/p/kinds/r/{runs['kinds']}?tab=media")
    frame = page.locator("iframe.html-frame")
    frame.wait_for()
    assert frame.get_attribute("sandbox") == ""  # no allow-scripts, no allow-same-origin
    assert frame.get_attribute("src").startswith(f"/files/kinds/{runs['kinds']}/media/")
    inside = page.frame_locator("iframe.html-frame").locator("#hello")
    assert inside.text_content() == "hello from html"  # shown, and its script did not run
    assert page.evaluate("document.body.dataset.pwned") is None

    # Point clouds: drawn in their colours (rgb), or by category with a legend; a drag turns.
    wait_js(
        page,
        "[...document.querySelectorAll('canvas.points3d')].every(c => c.view.count > 0)",
    )
    page.wait_for_timeout(100)
    counts = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('canvas.points3d')].map((canvas) => {
          const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
          let red = 0, blue = 0, any = 0;
          for (let i = 0; i < data.length; i += 4) {
            if (data[i + 3] < 200) continue;
            any++;
            if (data[i] > 200 && data[i + 1] < 50 && data[i + 2] < 50) red++;
            if (data[i + 2] > 200 && data[i] < 50 && data[i + 1] < 50) blue++;
          }
          const key = canvas.closest('.panel').querySelector('h3').textContent;
          return [key, { red, blue, any, view: canvas.view.count }];
        }))"""
    )
    rgb, category = counts["cloud/rgb"], counts["cloud/category"]
    assert rgb["view"] == 190 and rgb["red"] > 100 and rgb["blue"] > 100, rgb
    assert category["view"] == 60 and category["any"] > 100 and category["red"] == 0, category
    cloud = page.locator(".panel.media", has_text="cloud/category")
    assert cloud.locator(".legend-item").all_text_contents() == ["category 0", "category 1"]
    picture = "document.querySelector('canvas.points3d').toDataURL()"
    before = page.evaluate(picture)
    box = page.locator("canvas.points3d").first.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 100, box["y"] + 100)
    page.mouse.down()
    page.mouse.move(box["x"] + 180, box["y"] + 140, steps=4)
    page.mouse.up()
    wait_js(page, f"{picture} !== {before!r}")
    # A model file is offered for download, and /files serves it.
    model = page.locator(".panel.media", has_text="cloud/model").get_by_role("link")
    assert model.get_attribute("download").endswith(".obj")
    assert served.get(model.get_attribute("href")).text.startswith("v 0 0 0")

    # A plain list, as text per step (NaN by name).
    lists = page.locator(".panel.text", has_text="per_class")
    assert lists.locator("pre").text_content() == "[0.5, NaN, 0.25]"
    lists.locator("input.step-slider").focus()
    page.keyboard.press("ArrowLeft")
    assert lists.locator("pre").text_content() == "[1, 2, 3]"
    page.evaluate("scrollTo(0, 0)")
    screenshot(page, "run-media-kinds", full_page=True)


def test_run_charts_mark_nan_and_zoom_asks_the_server_again(seeded, page):
    served, _ = seeded
    run = _run_id(served, "rich")
    page.goto(served.url + f"/p/rich/r/{run}")
    wait_js(page, "[...document.querySelectorAll('.chart')].some(c => c.chart?.series.length)")
    grad = page.locator(".chart", has_text="train/grad_norm")
    grad.scroll_into_view_if_needed()
    wait_js(
        page,
        "[...document.querySelectorAll('.chart')].find(c => c.textContent.includes('grad_norm'))?.chart?.series[0]?.marks.nan.length === 1",
    )
    # Every chart in view draws, not only the first ones (they ask the server in turn).
    wait_js(
        page,
        "[...document.querySelectorAll('.chart')].filter(c => { const r = c.getBoundingClientRect();"
        " return r.bottom > 0 && r.top < innerHeight; }).every(c => c.chart?.series.length)",
    )
    screenshot(page, "run-charts")
    box = grad.locator(".u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    with page.expect_request(
        lambda r: (
            r.method == "POST"
            and '"start":' in (r.post_data or "")
            and '"start":null' not in r.post_data
        )
    ) as zoomed:
        page.mouse.move(box["x"] + box["width"] * 0.3, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=5)
        page.mouse.up()
    body = zoomed.value.post_data_json
    assert 0 < body["start"] < body["end"] < 40
    wait_js(page, "location.search.includes('zoom=')")
    with page.expect_request(
        lambda r: r.method == "POST" and '"start":null' in (r.post_data or "")
    ):
        grad.locator(".u-over").dblclick()
    wait_js(page, "!location.search.includes('zoom=')")


def test_user_text_never_runs(seeded, page):
    served, runs = seeded
    page.goto(served.url + "/p/xss")
    page.wait_for_selector(".runs-rows .row[data-run] a")
    assert page.locator(".runs-rows .row[data-run] a").text_content() == XSS
    assert page.locator(".tag", has_text="<b>tag</b>").count() == 1
    page.goto(served.url + f"/p/xss/r/{runs['xss']}?tab=media")
    page.wait_for_selector(".markdown h1")
    assert page.locator(".markdown script, .markdown img, .rich-table img").count() == 0
    assert "<script>alert(4)</script>" in page.locator(".markdown").text_content()  # as text
    assert page.locator(".markdown a").get_attribute("href") is None  # javascript: removed
    assert "<img src=x onerror=alert(7)>" in page.locator(".rich-table").text_content()
    assert "<script>alert(8)</script>" in page.locator(".panel.text", has_text="txt").text_content()
    page.goto(served.url + f"/p/xss/r/{runs['xss']}?tab=overview")
    page.wait_for_selector(".overview .kv")
    assert "<img src=x onerror=alert(2)>" in page.locator(".overview").text_content()
    page.goto(served.url + f"/p/xss/r/{runs['xss']}")
    page.wait_for_selector(".chart-title")
    assert page.locator(".chart-title").text_content() == "<i>key</i>"
    assert page.evaluate("document.querySelectorAll('i, b, script:not([src])').length") == 0
    screenshot(page, "xss")


def test_the_page_sends_a_strict_content_security_policy(seeded):
    served, _ = seeded
    for path in ("/", "/p/p/r/whatever", "/assets/app.js"):
        answer = served.get(path)
        assert answer.status_code == 200
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "connect-src 'self'" in policy
        assert "frame-src 'self'" in policy  # logged HTML, in a sandboxed frame from /files
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    # A deep link is the page, with the requests its view makes first preloaded.
    deep = served.get("/p/p/r/whatever").text
    preloads = [
        '<link rel="preload" href="/api/projects/p/runs/whatever" as="fetch" crossorigin="anonymous">',
        '<link rel="preload" href="/api/projects/p/runs/whatever/metrics" as="fetch" crossorigin="anonymous">',
    ]
    assert deep.replace("".join(f"{link}\n" for link in preloads), "") == served.get("/").text
    missing = served.get("/api/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    for sneaky in ("/assets/..%2Fsetup.py", "/assets/%2E%2E/setup.py", "/assets/.gitignore"):
        assert "setuptools" not in served.get(sneaky).text
    assert served.get("/favicon.ico").headers["content-type"].startswith("image/svg")


def test_a_view_asks_for_its_first_data_once_beside_its_script(seeded, page):
    """The run and compare views' first requests are preloaded by the page and then taken
    from there (never asked twice); names that are not valid preload nothing."""
    served, runs = seeded
    compare = f"/p/p/compare?runs={runs['alpha']},{runs['beta']}"
    for path in (f"/p/rich/r/{_run_id(served, 'rich')}", compare):
        page.goto(served.url + path)
        wait_js(page, "document.querySelector('.chart')?.chart?.series.length")
        asked = page.evaluate(
            "performance.getEntriesByType('resource').filter(r => r.name.includes('/api/projects/')"
            " && !r.name.includes('/scalars')).map(r => [r.name.replace(location.origin, ''),"
            " r.initiatorType])"
        )
        names = [name for name, _ in asked]
        assert names and len(names) == len(set(names)), asked  # each once
        assert {kind for _, kind in asked} == {"link"}, asked
    for sneaky in ("/p/p/r/..%2F..", "/p/p/r/a%22b", "/p/p%3Cx/r/a", "/p/p/compare?runs=a,%3Cb"):
        assert 'rel="preload"' not in served.get(sneaky).text
    page.goto("about:blank")


def test_a_run_view_takes_its_first_chart_from_the_page(seeded, page):
    """A run view's page preloads its first chart's buckets (its first scalar key), and the
    chart draws that answer without asking again; a view opened otherwise (here: smoothed)
    asks for its own."""
    served, _ = seeded
    run = _run_id(served, "rich")
    metrics = served.json(f"/api/projects/rich/runs/{run}/metrics")["metrics"]
    first = next(m["key"] for m in metrics if m["type"] == "scalar")
    url = f"/api/projects/rich/runs/{run}/scalars?key={quote(first, safe='')}&points=800"
    link = f'<link rel="preload" href="{html.escape(url)}" as="fetch" crossorigin="anonymous" data-first-chart>'
    assert link in served.get(f"/p/rich/r/{run}").text
    assert "data-first-chart" not in served.get(f"/p/rich/r/{run}?smooth=0.5").text
    posted = []
    page.on("request", lambda r: posted.append(r.post_data_json) if r.method == "POST" else None)
    page.goto(served.url + f"/p/rich/r/{run}")
    wait_js(page, "document.querySelector('.chart')?.chart?.series[0]?.xs.length > 0")
    assert page.evaluate("document.querySelector('.chart').dataset.key") == first
    asked_again = [b for b in posted if {"run": run, "key": first} in b.get("series", [])]
    assert not asked_again, asked_again
    asked = page.evaluate(
        "performance.getEntriesByType('resource').filter(r => r.name.includes('/scalars'))"
        ".map(r => [r.name.replace(location.origin, ''), r.initiatorType])"
    )
    assert asked.count([url, "link"]) == 1 and [url, "fetch"] not in asked, asked
    answer = served.json(url)
    drawn = page.evaluate("document.querySelector('.chart').chart.series[0].xs.length")
    assert drawn >= len(answer["buckets"]["count"])  # every bucket's points, from that answer
    page.goto("about:blank")


def test_built_files_are_served_as_the_build_left_them(tmp_path, monkeypatch):
    """Answered from memory, but never an old build's: a rebuilt file is served anew."""
    from waddle.server.routes import dashboard

    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text(f"<head>{dashboard.TOKEN_META}</head>")
    (dist / "app.js").write_text("export const build = 1;")
    monkeypatch.setattr(dashboard, "DIST", dist)
    (tmp_path / "logs").mkdir()
    with serving(tmp_path / "logs") as served:
        first = served.get("/assets/app.js")
        assert first.text == "export const build = 1;"
        assert first.headers["content-type"].startswith("text/javascript")
        assert "script-src 'self'" in first.headers["content-security-policy"]
        (dist / "next.js").write_text("export const build = 22;")
        (dist / "next.js").replace(dist / "app.js")  # as a new build replaces it
        assert served.get("/assets/app.js").text == "export const build = 22;"
        (dist / "app.js").unlink()
        assert served.get("/assets/app.js").status_code == 404
        assert served.get("/assets/index.html").status_code == 404
        assert dashboard.TOKEN_META in served.get("/p/x").text


def test_live_points_and_runs_arrive_without_reload(tmp_path, page):
    run = waddle.init(project="live", dir=tmp_path, name="trainer", settings=QUIET)
    for i in range(10):
        run.log({"loss": 1.0 / (i + 1)})
    run.flush()
    late = None
    try:
        with serving(tmp_path) as served:
            wait_until(lambda: served.caught_up() and served.json("/api/projects")["projects"])
            page.goto(served.url + f"/p/live/r/{run.id}")
            wait_js(page, "document.querySelector('.chart')?.chart?.series[0]?.xs.length === 10")
            page.wait_for_selector("#live-status:has-text('live')")
            run.log({"loss": 5.0})
            run.flush()
            wait_js(
                page, "document.querySelector('.chart').chart.series[0].xs.includes(10)", timeout=5
            )
            assert (
                page.evaluate("document.querySelector('.chart').chart.series[0].ys.at(-1)") == 5.0
            )

            page.goto(served.url + "/p/live")
            page.wait_for_selector(".runs-rows .row[data-run]")
            assert page.locator(".runs-rows .row[data-run]").count() == 1
            late = waddle.init(
                project="live", dir=tmp_path, name="latecomer", settings=QUIET, reinit="create_new"
            )
            late.log({"loss": 1.0})
            late.flush()
            page.wait_for_selector(".runs-rows .row:has-text('latecomer')", timeout=5000)
            row = page.locator(".runs-rows .row", has_text="trainer")
            assert row.locator(".status").text_content() == "running"
            run.finish()
            wait_js(
                page,
                "[...document.querySelectorAll('.runs-rows .row')].find(r => r.textContent.includes('trainer'))?.querySelector('.status').textContent === 'finished'",
                timeout=5,
            )
            page.goto("about:blank")  # before the server stops: no reconnect errors
    finally:
        run.finish()
        if late is not None:
            late.finish()


def test_a_spike_in_a_million_points_is_drawn(tmp_path, page):
    run = waddle.init(project="spike", dir=tmp_path, settings=QUIET)
    for step in range(1_000_000):
        run.log({"loss": 1e9 if step == 612_345 else 1.0 + (step % 7) * 0.01})
    run.finish()
    with serving(tmp_path) as served:
        wait_until(
            lambda: served.caught_up() and served.json("/api/projects")["projects"], timeout=120
        )
        page.goto(served.url + f"/p/spike/r/{run.id}")
        wait_js(page, "document.querySelector('.chart')?.chart?.series[0]?.xs.length > 0")
        page.wait_for_timeout(100)
        top = page.evaluate("document.querySelector('.chart').chart.plot.scales.y.max")
        assert top >= 1e9
        color = page.evaluate("document.querySelector('.chart').chart.series[0].color")
        pixels = page.evaluate(CANVAS_PIXELS, [0, [color]])
        assert pixels["tops"][0] is not None and pixels["tops"][0] < pixels["height"] * 0.1, pixels
        screenshot(page, "spike")
        page.goto("about:blank")


def test_the_page_works_with_a_token(tmp_path, page):
    run = waddle.init(project="secret", dir=tmp_path, settings=QUIET)
    for i in range(5):
        run.log({"loss": float(i)})
    run.finish()
    with serving(tmp_path, token="s3cret") as served:
        wait_until(lambda: served.caught_up() and served.json("/api/projects")["projects"])
        page.goto(served.url + f"/p/secret/r/{run.id}")
        page.wait_for_selector("#token")
        page.fill("#token", "s3cret")
        page.keyboard.press("Enter")
        wait_js(page, "document.querySelector('.chart')?.chart?.series[0]?.xs.length === 5")
        page.wait_for_selector("#live-status:has-text('live')")
        assert page.evaluate("sessionStorage.getItem('waddle.token')") == "s3cret"
        page.reload()  # asked once: the tab keeps it
        wait_js(page, "document.querySelector('.chart')?.chart?.series[0]?.xs.length === 5")
        assert page.locator("#token").count() == 0
        page.goto("about:blank")


def _write_runs(root, count):
    """``count`` finished runs of project "many", written straight to their log files."""
    start = 1_795_000_000.0
    for i in range(count):
        run_id = f"run-{i:05d}"
        folder = root / "many" / run_id
        folder.mkdir(parents=True)
        events = [
            {
                "type": "run_start",
                "project": "many",
                "run_id": run_id,
                "name": f"r{i:05d}",
                "config": {"lr": 10 ** -(i % 5)},
                "tags": [],
                "notes": None,
                "group": None,
                "job_type": None,
                "resumed": False,
                "context": {},
            },
            {"type": "log", "step": 0, "data": {"loss": i / count}},
            {
                "type": "finish",
                "exit_code": 0,
                "status": "finished",
                "last_step": 0,
                "dropped": {"steps": 0, "values": 0},
                "stalled_seconds": 0.0,
                "lost_events": 0,
                "lost_values": 0,
            },
        ]
        lines = [
            event.encode({"v": 1, "seq": seq, "t": start + i + seq, **body})
            for seq, body in enumerate(events)
        ]
        (folder / segment.segment_name(0)).write_bytes(b"".join(lines))


def test_a_table_of_thousands_of_runs_keeps_only_the_rows_in_view(tmp_path, page):
    _write_runs(tmp_path, 3000)
    with serving(tmp_path) as served:
        wait_until(
            lambda: (
                served.caught_up()
                and served.json("/api/projects/many/runs", params={"limit": 1})["total"] == 3000
            ),
            timeout=120,
        )
        page.goto(served.url + "/p/many?sort=name")
        page.wait_for_selector(".runs-rows .row[data-run]")
        assert "3000 runs" in page.locator(".toolbar .count").text_content()
        # The view's rows (about 22 in 900 px) and a few around them, not 3000 and not fewer.
        wait_js(page, "document.querySelectorAll('.runs-rows .row[data-run]').length >= 20")
        assert page.locator(".runs-rows .row").count() < 80
        page.locator(".runs-rows").evaluate("el => el.scrollTop = el.scrollHeight")
        page.wait_for_selector(".runs-rows .row[data-run='run-02999']")
        assert page.locator(".runs-rows .row").count() < 80
        screenshot(page, "runs-many")
        page.goto("about:blank")


def test_across_runs_scatter_and_parallel_coordinates_open_runs(seeded, page):
    served, runs = seeded
    page.goto(served.url + "/p/p/across?sx=config.lr&sy=summary.best")
    page.wait_for_selector(".scatter circle")
    assert page.locator(".scatter circle").count() == 2
    assert page.locator(".parallel polyline").count() == 2
    # Hover names the run; a click opens it.
    page.locator(".scatter circle").first.hover()
    assert page.locator(".tip").is_visible()
    assert any(name in page.locator(".tip").text_content() for name in ("alpha", "beta"))
    screenshot(page, "across")
    page.locator(".scatter circle").first.click()
    wait_js(page, "location.pathname.includes('/r/')")
    assert page.url.split("/r/")[1] in (runs["alpha"], runs["beta"])


def test_a_summary_of_aggregates_shows_per_aggregate_in_every_view(seeded, page):
    """define_metric(summary="max") makes a summary an object ({"max": 0.9}): the run overview,
    the compare view and the across-runs axes show and use KEY.AGGREGATE, never the object."""
    served, runs = seeded
    page.goto(served.url + f"/p/p/r/{runs['beta']}?tab=overview")
    page.wait_for_selector(".overview .kv")
    summary = page.locator(".overview section", has_text="summary").first
    assert summary.locator("tr", has_text="val/top.max").locator("td").text_content() == "0.9"
    assert "{" not in summary.text_content() and "object" not in summary.text_content()

    page.goto(served.url + f"/p/p/compare?runs={runs['alpha']},{runs['beta']}")
    page.locator(".summary-diff summary").click()  # closed at first: the charts stay in view
    page.wait_for_selector(".summary-diff tbody tr")
    row = page.locator(".summary-diff tr", has_text="val/top.max")
    assert row.locator("td").all_text_contents() == ["0.3", "0.9"]
    assert "{" not in page.locator(".summary-diff").text_content()

    page.goto(served.url + "/p/p/across?sx=config.lr&sy=summary.val/top.max")
    page.wait_for_selector(".scatter circle")
    assert page.locator(".toolbar select").nth(1).input_value() == "summary.val/top.max"
    assert page.locator(".scatter circle").count() == 2
    assert "2 of 2 runs have both values" in page.locator(".scatter").text_content()
    page.locator(".picker summary").click()
    assert page.locator(".pick", has_text="summary.val/top.max").count() == 1

    # The runs table offers the aggregate's column, and min/max of the key it summarises.
    page.goto(served.url + "/p/p")
    page.wait_for_selector(".runs-rows .row[data-run]")
    page.locator(".picker summary").click()
    row = page.locator(".pick-row", has_text="val/top")
    assert row.locator(".pick").all_text_contents() == ["summary.val/top.max", "min", "max"]
    row.get_by_label("max", exact=True).check()
    wait_js(page, "location.search.includes('metric.val%2Ftop.max')")
    wait_js(
        page,
        "[...document.querySelectorAll('.runs-rows .row[data-run]')].some(r => r.textContent.includes('0.9'))",
    )


def test_artifacts_their_versions_lineage_and_files(tmp_path, page):
    source = tmp_path / "source"
    source.mkdir()
    (source / "train.csv").write_text("a,b\n1,2\n")
    (source / "<i>x.txt").write_text("hello")
    logs = tmp_path / "logs"
    maker = waddle.init(project="art", dir=logs, name="maker", settings=QUIET)
    data = waddle.Artifact(
        "dataset", type="dataset", description="<b>rows</b>", metadata={"rows": 1}
    )
    data.add_file(str(source / "train.csv"))
    data.add_file(str(source / "<i>x.txt"))
    data.add_reference("s3://bucket/key.csv")
    maker.log_artifact(data, aliases=["best"])
    again = waddle.Artifact("dataset", type="dataset")
    again.add_file(str(source / "train.csv"))
    maker.log_artifact(again)
    maker.finish()
    user = waddle.init(project="art", dir=logs, name="user", settings=QUIET, reinit="create_new")
    user.use_artifact("dataset:best")
    model = waddle.Artifact("model", type="model")
    model.add_file(str(source / "train.csv"), name="weights.bin")
    user.log_artifact(model)
    user.finish()
    with serving(logs) as served:
        wait_until(
            lambda: served.caught_up() and served.json("/api/projects/art/runs")["total"] == 2
        )
        page.goto(served.url + "/p/art")
        page.get_by_role("link", name="artifacts").click()
        page.wait_for_selector("table.artifacts tbody tr")
        row = page.locator("table.artifacts tbody tr").first
        assert row.locator("td").all_text_contents()[:4] == ["dataset", "dataset", "2", "v1"]
        assert row.locator(".alias").all_text_contents() == ["best → v0", "latest → v1"]
        row.get_by_role("link", name="dataset").click()

        page.wait_for_selector(".version-row.selected")  # the latest version, chosen
        assert page.locator(".version-row td:first-child").all_text_contents() == ["v1", "v0"]
        assert page.locator(".version-row.selected td").first.text_content() == "v1"
        page.locator(".version-row", has_text="v0").click()
        wait_js(page, "location.search.includes('v=v0')")
        page.wait_for_selector(".artifact-version h2:has-text('dataset:v0')")
        detail = page.locator(".artifact-version")
        assert detail.locator(".description").text_content() == "<b>rows</b>"  # as text
        assert detail.locator(".lineage-logged").get_by_role("link").text_content() == "maker"
        assert detail.locator(".lineage-used").get_by_role("link").text_content() == "user"
        # One step further: what the user run made from it; the maker used nothing.
        outputs = detail.locator(".lineage-outputs")
        outputs.get_by_role("link").wait_for()
        assert outputs.get_by_role("link").text_content() == "model:v0"
        assert detail.locator(".lineage-inputs").text_content().endswith("none")
        files = detail.locator(".manifest tbody tr")
        assert files.count() == 3
        assert "reference (not stored): s3://bucket/key.csv" in files.nth(1).text_content()
        assert files.nth(1).get_by_role("link").count() == 0  # a reference is never a link
        link = files.nth(0).get_by_role("link")
        assert link.text_content() == "<i>x.txt"
        assert served.get(link.get_attribute("href")).text == "hello"
        assert page.evaluate("document.querySelectorAll('.view b, .view i').length") == 0
        screenshot(page, "artifact")

        # Lineage leads to the runs, and a run's overview back to the versions.
        detail.locator(".lineage-used").get_by_role("link").click()
        wait_js(page, f"location.pathname.endsWith({user.id!r})")
        page.get_by_role("tab", name="overview").click()
        used = page.locator(".artifacts-used li")
        assert used.get_by_role("link").text_content() == "dataset:v0"
        used.get_by_role("link").click()
        page.wait_for_selector(".artifact-version h2:has-text('dataset:v0')")
        page.goto("about:blank")


def test_dark_theme_follows_the_system(seeded, browser):
    served, runs = seeded
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark")
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(served.url + f"/p/p/compare?runs={runs['alpha']},{runs['beta']}")
    wait_js(page, "document.querySelector('.chart')?.chart?.plot")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)"
    screenshot(page, "compare-dark")
    context.close()
    assert not errors


def test_runs_compared_together_never_share_a_colour(tmp_path, page):
    ids = []
    for i in range(12):  # more runs than one palette slot each would allow without clashes
        run = waddle.init(project="many", dir=tmp_path, name=f"r{i}", settings=QUIET)
        run.log({"loss": float(i)})
        run.finish()
        ids.append(run.id)
    with serving(tmp_path) as served:
        wait_until(
            lambda: served.caught_up() and served.json("/api/projects/many/runs")["total"] == 12
        )
        page.goto(served.url + f"/p/many/compare?runs={','.join(ids[:10])}")
        wait_js(page, "document.querySelector('.chart')?.chart?.series.length === 10")
        colors = page.evaluate("document.querySelector('.chart').chart.series.map(s => s.color)")
        assert len(set(colors)) == 10
        again = page.evaluate("document.querySelector('.chart').chart.series.map(s => s.color)")
        page.reload()
        wait_js(page, "document.querySelector('.chart')?.chart?.series.length === 10")
        assert (
            page.evaluate("document.querySelector('.chart').chart.series.map(s => s.color)")
            == again
        )
        page.goto("about:blank")
