// The one chart component, used by every view that draws series: columns in, canvas out.
//
// A chart holds series, each with its own sorted points (x, y), drawn with uPlot. It promises:
// - nothing hidden: NaN and ±Infinity are marked on the axis edges (never dropped), points that
//   "ignore outliers" clips are marked at the edge they left by, and values a log scale cannot
//   show are counted under the chart;
// - M4 buckets (docs/api.md) drawn from each bucket's own first/min/max/last points, so the
//   line covers each bucket's min/max envelope and one spike in a million points shows;
// - a smoothed series is drawn over its raw series, which stays faint behind;
// - drag selects an x range (onZoom), double-click resets (onReset); the cursor is synced
//   across visible charts; a hover table lists every series' value at the cursor, and a click
//   pins it (sortable by value or name); the legend toggles series;
// - a chart drawn from a logged table (waddle.plot) takes the same path: `draw` "points" for a
//   scatter, "bars" for bars (y from zero), and `xFormat` names an x value (a bar's category).
import uPlot from "uplot";
import { h, replace, setText } from "./dom.js";
import { duration, num, value as show } from "./format.js";

const PALETTE = [
  "#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1",
  "#9c755f", "#17becf", "#c9a227", "#ff7f9f", "#5f9f99",
];

function slot(runId) {
  let hash = 2166136261;
  for (let i = 0; i < runId.length; i++) hash = Math.imul(hash ^ runId.charCodeAt(i), 16777619);
  return (hash >>> 0) % PALETTE.length;
}

// A run keeps its colour wherever it is shown, whatever else is selected.
export function colorFor(runId) {
  return PALETTE[slot(runId)];
}

// The n-th colour, for series that are not runs (the lines of one logged chart).
export function nthColor(n) {
  return PALETTE[n % PALETTE.length];
}

// Colours for runs shown together: each its own colour where it is free; runs whose colour
// another took (in id order, so the same set always gets the same colours) take the next free.
export function colorsFor(runIds) {
  const taken = new Set();
  const out = new Map();
  for (const id of [...runIds].sort()) {
    let i = slot(id);
    for (let tries = 0; taken.has(i) && tries < PALETTE.length; tries++) i = (i + 1) % PALETTE.length;
    taken.add(i);
    out.set(id, PALETTE[i]);
  }
  return out;
}

function faint(color, alpha) {
  const n = parseInt(color.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

// Points of a series from an M4 answer (buckets) or a whole series (x, value columns):
// {xs, ys, marks: {nan, posinf, neginf}} with ys finite or null (a gap).
export function fromBuckets(b) {
  const xs = [], ys = [];
  const marks = { nan: [], posinf: [], neginf: [] };
  const n = b.count.length;
  const columns = [[b.x_first, b.first], [b.x_min, b.min], [b.x_max, b.max], [b.x_last, b.last]];
  // A bucket's points in x order, sorted in place (a sort of four new arrays per bucket was
  // most of a chart's drawing before the first frame): equal x keep first, min, max, last.
  const px = new Float64Array(4), py = new Float64Array(4);
  for (let i = 0; i < n; i++) {
    let count = 0;
    for (const [xCol, yCol] of columns) {
      const x = num(xCol[i]);
      // An all-NaN bucket has no min or max point (their x is NaN): only first and last.
      if (!Number.isFinite(x)) continue;
      let at = count++;
      for (; at > 0 && px[at - 1] > x; at--) (px[at] = px[at - 1]), (py[at] = py[at - 1]);
      px[at] = x;
      py[at] = num(yCol[i]);
    }
    let nanSeen = false;
    let prev = NaN;
    for (let k = 0; k < count; k++) {
      if (px[k] === prev) continue;
      if (Number.isNaN(py[k])) nanSeen = true;
      prev = px[k];
      push(xs, ys, marks, px[k], py[k]);
    }
    if (b.nan[i] > 0 && !nanSeen) marks.nan.push((num(b.x_first[i]) + num(b.x_last[i])) / 2);
  }
  return { xs, ys, marks };
}

export function fromPoints(xCol, valueCol) {
  const xs = [], ys = [];
  const marks = { nan: [], posinf: [], neginf: [] };
  for (let i = 0; i < xCol.length; i++) push(xs, ys, marks, num(xCol[i]), num(valueCol[i]));
  return { xs, ys, marks };
}

function push(xs, ys, marks, x, y) {
  xs.push(x);
  if (Number.isFinite(y)) return ys.push(y);
  ys.push(null);
  (Number.isNaN(y) ? marks.nan : y > 0 ? marks.posinf : marks.neginf).push(x);
}

function lastAtOrBefore(xs, x) {
  let lo = 0, hi = xs.length - 1, found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] <= x) (found = mid), (lo = mid + 1);
    else hi = mid - 1;
  }
  return found;
}

