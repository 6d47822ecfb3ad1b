// Draws a saga result (`result.saga`): a lane per service with the forward
// steps, the failure and the compensations on one time axis; the
// coordinator's state machine with the current state lit; the invariants.
// Any result with a `saga` key gets this drawing, whichever lesson made it.

const SVG_NS = "http://www.w3.org/2000/svg";
const LANE_HEIGHT = 46;
const LABEL_CHAR_WIDTH = 5.6; // about one character at 10px, to keep labels from overlapping
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

function timeline(entries, laneOrder) {
  const steps = entries.filter((entry) => entry && entry.service);
  // The experiment may name the lanes (a coordinator lane with nothing in it
  // still says "no coordinator here"); otherwise lanes come in order of first step.
  const lanes = Array.isArray(laneOrder) ? [...laneOrder] : [];
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
    svg.append(el("text", { class: "saga-lane-label", x: 6, y: y + 36 }, lane));
  });
  const labelEnds = new Map(); // lane -> [end x of the lower label row, of the upper row]
  steps.forEach((step, order) => {
    const y = lanes.indexOf(step.service) * LANE_HEIGHT;
    const left = x(step.start_ns);
    const width = Math.max(6, x(step.end_ns ?? step.start_ns) - left);
    const kind = ["forward", "compensation", "failure"].includes(step.kind) ? step.kind : "forward";
    const group = el("g", { class: `saga-step saga-${kind}`, "data-kind": kind, "data-step": step.step ?? "" });
    if (step.span_id) {
      // Clicking a step shows the span that did it in the trace view (panel.js listens).
      group.setAttribute("data-span-id", step.span_id);
      group.setAttribute("tabindex", "0");
      group.setAttribute("role", "button");
      const show = () => group.dispatchEvent(new CustomEvent("lab:select-span", { bubbles: true, detail: { spanId: step.span_id } }));
      group.addEventListener("click", show);
      group.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") show();
      });
    }
    // The label sits above its bar in ink, so it stays readable however short
    // the step was; when it would run into the previous label it moves up a row.
    group.append(el("rect", { x: left, y: y + 26, width, height: 14, rx: 3 }));
    const mark = kind === "failure" ? "✕ " : kind === "compensation" ? "↶ " : "";
    const text = `${order + 1}. ${mark}${step.step ?? ""}`;
    const labelX = Math.min(left, WIDTH - text.length * LABEL_CHAR_WIDTH);
    const ends = labelEnds.get(step.service) || [-Infinity, -Infinity];
    const row = labelX >= ends[0] ? 0 : labelX >= ends[1] ? 1 : ends[0] <= ends[1] ? 0 : 1;
    ends[row] = labelX + text.length * LABEL_CHAR_WIDTH + 4;
    labelEnds.set(step.service, ends);
    group.append(el("text", { x: labelX, y: y + (row === 0 ? 22 : 11) }, text));
    const took = ((Number(step.end_ns) - Number(step.start_ns)) / 1e6).toFixed(1);
    group.append(el("title", {}, `${step.service} ${step.step} (${kind}, ${step.status ?? ""}) ${took} ms${step.detail ? ` — ${step.detail}` : ""}`));
    svg.append(group);
  });
  svg.append(el("text", { class: "tick", x: LABEL_WIDTH, y: height - 6 }, "0 ms"));
  svg.append(el("text", { class: "tick", x: WIDTH - 10, y: height - 6, "text-anchor": "end" }, `${(span / 1e6).toFixed(1)} ms`));
  return svg;
}

const stateName = (state) => (typeof state === "string" ? state : state?.name ?? String(state));

/** Every state of the machine in drawing order; those this saga passed through marked, the current one lit. */
function stateMachine(allStates, visited, current) {
  const list = html("ol", "saga-states");
  list.setAttribute("aria-label", "Coordinator states");
  const names = allStates.map(stateName);
  if (current && !names.includes(current)) names.push(current);
  const path = visited.map(stateName);
  for (const name of names) {
    const classes = ["saga-state"];
    const order = path.indexOf(name);
    if (order >= 0) classes.push("is-visited");
    if (name === current) classes.push("is-current");
    const item = html("li", classes.join(" "));
    // The machine branches, so the chips carry no arrows; the order this saga took is numbered.
    if (order >= 0) item.append(html("span", "saga-state-order", String(order + 1)));
    item.append(name);
    if (name === current) item.setAttribute("aria-current", "step");
    list.append(item);
  }
  const wrapper = html("div", "saga-machine");
  wrapper.append(list);
  if (path.length) wrapper.append(html("p", "saga-path", `Path: ${path.join(" → ")}`));
  return wrapper;
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
  const title = ["Saga", saga.mode ? `(${saga.mode})` : "", saga.saga_id ? `· ${String(saga.saga_id).slice(0, 8)}` : ""];
  section.append(html("h4", null, title.filter(Boolean).join(" ")));
  if (Array.isArray(saga.timeline) && saga.timeline.length) {
    section.append(timeline(saga.timeline, saga.lanes));
    const key = html("p", "saga-key");
    key.innerHTML = '<span class="saga-forward">forward</span> <span class="saga-failure">✕ failure</span> <span class="saga-compensation">↶ compensation</span>';
    section.append(key);
  }
  const machine = Array.isArray(saga.state_machine) && saga.state_machine.length ? saga.state_machine : saga.states;
  if (Array.isArray(machine) && machine.length) {
    section.append(html("h5", null, "Coordinator"));
    if (saga.current_state == null && saga.mode === "choreography") {
      section.append(html("p", "muted", "Choreography has no coordinator: each service reacts to the others' events."));
    } else {
      section.append(stateMachine(machine, saga.states || [], saga.current_state));
    }
  }
  if (Array.isArray(saga.invariants) && saga.invariants.length) {
    section.append(html("h5", null, "Invariants"), invariants(saga.invariants));
  }
  return section;
}
