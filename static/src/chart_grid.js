// A page of charts, one per scalar key, each with a series per run: what the run view and the
// compare view show. It owns loading (M4 buckets at about each chart's pixel width, through
// the batch endpoint, only for charts on screen), the shared settings (smoothing, x axis, log
// y, outliers, zoom: all in the URL), sections by key prefix with a search box, and live
// updates over /ws (new points extend the charts; zoom, smoothing and hover survive).
import { api, live } from "./api.js";
import { Chart, download, fromBuckets, fromPoints } from "./chart.js";
import { h, replace } from "./dom.js";
import { param, setParams } from "./state.js";

const BATCH = 500; // series per batch request (the API's limit)

export function chartSettings() {
  const zoom = param("zoom").split(",").map(Number);
  return {
    smooth: Math.min(0.999, Math.max(0, Number(param("smooth", "0")) || 0)),
    x: param("x"), // "" = each key's own axis (define_metric), step, time, relative, or a key
    logy: param("logy") === "1",
    outliers: param("outliers") === "1",
    zoom: zoom.length === 2 && zoom.every(Number.isFinite) ? zoom : null,
    q: param("q"),
  };
}

export class ChartGrid {
  // runs: [{id, label, color, created}]; keys: scalar keys; customX: keys offered as x axes.
  // A run may also carry runId and rank: its series are then that rank's of run runId, and
  // id only tells it apart from the other ranks of the run shown beside it.
  constructor(container, { project, runs, keys, customX = [] }) {
    this.project = project;
    this.runs = runs;
    this.keys = keys;
    this.settings = chartSettings();
    this.charts = new Map(); // key -> {chart, loaded, loading, cursors, ema, extra}
    this.sectionsOpen = new Set(JSON.parse(sessionStorage.getItem("waddle.closed") || "[]"));
    this.toolbar = this.controls(customX);
    this.body = h("div", { class: "chart-sections" });
    container.append(this.toolbar, this.body);
    this.observer = new IntersectionObserver((entries) => this.onVisible(entries), { rootMargin: "200px" });
    this.layout();
  }

  controls(customX) {
    const s = this.settings;
    const search = h("input", {
      type: "search",
      id: "search",
      placeholder: "search metrics  ( / )",
      value: s.q,
      oninput: () => {
        setParams({ q: search.value });
        this.settings.q = search.value;
        this.layout();
      },
    });
    const smoothLabel = h("span", { class: "num" }, s.smooth.toFixed(2));
    const smooth = h("input", {
      type: "range",
      min: 0,
      max: 0.99,
      step: 0.01,
      value: s.smooth,
      title: "smoothing (debiased EMA on the full series, computed by the server)",
      oninput: () => replace(smoothLabel, Number(smooth.value).toFixed(2)),
      onchange: () => this.update({ smooth: Number(smooth.value) }),
    });
    const x = h(
      "select",
      { title: "x axis", onchange: () => this.update({ x: x.value }) },
      h("option", { value: "" }, "x: default"),
      h("option", { value: "step" }, "x: step"),
      h("option", { value: "time" }, "x: wall time"),
      h("option", { value: "relative" }, "x: relative time"),
      customX.map((key) => h("option", { value: key }, `x: ${key}`)),
    );
    x.value = s.x;
    const toggle = (name, label, title) =>
      h(
        "label",
        { title },
        h("input", { type: "checkbox", checked: s[name], onchange: (e) => this.update({ [name]: e.target.checked }) }),
        label,
      );
    return h(
      "div",
      { class: "toolbar" },
      search,
      h("label", { class: "smooth" }, "smoothing ", smooth, smoothLabel),
      x,
      toggle("logy", "log y", "logarithmic y axis"),
      toggle("outliers", "ignore outliers", "clip the y range to the 2nd–98th percentile; clipped points are marked at the edge"),
      h("button", { onclick: () => this.zoom(null), title: "show the whole x range (or double-click a chart)" }, "reset zoom"),
    );
  }

