// The trace model: turns spans (in any order, possibly repeated) into traces,
// the hops of a sequence diagram and the rows of a waterfall.
// It knows nothing about drawing, so it can be tested and reused on its own.

export const LEARNER = "learner";
export const BROKER = "rabbitmq";
// The run of the lab's own calls (probes, gauges, pollers): no experiment run started them.
export const BACKGROUND = "background";

/** Span duration in milliseconds (end may be missing while a span is open). */
export function durationMs(span) {
  const start = Number(span.start_ns);
  const end = Number(span.end_ns ?? span.start_ns);
  return Math.max(0, (end - start) / 1e6);
}

export function formatMs(ms) {
  if (ms == null || Number.isNaN(ms)) return "";
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/**
 * Holds every span kept so far, grouped by trace.
 *
 * Spans are deduplicated by `seq` (the server's per-sandbox sequence number),
 * because a reconnect replays from `since` and batches may overlap. A trace is
 * re-derived whenever one of its spans arrives, since a parent may come after
 * its child.
 */
export class TraceStore {
  constructor({ maxKeptTraces = 2000 } = {}) {
    this.maxKeptTraces = maxKeptTraces;
    this.clear();
  }

  clear() {
    this.seen = new Set();
    this.traces = new Map(); // trace_id -> Trace
    this.spanCount = 0;
    this.maxSeq = -1;
    this.evictedTraces = 0;
  }

  /** Add spans; return the number actually new. */
  add(items) {
    let added = 0;
    const dirty = new Set();
    for (const span of items) {
      if (!span || !span.trace_id) continue;
      const key = span.seq != null ? `q${span.seq}` : `s${span.trace_id}:${span.span_id}`;
      if (this.seen.has(key)) continue;
      this.seen.add(key);
      if (span.seq != null && span.seq > this.maxSeq) this.maxSeq = span.seq;
      let trace = this.traces.get(span.trace_id);
      if (!trace) {
        trace = { id: span.trace_id, spans: new Map(), start: Infinity, end: -Infinity };
        this.traces.set(span.trace_id, trace);
      }
      if (!trace.spans.has(span.span_id)) this.spanCount += 1;
      trace.spans.set(span.span_id, span);
      trace.start = Math.min(trace.start, Number(span.start_ns));
      trace.end = Math.max(trace.end, Number(span.end_ns ?? span.start_ns));
      dirty.add(trace);
      added += 1;
    }
    for (const trace of dirty) derive(trace);
    this.#evict();
    return added;
  }

  #evict() {
    if (this.traces.size <= this.maxKeptTraces) return;
    const oldest = [...this.traces.values()].sort((a, b) => a.start - b.start);
    for (const trace of oldest.slice(0, this.traces.size - this.maxKeptTraces)) {
      this.spanCount -= trace.spans.size;
      // Forget their keys too, or a long session grows without bound; a
      // reconnect only replays spans after the newest seq, never these.
      for (const span of trace.spans.values()) {
        this.seen.delete(span.seq != null ? `q${span.seq}` : `s${span.trace_id}:${span.span_id}`);
      }
      this.traces.delete(trace.id);
      this.evictedTraces += 1;
    }
  }

  /** Traces oldest first. */
  tracesByStart() {
    return [...this.traces.values()].sort((a, b) => a.start - b.start);
  }

  /**
   * Lifelines for these hops, in an order that never changes while the page
   * lives: the lesson's declared columns (all of them, so every run draws a
   * service in the same place), then any other name in the order it was first
   * seen. With nothing declared, the learner comes first.
   */
  lifelinesFor(hops, declared = []) {
    this.seenLifelines ??= [];
    const used = new Set();
    for (const hop of [...hops].sort((a, b) => a.start - b.start)) {
      for (const name of [hop.from, hop.to]) {
        used.add(name);
        if (!declared.includes(name) && !this.seenLifelines.includes(name)) {
          if (name === LEARNER) this.seenLifelines.unshift(name);
          else this.seenLifelines.push(name);
        }
      }
    }
    return [...declared, ...this.seenLifelines.filter((name) => used.has(name))];
  }

  findSpan(spanId) {
    for (const trace of this.traces.values()) {
      const span = trace.spans.get(spanId);
      if (span) return span;
    }
    return null;
  }
}

/** Compute a trace's hops (diagram arrows) and waterfall rows from its spans. */
export function derive(trace) {
  const spans = [...trace.spans.values()].sort((a, b) => Number(a.start_ns) - Number(b.start_ns));
  const children = new Map();
  for (const span of spans) {
    if (!span.parent_id) continue;
    if (!children.has(span.parent_id)) children.set(span.parent_id, []);
    children.get(span.parent_id).push(span);
  }
  trace.hops = [];
  for (const span of spans) {
    const hop = hopFor(span, trace.spans.get(span.parent_id), children.get(span.span_id) || []);
    if (hop) trace.hops.push(hop);
  }
  trace.rows = waterfallRows(spans, trace.spans, children);
  const root = spans.find((span) => !span.parent_id || !trace.spans.has(span.parent_id));
  trace.title = root ? `${root.service}: ${displayName(root)}` : "";
  trace.errors = spans.filter((span) => span.status === "error").length;
  trace.run = runOf(spans);
}

/**
 * The run a trace belongs to: the experiment run's id one of its spans carries,
 * "background" when all say so, "" for spans from before runs were marked.
 */
