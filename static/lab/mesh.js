// The service-mesh lesson's own panel: the policy editor (preview the generated
// HAProxy diff, apply, or read the field the control plane refused), a breaker
// per upstream replica as HAProxy reports it, and a live graph of the mesh.
// Everything comes from the sandbox's control plane: its state over the
// WebSocket (metrics from source "control-plane", key mesh_state), the policy
// through /api/sandboxes/<id>/mesh/. Nothing here computes a breaker's state.
// Clicking an edge (or Enter on it) filters the trace view to that edge's calls.

import { api, ApiError } from "./api.js";
import { diffDetails, refusalList } from "./policy-view.js";

const NODES = {
  client: { x: 60, y: 110, label: "client" },
  "frontend-0": { x: 220, y: 40, label: "frontend" },
  "backend-0": { x: 400, y: 40, label: "backend-0" },
  "backend-1": { x: 400, y: 110, label: "backend-1" },
  "backend-2": { x: 400, y: 180, label: "backend-2" },
};
const SVG = "http://www.w3.org/2000/svg";

function element(tag, attributes = {}, text) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text != null) node.textContent = text;
  return node;
}

/** HAProxy's status word as a breaker: closed (in rotation), open (ejected), probing, maintenance. */
export function breakerOf(status) {
  if (!status) return { state: "unknown", text: "unknown" };
  if (status.startsWith("MAINT")) return { state: "maintenance", text: "not running (maintenance)" };
  const probing = status.match(/^DOWN (\d+)\/(\d+)/);
  if (probing) return { state: "probing", text: `ejected, probing ${probing[1]}/${probing[2]}` };
  if (status.startsWith("DOWN")) return { state: "open", text: "ejected" };
  if (status.startsWith("UP") || status === "no check") return { state: "closed", text: "in rotation" };
  return { state: "unknown", text: status };
}

class MeshPanel {
  constructor(root) {
    this.root = root;
    this.sandboxId = null;
    this.editor = root.querySelector("#mesh-policy");
    this.result = root.querySelector("#mesh-policy-result");
    this.breakers = root.querySelector("#mesh-breakers");
    this.graph = root.querySelector("#mesh-graph");
    this.edited = false;
    this.lastCounts = new Map(); // edge -> {requests, at}: for a rate between two updates
    this.filtered = null; // the edge the trace view is filtered to, "caller->server"
    this.editor.addEventListener("input", () => { this.edited = true; });
    root.querySelector("#mesh-preview").addEventListener("click", () => this.send(false));
    root.querySelector("#mesh-apply").addEventListener("click", () => this.send(true));
    document.addEventListener("lab:sandbox", (event) => this.setSandbox(event.detail));
    document.addEventListener("lab:metrics", (event) => {
      const state = event.detail?.metrics?.mesh_state;
      if (state) this.draw(state);
    });
    // The trace view says when its filter changes (an edge click, or its chip's ×).
    document.addEventListener("lab:trace-filter", (event) => {
      this.filtered = event.detail?.filter?.edge ?? null;
      for (const edge of this.graph.querySelectorAll(".mesh-edge")) {
        const on = edge.dataset.edge === this.filtered;
        edge.classList.toggle("is-filtered", on);
        edge.setAttribute("aria-pressed", String(on));
      }
    });
  }

  async setSandbox(sandbox) {
    const running = sandbox && sandbox.state === "running";
    this.root.dataset.sandbox = running ? sandbox.id : "";
    for (const button of this.root.querySelectorAll("button")) button.disabled = !running;
    if (!running || sandbox.id === this.sandboxId) return;
    this.sandboxId = sandbox.id;
    try {
      const mesh = await api("GET", `/api/sandboxes/${sandbox.id}/mesh/`);
      if (!this.edited) this.editor.value = mesh.policy;
      this.draw({ servers: mesh.servers, edges: mesh.edges });
    } catch (error) {
      this.show("error", [error.message]);
    }
  }

  async send(apply) {
    if (!this.sandboxId) return;
    this.result.replaceChildren(element("p", { class: "muted" }, apply ? "Applying…" : "Rendering…"));
    try {
      const answer = await api("POST", `/api/sandboxes/${this.sandboxId}/mesh/policy/`, {
        policy: this.editor.value,
        apply,
      });
      this.showDiff(answer, apply);
    } catch (error) {
      if (error instanceof ApiError && error.status === 400) {
        const lines = Object.entries(error.errors).flatMap(([field, messages]) =>
          (Array.isArray(messages) ? messages : [messages]).map((message) => [field, message]));
        this.show("error", lines.length ? lines : [error.message]);
      } else {
        this.show("error", [error.message]);
      }
    }
  }

  show(kind, lines) {
    this.result.replaceChildren(refusalList(lines, `mesh-${kind}`, "mesh-field"));
  }

  showDiff(answer, applied) {
    const diffs = answer.diff || {};
    const names = Object.keys(diffs);
    const heading = applied
      ? `Applied as version ${answer.version}: ${names.length} sidecar(s) reloaded${answer.applied_in_ms != null ? ` in ${answer.applied_in_ms} ms` : ""}.`
      : `Preview: ${names.length} sidecar configuration(s) would change.`;
    const parts = [element("p", { class: "mesh-summary" }, names.length ? heading : "No sidecar's configuration changes.")];
    for (const name of names) parts.push(diffDetails(`${name}.cfg`, diffs[name], "mesh-diff"));
    this.result.replaceChildren(...parts);
  }

  draw(state) {
    this.drawBreakers(state.servers || {});
    this.drawGraph(state.servers || {}, state.edges || []);
  }

