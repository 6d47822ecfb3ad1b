// Draws a saga result (`result.saga`): a lane per service with the forward
// steps, the failure and the compensations on one time axis; the
// coordinator's state machine with the current state lit; the invariants.
// Any result with a `saga` key gets this drawing, whichever lesson made it.

const SVG_NS = "http://www.w3.org/2000/svg";
const LANE_HEIGHT = 40;
const LABEL_WIDTH = 110;
const WIDTH = 640;

function el(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text != null) node.textContent = text;
  return node;
}

function html(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

function timeline(entries) {
  const steps = entries.filter((entry) => entry && entry.service);
  const lanes = [];
  for (const step of steps) if (!lanes.includes(step.service)) lanes.push(step.service);
  const start = Math.min(...steps.map((step) => Number(step.start_ns)));
  const end = Math.max(...steps.map((step) => Number(step.end_ns ?? step.start_ns)));
  const span = Math.max(1, end - start);
  const plot = WIDTH - LABEL_WIDTH - 10;
  const x = (ns) => LABEL_WIDTH + ((Number(ns) - start) / span) * plot;
  const height = lanes.length * LANE_HEIGHT + 24;
  const svg = el("svg", { class: "saga-timeline", viewBox: `0 0 ${WIDTH} ${height}`, role: "img" });
  svg.append(el("title", {}, "Saga steps per service over time"));
  lanes.forEach((lane, index) => {
    const y = index * LANE_HEIGHT;
    svg.append(el("rect", { class: `saga-lane lane-${index % 2}`, x: 0, y, width: WIDTH, height: LANE_HEIGHT }));
    svg.append(el("text", { class: "saga-lane-label", x: 6, y: y + 25 }, lane));
  });
  steps.forEach((step, order) => {
    const y = lanes.indexOf(step.service) * LANE_HEIGHT;
    const left = x(step.start_ns);
    const width = Math.max(6, x(step.end_ns ?? step.start_ns) - left);
    const kind = ["forward", "compensation", "failure"].includes(step.kind) ? step.kind : "forward";
    const group = el("g", { class: `saga-step saga-${kind}`, "data-kind": kind, "data-step": step.step ?? "" });
    // The label sits above its bar in ink, so it stays readable however short the step was.
    group.append(el("rect", { x: left, y: y + 20, width, height: 14, rx: 3 }));
    const mark = kind === "failure" ? "✕ " : kind === "compensation" ? "↶ " : "";
    const labelX = Math.min(left, WIDTH - 120);
    group.append(el("text", { x: labelX, y: y + 15 }, `${order + 1}. ${mark}${step.step ?? ""}`));
    group.append(el("title", {}, `${step.service} ${step.step} (${kind}, ${step.status ?? ""}) ${((Number(step.end_ns) - Number(step.start_ns)) / 1e6).toFixed(1)} ms`));
    svg.append(group);
  });
  svg.append(el("text", { class: "tick", x: LABEL_WIDTH, y: height - 6 }, "0 ms"));
  svg.append(el("text", { class: "tick", x: WIDTH - 10, y: height - 6, "text-anchor": "end" }, `${(span / 1e6).toFixed(1)} ms`));
  return svg;
}

function stateMachine(states, current) {
  const list = html("ol", "saga-states");
  list.setAttribute("aria-label", "Coordinator states");
  for (const state of states) {
    const name = typeof state === "string" ? state : state?.name ?? String(state);
    const item = html("li", name === current ? "saga-state is-current" : "saga-state", name);
    if (name === current) item.setAttribute("aria-current", "step");
    list.append(item);
  }
  if (current && !states.some((state) => (state?.name ?? state) === current)) {
    list.append(html("li", "saga-state is-current", current));
  }
  return list;
}

function invariants(items) {
  const list = html("ul", "saga-invariants");
  for (const item of items) {
    const entry = html("li", item.ok ? "invariant ok" : "invariant failed");
    entry.append(html("span", "invariant-mark", item.ok ? "✓" : "✕"), html("strong", null, ` ${item.name} `));
    if (item.detail) entry.append(html("span", "muted", String(item.detail)));
    list.append(entry);
  }
  return list;
}

/** Return a <section> drawing the saga, or null when there is nothing to draw. */
export function renderSaga(saga) {
  if (!saga || typeof saga !== "object") return null;
  const section = html("section", "saga");
  section.append(html("h4", null, "Saga"));
  if (Array.isArray(saga.timeline) && saga.timeline.length) {
    section.append(timeline(saga.timeline));
    const key = html("p", "saga-key");
    key.innerHTML = '<span class="saga-forward">forward</span> <span class="saga-failure">✕ failure</span> <span class="saga-compensation">↶ compensation</span>';
    section.append(key);
  }
  if (Array.isArray(saga.states) && saga.states.length) {
    section.append(html("h5", null, "Coordinator"), stateMachine(saga.states, saga.current_state));
  }
  if (Array.isArray(saga.invariants) && saga.invariants.length) {
    section.append(html("h5", null, "Invariants"), invariants(saga.invariants));
  }
  return section;
}