// One x column for uPlot from every series' own x values, and each series' y on it: undefined
// where the series has no point (uPlot joins the line across), null where it has a gap. An x a
// series holds more than once (a curve's vertical step: ROC) stays as often, never merged away.
function align(all) {
  if (all.length === 1) return [all[0].xs, [all[0].ys]];
  if (all.some(repeats)) return mergeRepeats(all);
  const merged = Float64Array.from(all.flatMap((s) => s.xs)).sort();
  const xs = [];
  for (let i = 0; i < merged.length; i++) if (i === 0 || merged[i] !== merged[i - 1]) xs.push(merged[i]);
  const columns = all.map((s) => {
    const out = new Array(xs.length);
    let j = 0;
    for (let i = 0; i < s.xs.length; i++) {
      while (xs[j] < s.xs[i]) j++;
      out[j] = s.ys[i];
    }
    return out;
  });
  return [xs, columns];
}

function repeats(s) {
  for (let i = 1; i < s.xs.length; i++) if (s.xs[i] === s.xs[i - 1]) return true;
  return false;
}

// A merge of sorted columns: each round takes the smallest x left and one point at that x from
// every series that has one, so an x repeated in a series is repeated in the merged column.
function mergeRepeats(all) {
  const xs = [];
  const columns = all.map(() => []);
  const at = all.map(() => 0);
  for (;;) {
    let x = null;
    for (let s = 0; s < all.length; s++) {
      if (at[s] < all[s].xs.length && (x === null || all[s].xs[at[s]] < x)) x = all[s].xs[at[s]];
    }
    if (x === null) break;
    for (let s = 0; s < all.length; s++) {
      if (at[s] < all[s].xs.length && all[s].xs[at[s]] === x) columns[s][xs.length] = all[s].ys[at[s]++];
    }
    xs.push(x);
  }
  for (const column of columns) column.length = xs.length;
  return [xs, columns];
}

// Tick labels with as many digits as the spacing needs, so neighbours never read alike
// (uPlot's default shows 3e-4 as 0 and 4.61e7, 4.62e7 both as 4.6e7), and as each tick's own
// value needs, so none reads as another.
function ticks(splits) {
  const finite = splits.filter((v) => v !== null && Number.isFinite(v));
  if (!finite.length) return splits.map(() => "");
  const big = Math.max(...finite.map(Math.abs));
  let step = Infinity;
  for (let i = 1; i < finite.length; i++) step = Math.min(step, Math.abs(finite[i] - finite[i - 1]));
  if (!Number.isFinite(step) || step === 0) step = big || 1;
  if (big >= 1e4 && big < 1e12 && step >= 1 && finite.every(Number.isInteger)) {
    // Steps: 250k, 1.5M (a wide axis of six-digit numbers would overlap).
    const unit = big >= 1e6 ? [1e6, "M"] : [1e3, "k"];
    return splits.map((v) => (v === null ? "" : v === 0 ? "0" : `${+(v / unit[0]).toPrecision(4)}${unit[1]}`));
  }
  if (big >= 1e6 || (big > 0 && big < 1e-3)) {
    const fewest = Math.min(6, Math.max(1, Math.ceil(Math.log10(big / step)) + 1));
    const digits = exact(finite, fewest, 6, step, (v, d) => v.toExponential(d - 1));
    return splits.map((v) => (v === null ? "" : v === 0 ? "0" : v.toExponential(digits - 1).replace("e+", "e")));
  }
  const fewest = Math.min(8, Math.max(0, -Math.floor(Math.log10(step))));
  const decimals = exact(finite, fewest, 8, step, (v, d) => v.toFixed(d));
  return splits.map((v) => (v === null ? "" : v.toFixed(decimals)));
}

