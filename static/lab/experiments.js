// One experiment's panel: a form generated from its declared parameters
// (int / float / choice / bool, with min, max and help), the run's progress,
// and its kept runs, any of which can be shown side by side for comparison.
// Bounds are checked in the browser first; the server's errors are shown next
// to the field they name ("params.items" or "items").

import { api } from "./api.js";
import { renderResult } from "./result.js";
import { errorElement } from "./words.js";

const MAX_COMPARED = 3;
// Over in a second or two: their results offer to play the run again, slowly.
const FAST_EXPERIMENTS = new Set(["poison-messages", "at-least-once", "crash", "failure", "duplicates"]);
const SLOW_SPEED = 0.25;
// Runs of this page's sandbox in flight, whichever panel (or tab) started them:
// one run at a time, so two experiments never mix their traces and figures.
const runsInFlight = new Set();
// How far each run has got, by id: queued < running < done/failed.
const RUN_STATE_RANK = { queued: 0, running: 1, done: 2, failed: 2 };
const runRanks = new Map();

/** Forget the runs in flight: a (re)connected socket tells them again at once. */
export function forgetRunsInFlight() {
  runsInFlight.clear();
}

function html(tag, attributes = {}, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === true) node.setAttribute(name, "");
    else if (value != null && value !== false) node.setAttribute(name, value);
  }
  if (text != null) node.textContent = text;
  return node;
}

function describeParams(params) {
  return Object.entries(params || {}).map(([key, value]) => `${key}=${value}`).join(", ");
}

/** What a run in flight is doing, in words ("Running (40%): replaying events"). */
function runningText(run) {
  if (run.state === "queued") return "Queued: waiting for the sandbox…";
  const percent = run.progress > 0 && run.progress < 1 ? ` (${Math.round(run.progress * 100)}%)` : "";
  const message = run.message && !["started", "done", "running"].includes(run.message) ? `: ${run.message}` : "…";
  return run.message === "done" ? `Running${percent}: finishing…` : `Running${percent}${message}`;
}

export class ExperimentPanel {
  /**
   * @param {HTMLElement} root - the lesson's experiment slot (or a fallback box)
   * @param {{name, title, summary, parameters}} experiment
   * @param {{readOnly: boolean}} options
   */
  constructor(root, experiment, { readOnly }) {
    this.root = root;
    this.experiment = experiment;
    this.readOnly = readOnly;
    this.sandbox = null;
    this.runs = []; // newest first
    this.compared = new Set();
    this.activeRun = null;
    this.fields = new Map();
    this.#build();
  }

