// A project's artifacts (docs/api.md, "Artifacts"): every name with its type, versions and
// aliases; and one artifact: its versions (aliases, size, files, the run that made each), the
// chosen version's lineage (the runs that logged it and the runs that used it, from any
// project, and one step further: the versions those runs used and logged), description,
// metadata and files, a page at a time. A file opens through the
// sandboxed artifact files route; a reference is shown as the URI it is, never fetched or
// made a link. The chosen version and page are in the URL (?v= &offset=).
import { api } from "../api.js";
import { h, replace } from "../dom.js";
import { bytes, time } from "../format.js";
import { configTable } from "../rich/overview.js";
import { artifactHref, param, path, setParams } from "../state.js";

const PAGE = 100; // manifest entries per page
const NEIGHBOURS = 20; // runs asked for the versions one step up or down the lineage

export async function artifactsView(el, where) {
  const { project } = where;
  const { artifacts } = await api.artifacts(project);
  el.append(h("h1", null, `${project}: artifacts`));
  if (!artifacts.length) return void el.append(h("p", { class: "empty" }, "no artifacts in this project (run.log_artifact logs one)"));
  el.append(
    h(
      "table",
      { class: "table artifacts" },
      h("thead", null, h("tr", null, ["name", "type", "versions", "latest", "aliases", "size", "created", "updated"].map((c) => h("th", null, c)))),
      h(
        "tbody",
        null,
        artifacts.map((a) =>
          h(
            "tr",
            null,
            h("td", null, h("a", { href: path(project, "artifacts", a.name), "data-nav": 1 }, a.name)),
            h("td", null, h("span", { class: "tag" }, a.type)),
            h("td", { class: "num" }, a.versions),
            h("td", null, a.latest),
            h("td", null, aliasTags(Object.entries(a.aliases || {}).map(([alias, version]) => `${alias} → ${version}`))),
            h("td", { class: "num" }, bytes(a.size)),
            h("td", null, time(a.created)),
            h("td", null, time(a.updated)),
          ),
        ),
      ),
    ),
  );
}

export async function artifactView(el, where) {
  const { project, artifact: name } = where;
  const info = await api.artifact(project, name);
  const rows = new Map();
  const detail = h("div", { class: "artifact-version" });
  let asked = 0;
  const show = async (version, offset = 0) => {
    const mine = ++asked;
    const v = await api.artifactVersion(project, name, version, { offset, limit: PAGE });
    if (mine !== asked) return; // another version was chosen meanwhile
    setParams({ v: version, offset: offset || null });
    for (const [id, row] of rows) row.classList.toggle("selected", id === v.version);
    replace(detail, versionDetail(project, name, v, (next) => show(version, next)));
  };
  el.append(
    h("h1", null, name, " ", h("span", { class: "tag" }, info.type)),
    h(
      "table",
      { class: "table versions" },
      h("thead", null, h("tr", null, ["version", "aliases", "files", "size", "created", "made by", "used by"].map((c) => h("th", null, c)))),
      h(
        "tbody",
        null,
        [...info.versions].reverse().map((v) => {
          const row = h(
            "tr",
            { class: "version-row", onclick: () => show(v.version) },
            h("td", null, h("button", { class: "link" }, v.version)),
            h("td", null, aliasTags(v.aliases)),
            h("td", { class: "num" }, v.files),
            h("td", { class: "num" }, bytes(v.size)),
            h("td", null, time(v.created)),
            h("td", null, v.created_by ? runLink(v.created_by, v.logged_by) : "–"),
            h("td", { class: "num" }, `${v.used_by.length} run${v.used_by.length === 1 ? "" : "s"}`),
          );
          rows.set(v.version, row);
          return row;
        }),
      ),
    ),
    detail,
  );
  const latest = info.versions.length ? info.versions[info.versions.length - 1].version : null;
  if (latest) await show(param("v") || latest, Math.max(0, Math.floor(Number(param("offset")) || 0)));
}

