// Selected runs side by side: every scalar key any of them logged as one chart with a line per
// run (a run keeps its colour everywhere), and a config table marking the keys that differ,
// with a "differences only" toggle.
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
  const infos = await Promise.all(ids.map((id) => api.run(project, id)));
  const metricLists = await Promise.all(ids.map((id) => api.metrics(project, id)));
  const colors = colorsFor(ids);
  const runs = infos.map((info, i) => ({ id: ids[i], label: info.name || ids[i], color: colors.get(ids[i]), created: info.created, config: info.config }));
  const keys = [...new Set(metricLists.flatMap((m) => m.metrics.filter((k) => k.type === "scalar").map((k) => k.key)))].sort();
  el.append(
    h("h1", null, `compare ${runs.length} runs`),
    h("div", { class: "compare-runs" }, runs.map((r) => h("span", { class: "legend-item" }, h("span", { class: "swatch", style: { background: r.color } }), r.label))),
    configDiff(runs),
  );
  const grid = new ChartGrid(el, { project, runs, keys, customX: keys });
  return () => grid.destroy();
}

function configDiff(runs) {
  const flat = runs.map((r) => new Map(flatten(r.config || {})));
  const keys = [...new Set(flat.flatMap((m) => [...m.keys()]))].sort();
  const differs = (k) => new Set(flat.map((m) => JSON.stringify(m.get(k) ?? null))).size > 1;
  const body = h("tbody");
  const only = h("input", {
    type: "checkbox",
    checked: param("diff") === "1",
    onchange: () => {
      setParams({ diff: only.checked ? "1" : null });
      draw();
    },
  });
  const draw = () => {
    const shown = keys.filter((k) => !only.checked || differs(k));
    replace(
      body,
      shown.map((k) =>
        h("tr", { class: differs(k) ? "differs" : "" }, h("th", null, k), flat.map((m) => h("td", null, m.has(k) ? show(m.get(k)) : "–"))),
      ),
    );
  };
  draw();
  return h(
    "details",
    { class: "config-diff", open: true },
    h("summary", null, "config ", h("span", { class: "count" }, `${keys.filter(differs).length} of ${keys.length} keys differ`)),
    h("label", null, only, " differences only"),
    h(
      "table",
      { class: "table" },
      h("thead", null, h("tr", null, h("th", null, "key"), runs.map((r) => h("th", null, h("span", { class: "swatch", style: { background: r.color } }), r.label)))),
      body,
    ),
  );
}