// The fewest digits, from `fewest` up to `most`, with which every tick reads as the value it
// marks: the spacing alone asks one decimal of ticks 0.25 apart, which read 0.3 and 0.8.
function exact(values, fewest, most, step, write) {
  let digits = fewest;
  while (digits < most && values.some((v) => Math.abs(Number(write(v, digits)) - v) > step * 1e-6)) digits++;
  return digits;
}

function quantile(sorted, q) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.floor(q * (sorted.length - 1))))];
}

// uPlot takes colours, not CSS variables: the theme's, read once (and again when it changes).
let theme = null;
const dark = matchMedia("(prefers-color-scheme: dark)");
dark.addEventListener("change", () => (theme = null));

function themeColors() {
  if (!theme) {
    const style = getComputedStyle(document.documentElement);
    const read = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
    theme = { fg: read("--fg", "#222"), grid: read("--grid", "#ddd"), bg: read("--bg", "#fff") };
  }
  return theme;
}

export class Chart {
  // options: {title, xKind: "step"|"time"|"relative"|"custom", xLabel, logy, outliers,
  //           onZoom(min, max), onReset(), onExport(), syncKey,
  //           draw: "line" (default) | "points" | "bars", xFormat(x) -> text}
  constructor(container, options) {
    this.options = options;
    this.series = []; // {id, label, color, xs, ys, marks, raw: {xs, ys, marks} | null, shown}
    this.xRange = null;
    this.pinned = false;
    this.sortBy = "value";
    this.plot = null;
    this.dirty = false;
    this.visible = false;
    this.legend = h("div", { class: "legend" });
    this.note = h("div", { class: "chart-note" });
    this.hover = h("div", { class: "hover", hidden: true });
    this.canvasBox = h("div", { class: "plot" });
    this.el = h(
      "div",
      { class: "chart" },
      h(
        "div",
        { class: "chart-head" },
        h("span", { class: "chart-title", title: options.title }, options.title),
        h("button", { class: "small", title: "download this chart's data as CSV", onclick: () => (options.onExport ? options.onExport() : this.exportShown()) }, "CSV"),
      ),
      this.canvasBox,
      this.note,
      this.legend,
      this.hover,
    );
    this.el.chart = this; // for tests and the console: document.querySelector(".chart").chart
    container.append(this.el);
  }

  setSeries(series) {
    const shown = new Map(this.series.map((s) => [s.id, s.shown]));
    this.series = series.map((s) => ({ ...s, shown: shown.has(s.id) ? shown.get(s.id) : true }));
    this.rebuild = true;
    this.render();
  }

  // New points of one series (live): appended after its last x; a point at an x it already has
  // replaces that point (a step logged again).
  extend(id, points, rawPoints = null) {
    const s = this.series.find((item) => item.id === id);
    if (!s) return;
    appendPoints(s, points);
    if (rawPoints && s.raw) appendPoints(s.raw, rawPoints);
    this.render();
  }

  setXRange(range) {
    this.xRange = range;
    if (this.plot) this.applyXRange();
  }

  setSettings({ logy, outliers }) {
    const logChanged = logy !== this.options.logy;
    this.options.logy = logy;
    this.options.outliers = outliers;
    if (logChanged) this.rebuild = true;
    this.render();
  }

