// Synthetic spans, results and metrics for the static harness page: the
// shapes of docs/architecture.md and RESULT_SHAPE, no server needed.

const hex = (n, width) => n.toString(16).padStart(width, "0").slice(-width);
let spanCounter = 1;
const newSpanId = () => hex(spanCounter++, 16);

function span(trace, parent, fields, startMs, endMs) {
  return {
    trace_id: trace,
    span_id: newSpanId(),
    parent_id: parent ? parent.span_id : null,
    start_ns: Math.round((trace_base + startMs) * 1e6),
    end_ns: Math.round((trace_base + endMs) * 1e6),
    status: "ok",
    attributes: {},
    ...fields,
  };
}
let trace_base = Date.UTC(2026, 10, 26, 13, 0, 0);

/** One REST call that fans out over gRPC, like the rest-vs-grpc one-call experiment. */
function restThenGrpc(trace, t0, fail) {
  const client = span(trace, null, { service: "learner", peer: "gateway", name: "GET /items", kind: "client", protocol: "http",
    attributes: { "http.request.method": "GET", "http.response.status_code": fail ? 503 : 200, "http.response.body.size": 2310 } }, t0, t0 + 9.5);
  const server = span(trace, client, { service: "gateway", peer: "learner", name: "GET /items", kind: "server", protocol: "http",
    attributes: { "http.request.method": "GET", "http.route": "/items" } }, t0 + 0.4, t0 + 9.1);
  const grpcClient = span(trace, server, { service: "gateway", peer: "catalog", name: "catalog.Catalog/ListItems", kind: "client", protocol: "grpc",
    attributes: { "rpc.method": "ListItems", "rpc.grpc.status_code": fail ? 14 : 0, "rpc.response.bytes": 812 } }, t0 + 1.2, t0 + 7.8);
  const grpcServer = span(trace, grpcClient, { service: "catalog", peer: "gateway", name: "catalog.Catalog/ListItems", kind: "server", protocol: "grpc",
    attributes: { "rpc.method": "ListItems" } }, t0 + 1.9, t0 + 7.2);
  if (fail) { client.status = "error"; server.status = "error"; grpcClient.status = "error"; grpcServer.status = "error"; }
  return [client, server, grpcClient, grpcServer];
}

/** One order published and consumed twice over RabbitMQ. */
function publishAndConsume(trace, t0) {
  const root = span(trace, null, { service: "learner", peer: "orders", name: "POST /orders", kind: "client", protocol: "http",
    attributes: { "http.request.method": "POST", "http.response.status_code": 202 } }, t0, t0 + 4);
  const server = span(trace, root, { service: "orders", peer: "learner", name: "POST /orders", kind: "server", protocol: "http" }, t0 + 0.3, t0 + 3.6);
  const publish = span(trace, server, { service: "orders", peer: "rabbitmq", name: "orders.created send", kind: "producer", protocol: "amqp",
    attributes: { "messaging.destination.name": "orders.created", "messaging.message.body.size": 164 } }, t0 + 1, t0 + 2.5);
  const inner = span(trace, publish, { service: "orders", peer: "rabbitmq", name: "orders.created send", kind: "producer", protocol: "amqp" }, t0 + 1.1, t0 + 2.4);
  const email = span(trace, inner, { service: "email", peer: "rabbitmq", name: "orders.email receive", kind: "consumer", protocol: "amqp" }, t0 + 14, t0 + 21);
  const billing = span(trace, inner, { service: "billing", peer: "rabbitmq", name: "orders.billing receive", kind: "consumer", protocol: "amqp" }, t0 + 6, t0 + 9);
  return [root, server, publish, inner, email, billing];
}

