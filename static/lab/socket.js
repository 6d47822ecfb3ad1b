// The sandbox WebSocket: /ws/sandboxes/<id>/?since=<last seq seen>.
// Reconnects with exponential backoff and asks for what came after the last
// span it saw, so a dropped connection loses nothing. Sends a ping every 30 s
// while the page is visible: that activity keeps the sandbox alive, and a
// hidden tab should let an idle sandbox expire.

const PING_EVERY_MS = 30_000;
const MAX_BACKOFF_MS = 15_000;

export class SandboxSocket {
  /**
   * @param {string} sandboxId
   * @param {{onMessage: (message: object) => void, lastSeq: () => number, onStatus?: (status: string) => void}} handlers
   */
  constructor(sandboxId, { onMessage, lastSeq, onStatus = () => {} }) {
    this.sandboxId = sandboxId;
    this.onMessage = onMessage;
    this.lastSeq = lastSeq;
    this.onStatus = onStatus;
    this.backoff = 500;
    this.closed = false;
    this.pingTimer = null;
    this.onVisibility = () => this.#schedulePing();
    document.addEventListener("visibilitychange", this.onVisibility);
    this.#connect();
  }

  #url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const since = Math.max(0, this.lastSeq());
    return `${scheme}://${location.host}/ws/sandboxes/${this.sandboxId}/?since=${since}`;
  }

  #connect() {
    if (this.closed) return;
    this.onStatus("connecting");
    const socket = new WebSocket(this.#url());
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.backoff = 500;
      this.onStatus("live");
      this.#schedulePing();
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // Not ours to interpret; the server only sends JSON.
      }
      this.onMessage(message);
    });
    socket.addEventListener("close", () => {
      clearInterval(this.pingTimer);
      this.pingTimer = null;
      if (this.closed) return;
      this.onStatus("reconnecting");
      // Jitter spreads a class's reconnects after a server restart.
      const wait = this.backoff * (0.75 + Math.random() * 0.5);
      this.backoff = Math.min(MAX_BACKOFF_MS, this.backoff * 2);
      this.retryTimer = setTimeout(() => this.#connect(), wait);
    });
  }

  #schedulePing() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
    if (document.visibilityState !== "visible" || this.socket?.readyState !== WebSocket.OPEN) return;
    this.#send({ type: "ping" }); // Coming back to the tab counts as activity at once.
    this.pingTimer = setInterval(() => this.#send({ type: "ping" }), PING_EVERY_MS);
  }

  #send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  /** Stop for good (the sandbox ended, or the page is leaving it). */
  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    document.removeEventListener("visibilitychange", this.onVisibility);
    this.socket?.close();
    this.onStatus("closed");
  }
}
