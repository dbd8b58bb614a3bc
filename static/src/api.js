// The one client of the server's API (docs/api.md): every HTTP route and the /ws protocol.
// With a token (asked once by the page, kept in sessionStorage) HTTP sends it as a bearer
// header, and /ws and /files URLs carry it as ?token= (a browser cannot set those headers).

const TOKEN_KEY = "waddle.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function query(params) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (Array.isArray(value)) value.forEach((item) => q.append(name, item));
    else if (value !== null && value !== undefined && value !== "") q.set(name, value);
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

async function request(method, path, params, body) {
  const headers = {};
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path + query(params), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const payload = await response.json().catch(() => null);
  if (!response.ok) {
    const error = payload && payload.error ? payload.error : { code: "http_error", message: response.statusText };
    throw new ApiError(response.status, error.code, error.message);
  }
  return payload;
}

const get = (path, params) => request("GET", path, params);
const enc = encodeURIComponent;
const runPath = (project, run) => `/api/projects/${enc(project)}/runs/${enc(run)}`;
const artifactPath = (project, name) => `/api/projects/${enc(project)}/artifacts/${enc(name)}`;
const filePath = (path) => path.split("/").map(enc).join("/");

export const api = {
  health: () => get("/api/health"),
  projects: () => get("/api/projects"),
  keys: (project) => get(`/api/projects/${enc(project)}/keys`),
  runs: (project, params) => get(`/api/projects/${enc(project)}/runs`, params),
  run: (project, run) => get(runPath(project, run)),
  metrics: (project, run) => get(`${runPath(project, run)}/metrics`),
  // rank: one rank's stream of a run several processes share (default rank 0).
  scalars: (project, run, params) => get(`${runPath(project, run)}/scalars`, params),
  // An API address the page preloaded, asked for as it is (so the browser takes its answer).
  preloaded: (url) => get(url),
  // body: {series: [{run, key, rank?}], x, start, end, points, smooth}
  batch: (project, body) => request("POST", `/api/projects/${enc(project)}/scalars`, null, body),
  records: (project, run, kind, params) => get(`${runPath(project, run)}/${kind}`, params),
  console: (project, run, after, rank) => get(`${runPath(project, run)}/console`, { after, rank }),
  system: (project, run, rank) => get(`${runPath(project, run)}/system`, { rank }),
  alerts: (project, run) => get(`${runPath(project, run)}/alerts`),
  rejects: (project, run) => get(`${runPath(project, run)}/rejects`),
  exportUrl: (project, run, format) => withToken(`${runPath(project, run)}/export?format=${format}`),
  // A file of a run folder (media, saved files), through the sandboxed /files route.
  fileUrl: (project, run, path) => withToken(`/files/${enc(project)}/${enc(run)}/${filePath(path)}`),
  artifacts: (project) => get(`/api/projects/${enc(project)}/artifacts`),
  artifact: (project, name) => get(artifactPath(project, name)),
  // One version (vN or an alias) with a page of its manifest: params {offset, limit}.
  artifactVersion: (project, name, version, params) => get(`${artifactPath(project, name)}/${enc(version)}`, params),
  // A file a version's manifest records, served sandboxed as /files serves a run's.
  artifactFileUrl: (project, name, version, path) =>
    withToken(`${artifactPath(project, name)}/${enc(version)}/files/${filePath(path)}`),
};

function withToken(url) {
  if (!token()) return url;
  return `${url}${url.includes("?") ? "&" : "?"}token=${enc(token())}`;
}

// One WebSocket for the page. subscribe(id, message, onMessage) survives reconnects: each
// series subscription is renewed with the newest cursor it has seen, so no point is lost or
// sent twice; onMessage gets every message for that id (points, runs, resync, error).
export class Live {
  constructor() {
    this.subs = new Map();
    this.socket = null;
    this.retry = 500;
    this.closed = false;
    this.onstatus = () => {};
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(withToken(`${scheme}//${location.host}/ws`));
    this.socket = socket;
    socket.onopen = () => {
      this.retry = 500;
      this.onstatus("live");
      for (const [id, sub] of this.subs) this._send({ ...sub.message, op: "subscribe", id });
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      const sub = this.subs.get(message.id);
      if (!sub) return;
      if (message.cursor !== undefined && message.type === "points") sub.message.cursor = message.cursor;
      sub.onMessage(message);
    };
    socket.onclose = () => {
      if (this.closed) return;
      this.onstatus("reconnecting");
      setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 10000);
    };
  }

  subscribe(id, message, onMessage) {
    this.subs.set(id, { message: { ...message }, onMessage });
    if (!this.socket) this.connect();
    else if (this.socket.readyState === WebSocket.OPEN) this._send({ ...message, op: "subscribe", id });
  }

  unsubscribe(id) {
    if (!this.subs.delete(id)) return;
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this._send({ op: "unsubscribe", id });
  }

  unsubscribeAll() {
    for (const id of [...this.subs.keys()]) this.unsubscribe(id);
  }

  _send(message) {
    this.socket.send(JSON.stringify(message));
  }
}

export const live = new Live();
