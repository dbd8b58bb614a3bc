// Text values of one key at a chosen step: plain strings, text with a word diff against its
// expected text, markdown (rendered by markdown.js, loaded when first needed), and plain lists
// (W&B keeps short arrays as lists) written out as text, NaN and ±Inf by name.
import { api } from "../api.js";
import { h, replace } from "../dom.js";
import { value as show } from "../format.js";
import { StepSlider } from "./step_slider.js";

export async function textPanel(project, run, key) {
  let { items } = await api.records(project, run, "media", { key, limit: 10000 });
  if (!items.length) items = (await api.records(project, run, "text", { key, limit: 10000 })).items;
  // The markdown renderer loads only where markdown is shown (a smaller first page).
  const markdown = items.some((i) => i.value?._type === "markdown") ? (await import("./markdown.js")).markdown : null;
  const byStep = new Map(items.map((item) => [item.step, item]));
  const steps = [...byStep.keys()].sort((a, b) => a - b);
  const body = h("div", { class: "text-body" });
  const show = (step) => {
    const item = byStep.get(step);
    replace(body, item ? renderText(item.value, markdown) : "");
  };
  const slider = new StepSlider(steps, show);
  show(slider.step);
  return h("div", { class: "panel text" }, h("h3", null, key), h("div", { class: "panel-tools" }, slider.el), body);
}

export function renderText(value, markdown) {
  if (typeof value === "string") return h("pre", { class: "plain" }, value);
  if (Array.isArray(value)) return h("pre", { class: "plain array" }, listText(value));
  if (value._type === "markdown") return markdown(value.text);
  if (value.expected !== null && value.expected !== undefined) {
    return h(
      "div",
      { class: "diff" },
      h("pre", { class: "plain" }, value.text),
      h("div", { class: "diff-legend" }, "against the expected text: ", h("del", null, "missing"), " ", h("ins", null, "extra")),
      h("pre", { class: "plain diff-words" }, diffWords(value.expected, value.text)),
    );
  }
  return h("pre", { class: "plain" }, value.text);
}

// A word diff (longest common subsequence): words of `expected` missing from `actual` as
// <del>, words only in `actual` as <ins>.
function diffWords(expected, actual) {
  const a = expected.split(/(\s+)/), b = actual.split(/(\s+)/);
  const n = a.length, m = b.length;
  if (n * m > 4e6) return [h("del", null, expected), h("ins", null, actual)];
  const table = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) table[i][j] = a[i] === b[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
  }
  const out = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) out.push(a[i]), i++, j++;
    else if (j < m && (i === n || table[i][j + 1] >= table[i + 1][j])) out.push(h("ins", null, b[j])), j++;
    else out.push(h("del", null, a[i])), i++;
  }
  return out;
}

// [1, 0.5, NaN, "a", [2, 3], null]: numbers as the dashboard writes them everywhere, strings
// quoted (the API writes a non-finite float as the string "NaN": shown as the number it is).
function listText(list) {
  const item = (v) => {
    if (Array.isArray(v)) return listText(v);
    if (typeof v === "string" && !["NaN", "Infinity", "-Infinity"].includes(v)) return JSON.stringify(v);
    return v === null ? "null" : show(v);
  };
  return `[${list.map(item).join(", ")}]`;
}
