// Live metrics gauges. A metrics message is any nesting of objects ending in
// numbers, e.g. {"queues": {"orders.email": {"depth": 3, "unacked": 1}}}.
// Every number becomes a gauge: a bar against the largest value it has had
// and a sparkline of its recent values, grouped under its parent path.
// Updates are coalesced to one redraw per animation frame.

import { formatNumber, sparkline } from "./charts.js";

const HISTORY = 60;

/** Yield [path, number] for every numeric leaf; booleans count as 0/1 (breaker open?). */
function* leaves(value, path = []) {
  if (typeof value === "number" && Number.isFinite(value)) yield [path, value];
  else if (typeof value === "boolean") yield [path, value ? 1 : 0];
  else if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, child] of Object.entries(value)) yield* leaves(child, [...path, key]);
  }
}

export class MetricsView {
  constructor(root) {
    this.root = root;
    this.series = new Map(); // "a › b › c" -> {group, name, values: [], max}
    this.latest = null;
    this.scheduled = false;
    this.root.classList.add("metrics-view");
    this.root.replaceChildren(this.#empty());
  }

  #empty() {
    const note = document.createElement("p");
    note.className = "muted";
    note.textContent = "No metrics yet.";
    return note;
  }

  update(metrics) {
    // Keep the history of every message, but draw once per frame.
    for (const [path, number] of leaves(metrics)) {
      const key = path.join(" › ");
      let entry = this.series.get(key);
      if (!entry) {
        entry = { group: path.slice(0, -1).join(" › ") || "metrics", name: path.at(-1) ?? "value", values: [], max: 0 };
        this.series.set(key, entry);
      }
      entry.values.push(number);
      if (entry.values.length > HISTORY) entry.values.shift();
      entry.max = Math.max(entry.max, Math.abs(number));
    }
    if (!this.scheduled) {
      this.scheduled = true;
      requestAnimationFrame(() => {
        this.scheduled = false;
        this.#draw();
      });
    }
  }

  #draw() {
    if (!this.series.size) return;
    const groups = new Map();
    for (const entry of this.series.values()) {
      if (!groups.has(entry.group)) groups.set(entry.group, []);
      groups.get(entry.group).push(entry);
    }
    const sections = [];
    for (const [group, entries] of groups) {
      const section = document.createElement("section");
      section.className = "metric-group";
      const heading = document.createElement("h4");
      heading.textContent = group;
      const table = document.createElement("table");
      table.className = "metric-table";
      for (const entry of entries) {
        const value = entry.values.at(-1);
        const row = document.createElement("tr");
        const name = document.createElement("th");
        name.scope = "row";
        name.textContent = entry.name;
        const gauge = document.createElement("td");
        const meter = document.createElement("meter");
        meter.min = 0;
        meter.max = entry.max || 1;
        meter.value = Math.abs(value);
        meter.setAttribute("aria-label", `${group} ${entry.name}`);
        gauge.append(meter);
        const number = document.createElement("td");
        number.className = "num";
        number.textContent = formatNumber(value);
        const trend = document.createElement("td");
        trend.append(sparkline(entry.values));
        row.append(name, gauge, number, trend);
        table.append(row);
      }
      section.append(heading, table);
      sections.push(section);
    }
    this.root.replaceChildren(...sections);
  }
}
