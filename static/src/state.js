// The URL is the view's state: which view (the path) and how it is set up (the query), so any
// view can be bookmarked, shared and restored by the back button.
//
//   /                              projects
//   /p/PROJECT                     runs table   ?sort= &text= &status= &tag= &origin= &cols= &group= &sel=
//   /p/PROJECT/r/RUN               run view     ?tab= &rank= &q= &smooth= &x= &logy= &outliers= &zoom=
//   /p/PROJECT/compare?runs=A,B    compare view (and the chart settings above)
//   /p/PROJECT/across              scatter and parallel coordinates   ?sx= &sy= &axes=
//   /p/PROJECT/artifacts           the project's artifacts
//   /p/PROJECT/artifacts/NAME      one artifact: versions, lineage, files   ?v= &offset=

let onRoute = () => {};

export function route() {
  const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  const params = Object.fromEntries(new URLSearchParams(location.search));
  if (parts[0] !== "p" || parts.length < 2) return { view: "projects", params };
  const project = parts[1];
  if (parts[2] === "r" && parts[3]) return { view: "run", project, run: parts[3], params };
  if (parts[2] === "compare") return { view: "compare", project, params };
  if (parts[2] === "across") return { view: "across", project, params };
  if (parts[2] === "artifacts" && parts[3]) return { view: "artifact", project, artifact: parts[3], params };
  if (parts[2] === "artifacts") return { view: "artifacts", project, params };
  return { view: "runs", project, params };
}

export function path(project, ...rest) {
  if (project === undefined) return "/";
  return ["", "p", project, ...rest].map(encodeURIComponent).join("/");
}

// One version of an artifact (vN or an alias), in its artifact's view.
export function artifactHref(project, name, version) {
  return href(path(project, "artifacts", name), { v: version });
}

export function href(pathname, params = {}) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") q.set(name, value);
  }
  const text = q.toString();
  return text ? `${pathname}?${text}` : pathname;
}

export function param(name, fallback = "") {
  const value = new URLSearchParams(location.search).get(name);
  return value === null ? fallback : value;
}

// Change some query parameters of the current view (null removes one) without a reload.
export function setParams(changes, push = false) {
  const q = new URLSearchParams(location.search);
  for (const [name, value] of Object.entries(changes)) {
    if (value === null || value === undefined || value === "") q.delete(name);
    else q.set(name, value);
  }
  const text = q.toString();
  const url = text ? `${location.pathname}?${text}` : location.pathname;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

// Open another view (a new history entry); the page renders it without reloading.
export function go(url) {
  history.pushState(null, "", url);
  onRoute(route());
}

export function listen(callback) {
  onRoute = callback;
  window.addEventListener("popstate", () => onRoute(route()));
  // Plain links inside the page navigate without reloading (modifier clicks open tabs as usual).
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-nav]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    go(link.getAttribute("href"));
  });
}
