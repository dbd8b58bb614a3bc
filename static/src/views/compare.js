// Selected runs side by side: every scalar key any of them logged as one chart with a line per
// run (a run keeps its colour everywhere), and config and summary tables marking the keys that
// differ, with a "differences only" toggle. A summary define_metric made an object of
// aggregates ({"max": 0.9}) has a row per aggregate (`val/acc.max`).
import { api } from "../api.js";
import { colorsFor } from "../chart.js";
import { ChartGrid } from "../chart_grid.js";
import { h, replace } from "../dom.js";
import { value as show } from "../format.js";
import { flatten } from "../rich/overview.js";
import { param, setParams } from "../state.js";

export async function compareView(el, where) {
  const { project } = where;
  const ids = param("runs").split(",").filter(Boolean);
  if (!ids.length) return void el.append(h("p", { class: "empty" }, "select runs in the runs table to compare them"));
  // Every run with its scalar keys in one request (one each made twenty requests that the
  // server, on two cores, answered in turn before the first chart could be asked for).
  const { runs: found } = await api.runs(project, { id: ids, scalar_keys: "true", limit: ids.length });
  const byId = new Map(found.map((r) => [r.id, r]));
  const missing = ids.find((id) => !byId.has(id));
  if (missing) throw new Error(`no run '${missing}' in project '${project}'`);
  const colors = colorsFor(ids);
  const runs = ids.map((id) => byId.get(id)).map((info) => ({ id: info.id, label: info.name || info.id, color: colors.get(info.id), created: info.created, config: info.config, summary: info.summary }));
  const keys = [...new Set(runs.flatMap((r) => byId.get(r.id).scalar_keys))].sort();
  el.append(
    h("h1", null, `compare ${runs.length} runs`),
    h("div", { class: "compare-runs" }, runs.map((r) => h("span", { class: "legend-item" }, h("span", { class: "swatch", style: { background: r.color } }), r.label))),
    diffTables(runs),
  );
  const grid = new ChartGrid(el, { project, runs, keys, customX: keys });
  return () => grid.destroy();
}

// The config and summary tables, and one "differences only" toggle for both (in the URL).
function diffTables(runs) {
  const tables = ["config", "summary"].map((name) => diffTable(runs, name));
  const only = h("input", {
    type: "checkbox",
    checked: param("diff") === "1",
    onchange: () => {
      setParams({ diff: only.checked ? "1" : null });
      tables.forEach((t) => t.draw(only.checked));
    },
  });
  tables.forEach((t) => t.draw(only.checked));
  return h("div", { class: "diff-tables" }, h("label", null, only, " differences only"), tables.map((t) => t.el));
}

function diffTable(runs, name) {
  const flat = runs.map((r) => new Map(flatten(r[name] || {})));
  const keys = [...new Set(flat.flatMap((m) => [...m.keys()]))].sort();
  const differs = (k) => new Set(flat.map((m) => JSON.stringify(m.get(k) ?? null))).size > 1;
  const body = h("tbody");
  const draw = (only) => {
    const shown = keys.filter((k) => !only || differs(k));
    replace(
      body,
      shown.map((k) =>
        h("tr", { class: differs(k) ? "differs" : "" }, h("th", null, k), flat.map((m) => h("td", null, m.has(k) ? show(m.get(k)) : "–"))),
      ),
    );
  };
  const el = h(
    "details",
    // The summary table starts closed: the charts show the same numbers, and stay in view.
    { class: `diff-table ${name}-diff`, open: name === "config" },
    h("summary", null, `${name} `, h("span", { class: "count" }, `${keys.filter(differs).length} of ${keys.length} keys differ`)),
    h(
      "table",
      { class: "table" },
      h("thead", null, h("tr", null, h("th", null, "key"), runs.map((r) => h("th", null, h("span", { class: "swatch", style: { background: r.color } }), r.label)))),
      body,
    ),
  );
  return { el, draw };
}
