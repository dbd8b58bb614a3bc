// The run's overview: config, context (host, command line, git), alerts, saved files (opened
// only through the sandboxed /files route), the artifact versions it logged and used (links to
// their lineage) and the data-health panel (what was rejected, skipped or lost on the way, and
// non-finite values per key).
import { api } from "../api.js";
import { h } from "../dom.js";
import { bytes, time, value as show } from "../format.js";
import { artifactHref } from "../state.js";

export function configTable(config) {
  const rows = flatten(config || {});
  if (!rows.length) return h("p", { class: "empty" }, "no config");
  return h("table", { class: "table kv" }, h("tbody", null, rows.map(([k, v]) => h("tr", null, h("th", null, k), h("td", null, show(v))))));
}

// A rich value (a summary's last image, histogram, table: `{"_type": …}`) is one row naming its
// type; its content is in the run's panels.
export function flatten(object, prefix = "") {
  const out = [];
  for (const [key, value] of Object.entries(object)) {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      if (typeof value._type === "string") out.push([`${prefix}${key}`, `(${value._type})`]);
      else out.push(...flatten(value, `${prefix}${key}.`));
    } else out.push([`${prefix}${key}`, value]);
  }
  return out;
}

// `info`: the run; a relayed run names the machine it came from and its id there first.
export function contextPanel(info) {
  const c = info.context || {};
  const git = c.git || {};
  const rows = [
    ["relayed from", info.origin],
    ["run id there", info.origin_run_id],
    ["host", c.host],
    ["user", c.user],
    ["os", c.os],
    ["python", c.python],
    ["command", c.argv ? c.argv.join(" ") : null],
    ["working directory", c.cwd],
    ["pid", c.pid],
    ["cpus", c.cpu_count],
    ["memory", c.memory_total ? bytes(c.memory_total) : null],
    ["gpus", c.gpus ? c.gpus.map((g) => `${g.index}: ${g.name}`).join(", ") : null],
    ["git commit", git.commit],
    ["git branch", git.branch],
    ["git remote", git.remote],
    ["git dirty", git.dirty === undefined ? null : git.dirty ? "yes (uncommitted changes)" : "no"],
  ].filter(([, v]) => v !== null && v !== undefined && v !== "");
  return h(
    "div",
    { class: "context" },
    h("table", { class: "table kv" }, h("tbody", null, rows.map(([k, v]) => h("tr", null, h("th", null, k), h("td", null, String(v)))))),
    git.diff ? h("details", null, h("summary", null, `git diff${git.diff_truncated ? " (cut at 256 KiB)" : ""}`), h("pre", { class: "plain diff-text" }, git.diff)) : null,
  );
}

export async function alertsPanel(project, run) {
  const { items } = await api.alerts(project, run);
  if (!items.length) return h("p", { class: "empty" }, "no alerts");
  return h(
    "ul",
    { class: "alerts" },
    items.map((a) => h("li", { class: `alert ${a.level.toLowerCase()}` }, h("strong", null, `${a.level} ${a.title}`), " ", h("span", { class: "when" }, time(a.t)), h("div", null, a.text))),
  );
}

export async function filesPanel(project, run) {
  const { items } = await api.records(project, run, "media", { limit: 10000 });
  const files = items.filter((i) => i.type === "file");
  if (!files.length) return h("p", { class: "empty" }, "no saved files");
  return h(
    "ul",
    { class: "files" },
    files.map((f) =>
      h(
        "li",
        null,
        h("a", { href: api.fileUrl(project, run, f.value.path), target: "_blank", rel: "noopener noreferrer" }, f.value.name),
        ` ${bytes(f.value.bytes)} · step ${f.step} · sha256 ${f.value.sha256.slice(0, 12)}…`,
      ),
    ),
  );
}

export function artifactsPanel(artifacts) {
  const { logged = [], used = [] } = artifacts || {};
  if (!logged.length && !used.length) return h("p", { class: "empty" }, "no artifacts logged or used");
  const list = (title, items) =>
    items.length
      ? [
          h("div", { class: "muted" }, title),
          h(
            "ul",
            { class: `artifacts-${title}` },
            items.map((a) =>
              h(
                "li",
                null,
                h("a", { href: artifactHref(a.project, a.name, a.version), "data-nav": 1 }, `${a.name}:${a.version}`),
                " ",
                h("span", { class: "tag" }, a.type),
                a.aliases.map((alias) => h("span", { class: "tag alias" }, alias)),
                ` ${time(a.t)}`,
              ),
            ),
          ),
        ]
      : null;
  return h("div", { class: "run-artifacts" }, list("logged", logged), list("used", used));
}

export function healthPanel(info, metrics) {
  const finish = info.finish || {};
  const rows = [
    ["events indexed", info.events],
    ["rejected lines or values", info.rejected],
    ["gaps in seq (lost events)", info.gaps],
    ["steps dropped (step went back)", info.dropped?.steps],
    ["values dropped with them", info.dropped?.values],
    ["events lost to a failing disk", info.lost_events ?? finish.lost_events],
    ["values that could not be encoded", finish.lost_values],
    ["seconds log() waited for room", finish.stalled_seconds],
  ].filter(([, v]) => v !== null && v !== undefined);
  const nonFinite = metrics.filter((m) => m.type === "scalar" && m.count > 0 && [m.min, m.max, m.last, m.mean].some((v) => typeof v === "string"));
  return h(
    "div",
    { class: "health" },
    h("table", { class: "table kv" }, h("tbody", null, rows.map(([k, v]) => h("tr", { class: v ? "warn" : "" }, h("th", null, k), h("td", { class: "num" }, show(v)))))),
    nonFinite.length
      ? h("p", null, "keys holding NaN or ±Inf (marked on their charts): ", nonFinite.map((m) => h("code", null, m.key)).flatMap((c) => [c, " "]))
      : null,
    info.rejects && info.rejects.length
      ? h(
          "table",
          { class: "table" },
          h("thead", null, h("tr", null, h("th", null, "file"), h("th", null, "offset"), h("th", null, "reason"))),
          h("tbody", null, info.rejects.map((r) => h("tr", null, h("td", null, r.file), h("td", { class: "num" }, r.offset), h("td", null, r.reason)))),
        )
      : null,
  );
}
