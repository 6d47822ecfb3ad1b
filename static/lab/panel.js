// The lesson page's live panel: wires the sandbox controls, the experiment
// panels, the metrics gauges and the trace view to the sandbox's WebSocket.
// Everything the server knows at render time comes in the #lab-config
// json_script; everything after that comes over the socket.

import { api } from "./api.js";
import { ExperimentPanel, forgetRunsInFlight } from "./experiments.js";
import { MetricsView } from "./metrics.js";
import { lightLiveStates } from "./saga-machine.js";
import { SandboxPanel, isEnded } from "./sandbox.js";
import { SandboxSocket } from "./socket.js";
import { TraceView } from "./trace.js";

function start() {
  const configElement = document.getElementById("lab-config");
  if (!configElement) return;
  const config = JSON.parse(configElement.textContent);
  const readOnly = Boolean(config.readOnly);

  const lifelines = JSON.parse(document.getElementById("lab-lifelines")?.textContent || "[]");
  const trace = new TraceView(document.getElementById("trace-view"), { lifelines: config.lesson.lifelines || lifelines });
  // Lessons without gauges never show the metrics section.
  const metrics = new MetricsView(document.getElementById("metrics-view"), {
    section: document.getElementById("metrics-section"),
  });
  const connection = document.getElementById("connection-status");
  const experiments = (config.lesson.experiments || []).map((experiment) => {
    // The lesson text places an experiment with a slot; one without a slot goes to the panel.
    let slot = document.querySelector(`.experiment-slot[data-experiment="${CSS.escape(experiment.name)}"]`);
    if (!slot) {
      slot = document.createElement("div");
      document.getElementById("unplaced-experiments")?.append(slot);
    }
    return new ExperimentPanel(slot, experiment, { readOnly });
  });

  let socket = null;
  let watchedId = null;

  const sandboxPanel = new SandboxPanel(document.getElementById("sandbox-panel"), {
    lesson: config.lesson.slug,
    readOnly,
    signedIn: config.signedIn !== false,
    onSandbox: (sandbox) => watch(sandbox),
  });

  let connectedBefore = false;
  function setConnection(status) {
    if (status === "live") {
      forgetRunsInFlight(); // the consumer sends the runs in flight right after connecting
      for (const panel of experiments) panel.setSandbox(sandboxPanel.sandbox);
      // Spans are replayed from `since`; run states are not, so ask for them.
      if (connectedBefore) for (const panel of experiments) panel.refreshActiveRun();
      connectedBefore = true;
    }
    if (!connection) return;
    connection.textContent = status === "live" ? "live" : status;
    connection.className = `state-badge state-${status === "live" ? "running" : status === "closed" ? "stopped" : "starting"}`;
    document.body.dataset.socket = status;
  }

  function onMessage(message) {
    switch (message.type) {
      case "spans":
        trace.addSpans(message.items || []);
        break;
      case "sandbox":
        sandboxPanel.update(message.sandbox);
        for (const panel of experiments) panel.setSandbox(sandboxPanel.sandbox);
        document.dispatchEvent(new CustomEvent("lab:sandbox", { detail: sandboxPanel.sandbox }));
        if (isEnded(sandboxPanel.sandbox)) {
          socket?.close();
          socket = null;
        }
        break;
      case "run":
        trace.describeRun(message.run);
        for (const panel of experiments) panel.handleRun(message.run);
        break;
      case "metrics":
        metrics.update(message.metrics || {}, message.source ?? "");
        // A lesson's own widgets (the mesh's breakers and graph) listen for these.
        document.dispatchEvent(new CustomEvent("lab:metrics", { detail: message }));
        // The saga lesson counts open sagas per coordinator state: light them on its machines.
        if (message.metrics?.coordinator_states && typeof message.metrics.coordinator_states === "object") {
          lightLiveStates(message.metrics.coordinator_states);
        }
        break;
      default:
        break; // pong and future types
    }
  }

  /** Follow one sandbox over the socket (a new sandbox starts a fresh trace). */
  function watch(sandbox) {
    for (const panel of experiments) panel.setSandbox(sandbox);
    document.dispatchEvent(new CustomEvent("lab:sandbox", { detail: sandbox }));
    if (!sandbox || isEnded(sandbox)) return;
    if (sandbox.id !== watchedId) {
      socket?.close();
      trace.clear();
      watchedId = sandbox.id;
      socket = null;
    }
    if (!socket) {
      socket = new SandboxSocket(sandbox.id, { onMessage, lastSeq: () => trace.lastSeq, onStatus: setConnection });
    }
  }

  sandboxPanel.update(config.sandbox);
  watch(config.sandbox);
  if (!config.sandbox || isEnded(config.sandbox)) {
    // With no sandbox running, the runs kept from the last one are still there to compare.
    for (const panel of experiments) panel.loadRuns(config.historySandbox);
  }
  // The experiment panels name their runs; the trace picker lists runs by those names.
  document.addEventListener("lab:runs", (event) => {
    for (const run of event.detail.runs || []) trace.describeRun(run);
  });
  // "Replay in the trace" / "Watch it again slowly" on a result: its kept spans, in the live view.
  document.addEventListener("lab:replay-run", async (event) => {
    const { run, label, speed } = event.detail;
    try {
      const kept = await api("GET", `/api/runs/${run.id}/spans/`);
      trace.replay(kept.spans || [], { label, speed });
    } catch (error) {
      trace.replay([], { label });
    }
    const view = document.getElementById("trace-view");
    view.scrollIntoView({ behavior: "smooth", block: "nearest" });
    view.querySelector(".replay-bar")?.focus({ preventScroll: true });
  });
  // A saga step (or anything else) can ask to show its span in the trace view.
  document.addEventListener("lab:select-span", (event) => {
    trace.selectSpan(event.detail.spanId);
    document.getElementById("trace-view").scrollIntoView({ behavior: "smooth", block: "nearest" });
  });
  // A lesson widget (the mesh graph's edges) can filter the trace to the calls it names.
  document.addEventListener("lab:filter-trace", (event) => {
    trace.setFilter(event.detail);
    if (event.detail?.spanId) trace.selectSpan(event.detail.spanId);
    document.getElementById("trace-view").scrollIntoView({ behavior: "smooth", block: "nearest" });
  });
  // A hook for browser tests and for curious learners in the console.
  window.lab = { trace, metrics, sandboxPanel, experiments, socket: () => socket };
}

start();
