// The runs table of a project: sorted, filtered and paged by the server, rows virtualised (only
// the rows in view exist), so 10,000 runs scroll as smoothly as ten. Columns, sort, filters,
// grouping and the selection live in the URL. Live: a new run appears, a finishing or crashing
// run changes its status in place.
import { api, live } from "../api.js";
import { columnValue as cell, label, metricKey, summarisedKey } from "../columns.js";
import { h, replace } from "../dom.js";
import { duration, time, value as show } from "../format.js";
import { go, href, param, path, setParams } from "../state.js";

const ROW = 30; // px per row
const PAGE = 200; // runs per request
const OVERSCAN = 4; // rows drawn beyond the view on each side

// `fit`: a column whose text always fits its width, so its cells need no clip of their own
// (a clip per cell was a fifth of a scrolled frame's layout and paint bookkeeping).
const BASE = [
  { id: "status", label: "status", sort: "status", width: "100px", fit: true },
  { id: "name", label: "name", sort: "name", width: "minmax(160px, 2fr)" },
  { id: "created", label: "created", sort: "created", width: "165px", fit: true },
  { id: "duration", label: "duration", sort: null, width: "90px", fit: true },
  { id: "tags", label: "tags", sort: null, width: "minmax(80px, 1fr)" },
  { id: "group", label: "group", sort: null, width: "100px" },
  { id: "job_type", label: "job type", sort: null, width: "90px" },
];

export async function runsView(el, where) {
  const project = where.project;
  const keys = await api.keys(project);
  const table = new RunsTable(el, project, keys);
  await table.reload();
  live.subscribe("runs", { project }, (message) => table.onLive(message));
  return () => table.destroy();
}

class RunsTable {
  constructor(el, project, keys) {
    this.project = project;
    this.keys = keys;
    this.pages = new Map(); // page number -> runs (or a promise while loading)
    this.total = 0;
    this.selected = new Set(param("sel").split(",").filter(Boolean));
    this.head = h("div", { class: "runs-head" });
    this.spacer = h("div", { class: "runs-spacer" });
    this.rows = h("div", { class: "runs-rows", role: "rowgroup" }, this.spacer);
    this.rows.addEventListener("scroll", () => this.draw());
    // The table is built before it is on the page (no height yet): draw again once it has one.
    // Its height is kept from here, so that drawing reads no layout (only the scroll offset).
    this.height = 0;
    this.resizer = new ResizeObserver(([entry]) => {
      this.height = entry.contentRect.height;
      this.draw();
    });
    this.resizer.observe(this.rows);
    this.count = h("span", { class: "count" });
    this.compareButton = h("button", { onclick: () => this.compare() }, "compare");
    el.append(h("h1", null, project), this.toolbar(), h("div", { class: "runs-table", role: "table" }, this.head, this.rows));
    this.updateCompare();
  }

  columns() {
    const extra = this.picked().map((id) => ({ id, label: label(id), sort: id, width: "minmax(90px, 1fr)" }));
    const group = param("group");
    const groupCol = group ? [{ id: group, label: `group: ${group}`, sort: group, width: "minmax(90px, 1fr)" }] : [];
    // The machine each run was relayed from, once the project has relayed runs.
    const origin = this.keys.origins.length ? [{ id: "origin", label: "origin", sort: "origin", width: "minmax(80px, 1fr)" }] : [];
    const [status, name, ...rest] = BASE;
    return [{ id: "select", label: "", sort: null, width: "32px", fit: true }, ...groupCol, status, name, ...origin, ...rest, ...extra];
  }

