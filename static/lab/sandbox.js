// The sandbox part of the live panel: start/stop, a progress bar while the
// services come up one by one, and each service's state and fault controls
// (stop/start, injected delay, error rate, clear), which call the faults API.
// Each service is one line of fixed height (the delay and error controls sit
// behind a "Faults" disclosure), so stopping a service or opening the page
// mid-run never makes the panel jump and the trace stays in view.

import { api } from "./api.js";

const ENDED = new Set(["stopped", "failed", "expired"]);
const HEALTHY = new Set(["running"]);
// A sandbox's state only moves forward; a message that says otherwise is older
// than one already shown (the POST's answer, a publish that raced the start).
const RANK = { starting: 0, running: 1, stopping: 2, stopped: 3, failed: 3, expired: 3 };

function isBehind(known, sandbox) {
  if (!known || !sandbox || known.id !== sandbox.id || !(sandbox.state in RANK)) return false;
  return RANK[sandbox.state] < (RANK[known.state] ?? 0);
}

function html(tag, attributes = {}, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text != null) node.textContent = text;
  return node;
}

export function isEnded(sandbox) {
  return !sandbox || ENDED.has(sandbox.state);
}

export class SandboxPanel {
  /**
   * @param {HTMLElement} root
   * @param {{lesson: string, readOnly: boolean, signedIn?: boolean, onSandbox: (sandbox: object|null) => void}} options
   */
  constructor(root, { lesson, readOnly, signedIn = true, onSandbox }) {
    this.root = root;
    this.lesson = lesson;
    this.readOnly = readOnly;
    // An anonymous visitor starts nothing: the page's "Try as a guest" form stands in for Start.
    this.signedIn = signedIn;
    this.onSandbox = onSandbox;
    this.sandbox = null;
    this.rows = new Map();
    this.#build();
  }

  #build() {
    this.bar = html("div", { class: "sandbox-bar" });
    this.stateBadge = html("span", { class: "state-badge", role: "status" }, "no sandbox");
    this.button = html("button", { type: "button", class: "sandbox-toggle", id: "sandbox-toggle" }, "Start sandbox");
    this.button.addEventListener("click", () => this.#toggle());
    this.root.tabIndex = -1; // focus lands here after Start and Stop
    this.expires = html("span", { class: "muted sandbox-expires" });
    this.bar.append(this.stateBadge);
    if (!this.readOnly && this.signedIn) this.bar.append(this.button);
    this.bar.append(this.expires);
    this.progress = html("progress", { class: "sandbox-progress", max: "1", "aria-label": "Services started" });
    this.progress.hidden = true;
    this.progressLabel = html("p", { class: "muted sandbox-progress-label", "aria-live": "polite" });
    this.progressLabel.hidden = true;
    this.error = html("p", { class: "panel-error", role: "alert" });
    this.confirmBox = html("div", { class: "confirm-box", role: "group", "aria-labelledby": "confirm-text" });
    this.confirmBox.hidden = true;
    this.table = html("table", { class: "services-table" });
    this.table.append(html("caption", { class: "visually-hidden" }, "Services of this sandbox"));
    this.tbody = html("tbody");
    this.table.append(this.tbody);
    this.table.hidden = true;
    this.root.replaceChildren(this.bar, this.confirmBox, this.progress, this.progressLabel, this.error, this.table);
  }

  /** Show a sandbox (from the page, the API or a `sandbox` socket message). */
  update(sandbox) {
    if (isBehind(this.sandbox, sandbox)) return;
    if (sandbox && this.sandbox && sandbox.id && sandbox.id !== this.sandbox.id) this.rows.clear();
    // Socket snapshots may omit fields; keep what we knew.
    this.sandbox = sandbox ? { ...(this.sandbox?.id === sandbox.id ? this.sandbox : {}), ...sandbox } : null;
    const state = this.sandbox?.state || "none";
    this.root.dataset.state = state;
    this.stateBadge.className = `state-badge state-${state}`;
    this.stateBadge.textContent = this.sandbox ? `sandbox ${state}` : "no sandbox";
    if (this.sandbox?.reason && state !== "running") this.stateBadge.title = this.sandbox.reason;
    this.error.textContent = state === "failed" && this.sandbox?.reason ? this.sandbox.reason : this.error.textContent;
    const ended = isEnded(this.sandbox);
    this.button.textContent = ended ? "Start sandbox" : "Stop sandbox";
    this.button.classList.toggle("danger", !ended);
    this.button.disabled = state === "stopping";
    this.expires.textContent = !ended && this.sandbox?.expires_at
      ? `until ${new Date(this.sandbox.expires_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`
      : "";
    this.#showProgress(state);
    this.#showServices(ended ? {} : this.sandbox?.services || {});
  }

