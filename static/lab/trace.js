// The trace view: a sequence diagram and a waterfall of a sandbox's spans,
// and the attributes of the span the learner clicks.
//
// It must stay responsive with thousands of spans, so:
// - addSpans() only queues; the model and the drawing update once per animation frame;
// - both drawings are virtualised SVG: only the rows in the visible window exist in the DOM;
// - the diagram shows the most recent `maxTraces` traces, with a picker for the others.
// Drawn hops carry data-protocol / data-span-id, and the root element carries
// counts (data-spans, data-hops-http, ...) so tests can check what is drawn.
// A filter (setFilter) keeps only the calls it names, live, until cleared.

import { BACKGROUND, TraceStore, displayName, durationMs, filterTrace, formatMs } from "./trace-model.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const SEQ_ROW = 30;
const WATERFALL_ROW = 22;
const OVERSCAN = 6;
const MIN_LIFELINE_GAP = 92;
const PICKER_LIMIT = 300;
const SHOW_BACKGROUND_KEY = "lab.trace.showBackground";
export const REPLAY_SPEEDS = [1, 0.25];
let instances = 0;

/** "load · items=10, duration_s=3": a run as the learner set it up. */
export function describeRun(run) {
  const params = Object.entries(run?.params || {}).map(([key, value]) => `${key}=${value}`).join(", ");
  return params ? `${run.experiment} · ${params}` : String(run?.experiment || "run");
}

function readSetting(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null; // storage refused (privacy mode): fall back to the default
  }
}

function writeSetting(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // Not remembered, still applied.
  }
}

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text != null) node.textContent = text;
  return node;
}

function html(tag, attributes = {}, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text != null) node.textContent = text;
  return node;
}

function clip(text, maxChars) {
  return text.length > maxChars ? `${text.slice(0, Math.max(1, maxChars - 1))}…` : text;
}

function clockTime(ns) {
  const date = new Date(Number(ns) / 1e6);
  return date.toISOString().slice(11, 23);
}

export class TraceView {
  /**
   * @param {HTMLElement} root - element to draw into (emptied)
   * @param {{maxTraces?: number, maxKeptTraces?: number, lifelines?: string[]}} options
   *   lifelines: the lesson's fixed column order (the learner, its services, the broker)
   */
  constructor(root, { maxTraces = 40, maxKeptTraces = 2000, lifelines = [] } = {}) {
    this.root = root;
    this.maxTraces = maxTraces;
    this.declaredLifelines = [...lifelines];
    this.store = new TraceStore({ maxKeptTraces });
    this.liveStore = this.store;
    this.runs = new Map(); // run id -> {experiment, params, number}
    this.showBackground = readSetting(SHOW_BACKGROUND_KEY) === "1";
    this.replayState = null;
    this.pending = [];
    this.frameRequested = false;
    this.pickedTrace = "";
    this.selectedSpanId = null;
    this.filter = null; // {label, where}: only the calls it names are drawn
    this.follow = true; // keep the newest hop in view until the learner scrolls up
    this.followWaterfall = true;
    this.drawnWaiters = [];
    this.id = `trace${++instances}`;
    this.#build();
    this.#layout();
  }

  /** Queue spans (any order, duplicates allowed); they are drawn on the next frame. */
  addSpans(items) {
    if (!items || !items.length) return;
    for (const item of items) this.pending.push(item);
    this.#requestFrame();
  }

  clear() {
    this.pending = [];
    this.stopReplay();
    this.store.clear();
    this.clearFilter();
    this.pickedTrace = "";
    this.selectedSpanId = null;
    this.details.replaceChildren(html("p", { class: "muted" }, "Click an arrow or a bar to see its span."));
    this.#requestFrame();
  }

  /** The highest sequence number seen: what a reconnecting socket asks to resume after. */
  get lastSeq() {
    return this.liveStore.maxSeq;
  }

  /** Name a run for the picker: its experiment and parameters. */
  describeRun(run) {
    if (!run?.id) return;
    const known = this.runs.get(run.id) || {};
    this.runs.set(run.id, { ...known, ...run });
    this.pickerSize = null; // the labels changed: rebuild the picker
    this.#requestFrame(true);
  }

  /**
   * Draw only the calls a filter names, in both drawings, as spans keep arriving:
   * the traces that hold such a call, and in each only those calls (the waterfall
   * adds the server span that answered each). A chip says so and clears it.
   * @param {{label: string, where: {service?: string, kind?: string, attributes?: object}}} filter
   */
  setFilter(filter) {
    // Whatever else the filter carries (the mesh names its edge) comes back in the event.
    this.filter = filter?.where ? { ...filter, label: String(filter.label || "filter") } : null;
    this.pickedTrace = "";
    this.follow = true;
    this.followWaterfall = true;
    this.pickerSize = null;
    this.root.dispatchEvent(new CustomEvent("lab:trace-filter", { bubbles: true, detail: { filter: this.filter } }));
    this.#requestFrame(true);
  }

