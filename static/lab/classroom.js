// The live class view: /ws/classroom/cohorts/<id>/ pushes the whole class on every
// change (a step done, a sandbox started, a run finished, a scenario confirmed).
// Nothing here polls; it redraws from each `class` message.

import { renderChart } from "./charts.js";
import { errorRateText, histogram, runText, stepCell } from "./classroom-model.js";

const config = JSON.parse(document.getElementById("class-config").textContent);
const status = document.getElementById("class-status");
const MAX_BACKOFF_MS = 15_000;

function node(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value == null || value === false) continue;
    if (name === "className") element.className = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child == null) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function csrfToken() {
  const input = document.querySelector(".scenario-form input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

function drawGrid(state) {
  const table = document.getElementById("class-grid");
  const steps = state.lesson.steps;
  const head = node(
    "thead",
    {},
    node(
      "tr",
      {},
      node("th", { scope: "col" }, "Learner"),
      node("th", { scope: "col" }, "Sandbox"),
      node("th", { scope: "col" }, "Last run"),
      node("th", { scope: "col" }, "Failed runs"),
      steps.map((step, index) => node("th", { scope: "col", title: step.title }, `${index + 1}. ${step.title}`)),
    ),
  );
  const rows = state.learners.map((row) => {
    const sandbox = row.sandbox;
    const sandboxText = sandbox
      ? `${sandbox.state}${sandbox.lesson !== state.lesson.slug ? ` (${sandbox.lesson})` : ""}`
      : "none";
    const stopped = sandbox
      ? Object.entries(sandbox.services).filter(([, serviceState]) => serviceState && serviceState !== "running")
      : [];
    return node(
      "tr",
      { "data-learner": row.username },
      node("th", { scope: "row" }, row.username),
      node(
        "td",
        { "data-sandbox-state": sandbox ? sandbox.state : "none" },
        sandboxText,
        // The learner's own panel, read-only: their services, runs and trace, live.
        sandbox
          ? [" · ", node("a", { href: config.watchUrl.replace("SANDBOX", sandbox.id), className: "watch-link", "aria-label": `Watch ${row.username}'s sandbox` }, "watch")]
          : null,
        stopped.length ? node("span", { className: "muted" }, ` · ${stopped.map(([name, serviceState]) => `${name} ${serviceState}`).join(", ")}`) : null,
      ),
      node("td", { "data-run-state": row.last_run ? row.last_run.state : "none", title: row.last_run ? row.last_run.headline || row.last_run.error : "" }, runText(row.last_run)),
      node("td", {}, errorRateText(row)),
      steps.map((step) => {
        const cell = stepCell(row, step.id);
        return node("td", { "data-step": step.id, "data-state": cell.state, className: `step-cell is-${cell.state}` }, cell.text);
      }),
    );
  });
  const body = rows.length
    ? node("tbody", {}, rows)
    : node("tbody", {}, node("tr", {}, node("td", { colspan: steps.length + 4 }, `No learners yet: they join with the code ${state.cohort.code}.`)));
  table.replaceChildren(node("caption", { className: "visually-hidden" }, "Each learner's steps, sandbox and runs"), head, body);
}

function drawScenarios(state) {
  const list = document.getElementById("scenario-list");
  const items = state.scenarios.filter((scenario) => scenario.lesson === state.lesson.slug);
  if (!items.length) {
    list.replaceChildren(node("p", { className: "muted" }, "No scenario pushed in this lesson yet."));
    return;
  }
  list.replaceChildren(
    ...items.map((scenario) => {
      const targets = scenario.targets.length
        ? node(
            "ul",
            { className: "scenario-targets" },
            scenario.targets.map((target) => {
              let text;
              if (!target.applied) text = target.error ? `not applied: ${target.error}` : "applying…";
              else if (target.confirmed) text = `confirmed: ${target.evidence}`;
              else text = "applied, waiting for a span that shows it";
              if (target.cleared) text += " · reset";
              return node(
                "li",
                { "data-learner": target.learner, "data-confirmed": target.confirmed ? "true" : "false", "data-cleared": target.cleared ? "true" : "false" },
                node("strong", {}, target.learner),
                `: ${text}`,
              );
            }),
          )
        : node("p", { className: "muted" }, "No running sandbox of this lesson in the cohort when it was pushed.");
      const reset = scenario.active
        ? node(
            "form",
            { method: "post", action: `${config.scenarioUrl}${scenario.id}/reset/` },
            node("input", { type: "hidden", name: "csrfmiddlewaretoken", value: csrfToken() }),
            node("button", { type: "submit", className: "small" }, "Reset"),
          )
        : null;
      return node(
        "article",
        { className: "scenario", "data-scenario": scenario.id, "data-active": scenario.active ? "true" : "false" },
        node("h3", {}, scenario.description, " ", node("span", { className: "state-badge" }, scenario.active ? "active" : "ended")),
        targets,
        reset,
      );
    }),
  );
}

function drawCheckpoints(state) {
  const detail = document.getElementById("checkpoint-detail");
  const blocks = state.lesson.checkpoints.map((checkpoint) => {
    const rows = state.learners.map((row) => {
      const entry = row.checkpoints[checkpoint.id] || {};
      let answer = entry.passed ? "✓ passed" : "–";
      let verdict = "";
      if (entry.answer != null) {
        const tries = entry.attempts > 1 ? ` (${entry.attempts} tries)` : "";
        answer = `${entry.answer_passed ? "✓" : "✕"} ${entry.answer}${tries}`;
      }
      if (checkpoint.kind === "predict" && entry.predicted != null) {
        answer = entry.predicted;
        if (entry.correct === true) verdict = "held";
        else if (entry.correct === false) verdict = "missed";
        else verdict = "not run yet";
      }
      return node(
        "tr",
        { "data-learner": row.username },
        node("th", { scope: "row" }, row.username),
        node("td", { className: "answer" }, answer),
        checkpoint.kind === "predict" ? node("td", { className: "observed" }, entry.observed || "–") : null,
        checkpoint.kind === "predict" ? node("td", { className: "verdict-cell" }, verdict) : null,
      );
    });
    const predict = checkpoint.kind === "predict";
    return node(
      "details",
      { className: "checkpoint-detail", "data-checkpoint": checkpoint.id, open: predict },
      node("summary", {}, `${predict ? "Prediction" : checkpoint.kind}: ${checkpoint.question}`),
      predict ? node("p", { className: "muted" }, `Graded on the run's ${checkpoint.figure}${checkpoint.unit ? ` (${checkpoint.unit})` : ""}.`) : null,
      node(
        "table",
        { className: "data-table" },
        node(
          "thead",
          {},
          node(
            "tr",
            {},
            node("th", { scope: "col" }, "Learner"),
            node("th", { scope: "col" }, predict ? "Predicted" : "Answer"),
            predict ? node("th", { scope: "col" }, "Measured") : null,
            predict ? node("th", { scope: "col" }, "Verdict") : null,
          ),
        ),
        node("tbody", {}, rows),
      ),
    );
  });
  detail.replaceChildren(...(blocks.length ? blocks : [node("p", { className: "muted" }, "This lesson has no checkpoints.")]));
}

function drawResults(state) {
  const results = document.getElementById("class-results");
  const blocks = state.results.map((result) => {
    const figures = result.figures.filter((figure) => figure.values.length || (figure.predicted || []).length);
    return node(
      "section",
      { className: "class-result", "data-experiment": result.experiment },
      node("h3", {}, `${result.title} · ${result.learners_with_runs} learner${result.learners_with_runs === 1 ? "" : "s"} ran it`),
      figures.length
        ? node("div", { className: "result-charts" }, figures.map((figure) => renderChart(histogram(figure))))
        : node("p", { className: "muted" }, "No finished run yet."),
    );
  });
  results.replaceChildren(...blocks);
}

// Warm pools: the form posts to the JSON API; the pool's progress arrives with each
// `class` message (every warm sandbox's start is pushed to the cohort's view).
async function warmPoolRequest(method, url, body) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (response.ok) return null;
  let problem = `The lab answered ${response.status}.`;
  try {
    const answer = await response.json();
    const fields = Object.entries(answer.errors || {}).map(([name, errors]) => `${name}: ${[errors].flat().join(" ")}`);
    problem = fields.length ? fields.join("; ") : answer.detail || problem;
  } catch {
    // not JSON: keep the status
  }
  return problem;
}

function showWarmProblem(problem) {
  const status = document.getElementById("warm-status");
  status.replaceChildren(node("p", { className: "field-error", role: "alert" }, problem));
}

function setUpWarmForm() {
  const form = document.querySelector(".warm-form");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const problem = await warmPoolRequest("POST", config.warmPoolsUrl, {
      cohort: config.cohort,
      lesson: config.lesson,
      size: Number(data.get("size")),
      minutes: Number(data.get("minutes")),
    });
    if (problem) showWarmProblem(problem);
  });
}

