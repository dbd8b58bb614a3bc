// One run: its charts (sections by key prefix), rich values, system metrics, console, and an
// overview (config, context, alerts, saved files, data health). The tab is in the URL.
import { api, live } from "../api.js";
import { colorFor } from "../chart.js";
import { ChartGrid } from "../chart_grid.js";
import { append, h, replace } from "../dom.js";
import { duration, time } from "../format.js";
import { consolePanel } from "../rich/console.js";
import { histogramPanel } from "../rich/histogram.js";
import { mediaPanel } from "../rich/media.js";
import { plotPanel } from "../rich/plot.js";
import { alertsPanel, artifactsPanel, configTable, contextPanel, filesPanel, healthPanel } from "../rich/overview.js";
import { systemPanel } from "../rich/system.js";
import { tablePanel } from "../rich/table.js";
import { textPanel } from "../rich/text.js";
import { param, setParams } from "../state.js";

const TABS = ["charts", "media", "system", "console", "overview"];
const PANELS = {
  image: mediaPanel,
  list: mediaPanel,
  audio: mediaPanel,
  video: mediaPanel,
  html: mediaPanel,
  object3d: mediaPanel,
  table: tablePanel,
  chart: plotPanel,
  histogram: histogramPanel,
  text: textPanel,
  markdown: textPanel,
  array: textPanel,
};

export async function runView(el, where) {
  const { project, run: runId } = where;
  const [info, { metrics }] = await Promise.all([api.run(project, runId), api.metrics(project, runId)]);
  const status = h("span", { class: `status ${info.status}` }, info.status);
  const runInfo = { id: runId, label: info.name || runId, color: colorFor(runId), created: info.created };
  el.append(
    h(
      "div",
      { class: "run-head" },
      h("h1", null, info.name || runId),
      status,
      h("span", { class: "muted" }, ` ${runId}${info.origin ? ` · relayed from ${info.origin}` : ""} · started ${time(info.created)} · ${duration((info.status === "running" ? Date.now() / 1000 : info.updated) - info.created)}`),
      (info.tags || []).map((t) => h("span", { class: "tag" }, t)),
      info.notes ? h("p", { class: "notes" }, info.notes) : null,
    ),
  );
  live.subscribe("runs", { project }, (message) => {
    const mine = message.type === "runs" && message.runs.find((r) => r.id === runId);
    if (mine) {
      status.className = `status ${mine.status}`;
      replace(status, mine.status);
    }
  });
  const tabBar = h("div", { class: "tabs", role: "tablist" });
  const body = h("div", { class: "tab-body" });
  let tab = TABS.includes(param("tab")) ? param("tab") : "charts";
  const ranks = rankSelector(info, () => show(tab));
  append(el, [tabBar, ranks, body]);
  let cleanup = null;
  const show = async (chosen) => {
    tab = chosen;
    if (cleanup) cleanup();
    cleanup = null;
    setParams({ tab: tab === "charts" ? null : tab });
    replace(tabBar, TABS.map((t) => h("button", { role: "tab", class: t === tab ? "active" : "", "aria-selected": t === tab ? "true" : "false", onclick: () => show(t) }, t)));
    replace(body);
    const rank = chosenRank(info);
    cleanup = await TAB_VIEWS[tab](body, { project, runId, info, metrics, runInfo, rank });
  };
  await show(tab);
  return () => cleanup && cleanup();
}

// A run several processes share (docs/format.md, "Ranks"): which rank its charts, system
// metrics and console show, in the URL (?rank=N; "all": every rank's series on each chart;
// none: each key's default rank, rank 0 where it logged the key). Nothing for one process.
function rankSelector(info, onChange) {
  const ranks = info.ranks || [];
  if (ranks.length < 2) return null;
  const options = [["", "rank: default"], ["all", "all ranks (charts)"], ...ranks.map((r) => [String(r.rank), `rank ${r.rank} (${r.status})`])];
  const select = h(
    "select",
    { class: "rank-select", "aria-label": "rank", onchange: () => { setParams({ rank: select.value || null }); onChange(); } },
    options.map(([value, label]) => h("option", { value, selected: param("rank") === value }, label)),
  );
  return h("div", { class: "ranks" }, select);
}

// The rank chosen: a rank of the run, "all", or undefined (the default).
function chosenRank(info) {
  const chosen = param("rank");
  if (chosen === "all") return "all";
  return (info.ranks || []).some((r) => String(r.rank) === chosen) ? Number(chosen) : undefined;
}

const TAB_VIEWS = {
  charts(body, { project, runId, info, metrics, runInfo, rank }) {
    const scalars = metrics.filter((m) => m.type === "scalar").map((m) => m.key);
    const runs =
      rank === "all"
        ? info.ranks.map((r) => ({ ...runInfo, id: `${runId}#${r.rank}`, runId, rank: r.rank, label: `rank ${r.rank}`, color: colorFor(`${runId}#${r.rank}`) }))
        : [rank === undefined ? runInfo : { ...runInfo, rank }];
    const grid = new ChartGrid(body, { project, runs, keys: scalars, customX: scalars });
    return () => grid.destroy();
  },
  async media(body, { project, runId, metrics }) {
    const rich = metrics.filter((m) => PANELS[m.type]);
    if (!rich.length) return void body.append(h("p", { class: "empty" }, "no media, tables, charts, histograms, text or lists logged"));
    const panels = await Promise.all(
      rich.map((m) => PANELS[m.type](project, runId, m.key).catch((error) => h("p", { class: "error" }, `${m.key}: ${error.message}`))),
    );
    body.append(h("div", { class: "panels" }, panels));
  },
  async system(body, { project, runId, rank }) {
    body.append(await systemPanel(project, runId, typeof rank === "number" ? rank : undefined));
  },
  console(body, { project, runId, info, rank }) {
    const panel = consolePanel(project, runId, info.status === "running", typeof rank === "number" ? rank : undefined);
    body.append(panel.el);
    return panel.stop;
  },
  async overview(body, { project, runId, info, metrics }) {
    const [alerts, files] = await Promise.all([alertsPanel(project, runId), filesPanel(project, runId)]);
    body.append(
      h(
        "div",
        { class: "overview" },
        h("section", null, h("h2", null, "config"), configTable(info.config)),
        h("section", null, h("h2", null, "summary"), configTable(info.summary)),
        h("section", null, h("h2", null, "context"), contextPanel(info)),
        h("section", null, h("h2", null, "alerts"), alerts),
        h("section", null, h("h2", null, "saved files"), files),
        h("section", null, h("h2", null, "artifacts"), artifactsPanel(info.artifacts)),
        h("section", null, h("h2", null, "data health"), healthPanel(info, metrics)),
      ),
    );
  },
};
