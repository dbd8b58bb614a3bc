// A logged 3-D object (waddle.Object3D, docs/format.md "object3d"). A point cloud (`points` rows
// of `columns` little-endian float32 values: x, y, z, then a category or r, g, b in 0..255) is
// drawn on a canvas: drag to turn it, the wheel to zoom, double-click to reset. Colours come
// from r, g, b, else from the category (the chart palette, listed under the view), else from
// depth. A 3-D model file (glTF, GLB, OBJ, STL) is offered for download; both can be saved.
import { api } from "../api.js";
import { nthColor } from "../chart.js";
import { h } from "../dom.js";

const SIZE = 320; // css px, square
const MODELS = { "model/gltf+json": "glTF", "model/gltf-binary": "glTF (GLB)", "model/obj": "OBJ", "model/stl": "STL" };
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function object3dItem(project, run, v) {
  const url = api.fileUrl(project, run, v.path);
  const ext = v.path.slice(v.path.indexOf(".", v.path.lastIndexOf("/")));
  const caption = v.caption ? h("figcaption", null, v.caption) : null;
  const save = (text) => h("a", { href: url, download: `${v.sha256.slice(0, 12)}${ext}`, class: "download" }, text);
  if (!v.points) {
    const kind = MODELS[v.mime] || "3-D model";
    return h("figure", { class: "object3d model" }, h("p", { class: "muted" }, `${kind} file, ${v.bytes} bytes (not drawn here)`), save(`download the ${kind} model`), caption);
  }
  const canvas = h("canvas", { class: "points3d", title: "drag to turn, wheel to zoom, double-click to reset" });
  const legend = h("div", { class: "legend" });
  const view = new PointCloud(canvas, v.columns, legend);
  canvas.view = view; // for tests and the console
  fetch(url)
    .then((response) => {
      if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
      return response.arrayBuffer();
    })
    .then((buffer) => view.setPoints(floats(buffer)))
    .catch((error) => legend.replaceChildren(`could not load the points: ${error.message}`));
  return h("figure", { class: "object3d" }, canvas, legend, h("div", null, save(`download (${v.points} points)`)), caption);
}

function floats(buffer) {
  if (LITTLE_ENDIAN) return new Float32Array(buffer);
  const view = new DataView(buffer);
  return Float32Array.from({ length: buffer.byteLength / 4 }, (_, i) => view.getFloat32(i * 4, true));
}

function rgbOf(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [n >> 16, (n >> 8) & 255, n & 255];
}

export class PointCloud {
  constructor(canvas, columns, legend) {
    this.canvas = canvas;
    this.columns = columns;
    this.legend = legend;
    this.data = new Float32Array(0);
    this.reset();
    const ratio = devicePixelRatio || 1;
    canvas.width = canvas.height = Math.round(SIZE * ratio);
    canvas.style.width = canvas.style.height = `${SIZE}px`;
    let last = null;
    canvas.addEventListener("pointerdown", (e) => {
      last = [e.clientX, e.clientY];
      canvas.setPointerCapture(e.pointerId);
    });
    canvas.addEventListener("pointermove", (e) => {
      if (!last) return;
      this.turn(e.clientX - last[0], e.clientY - last[1]);
      last = [e.clientX, e.clientY];
    });
    const up = () => (last = null);
    canvas.addEventListener("pointerup", up);
    canvas.addEventListener("pointercancel", up);
    canvas.addEventListener(
      "wheel",
      (e) => {
        e.preventDefault();
        this.zoom = Math.min(20, Math.max(0.2, this.zoom * Math.exp(-e.deltaY * 0.001)));
        this.request();
      },
      { passive: false },
    );
    canvas.addEventListener("dblclick", () => (this.reset(), this.request()));
  }

  reset() {
    this.yaw = 0.6;
    this.pitch = 0.4;
    this.zoom = 1;
  }

  // Dragging by (dx, dy) css px turns the cloud about its centre (a full drag across, ~one turn).
  turn(dx, dy) {
    this.yaw += (dx / SIZE) * Math.PI * 2;
    this.pitch = Math.min(Math.PI / 2, Math.max(-Math.PI / 2, this.pitch + (dy / SIZE) * Math.PI * 2));
    this.request();
  }