  update(changes) {
    Object.assign(this.settings, changes);
    const s = this.settings;
    setParams({
      smooth: s.smooth ? s.smooth : null,
      x: s.x || null,
      logy: s.logy ? "1" : null,
      outliers: s.outliers ? "1" : null,
    });
    if ("logy" in changes || "outliers" in changes) {
      for (const entry of this.charts.values()) entry.chart.setSettings(s);
    }
    if ("smooth" in changes || "x" in changes) {
      if ("x" in changes) this.zoom(null, false);
      this.relayout = true;
      this.layout();
    }
  }

  // Sections by key prefix (train/, val/); a chart is made for every key matching the search,
  // and drawn only once it scrolls into view.
  layout() {
    const generation = (this.generation = (this.generation || 0) + 1);
    for (const entry of this.charts.values()) {
      this.observer.unobserve(entry.chart.el);
      entry.chart.destroy();
      for (const id of entry.subs) live.unsubscribe(id);
    }
    this.charts.clear();
    const q = this.settings.q.toLowerCase();
    const keys = this.keys.filter((k) => k.toLowerCase().includes(q));
    const sections = new Map();
    for (const key of keys) {
      const slash = key.indexOf("/");
      const name = slash > 0 ? key.slice(0, slash) : "charts";
      if (!sections.has(name)) sections.set(name, []);
      sections.get(name).push(key);
    }
    replace(this.body);
    if (!keys.length) this.body.append(h("p", { class: "empty" }, this.keys.length ? "no metric matches the search" : "no scalar metrics logged"));
    const grids = [];
    for (const [name, sectionKeys] of sections) {
      const grid = h("div", { class: "chart-grid" });
      const details = h(
        "details",
        { class: "section", open: !this.sectionsOpen.has(name) },
        h("summary", null, name, h("span", { class: "count" }, ` ${sectionKeys.length}`)),
        grid,
      );
      details.addEventListener("toggle", () => {
        if (details.open) this.sectionsOpen.delete(name);
        else this.sectionsOpen.add(name);
        sessionStorage.setItem("waddle.closed", JSON.stringify([...this.sectionsOpen]));
      });
      this.body.append(details);
      grids.push([grid, sectionKeys]);
    }
    const rest = () => {
      if (generation !== this.generation) return; // laid out again meanwhile
      for (const [grid, sectionKeys] of grids) for (const key of sectionKeys) if (!this.charts.has(key)) this.addChart(grid, key);
    };
    // The first chart is made and asked for at once, not a frame later when the observer
    // reports it in view: it is the one the user looks at first (or taken from the page, which
    // asked for it beside the script). The other charts are made, and asked for, once the
    // frame that shows it is made (making 50 charts first, or drawing the next ones, delayed
    // that frame on two cores; two requests at once slowed the first).
    this.first = Promise.resolve();
    if (grids.length) this.addChart(grids[0][0], grids[0][1][0]);
    const first = this.charts.values().next().value;
    if (!first || !this.body.isConnected || !first.chart.el.getClientRects().length) rest();
    else {
      first.loaded = true;
      first.chart.setVisible(true);
      const preloaded = this.preloadedFirst(first.key);
      const loading = preloaded ? this.loadPreloaded(first, preloaded) : this.loadInParts([[first]]);
      this.first = loading.then(shown).catch((error) => this.fail([first], error));
      this.first.then(rest);
    }
  }

  // The first chart's answer the page preloaded (server/routes/dashboard.py, _first_chart), or
  // null: taken once, and only when it is this chart's as the chart draws it (one run's own
  // series, its default x axis, no smoothing or zoom). It has FIRST_CHART_POINTS buckets, not
  // the chart's width in pixels: the page asked before there was a layout to measure.
  preloadedFirst(key) {
    const link = document.querySelector("link[data-first-chart]");
    if (!link) return null;
    link.removeAttribute("data-first-chart");
    const s = this.settings;
    const [run] = this.runs;
    if (this.runs.length !== 1 || run.rank !== undefined || run.runId !== undefined || s.smooth || s.x || s.zoom) return null;
    const url = new URL(link.href);
    const path = `/api/projects/${encodeURIComponent(this.project)}/runs/${encodeURIComponent(run.id)}/scalars`;
    return url.pathname === path && url.searchParams.get("key") === key ? link.href : null;
  }

