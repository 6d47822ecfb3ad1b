// The API-gateway lesson's policy editor: preview the HAProxy configuration the
// gateway would generate (as a diff), apply it (a hitless reload), or read the
// field the gateway refused and why. The policy travels through
// /api/sandboxes/<id>/gateway/ to the sandbox's gateway service; nothing here
// validates it: the gateway is the one judge.

import { api, ApiError } from "./api.js";
import { diffDetails, refusalList } from "./policy-view.js";

function element(tag, attributes = {}, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text != null) node.textContent = text;
  return node;
}

class GatewayPanel {
  constructor(root) {
    this.root = root;
    this.sandboxId = null;
    this.editor = root.querySelector("#gateway-policy");
    this.result = root.querySelector("#gateway-policy-result");
    this.edited = false;
    this.editor.addEventListener("input", () => { this.edited = true; });
    root.querySelector("#gateway-preview").addEventListener("click", () => this.send(false));
    root.querySelector("#gateway-apply").addEventListener("click", () => this.send(true));
    document.addEventListener("lab:sandbox", (event) => this.setSandbox(event.detail));
  }

  async setSandbox(sandbox) {
    const running = sandbox && sandbox.state === "running";
    this.root.dataset.sandbox = running ? sandbox.id : "";
    for (const button of this.root.querySelectorAll("button")) button.disabled = !running;
    if (!running || sandbox.id === this.sandboxId) return;
    this.sandboxId = sandbox.id;
    try {
      const gateway = await api("GET", `/api/sandboxes/${sandbox.id}/gateway/`);
      if (!this.edited) this.editor.value = gateway.policy;
    } catch (error) {
      this.show([error.message]);
    }
  }

  async send(apply) {
    if (!this.sandboxId) return;
    this.result.replaceChildren(element("p", { class: "muted" }, apply ? "Applying…" : "Rendering…"));
    try {
      const answer = await api("POST", `/api/sandboxes/${this.sandboxId}/gateway/policy/`, {
        policy: this.editor.value,
        apply,
      });
      this.showDiff(answer, apply);
    } catch (error) {
      if (error instanceof ApiError && error.status === 400) {
        const lines = Object.entries(error.errors || {}).flatMap(([field, messages]) =>
          (Array.isArray(messages) ? messages : [messages]).map((message) => [field, message]));
        this.show(lines.length ? lines : [error.message]);
      } else {
        this.show([error.message]);
      }
    }
  }

  show(lines) {
    this.result.replaceChildren(refusalList(lines, "gateway-error", "gateway-field"));
  }

  showDiff(answer, applied) {
    const diff = (answer.diff || {}).gateway;
    let heading = "The generated configuration would not change.";
    if (applied) {
      heading = diff
        ? `Applied as version ${answer.version}: reloaded in ${answer.reload_ms} ms, no connection dropped.`
        : "Applied: the generated configuration is unchanged, nothing reloaded.";
    } else if (diff) {
      heading = "Preview: the gateway's configuration would change as below.";
    }
    const parts = [element("p", { class: "gateway-summary" }, heading)];
    if (diff) parts.push(diffDetails("gateway.cfg", diff, "gateway-diff", true));
    this.result.replaceChildren(...parts);
  }
}

const root = document.getElementById("gateway-panel");
if (root) new GatewayPanel(root);