  drawBreakers(servers) {
    const rows = [];
    for (const [caller, states] of Object.entries(servers)) {
      for (const server of states) {
        if (!server.server) continue;
        const breaker = breakerOf(server.status);
        const row = element("li", { class: `breaker breaker-${breaker.state}`, "data-server": server.server, "data-caller": caller, "data-state": breaker.state });
        row.append(
          element("span", { class: "breaker-lamp", "aria-hidden": "true" }),
          element("span", { class: "breaker-name" }, `${caller.replace(/-0$/, "")} → ${server.server}`),
          element("span", { class: "breaker-text" }, `${breaker.text} (HAProxy: ${server.status}${server.check_status ? `, ${server.check_status}` : ""}; ejected ${server.down_transitions}×)`),
        );
        rows.push(row);
      }
    }
    this.breakers.replaceChildren(...(rows.length ? rows : [element("li", { class: "muted" }, "No upstream yet.")]));
  }

  drawGraph(servers, edges) {
    const svg = element("svg:svg", { viewBox: "0 0 470 220", role: "group", "aria-label": "The mesh: workloads and the calls between them; each edge filters the trace to its calls" });
    // Each caller's sidecar judges each replica on its own: an edge shows its caller's
    // view, a node the worst view any caller has of it.
    const severity = { open: 4, probing: 3, maintenance: 2, unknown: 1, closed: 0 };
    const byEdge = {};
    const status = {};
    for (const [caller, states] of Object.entries(servers)) {
      for (const server of states) {
        if (!server.server) continue;
        const state = breakerOf(server.status).state;
        byEdge[`${caller.replace(/-0$/, "")}->${server.server}`] = state;
        if ((severity[state] ?? 0) >= (severity[status[server.server]] ?? 0)) status[server.server] = state;
      }
    }
    for (const edge of edges) {
      const from = NODES[edge.from === "client" ? "client" : `${edge.from}-0`];
      const to = NODES[edge.to];
      if (!from || !to) continue;
      const edgeState = byEdge[`${edge.from}->${edge.to}`];
      const broken = edgeState === "open" || edgeState === "probing";
      const key = `${edge.from}->${edge.to}`;
      const now = performance.now();
      const last = this.lastCounts.get(key);
      const rate = last && now > last.at ? ((edge.requests - last.requests) * 1000) / (now - last.at) : 0;
      this.lastCounts.set(key, { requests: edge.requests, at: now });
      const filtered = key === this.filtered;
      const summary = `${edge.from} → ${edge.to}: ${edge.requests} requests, ${edge.errors} errors, ${edge.retries} retries, ${edge.mtls ? "mTLS" : "plaintext"}`;
      // Two lines, so a label fits between two nodes; together they read as `text`.
      const lines = [`${edge.mtls ? "mTLS" : "plaintext"} · ${Math.max(0, Math.round(rate))}/s · `, `${edge.errors} err · p99 ${edge.p99_ms ?? "–"} ms`];
      const text = lines.join("");
      // Every edge is a button: click or Enter filters the trace view to its calls.
      const group = element("svg:g", {
        class: `mesh-edge${broken ? " is-broken" : ""}${filtered ? " is-filtered" : ""}`,
        "data-edge": key,
        tabindex: "0",
        role: "button",
        "aria-pressed": String(filtered),
        // The name holds the visible label word for word (axe: label-content-name-mismatch).
        "aria-label": `${edge.from} → ${edge.to}, ${text}, ${edge.requests} requests, ${edge.retries} retries: show its calls in the trace`,
      });
      group.append(element("svg:line", { x1: from.x + 30, y1: from.y, x2: to.x - 30, y2: to.y }));
      const mid = { x: (from.x + to.x) / 2, y: (from.y + to.y) / 2 };
      const label = element("svg:text", { x: mid.x, y: mid.y - 14, "text-anchor": "middle" });
      label.append(
        element("svg:tspan", { x: mid.x, dy: 0 }, lines[0]),
        element("svg:tspan", { x: mid.x, dy: "1.1em" }, lines[1]),
      );
      group.append(label);
      group.append(element("svg:title", {}, `${summary} (click: show its calls in the trace)`));
      const show = () => this.filterTrace(edge);
      group.addEventListener("click", show);
      group.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          show();
        }
      });
      svg.append(group);
    }
    for (const [name, node] of Object.entries(NODES)) {
      const group = element("svg:g", { class: `mesh-node mesh-node-${status[name] || "closed"}`, "data-node": name });
      group.append(element("svg:rect", { x: node.x - 30, y: node.y - 14, width: 60, height: 28, rx: 6 }));
      group.append(element("svg:text", { x: node.x, y: node.y + 4, "text-anchor": "middle" }, node.label));
      svg.append(group);
    }
    // Redrawn on every update: an edge that had the keyboard focus keeps it.
    const focused = this.graph.contains(document.activeElement) ? document.activeElement.dataset?.edge : null;
    this.graph.replaceChildren(svg);
    if (focused) svg.querySelector(`[data-edge="${CSS.escape(focused)}"]`)?.focus();
  }

  /** Ask the trace view to show only this edge's calls: the caller's sidecar's spans to that replica. */
  filterTrace(edge) {
    const key = `${edge.from}->${edge.to}`;
    document.dispatchEvent(new CustomEvent("lab:filter-trace", {
      detail: {
        label: `${edge.from} → ${edge.to}`,
        edge: key,
        where: { service: `${edge.from}-sidecar`, kind: "client", attributes: { "haproxy.server": edge.to } },
        spanId: edge.last_span_id,
      },
    }));
  }
}

const root = document.getElementById("mesh-panel");
if (root) new MeshPanel(root);