  clearFilter() {
    if (!this.filter) return;
    this.setFilter(null);
  }

  /** Show or hide the lab's own calls (probes, gauges, pollers); remembered in this browser. */
  setShowBackground(show) {
    this.showBackground = Boolean(show);
    this.backgroundSwitch.checked = this.showBackground;
    writeSetting(SHOW_BACKGROUND_KEY, this.showBackground ? "1" : "0");
    this.pickerSize = null;
    this.#requestFrame(true);
  }

  // --- replay -------------------------------------------------------------

  /**
   * Play a recorded run's spans in this view: each span appears when it started,
   * at `speed` times real time, or one at a time with Step; the scrubber moves
   * anywhere in the run. Live spans keep arriving meanwhile and show again on
   * "Back to live".
   * @param {object[]} spans - the run's spans (wire shape)
   * @param {{label?: string, speed?: number}} options
   */
  replay(spans, { label = "a recorded run", speed = 1 } = {}) {
    const ordered = [...spans].filter((span) => span && span.trace_id).sort((a, b) => Number(a.start_ns) - Number(b.start_ns));
    this.stopTimer();
    if (!ordered.length) {
      this.note.textContent = "Nothing to replay: no spans were kept for that run.";
      return;
    }
    const start = Number(ordered[0].start_ns);
    const end = Math.max(...ordered.map((span) => Number(span.end_ns ?? span.start_ns)));
    this.replayState = { spans: ordered, start, end, cursor: start, shown: 0, speed, playing: false, label };
    this.store = new TraceStore({ maxKeptTraces: 5000 });
    this.pickedTrace = "";
    this.follow = true;
    this.followWaterfall = true;
    this.replayLabel.textContent = `Replaying ${label}`;
    this.replaySpeed.value = String(speed);
    this.replayBar.hidden = false;
    this.root.dataset.replay = "on";
    this.#seek(start);
    this.play();
  }

  play() {
    const state = this.replayState;
    if (!state) return;
    if (state.cursor >= state.end) this.#seek(state.start);
    state.playing = true;
    this.replayPlay.textContent = "Pause";
    let last = performance.now();
    const tick = (now) => {
      if (!this.replayState?.playing) return;
      const elapsedNs = (now - last) * 1e6 * this.replayState.speed;
      last = now;
      this.#seek(Math.min(this.replayState.end, this.replayState.cursor + elapsedNs));
      if (this.replayState.cursor >= this.replayState.end) this.pause();
      else this.replayTimer = requestAnimationFrame(tick);
    };
    this.replayTimer = requestAnimationFrame(tick);
  }

  pause() {
    this.stopTimer();
    if (!this.replayState) return;
    this.replayState.playing = false;
    this.replayPlay.textContent = this.replayState.cursor >= this.replayState.end ? "Play again" : "Play";
  }

  /** Show the next span of the replay, and stop there. */
  step() {
    const state = this.replayState;
    if (!state) return;
    this.pause();
    const next = state.spans[state.shown];
    if (!next) return;
    // One span, even when others start in the same nanosecond (sidecar spans
    // from HAProxy's millisecond log often do): a step never shows two.
    this.#seek(Number(next.start_ns), state.shown + 1);
    this.replayPlay.textContent = state.cursor >= state.end ? "Play again" : "Play";
  }

  stopTimer() {
    if (this.replayTimer) cancelAnimationFrame(this.replayTimer);
    this.replayTimer = null;
  }

  /** Leave the replay: the live trace again, with whatever arrived meanwhile. */
  stopReplay() {
    this.stopTimer();
    if (!this.replayState) return;
    this.replayState = null;
    this.store = this.liveStore;
    this.replayBar.hidden = true;
    delete this.root.dataset.replay;
    this.pickedTrace = "";
    this.pickerSize = null;
    this.#requestFrame(true);
  }

