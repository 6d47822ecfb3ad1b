// Live metrics gauges. A metrics message is any nesting of objects ending in
// numbers, e.g. {"queues": {"orders.email": {"depth": 3, "unacked": 1}}}.
// Every number becomes a gauge: its value, a bar against the largest value it
// has had, and a sparkline of its recent values. The last two levels of the
// path become a table's row and column ("orders.email" × "depth"), so five
// queues with five gauges each read as one compact table, not 25 lines; a
// flat map of counts ({"coordinator_states": {"CHARGING_PAYMENT": 2}}) is a
// table of its own with one value per row. A number its source sent before
// and leaves out now counts as 0: a map of counts drops the keys it has
// nothing for. Updates are coalesced to one redraw per animation frame.
// Each gauge cell carries data-metric, data-value and data-peak for tests.

import { formatNumber, sparkline } from "./charts.js";
import { withoutSandboxPrefix } from "./words.js";

const HISTORY = 60;
// A gauge its source has left out of this many messages in a row is gone (a dropped
// view, a deleted queue): it shows 0 for a few seconds, then leaves the table.
const FORGET_AFTER_MISSING = 5;

/** Yield [path, number] for every numeric leaf; booleans count as 0/1 (breaker open?). */
function* leaves(value, path = []) {
  if (typeof value === "number" && Number.isFinite(value)) yield [path, value];
  else if (typeof value === "boolean") yield [path, value ? 1 : 0];
  else if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, child] of Object.entries(value)) yield* leaves(child, [...path, key]);
  }
}

/** Where a leaf goes: which table, which row, which column. */
function placeOf(path) {
  if (path.length === 0) return { table: "metrics", row: "value", column: "value" };
  if (path.length === 1) return { table: "metrics", row: path[0], column: "value" };
  if (path.length === 2) return { table: path[0], row: path[1], column: "value" };
  return { table: path.slice(0, -2).join(" › ") || "metrics", row: withoutSandboxPrefix(path.at(-2)), column: path.at(-1) };
}

function html(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

export class MetricsView {
  /**
   * @param {HTMLElement} root - where the tables go
   * @param {{section?: HTMLElement}} options - a wrapper kept hidden until the first metrics arrive
   */
  constructor(root, { section } = {}) {
    this.root = root;
    this.section = section;
    this.series = new Map(); // path key -> {table, row, column, values, max, source}
    this.scheduled = false;
    this.root.classList.add("metrics-view");
    // It scrolls on its own when the lesson has many gauges: reachable by keyboard too.
    this.root.tabIndex = 0;
    this.root.setAttribute("role", "region");
    this.root.setAttribute("aria-label", "Gauges (scrolls)");
    this.root.replaceChildren(html("p", "muted", "No metrics yet."));
    if (this.section) this.section.hidden = true;
  }

  /**
   * Add one metrics message.
   * @param {object} metrics - nested objects ending in numbers
   * @param {string} [source] - who sent it (the metrics message's `source`)
   */
  update(metrics, source = "") {
    // Keep the history of every message, but draw once per frame.
    const seen = new Set();
    for (const [path, number] of leaves(metrics)) {
      const key = JSON.stringify(path);
      seen.add(key);
      let entry = this.series.get(key);
      if (!entry) {
        entry = { ...placeOf(path), values: [], max: 0, source };
        this.series.set(key, entry);
      }
      entry.missing = 0;
      this.#push(entry, number);
    }
    for (const [key, entry] of this.series) {
      if (entry.source !== source || seen.has(key)) continue;
      entry.missing = (entry.missing || 0) + 1;
      if (entry.missing >= FORGET_AFTER_MISSING) this.series.delete(key);
      else this.#push(entry, 0);
    }
    if (!this.scheduled) {
      this.scheduled = true;
      requestAnimationFrame(() => {
        this.scheduled = false;
        this.#draw();
      });
    }
  }

  #push(entry, number) {
    entry.values.push(number);
    if (entry.values.length > HISTORY) entry.values.shift();
    entry.max = Math.max(entry.max, Math.abs(number));
  }

  #draw() {
    if (!this.series.size) {
      this.root.replaceChildren(html("p", "muted", "No metrics yet."));
      return;
    }
    if (this.section) this.section.hidden = false;
    const tables = new Map(); // table -> {rows: Map(row -> Map(column -> entry)), columns: []}
    for (const entry of this.series.values()) {
      if (!tables.has(entry.table)) tables.set(entry.table, { rows: new Map(), columns: [] });
      const table = tables.get(entry.table);
      if (!table.columns.includes(entry.column)) table.columns.push(entry.column);
      if (!table.rows.has(entry.row)) table.rows.set(entry.row, new Map());
      table.rows.get(entry.row).set(entry.column, entry);
    }
    const sections = [];
    for (const [name, table] of tables) {
      const section = html("section", "metric-group");
      section.dataset.metricGroup = name;
      // A table with one plain value per row would be a tall thin column; tiles wrap instead.
      const plain = table.columns.length === 1 && table.columns[0] === "value";
      section.append(plain ? this.#tiles(name, table) : this.#table(name, table));
      sections.push(section);
    }
    this.root.replaceChildren(...sections);
    // Never shrink while the page lives: a gauge that leaves must not pull the trace up and down.
    const height = this.root.offsetHeight;
    if (height > (this.tallest || 0)) {
      this.tallest = height;
      this.root.style.minHeight = `${height}px`;
    }
  }

  #table(name, table) {
    const element = html("table", "metric-table");
    element.append(html("caption", null, name));
    const head = html("tr");
    const corner = html("td");
    corner.setAttribute("aria-hidden", "true");
    head.append(corner);
    for (const column of table.columns) {
      const cell = html("th", null, column.replaceAll("_", " "));
      cell.scope = "col";
      head.append(cell);
    }
    const thead = html("thead");
    thead.append(head);
    const tbody = html("tbody");
    for (const [rowName, cells] of table.rows) {
      const row = html("tr");
      const label = html("th", null, rowName);
      label.scope = "row";
      row.append(label);
      for (const column of table.columns) {
        row.append(this.#gauge(cells.get(column), `${name} ${rowName} ${column}`));
      }
      tbody.append(row);
    }
    element.append(thead, tbody);
    return element;
  }

  #tiles(name, table) {
    const wrapper = html("div", "metric-tiles-group");
    wrapper.append(html("p", "metric-caption", name));
    const list = html("dl", "metric-tiles");
    for (const [rowName, cells] of table.rows) {
      const tile = html("div", "metric-tile");
      tile.append(html("dt", null, rowName.replaceAll("_", " ")), this.#gauge(cells.get("value"), `${name} ${rowName} value`, "dd"));
      list.append(tile);
    }
    wrapper.append(list);
    return wrapper;
  }

  #gauge(entry, label, tag = "td") {
    const cell = html(tag, "metric-cell");
    if (!entry) return cell;
    const value = entry.values.at(-1);
    cell.dataset.metric = label;
    cell.dataset.value = String(value);
    cell.dataset.peak = String(entry.max);
    cell.append(html("span", "metric-value", formatNumber(value)));
    const meter = document.createElement("meter");
    meter.min = 0;
    meter.max = entry.max || 1;
    meter.value = Math.abs(value);
    meter.setAttribute("aria-label", label);
    cell.append(meter, sparkline(entry.values, { width: 56, height: 14 }));
    return cell;
  }
}
