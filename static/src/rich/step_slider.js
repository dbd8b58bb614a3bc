// A slider over the steps a key was logged at (media, histograms, tables). The arrow keys move
// the slider last pointed at or used, even when it does not have the focus.
import { h, replace } from "../dom.js";

let active = null;

document.addEventListener("keydown", (event) => {
  if (!active || !active.input.isConnected || (event.key !== "ArrowLeft" && event.key !== "ArrowRight")) return;
  const focused = document.activeElement;
  if (focused === active.input) return; // the range input moves itself
  if (focused && ["INPUT", "TEXTAREA", "SELECT"].includes(focused.tagName)) return;
  event.preventDefault();
  active.move(event.key === "ArrowRight" ? 1 : -1);
});

export class StepSlider {
  constructor(steps, onStep, start = steps.length - 1) {
    this.steps = steps;
    this.onStep = onStep;
    this.label = h("span", { class: "num step-label" });
    this.input = h("input", {
      type: "range",
      min: 0,
      max: Math.max(0, steps.length - 1),
      step: 1,
      value: start,
      class: "step-slider",
      title: "step (arrow keys move it)",
      oninput: () => this.changed(),
    });
    this.el = h("div", { class: "slider" }, "step ", this.input, this.label);
    this.el.addEventListener("pointerenter", () => (active = this));
    this.input.addEventListener("focus", () => (active = this));
    if (!active || !active.input.isConnected) active = this;
    this.show();
  }

  get step() {
    return this.steps[Number(this.input.value)];
  }

  move(by) {
    const next = Math.min(this.steps.length - 1, Math.max(0, Number(this.input.value) + by));
    this.input.value = next;
    this.changed();
  }

  changed() {
    this.show();
    this.onStep(this.step);
  }

  show() {
    replace(this.label, `${this.step ?? "–"}  (${Number(this.input.value) + 1} of ${this.steps.length})`);
  }
}
