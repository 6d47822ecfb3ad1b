"""Load generators that run in a forked process of their own (``ctx.fork``), never in a server.

Plain ``http.client`` with keep-alive and Nagle off (http.client sets
TCP_NODELAY): the client's own cost is small and the same for every target,
so differences between targets are the targets'. A traced request carries a
``traceparent`` from a real client span; the others carry none, and the
sidecars log them without making spans.
"""

from __future__ import annotations

import contextvars
import http.client
import json
import threading
import time

from opentelemetry import propagate, trace

_tracer = trace.get_tracer("sandbox_services.service_mesh.loadgen")


def _request(connection: http.client.HTTPConnection, path: str, traced: bool) -> tuple[int, bytes]:
    headers: dict[str, str] = {}
    if traced:
        attributes = {
            "http.request.method": "GET",
            "url.full": f"http://{connection.host}:{connection.port}{path}",
            "server.address": connection.host,
            "server.port": connection.port,
        }
        with _tracer.start_as_current_span(
            f"GET {path.split('?')[0]}", kind=trace.SpanKind.CLIENT, attributes=attributes
        ) as span:
            propagate.inject(headers)
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(trace.Status(trace.StatusCode.ERROR))
            return response.status, response.read()
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def interleaved_fixed_rate(
    targets: dict[str, int], path: str, rate: int, duration_s: float, traced_every: int, warmup: int
) -> dict:
    """Send requests at a fixed total rate, taking the targets in turn; return latencies (us).

    Each target has its own keep-alive connection. Taking them in turn, request by
    request, puts every target under the same machine conditions at the same time.
    """
    connections = {
        name: http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for name, port in targets.items()
    }
    names = list(targets)
    warmup_errors: dict[str, int] = {name: 0 for name in names}
    for _ in range(warmup):
        for name in names:
            try:
                _request(connections[name], path, False)
            except (OSError, http.client.HTTPException):
                # Untimed and uncounted in the figures, but reported: a proxy that
                # reloaded a moment ago may close a connection it had just accepted.
                warmup_errors[name] += 1
                connections[name].close()
                connections[name] = http.client.HTTPConnection(
                    "127.0.0.1", targets[name], timeout=10
                )
    latencies: dict[str, list[float]] = {name: [] for name in names}
    errors: dict[str, int] = {name: 0 for name in names}
    interval = 1.0 / rate
    total = int(rate * duration_s)
    start = time.perf_counter()
    give_up = start + duration_s * 1.5 + 2
    for index in range(total):
        if time.perf_counter() > give_up:
            break
        due = start + index * interval
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        name = names[index % len(names)]
        traced = traced_every > 0 and (index // len(names)) % traced_every == 0
        sent = time.perf_counter()
        try:
            status, _ = _request(connections[name], path, traced)
        except (OSError, http.client.HTTPException):
            errors[name] += 1
            connections[name].close()
            connections[name] = http.client.HTTPConnection("127.0.0.1", targets[name], timeout=10)
            continue
        latencies[name].append((time.perf_counter() - sent) * 1e6)
        if status >= 500:
            errors[name] += 1
    for connection in connections.values():
        connection.close()
    return {
        "latencies_us": latencies,
        "errors": errors,
        "warmup_errors": warmup_errors,
        "elapsed_s": time.perf_counter() - start,
    }


def fixed_rate(port: int, path: str, rate: int, duration_s: float, traced_every: int = 0) -> dict:
    """Send requests to one target at a fixed rate; return each one's (sent at, latency, status)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    interval = 1.0 / rate
    results = []
    start = time.perf_counter()
    # A slow target must not stretch the run: whatever is not sent by then is not sent.
    give_up = start + duration_s * 1.5 + 2
    for index in range(int(rate * duration_s)):
        if time.perf_counter() > give_up:
            break
        due = start + index * interval
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent = time.perf_counter()
        try:
            status, body = _request(
                connection, path, traced_every > 0 and index % traced_every == 0
            )
        except (OSError, http.client.HTTPException) as error:
            results.append(
                [sent - start, (time.perf_counter() - sent) * 1000, 0, type(error).__name__]
            )
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            continue
        results.append([sent - start, (time.perf_counter() - sent) * 1000, status, _replica(body)])
    connection.close()
    return {"results": results}


def _replica(body: bytes) -> int | None:
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    value = (
        answer.get("replica", answer.get("priced_by_replica")) if isinstance(answer, dict) else None
    )
    return value if isinstance(value, int) else None


def closed_loop(
    port: int, path: str, requests: int, concurrency: int, traced_every: int = 0
) -> dict:
    """Send ``requests`` with ``concurrency`` in flight; return each one's (latency ms, status, replica)."""
    results: list[list] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                break
            sent = time.perf_counter()
            try:
                status, body = _request(
                    connection, path, traced_every > 0 and index % traced_every == 0
                )
                row = [(time.perf_counter() - sent) * 1000, status, _replica(body)]
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                row = [(time.perf_counter() - sent) * 1000, 0, None]
            with lock:
                results.append(row)
        connection.close()

    # A new thread starts with an empty context: each gets a copy of this one, or
    # its spans would lose the run's baggage and show as the lab's background work.
    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(worker,))
        for _ in range(concurrency)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"results": results, "elapsed_s": time.perf_counter() - started}