/** About `count` spans in realistic traces, shuffled in small windows as batches would be. */
export function makeSpans(count, { shuffle = true } = {}) {
  const spans = [];
  let traceNo = 0;
  while (spans.length < count) {
    const trace = `${hex((traceNo * 2654435761) >>> 0, 8)}${hex(traceNo, 24)}`;
    const t0 = traceNo * 30;
    const kind = traceNo % 3;
    spans.push(...(kind === 2 ? publishAndConsume(trace, t0) : restThenGrpc(trace, t0, traceNo % 7 === 5)));
    traceNo += 1;
  }
  spans.length = count;
  spans.forEach((item, index) => { item.seq = index + 1; });
  if (shuffle) {
    for (let i = 0; i < spans.length; i += 8) {
      const window = spans.slice(i, i + 8).reverse(); // children before parents
      spans.splice(i, window.length, ...window);
    }
  }
  return spans;
}

export const sampleResult = {
  headline: "gRPC answered in 3.1 ms at p99, REST in 5.4 ms; the gRPC body was 35% the size.",
  summary: [
    { label: "REST p99", value: 5.4, unit: "ms" },
    { label: "gRPC p99", value: 3.1, unit: "ms" },
    { label: "REST bytes", value: 2310, unit: "B" },
    { label: "gRPC bytes", value: 812, unit: "B" },
  ],
  charts: [
    { title: "Latency percentiles", type: "bar", x_label: "percentile", y_label: "ms", categories: ["p50", "p95", "p99"],
      series: [{ name: "REST", values: [2.1, 4.0, 5.4] }, { name: "gRPC", values: [1.2, 2.2, 3.1] }] },
    { title: "Queue depth", type: "line", x_label: "s", y_label: "messages",
      series: [{ name: "orders.email", points: [[0, 0], [1, 12], [2, 40], [3, 55], [4, 30], [5, 4]] }] },
  ],
  table: { columns: ["protocol", "calls", "errors"], rows: [["REST", 100, 0], ["gRPC", 100, 2]] },
  notes: ["Traces were sampled at 1% during the load."],
  ok: true,
};

const ns = (ms) => Math.round((trace_base + ms) * 1e6);
export const sagaResult = {
  headline: "Payment failed; the saga compensated in reverse and every invariant held.",
  ok: false,
  saga: {
    timeline: [
      { service: "orders", step: "create order", kind: "forward", status: "ok", start_ns: ns(0), end_ns: ns(4) },
      { service: "inventory", step: "reserve stock", kind: "forward", status: "ok", start_ns: ns(5), end_ns: ns(11) },
      { service: "payments", step: "charge card", kind: "failure", status: "error", start_ns: ns(12), end_ns: ns(18) },
      { service: "inventory", step: "release stock", kind: "compensation", status: "ok", start_ns: ns(19), end_ns: ns(24) },
      { service: "orders", step: "cancel order", kind: "compensation", status: "ok", start_ns: ns(25), end_ns: ns(29) },
    ],
    mode: "orchestration",
    saga_id: "5a6a0001deadbeef",
    lanes: ["coordinator", "orders", "inventory", "payments", "shipping"],
    state_machine: ["PENDING", "STOCK_RESERVED", "PAID", "SHIPPED", "DONE", "PAYMENT_FAILED", "COMPENSATING", "CANCELLED"],
    states: ["PENDING", "STOCK_RESERVED", "PAYMENT_FAILED", "COMPENSATING", "CANCELLED"],
    current_state: "CANCELLED",
    invariants: [
      { name: "no stock leaked", ok: true, detail: "reserved 0 after compensation" },
      { name: "order cancelled", ok: true },
      { name: "customer not charged", ok: false, detail: "1 charge without refund" },
    ],
  },
};

export function sampleMetrics(tick) {
  return {
    queues: {
      "orders.email": { depth: Math.round(20 + 15 * Math.sin(tick / 3)), unacked: tick % 4, consumers: 1, publish_rate: 50, deliver_rate: 42 + (tick % 5) },
      "orders.billing": { depth: tick % 6, unacked: 0, consumers: 2, publish_rate: 50, deliver_rate: 50 },
    },
    breaker: { open: tick % 10 > 6 },
  };
}
