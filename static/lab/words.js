// Words a learner can use: what the lab's internals say, in the lesson's terms.
// - RabbitMQ names lose the sandbox's prefix ("lab.<32 hex>.orders" -> "orders");
// - a raw client error ("ClientConnectorError(ConnectionKey(...port=41234...))")
//   becomes "catalog-rest is stopped: the connection was refused", with the raw
//   text kept behind a disclosure for whoever wants it.

const SANDBOX_PREFIX = /\blab\.[0-9a-f]{32}\./g;

/** Remove the sandbox prefix from every RabbitMQ name in a text. */
export function withoutSandboxPrefix(text) {
  return typeof text === "string" ? text.replace(SANDBOX_PREFIX, "") : text;
}

// What went wrong, from the error's own words; the first match wins.
const FAILURES = [
  [/UNAVAILABLE/, "the call failed with UNAVAILABLE"],
  [/DEADLINE_EXCEEDED/, "the call ran out of time (DEADLINE_EXCEEDED)"],
  [/ClientConnectorError|Cannot connect to host|Connection refused|ECONNREFUSED|ConnectionRefusedError/i, "the connection was refused"],
  [/ServerDisconnectedError|Connection reset|ECONNRESET|RemoteDisconnected/i, "the connection was closed mid-call"],
  [/TimeoutError|timed out|ReadTimeout/i, "the call timed out"],
  [/AMQPConnectionError|StreamLostError|ConnectionClosedByBroker/, "the connection to RabbitMQ was lost"],
  [/InjectedFault|injected/i, "an injected error (the error-rate control) answered instead"],
];

/** Tell whether a text reports a failed call the lesson can put in its own terms. */
export function looksLikeError(text) {
  // Only the transport's own words: prose about an "injected delay" or a "timeout" stays prose.
  return typeof text === "string" && (isRawError(text) || FAILURES.slice(0, 4).some(([pattern]) => pattern.test(text)));
}

/** Tell whether a text looks like a raw error rather than a sentence for the learner. */
export function isRawError(text) {
  return typeof text === "string" && (/[A-Z]\w+(Error|Exception)\(/.test(text) || /StatusCode\.\w+|ConnectionKey\(/.test(text));
}

function serviceByPort(text, services) {
  for (const match of text.matchAll(/port=(\d+)|127\.0\.0\.1:(\d+)/g)) {
    const port = Number(match[1] || match[2]);
    for (const [name, service] of Object.entries(services || {})) {
      if (Number(service?.port) === port) return name;
    }
  }
  return null;
}

/**
 * Explain a raw error in the lesson's terms.
 * @param {string} raw - the error as the experiment or the client library wrote it
 * @param {object} services - the sandbox's services ({name: {state, port}})
 * @returns {{text: string, raw: string, explained: boolean}}
 */
export function explainError(raw, services = {}) {
  const text = withoutSandboxPrefix(String(raw ?? ""));
  const failure = FAILURES.find(([pattern]) => pattern.test(text))?.[1];
  if (!failure) return { text, raw: text, explained: false };
  const stopped = Object.entries(services || {}).filter(([, service]) => service?.state && service.state !== "running");
  const named = serviceByPort(text, services) || Object.keys(services || {}).find((name) => new RegExp(`\\b${name}\\b`).test(text));
  let who = "";
  if (named) {
    const state = services[named]?.state;
    who = state && state !== "running" ? `${named} is ${state}` : `${named} did not answer`;
  } else if (stopped.length === 1) {
    who = `${stopped[0][0]} is ${stopped[0][1].state}`;
  } else if (stopped.length > 1) {
    who = `${stopped.map(([name]) => name).join(", ")} are stopped`;
  }
  const sentence = who ? `${who}: ${failure}` : `A call failed: ${failure}`;
  return { text: sentence, raw: text, explained: true };
}

/**
 * An element showing an error in the lesson's terms, the raw text behind "Raw error".
 * @param {string} raw
 * @param {object} services
 * @param {string} tag - the element for the sentence (p, span, li)
 */
export function errorElement(raw, services = {}, tag = "span") {
  const { text, explained } = explainError(raw, services);
  const node = document.createElement(tag);
  node.className = "explained-error";
  node.append(text);
  if (explained || isRawError(text)) {
    const details = document.createElement("details");
    details.className = "raw-error";
    const summary = document.createElement("summary");
    summary.textContent = "Raw error";
    const pre = document.createElement("pre");
    pre.textContent = withoutSandboxPrefix(String(raw ?? ""));
    details.append(summary, pre);
    node.append(" ", details);
  }
  return node;
}
