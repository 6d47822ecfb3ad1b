// The saga coordinator's state machine as a graph: every state a box, every
// possible transition (`state_edges`) an arrow. The states one saga went
// through are marked and numbered, the arrows it took drawn heavier, and its
// current state lit. Open sagas counted per state by the live metrics
// (`coordinator_states`) get a "now" badge on every machine drawn on the page.

const SVG_NS = "http://www.w3.org/2000/svg";
const NODE_WIDTH = 92;
const NODE_HEIGHT = 34;
const COLUMN_PITCH = 106;
const ROW_PITCH = 78;
const MARGIN = 14;
const MAX_LINE_CHARS = 11;

let lastLiveCounts = {}; // state -> open sagas, from the latest metrics message
let machineCount = 0; // keeps each drawing's marker ids unique on the page

function el(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text != null) node.textContent = text;
  return node;
}

export const stateName = (state) => (typeof state === "string" ? state : state?.name ?? String(state));

/** Split "SCHEDULING_SHIPPING" into lines short enough for a box. */
function labelLines(name) {
  const lines = [];
  for (const word of name.split("_")) {
    const last = lines.at(-1);
    if (last && last.length + 1 + word.length <= MAX_LINE_CHARS) lines[lines.length - 1] = `${last} ${word}`;
    else lines.push(word);
  }
  return lines.slice(0, 3);
}

/**
 * Place each state on a grid.
 *
 * The drawing order (`state_machine`) is cut into rows wherever two neighbours
 * are not joined by an edge: for the saga that gives the forward chain and the
 * compensation chain. The first row runs left to right; a later row puts each
 * state under the earliest state that leads into it, so a compensation sits
 * under the step it undoes, and then keeps its own chain's direction.
 */
export function layoutMachine(states, edges) {
  const joined = new Set(edges.map(([from, to]) => `${from}\u0000${to}`));
  const rows = [];
  states.forEach((state, index) => {
    if (index > 0 && joined.has(`${states[index - 1]}\u0000${state}`)) rows.at(-1).push(state);
    else rows.push([state]);
  });
  const place = new Map(); // state -> {row, column}
  rows.forEach((row, rowIndex) => {
    if (rowIndex === 0) {
      row.forEach((state, column) => place.set(state, { row: 0, column }));
      return;
    }
    const wanted = row.map((state) => {
      const columns = edges.filter(([from, to]) => to === state && place.has(from)).map(([from]) => place.get(from).column);
      return columns.length ? Math.min(...columns) : null;
    });
    const known = wanted.filter((column) => column != null);
    const runsLeft = known.length > 1 && known[0] > known.at(-1);
    let previous = null;
    row.forEach((state, index) => {
      let column = wanted[index] ?? (previous == null ? 0 : previous + (runsLeft ? -1 : 1));
      if (previous != null) column = runsLeft ? Math.min(column, previous - 1) : Math.max(column, previous + 1);
      place.set(state, { row: rowIndex, column });
      previous = column;
    });
  });
  const shift = Math.min(0, ...[...place.values()].map((spot) => spot.column));
  for (const spot of place.values()) spot.column -= shift;
  return place;
}

function centre(spot) {
  return {
    x: MARGIN + spot.column * COLUMN_PITCH + NODE_WIDTH / 2,
    y: MARGIN + spot.row * ROW_PITCH + NODE_HEIGHT / 2,
  };
}

/** Return an SVG path from one box's edge to the other's. */
function arrowPath(from, to) {
  const a = centre(from);
  const b = centre(to);
  if (from.row === to.row) {
    const direction = Math.sign(b.x - a.x) || 1;
    const startX = a.x + (direction * NODE_WIDTH) / 2;
    const endX = b.x - (direction * NODE_WIDTH) / 2;
    if (Math.abs(from.column - to.column) === 1) return `M${startX},${a.y} L${endX},${b.y}`;
    // A jump over boxes of the same row arcs above them.
    const lift = a.y - NODE_HEIGHT / 2 - 12;
    return `M${a.x},${a.y - NODE_HEIGHT / 2} C${a.x},${lift} ${b.x},${lift} ${b.x},${b.y - NODE_HEIGHT / 2}`;
  }
  const down = b.y > a.y ? 1 : -1;
  // Leave and enter on the facing sides; a slant spreads arrows that share a box.
  const startX = a.x + Math.sign(b.x - a.x) * NODE_WIDTH * 0.25;
  const endX = b.x + Math.sign(a.x - b.x) * NODE_WIDTH * 0.25;
  return `M${startX},${a.y + (down * NODE_HEIGHT) / 2} L${endX},${b.y - (down * NODE_HEIGHT) / 2}`;
}