  async loadPreloaded(entry, url) {
    const answer = await api.preloaded(url);
    await this.draw([entry], new Map([[`${this.runs[0].id}\0${entry.key}`, { raw: answer, smooth: null, offset: 0 }]]));
  }

  xKind() {
    const x = this.settings.x;
    return x === "" ? "default" : ["step", "time", "relative"].includes(x) ? x : "custom";
  }

  addChart(grid, key) {
    const kind = this.xKind();
    const chart = new Chart(grid, {
      title: key,
      xKind: kind === "default" ? "step" : kind,
      xLabel: kind === "default" ? "step" : kind === "relative" ? "relative time" : kind === "time" ? "wall time" : this.settings.x,
      logy: this.settings.logy,
      outliers: this.settings.outliers,
      onZoom: (min, max) => this.zoom([min, max]),
      onReset: () => this.zoom(null),
      onExport: () => this.exportCsv(key),
    });
    chart.el.dataset.key = key;
    const entry = { key, chart, loaded: false, subs: [], ema: new Map(), appended: 0, axis: null };
    this.charts.set(key, entry);
    chart.setXRange(this.settings.zoom);
    this.observer.observe(chart.el);
  }

  // Charts that came into view load right away, in batch requests.
  onVisible(entries) {
    const batch = [];
    for (const e of entries) {
      const entry = this.charts.get(e.target.dataset.key);
      if (!entry) continue;
      entry.chart.setVisible(e.isIntersecting);
      if (e.isIntersecting && !entry.loaded) {
        entry.loaded = true;
        batch.push(entry);
      }
    }
    if (!batch.length) return;
    // About 16 series a request, in parts of even size: the first charts draw while the others
    // load (one request for 50 charts would draw nothing until all 50 came back), and no part
    // is a lone chart that costs a round trip of its own (each waits its turn on a busy
    // machine; charts of 10 runs went one a request).
    const most = Math.max(1, Math.round(16 / this.runs.length));
    const count = Math.ceil(batch.length / most);
    const parts = [];
    for (let i = 0; i < count; i++) parts.push(batch.slice(Math.round((i * batch.length) / count), Math.round(((i + 1) * batch.length) / count)));
    this.first.then(() => this.loadInParts(parts)).catch((error) => this.fail(batch, error));
  }

  fail(entries, error) {
    for (const entry of entries) replace(entry.chart.note, `could not load: ${error.message}`);
  }

  // One batch request (two with smoothing: the smoothed series and the raw one behind it) for
  // every series of `entries` (of the runs in `only`, the others kept as they are); relative
  // time asks per run, since each run starts elsewhere.
  async load(entries, only = null) {
    if (!entries.length) return;
    await this.draw(entries, await this.fetch(entries, only), only);
  }

  // Pages of charts, one request after another: the next is asked for as soon as the previous
  // answer is in, and drawn while the next is on its way (the server and the page share the
  // machine's cores; many requests at once only slow each other).
  async loadInParts(parts) {
    let next = this.fetch(parts[0]);
    for (let i = 0; i < parts.length; i++) {
      const results = await next;
      if (i + 1 < parts.length) next = this.fetch(parts[i + 1]);
      await this.draw(parts[i], results);
    }
  }

