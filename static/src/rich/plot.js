// Charts logged from a table (waddle.plot, as W&B's wandb.plot: line, line_series, scatter, bar,
// histogram, pr_curve, roc_curve, confusion_matrix), one key at a chosen step. They are drawn
// by the one chart component (uPlot), with its hover table, legend and CSV export; the
// confusion matrix is a heatmap grid. Class names and labels are text. What a chart cannot
// place (a NaN, ±Infinity or missing x, a cell that is no number) is counted under it, never
// dropped silently; NaN and ±Infinity y values are marked on the chart as everywhere.
import { api } from "../api.js";
import { Chart, fromPoints, nthColor } from "../chart.js";
import { h, replace } from "../dom.js";
import { value as show } from "../format.js";
import { StepSlider } from "./step_slider.js";
import { readTable } from "./table.js";

export async function plotPanel(project, run, key) {
  const { items } = await api.records(project, run, "media", { key, limit: 10000 });
  const byStep = new Map(items.map((item) => [item.step, item]));
  const steps = [...byStep.keys()].sort((a, b) => a - b);
  const title = h("div", { class: "plot-title" });
  const body = h("div", { class: "plot-body" });
  const note = h("div", { class: "chart-note" });
  let chart = null;
  let asked = 0; // the newest step asked for: an older answer arriving late is not drawn
  const load = async (step) => {
    const mine = ++asked;
    const value = byStep.get(step)?.value;
    const table = value ? await readTable(project, run, value.table) : null;
    if (mine !== asked) return;
    if (chart) chart.destroy();
    chart = null;
    replace(body);
    replace(note);
    if (!value) return;
    replace(title, value.chart === "confusion_matrix" ? value.title || "" : ""); // a chart has its own
    const drawn = value.chart === "confusion_matrix" ? confusion(table, value.fields) : draw(body, key, value, table);
    if (drawn.el) body.append(drawn.el);
    chart = drawn.chart || null;
    if (chart) whenConnected(body, () => chart && chart.setVisible(true));
    replace(note, drawn.skipped || "");
  };
  const slider = new StepSlider(steps, (step) => load(step).catch((error) => replace(note, error.message)));
  await load(slider.step);
  return h("div", { class: "panel plot" }, h("h3", null, key), h("div", { class: "panel-tools" }, slider.el), title, body, note);
}

// How each kind reads its table: the series to draw and how (docs/format.md, "chart").
const KINDS = {
  line: (t, f) => ({ ...lines(t, f.x, f.y, f.stroke), xLabel: f.x }),
  line_series: (t, f) => ({ ...lines(t, f.x, f.y, f.stroke), xLabel: f.xname || f.x }),
  pr_curve: (t, f) => ({ ...lines(t, f.x, f.y, f.stroke), xLabel: f.x }),
  roc_curve: (t, f) => ({ ...lines(t, f.x, f.y, f.stroke), xLabel: f.x }),
  scatter: (t, f) => ({ ...lines(t, f.x, f.y, f.stroke), xLabel: f.x, draw: "points" }),
  bar: (t, f) => ({ ...bars(t, f.label, f.value), xLabel: f.label, draw: "bars" }),
  histogram: (t, f) => ({ ...histogram(t, f.value), xLabel: f.value, draw: "bars" }),
};

function draw(container, key, value, table) {
  const kind = KINDS[value.chart];
  if (!kind) return { el: h("p", { class: "empty" }, `a chart of kind ${value.chart} (not drawn here)`) };
  const made = kind(table, value.fields || {});
  const chart = new Chart(container, {
    title: value.title || key,
    xKind: "custom",
    xLabel: made.xLabel,
    draw: made.draw,
    xFormat: made.xFormat,
    syncKey: `plot\0${key}`,
    onZoom: (min, max) => chart.setXRange([min, max]),
    onReset: () => chart.setXRange(null),
  });
  chart.el.classList.add("plot-chart");
  chart.setSeries(made.series);
  return { chart, skipped: made.skipped };
}

function column(table, name) {
  const index = table.columns.indexOf(name);
  if (index < 0) throw new Error(`the chart's table has no column ${JSON.stringify(name)}`);
  return index;
}

// A cell as a number: numbers (NaN and ±Infinity included) and booleans; anything else is none.
function numberIn(cell) {
  if (typeof cell === "number") return cell;
  if (typeof cell === "boolean") return Number(cell);
  return null;
}

function skippedNote(count, what) {
  return count ? `${count} row${count === 1 ? "" : "s"} not drawn: ${what}` : "";
}

