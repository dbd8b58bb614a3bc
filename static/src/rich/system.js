// System metrics (CPU, memory, disk, network, GPU) on a wall-time axis, through the one chart
// component.
import { api } from "../api.js";
import { Chart, fromPoints } from "../chart.js";
import { h } from "../dom.js";

export async function systemPanel(project, run, rank) {
  const { series } = await api.system(project, run, rank);
  const el = h("div", { class: "chart-grid system" });
  const keys = Object.keys(series).sort();
  if (!keys.length) return h("p", { class: "empty" }, "no system metrics recorded");
  const charts = [];
  for (const key of keys) {
    const chart = new Chart(el, { title: key, xKind: "time", xLabel: "wall time", syncKey: "system" });
    chart.setSeries([{ id: run, label: key, color: "#4e79a7", ...fromPoints(series[key].t, series[key].value), raw: null }]);
    charts.push(chart);
  }
  requestAnimationFrame(() => charts.forEach((c) => c.setVisible(true)));
  return el;
}
