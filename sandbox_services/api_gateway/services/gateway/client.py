"""Talk to the gateway's own API (experiments, tests, the benchmark).

Plain ``http.client``, blocking and untraced: the lab's calls to the
gateway's API are not the learner's traffic. From async code, call through
``asyncio.to_thread``.
"""

from __future__ import annotations

import json

from sandbox_services.proxy.admin_client import AdminClient, AdminError


class GatewayError(AdminError):
    """The gateway answered with an error; ``errors`` names the fields, if any."""

    who = "gateway"


class GatewayClient(AdminClient):
    error_class = GatewayError

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