function versionDetail(project, name, v, page) {
  const { total, offset, entries } = v.manifest;
  const inputs = h("div", { class: "lineage-runs lineage-inputs" }, h("div", { class: "muted" }, "inputs of those runs"), "…");
  const outputs = h("div", { class: "lineage-runs lineage-outputs" }, h("div", { class: "muted" }, "outputs of those runs"), "…");
  const self = { project, name, version: v.version };
  neighbours(inputs, v.logged_by, "used", self);
  neighbours(outputs, v.used_by, "logged", self);
  return h(
    "div",
    null,
    h("h2", null, `${name}:${v.version} `, aliasTags(v.aliases)),
    v.description ? h("p", { class: "description" }, v.description) : null,
    h("p", { class: "muted" }, `${v.files} files, ${bytes(v.size)} · made ${time(v.created)} · digest ${v.digest}`),
    h("h3", null, "lineage"),
    h(
      "div",
      { class: "lineage" },
      inputs,
      h("div", { class: "lineage-arrow" }, "→"),
      h("div", { class: "lineage-runs lineage-logged" }, h("div", { class: "muted" }, "logged by"), runList(v.logged_by)),
      h("div", { class: "lineage-arrow" }, "→"),
      h("div", { class: "lineage-version" }, `${name}:${v.version}`),
      h("div", { class: "lineage-arrow" }, "→"),
      h("div", { class: "lineage-runs lineage-used" }, h("div", { class: "muted" }, "used by"), runList(v.used_by)),
      h("div", { class: "lineage-arrow" }, "→"),
      outputs,
    ),
    Object.keys(v.metadata || {}).length ? [h("h3", null, "metadata"), configTable(v.metadata)] : null,
    h("h3", null, `files (${total})`),
    h(
      "table",
      { class: "table manifest" },
      h("thead", null, h("tr", null, h("th", null, "path"), h("th", null, "size"), h("th", null, "sha256"))),
      h(
        "tbody",
        null,
        entries.map((e) =>
          h(
            "tr",
            null,
            h(
              "td",
              null,
              e.ref === null
                ? h("a", { href: api.artifactFileUrl(project, name, v.version, e.path), target: "_blank", rel: "noopener noreferrer" }, e.path)
                : [e.path, h("div", { class: "ref muted" }, `reference (not stored): ${e.ref}`)],
            ),
            h("td", { class: "num" }, e.size === null ? "" : bytes(e.size)),
            h("td", null, h("code", null, e.sha256 ? `${e.sha256.slice(0, 12)}…` : "")),
          ),
        ),
      ),
    ),
    total > entries.length
      ? h(
          "div",
          { class: "pager" },
          h("button", { disabled: offset === 0, onclick: () => page(Math.max(0, offset - PAGE)) }, "‹ previous"),
          ` ${offset + 1}–${offset + entries.length} of ${total} `,
          h("button", { disabled: offset + entries.length >= total, onclick: () => page(offset + PAGE) }, "next ›"),
        )
      : null,
  );
}

function aliasTags(aliases) {
  return (aliases || []).map((a) => h("span", { class: "tag alias" }, a));
}

// A run in an artifact's lineage (any project), by its name where the lineage has it.
function runLink(ref, named = []) {
  const found = named.find((r) => r.project === ref.project && r.run === ref.run);
  return h("a", { href: path(ref.project, "r", ref.run), "data-nav": 1, title: `${ref.project}/${ref.run}` }, found?.name || ref.run);
}

function runList(runs) {
  if (!runs.length) return h("p", { class: "empty" }, "none");
  return h(
    "ul",
    null,
    runs.map((r) => h("li", null, runLink(r, [r]), ` ${time(r.t)}`, r.aliases.length ? [" ", aliasTags(r.aliases)] : null)),
  );
}

// The versions the given runs used (side "used") or logged (side "logged"), but this one: the
// lineage one step further. Read from the runs' own answers, for at most NEIGHBOURS runs.
async function neighbours(box, runs, side, self) {
  const infos = await Promise.all(runs.slice(0, NEIGHBOURS).map((r) => api.run(r.project, r.run).catch(() => null)));
  const seen = new Map();
  for (const info of infos) {
    for (const a of info?.artifacts?.[side] || []) {
      const id = `${a.project}/${a.name}:${a.version}`;
      if (a.project === self.project && a.name === self.name && a.version === self.version) continue;
      if (!seen.has(id)) seen.set(id, a);
    }
  }
  const more = runs.length > NEIGHBOURS ? h("p", { class: "muted" }, `(from the first ${NEIGHBOURS} of ${runs.length} runs)`) : null;
  replace(
    box,
    box.firstChild,
    seen.size
      ? h(
          "ul",
          null,
          [...seen.values()].map((a) => h("li", null, h("a", { href: artifactHref(a.project, a.name, a.version), "data-nav": 1 }, `${a.name}:${a.version}`), " ", h("span", { class: "tag" }, a.type))),
        )
      : h("p", { class: "empty" }, "none"),
    more,
  );
}