  setVisible(visible) {
    this.visible = visible;
    if (this.plot) {
      const sync = uPlot.sync(this.options.syncKey || "waddle");
      if (visible) sync.sub(this.plot);
      else sync.unsub(this.plot);
    }
    if (visible && this.dirty) this.render();
  }

  render() {
    if (!this.visible) {
      this.dirty = true;
      return;
    }
    this.dirty = false;
    const drawn = this.drawnSeries();
    if (!drawn.length) return;
    const [xs, columns] = align(drawn);
    let hiddenOnLog = 0;
    if (this.options.logy) {
      for (const col of columns) {
        for (let i = 0; i < col.length; i++) if (col[i] !== undefined && col[i] !== null && col[i] <= 0) (col[i] = null), hiddenOnLog++;
      }
    }
    const data = [xs, ...columns];
    if (!this.plot || this.rebuild) {
      this.rebuild = false;
      this.create(drawn, data);
    } else {
      this.plot.setData(data, this.xRange === null);
      if (this.xRange) this.applyXRange();
    }
    replace(this.note, hiddenOnLog ? `${hiddenOnLog} points ≤ 0 not shown on the log scale` : "");
    this.renderLegend();
  }

  // The uPlot series in drawing order: each series' raw points (faint) before its own.
  drawnSeries() {
    const out = [];
    for (const s of this.series) {
      if (s.raw) out.push({ ...s.raw, color: faint(s.color, 0.25), width: 1, owner: s, raw: true });
      out.push({ xs: s.xs, ys: s.ys, marks: s.marks, color: s.color, width: s.raw ? 1.75 : 1.25, owner: s, raw: false });
    }
    return out;
  }

