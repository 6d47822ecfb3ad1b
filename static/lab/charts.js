// Small SVG charts for experiment results: grouped bars and lines.
// Input is the chart dict of RESULT_SHAPE (sandbox_services/runtime/spec.py).

const SVG_NS = "http://www.w3.org/2000/svg";
const WIDTH = 420;
const HEIGHT = 220;
const MARGIN = { top: 12, right: 12, bottom: 40, left: 52 };
const TICK_CHAR_WIDTH = 5.8; // about one character of a 10px tick label
const TICK_LINE_HEIGHT = 12;
export const SERIES_COLOURS = ["#2563eb", "#7c3aed", "#d97706", "#0d9488", "#db2777", "#65a30d"];

function el(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text != null) node.textContent = text;
  return node;
}

/** Round a tick step to 1, 2 or 5 times a power of ten. */
function niceStep(range, ticks) {
  const raw = range / Math.max(1, ticks);
  const power = 10 ** Math.floor(Math.log10(raw || 1));
  const fraction = raw / power;
  return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * power;
}

export function formatNumber(value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return String(value ?? "");
  const abs = Math.abs(value);
  if (abs !== 0 && (abs >= 1e6 || abs < 0.01)) return value.toExponential(2);
  if (Number.isInteger(value)) return value.toLocaleString("en");
  return value.toLocaleString("en", { maximumFractionDigits: abs < 10 ? 2 : 1 });
}

function scale(domainMin, domainMax, rangeMin, rangeMax) {
  const span = domainMax - domainMin || 1;
  return (value) => rangeMin + ((value - domainMin) / span) * (rangeMax - rangeMin);
}

/**
 * Draw the grid, the y ticks and the axis labels.
 * @param {number} extra - height added under the plot for category labels on several lines
 */
function axes(svg, yMin, yMax, chart, extra = 0) {
  const plotBottom = HEIGHT - MARGIN.bottom;
  const y = scale(yMin, yMax, plotBottom, MARGIN.top);
  const step = niceStep(yMax - yMin, 4);
  for (let tick = Math.ceil(yMin / step) * step; tick <= yMax + step / 1e6; tick += step) {
    svg.append(el("line", { class: "grid", x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(tick), y2: y(tick) }));
    svg.append(el("text", { class: "tick", x: MARGIN.left - 6, y: y(tick) + 4, "text-anchor": "end" }, formatNumber(tick)));
  }
  svg.append(el("line", { class: "axis", x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: plotBottom, y2: plotBottom }));
  if (chart.y_label) {
    svg.append(el("text", { class: "axis-label", x: 12, y: MARGIN.top + 4, transform: `rotate(-90 12 ${MARGIN.top + 4})`, "text-anchor": "end" }, chart.y_label));
  }
  if (chart.x_label) {
    svg.append(el("text", { class: "axis-label", x: (MARGIN.left + WIDTH - MARGIN.right) / 2, y: HEIGHT + extra - 4, "text-anchor": "middle" }, chart.x_label));
  }
  return y;
}

