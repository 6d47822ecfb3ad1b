"""The issuer's signing key and the tokens it signs (ES256, with PyJWT).

It plays an identity provider's token endpoint (OAuth 2.0 client
credentials, much simplified): it signs, the gateway verifies. Only the
issuer holds the private key; it publishes the public half as a JWKS.
"""

from __future__ import annotations

import json
import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

ALGORITHM = "ES256"


class Issuer:
    """One P-256 key, a key id, and a token factory."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self._key = ec.generate_private_key(ec.SECP256R1())
        public = jwt.algorithms.ECAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        self.kid = uuid.uuid4().hex[:16]
        self.jwk = {**public, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}
        self.issued = 0

    def jwks(self) -> dict:
        """Return the public keys, as an identity provider publishes them."""
        return {"keys": [self.jwk]}

    def token(self, *, subject: str, audience: str, scope: str = "", ttl_s: int = 300) -> str:
        """Sign a token. ``ttl_s`` may be negative: the lab asks for expired tokens on purpose."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "exp": now + ttl_s,
            "jti": uuid.uuid4().hex,
        }
        if scope:
            claims["scope"] = scope
        self.issued += 1
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})


def describe(token: str) -> dict:
    """Return a token's header and claims, unverified (for showing, never for trusting)."""
    return {
        "header": jwt.get_unverified_header(token),
        "claims": json.loads(json.dumps(jwt.decode(token, options={"verify_signature": False}))),
    }