  setPoints(data) {
    this.data = data;
    const n = Math.floor(data.length / this.columns);
    const c = this.columns;
    let sx = 0, sy = 0, sz = 0;
    for (let i = 0; i < n; i++) (sx += data[i * c]), (sy += data[i * c + 1]), (sz += data[i * c + 2]);
    this.center = n ? [sx / n, sy / n, sz / n] : [0, 0, 0];
    let radius = 0;
    for (let i = 0; i < n; i++) {
      const dx = data[i * c] - this.center[0], dy = data[i * c + 1] - this.center[1], dz = data[i * c + 2] - this.center[2];
      radius = Math.max(radius, dx * dx + dy * dy + dz * dz);
    }
    this.radius = Math.sqrt(radius) || 1;
    this.count = n;
    if (c === 4) this.showCategories(n);
    this.request();
  }

  showCategories(n) {
    const seen = new Set();
    for (let i = 0; i < n && seen.size <= 20; i++) seen.add(Math.round(this.data[i * 4 + 3]));
    const list = [...seen].sort((a, b) => a - b).slice(0, 20);
    this.legend.replaceChildren(
      ...list.map((k) => h("span", { class: "legend-item" }, h("span", { class: "swatch", style: { background: nthColor(Math.abs(k)) } }), `category ${k}`)),
    );
  }

  request() {
    if (this.queued) return;
    this.queued = true;
    requestAnimationFrame(() => {
      this.queued = false;
      this.render();
    });
  }

  // Each point projected (orthographic, turned by yaw then pitch) onto a square of pixels, the
  // nearest point winning each pixel; written straight into the canvas' pixels.
  render() {
    const { canvas, data, columns: c } = this;
    const w = canvas.width, hgt = canvas.height;
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(w, hgt);
    const pixels = image.data;
    const depth = new Float32Array(w * hgt).fill(-Infinity);
    const cy = Math.cos(this.yaw), sy = Math.sin(this.yaw), cp = Math.cos(this.pitch), sp = Math.sin(this.pitch);
    const scale = ((Math.min(w, hgt) / 2) * 0.9 * this.zoom) / this.radius;
    const dot = Math.max(2, Math.round(devicePixelRatio * 2));
    const base = rgbOf(getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#4e79a7");
    const palette = Array.from({ length: 10 }, (_, i) => rgbOf(nthColor(i)));
    const [ox, oy, oz] = this.center;
    for (let i = 0; i < this.count; i++) {
      const x0 = data[i * c] - ox, y0 = data[i * c + 1] - oy, z0 = data[i * c + 2] - oz;
      const x1 = cy * x0 + sy * z0, z1 = -sy * x0 + cy * z0; // yaw about y
      const y2 = cp * y0 - sp * z1, z2 = sp * y0 + cp * z1; // pitch about x
      const px = Math.round(w / 2 + x1 * scale), py = Math.round(hgt / 2 - y2 * scale);
      let r, g, b;
      if (c === 6) (r = data[i * c + 3]), (g = data[i * c + 4]), (b = data[i * c + 5]);
      else if (c === 4) [r, g, b] = palette[Math.abs(Math.round(data[i * c + 3])) % palette.length];
      else {
        const shade = 0.55 + 0.45 * Math.max(-1, Math.min(1, z2 / this.radius)); // nearer is brighter
        [r, g, b] = base.map((v) => v * shade);
      }
      for (let yy = py; yy < py + dot; yy++) {
        if (yy < 0 || yy >= hgt) continue;
        for (let xx = px; xx < px + dot; xx++) {
          if (xx < 0 || xx >= w || depth[yy * w + xx] >= z2) continue;
          depth[yy * w + xx] = z2;
          const at = (yy * w + xx) * 4;
          pixels[at] = r;
          pixels[at + 1] = g;
          pixels[at + 2] = b;
          pixels[at + 3] = 255;
        }
      }
    }
    ctx.putImageData(image, 0, 0);
  }
}