  toolbar() {
    const text = h("input", {
      type: "search",
      id: "search",
      placeholder: "filter runs  ( / )",
      value: param("text"),
      oninput: () => {
        clearTimeout(this.typing);
        this.typing = setTimeout(() => this.set({ text: text.value }), 250);
      },
    });
    const status = h(
      "select",
      { title: "status", onchange: () => this.set({ status: status.value }) },
      ["", "running", "finished", "crashed"].map((s) => h("option", { value: s }, s ? s : "any status")),
    );
    status.value = param("status");
    const tag = h(
      "select",
      { title: "tag", onchange: () => this.set({ tag: tag.value }) },
      h("option", { value: "" }, "any tag"),
      this.keys.tags.map((t) => h("option", { value: t }, t)),
    );
    tag.value = param("tag");
    // Which machine runs were relayed from ("-": logged on this server), once there are any.
    const origin = this.keys.origins.length
      ? h(
          "select",
          { title: "origin: the machine runs were relayed from", class: "origin-filter", onchange: () => this.set({ origin: origin.value }) },
          h("option", { value: "" }, "any origin"),
          h("option", { value: "-" }, "logged here"),
          this.keys.origins.map((o) => h("option", { value: o }, `from ${o}`)),
        )
      : null;
    if (origin) origin.value = param("origin");
    const group = h(
      "select",
      { title: "group rows by a config key (sorts by it)", onchange: () => this.set({ group: group.value ? `config.${group.value}` : "", sort: group.value ? `config.${group.value}` : "" }) },
      h("option", { value: "" }, "no grouping"),
      this.keys.config.map((k) => h("option", { value: k }, `group by ${k}`)),
    );
    group.value = param("group").replace(/^config\./, "");
    return h(
      "div",
      { class: "toolbar" },
      text,
      status,
      tag,
      origin,
      this.picker(),
      group,
      this.count,
      this.compareButton,
      h("a", { href: path(this.project, "across"), "data-nav": 1, class: "button" }, "across runs"),
      h("a", { href: path(this.project, "artifacts"), "data-nav": 1, class: "button" }, "artifacts"),
    );
  }

  picked() {
    return param("cols").split(",").filter(Boolean);
  }

  // Column picker: any config key, and per summarised key its summary value (or each of its
  // aggregates), min or max; the choice is kept in the URL (?cols=). A new min/max column asks
  // the server again.
  picker() {
    const chosen = new Set(this.picked());
    const check = (id, text) =>
      h(
        "label",
        { class: "pick", title: id },
        h("input", {
          type: "checkbox",
          checked: chosen.has(id),
          onchange: (e) => {
            if (e.target.checked) chosen.add(id);
            else chosen.delete(id);
            this.set({ cols: [...chosen].join(",") }, id.startsWith("metric."));
          },
        }),
        text,
      );
    const box = (id) => check(id, id);
    const summarised = new Map(); // key -> its summary keys (itself, or KEY.AGGREGATE ones)
    for (const k of this.keys.summary) {
      const base = summarisedKey(k, this.keys.summary);
      if (!summarised.has(base)) summarised.set(base, []);
      summarised.get(base).push(k);
    }
    const summaryRow = ([key, summaryKeys]) =>
      h(
        "div",
        { class: "pick-row" },
        summaryKeys.map((k) => check(`summary.${k}`, `summary.${k}`)),
        check(`metric.${key}.min`, "min"),
        check(`metric.${key}.max`, "max"),
      );
    return h(
      "details",
      { class: "picker" },
      h("summary", null, "columns"),
      h(
        "div",
        { class: "picker-list" },
        h("strong", null, "summary"),
        [...summarised].map(summaryRow),
        h("strong", null, "config"),
        this.keys.config.map((k) => box(`config.${k}`)),
      ),
    );
  }

  set(changes, refetch = true) {
    setParams(changes);
    if (refetch) this.reload();
    else this.drawHead(), this.draw(true);
  }

  params(offset) {
    return {
      sort: param("sort", "-created"),
      text: param("text"),
      status: param("status"),
      tag: param("tag"),
      origin: param("origin"),
      limit: PAGE,
      offset,
      metric: [...new Set(this.picked().map(metricKey).filter((key) => key !== null))],
    };
  }

  async reload() {
    this.pages.clear();
    const first = await api.runs(this.project, this.params(0));
    this.pages.set(0, first.runs);
    this.total = first.total;
    replace(this.count, `${this.total} runs`);
    this.spacer.style.height = `${this.total * ROW}px`;
    this.drawHead();
    this.draw(true);
  }

