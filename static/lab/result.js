// The one generic renderer for experiment results (RESULT_SHAPE in
// sandbox_services/runtime/spec.py): headline, summary tiles, charts, table,
// notes, ok=false marked; `saga` or `sagas` (with their `invariants` and
// `running`) add the saga drawing. Keys it does not know are shown as JSON so
// nothing an experiment returns is hidden.

import { formatNumber, renderChart } from "./charts.js";
import { renderSagas } from "./saga.js";
import { errorElement, looksLikeError, withoutSandboxPrefix } from "./words.js";

const KNOWN = new Set(["headline", "summary", "charts", "table", "notes", "ok"]);
// Known only when the saga drawing showed them.
const SAGA_KEYS = new Set(["saga", "sagas", "invariants", "running"]);

function html(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

function tiles(summary) {
  const list = html("dl", "summary-tiles");
  for (const item of summary) {
    const tile = html("div", "tile");
    const value = html("dd", "tile-value", formatNumber(item.value));
    if (item.unit) value.append(html("span", "tile-unit", ` ${item.unit}`));
    tile.append(html("dt", "tile-label", withoutSandboxPrefix(item.label ?? "")), value);
    list.append(tile);
  }
  return list;
}

function table(data, services) {
  // Focusable, so a keyboard can scroll a wide table too.
  const wrapper = html("div", "table-scroll");
  wrapper.tabIndex = 0;
  wrapper.setAttribute("role", "region");
  wrapper.setAttribute("aria-label", "Result table");
  const element = html("table", "result-table");
  const head = html("tr");
  for (const column of data.columns || []) {
    const name = withoutSandboxPrefix(String(column ?? ""));
    const cell = html("th", null, name);
    // A header cell needs words, even over a column of row names.
    if (!name.trim()) cell.append(html("span", "visually-hidden", "item"));
    cell.scope = "col";
    head.append(cell);
  }
  const thead = html("thead");
  thead.append(head);
  const tbody = html("tbody");
  for (const row of data.rows || []) {
    const tr = html("tr");
    for (const value of row) {
      if (typeof value === "number") {
        tr.append(html("td", "num", formatNumber(value)));
      } else if (looksLikeError(String(value ?? ""))) {
        const cell = html("td");
        cell.append(errorElement(String(value), services));
        tr.append(cell);
      } else {
        tr.append(html("td", null, withoutSandboxPrefix(String(value ?? ""))));
      }
    }
    tbody.append(tr);
  }
  element.append(thead, tbody);
  wrapper.append(element);
  return wrapper;
}

/** The chart with the sandbox's prefix taken off its category and series names. */
function plainChart(chart) {
  if (!chart || typeof chart !== "object") return chart;
  return {
    ...chart,
    categories: Array.isArray(chart.categories) ? chart.categories.map(withoutSandboxPrefix) : chart.categories,
    series: Array.isArray(chart.series) ? chart.series.map((item) => ({ ...item, name: withoutSandboxPrefix(item?.name) })) : chart.series,
  };
}

/**
 * Return an <article> drawing one run's result.
 * @param {object} result - RESULT_SHAPE
 * @param {{title?: string, services?: object}} options - services: the sandbox's, to name a failed call's service
 */
export function renderResult(result, { title, services = {} } = {}) {
  const article = html("article", "result");
  if (!result || typeof result !== "object") {
    article.append(html("p", "muted", "No result."));
    return article;
  }
  const failed = result.ok === false;
  if (failed) article.classList.add("is-failed");
  article.dataset.ok = failed ? "false" : "true";
  if (title) article.append(html("h4", "result-title", title));
  const headline = html("p", "result-headline", withoutSandboxPrefix(result.headline ?? ""));
  if (failed) headline.prepend(html("span", "badge badge-error", "expectation failed"), " ");
  article.append(headline);
  if (Array.isArray(result.summary) && result.summary.length) article.append(tiles(result.summary));
  if (Array.isArray(result.charts)) {
    const charts = html("div", "result-charts");
    for (const chart of result.charts) charts.append(renderChart(plainChart(chart)));
    article.append(charts);
  }
  const saga = renderSagas(result);
  if (saga) article.append(saga);
  if (result.table && Array.isArray(result.table.rows)) article.append(table(result.table, services));
  if (Array.isArray(result.notes) && result.notes.length) {
    const notes = html("ul", "result-notes");
    for (const note of result.notes) {
      if (looksLikeError(String(note))) {
        const item = html("li");
        item.append(errorElement(String(note), services));
        notes.append(item);
      } else {
        notes.append(html("li", null, withoutSandboxPrefix(String(note))));
      }
    }
    article.append(notes);
  }
  const extra = Object.fromEntries(
    Object.entries(result).filter(([key]) => !KNOWN.has(key) && !(saga && SAGA_KEYS.has(key))),
  );
  if (Object.keys(extra).length) {
    const details = html("details", "result-extra");
    details.append(html("summary", null, "More data"), html("pre", null, withoutSandboxPrefix(JSON.stringify(extra, null, 2))));
    article.append(details);
  }
  return article;
}
