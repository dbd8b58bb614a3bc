// A run's columns by name, as the runs list's `sort` names them (docs/api.md): `config.KEY`,
// `summary.KEY`, `summary.KEY.AGGREGATE` (one aggregate of a summary that define_metric made an
// object, {"max": 0.9}) and `metric.KEY.min|max|last`. One reading, for the runs table and the
// across-runs view.

const METRIC = /^metric\.(.+)\.(min|max|last)$/s;
const AGGREGATE = /^(.+)\.(min|max|mean|first|last)$/s;

// The scalar key of a `metric.KEY.min|max|last` column, or null.
export function metricKey(id) {
  const m = METRIC.exec(id);
  return m ? m[1] : null;
}

export function label(id) {
  const m = METRIC.exec(id);
  return m ? `${m[1]} (${m[2]})` : id;
}

// The value a run holds in a column (undefined when it has none).
export function columnValue(run, id) {
  const m = METRIC.exec(id);
  if (m) return run.metrics?.[m[1]]?.[m[2]];
  const dot = id.indexOf(".");
  const [where, key] = [id.slice(0, dot), id.slice(dot + 1)];
  const values = where === "summary" ? run.summary : where === "config" ? run.config : null;
  if (!values) return undefined;
  if (key in values) return values[key];
  const a = AGGREGATE.exec(key);
  const inner = a ? values[a[1]] : undefined;
  return inner && typeof inner === "object" ? inner[a[2]] : undefined;
}

// The key a summary key of /keys summarises: "val/acc" for "val/acc.max" when "val/acc" is not
// itself a summary key (then it is one aggregate of it); else the key itself.
export function summarisedKey(key, summaryKeys) {
  const a = AGGREGATE.exec(key);
  return a && !summaryKeys.includes(a[1]) ? a[1] : key;
}