  page(n) {
    if (this.pages.has(n)) return this.pages.get(n);
    const loading = api.runs(this.project, this.params(n * PAGE)).then((answer) => {
      this.pages.set(n, answer.runs);
      this.first = null; // replace the placeholders in view, keep the other rows
      // At the next frame, with the scroll's own drawing, not now: drawing as the answer comes
      // read the scroll offset of a changed page, a layout forced between two frames.
      if (!this.queued) {
        this.queued = true;
        requestAnimationFrame(() => ((this.queued = false), this.draw()));
      }
    });
    this.pages.set(n, loading);
    return loading;
  }

  // The head, and what every row is drawn with until the next: the columns, their grid and
  // the grouping key (read here once, not from the URL for every frame of a scroll).
  drawHead() {
    const sort = param("sort", "-created");
    const cols = (this.cols = this.columns());
    this.group = param("group");
    this.template = cols.map((c) => c.width).join(" ");
    this.head.style.gridTemplateColumns = this.template;
    replace(
      this.head,
      cols.map((c) => {
        if (!c.sort) return h("div", { class: "cell head", title: c.label }, c.label);
        const active = sort.replace(/^-/, "") === c.sort;
        const arrow = active ? (sort.startsWith("-") ? " ▼" : " ▲") : "";
        return h(
          "button",
          {
            class: `cell head sortable${active ? " active" : ""}`,
            title: `${c.label}: sort by this column (on the server)`,
            onclick: () => this.set({ sort: active && !sort.startsWith("-") ? `-${c.sort}` : c.sort }),
          },
          c.label + arrow,
        );
      }),
    );
  }

  // Only the rows in view (and a few around) are in the DOM. Rows are reused: a row scrolling
  // out takes the place of one scrolling in and only its cells' text changes, in place (making
  // ~40 rows of new elements for every screenful was most of a fast scroll's frame). `force`
  // (new data, a new selection) fills every row again. It reads the scroll offset and nothing
  // else of the layout; the pages next to those in view are asked for before they are needed.
  draw(force = false) {
    if (!this.cols) return; // before the first answer
    const top = this.rows.scrollTop;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(this.total, Math.ceil((top + this.height) / ROW) + OVERSCAN);
    if (!force && first === this.first && last === this.last) return;
    this.first = first;
    this.last = last;
    const cols = this.cols;
    const shape = this.template + cols.map((c) => c.id).join("\0");
    if (!this.drawn || shape !== this.shape) {
      // Other columns: rows cannot be reused.
      this.shape = shape;
      this.drawn = new Map();
      replace(this.rows, this.spacer);
    }
    const spare = [];
    for (const [i, row] of this.drawn) {
      if (i < first || i >= last) spare.push(row), this.drawn.delete(i);
    }
    const group = this.group;
    for (let i = first; i < last; i++) {
      const run = this.runAt(i, true);
      let row = this.drawn.get(i);
      if (row && row.run === run && !force) continue;
      if (!row) {
        row = spare.pop() || this.makeRow(cols);
        row.style.top = `${i * ROW}px`;
        if (!row.isConnected) this.rows.append(row);
        this.drawn.set(i, row);
      }
      const previous = run && group && i > 0 ? this.runAt(i - 1) : null;
      this.fill(row, run, cols, Boolean(run && group && (!previous || cell(previous, group) !== cell(run, group))));
    }
    for (const row of spare) row.remove();
    // Half a page ahead and behind: a fast scroll finds its rows loaded, not placeholders that
    // are drawn again a few frames later.
    for (const at of [first - PAGE / 2, last + PAGE / 2]) {
      if (at >= 0 && at < this.total) this.page(Math.floor(at / PAGE));
    }
  }

  // The run at row i, if its page is loaded; `fetch` asks for the page when it is not.
  runAt(i, fetch = false) {
    const runs = fetch ? this.page(Math.floor(i / PAGE)) : this.pages.get(Math.floor(i / PAGE));
    return Array.isArray(runs) ? runs[i % PAGE] : null;
  }

  makeRow(cols) {
    const row = h("div", { class: "row" }, cols.map((c) => (CELLS[c.id] || VALUE).make(this)));
    cols.forEach((c, k) => c.fit && row.children[k].classList.add("fit"));
    row.style.gridTemplateColumns = this.template;
    return row;
  }