export function runOf(spans) {
  let background = false;
  for (const span of spans) {
    if (span.run && span.run !== BACKGROUND) return span.run;
    if (span.run === BACKGROUND) background = true;
  }
  return background ? BACKGROUND : "";
}

/**
 * One arrow of the sequence diagram, or null for a span that is not a hop.
 *
 * A synchronous call is drawn once, from its client span (the caller's view,
 * which includes the network); the server span becomes its `paired` span. A
 * server span with no client parent (an uninstrumented caller) is drawn from
 * its peer, or from the learner when it starts a trace. Messaging is two hops
 * through the broker: producer -> broker, broker -> consumer, both async.
 */
function hopFor(span, parent, childSpans) {
  const protocol = span.protocol || "internal";
  const base = { span, protocol, start: Number(span.start_ns), ms: durationMs(span) };
  switch (span.kind) {
    case "client": {
      const server = childSpans.find((child) => child.kind === "server");
      const to = server?.service || span.peer || "?";
      return hopWith(base, { from: span.service, to, paired: server, async: false });
    }
    case "server": {
      if (parent && parent.kind === "client") return null;
      const from = span.peer || (parent ? parent.service : LEARNER);
      return hopWith(base, { from, to: span.service, async: false });
    }
    case "producer": {
      // pika's instrumentation nests two PRODUCER spans per publish: draw the outer one.
      if (parent && parent.kind === "producer" && parent.service === span.service) return null;
      return hopWith(base, { from: span.service, to: BROKER, async: true });
    }
    case "consumer": {
      const publisher = parent && parent.kind === "producer" ? parent : null;
      // The interesting number on a delivery is how long the message waited.
      const waitMs = publisher ? (Number(span.start_ns) - Number(publisher.start_ns)) / 1e6 : null;
      return hopWith(base, {
        from: BROKER,
        to: span.service,
        async: true,
        paired: publisher,
        metric: waitMs != null ? `waited ${formatMs(Math.max(0, waitMs))}` : undefined,
      });
    }
    default:
      return null;
  }
}

const HTTP_METHODS = new Set(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]);

/**
 * A short, telling name for a span. HTTP client spans are often named just
 * "GET": add the path. gRPC names carry the package ("/pkg.v1.Service/Method"):
 * keep "Service/Method", which is what a reader looks for.
 */
export function displayName(span) {
  // RabbitMQ names carry the sandbox's prefix ("lab.<32 hex>.orders send"): the learner knows "orders".
  const name = (span.name || "").replace(/\blab\.[0-9a-f]{32}\./g, "");
  const attributes = span.attributes || {};
  if (HTTP_METHODS.has(name.toUpperCase())) {
    let path = attributes["url.path"] || attributes["http.route"] || attributes["http.target"];
    const full = attributes["url.full"] || attributes["http.url"];
    if (!path && full) {
      try {
        path = new URL(full).pathname;
      } catch {
        path = "";
      }
    }
    return path ? `${name} ${path}` : name;
  }
  const grpc = name.match(/^\/?([\w.]+)\/(\w+)$/);
  if (grpc && span.protocol === "grpc") return `${grpc[1].split(".").at(-1)}/${grpc[2]}`;
  return name;
}

function hopWith(base, extra) {
  const hop = { ...base, ...extra };
  hop.protocol = hop.async ? "amqp" : base.protocol;
  hop.error = base.span.status === "error" || extra.paired?.status === "error";
  // The diagram shortens the name to fit, never the number: latency is the point.
  hop.name = displayName(base.span);
  hop.metric = extra.metric || formatMs(base.ms);
  hop.label = `${hop.name} · ${hop.metric}`;
  return hop;
}

/** Depth-first rows: each root, then its children by start time, indented by depth. */
function waterfallRows(spans, byId, children) {
  const rows = [];
  const visited = new Set(); // malformed data could make a parent cycle; draw each span once
  const visit = (span, depth) => {
    if (visited.has(span.span_id)) return;
    visited.add(span.span_id);
    rows.push({ span, depth });
    for (const child of children.get(span.span_id) || []) visit(child, depth + 1);
  };
  for (const span of spans) {
    if (!span.parent_id || !byId.has(span.parent_id)) visit(span, 0);
  }
  return rows;
}

/**
 * Tell whether a span is one a filter names: `where` lists a service, a kind
 * and attribute values; every one given must be equal.
 * @param {object} span
 * @param {{service?: string, kind?: string, attributes?: object}} where
 */
export function spanMatches(span, where) {
  if (where.service != null && span.service !== where.service) return false;
  if (where.kind != null && span.kind !== where.kind) return false;
  const attributes = span.attributes || {};
  return Object.entries(where.attributes || {}).every(([key, value]) => attributes[key] === value);
}

/**
 * A trace reduced to the calls a filter names: the arrows of those calls, and
 * in the waterfall each call's span with the server span that answered it.
 * Returns the count of calls too (0: the trace has none).
 */
export function filterTrace(trace, where) {
  const hops = trace.hops.filter((hop) => spanMatches(hop.span, where));
  const rows = [];
  let calls = 0;
  for (const { span } of trace.rows) {
    if (!spanMatches(span, where)) continue;
    calls += 1;
    rows.push({ span, depth: 0 });
    for (const other of trace.spans.values()) {
      if (other.parent_id === span.span_id && other.kind === "server") rows.push({ span: other, depth: 1 });
    }
  }
  return { hops, rows, calls };
}