  async fetch(entries, only = null) {
    const s = this.settings;
    const targets = only || this.runs;
    const points = Math.max(100, Math.min(4000, entries[0].chart.width()));
    const relative = s.x === "relative";
    const groups = relative ? targets.map((r) => [r]) : [targets];
    const results = new Map(); // `${run}\0${key}` -> {raw, smooth}
    for (const runs of groups) {
      const offset = relative ? runs[0].created || 0 : 0;
      const ids = entries.flatMap(() => runs.map((r) => r.id));
      const series = entries.flatMap((e) => runs.map((r) => ({ ...ref(r), key: e.key })));
      const body = {
        x: relative ? "time" : s.x || null,
        start: s.zoom ? s.zoom[0] + offset : null,
        end: s.zoom ? s.zoom[1] + offset : null,
        points,
      };
      for (let i = 0; i < series.length; i += BATCH) {
        const part = series.slice(i, i + BATCH);
        const asks = [api.batch(this.project, { ...body, series: part, smooth: 0 })];
        if (s.smooth > 0) asks.push(api.batch(this.project, { ...body, series: part, smooth: s.smooth }));
        const [raw, smooth] = await Promise.all(asks);
        raw.results.forEach((result, j) => {
          results.set(`${ids[i + j]}\0${part[j].key}`, { raw: result, smooth: smooth ? smooth.results[j] : null, offset });
        });
      }
    }
    return results;
  }

  async draw(entries, results, only = null) {
    const s = this.settings;
    const targets = only || this.runs;
    const width = entries[0].chart.canvasBox.clientWidth; // one layout for all of them
    let slice = performance.now();
    for (const entry of entries) {
      // Let the browser paint the charts made so far every ~30 ms: the first one shows sooner.
      if (performance.now() - slice > 30) {
        await new Promise((resolve) => requestAnimationFrame(resolve));
        slice = performance.now();
      }
      if (this.charts.get(entry.key) !== entry) continue; // laid out again meanwhile
      entry.chart.knownWidth = width;
      const list = only ? entry.chart.series.filter((kept) => !only.some((r) => r.id === kept.id)) : [];
      const errors = [];
      for (const run of targets) {
        const got = results.get(`${run.id}\0${entry.key}`);
        if (!got) continue;
        if (got.raw.error) {
          if (got.raw.error.code !== "not_found") errors.push(`${run.label}: ${got.raw.error.message}`);
          continue;
        }
        entry.axis = got.raw.x;
        const raw = shift(fromBuckets(got.raw.buckets), got.offset);
        const main = got.smooth && !got.smooth.error ? shift(fromBuckets(got.smooth.buckets), got.offset) : raw;
        list.push({ id: run.id, label: run.label, color: run.color, ...main, raw: main === raw ? null : raw });
        if (got.smooth && !got.smooth.error) {
          const b = got.smooth.buckets;
          const count = b.count.reduce((a, c) => a + c, 0) - b.nan.reduce((a, c) => a + c, 0);
          const last = main.ys.length ? main.ys[main.ys.length - 1] : null;
          // The smoothed answer holds the points up to its own cursor: live points after it
          // continue its average (debiased as the server does: by 1 - w^n after n points).
          entry.ema.set(run.id, { n: count, biased: last === null ? 0 : last * (1 - s.smooth ** count), cursor: got.smooth.cursor });
        }
        const cursor = got.smooth && !got.smooth.error ? Math.min(got.raw.cursor, got.smooth.cursor) : got.raw.cursor;
        this.follow(entry, run, cursor, got.offset);
      }
      if (entry.axis && this.xKind() === "default" && entry.axis !== "step") {
        entry.chart.options.xLabel = entry.axis;
        entry.chart.options.xKind = "custom";
      }
      if (only) list.sort((a, b) => this.runs.findIndex((r) => r.id === a.id) - this.runs.findIndex((r) => r.id === b.id));
      entry.chart.setSeries(list);
      replace(entry.chart.note, errors.join("; "));
      entry.appended = 0;
    }
  }