  #build() {
    const { name, title, summary } = this.experiment;
    this.root.classList.add("experiment");
    this.root.dataset.experiment = name;
    const heading = html("h3", {}, `Experiment: ${title || name}`);
    this.root.replaceChildren(heading);
    if (summary) this.root.append(html("p", { class: "muted" }, summary));
    if (!this.readOnly) {
      this.form = this.#form();
      this.root.append(this.form);
    }
    // Focus comes here after Run, so a screen reader hears the run's progress.
    this.status = html("div", { class: "run-status", role: "status", tabindex: "-1", id: `run-status-${name}` });
    this.progress = html("progress", { max: "1", class: "run-progress", "aria-label": `${title || name} progress` });
    this.progress.hidden = true;
    this.history = html("fieldset", { class: "run-history" });
    this.history.hidden = true;
    this.compare = html("div", { class: "run-compare" });
    this.root.append(this.status, this.progress, this.history, this.compare);
    this.setSandbox(null);
  }

  #form() {
    const form = html("form", { class: "experiment-form", novalidate: true });
    for (const parameter of this.experiment.parameters || []) form.append(this.#field(parameter));
    this.submit = html("button", { type: "submit" }, "Run");
    const actions = html("div", { class: "field" });
    actions.append(this.submit);
    this.formError = html("p", { class: "field-error", role: "alert" });
    form.append(actions, this.formError);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#run();
    });
    return form;
  }

  #field(parameter) {
    const id = `param-${this.experiment.name}-${parameter.name}`;
    const wrapper = html("div", { class: "field", "data-param": parameter.name });
    const label = html("label", { for: id }, parameter.name.replaceAll("_", " "));
    let input;
    if (parameter.type === "choice") {
      input = html("select", { id, name: parameter.name });
      for (const choice of parameter.choices || []) {
        input.append(html("option", { value: String(choice), selected: choice === parameter.default }, String(choice)));
      }
    } else if (parameter.type === "bool") {
      input = html("input", { id, name: parameter.name, type: "checkbox", checked: Boolean(parameter.default) });
    } else {
      input = html("input", {
        id,
        name: parameter.name,
        type: "number",
        required: true,
        min: parameter.min,
        max: parameter.max,
        step: parameter.type === "int" ? "1" : "any",
        value: parameter.default,
        inputmode: parameter.type === "int" ? "numeric" : "decimal",
      });
    }
    const helpText = [parameter.help, parameter.min != null && parameter.max != null ? `${parameter.min}–${parameter.max}` : ""]
      .filter(Boolean)
      .join(" · ");
    const help = html("span", { class: "help", id: `${id}-help` }, helpText);
    const error = html("p", { class: "field-error", id: `${id}-error`, role: "alert" });
    input.setAttribute("aria-describedby", `${id}-help ${id}-error`);
    if (parameter.type === "bool") wrapper.append(input, " ", label, help, error);
    else wrapper.append(label, input, help, error);
    this.fields.set(parameter.name, { parameter, input, error });
    return wrapper;
  }

  /** Read the form into typed params; mark fields the browser can already tell are wrong. */
  #values() {
    const params = {};
    let valid = true;
    for (const [name, { parameter, input, error }] of this.fields) {
      error.textContent = "";
      input.removeAttribute("aria-invalid");
      if (parameter.type === "bool") {
        params[name] = input.checked;
        continue;
      }
      if (parameter.type === "choice") {
        const match = (parameter.choices || []).find((choice) => String(choice) === input.value);
        params[name] = match ?? input.value;
        continue;
      }
      const number = Number(input.value);
      let message = "";
      if (input.value.trim() === "" || !Number.isFinite(number)) message = "Enter a number.";
      else if (parameter.type === "int" && !Number.isInteger(number)) message = "Enter a whole number.";
      else if (parameter.min != null && number < parameter.min) message = `At least ${parameter.min}.`;
      else if (parameter.max != null && number > parameter.max) message = `At most ${parameter.max}.`;
      if (message) {
        valid = false;
        error.textContent = message;
        input.setAttribute("aria-invalid", "true");
      }
      params[name] = number;
    }
    return valid ? params : null;
  }

  #showServerErrors(apiError) {
    let placed = false;
    for (const [key, messages] of Object.entries(apiError.errors || {})) {
      const name = key.replace(/^params\./, "");
      const field = this.fields.get(name);
      const text = [].concat(messages).join(" ");
      if (field) {
        field.error.textContent = text;
        field.input.setAttribute("aria-invalid", "true");
        placed = true;
      } else {
        this.formError.textContent += `${key}: ${text} `;
      }
    }
    if (!placed && !this.formError.textContent) this.formError.textContent = apiError.message;
  }

  async #run() {
    this.formError.textContent = "";
    const params = this.#values();
    if (!params || !this.sandbox) return;
    this.submit.disabled = true;
    try {
      const run = await api("POST", `/api/sandboxes/${this.sandbox.id}/runs/`, {
        experiment: this.experiment.name,
        params,
      });
      this.activeRun = run.id;
      this.handleRun({ ...run, experiment: this.experiment.name, progress: 0, params });
      this.status.focus();
    } catch (error) {
      this.#showServerErrors(error);
      this.submit.disabled = !this.#canRun();
    }
  }

  #canRun() {
    return Boolean(this.sandbox && this.sandbox.state === "running");
  }

  /** The sandbox changed (started, running, ended): enable the form and load kept runs. */
  setSandbox(sandbox) {
    const previous = this.sandbox?.id;
    this.sandbox = sandbox;
    this.#updateSubmit();
    if (!this.activeRun && !this.runs.length) {
      this.status.textContent = this.#canRun() || this.readOnly ? "" : "Start the sandbox to run this experiment.";
    }
    if (sandbox && sandbox.id !== previous) this.loadRuns();
  }

  /** Load the kept runs (the API lists the owner's runs of this lesson through any of their sandboxes). */
  async loadRuns(sandboxId = this.sandbox?.id) {
    if (!sandboxId) return;
    try {
      const runs = await api("GET", `/api/sandboxes/${sandboxId}/runs/?experiment=${encodeURIComponent(this.experiment.name)}`);
      // Merge rather than replace: a run that just finished over the socket may
      // not be in a list the server answered a moment earlier.
      const finished = (runs || []).filter((run) => run.state === "done" || run.state === "failed");
      const known = new Map(this.runs.map((run) => [run.id, run]));
      for (const run of finished) known.set(run.id, { ...known.get(run.id), ...run });
      this.runs = [...known.values()].sort((a, b) => String(b.created_at || "~").localeCompare(String(a.created_at || "~")));
      if (!this.compared.size && this.runs.length) this.compared.add(this.runs[0].id);
      this.#drawHistory();
    } catch {
      // Kept runs are a convenience; the live run still shows.
    }
  }

  /** Ask the server where the active run is: a run message may have been lost while the socket was down. */
  async refreshActiveRun() {
    if (!this.activeRun || ["done", "failed"].includes(this.runState)) return;
    try {
      const run = await api("GET", `/api/runs/${this.activeRun}/`);
      this.handleRun({ ...run, experiment: run.experiment || this.experiment.name });
    } catch {
      // The socket will still bring the next state.
    }
  }

  #updateSubmit() {
    if (!this.submit) return;
    const busy = runsInFlight.size > 0;
    this.submit.disabled = !this.#canRun() || busy;
    if (!this.#canRun()) this.submit.title = "Start the sandbox first.";
    else if (busy) this.submit.title = "A run is in progress; one run at a time.";
    else this.submit.title = "";
  }

  /** A `run` message (or our own POST's answer) for this experiment. */
  handleRun(run) {
    if (!run) return;
    // Messages about one run come from several places (the POST's answer, the
    // supervisor, the worker, a reconnect's snapshot) and can cross: a run's
    // state only moves forward, so a late "queued" never undoes a "done".
    const rank = RUN_STATE_RANK[run.state] ?? 0;
    if (run.id && (runRanks.get(run.id) ?? -1) > rank) return;
    if (run.id) runRanks.set(run.id, rank);
    if (run.state === "done" || run.state === "failed") runsInFlight.delete(run.id);
    else if (run.id) runsInFlight.add(run.id);
    this.#updateSubmit();
    if (run.experiment !== this.experiment.name) return;
    this.runState = run.state;
    const finished = run.state === "done" || run.state === "failed";
    this.root.dataset.runState = run.state;
    this.progress.hidden = finished;
    if (!finished) {
      // A run started in another tab (or before a reload) is this panel's run too.
      this.activeRun = run.id;
      if (run.progress > 0) this.progress.value = run.progress;
      else this.progress.removeAttribute("value");
      this.status.textContent = runningText(run);
      return;
    }
    if (run.state === "failed") {
      this.status.replaceChildren("Run failed: ", errorElement(run.error || run.message || "no reason given", this.sandbox?.services));
    } else {
      this.status.textContent = "";
    }
    if (run.state === "done" && run.id !== this.announced) {
      // The lesson's run checkpoints listen for this and ask the server whether they passed.
      this.announced = run.id;
      const detail = { experiment: run.experiment, run: run.id };
      document.body.dispatchEvent(new CustomEvent("lab:run-done", { detail }));
      // One event name per experiment, so htmx triggers need no filter expression
      // (htmx evaluates those with eval, which the Content-Security-Policy forbids).
      document.body.dispatchEvent(new CustomEvent(`lab:run-done-${run.experiment}`, { detail }));
    }
    if (run.result || run.state === "failed") {
      const kept = this.runs.find((item) => item.id === run.id);
      if (kept) Object.assign(kept, run);
      else this.runs.unshift(run);
      // A fresh result replaces the oldest compared one, keeping the learner's picks.
      this.compared.add(run.id);
      while (this.compared.size > MAX_COMPARED) this.compared.delete([...this.compared].find((id) => id !== run.id));
      this.#drawHistory();
    }
    this.loadRuns();
  }

  /** Tell the page which runs this panel knows (the trace picker names runs by them). */
  #announceRuns() {
    const runs = this.runs.map((run, index) => ({ ...run, experiment: run.experiment || this.experiment.name, number: this.runs.length - index }));
    document.dispatchEvent(new CustomEvent("lab:runs", { detail: { runs } }));
  }

  /**
   * The compared runs' headline figures side by side, one column a run: the
   * results themselves stack below at full width, where their charts and
   * tables stay readable; this is where the numbers are compared.
   */
  #figuresTable(runs) {
    const labels = [];
    for (const run of runs) {
      for (const item of run.result?.summary || []) if (!labels.includes(item.label)) labels.push(item.label);
    }
    if (!labels.length) return null;
    const wrapper = html("div", { class: "table-scroll compare-figures", tabindex: "0", role: "region", "aria-label": "Compared runs, figure by figure" });
    const table = html("table", { class: "result-table" });
    table.append(html("caption", {}, "Compared runs"));
    const head = html("tr");
    head.append(html("th", { scope: "col" }, "figure"));
    for (const run of runs) {
      head.append(html("th", { scope: "col", class: "num" }, `#${this.runs.length - this.runs.indexOf(run)} · ${describeParams(run.params)}`));
    }
    const thead = html("thead");
    thead.append(head);
    const body = html("tbody");
    for (const label of labels) {
      const row = html("tr");
      row.append(html("th", { scope: "row" }, label));
      for (const run of runs) {
        const item = (run.result?.summary || []).find((entry) => entry.label === label);
        const text = item == null ? "—" : `${typeof item.value === "number" ? item.value.toLocaleString("en") : String(item.value)}${item.unit ? ` ${item.unit}` : ""}`;
        row.append(html("td", { class: "num" }, text));
      }
      body.append(row);
    }
    table.append(thead, body);
    wrapper.append(table);
    return wrapper;
  }

  #replayButtons(run, title) {
    const actions = html("div", { class: "result-actions" });
    const replay = html("button", { type: "button", class: "small secondary", "data-replay": run.id }, "Replay in the trace");
    replay.addEventListener("click", () => this.#replay(run, title, 1));
    actions.append(replay);
    if (FAST_EXPERIMENTS.has(this.experiment.name)) {
      const slowly = html("button", { type: "button", class: "small", "data-replay-slowly": run.id }, "Watch it again slowly");
      slowly.addEventListener("click", () => this.#replay(run, title, SLOW_SPEED));
      actions.append(slowly);
    }
    if (!this.readOnly) {
      const link = html("a", { href: `/api/runs/${run.id}/trace/`, download: `run-${run.id}-otlp.json`, class: "small-link" }, "Export trace (OTLP JSON)");
      actions.append(link);
    }
    return actions;
  }

  #replay(run, title, speed) {
    document.dispatchEvent(new CustomEvent("lab:replay-run", { detail: { run, label: title, speed } }));
  }

  #historyItems() {
    return this.runs.map((run, index) => {
      const number = this.runs.length - index;
      const id = `run-${run.id}`;
      const label = html("label", { for: id });
      const box = html("input", { type: "checkbox", id, checked: this.compared.has(run.id) });
      box.addEventListener("change", () => {
        if (box.checked) this.compared.add(run.id);
        else this.compared.delete(run.id);
        while (this.compared.size > MAX_COMPARED) this.compared.delete(this.compared.values().next().value);
        this.#drawHistory();
      });
      const when = run.finished_at || run.created_at;
      label.append(box, ` #${number} ${when ? new Date(when).toLocaleTimeString() : ""} ${describeParams(run.params)}${run.state === "failed" ? " (failed)" : ""}`);
      return label;
    });
  }

  #drawHistory() {
    this.#announceRuns();
    this.history.hidden = !this.runs.length;
    // The same run is told of several times (the POST's answer, the socket, the
    // list fetched after it ends): redraw only what changed, so an open "More
    // data", a text selection or the focused checkbox survives a repeat.
    const historyKey = JSON.stringify([this.runs.map((run) => [run.id, run.state, run.finished_at, run.created_at]), [...this.compared]]);
    if (historyKey !== this.historyKey) {
      this.historyKey = historyKey;
      const focused = this.history.contains(document.activeElement) ? document.activeElement.id : null;
      this.history.replaceChildren(html("legend", {}, "Runs (pick up to 3 to compare)"), ...this.#historyItems());
      if (focused) document.getElementById(focused)?.focus();
    }
    const shown = this.runs.filter((run) => this.compared.has(run.id));
    const compareKey = JSON.stringify(shown.map((run) => [run.id, run.state, this.runs.indexOf(run), this.runs.length, Boolean(run.result)]));
    if (compareKey === this.compareKey) return;
    this.compareKey = compareKey;
    this.compare.dataset.count = String(shown.length);
    const figures = shown.length > 1 ? this.#figuresTable(shown) : null;
    this.compare.replaceChildren(
      ...(figures ? [figures] : []),
      ...shown.map((run) => {
        const number = this.runs.length - this.runs.indexOf(run);
        const title = `Run #${number} · ${describeParams(run.params)}`;
        const label = `${this.experiment.name} · ${describeParams(run.params)} (run #${number})`;
        if (run.state === "failed" && !run.result) {
          const article = html("article", { class: "result is-failed", "data-ok": "false" });
          const headline = html("p", { class: "result-headline" });
          headline.append(errorElement(run.error || "The run failed.", this.sandbox?.services));
          article.append(html("h4", { class: "result-title" }, title), headline, this.#replayButtons(run, label));
          article.dataset.runId = run.id;
          return article;
        }
        const article = renderResult(run.result, { title, services: this.sandbox?.services });
        article.dataset.runId = run.id;
        article.append(this.#replayButtons(run, label));
        return article;
      }),
    );
  }
}
