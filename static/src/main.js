// The page: reads the view from the URL (state.js), renders it into <main>, asks for the token
// when the server wants one, and gives keyboard focus rules ("/" focuses search).
import { ApiError, live, setToken, token } from "./api.js";
import { h, replace } from "./dom.js";
import { relayStatus } from "./relay_status.js";
import { go, listen, path, route } from "./state.js";
import { acrossView } from "./views/across.js";
import { artifactView, artifactsView } from "./views/artifacts.js";
import { compareView } from "./views/compare.js";
import { projectsView } from "./views/projects.js";
import { runView } from "./views/run.js";
import { runsView } from "./views/runs.js";

const VIEWS = {
  projects: projectsView,
  runs: runsView,
  run: runView,
  compare: compareView,
  across: acrossView,
  artifacts: artifactsView,
  artifact: artifactView,
};
const main = document.getElementById("main");
const top = document.getElementById("top");
let current = null; // the shown view's cleanup

async function render(where) {
  if (current) current();
  current = null;
  live.unsubscribeAll();
  renderTop(where);
  const loading = h("p", { class: "loading" }, "Loading…");
  replace(main, loading);
  try {
    // The server says in the page whether it wants a token, so no request fails first.
    const needsToken = document.querySelector('meta[name="waddle-token"]')?.content === "required";
    if (!token() && needsToken) return askToken(where);
    // The view is built on the page, not beside it: what it lays out has its size at once, so
    // its first chart can be asked for before the next frame.
    const view = h("div", { class: `view view-${where.view}` });
    main.append(view);
    current = (await VIEWS[where.view](view, where)) || null;
    loading.remove();
    relayStatus.ask(); // after the view's first requests, never beside its first chart's
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return askToken(where, true);
    replace(main, h("p", { class: "error" }, `${error.message}`));
  }
}

function renderTop(where) {
  const crumbs = [h("a", { href: "/", "data-nav": 1, class: "brand" }, "waddle")];
  if (where.project) {
    crumbs.push(" / ", h("a", { href: path(where.project), "data-nav": 1 }, where.project));
  }
  if (where.view === "run") crumbs.push(" / ", h("span", null, where.run));
  if (where.view === "compare") crumbs.push(" / compare");
  if (where.view === "across") crumbs.push(" / across runs");
  if (where.view === "artifacts") crumbs.push(" / artifacts");
  if (where.view === "artifact") {
    crumbs.push(" / ", h("a", { href: path(where.project, "artifacts"), "data-nav": 1 }, "artifacts"), " / ", h("span", null, where.artifact));
  }
  replace(top, h("nav", { class: "crumbs" }, crumbs), relayStatus.el, h("span", { id: "live-status", class: "live-status" }));
}

// A server started with a token: ask once, keep it for this tab (sessionStorage), retry.
function askToken(where, wrong = false) {
  setToken(null);
  const input = h("input", { type: "password", id: "token", autocomplete: "off", placeholder: "token" });
  const form = h(
    "form",
    {
      class: "token-form",
      onsubmit: (event) => {
        event.preventDefault();
        setToken(input.value.trim());
        render(where);
      },
    },
    h("p", null, "This server needs a token (the one given to waddle serve with --token or WADDLE_TOKEN)."),
    wrong ? h("p", { class: "error" }, "That token was refused.") : null,
    input,
    h("button", { type: "submit" }, "Open"),
  );
  replace(main, form);
  input.focus();
}

live.onstatus = (state) => {
  const el = document.getElementById("live-status");
  if (el) replace(el, state === "live" ? "● live" : "○ reconnecting…");
};

document.addEventListener("keydown", (event) => {
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement?.tagName);
  if (event.key === "/" && !typing) {
    const search = document.getElementById("search");
    if (search) {
      event.preventDefault();
      search.focus();
    }
  }
});

listen(render);
render(route());
export { go };
