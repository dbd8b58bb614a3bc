// A logged table at a chosen step: read from its side file (docs/format.md), shown a page at a
// time, sortable by any column; image cells as thumbnails. Cells are text, never markup.
import { api } from "../api.js";
import { h, replace } from "../dom.js";
import { value as show } from "../format.js";
import { mediaItem } from "./media.js";
import { StepSlider } from "./step_slider.js";

const PAGE = 20;
const NF = { nan: NaN, inf: Infinity, "-inf": -Infinity };

export async function tablePanel(project, run, key) {
  const { items } = await api.records(project, run, "tables", { key, limit: 10000 });
  const byStep = new Map(items.map((item) => [item.step, item]));
  const steps = [...byStep.keys()].sort((a, b) => a - b);
  const body = h("div", { class: "table-body" });
  const load = async (step) => {
    const item = byStep.get(step);
    if (!item) return replace(body);
    replace(body, new TableView(project, run, await readTable(project, run, item.value)).el);
  };
  const slider = new StepSlider(steps, (step) => load(step));
  await load(slider.step);
  return h("div", { class: "panel table-panel" }, h("h3", null, key), h("div", { class: "panel-tools" }, slider.el), body);
}

// A table value's rows from its side file, with NaN and ±Infinity put back where `nf` says.
export async function readTable(project, run, value) {
  const response = await fetch(api.fileUrl(project, run, value.path));
  if (!response.ok) throw new Error(`table ${value.path}: ${response.status} ${response.statusText}`);
  const table = await response.json();
  for (const [row, cols] of Object.entries(table.nf || {})) {
    for (const [col, token] of Object.entries(cols)) table.data[row][col] = NF[token];
  }
  return table;
}

class TableView {
  constructor(project, run, table) {
    this.project = project;
    this.run = run;
    this.table = table;
    this.page = 0;
    this.sort = null; // [column index, direction]
    this.el = h("div", { class: "rich-table" });
    this.draw();
  }

  rows() {
    const rows = this.table.data.map((row, i) => ({ row, i }));
    if (this.sort) {
      const [c, dir] = this.sort;
      rows.sort((a, b) => dir * compare(a.row[c], b.row[c]));
    }
    return rows;
  }

  draw() {
    const rows = this.rows();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    this.page = Math.min(this.page, pages - 1);
    const shown = rows.slice(this.page * PAGE, (this.page + 1) * PAGE);
    const head = this.table.columns.map((name, c) => {
      const arrow = this.sort && this.sort[0] === c ? (this.sort[1] > 0 ? " ▲" : " ▼") : "";
      return h(
        "th",
        {
          class: "sortable",
          onclick: () => {
            this.sort = this.sort && this.sort[0] === c ? [c, -this.sort[1]] : [c, 1];
            this.draw();
          },
        },
        String(name) + arrow,
      );
    });
    replace(
      this.el,
      h(
        "table",
        { class: "table" },
        h("thead", null, h("tr", null, h("th", null, "#"), head)),
        h(
          "tbody",
          null,
          shown.map(({ row, i }) =>
            h("tr", null, h("td", { class: "num" }, i), row.map((cell) => h("td", null, this.cell(cell)))),
          ),
        ),
      ),
      h(
        "div",
        { class: "pager" },
        h("button", { disabled: this.page === 0, onclick: () => (this.page--, this.draw()) }, "‹ previous"),
        ` page ${this.page + 1} of ${pages} (${rows.length} rows) `,
        h("button", { disabled: this.page >= pages - 1, onclick: () => (this.page++, this.draw()) }, "next ›"),
      ),
    );
  }

  cell(cell) {
    if (cell && typeof cell === "object" && cell._type) {
      if (cell._type === "image") {
        return h("img", { src: api.fileUrl(this.project, this.run, cell.path), alt: cell.caption || "image", class: "thumb pixelated" });
      }
      return mediaItem(this.project, this.run, cell);
    }
    return show(cell);
  }
}

function compare(a, b) {
  if (typeof a === "number" && typeof b === "number") {
    if (Number.isNaN(a)) return Number.isNaN(b) ? 0 : 1;
    if (Number.isNaN(b)) return -1;
    return a - b;
  }
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  return String(a).localeCompare(String(b));
}
