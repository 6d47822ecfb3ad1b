"""Talk to the control plane's HTTP API (experiments, tests, the benchmark).

Plain ``http.client``, blocking: the lab's tracing instruments aiohttp and
not this, so the lab's own calls to its control plane make no spans in the
learner's trace. Call from async code through ``asyncio.to_thread``.
"""

from __future__ import annotations

import http.client
import json
from typing import Any


class ControlPlaneError(RuntimeError):
    """The control plane answered with an error; ``errors`` names the fields, if any."""

    def __init__(self, status: int, body: Any) -> None:
        detail = body.get("detail") if isinstance(body, dict) else str(body)
        super().__init__(f"control plane answered {status}: {detail}")
        self.status = status
        self.errors = body.get("errors", {}) if isinstance(body, dict) else {}


class ControlPlaneClient:
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
        kind = response.getheader("Content-Type", "")
        payload = json.loads(raw) if "json" in kind else raw.decode()
        if response.status >= 400:
            raise ControlPlaneError(response.status, payload)
        return payload

    def topology(self) -> dict:
        return self._call("GET", "/mesh")

    def state(self) -> dict:
        return self._call("GET", "/mesh/state")

    def totals(self) -> dict:
        return self._call("GET", "/mesh/totals")

    def config(self, sidecar: str) -> str:
        return self._call("GET", f"/mesh/config/{sidecar}")

    def apply(self, policy_yaml: str) -> dict:
        return self._call("POST", "/mesh/policy", policy_yaml.encode())

    def preview(self, policy_yaml: str) -> dict:
        return self._call("POST", "/mesh/policy/preview", policy_yaml.encode())

    def rotate(self) -> dict:
        return self._call("POST", "/mesh/rotate")

    def set_enabled(self, enabled: bool) -> dict:
        return self._call("POST", "/mesh/enabled", json.dumps({"enabled": enabled}))

    def spans(self, trace_ids: list[str] | None = None) -> list[dict]:
        query = "&".join(f"trace_id={trace_id}" for trace_id in trace_ids or [])
        return self._call("GET", "/mesh/spans" + (f"?{query}" if query else ""))