  // Live: points of (run, key) after `cursor` extend the chart as they arrive.
  follow(entry, run, cursor, offset) {
    const id = `chart\0${entry.key}\0${run.id}`;
    if (entry.subs.includes(id)) return;
    entry.subs.push(id);
    live.subscribe(id, { project: this.project, ...ref(run), key: entry.key, cursor }, (message) => {
      if (this.charts.get(entry.key) !== entry) return;
      if (message.type === "resync") return this.reloadSeries(entry, run, id);
      if (message.type !== "points") return;
      const axis = this.settings.x === "relative" || this.settings.x === "time" ? "t" : entry.axis === "step" || !entry.axis ? "step" : null;
      if (axis === null) return this.reloadSoon(entry); // a custom x: its values come with HTTP
      const raw = shift(fromPoints(message[axis], message.value), offset);
      let smooth = null;
      const state = entry.ema.get(run.id);
      if (state && this.settings.smooth > 0) {
        const w = this.settings.smooth;
        const xs = [], ys = [];
        raw.ys.forEach((y, i) => {
          if (message.seq[i] <= state.cursor) return; // already in the smoothed answer
          xs.push(raw.xs[i]);
          if (y === null) return ys.push(null);
          state.n += 1;
          state.biased = w * state.biased + (1 - w) * y;
          ys.push(state.biased / (1 - w ** state.n));
        });
        smooth = { xs, ys, marks: { nan: [], posinf: [], neginf: [] } };
      }
      // With smoothing the NaN/Inf marks belong to the smoothed line, drawn on top.
      entry.chart.extend(run.id, smooth ? { ...smooth, marks: raw.marks } : raw, smooth ? raw : null);
      entry.appended += raw.xs.length;
      if (entry.appended > 2 * entry.chart.width()) this.reloadSoon(entry);
    });
  }

  // The server said this subscriber fell behind: reload that one series over HTTP and follow
  // it again from the new answer's cursor; the chart's other series stay as they are.
  reloadSeries(entry, run, id) {
    live.unsubscribe(id);
    entry.subs = entry.subs.filter((sub) => sub !== id);
    this.load([entry], [run]).catch((error) => this.fail([entry], error));
  }

  reloadSoon(entry) {
    if (entry.timer) return;
    entry.timer = setTimeout(() => {
      entry.timer = null;
      this.load([entry]).catch((error) => this.fail([entry], error));
    }, 1000);
  }

  // One x range for every chart (in the URL); each visible chart asks again for it, so a
  // zoomed range is drawn at full resolution once few points remain in it.
  zoom(range, reload = true) {
    this.settings.zoom = range;
    setParams({ zoom: range ? range.map((v) => +v.toPrecision(10)).join(",") : null });
    if (!reload) return;
    const visible = [];
    for (const entry of this.charts.values()) {
      entry.chart.setXRange(range);
      if (entry.chart.visible) visible.push(entry);
      else entry.loaded = false;
    }
    this.load(visible).catch((error) => this.fail(visible, error));
  }

  // Every point of every run of the chart (not the buckets drawn), as CSV.
  async exportCsv(key) {
    const lines = ["run,step,t,value"];
    for (const run of this.runs) {
      const { run: runId, rank } = ref(run);
      const answer = await api.scalars(this.project, runId, { key, rank }).catch(() => null);
      if (!answer) continue;
      const { step, t, value } = answer.series;
      for (let i = 0; i < step.length; i++) lines.push(`${csvCell(run.id)},${step[i]},${t[i]},${value[i]}`);
    }
    download(lines.join("\n") + "\n", `${key.replaceAll("/", "_")}.csv`);
  }

  destroy() {
    this.observer.disconnect();
    for (const entry of this.charts.values()) {
      for (const id of entry.subs) live.unsubscribe(id);
      entry.chart.destroy();
    }
    this.charts.clear();
  }
}

// Resolves once the next frame has been made (a task after its animation frame callbacks).
function shown() {
  return new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
}

// What the API calls a run's series: its run id, and its rank when one was chosen.
function ref(run) {
  return run.rank === undefined ? { run: run.runId ?? run.id } : { run: run.runId ?? run.id, rank: run.rank };
}

function shift(series, offset) {
  if (!offset) return series;
  const by = (x) => x - offset;
  return {
    xs: series.xs.map(by),
    ys: series.ys,
    marks: { nan: series.marks.nan.map(by), posinf: series.marks.posinf.map(by), neginf: series.marks.neginf.map(by) },
  };
}

function csvCell(text) {
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}
