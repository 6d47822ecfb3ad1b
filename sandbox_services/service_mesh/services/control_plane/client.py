"""Talk to the control plane's HTTP API (experiments, tests, the benchmark).

Plain ``http.client``, blocking: the lab's tracing instruments aiohttp and
not this, so the lab's own calls to its control plane make no spans in the
learner's trace. Call from async code through ``asyncio.to_thread``.
"""

from __future__ import annotations

import json

from sandbox_services.proxy.admin_client import AdminClient, AdminError


class ControlPlaneError(AdminError):
    """The control plane answered with an error; ``errors`` names the fields, if any."""

    who = "control plane"


class ControlPlaneClient(AdminClient):
    error_class = ControlPlaneError

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
