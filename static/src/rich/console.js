// The run's captured console: every line, searchable, and a live tail while the run is running
// (asked again every 2 s after the last line seen; stderr lines are marked).
import { api } from "../api.js";
import { h, replace } from "../dom.js";

export function consolePanel(project, run, running, rank) {
  const lines = []; // {stream, text}
  let cursor = -1;
  let timer = null;
  const list = h("div", { class: "console-lines" });
  const search = h("input", { type: "search", placeholder: "search the console", oninput: () => draw() });
  const follow = h("input", { type: "checkbox", checked: true });
  const el = h(
    "div",
    { class: "panel console" },
    h("div", { class: "panel-tools" }, search, h("label", null, follow, " follow"), h("span", { class: "count" })),
    list,
  );
  const draw = () => {
    const q = search.value.toLowerCase();
    const shown = q ? lines.filter((l) => l.text.toLowerCase().includes(q)) : lines;
    replace(el.querySelector(".count"), `${shown.length} of ${lines.length} lines`);
    replace(list, shown.slice(-5000).map((l) => h("div", { class: `line ${l.stream}` }, l.text)));
    if (follow.checked) list.scrollTop = list.scrollHeight;
  };
  const poll = async () => {
    if (!el.isConnected && cursor >= 0) return;
    const answer = await api.console(project, run, cursor, rank);
    for (const item of answer.items) {
      for (const text of item.text.replace(/\n$/, "").split("\n")) lines.push({ stream: item.stream, text });
    }
    if (answer.items.length || cursor < 0) draw();
    cursor = answer.cursor;
    if (running) timer = setTimeout(poll, 2000);
  };
  poll();
  return { el, stop: () => clearTimeout(timer) };
}
