// Histograms of one key: a heatmap of the distribution over steps (each column one logged
// step, rebinned onto shared value bins, shaded by the share of that step's values) and the
// histogram at the chosen step. NaN and ±Inf counts are listed beside it, never dropped.
import { api } from "../api.js";
import { h, replace } from "../dom.js";
import { num, value as show } from "../format.js";
import { StepSlider } from "./step_slider.js";

const ROWS = 64;

export async function histogramPanel(project, run, key) {
  const { items } = await api.records(project, run, "histograms", { key, limit: 10000 });
  items.sort((a, b) => a.step - b.step);
  const steps = items.map((item) => item.step);
  const heat = heatmap(items);
  const bars = h("canvas", { class: "hist-bars", width: 480, height: 160 });
  const facts = h("div", { class: "hist-facts" });
  const show1 = (step) => {
    const item = items.find((i) => i.step === step);
    if (!item) return;
    drawBars(bars, item.value);
    const v = item.value;
    replace(
      facts,
      `step ${step}: ${v.count} values, min ${show(num(v.min))}, max ${show(num(v.max))}, mean ${show(num(v.mean))}, std ${show(num(v.std))}` +
        (v.nan || v.posinf || v.neginf ? `; also NaN ${v.nan}, +Inf ${v.posinf}, -Inf ${v.neginf}` : ""),
    );
    heat.mark(steps.indexOf(step));
  };
  const slider = new StepSlider(steps, show1);
  show1(slider.step);
  return h("div", { class: "panel histogram" }, h("h3", null, key), heat.el, h("div", { class: "panel-tools" }, slider.el), bars, facts);
}

function heatmap(items) {
  let low = Infinity, high = -Infinity;
  for (const { value } of items) {
    low = Math.min(low, num(value.bins[0]));
    high = Math.max(high, num(value.bins[value.bins.length - 1]));
  }
  const columns = Math.max(1, items.length);
  const canvas = h("canvas", { class: "heatmap", width: Math.max(columns, 480), height: ROWS * 2 });
  const ctx = canvas.getContext("2d");
  const colWidth = canvas.width / columns;
  const accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#4e79a7";
  items.forEach(({ value }, c) => {
    const shares = new Float64Array(ROWS);
    const total = value.counts.reduce((a, b) => a + b, 0) || 1;
    for (let i = 0; i < value.counts.length; i++) {
      const mid = (num(value.bins[i]) + num(value.bins[i + 1])) / 2;
      const row = Math.min(ROWS - 1, Math.max(0, Math.floor(((mid - low) / (high - low || 1)) * ROWS)));
      shares[row] += value.counts[i] / total;
    }
    const peak = Math.max(...shares) || 1;
    for (let r = 0; r < ROWS; r++) {
      if (!shares[r]) continue;
      ctx.globalAlpha = 0.15 + 0.85 * (shares[r] / peak);
      ctx.fillStyle = accent;
      ctx.fillRect(c * colWidth, canvas.height - (r + 1) * 2, Math.ceil(colWidth), 2);
    }
  });
  ctx.globalAlpha = 1;
  const image = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const el = h(
    "div",
    { class: "heat" },
    h("div", { class: "heat-axis" }, show(high)),
    canvas,
    h("div", { class: "heat-axis" }, `${show(low)} · steps ${items[0]?.step ?? ""} → ${items[items.length - 1]?.step ?? ""}`),
  );
  return {
    el,
    mark(index) {
      ctx.putImageData(image, 0, 0);
      ctx.strokeStyle = "#e15759";
      ctx.lineWidth = 1;
      ctx.strokeRect(index * colWidth + 0.5, 0.5, Math.max(1, colWidth - 1), canvas.height - 1);
    },
  };
}

function drawBars(canvas, v) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const peak = Math.max(...v.counts) || 1;
  const w = canvas.width / v.counts.length;
  ctx.fillStyle = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#4e79a7";
  v.counts.forEach((count, i) => {
    const bh = (count / peak) * (canvas.height - 4);
    ctx.fillRect(i * w, canvas.height - bh, Math.max(1, w - 1), bh);
  });
}
