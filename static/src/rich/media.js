// Media of one key (images with their boxes, audio, video, HTML, 3-D objects, lists of them)
// at a chosen step. Boxes are drawn on a canvas over the image with their labels; a score
// threshold hides boxes scoring below it. Every caption and label is text. A logged HTML page
// is never put into this page: it is shown in a frame of its own, from /files (which sends
// `Content-Security-Policy: sandbox`), sandboxed here too, without `allow-same-origin` or
// `allow-scripts`, so nothing in it runs as the dashboard or reaches its API.
import { api } from "../api.js";
import { h, replace } from "../dom.js";
import { object3dItem } from "./object3d.js";
import { StepSlider } from "./step_slider.js";

export async function mediaPanel(project, run, key) {
  const { items } = await api.records(project, run, "media", { key, limit: 10000 });
  const byStep = new Map(items.map((item) => [item.step, item]));
  const steps = [...byStep.keys()].sort((a, b) => a - b);
  const body = h("div", { class: "media-items" });
  const hasBoxes = items.some((item) => parts(item.value).some((v) => v.boxes && v.boxes.length));
  let threshold = 0;
  const thresholdLabel = h("span", { class: "num" }, "0.00");
  const thresholdInput = hasBoxes
    ? h(
        "label",
        { class: "threshold", title: "hide boxes whose score is below this" },
        "score ≥ ",
        h("input", {
          type: "range",
          min: 0,
          max: 1,
          step: 0.01,
          value: 0,
          oninput: (e) => {
            threshold = Number(e.target.value);
            replace(thresholdLabel, threshold.toFixed(2));
            show(slider.step);
          },
        }),
        thresholdLabel,
      )
    : null;
  const show = (step) => {
    const item = byStep.get(step);
    replace(body, item ? parts(item.value).map((v) => mediaItem(project, run, v, threshold)) : []);
  };
  const slider = new StepSlider(steps, show);
  show(slider.step);
  return h("div", { class: "panel media" }, h("h3", null, key), h("div", { class: "panel-tools" }, slider.el, thresholdInput), body);
}

function parts(value) {
  return value._type === "list" ? value.items : [value];
}

export function mediaItem(project, run, v, threshold = 0) {
  const caption = v.caption ? h("figcaption", null, v.caption) : null;
  const url = v.path ? api.fileUrl(project, run, v.path) : null;
  if (v._type === "image") return h("figure", { class: "image" }, imageWithBoxes(url, v, threshold), caption);
  if (v._type === "audio") return h("figure", { class: "audio" }, h("audio", { controls: true, src: url, preload: "metadata" }), caption);
  if (v._type === "video") {
    const player = v.mime && v.mime.startsWith("video/")
      ? h("video", { controls: true, src: url, preload: "metadata", loop: true })
      : h("img", { src: url, alt: v.caption || "video", class: "pixelated", width: (v.width || 32) * Math.max(1, Math.floor(160 / (v.width || 32))) });
    return h("figure", { class: "video" }, player, caption);
  }
  if (v._type === "html") {
    // sandbox first: the frame must never load the page unsandboxed, even for a moment.
    const frame = h("iframe", { sandbox: "", referrerpolicy: "no-referrer", title: v.caption || "logged HTML", class: "html-frame" });
    frame.src = url;
    return h("figure", { class: "html" }, frame, caption);
  }
  if (v._type === "object3d") return object3dItem(project, run, v);
  return h("figure", null, h("code", null, `${v._type}`), caption);
}

const BOX_COLORS = ["#e15759", "#4e79a7", "#59a14f", "#f28e2b", "#b07aa1", "#edc948"];

function imageWithBoxes(url, v, threshold) {
  const scale = Math.max(1, Math.min(4, Math.floor(240 / Math.max(v.width || 1, v.height || 1))));
  const width = (v.width || 64) * scale;
  const height = (v.height || 64) * scale;
  const img = h("img", { src: url, alt: v.caption || "image", width, height, class: "pixelated" });
  if (!v.boxes || !v.boxes.length) return img;
  const canvas = h("canvas", { width: width * devicePixelRatio, height: height * devicePixelRatio, class: "boxes" });
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  ctx.scale(devicePixelRatio * scale, devicePixelRatio * scale);
  ctx.font = `${11 / scale}px sans-serif`;
  ctx.lineWidth = 2 / scale;
  const shown = [];
  for (const box of v.boxes) {
    const scores = Object.values(box.scores || {});
    const score = scores.length ? Math.max(...scores) : null;
    if (score !== null && score < threshold) continue;
    shown.push(box);
    const color = BOX_COLORS[(box.class_id ?? 0) % BOX_COLORS.length];
    ctx.strokeStyle = color;
    ctx.strokeRect(box.x_min, box.y_min, box.x_max - box.x_min, box.y_max - box.y_min);
    const text = [box.label ?? box.caption ?? "", score === null ? "" : score.toFixed(2)].filter(Boolean).join(" ");
    if (text) {
      ctx.fillStyle = color;
      const w = ctx.measureText(text).width + 4 / scale;
      ctx.fillRect(box.x_min, Math.max(0, box.y_min - 13 / scale), w, 13 / scale);
      ctx.fillStyle = "#fff";
      ctx.fillText(text, box.x_min + 2 / scale, Math.max(0, box.y_min - 13 / scale) + 10 / scale);
    }
  }
  // The labels also as text, for reading and for tests (a canvas holds no text).
  const labels = h(
    "ul",
    { class: "box-labels" },
    shown.map((b) => h("li", null, [b.label ?? b.caption ?? "box", ...Object.entries(b.scores || {}).map(([k, s]) => ` ${k} ${Number(s).toFixed(2)}`)].join(""))),
  );
  return h("div", { class: "boxed" }, h("div", { class: "stack", style: { width: `${width}px`, height: `${height}px` } }, img, canvas), labels);
}