  create(drawn, data) {
    if (this.plot) this.plot.destroy();
    this.drawn = drawn;
    // A width the grid measured once for all its charts: reading each chart's own would force a
    // layout of the page per chart.
    const width = Math.max(200, this.knownWidth || this.canvasBox.clientWidth || 400);
    const options = this.options;
    const chart = this;
    const colors = themeColors();
    const xTime = options.xKind === "time";
    const opts = {
      width,
      height: 200,
      legend: { show: false },
      cursor: {
        sync: { key: options.syncKey || "waddle", setSeries: false },
        drag: { x: true, y: false, setScale: false },
        // The cursor's points are the chart's own (placeDots), on the chart under the pointer.
        points: { show: false },
        bind: {
          dblclick: () => () => {
            options.onReset && options.onReset();
            return null;
          },
        },
      },
      scales: {
        // Bars keep half a bar's room beyond the first and the last.
        x: { time: xTime, ...(options.draw === "bars" ? { range: (u, min, max) => padHalfBar(u, min, max) } : {}) },
        y: {
          distr: options.logy ? 3 : 1,
          range: (u, min, max) => chart.yRange(u, min, max),
        },
      },
      axes: [
        {
          label: options.xLabel,
          labelSize: 16,
          size: 36,
          values: options.xFormat
            ? (u, splits) => splits.map((v) => options.xFormat(v))
            : options.xKind === "relative"
              ? (u, splits) => splits.map((v) => duration(v))
              : xTime
                ? undefined
                : (u, splits) => ticks(splits),
          // Categories (bars) sit at whole numbers: ticks only there.
          ...(options.xFormat ? { splits: (u) => wholeSplits(u) } : {}),
          // Steps are whole numbers too: uPlot's own increments labelled a run of steps 200
          // to 201 with 200.10, 200.20, …
          ...(options.xKind === "step" && !options.xFormat ? { incrs: WHOLE_INCREMENTS } : {}),
          stroke: "var(--fg)",
          grid: { stroke: "var(--grid)" },
          ticks: { stroke: "var(--grid)" },
        },
        {
          size: 60,
          values: (u, splits) => ticks(splits),
          stroke: "var(--fg)",
          grid: { stroke: "var(--grid)" },
          ticks: { stroke: "var(--grid)" },
        },
      ],
      series: [
        {},
        ...drawn.map((d) => ({
          label: d.owner.label,
          stroke: d.color,
          width: d.width,
          // uPlot marks points only where they are sparse: a lone point (a key logged once)
          // still shows.
          points: { size: 5 },
          spanGaps: false,
          show: d.owner.shown,
          ...DRAW[options.draw || "line"](d),
        })),
      ],
      hooks: {
        // The canvas is opaque (see opaque()): each drawing starts from the page's background.
        drawClear: [(u) => ((u.ctx.fillStyle = colors.bg), u.ctx.fillRect(0, 0, u.ctx.canvas.width, u.ctx.canvas.height))],
        draw: [(u) => chart.drawMarks(u)],
        setSelect: [
          (u) => {
            if (u.select.width < 2) return;
            const min = u.posToVal(u.select.left, "x");
            const max = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ width: 0, height: 0, left: 0, top: 0 }, false);
            options.onZoom && options.onZoom(min, max);
          },
        ],
        setCursor: [(u) => chart.showHover(u)],
      },
    };
    for (const axis of opts.axes) {
      axis.stroke = colors.fg;
      axis.grid.stroke = colors.grid;
      axis.ticks.stroke = colors.grid;
    }
    replace(this.canvasBox);
    this.plot = opaque(() => new uPlot(opts, data, this.canvasBox));
    this.dots = [];
    if (!this.visible) uPlot.sync(options.syncKey || "waddle").unsub(this.plot);
    if (this.xRange) this.applyXRange();
    let down = null;
    const over = this.plot.over;
    over.addEventListener("mouseenter", () => {
      this.pointerInside = true;
      this.el.classList.add("hovered");
    });
    over.addEventListener("mouseleave", () => {
      this.pointerInside = false;
      this.el.classList.remove("hovered");
      this.placeDots([]);
      this.showHover(this.plot);
    });
    over.addEventListener("mousedown", (e) => (down = [e.clientX, e.clientY]));
    over.addEventListener("click", (e) => {
      if (!down || Math.abs(e.clientX - down[0]) + Math.abs(e.clientY - down[1]) >= 4) return;
      this.pinned = !this.pinned && this.hoverX !== undefined;
      this.el.classList.toggle("pinned", this.pinned);
      if (this.pinned) this.renderHover();
      else this.showHover(this.plot);
    });
    if (!this.resizer) {
      this.resizer = new ResizeObserver(() => {
        const w = this.canvasBox.clientWidth;
        if (this.plot && w && Math.abs(w - this.plot.width) > 2) this.plot.setSize({ width: w, height: 200 });
      });
      this.resizer.observe(this.canvasBox);
    }
  }

  applyXRange() {
    // No range: uPlot's own auto range (a chart of one point gets a padded range; setting
    // min == max made uPlot's tick loop run until the page died).
    if (!this.xRange) this.plot.setData(this.plot.data, true);
    else if (this.xRange[1] > this.xRange[0]) this.plot.setScale("x", { min: this.xRange[0], max: this.xRange[1] });
  }

  width() {
    return this.plot ? Math.round(this.plot.bbox.width / devicePixelRatio) : Math.max(200, this.canvasBox.clientWidth || 400);
  }

  // The y range: everything, or with "ignore outliers" the 2nd to 98th percentile of the
  // shown values plus a margin (points beyond are marked at the edge by drawMarks).
  yRange(u, min, max) {
    if (this.options.outliers) {
      const values = [];
      for (const d of this.drawn || []) {
        if (!d.owner.shown) continue;
        const step = Math.max(1, Math.floor(d.ys.length / 20000));
        for (let i = 0; i < d.ys.length; i += step) if (d.ys[i] !== null && (!this.options.logy || d.ys[i] > 0)) values.push(d.ys[i]);
      }
      values.sort((a, b) => a - b);
      const low = quantile(values, 0.02), high = quantile(values, 0.98);
      if (Number.isFinite(low) && Number.isFinite(high)) {
        const pad = (high - low) * 0.1 || Math.abs(high) * 0.1 || 1;
        this.clip = this.options.logy ? [low / 1.5, high * 1.5] : [low - pad, high + pad];
        return this.clip;
      }
    }
    this.clip = null;
    if (min === null || max === null) return [0, 1];
    if (this.options.draw === "bars") return uPlot.rangeNum(Math.min(0, min), Math.max(0, max), 0.05, true);
    if (this.options.logy) return uPlot.rangeLog(min, max, 10, true);
    return uPlot.rangeNum(min, max, 0.05, true);
  }

  // Markers for what the line cannot show: NaN (circle at the bottom), +Inf (triangle at the
  // top), -Inf (triangle at the bottom), clipped outliers (small bar at the edge they left by).
  drawMarks(u) {
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    const r = 4 * devicePixelRatio;
    ctx.save();
    for (const d of this.drawn || []) {
      if (!d.owner.shown || d.raw) continue;
      ctx.fillStyle = d.color;
      ctx.strokeStyle = d.color;
      const at = (x) => u.valToPos(x, "x", true);
      const inside = (px) => px >= left - 1 && px <= left + width + 1;
      for (const x of d.marks.nan) {
        const px = at(x);
        if (!inside(px)) continue;
        ctx.beginPath();
        ctx.arc(px, top + height - r, r, 0, 2 * Math.PI);
        ctx.lineWidth = 1.5 * devicePixelRatio;
        ctx.stroke();
      }
      for (const [list, y, dir] of [[d.marks.posinf, top, 1], [d.marks.neginf, top + height, -1]]) {
        for (const x of list) {
          const px = at(x);
          if (!inside(px)) continue;
          ctx.beginPath();
          ctx.moveTo(px, y);
          ctx.lineTo(px - r, y + dir * 2 * r);
          ctx.lineTo(px + r, y + dir * 2 * r);
          ctx.fill();
        }
      }
      if (this.clip) {
        const [low, high] = this.clip;
        for (let i = 0; i < d.ys.length; i++) {
          const y = d.ys[i];
          if (y === null || (y <= high && y >= low)) continue;
          const px = at(d.xs[i]);
          if (!inside(px)) continue;
          ctx.fillRect(px - 1.5 * devicePixelRatio, y > high ? top : top + height - 3 * devicePixelRatio, 3 * devicePixelRatio, 3 * devicePixelRatio);
        }
      }
    }
    ctx.restore();
  }

  // The hover table follows the pointer on the chart under it (synced charts move only their
  // cursor line), drawn at most once a frame; a pinned table stays as it was pinned.
  showHover(u) {
    if (this.pinned) return;
    const idx = u.cursor.idx;
    if (!this.pointerInside || idx === null || idx === undefined) {
      if (!this.hover.hidden) this.hover.hidden = true;
      return;
    }
    this.hoverX = u.data[0][idx];
    if (this.hoverQueued) return;
    this.hoverQueued = true;
    requestAnimationFrame(() => {
      this.hoverQueued = false;
      if (!this.pinned && this.pointerInside) this.renderHover();
    });
  }

  renderHover() {
    const x = this.hoverX;
    const rows = [];
    for (const s of this.series) {
      if (!s.shown) continue;
      const i = lastAtOrBefore(s.xs, x);
      const near = i < 0 ? null : s.xs[i];
      const nan = s.marks.nan.some((m) => Math.abs(m - x) <= Math.abs(x - (near ?? x)));
      rows.push({ label: s.label, color: s.color, value: i < 0 ? null : s.ys[i], x: near, nan });
    }
    this.placeDots(rows);
    if (this.sortBy === "value") rows.sort((a, b) => (b.value ?? -Infinity) - (a.value ?? -Infinity));
    else rows.sort((a, b) => a.label.localeCompare(b.label));
    if (!this.hoverTable) this.hoverTable = new HoverTable(this.hover, (by) => this.toggleSort(by));
    const xText = (v) => (v === null ? "" : this.options.xFormat ? this.options.xFormat(v) : show(v));
    this.hoverTable.show(
      this.pinned ? "pinned (click the chart to release)" : "click the chart to pin",
      this.options.xLabel,
      rows.map((r) => [r.color, r.label, r.value === null ? (r.nan ? "NaN" : "–") : show(r.value), xText(r.x)]),
    );
    this.hover.hidden = false;
  }

  // The cursor's points: a dot per shown series at its value under the cursor, on this chart
  // only. uPlot's own points followed the cursor on every synced chart, each a style write per
  // move (100 for 10 charts of 10 runs): most of a hovered frame's style work, for dots that
  // only the chart under the pointer showed. Moved by transform, each its own layer.
  placeDots(rows) {
    if (!this.plot) return;
    const width = this.plot.bbox.width / devicePixelRatio;
    const height = this.plot.bbox.height / devicePixelRatio;
    let n = 0;
    for (const r of rows) {
      if (r.value === null || r.x === null) continue;
      const left = this.plot.valToPos(r.x, "x");
      const top = this.plot.valToPos(r.value, "y");
      if (!(left >= 0 && left <= width && top >= 0 && top <= height)) continue;
      if (n === this.dots.length) this.dots.push(this.plot.over.appendChild(h("div", { class: "hover-pt" })));
      const dot = this.dots[n++];
      if (dot.color !== r.color) (dot.style.borderColor = r.color), (dot.color = r.color);
      dot.style.transform = `translate(${left.toFixed(1)}px, ${top.toFixed(1)}px)`;
      if (dot.hidden) dot.hidden = false;
    }
    for (let i = n; i < this.dots.length; i++) if (!this.dots[i].hidden) this.dots[i].hidden = true;
  }

  toggleSort(by) {
    this.sortBy = by;
    this.renderHover();
  }

  renderLegend() {
    if (this.series.length < 2 && !this.series.some((s) => s.raw)) return replace(this.legend);
    replace(
      this.legend,
      this.series.map((s) =>
        h(
          "button",
          {
            class: `legend-item${s.shown ? "" : " off"}`,
            title: "show or hide this series",
            onclick: () => this.toggle(s),
          },
          h("span", { class: "swatch", style: { background: s.color } }),
          s.label,
        ),
      ),
    );
  }

  toggle(s) {
    s.shown = !s.shown;
    if (this.plot) {
      this.drawn.forEach((d, i) => {
        if (d.owner === s) this.plot.setSeries(i + 1, { show: s.shown });
      });
    }
    this.renderLegend();
  }

  // The points this chart holds, as CSV (charts whose owner has no better source).
  exportShown() {
    const lines = [`series,${this.options.xLabel},value`];
    for (const s of this.series) s.xs.forEach((x, i) => lines.push(`"${s.label.replaceAll('"', '""')}",${x},${s.ys[i] ?? ""}`));
    download(lines.join("\n") + "\n", `${this.options.title.replaceAll("/", "_")}.csv`);
  }

  destroy() {
    if (this.resizer) this.resizer.disconnect();
    if (this.plot) this.plot.destroy();
    this.el.remove();
  }
}