function frame(chart, extra = 0) {
  const svg = el("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT + extra}`, class: `chart chart-${chart.type || "bar"}`, role: "img" });
  svg.append(el("title", {}, chart.title || "Chart"));
  return svg;
}

function legend(series) {
  const list = document.createElement("ul");
  list.className = "chart-legend";
  series.forEach((item, index) => {
    const entry = document.createElement("li");
    entry.style.setProperty("--swatch", SERIES_COLOURS[index % SERIES_COLOURS.length]);
    entry.textContent = item.name ?? `series ${index + 1}`;
    list.append(entry);
  });
  return list;
}

/** Break a category label into lines that fit its group's width (at most three). */
function wrapLabel(text, width) {
  const perLine = Math.max(4, Math.floor(width / TICK_CHAR_WIDTH));
  const lines = [];
  for (const word of String(text).split(/\s+/)) {
    const last = lines.at(-1);
    if (last != null && last.length + 1 + word.length <= perLine) lines[lines.length - 1] = `${last} ${word}`;
    else lines.push(word);
  }
  if (lines.length > 3) lines.splice(2, lines.length, `${lines.slice(2).join(" ").slice(0, perLine - 1)}…`);
  return lines;
}

export function barChart(chart) {
  const series = chart.series || [];
  const categories = chart.categories || (series[0]?.values || []).map((_, index) => String(index + 1));
  const values = series.flatMap((item) => (item.values || []).filter(Number.isFinite));
  const yMax = Math.max(0, ...values) || 1;
  const yMin = Math.min(0, ...values);
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const groupWidth = plotWidth / Math.max(1, categories.length);
  // Long category names wrap under their bars instead of running into their neighbours.
  const labels = categories.map((category) => wrapLabel(category, groupWidth - 4));
  const extra = (Math.max(1, ...labels.map((lines) => lines.length)) - 1) * TICK_LINE_HEIGHT;
  const svg = frame(chart, extra);
  const y = axes(svg, yMin, yMax * 1.08, chart, extra);
  const barWidth = (groupWidth * 0.8) / Math.max(1, series.length);
  categories.forEach((category, c) => {
    const groupX = MARGIN.left + c * groupWidth + groupWidth * 0.1;
    series.forEach((item, s) => {
      const value = item.values?.[c];
      if (!Number.isFinite(value)) return;
      const top = Math.min(y(value), y(0));
      const rect = el("rect", {
        x: groupX + s * barWidth,
        y: top,
        width: Math.max(1, barWidth - 2),
        height: Math.max(1, Math.abs(y(value) - y(0))),
        fill: SERIES_COLOURS[s % SERIES_COLOURS.length],
      });
      rect.append(el("title", {}, `${item.name ?? ""} ${category}: ${formatNumber(value)}`));
      svg.append(rect);
    });
    const label = el("text", { class: "tick", x: groupX + groupWidth * 0.4, y: HEIGHT - MARGIN.bottom + 14, "text-anchor": "middle" });
    labels[c].forEach((line, index) => {
      label.append(el("tspan", { x: groupX + groupWidth * 0.4, dy: index ? TICK_LINE_HEIGHT : 0 }, line));
    });
    label.append(el("title", {}, String(category)));
    svg.append(label);
  });
  return { svg, legend: legend(series) };
}

export function lineChart(chart) {
  const series = chart.series || [];
  const points = series.flatMap((item) => item.points || []).filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const svg = frame(chart);
  const yMax = Math.max(0, ...ys) || 1;
  const yMin = Math.min(0, ...ys);
  const y = axes(svg, yMin, yMax * 1.08, chart);
  const xMin = xs.length ? Math.min(...xs) : 0;
  const xMax = xs.length ? Math.max(...xs) : 1;
  const x = scale(xMin, xMax === xMin ? xMin + 1 : xMax, MARGIN.left, WIDTH - MARGIN.right);
  const step = niceStep(xMax - xMin || 1, 5);
  for (let tick = Math.ceil(xMin / step) * step; tick <= xMax; tick += step) {
    svg.append(el("text", { class: "tick", x: x(tick), y: HEIGHT - MARGIN.bottom + 14, "text-anchor": "middle" }, formatNumber(tick)));
  }
  series.forEach((item, s) => {
    const path = (item.points || [])
      .filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]))
      .map((p, index) => `${index ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`)
      .join(" ");
    if (!path) return;
    const line = el("path", { d: path, fill: "none", stroke: SERIES_COLOURS[s % SERIES_COLOURS.length], "stroke-width": 2 });
    line.append(el("title", {}, item.name ?? ""));
    svg.append(line);
  });
  return { svg, legend: legend(series) };
}

/** Draw one chart dict as a <figure>. */
export function renderChart(chart) {
  const figure = document.createElement("figure");
  figure.className = "chart-figure";
  const { svg, legend: key } = chart.type === "line" ? lineChart(chart) : barChart(chart);
  const caption = document.createElement("figcaption");
  caption.textContent = chart.title || "";
  figure.append(caption, svg, key);
  return figure;
}

/** A tiny inline line of recent values (for live metrics). */
export function sparkline(values, { width = 90, height = 22 } = {}) {
  const svg = el("svg", { class: "sparkline", viewBox: `0 0 ${width} ${height}`, width, height, "aria-hidden": "true" });
  if (values.length < 2) return svg;
  const max = Math.max(...values);
  const min = Math.min(0, ...values);
  const x = scale(0, values.length - 1, 1, width - 1);
  const y = scale(min, max === min ? min + 1 : max, height - 2, 2);
  const d = values.map((value, index) => `${index ? "L" : "M"}${x(index).toFixed(1)},${y(value).toFixed(1)}`).join(" ");
  svg.append(el("path", { d, fill: "none" }));
  return svg;
}
