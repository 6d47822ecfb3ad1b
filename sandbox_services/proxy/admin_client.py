"""Talk to a proxy-owning service's own HTTP API: the mesh's control plane, the gateway.

Plain ``http.client``, blocking and untraced: the lab's tracing instruments
aiohttp, not this, so the lab's own calls to a proxy's owner make no spans in
the learner's trace. From async code, call through ``asyncio.to_thread``.
"""

from __future__ import annotations

import http.client
import json
from typing import Any


class AdminError(RuntimeError):
    """The service answered with an error; ``errors`` names the fields, if any."""

    who = "the service"

    def __init__(self, status: int, body: Any) -> None:
        detail = body.get("detail") if isinstance(body, dict) else str(body)
        super().__init__(f"{self.who} answered {status}: {detail}")
        self.status = status
        self.errors = body.get("errors", {}) if isinstance(body, dict) else {}


class AdminClient:
    """Call one service's admin API; subclasses name the calls and the error class."""

    error_class: type[AdminError] = AdminError

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
            raise self.error_class(response.status, payload)
        return payload