// The hover table, built once: as the cursor moves only its cells' text changes (a new table
// each frame cost a style pass over every new node, in every frame of a hover).
class HoverTable {
  constructor(el, onSort) {
    this.head = h("div", { class: "hover-head" });
    this.xHead = h("th");
    this.body = h("tbody");
    this.rows = []; // [{tr, swatch, color, cells: [label, value, x] text nodes}]
    replace(
      el,
      this.head,
      h(
        "table",
        null,
        h(
          "thead",
          null,
          h("tr", null, h("th", { class: "sortable", onclick: () => onSort("name") }, "run"), h("th", { class: "sortable", onclick: () => onSort("value") }, "value"), this.xHead),
        ),
        this.body,
      ),
    );
  }

  // rows: [color, label, value text, x text], in the order shown.
  show(headText, xLabel, rows) {
    setText(this.head, headText);
    setText(this.xHead, xLabel);
    while (this.rows.length < rows.length) {
      const cells = [document.createTextNode(""), document.createTextNode(""), document.createTextNode("")];
      const swatch = h("span", { class: "swatch" });
      const tr = h("tr", null, h("td", null, swatch, cells[0]), h("td", { class: "num" }, cells[1]), h("td", { class: "num" }, cells[2]));
      this.body.append(tr);
      this.rows.push({ tr, swatch, color: null, cells });
    }
    while (this.rows.length > rows.length) this.rows.pop().tr.remove();
    rows.forEach(([color, ...texts], i) => {
      const row = this.rows[i];
      if (row.color !== color) (row.swatch.style.background = color), (row.color = color);
      texts.forEach((text, c) => {
        if (row.cells[c].data !== text) row.cells[c].data = text;
      });
    });
  }
}