  #showProgress(state) {
    const services = Object.values(this.sandbox?.services || {});
    const starting = state === "starting";
    this.progress.hidden = !starting;
    this.progressLabel.hidden = !starting;
    if (!starting) return;
    if (!services.length) {
      this.progress.removeAttribute("value"); // indeterminate until the first service reports
      this.progressLabel.textContent = "Starting services…";
      return;
    }
    const healthy = services.filter((service) => HEALTHY.has(service.state)).length;
    this.progress.value = healthy / services.length;
    this.progressLabel.textContent = `${healthy} of ${services.length} services healthy`;
  }

  #showServices(services) {
    const names = Object.keys(services);
    this.table.hidden = !names.length;
    for (const [name, row] of this.rows) {
      if (!(name in services)) {
        row.element.remove();
        this.rows.delete(name);
      }
    }
    for (const name of names) {
      let row = this.rows.get(name);
      if (!row) {
        row = this.#serviceRow(name);
        this.rows.set(name, row);
        this.tbody.append(row.element);
      }
      this.#updateRow(row, services[name] || {});
    }
  }

  #serviceRow(name) {
    const element = html("tr", { "data-service": name });
    const nameCell = html("th", { scope: "row" }, name);
    const stateCell = html("td", { class: "service-state" });
    const badge = html("span", { class: "state-badge" });
    stateCell.append(badge);
    element.append(nameCell, stateCell);
    const row = { element, badge };
    if (this.readOnly) {
      row.faults = html("td", { class: "muted" });
      element.append(row.faults);
      return row;
    }
    const toggleCell = html("td", { class: "service-toggle" });
    row.toggle = html("button", { type: "button", class: "small secondary", "aria-label": `Stop ${name}` }, "Stop");
    row.toggle.addEventListener("click", () =>
      this.#fault(name, { action: row.state === "running" ? "stop" : "start" }));
    toggleCell.append(row.toggle);
    const faultsCell = html("td", { class: "service-faults-cell" });
    const details = html("details", { class: "service-faults" });
    row.faultSummary = html("span", { class: "fault-summary" });
    const summary = html("summary", {}, "Faults");
    summary.append(row.faultSummary);
    const box = html("div", { class: "service-controls" });
    row.delay = this.#slider(`${name}-delay`, "delay", 0, 2000, 50, (value) => `${value} ms`);
    row.delay.input.addEventListener("change", () =>
      this.#fault(name, { action: "delay", delay_ms: Number(row.delay.input.value) }));
    row.errorRate = this.#slider(`${name}-error`, "errors", 0, 1, 0.05, (value) => `${Math.round(value * 100)}%`);
    row.errorRate.input.addEventListener("change", () =>
      this.#fault(name, { action: "error", error_rate: Number(row.errorRate.input.value) }));
    const clear = html("button", { type: "button", class: "small secondary" }, "Clear");
    clear.addEventListener("click", () => this.#fault(name, { action: "clear" }));
    box.append(row.delay.label, row.errorRate.label, clear);
    details.append(summary, box);
    faultsCell.append(details);
    element.append(toggleCell, faultsCell);
    return row;
  }

  #slider(id, text, min, max, step, format) {
    const label = html("label", { for: `svc-${id}` }, `${text} `);
    const input = html("input", { id: `svc-${id}`, type: "range", min, max, step, value: min });
    const output = html("output", { for: `svc-${id}` }, format(min));
    input.addEventListener("input", () => {
      output.textContent = format(Number(input.value));
    });
    label.append(input, output);
    return { label, input, output, format };
  }

  #updateRow(row, service) {
    row.state = service.state;
    row.badge.className = `state-badge state-${service.state || "unknown"}`;
    row.badge.textContent = service.state || "unknown";
    row.badge.title = service.reason || "";
    row.element.dataset.state = service.state || "";
    const faults = [];
    if (service.delay_ms) faults.push(`+${service.delay_ms} ms`);
    if (service.error_rate) faults.push(`${Math.round(service.error_rate * 100)}% errors`);
    if (this.readOnly) {
      row.faults.textContent = faults.join(", ");
      return;
    }
    row.faultSummary.textContent = faults.length ? `: ${faults.join(", ")}` : "";
    row.toggle.textContent = service.state === "running" ? "Stop" : "Start";
    row.toggle.setAttribute("aria-label", `${row.toggle.textContent} ${row.element.dataset.service}`);
    row.toggle.disabled = ["starting", "stopping"].includes(service.state);
    // Don't move a slider under the learner's finger.
    for (const [slider, value] of [[row.delay, service.delay_ms], [row.errorRate, service.error_rate]]) {
      if (value != null && document.activeElement !== slider.input) {
        slider.input.value = value;
        slider.output.textContent = slider.format(Number(value));
      }
    }
  }

  async #fault(service, body) {
    if (!this.sandbox) return;
    this.error.textContent = "";
    try {
      const answer = await api("POST", `/api/sandboxes/${this.sandbox.id}/faults/`, { service, ...body });
      if (answer?.services) this.update({ ...this.sandbox, services: answer.services });
    } catch (error) {
      const details = Object.entries(error.errors || {}).map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`);
      this.error.textContent = [error.message, ...details].join(" ");
    }
  }

  /** The learner's running sandboxes of other lessons: starting this one stops them. */
  async #othersRunning() {
    try {
      const mine = await api("GET", `/api/sandboxes/`);
      return (mine || []).filter((sandbox) => ["starting", "running"].includes(sandbox.state) && sandbox.lesson !== this.lesson);
    } catch {
      return []; // the server still applies the quota and says so
    }
  }

  /** Ask before stopping another lesson's sandbox; resolve true to go on. */
  #confirmStop(others) {
    return new Promise((resolve) => {
      const names = others.map((sandbox) => `“${sandbox.lesson}”`).join(", ");
      const text = html("p", { id: "confirm-text" },
        `Your sandbox for the ${names} lesson is running. You have one sandbox at a time: starting this one stops it.`);
      const go = html("button", { type: "button", class: "danger" }, `Stop the ${others[0].lesson} sandbox and start this one`);
      const keep = html("button", { type: "button", class: "secondary" }, "Keep it running");
      const answer = (value) => {
        this.confirmBox.hidden = true;
        this.confirmBox.replaceChildren();
        resolve(value);
      };
      go.addEventListener("click", () => answer(true));
      keep.addEventListener("click", () => {
        answer(false);
        this.button.focus();
      });
      const actions = html("div", { class: "confirm-actions" });
      actions.append(go, keep);
      this.confirmBox.replaceChildren(text, actions);
      this.confirmBox.hidden = false;
      go.focus();
    });
  }

  async #toggle() {
    this.error.textContent = "";
    this.button.disabled = true;
    try {
      if (isEnded(this.sandbox)) {
        const others = await this.#othersRunning();
        if (others.length && !(await this.#confirmStop(others))) return;
        const sandbox = await api("POST", "/api/sandboxes/", { lesson: this.lesson });
        this.update(sandbox);
        this.onSandbox(this.sandbox);
        this.root.focus();
      } else {
        const sandbox = await api("DELETE", `/api/sandboxes/${this.sandbox.id}/`);
        this.update(sandbox);
        this.root.focus();
      }
    } catch (error) {
      const details = Object.values(error.errors || {}).flat();
      this.error.textContent = [error.message, ...details].join(" ");
    } finally {
      this.button.disabled = this.sandbox?.state === "stopping";
    }
  }
}
