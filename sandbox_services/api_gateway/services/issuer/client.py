"""Ask the sandbox's issuer for a token (blocking ``http.client``: the lab's own call, untraced)."""

from __future__ import annotations

import http.client
import json
from pathlib import Path


def jwks_path(workdir: Path) -> Path:
    """Return where the issuer publishes its JWKS for the gateway's process to load."""
    return Path(workdir) / "issuer" / "jwks.json"


def issue_token(
    address: str, *, sub: str = "alice", aud: str | None = None, scope: str = "", ttl_s: int = 300
) -> str:
    """Return a signed token from the issuer at ``address``."""
    host, _, port = address.rpartition(":")
    body = {"sub": sub, "scope": scope, "ttl_s": ttl_s, **({"aud": aud} if aud else {})}
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(
            "POST", "/token", body=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        payload = json.loads(response.read())
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"issuer answered {response.status}: {payload}")
    return payload["access_token"]


def jwks(address: str) -> dict:
    host, _, port = address.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/.well-known/jwks.json")
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()