// `make()` with every 2D canvas it creates opaque ({alpha: false}: uPlot asks for a plain one).
// The display compositor redraws, each frame of a hover, the union of what changed: the cursor
// lines of every synced chart span the page. An opaque canvas is copied there, not blended over
// the page beneath it (which is then skipped): about 1.5 of the display thread's 3.5 ms a frame
// with 10 charts in view.
function opaque(make) {
  const getContext = HTMLCanvasElement.prototype.getContext;
  HTMLCanvasElement.prototype.getContext = function (kind, attributes) {
    return getContext.call(this, kind, kind === "2d" ? { ...attributes, alpha: false } : attributes);
  };
  try {
    return make();
  } finally {
    HTMLCanvasElement.prototype.getContext = getContext;
  }
}

// How a series is drawn, per `draw`: a line through its points, the points alone, or bars.
const DRAW = {
  line: () => ({}),
  points: (d) => ({ paths: () => null, points: { show: true, size: 6, fill: d.color, stroke: d.color } }),
  bars: (d) => ({ paths: uPlot.paths.bars({ size: [0.7, 80] }), fill: faint(d.color, 0.7), points: { show: false } }),
};

function padHalfBar(u, min, max) {
  const n = u.data[0].length;
  const half = n > 1 ? (max - min) / (n - 1) / 2 : 0.5;
  return [min - half, max + half];
}

