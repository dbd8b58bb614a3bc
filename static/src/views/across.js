// Across runs: a scatter of any two summary or config columns over the project's runs (hover
// names the run, a click opens it) and parallel coordinates from config to summary, for sweeps
// done by hand. Axes are in the URL (?sx= &sy= &axes=).
import { api } from "../api.js";
import { colorFor } from "../chart.js";
import { columnValue } from "../columns.js";
import { h, replace, svg } from "../dom.js";
import { num, value as show } from "../format.js";
import { go, param, path, setParams } from "../state.js";

export async function acrossView(el, where) {
  const { project } = where;
  const [keys, { runs }] = await Promise.all([api.keys(project), api.runs(project, { limit: 10000 })]);
  const columns = [...keys.config.map((k) => `config.${k}`), ...keys.summary.map((k) => `summary.${k}`)];
  const numeric = columns.filter((c) => runs.some((r) => Number.isFinite(numberOf(r, c))));
  if (numeric.length < 2) return void el.append(h("p", { class: "empty" }, "fewer than two numeric config or summary columns to plot"));
  const pick = (name, fallback) => {
    const select = h("select", { onchange: () => (setParams({ [name]: select.value }), draw()) }, numeric.map((c) => h("option", { value: c }, c)));
    select.value = numeric.includes(param(name)) ? param(name) : fallback;
    return select;
  };
  const firstSummary = numeric.find((c) => c.startsWith("summary.")) || numeric[1];
  const sx = pick("sx", numeric[0]);
  const sy = pick("sy", firstSummary === numeric[0] ? numeric[1] : firstSummary);
  const scatterBox = h("div", { class: "scatter" });
  const tip = h("div", { class: "tip", hidden: true });
  const parallelBox = h("div", { class: "parallel" });
  const draw = () => {
    scatter(scatterBox, tip, project, runs, sx.value, sy.value);
    parallel(parallelBox, project, runs, chosen());
  };
  // Which columns the parallel coordinates show (in the URL as ?axes=).
  const chosen = () => {
    const axes = (param("axes") || "").split(",").filter((c) => numeric.includes(c));
    return axes.length >= 2 ? axes : numeric.slice(0, 8);
  };
  const axisPicker = h(
    "details",
    { class: "picker" },
    h("summary", null, "axes"),
    h(
      "div",
      { class: "picker-list" },
      numeric.map((c) =>
        h(
          "label",
          { class: "pick" },
          h("input", {
            type: "checkbox",
            checked: chosen().includes(c),
            onchange: (e) => {
              const axes = new Set(chosen());
              if (e.target.checked) axes.add(c);
              else axes.delete(c);
              setParams({ axes: numeric.filter((n) => axes.has(n)).join(",") });
              draw();
            },
          }),
          c,
        ),
      ),
    ),
  );
  el.append(
    h("h1", null, "across runs"),
    h("div", { class: "toolbar" }, "x ", sx, " y ", sy, h("span", { class: "count" }, `${runs.length} runs`)),
    h("div", { class: "scatter-wrap" }, scatterBox, tip),
    h("h2", null, "parallel coordinates"),
    h("div", { class: "toolbar" }, axisPicker),
    parallelBox,
  );
  draw();
}

function numberOf(run, column) {
  const v = columnValue(run, column);
  if (typeof v === "boolean") return Number(v);
  return typeof v === "number" || typeof v === "string" ? num(v) : NaN;
}

function extent(values) {
  const finite = values.filter(Number.isFinite);
  let lo = Math.min(...finite), hi = Math.max(...finite);
  if (lo === hi) (lo -= 1), (hi += 1);
  return [lo, hi];
}

function scatter(box, tip, project, runs, cx, cy) {
  const W = 640, H = 360, M = 48;
  const points = runs.map((r) => ({ run: r, x: numberOf(r, cx), y: numberOf(r, cy) })).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const [x0, x1] = extent(points.map((p) => p.x));
  const [y0, y1] = extent(points.map((p) => p.y));
  const px = (x) => M + ((x - x0) / (x1 - x0)) * (W - 2 * M);
  const py = (y) => H - M - ((y - y0) / (y1 - y0)) * (H - 2 * M);
  const dots = points.map((p) =>
    svg(
      "circle",
      {
        cx: px(p.x),
        cy: py(p.y),
        r: 5,
        fill: colorFor(p.run.id),
        class: "dot",
        onmouseenter: (e) => {
          replace(tip, `${p.run.name || p.run.id}: ${cx} ${show(p.x)}, ${cy} ${show(p.y)}`);
          tip.hidden = false;
          tip.style.left = `${e.offsetX + 12}px`;
          tip.style.top = `${e.offsetY}px`;
        },
        onmouseleave: () => (tip.hidden = true),
        onclick: () => go(path(project, "r", p.run.id)),
      },
      svg("title", null, p.run.name || p.run.id),
    ),
  );
  replace(
    box,
    svg(
      "svg",
      { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "plot-svg" },
      svg("line", { x1: M, y1: H - M, x2: W - M, y2: H - M, class: "axis" }),
      svg("line", { x1: M, y1: M, x2: M, y2: H - M, class: "axis" }),
      svg("text", { x: W / 2, y: H - 12, "text-anchor": "middle" }, cx),
      svg("text", { x: 14, y: H / 2, transform: `rotate(-90 14 ${H / 2})`, "text-anchor": "middle" }, cy),
      svg("text", { x: M, y: H - M + 16, "text-anchor": "start" }, show(x0)),
      svg("text", { x: W - M, y: H - M + 16, "text-anchor": "end" }, show(x1)),
      svg("text", { x: M - 4, y: H - M, "text-anchor": "end" }, show(y0)),
      svg("text", { x: M - 4, y: M + 4, "text-anchor": "end" }, show(y1)),
      dots,
    ),
    h("div", { class: "muted" }, `${points.length} of ${runs.length} runs have both values`),
  );
}

function parallel(box, project, runs, axes) {
  const W = Math.max(640, axes.length * 140) + 80, H = 320, M = 60; // room for the end labels
  const ranges = axes.map((a) => extent(runs.map((r) => numberOf(r, a))));
  const ax = (i) => M + (i * (W - 2 * M)) / Math.max(1, axes.length - 1);
  const ay = (i, v) => H - M - ((v - ranges[i][0]) / (ranges[i][1] - ranges[i][0])) * (H - 2 * M);
  const lines = runs.map((r) => {
    const pts = axes.map((a, i) => [ax(i), ay(i, numberOf(r, a))]).filter(([, y]) => Number.isFinite(y));
    return svg(
      "polyline",
      { points: pts.map((p) => p.join(",")).join(" "), stroke: colorFor(r.id), class: "pline", onclick: () => go(path(project, "r", r.id)) },
      svg("title", null, r.name || r.id),
    );
  });
  replace(
    box,
    svg(
      "svg",
      { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "plot-svg" },
      lines,
      axes.map((a, i) => [
        svg("line", { x1: ax(i), y1: M, x2: ax(i), y2: H - M, class: "axis" }),
        svg("text", { x: ax(i), y: M - 14, "text-anchor": "middle" }, a),
        svg("text", { x: ax(i) + 4, y: M, "text-anchor": "start", class: "tick" }, show(ranges[i][1])),
        svg("text", { x: ax(i) + 4, y: H - M, "text-anchor": "start", class: "tick" }, show(ranges[i][0])),
      ]),
    ),
  );
}