/** Apply the open-saga counts of one metrics message to every machine on the page. */
export function lightLiveStates(counts) {
  lastLiveCounts = counts && typeof counts === "object" ? counts : {};
  for (const node of document.querySelectorAll(".saga-graph .saga-node")) applyLive(node);
}

function applyLive(node) {
  const count = Number(lastLiveCounts[node.dataset.state] || 0);
  node.classList.toggle("is-live", count > 0);
  node.dataset.live = String(count);
  const badge = node.querySelector(".saga-live-count");
  badge.textContent = count > 0 ? `${count} now` : "";
}

/**
 * Return an SVG drawing of the state machine.
 * @param {string[]} allStates - every state, in drawing order
 * @param {string[][]} edges - [from, to] pairs
 * @param {string[]} path - states this saga passed through, in order
 * @param {string|null} current - the lit state
 */
export function stateGraph(allStates, edges, path, current) {
  const names = allStates.map(stateName);
  for (const name of [...path, current]) if (name && !names.includes(name)) names.push(name);
  const place = layoutMachine(names, edges);
  const spots = [...place.values()];
  const width = MARGIN * 2 + Math.max(...spots.map((spot) => spot.column)) * COLUMN_PITCH + NODE_WIDTH;
  const height = MARGIN * 2 + Math.max(...spots.map((spot) => spot.row)) * ROW_PITCH + NODE_HEIGHT + 6;
  const svg = el("svg", { class: "saga-graph", viewBox: `0 0 ${width} ${height}`, role: "img" });
  svg.style.setProperty("--natural-width", `${width}px`);
  svg.append(el("title", {}, `Coordinator state machine${current ? `; current state ${current}` : ""}`));
  const id = `saga-arrow-${++machineCount}`;
  const defs = el("defs");
  for (const [suffix, className] of [["", "saga-arrowhead"], ["-taken", "saga-arrowhead is-taken"]]) {
    const marker = el("marker", { id: id + suffix, viewBox: "0 0 8 8", refX: 7, refY: 4, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
    marker.append(el("path", { d: "M0,0 L8,4 L0,8 z", class: className }));
    defs.append(marker);
  }
  svg.append(defs);

  const taken = new Set(path.slice(1).map((state, index) => `${path[index]}\u0000${state}`));
  for (const [from, to] of edges) {
    if (!place.has(from) || !place.has(to)) continue;
    const isTaken = taken.has(`${from}\u0000${to}`);
    const arrow = el("path", {
      d: arrowPath(place.get(from), place.get(to)),
      class: `saga-edge${isTaken ? " is-taken" : ""}`,
      "marker-end": `url(#${id}${isTaken ? "-taken" : ""})`,
      "data-from": from,
      "data-to": to,
    });
    arrow.append(el("title", {}, `${from} → ${to}`));
    svg.append(arrow);
  }

  for (const name of names) {
    const spot = place.get(name);
    const x = MARGIN + spot.column * COLUMN_PITCH;
    const y = MARGIN + spot.row * ROW_PITCH;
    const order = path.indexOf(name);
    const classes = ["saga-node"];
    if (order >= 0) classes.push("is-visited");
    if (name === current) classes.push("is-current");
    const node = el("g", { class: classes.join(" "), "data-state": name });
    if (name === current) node.setAttribute("aria-current", "step");
    node.append(el("rect", { x, y, width: NODE_WIDTH, height: NODE_HEIGHT, rx: 6 }));
    const lines = labelLines(name);
    const lineHeight = 11;
    const top = y + NODE_HEIGHT / 2 - ((lines.length - 1) * lineHeight) / 2 + 3.5;
    lines.forEach((line, index) => {
      node.append(el("text", { x: x + NODE_WIDTH / 2, y: top + index * lineHeight, "text-anchor": "middle" }, line));
    });
    if (order >= 0) {
      // The order this saga took, since the machine branches and arrows alone do not tell it.
      node.append(el("circle", { class: "saga-node-order", cx: x + 2, cy: y + 2, r: 7 }));
      node.append(el("text", { class: "saga-node-order-text", x: x + 2, y: y + 5, "text-anchor": "middle" }, String(order + 1)));
    }
    node.append(el("text", { class: "saga-live-count", x: x + NODE_WIDTH, y: y - 3, "text-anchor": "end" }));
    node.append(el("title", {}, `${name}${order >= 0 ? ` (step ${order + 1} of this saga)` : ""}`));
    applyLive(node);
    svg.append(node);
  }
  return svg;
}
