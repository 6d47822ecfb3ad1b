// Pure helpers of the class view: histogram bins and cell texts (no DOM).

/**
 * Bin the class's measured values (and its predictions, when the figure has them) into
 * at most `count` equal ranges; return a bar chart dict of charts.js.
 */
export function histogram(figure, count = 6) {
  const measured = figure.values.map((item) => item.value);
  const predicted = (figure.predicted || []).map((item) => item.value);
  const all = [...measured, ...predicted];
  const low = Math.min(...all);
  const high = Math.max(...all);
  const bins = low === high ? 1 : Math.min(count, all.length);
  const width = bins === 1 ? 1 : (high - low) / bins;
  const countsOf = (values) => {
    const counts = new Array(bins).fill(0);
    for (const value of values) {
      const index = bins === 1 ? 0 : Math.min(bins - 1, Math.floor((value - low) / width));
      counts[index] += 1;
    }
    return counts;
  };
  const label = (value) => Number(value.toPrecision(3)).toString();
  const categories = countsOf([]).map((_, index) =>
    bins === 1 ? label(low) : `${label(low + index * width)}–${label(low + (index + 1) * width)}`,
  );
  const series = [{ name: predicted.length ? "measured" : "learners", values: countsOf(measured) }];
  if (predicted.length) series.push({ name: "predicted", values: countsOf(predicted) });
  return {
    title: `${figure.label}${figure.unit ? ` (${figure.unit})` : ""}: ${measured.length} learner${measured.length === 1 ? "" : "s"}`,
    type: "bar",
    x_label: figure.unit || figure.label,
    y_label: "learners",
    categories,
    series,
  };
}

/** Text of one learner × step cell. */
export function stepCell(row, stepId) {
  const state = row.steps[stepId];
  if (state === "done") return { state, text: "✓ done" };
  if (state === "current") {
    if (row.stuck) return { state: "stuck", text: `stuck ${row.idle_minutes} min` };
    return { state, text: row.idle_minutes != null ? `current · ${row.idle_minutes} min` : "current" };
  }
  return { state: "todo", text: "" };
}

/** Text of a learner's last run. */
export function runText(run) {
  if (!run) return "no run yet";
  if (run.state === "failed") return `${run.experiment}: failed`;
  if (run.state === "done") return `${run.experiment}: ${run.ok === false ? "done, expectation failed" : "done"}`;
  return `${run.experiment}: ${run.state}`;
}

/** Error rate as a percentage text. */
export function errorRateText(row) {
  if (row.error_rate == null) return "–";
  return `${Math.round(row.error_rate * 100)}% of ${row.runs}`;
}