function drawWarmPool(state) {
  const status = document.getElementById("warm-status");
  const pool = state.warm_pool;
  if (!pool) {
    if (!status.querySelector(".field-error")) {
      status.replaceChildren(node("p", { className: "muted" }, "No sandboxes are warm for this lesson."));
    }
    return;
  }
  const ready = pool.warm + pool.taken;
  const until = new Date(pool.until).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const parts = [`${pool.warm} warm`, `${pool.starting} starting`, `${pool.taken} taken by learners`];
  if (pool.failed) parts.push(`${pool.failed} failed to start`);
  const end = node("button", { type: "button", className: "secondary" }, "End now");
  end.addEventListener("click", async () => {
    const problem = await warmPoolRequest("DELETE", `${config.warmPoolsUrl}${pool.id}/`);
    if (problem) showWarmProblem(problem);
  });
  status.replaceChildren(
    node(
      "div",
      { className: "warm-pool", "data-pool": pool.id, "data-warm": pool.warm, "data-taken": pool.taken },
      node("label", { for: "warm-progress" }, `${ready} of ${pool.size} ready · ${parts.join(" · ")} · untaken ones stop at ${until}`),
      node("progress", { id: "warm-progress", max: pool.size, value: Math.min(ready, pool.size) }),
      end,
    ),
  );
}

function draw(state) {
  drawGrid(state);
  drawWarmPool(state);
  drawScenarios(state);
  drawCheckpoints(state);
  drawResults(state);
  document.body.dataset.classVersion = String(Number(document.body.dataset.classVersion || 0) + 1);
}

let backoff = 500;
function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}${config.socket}`);
  status.textContent = "connecting";
  socket.addEventListener("open", () => {
    backoff = 500;
    status.textContent = "live";
  });
  socket.addEventListener("message", (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === "class") draw(message.class);
  });
  socket.addEventListener("close", () => {
    status.textContent = "reconnecting";
    const wait = backoff * (0.75 + Math.random() * 0.5);
    backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
    setTimeout(connect, wait);
  });
}

setUpWarmForm();
connect();