// One series per value of the stroke column (or one), each sorted by x (a stable sort keeps a
// curve's vertical steps in their order). An x column of text is read as categories.
function lines(table, xName, yName, strokeName) {
  const xi = column(table, xName), yi = column(table, yName);
  const si = strokeName ? column(table, strokeName) : null;
  const categorical = table.data.some((row) => row[xi] !== null && numberIn(row[xi]) === null);
  const categories = new Map();
  const groups = new Map();
  let skipped = 0;
  for (const row of table.data) {
    let x = row[xi];
    if (categorical) {
      if (x === null || x === undefined) x = NaN;
      else {
        if (!categories.has(show(x))) categories.set(show(x), categories.size);
        x = categories.get(show(x));
      }
    } else x = numberIn(x);
    const y = numberIn(row[yi]);
    if (x === null || !Number.isFinite(x) || y === null) {
      skipped++;
      continue;
    }
    const name = si === null ? yName : show(row[si]);
    if (!groups.has(name)) groups.set(name, []);
    groups.get(name).push([x, y]);
  }
  const series = [...groups].map(([name, points], i) => {
    points.sort((a, b) => a[0] - b[0]);
    return { id: name, label: name, color: nthColor(i), ...fromPoints(points.map((p) => p[0]), points.map((p) => p[1])), raw: null };
  });
  const names = [...categories.keys()];
  return {
    series,
    xFormat: categorical ? (x) => names[x] ?? "" : undefined,
    skipped: skippedNote(skipped, `their ${xName} is not a finite number or their ${yName} is no number`),
  };
}

// One bar per row, in the table's order, named by its label.
function bars(table, labelName, valueName) {
  const li = column(table, labelName), vi = column(table, valueName);
  const labels = [], xs = [], ys = [];
  let skipped = 0;
  for (const row of table.data) {
    const y = numberIn(row[vi]);
    if (y === null) {
      skipped++;
      continue;
    }
    xs.push(labels.length);
    ys.push(y);
    labels.push(show(row[li]));
  }
  return {
    series: [{ id: valueName, label: valueName, color: nthColor(0), ...fromPoints(xs, ys), raw: null }],
    xFormat: (x) => labels[x] ?? "",
    skipped: skippedNote(skipped, `their ${valueName} is no number`),
  };
}

// The finite values of one column binned evenly from their min to their max (Sturges' count of
// bins); NaN and ±Infinity are counted apart, as waddle's own histograms do.
function histogram(table, valueName) {
  const vi = column(table, valueName);
  const values = [];
  const apart = { NaN: 0, "+Inf": 0, "-Inf": 0, "no number": 0 };
  for (const row of table.data) {
    const v = numberIn(row[vi]);
    if (v === null) apart["no number"]++;
    else if (Number.isNaN(v)) apart.NaN++;
    else if (!Number.isFinite(v)) apart[v > 0 ? "+Inf" : "-Inf"]++;
    else values.push(v);
  }
  let low = Math.min(...values), high = Math.max(...values);
  if (low === high) (low -= 0.5), (high += 0.5);
  const count = values.length ? Math.min(64, Math.ceil(Math.log2(values.length)) + 1) : 0;
  const width = (high - low) / count;
  const counts = new Array(count).fill(0);
  for (const v of values) counts[Math.min(count - 1, Math.floor((v - low) / width))]++;
  const xs = counts.map((_, i) => low + (i + 0.5) * width);
  const kept = Object.entries(apart).filter(([, n]) => n);
  return {
    series: [{ id: "count", label: "count", color: nthColor(0), ...fromPoints(xs, counts), raw: null }],
    skipped: kept.length ? `not binned: ${kept.map(([what, n]) => `${what} ×${n}`).join(", ")}` : "",
  };
}

// The confusion matrix as a grid: actual classes down, predicted across, each cell shaded by
// its share of the largest count.
function confusion(table, fields) {
  const ai = column(table, fields.actual), pi = column(table, fields.predicted), vi = column(table, fields.value);
  const classes = [];
  const seen = new Set();
  const counts = new Map();
  let peak = 0;
  for (const row of table.data) {
    const actual = show(row[ai]), predicted = show(row[pi]);
    for (const name of [actual, predicted]) if (!seen.has(name)) seen.add(name), classes.push(name);
    const n = (counts.get(`${actual}\0${predicted}`) || 0) + (numberIn(row[vi]) ?? NaN);
    counts.set(`${actual}\0${predicted}`, n);
    if (Number.isFinite(n)) peak = Math.max(peak, n);
  }
  const cell = (actual, predicted) => {
    const n = counts.get(`${actual}\0${predicted}`);
    const share = Number.isFinite(n) && peak > 0 ? n / peak : 0;
    return h(
      "td",
      {
        class: `num${share > 0.55 ? " hot" : ""}${actual === predicted ? " diagonal" : ""}`,
        title: `actual ${actual}, predicted ${predicted}: ${n === undefined ? "none" : show(n)}`,
        style: { background: `color-mix(in srgb, var(--accent) ${Math.round(share * 100)}%, transparent)` },
      },
      n === undefined ? "" : show(n),
    );
  };
  const el = h(
    "table",
    { class: "confusion" },
    h("thead", null, h("tr", null, h("th", { class: "corner" }, "actual ↓ predicted →"), classes.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", null, classes.map((a) => h("tr", null, h("th", { scope: "row" }, a), classes.map((p) => cell(a, p))))),
  );
  return { el };
}

// Draw once the element is on the page (its width is known); the media tab adds its panels
// only when all of them are loaded. Gives up after about ten seconds off the page.
function whenConnected(el, then, frames = 600) {
  if (el.isConnected) return then();
  if (frames > 0) requestAnimationFrame(() => whenConnected(el, then, frames - 1));
}
