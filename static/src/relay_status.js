// The relay's state in the page's header, from /api/health's `relay` (docs/api.md, "Health"):
// nothing unless the server relays its folder (`waddle serve --relay-to`); else caught up,
// behind by how many events and bytes, or retrying, with the last error. Asked again every few
// seconds while the server relays and the page is visible; a server that does not relay is
// asked once per view (it cannot start relaying without a restart).
import { api } from "./api.js";
import { h, replace, setText } from "./dom.js";
import { bytes, time } from "./format.js";

const EVERY = 2000; // ms: fresh enough to watch a backlog drain, one small answer per ask

const count = (n) => Math.round(n).toLocaleString("en-US");
const plural = (n, one, many) => `${count(n)} ${n === 1 ? one : many}`;

export class RelayStatus {
  constructor() {
    this.label = h("span", { class: "relay-state" });
    this.error = h("span", { class: "relay-error" });
    this.el = h("span", { class: "relay-status", role: "status", hidden: true }, this.label, this.error);
    this.timer = null;
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.relaying) this.ask();
    });
  }

  // Ask now (a view was shown), and go on asking while the server relays.
  ask() {
    clearTimeout(this.timer);
    this.timer = null;
    api
      .health()
      .then((health) => this.show(health.relay))
      .catch(() => {}) // the view says what is wrong with the server (unreachable, token)
      .finally(() => {
        if (this.relaying && document.visibilityState === "visible" && !this.timer) {
          this.timer = setTimeout(() => this.ask(), EVERY);
        }
      });
  }

  show(relay) {
    this.relaying = Boolean(relay);
    this.el.hidden = !relay;
    if (!relay) return;
    const failing = relay.state === "retrying";
    this.el.className = `relay-status ${relay.state}`;
    const behind = relay.behind_bytes > 0 || relay.behind_events > 0;
    let text = behind
      ? `relay: behind by ${plural(relay.behind_events, "event", "events")} · ${bytes(relay.behind_bytes)}`
      : "relay: caught up";
    if (failing) text += ` · retrying in ${Math.ceil(relay.retry_in)} s`;
    // Runs ({run}) and artifacts ({artifact}) the relay cannot send.
    if (relay.refused.length) text += ` · ${relay.refused.length} refused`;
    setText(this.label, text);
    const last = relay.last_error;
    setText(this.error, failing && last ? last.message : "");
    const lines = [
      `relaying to ${relay.to} as origin ${relay.origin}`,
      `sent since start: ${plural(relay.sent_events, "event", "events")}, ${bytes(relay.sent_bytes)}, ${plural(relay.sent_files, "file", "files")}`,
      relay.last_ack ? `last acknowledged ${time(relay.last_ack)}` : "nothing acknowledged yet",
      last ? `last error ${time(last.t)}${last.count > 1 ? ` (×${last.count})` : ""}: ${last.message}` : null,
      ...relay.refused.map((r) => `refused ${r.run ? `run ${r.run}` : `artifact ${r.artifact}`}: ${r.reason}`),
    ];
    this.el.title = lines.filter(Boolean).join("\n");
  }
}

export const relayStatus = new RelayStatus();