// 1, 2, 5, 10, 20, 50, … up to 5e15: tick spacings for an axis of whole numbers.
const WHOLE_INCREMENTS = Array.from({ length: 16 }, (_, e) => [1, 2, 5].map((m) => m * 10 ** e)).flat();

// Ticks at whole numbers only, as many as fit (about one per 40 px).
function wholeSplits(u) {
  const { min, max } = u.scales.x;
  const first = Math.ceil(min), last = Math.floor(max);
  const every = Math.max(1, Math.ceil((last - first + 1) / Math.max(1, u.bbox.width / devicePixelRatio / 40)));
  const out = [];
  for (let v = first; v <= last; v += every) out.push(v);
  return out;
}

export function download(text, name) {
  const link = h("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

function appendPoints(s, points) {
  for (let i = 0; i < points.xs.length; i++) {
    const x = points.xs[i];
    let at = s.xs.length;
    if (at && s.xs[at - 1] >= x) {
      at = lastAtOrBefore(s.xs, x);
      if (s.xs[at] === x) {
        s.ys[at] = points.ys[i];
        continue;
      }
      at += 1;
    }
    s.xs.splice(at, 0, x);
    s.ys.splice(at, 0, points.ys[i]);
  }
  for (const name of ["nan", "posinf", "neginf"]) s.marks[name].push(...points.marks[name]);
}