  #seek(cursor, exactly = null) {
    const state = this.replayState;
    const count = state.spans.findIndex((span) => Number(span.start_ns) > cursor);
    const shown = exactly ?? (count < 0 ? state.spans.length : count);
    if (shown < state.shown) {
      this.store.clear();
      this.store.add(state.spans.slice(0, shown));
    } else if (shown > state.shown) {
      this.store.add(state.spans.slice(state.shown, shown));
    }
    state.cursor = shown === state.spans.length && count < 0 ? Math.max(cursor, Number(state.spans.at(-1).start_ns)) : cursor;
    state.shown = shown;
    const total = state.end - state.start;
    const done = Math.max(0, state.cursor - state.start);
    this.replayScrubber.value = String(total > 0 ? Math.round((done / total) * 1000) : 1000);
    this.replayScrubber.setAttribute("aria-valuetext", `${formatMs(done / 1e6)} of ${formatMs(total / 1e6)}`);
    this.replayClock.textContent = `${formatMs(done / 1e6)} / ${formatMs(total / 1e6)} · ${shown} of ${state.spans.length} spans`;
    Object.assign(this.replayBar.dataset, { shown: String(shown), total: String(state.spans.length) });
    this.#requestFrame(true);
  }

  /** Resolve after the next drawing frame (a hook for tests and callers). */
  drawn() {
    return new Promise((resolve) => {
      this.drawnWaiters.push(resolve);
      this.#requestFrame();
    });
  }

  selectSpan(spanId) {
    this.selectedSpanId = spanId;
    const span = this.store.findSpan(spanId);
    this.#showDetails(span);
    this.#markSelection();
  }

  // --- building ---------------------------------------------------------

  #build() {
    this.root.classList.add("trace-view");
    this.root.replaceChildren();
    const toolbar = html("div", { class: "trace-toolbar" });
    this.note = html("span", { class: "trace-note", "aria-live": "polite" }, "No spans yet.");
    const pickerLabel = html("label", { class: "trace-picker-label" }, "Trace ");
    this.picker = html("select", { class: "trace-picker" });
    pickerLabel.append(this.picker);
    const switchLabel = html("label", { class: "trace-background-switch" });
    this.backgroundSwitch = html("input", { type: "checkbox" });
    this.backgroundSwitch.checked = this.showBackground;
    this.backgroundSwitch.addEventListener("change", () => this.setShowBackground(this.backgroundSwitch.checked));
    switchLabel.append(this.backgroundSwitch, " Show the lab's own calls");
    toolbar.append(this.note, this.#filterChip(), pickerLabel, switchLabel, this.#legend());
    this.replayBar = this.#replayBar();
    // The option list is rebuilt at most every 750 ms while spans pour in; make
    // it current the moment the learner reaches for it.
    for (const event of ["pointerdown", "focus", "keydown"]) {
      this.picker.addEventListener(event, () => this.#updatePicker(this.#visible(), true));
    }
    this.picker.addEventListener("change", () => {
      this.pickedTrace = this.picker.value;
      this.follow = true;
      this.followWaterfall = !this.pickedTrace; // a picked trace reads from its root down
      if (this.pickedTrace) this.wfScroll.scrollTop = 0;
      this.#requestFrame(true);
    });

    this.seqScroll = html("div", { class: "seq-scroll", tabindex: "0", role: "region", "aria-label": "Sequence diagram" });
    this.seqHeader = html("div", { class: "seq-header" });
    this.seqSpacer = html("div", { class: "seq-spacer" });
    this.seqSvg = svg("svg", { class: "seq-window", role: "list" });
    this.seqSpacer.append(this.seqSvg);
    this.seqScroll.append(this.seqHeader, this.seqSpacer);

    this.wfScroll = html("div", { class: "wf-scroll", tabindex: "0", role: "region", "aria-label": "Waterfall" });
    this.wfSpacer = html("div", { class: "wf-spacer" });
    this.wfSvg = svg("svg", { class: "wf-window", role: "list" });
    this.wfSpacer.append(this.wfSvg);
    this.wfScroll.append(this.wfSpacer);

    this.details = html("section", { class: "span-details", "aria-live": "polite" });
    this.details.append(html("p", { class: "muted" }, "Click an arrow or a bar to see its span."));

    const seqTitle = html("h3", { class: "trace-heading" }, "Sequence");
    const wfTitle = html("h3", { class: "trace-heading" }, "Waterfall");
    this.root.append(toolbar, this.replayBar, seqTitle, this.seqScroll, wfTitle, this.wfScroll, this.details);

    for (const scroller of [this.seqScroll, this.wfScroll]) {
      scroller.addEventListener("scroll", () => this.#onScroll(scroller), { passive: true });
    }
    for (const drawing of [this.seqSvg, this.wfSvg]) {
      drawing.addEventListener("click", (event) => this.#onPick(event));
      drawing.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          this.#onPick(event);
        }
      });
    }
    if (typeof ResizeObserver !== "undefined") {
      // Only a change of width moves lifelines and bars; other resizes (the page
      // growing below) must not redraw, or every element would be replaced.
      new ResizeObserver(() => {
        if (this.root.clientWidth !== this.laidOutWidth) this.#requestFrame(true);
      }).observe(this.root);
    }
  }

  #filterChip() {
    this.filterChip = html("span", { class: "trace-filter badge" });
    this.filterChip.hidden = true;
    this.filterText = html("span", { class: "trace-filter-text" });
    const clear = html("button", { type: "button", class: "small secondary trace-filter-clear", "aria-label": "Clear the filter: show every call" }, "×");
    clear.addEventListener("click", () => this.clearFilter());
    this.filterChip.append(this.filterText, " ", clear);
    return this.filterChip;
  }

  #replayBar() {
    const bar = html("div", { class: "replay-bar", role: "group", "aria-label": "Replay of a recorded run", tabindex: "-1" });
    bar.hidden = true;
    this.replayLabel = html("strong", { class: "replay-label" });
    this.replayPlay = html("button", { type: "button", class: "small" }, "Pause");
    this.replayPlay.addEventListener("click", () => (this.replayState?.playing ? this.pause() : this.play()));
    const step = html("button", { type: "button", class: "small secondary" }, "Step");
    step.addEventListener("click", () => this.step());
    const speedLabel = html("label", {}, "Speed ");
    this.replaySpeed = html("select", { class: "replay-speed" });
    for (const speed of REPLAY_SPEEDS) this.replaySpeed.append(html("option", { value: String(speed) }, `${speed}x`));
    this.replaySpeed.addEventListener("change", () => {
      if (this.replayState) this.replayState.speed = Number(this.replaySpeed.value);
    });
    speedLabel.append(this.replaySpeed);
    const scrubLabel = html("label", { class: "replay-scrub" }, "Position ");
    this.replayScrubber = html("input", { type: "range", min: "0", max: "1000", step: "1", value: "0", class: "replay-scrubber" });
    this.replayScrubber.addEventListener("input", () => {
      const state = this.replayState;
      if (!state) return;
      this.pause();
      this.#seek(state.start + (Number(this.replayScrubber.value) / 1000) * (state.end - state.start));
    });
    scrubLabel.append(this.replayScrubber);
    this.replayClock = html("span", { class: "replay-clock muted", "aria-live": "off" });
    const back = html("button", { type: "button", class: "small secondary" }, "Back to live");
    back.addEventListener("click", () => this.stopReplay());
    bar.append(this.replayLabel, this.replayPlay, step, speedLabel, scrubLabel, this.replayClock, back);
    return bar;
  }

  #legend() {
    const legend = html("span", { class: "trace-legend", "aria-hidden": "true" });
    for (const [name, text] of [["http", "HTTP"], ["grpc", "gRPC"], ["amqp", "AMQP (async)"], ["error", "error"]]) {
      legend.append(html("span", { class: `legend-item proto-${name}` }, text));
    }
    return legend;
  }

  // --- frame loop -------------------------------------------------------

  #requestFrame(relayout = false) {
    if (relayout) this.needsLayout = true;
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => this.#frame());
  }

  #frame() {
    this.frameRequested = false;
    if (this.pending.length) {
      const batch = this.pending;
      this.pending = [];
      this.liveStore.add(batch);
      this.needsLayout = true;
    }
    if (this.needsLayout) {
      this.needsLayout = false;
      this.#layout();
    }
    this.#drawWindows();
    const waiters = this.drawnWaiters;
    this.drawnWaiters = [];
    for (const resolve of waiters) resolve();
  }

  #onScroll(scroller) {
    const atBottom = scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - SEQ_ROW;
    if (scroller === this.seqScroll) this.follow = atBottom;
    else this.followWaterfall = atBottom;
    this.#requestFrame();
  }

  // --- layout: which traces, rows and lifelines are shown ---------------

  #layout() {
    // What the drawn windows depend on: a window is redrawn only when this changes
    // (or it scrolls out of its drawn rows), so elements stay put between changes.
    this.version = `${this.store.spanCount}:${this.store.maxSeq}:${this.store.traces.size}:${this.pickedTrace}:${this.root.clientWidth}:${this.showBackground}:${Boolean(this.replayState)}:${this.filter?.label ?? ""}`;
    this.laidOutWidth = this.root.clientWidth;
    // The learner's own work first: the lab's polling stays out of sight unless asked for.
    const all = this.#visible();
    this.hiddenBackground = this.store.traces.size - all.length;
    if (this.pickedTrace.startsWith("run:")) {
      const run = this.pickedTrace.slice(4);
      this.shown = all.filter((trace) => trace.run === run).slice(-PICKER_LIMIT);
    } else {
      const picked = this.pickedTrace && this.store.traces.get(this.pickedTrace);
      // A filter looks through every kept trace, not only the most recent ones.
      this.shown = picked ? [picked] : this.filter ? all : all.slice(-this.maxTraces);
    }
    // What each shown trace draws: all of it, or only the filter's calls.
    let parts = this.shown.map((trace) => ({ trace, hops: trace.hops, rows: trace.rows }));
    this.filteredCalls = 0;
    if (this.filter) {
      parts = parts
        .map((part) => ({ trace: part.trace, ...filterTrace(part.trace, this.filter.where) }))
        .filter((part) => part.calls > 0);
      for (const part of parts) this.filteredCalls += part.calls;
      parts = parts.slice(-PICKER_LIMIT);
      this.shown = parts.map((part) => part.trace);
    }
    this.seqRows = [];
    this.wfRows = [];
    const counts = { http: 0, grpc: 0, amqp: 0, error: 0 };
    for (const { trace, hops, rows } of parts) {
      this.seqRows.push({ trace });
      for (const hop of hops) {
        this.seqRows.push({ hop });
        counts[hop.protocol] = (counts[hop.protocol] || 0) + 1;
        if (hop.error) counts.error += 1;
      }
      this.wfRows.push({ trace });
      for (const row of rows) this.wfRows.push({ ...row, trace });
    }
    this.lifelines = this.liveStore.lifelinesFor(parts.flatMap((part) => part.hops), this.declaredLifelines);
    const width = Math.max(this.seqScroll.clientWidth - 2, 200);
    this.gap = Math.max(MIN_LIFELINE_GAP, width / Math.max(1, this.lifelines.length));
    this.seqWidth = Math.max(width, this.gap * this.lifelines.length);
    this.lifelineX = new Map(this.lifelines.map((name, index) => [name, this.gap * (index + 0.5)]));

    this.#drawHeader();
    this.seqSpacer.style.height = `${this.seqRows.length * SEQ_ROW}px`;
    this.seqSpacer.style.width = `${this.seqWidth}px`;
    this.wfSpacer.style.height = `${this.wfRows.length * WATERFALL_ROW}px`;
    if (this.follow) this.seqScroll.scrollTop = this.seqScroll.scrollHeight;
    if (this.followWaterfall) this.wfScroll.scrollTop = this.wfScroll.scrollHeight;

    this.#updateNote(all.length);
    this.#updateFilterChip();
    this.#updatePicker(all);
    Object.assign(this.root.dataset, {
      spans: String(this.store.spanCount),
      traces: String(all.length),
      hiddenBackground: String(this.hiddenBackground),
      shownTraces: String(this.shown.length),
      hopsHttp: String(counts.http),
      hopsGrpc: String(counts.grpc),
      hopsAmqp: String(counts.amqp),
      hopsError: String(counts.error),
      lastSeq: String(this.store.maxSeq),
      filter: this.filter?.label ?? "",
      filteredCalls: String(this.filteredCalls),
    });
  }

  #updateFilterChip() {
    this.filterChip.hidden = !this.filter;
    if (!this.filter) return;
    const calls = this.filteredCalls;
    this.filterText.textContent = `filtered: ${this.filter.label} (${calls} call${calls === 1 ? "" : "s"})`;
  }

  /** The traces the learner asked to see, oldest first. */
  #visible() {
    const every = this.store.tracesByStart();
    return this.showBackground ? every : every.filter((trace) => trace.run !== BACKGROUND);
  }

  #updateNote(total) {
    const hidden = this.hiddenBackground ? ` · ${this.hiddenBackground} of the lab's own hidden` : "";
    if (!total) {
      this.note.textContent = this.hiddenBackground ? `No traces of your runs yet${hidden}.` : "No spans yet.";
    } else if (this.filter) {
      this.note.textContent = `Showing the ${this.shown.length} traces with calls ${this.filter.label}${hidden}.`;
    } else if (this.pickedTrace.startsWith("run:")) {
      this.note.textContent = `Showing the ${this.shown.length} traces of one run${hidden}.`;
    } else if (this.pickedTrace) {
      this.note.textContent = `Showing 1 picked trace of ${total}${hidden}.`;
    } else {
      this.note.textContent = `Showing last ${this.shown.length} of ${total} traces${hidden}.`;
    }
  }

  #updatePicker(all, immediately = false) {
    // Rebuilding hundreds of <option>s each frame would cost more than the drawing: throttle.
    const now = performance.now();
    if (this.pickerSize === all.length && this.pickerNewest === all.at(-1)?.id) return;
    if (!immediately && this.pickerBuiltAt && now - this.pickerBuiltAt < 750) {
      this.#requestFrameLater();
      return;
    }
    this.pickerBuiltAt = now;
    this.pickerSize = all.length;
    this.pickerNewest = all.at(-1)?.id;
    const options = [html("option", { value: "" }, `Most recent ${Math.min(this.maxTraces, all.length)}`)];
    // Runs newest first, each with its traces under it; then traces of no run.
    const groups = new Map();
    for (const trace of all.slice(-PICKER_LIMIT).reverse()) {
      if (!groups.has(trace.run)) groups.set(trace.run, []);
      groups.get(trace.run).push(trace);
    }
    const runNumbers = [...this.runs.keys()];
    for (const [run, traces] of groups) {
      let label;
      if (run === BACKGROUND) label = "The lab's own calls (background)";
      else if (!run) label = "Other traces";
      else {
        const info = this.runs.get(run);
        const number = info?.number ?? runNumbers.indexOf(run) + 1;
        label = info ? `${describeRun(info)}${number > 0 ? ` (run #${number})` : ""}` : `Run ${run.slice(0, 8)}`;
      }
      const group = html("optgroup", { label });
      group.dataset.run = run;
      if (run && run !== BACKGROUND) {
        group.append(html("option", { value: `run:${run}` }, `All ${traces.length} trace${traces.length === 1 ? "" : "s"} of this run`));
      }
      for (const trace of traces) {
        const text = `${clockTime(trace.start)} ${clip(trace.title, 40)}${trace.errors ? " ✕" : ""}`;
        group.append(html("option", { value: trace.id }, text));
      }
      options.push(group);
    }
    this.picker.replaceChildren(...options);
    this.picker.value = this.pickedTrace;
    if (this.picker.value !== this.pickedTrace) this.picker.value = "";
  }

  #requestFrameLater() {
    if (this.laterTimer) return;
    this.laterTimer = setTimeout(() => {
      this.laterTimer = null;
      this.#updatePicker(this.#visible());
    }, 800);
  }

  #drawHeader() {
    // Every frame with new spans comes here; the labels are rebuilt only when a lifeline
    // or its column changed, so a label a reader is pointing at is never swapped under them.
    const key = `${this.seqWidth}|${this.lifelines.map((name) => `${name}@${this.lifelineX.get(name)}`).join("|")}`;
    if (key === this.headerKey) return;
    this.headerKey = key;
    const labels = this.lifelines.map((name) => {
      const label = html("span", { class: "lifeline-label", title: name }, clip(name, 18));
      label.style.left = `${this.lifelineX.get(name)}px`;
      return label;
    });
    this.seqHeader.style.width = `${this.seqWidth}px`;
    this.seqHeader.replaceChildren(...labels);
  }

  // --- drawing the visible windows --------------------------------------

  #drawWindows() {
    if (!this.seqRows) return;
    this.#drawSequenceWindow();
    this.#drawWaterfallWindow();
  }

  /**
   * Decide whether a window needs drawing, and which rows.
   *
   * A window is redrawn only when the data changed or the rows on screen leave
   * the rows drawn (which include an overscan margin). Small scrolls, such as a
   * click that scrolls its target into view, keep the same elements.
   */
  #windowToDraw(name, scroller, rowHeight, rowCount, headerHeight, width) {
    const top = Math.max(0, scroller.scrollTop - headerHeight);
    const visibleFirst = Math.floor(top / rowHeight);
    const visibleLast = Math.min(rowCount, visibleFirst + Math.ceil((scroller.clientHeight || 300) / rowHeight) + 1);
    this.drawn = this.drawn || {};
    const previous = this.drawn[name];
    if (
      previous &&
      previous.version === this.version &&
      previous.width === width &&
      previous.first <= visibleFirst &&
      previous.last >= Math.min(visibleLast, rowCount)
    ) {
      return null;
    }
    const first = Math.max(0, visibleFirst - OVERSCAN);
    const last = Math.min(rowCount, visibleLast + OVERSCAN);
    this.drawn[name] = { version: this.version, width, first, last };
    return [first, last];
  }

  /** Mark the selected span in place, without redrawing. */
  #markSelection() {
    for (const node of this.root.querySelectorAll(".is-selected")) node.classList.remove("is-selected");
    if (!this.selectedSpanId) return;
    for (const node of this.root.querySelectorAll(`[data-span-id="${CSS.escape(this.selectedSpanId)}"]`)) {
      node.classList.add("is-selected");
    }
  }

  #drawSequenceWindow() {
    const headerHeight = this.seqHeader.offsetHeight;
    const range = this.#windowToDraw("seq", this.seqScroll, SEQ_ROW, this.seqRows.length, headerHeight, this.seqWidth);
    if (!range) return;
    const [first, last] = range;
    const height = Math.max(0, (last - first) * SEQ_ROW);
    this.seqSvg.setAttribute("width", this.seqWidth);
    this.seqSvg.setAttribute("height", height);
    this.seqSvg.setAttribute("viewBox", `0 ${first * SEQ_ROW} ${this.seqWidth} ${height}`);
    this.seqSvg.style.top = `${first * SEQ_ROW}px`;

    const nodes = [this.#markers()];
    for (const name of this.lifelines) {
      const x = this.lifelineX.get(name);
      nodes.push(svg("line", { class: "lifeline", x1: x, x2: x, y1: first * SEQ_ROW, y2: last * SEQ_ROW }));
    }
    for (let index = first; index < last; index += 1) {
      const row = this.seqRows[index];
      const y = index * SEQ_ROW;
      nodes.push(row.trace ? this.#traceSeparator(row.trace, y) : this.#hop(row.hop, y));
    }
    this.seqSvg.replaceChildren(...nodes);
  }

  #markers() {
    const defs = svg("defs");
    for (const name of ["http", "grpc", "amqp", "internal", "error"]) {
      const marker = svg("marker", {
        id: `${this.id}-arrow-${name}`,
        viewBox: "0 0 10 10",
        refX: "9",
        refY: "5",
        markerWidth: "7",
        markerHeight: "7",
        orient: "auto-start-reverse",
      });
      marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", class: `head proto-${name}` }));
      defs.append(marker);
    }
    return defs;
  }

  #traceSeparator(trace, y) {
    const group = svg("g", { class: "trace-separator", "data-trace-id": trace.id });
    // A rule above, the trace's name under it: the heading of the arrows that follow.
    group.append(svg("line", { x1: 0, x2: this.seqWidth, y1: y + 3, y2: y + 3 }));
    const text = `${clockTime(trace.start)}  ${trace.title}  · trace ${trace.id.slice(0, 8)}`;
    group.append(svg("text", { x: 4, y: y + 15 }, clip(text, Math.floor(this.seqWidth / 7))));
    return group;
  }

  #hop(hop, y) {
    const x1 = this.lifelineX.get(hop.from);
    const x2 = this.lifelineX.get(hop.to);
    const lineY = y + SEQ_ROW - 8;
    const style = hop.error ? "error" : hop.protocol;
    const group = svg("g", {
      class: `hop proto-${hop.protocol}${hop.error ? " is-error" : ""}${hop.async ? " is-async" : ""}${
        hop.span.span_id === this.selectedSpanId ? " is-selected" : ""
      }`,
      "data-protocol": hop.protocol,
      "data-span-id": hop.span.span_id,
      "data-status": hop.error ? "error" : "ok",
      role: "listitem",
      tabindex: "0",
      "aria-label": `${hop.from} to ${hop.to}, ${hop.protocol}, ${hop.label}${hop.error ? ", error" : ""}`,
    });
    // A wide transparent band makes a thin arrow easy to click.
    const left = Math.min(x1, x2);
    const width = Math.max(Math.abs(x2 - x1), 40);
    group.append(svg("rect", { class: "hit", x: left, y, width, height: SEQ_ROW }));
    const marker = `url(#${this.id}-arrow-${style})`;
    if (hop.from === hop.to) {
      const loop = `M${x1},${lineY - 8} h24 v10 h-22`;
      group.append(svg("path", { class: "hop-line", d: loop, "marker-end": marker, fill: "none" }));
    } else {
      group.append(svg("line", { class: "hop-line", x1, x2: x2 + (x2 > x1 ? -2 : 2), y1: lineY, y2: lineY, "marker-end": marker }));
    }
    const labelChars = Math.max(8, Math.floor((Math.abs(x2 - x1) || 140) / 6.2));
    const labelX = hop.from === hop.to ? x1 + 30 : (x1 + x2) / 2;
    const anchor = hop.from === hop.to ? "start" : "middle";
    const nameChars = labelChars - hop.metric.length - 3;
    const label = nameChars >= 4 ? `${clip(hop.name, nameChars)} · ${hop.metric}` : hop.metric;
    group.append(svg("text", { class: "hop-label", x: labelX, y: lineY - 5, "text-anchor": anchor }, label));
    // The label is cut to the gap between two lifelines; hovering shows it whole.
    group.append(svg("title", {}, `${hop.from} → ${hop.to}: ${hop.name} · ${hop.metric}`));
    if (hop.error) {
      // A drawn cross, not a glyph: it must not depend on the fonts installed.
      const cx = x2 + (x2 >= x1 ? -18 : 18);
      const cross = svg("g", { class: "hop-cross" });
      cross.append(
        svg("circle", { cx, cy: lineY, r: 7 }),
        svg("path", { d: `M${cx - 4},${lineY - 4} L${cx + 4},${lineY + 4} M${cx - 4},${lineY + 4} L${cx + 4},${lineY - 4}` }),
      );
      group.append(cross);
    }
    return group;
  }

  #drawWaterfallWindow() {
    const width = Math.max(this.wfScroll.clientWidth - 2, 300);
    const labelWidth = Math.min(260, Math.max(150, width * 0.38));
    const barWidth = width - labelWidth - 70;
    const range = this.#windowToDraw("wf", this.wfScroll, WATERFALL_ROW, this.wfRows.length, 0, width);
    if (!range) return;
    const [first, last] = range;
    const height = Math.max(0, (last - first) * WATERFALL_ROW);
    this.wfSvg.setAttribute("width", width);
    this.wfSvg.setAttribute("height", height);
    this.wfSvg.setAttribute("viewBox", `0 ${first * WATERFALL_ROW} ${width} ${height}`);
    this.wfSvg.style.top = `${first * WATERFALL_ROW}px`;
    const nodes = [];
    for (let index = first; index < last; index += 1) {
      const row = this.wfRows[index];
      const y = index * WATERFALL_ROW;
      if (!row.span) {
        // Each trace has its own time axis, from its first start to its last end.
        const total = formatMs((row.trace.end - row.trace.start) / 1e6);
        const text = `${clockTime(row.trace.start)} ${row.trace.title}`;
        nodes.push(svg("text", { class: "wf-trace", x: 2, y: y + 15 }, clip(text, Math.floor((labelWidth - 6) / 6.3))));
        const axisY = y + WATERFALL_ROW - 3;
        nodes.push(svg("line", { class: "wf-axis", x1: labelWidth, x2: labelWidth + barWidth, y1: axisY, y2: axisY }));
        for (const fraction of [0, 0.5, 1]) {
          const x = labelWidth + fraction * barWidth;
          nodes.push(svg("line", { class: "wf-axis", x1: x, x2: x, y1: axisY - 4, y2: axisY }));
        }
        nodes.push(svg("text", { class: "wf-tick", x: labelWidth, y: axisY - 6, "text-anchor": "start" }, "0"));
        nodes.push(svg("text", { class: "wf-tick", x: labelWidth + barWidth, y: axisY - 6, "text-anchor": "end" }, total));
        continue;
      }
      const { span, depth, trace } = row;
      const span_ns = Math.max(1, trace.end - trace.start);
      const x = labelWidth + ((Number(span.start_ns) - trace.start) / span_ns) * barWidth;
      const w = Math.max(2, (durationMs(span) * 1e6 / span_ns) * barWidth);
      const error = span.status === "error";
      const group = svg("g", {
        class: `wf-row proto-${span.protocol || "internal"}${error ? " is-error" : ""}${
          span.span_id === this.selectedSpanId ? " is-selected" : ""
        }`,
        "data-span-id": span.span_id,
        "data-protocol": span.protocol || "internal",
        role: "listitem",
        tabindex: "0",
        "aria-label": `${span.service} ${displayName(span)}, ${formatMs(durationMs(span))}${error ? ", error" : ""}`,
      });
      group.append(svg("rect", { class: "hit", x: 0, y, width, height: WATERFALL_ROW }));
      const labelChars = Math.floor((labelWidth - 8 - depth * 12) / 6.2);
      group.append(svg("text", { class: "wf-label", x: 6 + depth * 12, y: y + 15 }, clip(`${span.service}: ${displayName(span)}`, labelChars)));
      group.append(svg("rect", { class: "wf-bar", x, y: y + 5, width: w, height: WATERFALL_ROW - 10, rx: 2 }));
      group.append(svg("text", { class: "wf-duration", x: Math.min(x + w + 4, width - 66), y: y + 15 }, `${error ? "✕ " : ""}${formatMs(durationMs(span))}`));
      nodes.push(group);
    }
    this.wfSvg.replaceChildren(...nodes);
  }

  // --- details ----------------------------------------------------------

  #onPick(event) {
    const target = event.target.closest?.("[data-span-id]");
    if (target) this.selectSpan(target.getAttribute("data-span-id"));
  }

  #showDetails(span) {
    if (!span) {
      this.details.replaceChildren(html("p", { class: "muted" }, "That span is no longer kept."));
      return;
    }
    const attributes = span.attributes || {};
    const first = (...keys) => keys.map((key) => attributes[key]).find((value) => value != null);
    const bytes = Object.entries(attributes)
      .filter(([key]) => /bytes|size|content_length/i.test(key))
      .map(([key, value]) => `${value} (${key})`)
      .join(", ");
    const summary = [
      ["span", `${span.service}: ${span.name}`],
      ["method", first("http.request.method", "http.method", "rpc.method", "messaging.operation", "messaging.operation.name") ?? span.name],
      ["status", `${span.status}${(() => {
        const code = first("http.response.status_code", "http.status_code", "rpc.grpc.status_code");
        return code != null ? ` (${code})` : "";
      })()}`],
      ["bytes", bytes || "—"],
      ["peer", span.peer || first("net.peer.name", "server.address", "net.peer.ip") || "—"],
      ["kind / protocol", `${span.kind} / ${span.protocol}`],
      ["duration", formatMs(durationMs(span))],
      ["started", clockTime(span.start_ns)],
      ["trace", span.trace_id],
      ["span id", span.span_id],
      ["parent", span.parent_id || "—"],
      ["seq", span.seq ?? "—"],
    ];
    const heading = html("h3", {}, `Span ${displayName(span)}`);
    if (span.status === "error") heading.append(html("span", { class: "badge badge-error" }, "error"));
    const list = html("dl", { class: "span-summary" });
    for (const [term, value] of summary) list.append(html("dt", {}, term), html("dd", {}, String(value)));
    const table = html("table", { class: "span-attributes" });
    table.append(html("caption", {}, "All attributes"));
    const keys = Object.keys(attributes).sort();
    for (const key of keys) {
      const row = html("tr");
      const value = attributes[key];
      row.append(html("th", { scope: "row" }, key), html("td", {}, typeof value === "object" ? JSON.stringify(value) : String(value)));
      table.append(row);
    }
    if (!keys.length) table.append(html("tr", {}, "No attributes."));
    this.details.replaceChildren(heading, list, table);
    this.details.dataset.spanId = span.span_id;
  }
}
