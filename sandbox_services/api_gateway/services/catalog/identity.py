"""What a service can know about its caller, and what it should believe.

``x-user-id`` is written by the gateway from a verified token, and the
gateway deletes any copy a client sent. But the header is only as good as
the path it came by: a caller that reaches this port without the gateway
writes whatever it likes. So the catalog reports both what the header says
and whether the bearer token behind it verifies here too (the issuer's
public key, fetched once): authorization decisions belong to the second.
In the mesh lesson, mTLS is what tells a service that the caller is the
gateway's workload and nobody else.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request

import jwt


class TokenCheck:
    """Verify bearer tokens with the issuer's published keys (fetched on first use)."""

    def __init__(self, issuer_address: str, issuer: str, audience: str) -> None:
        self._url = f"http://{issuer_address}/.well-known/jwks.json"
        self.issuer, self.audience = issuer, audience
        self._keys: dict[str, object] | None = None

    async def _load(self) -> dict[str, object]:
        if self._keys is None:
            raw = await asyncio.to_thread(self._fetch)
            self._keys = {jwk["kid"]: jwt.PyJWK(jwk).key for jwk in raw["keys"]}
        return self._keys

    def _fetch(self) -> dict:
        with urllib.request.urlopen(self._url, timeout=2) as response:
            return json.loads(response.read())

    async def verify(self, authorization: str) -> tuple[bool, str]:
        """Return (verified, reason) for an ``Authorization`` header value."""
        if not authorization.lower().startswith("bearer "):
            return False, "no bearer token"
        token = authorization[7:].strip()
        try:
            keys = await self._load()
            kid = jwt.get_unverified_header(token).get("kid")
            if kid not in keys:
                return False, "unknown key id"
            jwt.decode(
                token, keys[kid], algorithms=["ES256"], audience=self.audience, issuer=self.issuer
            )
        except jwt.PyJWTError as error:
            return False, type(error).__name__
        except OSError as error:
            return False, f"issuer unreachable: {error}"
        return True, "verified"


async def seen(request, check: TokenCheck) -> dict:
    """Return what this request says about its caller, and whether it holds up."""
    verified, reason = await check.verify(request.headers.get("Authorization", ""))
    return {
        "x-user-id": request.headers.get("x-user-id"),
        "x-user-scope": request.headers.get("x-user-scope"),
        "token_present": "Authorization" in request.headers,
        "token_verified_here": verified,
        "token_check": reason,
    }
