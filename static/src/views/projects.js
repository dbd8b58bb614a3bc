// Projects: name, run count, running count, last activity; each opens its runs table.
import { api } from "../api.js";
import { h } from "../dom.js";
import { time } from "../format.js";
import { path } from "../state.js";

export async function projectsView(el) {
  const { projects } = await api.projects();
  if (!projects.length) {
    el.append(h("p", { class: "empty" }, "No runs yet. Log one with waddle.init() and run.log(), or run `waddle demo`."));
    return;
  }
  el.append(
    h("h1", null, "Projects"),
    h(
      "table",
      { class: "table projects" },
      h("thead", null, h("tr", null, h("th", null, "project"), h("th", { class: "num" }, "runs"), h("th", { class: "num" }, "running"), h("th", null, "last activity"))),
      h(
        "tbody",
        null,
        projects.map((p) =>
          h(
            "tr",
            null,
            h("td", null, h("a", { href: path(p.name), "data-nav": 1 }, p.name)),
            h("td", { class: "num" }, p.runs),
            h("td", { class: "num" }, p.running ? h("span", { class: "status running" }, p.running) : "0"),
            h("td", null, time(p.last_activity)),
          ),
        ),
      ),
    ),
  );
}
