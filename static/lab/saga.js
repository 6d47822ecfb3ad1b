// Draws saga results: one view per saga the run features (`result.sagas`;
// happy path and failure run one saga each way), side by side when there is
// room and one above the other when not, on a shared time scale so the two
// modes' durations compare at a glance. Each view has a lane per service with
// the forward steps, failures, compensations and process downtime; the
// coordinator's state machine; the invariants. A saga the run left running is
// marked as such, never as a success.
// Any result with a `saga` or `sagas` key gets this drawing, whichever lesson made it.

import { stateGraph, stateName } from "./saga-machine.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const LANE_LABEL_WIDTH = 90;
const BAR_HEIGHT = 14;
const LABEL_ROW_HEIGHT = 14;
const MAX_LABEL_ROWS = 4;
const LABEL_CHAR_WIDTH = 7.4; // about one bold character at 12px, to keep labels apart and inside
const KINDS = ["forward", "compensation", "failure"];
// Statuses after which nothing was applied: drawn hollow, so the eye counts real effects.
const NOTHING_APPLIED = new Set(["duplicate", "noop", "refused"]);
const FINAL_STATES = new Set(["APPROVED", "REJECTED"]);

let patternCount = 0; // keeps each drawing's hatch pattern id unique on the page

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

/** A process that was down (killed, then started again) rather than a step it took. */
const isDowntime = (entry) => entry.status === "killed" || (entry.kind === "failure" && entry.step === "process");

function entriesOf(view) {
  return (Array.isArray(view?.timeline) ? view.timeline : []).filter((entry) => entry && entry.service);
}

function extentOf(entries) {
  const start = Math.min(...entries.map((entry) => Number(entry.start_ns)));
  const end = Math.max(...entries.map((entry) => Number(entry.end_ns ?? entry.start_ns)));
  return { start, end };
}

const milliseconds = (ns) => `${(ns / 1e6).toFixed(ns < 1e7 ? 1 : 0)} ms`;

function selectable(group, spanId) {
  // Clicking a step shows the span that did it in the trace view (panel.js listens).
  group.setAttribute("data-span-id", spanId);
  group.setAttribute("tabindex", "0");
  group.setAttribute("role", "button");
  const show = () => group.dispatchEvent(new CustomEvent("lab:select-span", { bubbles: true, detail: { spanId } }));
  group.addEventListener("click", show);
  group.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      show();
    }
  });
}

/**
 * Give each label a row above its lane's bars: the lowest row where it does
 * not run into the label before it, so short steps close together stay readable.
 */
function placeLabels(items) {
  const rowEnds = new Map(); // lane -> [end x of each label row, lowest first]
  for (const item of items) {
    const ends = rowEnds.get(item.lane) || [];
    let row = ends.findIndex((end) => end <= item.labelX);
    if (row < 0 && ends.length < MAX_LABEL_ROWS) row = ends.length;
    if (row < 0) row = ends.indexOf(Math.min(...ends));
    ends[row] = item.labelX + item.text.length * LABEL_CHAR_WIDTH + 4;
    rowEnds.set(item.lane, ends);
    item.row = row;
  }
  return new Map([...rowEnds].map(([lane, ends]) => [lane, ends.length]));
}

/**
 * Draw one saga's lanes.
 * @param {object[]} entries - timeline entries
 * @param {string[]} laneOrder - lanes the experiment named, top to bottom
 * @param {number} spanNs - the time the axis covers (shared by the views of one result)
 */