  // Show `run` in `row` (null: its page is still loading, a placeholder).
  fill(row, run, cols, groupStart) {
    row.run = run;
    row.classList.toggle("placeholder", !run);
    row.classList.toggle("selected", Boolean(run && this.selected.has(run.id)));
    row.classList.toggle("group-start", groupStart);
    if (!run) return void delete row.dataset.run;
    row.dataset.run = run.id;
    cols.forEach((c, k) => (CELLS[c.id] || VALUE).fill(row.children[k], run, this, c.id));
  }

  select(id, on) {
    if (on) this.selected.add(id);
    else this.selected.delete(id);
    setParams({ sel: [...this.selected].join(",") });
    this.updateCompare();
    this.draw(true);
  }

  updateCompare() {
    this.compareButton.disabled = this.selected.size < 1;
    replace(this.compareButton, `compare ${this.selected.size || ""}`.trim());
  }

  compare() {
    go(href(path(this.project, "compare"), { runs: [...this.selected].join(",") }));
  }

  // A pushed change: rows already loaded change in place; a run not loaded yet (new) makes
  // the table ask the server again, since where it sorts is the server's to say.
  onLive(message) {
    if (message.type !== "runs") return;
    let unknown = (message.removed || []).length > 0;
    for (const changed of message.runs) {
      let found = false;
      for (const runs of this.pages.values()) {
        if (!Array.isArray(runs)) continue;
        const run = runs.find((r) => r.id === changed.id);
        if (run) Object.assign(run, changed), (found = true);
      }
      if (!found) unknown = true;
    }
    if (unknown) {
      clearTimeout(this.refetch);
      this.refetch = setTimeout(() => this.reload(), 300);
    } else this.draw(true);
  }

  destroy() {
    this.resizer.disconnect();
    clearTimeout(this.refetch);
    live.unsubscribe("runs");
  }
}

// Each column makes its cell once, and fills it for whichever run its row shows (rows are
// reused while scrolling). User text goes in as text: a cell's text node, rewritten in place
// (a new node per fill was a change of the DOM, and garbage, for every cell scrolled in).
const text = (cls = "cell") => ({ make: () => textCell("div", { class: cls }), fill: null });

function textCell(tag, attrs) {
  const node = document.createTextNode("");
  const el = h(tag, attrs, node);
  el.textNode = node;
  return el;
}

function write(el, text) {
  if (el.textNode.data !== text) el.textNode.data = text;
}

function setProperty(el, name, value) {
  if (el[name] !== value) el[name] = value;
}
const CELLS = {
  select: {
    make: (table) => {
      const box = h("input", { type: "checkbox", title: "select to compare" });
      box.onchange = () => table.select(box.closest(".row").dataset.run, box.checked);
      return h("div", { class: "cell" }, box);
    },
    fill: (el, run, table) => (el.firstChild.checked = table.selected.has(run.id)),
  },
  status: {
    make: () => h("div", { class: "cell" }, textCell("span", { class: "status" })),
    fill: (el, run) => {
      setProperty(el.firstChild, "className", `status ${run.status}`);
      write(el.firstChild, run.status);
    },
  },
  name: {
    make: () => h("div", { class: "cell" }, textCell("a", { "data-nav": 1 })),
    fill: (el, run, table) => {
      const link = el.firstChild;
      if (link.title !== run.id) (link.href = path(table.project, "r", run.id)), (link.title = run.id);
      write(link, run.name || run.id);
    },
  },
  created: { ...text(), fill: (el, run) => write(el, time(run.created)) },
  duration: {
    ...text("cell num"),
    fill: (el, run) => write(el, duration((run.status === "running" ? Date.now() / 1000 : run.updated) - run.created)),
  },
  tags: {
    ...text(),
    fill: (el, run) => {
      const tags = run.tags || [];
      const shown = tags.join("\0");
      if (el.dataset.tags === shown) return;
      replace(el, tags.map((t) => h("span", { class: "tag" }, t)));
      el.dataset.tags = shown;
    },
  },
  origin: { ...text(), fill: (el, run) => write(el, run.origin ?? "") },
  group: { ...text(), fill: (el, run) => write(el, run.group ?? "") },
  job_type: { ...text(), fill: (el, run) => write(el, run.job_type ?? "") },
};
// A config, summary or metric column.
const VALUE = { ...text("cell num"), fill: (el, run, table, id) => write(el, show(cell(run, id))) };
