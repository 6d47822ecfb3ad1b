"""Talk to the gateway's own API (experiments, tests, the benchmark).

Plain ``http.client``, blocking and untraced: the lab's calls to the
gateway's API are not the learner's traffic. From async code, call through
``asyncio.to_thread``.
"""

from __future__ import annotations

import http.client
import json
from typing import Any


class GatewayError(RuntimeError):
    """The gateway's API answered with an error; ``errors`` names the fields."""

    def __init__(self, status: int, body: Any) -> None:
        detail = body.get("detail") if isinstance(body, dict) else str(body)
        super().__init__(f"gateway answered {status}: {detail}")
        self.status = status
        self.errors = body.get("errors", {}) if isinstance(body, dict) else {}


class GatewayClient:
    def __init__(self, address: str, *, timeout_s: float = 30.0) -> None:
        host, _, port = address.rpartition(":")
        self._host, self._port, self._timeout_s = host, int(port), timeout_s

    def _call(self, method: str, path: str, body: str | bytes | None = None) -> Any:
        connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)
        try:
            connection.request(method, path, body=body)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        payload = (
            json.loads(raw) if "json" in response.getheader("Content-Type", "") else raw.decode()
        )
        if response.status >= 400:
            raise GatewayError(response.status, payload)
        return payload

    def describe(self) -> dict:
        return self._call("GET", "/gateway")

    def config(self) -> str:
        return self._call("GET", "/gateway/config")

    def apply(self, policy_yaml: str) -> dict:
        return self._call("POST", "/gateway/policy", policy_yaml.encode())

    def preview(self, policy_yaml: str) -> dict:
        return self._call("POST", "/gateway/policy/preview", policy_yaml.encode())

    def totals(self) -> dict:
        return self._call("GET", "/gateway/totals")

    def table(self, limit: str) -> str:
        return self._call("GET", f"/gateway/table/{limit}")

    def set_delay(self, delay_ms: int) -> dict:
        return self._call("POST", "/gateway/delay", json.dumps({"delay_ms": delay_ms}))

    def stop(self) -> dict:
        return self._call("POST", "/gateway/stop")

    def start(self) -> dict:
        return self._call("POST", "/gateway/start")

    def spans(self, trace_ids: list[str] | None = None) -> list[dict]:
        query = "&".join(f"trace_id={trace_id}" for trace_id in trace_ids or [])
        return self._call("GET", "/gateway/spans" + (f"?{query}" if query else ""))