function timeline(entries, laneOrder, spanNs) {
  // The experiment may name the lanes (a coordinator lane with nothing in it
  // still says "no coordinator here"); otherwise lanes come in order of first step.
  const lanes = Array.isArray(laneOrder) ? [...laneOrder] : [];
  for (const entry of entries) if (!lanes.includes(entry.service)) lanes.push(entry.service);
  const { start, end } = extentOf(entries);
  const span = Math.max(1, spanNs ?? end - start);
  const plot = WIDTH - LANE_LABEL_WIDTH - 10;
  const x = (ns) => LANE_LABEL_WIDTH + ((Number(ns) - start) / span) * plot;

  const steps = entries
    .filter((entry) => !isDowntime(entry))
    .map((entry, index) => {
      const kind = KINDS.includes(entry.kind) ? entry.kind : "forward";
      const status = entry.status ?? "";
      const mark = kind === "failure" ? "✕ " : kind === "compensation" ? "↶ " : "";
      // "refused" is what a failure usually is; any other status is worth reading.
      const note = status && status !== "done" && !(kind === "failure" && status === "refused") ? ` · ${status}` : "";
      const text = `${index + 1}. ${mark}${entry.step ?? ""}${note}`;
      const left = x(entry.start_ns);
      return {
        entry,
        kind,
        status,
        text,
        order: index + 1,
        lane: entry.service,
        left,
        width: Math.max(6, x(entry.end_ns ?? entry.start_ns) - left),
        labelX: Math.min(left, WIDTH - text.length * LABEL_CHAR_WIDTH),
      };
    });
  const labelRows = placeLabels(steps);
  const laneTop = new Map();
  const laneRows = new Map();
  let height = 0;
  for (const lane of lanes) {
    const rows = Math.max(2, labelRows.get(lane) ?? 0);
    laneTop.set(lane, height);
    laneRows.set(lane, rows);
    height += rows * LABEL_ROW_HEIGHT + BAR_HEIGHT + 10;
  }
  const barY = (lane) => laneTop.get(lane) + laneRows.get(lane) * LABEL_ROW_HEIGHT + 4;
  const laneHeight = (lane) => laneRows.get(lane) * LABEL_ROW_HEIGHT + BAR_HEIGHT + 10;

  // A group, not an image: its steps are buttons (each opens its span in the trace).
  const svg = el("svg", {
    class: "saga-timeline",
    viewBox: `0 0 ${WIDTH} ${height + 24}`,
    role: "group",
    "aria-label": "Saga steps per service over time",
  });
  svg.append(el("title", {}, "Saga steps per service over time"));
  const hatch = `saga-hatch-${++patternCount}`;
  const defs = el("defs");
  const pattern = el("pattern", { id: hatch, width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" });
  pattern.append(el("line", { x1: 0, y1: 0, x2: 0, y2: 6, class: "saga-hatch-line" }));
  defs.append(pattern);
  svg.append(defs);
  lanes.forEach((lane, index) => {
    const y = laneTop.get(lane);
    svg.append(el("rect", { class: `saga-lane lane-${index % 2}`, x: 0, y, width: WIDTH, height: laneHeight(lane), "data-lane": lane }));
    svg.append(el("text", { class: "saga-lane-label", x: 6, y: barY(lane) + 10 }, lane));
  });

  // Downtime goes first so the steps around it are drawn on top; it fills its lane.
  for (const entry of entries.filter(isDowntime)) {
    const y = laneTop.get(entry.service);
    const left = x(entry.start_ns);
    const width = Math.max(4, x(entry.end_ns ?? entry.start_ns) - left);
    const took = Number(entry.end_ns) - Number(entry.start_ns);
    const group = el("g", {
      class: "saga-downtime",
      "data-kind": "downtime",
      "data-service": entry.service,
      "data-status": entry.status ?? "",
      "data-start-ns": String(entry.start_ns),
      "data-end-ns": String(entry.end_ns ?? entry.start_ns),
    });
    group.append(el("rect", { x: left, y: y + 2, width, height: laneHeight(entry.service) - 4, fill: `url(#${hatch})`, class: "saga-downtime-bar" }));
    group.append(el("text", { x: Math.min(left + 3, WIDTH - 110), y: y + 13 }, `${entry.status || "down"} · down ${milliseconds(took)}`));
    group.append(el("title", {}, `${entry.service} ${entry.status ?? "down"}: ${entry.detail || ""} (${milliseconds(took)})`));
    svg.append(group);
  }

  const hits = el("g", { class: "saga-hits" });
  svg.append(hits);
  for (const step of steps) {
    const { entry, kind, status } = step;
    const classes = ["saga-step", `saga-${kind}`];
    if (NOTHING_APPLIED.has(status) && kind !== "failure") classes.push("is-empty");
    const group = el("g", {
      class: classes.join(" "),
      "data-kind": kind,
      "data-step": entry.step ?? "",
      "data-service": entry.service,
      "data-status": status,
      "data-order": String(step.order),
      "data-start-ns": String(entry.start_ns),
    });
    if (entry.span_id) selectable(group, entry.span_id);
    const labelY = laneTop.get(step.lane) + (laneRows.get(step.lane) - step.row) * LABEL_ROW_HEIGHT;
    if (entry.span_id) {
      // A target under every label and bar covers the gap between a label and its
      // bar; it lies beneath all of them so a label or bar always picks its own step.
      const hitLeft = Math.min(step.left, step.labelX);
      const hitRight = Math.max(step.left + step.width, step.labelX + step.text.length * LABEL_CHAR_WIDTH);
      const hit = el("rect", { class: "saga-hit", x: hitLeft, y: labelY - LABEL_ROW_HEIGHT, width: hitRight - hitLeft, height: barY(step.lane) + BAR_HEIGHT - labelY + LABEL_ROW_HEIGHT });
      hit.addEventListener("click", () => group.dispatchEvent(new MouseEvent("click", { bubbles: false })));
      hits.append(hit);
    }
    // The label sits above its bar in ink, so it stays readable however short the step was.
    group.append(el("rect", { class: "saga-bar", x: step.left, y: barY(step.lane), width: step.width, height: BAR_HEIGHT, rx: 3 }));
    group.append(el("text", { x: step.labelX, y: labelY }, step.text));
    const took = milliseconds(Number(entry.end_ns) - Number(entry.start_ns));
    group.append(el("title", {}, `${entry.service} ${entry.step} (${kind}, ${status}) ${took}${entry.detail ? ` — ${entry.detail}` : ""}`));
    svg.append(group);
  }
  svg.append(el("text", { class: "tick", x: LANE_LABEL_WIDTH, y: height + 16 }, "0 ms"));
  svg.append(el("text", { class: "tick", x: WIDTH - 10, y: height + 16, "text-anchor": "end" }, milliseconds(span)));
  return svg;
}

/**
 * Return how a saga ended: running, approved, rejected or unfinished.
 * @param {string[]|null} runningIds - sagas of this mode the run left running (null: not reported)
 */
export function sagaOutcome(view, runningIds) {
  if (runningIds?.includes(view.saga_id)) return "running";
  if (FINAL_STATES.has(view.current_state)) return view.current_state.toLowerCase();
  const entries = entriesOf(view).filter((entry) => entry.service !== "coordinator");
  if (entries.some((entry) => entry.step === "approve" && entry.status === "done")) return "approved";
  // The run says this saga is not running, so it ended; without an approval that is a rejection.
  if (runningIds) return "rejected";
  if (entries.some((entry) => entry.step === "reject" && entry.status === "done")) return "rejected";
  return "unfinished";
}

const OUTCOME_TEXT = {
  running: "still running",
  approved: "approved",
  rejected: "rejected",
  unfinished: "unfinished",
};

function stateChips(allStates, path, current) {
  // Without transitions to draw, a numbered list of the states is what we can honestly show.
  const list = html("ol", "saga-states");
  list.setAttribute("aria-label", "Coordinator states");
  const names = allStates.map(stateName);
  if (current && !names.includes(current)) names.push(current);
  for (const name of names) {
    const order = path.indexOf(name);
    const item = html("li", ["saga-state", order >= 0 ? "is-visited" : "", name === current ? "is-current" : ""].filter(Boolean).join(" "));
    if (order >= 0) item.append(html("span", "saga-state-order", String(order + 1)));
    item.append(name);
    if (name === current) item.setAttribute("aria-current", "step");
    item.dataset.state = name;
    list.append(item);
  }
  return list;
}

function coordinator(view) {
  const wrapper = html("div", "saga-machine");
  const machine = Array.isArray(view.state_machine) && view.state_machine.length ? view.state_machine : view.states;
  if (!Array.isArray(machine) || !machine.length) return null;
  if (view.current_state == null && view.mode === "choreography") {
    wrapper.append(html("p", "muted", "Choreography has no coordinator: each service reacts to the others' events."));
    return wrapper;
  }
  const path = (view.states || []).map(stateName);
  const edges = Array.isArray(view.state_edges) ? view.state_edges.filter((edge) => Array.isArray(edge) && edge.length === 2) : [];
  if (edges.length) {
    const scroller = scrollRegion("Coordinator state machine");
    scroller.append(stateGraph(machine, edges, path, view.current_state ?? null));
    wrapper.append(scroller);
  } else {
    wrapper.append(stateChips(machine, path, view.current_state));
  }
  if (path.length) wrapper.append(html("p", "saga-path", `Path: ${path.join(" → ")}`));
  return wrapper;
}

/** A drawing's box that scrolls sideways below its natural size, reachable by keyboard. */
function scrollRegion(label) {
  const scroller = html("div", "saga-scroll");
  scroller.tabIndex = 0;
  scroller.setAttribute("role", "region");
  scroller.setAttribute("aria-label", label);
  return scroller;
}

function invariantList(items) {
  const list = html("ul", "saga-invariants");
  for (const item of items) {
    const entry = html("li", item.ok ? "invariant ok" : "invariant failed");
    entry.dataset.ok = item.ok ? "true" : "false";
    entry.append(html("span", "invariant-mark", item.ok ? "✓" : "✕"), html("strong", null, ` ${item.name} `));
    if (item.detail) entry.append(html("span", "muted", String(item.detail)));
    list.append(entry);
  }
  return list;
}

function sagaView(view, { runningIds, invariants, spanNs }) {
  const outcome = sagaOutcome(view, runningIds);
  const section = html("section", `saga outcome-${outcome}`);
  section.dataset.mode = view.mode ?? "";
  section.dataset.sagaId = view.saga_id ?? "";
  section.dataset.outcome = outcome;
  section.dataset.running = String(outcome === "running");
  const heading = html("h4", "saga-heading", view.mode ? view.mode[0].toUpperCase() + view.mode.slice(1) : "Saga");
  if (view.saga_id) heading.append(html("span", "saga-id", ` · ${String(view.saga_id).slice(0, 8)}`));
  heading.append(" ", html("span", `badge saga-outcome outcome-${outcome}`, OUTCOME_TEXT[outcome]));
  section.append(heading);
  const others = (runningIds || []).filter((id) => id !== view.saga_id).length;
  if (others) section.append(html("p", "saga-running-note", `${others} other saga${others === 1 ? "" : "s"} of this run still running when its time was up.`));

  const entries = entriesOf(view);
  if (entries.length) {
    const scroller = scrollRegion("Saga timeline");
    scroller.append(timeline(entries, view.lanes, spanNs));
    section.append(scroller);
  } else {
    section.append(html("p", "muted", "No steps recorded for this saga."));
  }
  const machine = coordinator(view);
  if (machine) section.append(html("h5", null, "Coordinator"), machine);
  if (Array.isArray(invariants) && invariants.length) {
    section.append(html("h5", null, "Invariants"), invariantList(invariants));
  }
  return section;
}

function key(hasDowntime, hasEmpty) {
  const line = html("p", "saga-key");
  line.append(html("span", "saga-forward", "forward"), " ", html("span", "saga-failure", "✕ failure"), " ", html("span", "saga-compensation", "↶ compensation"));
  if (hasEmpty) line.append(" ", html("span", "saga-empty", "hollow: nothing applied"));
  if (hasDowntime) line.append(" ", html("span", "saga-down", "process down"));
  return line;
}

/** Return a <section> drawing a result's sagas, or null when there is nothing to draw. */
export function renderSagas(result) {
  if (!result || typeof result !== "object") return null;
  const views = (Array.isArray(result.sagas) && result.sagas.length ? result.sagas : [result.saga]).filter(
    (view) => view && typeof view === "object",
  );
  if (!views.length) return null;
  const running = result.running && typeof result.running === "object" ? result.running : {};
  const invariants = result.invariants && typeof result.invariants === "object" && !Array.isArray(result.invariants) ? result.invariants : {};
  // One time scale for every view, so a longer saga looks longer.
  const spans = views.map(entriesOf).filter((entries) => entries.length).map((entries) => {
    const { start, end } = extentOf(entries);
    return end - start;
  });
  const spanNs = spans.length ? Math.max(1, ...spans) : undefined;

  const container = html("section", "saga-result");
  container.dataset.sagas = String(views.length);
  const all = views.flatMap(entriesOf);
  if (all.length) {
    container.append(key(all.some(isDowntime), all.some((entry) => NOTHING_APPLIED.has(entry.status) && entry.kind !== "failure")));
  }
  const grid = html("div", "saga-views");
  for (const view of views) {
    const runningIds = Array.isArray(running[view.mode]) ? running[view.mode].map(String) : null;
    grid.append(sagaView(view, { runningIds, invariants: invariants[view.mode] ?? view.invariants, spanNs }));
  }
  container.append(grid);
  return container;
}
