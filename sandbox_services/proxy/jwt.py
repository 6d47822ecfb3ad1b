"""JWT verification at a proxy: keys from an issuer's JWKS, and HAProxy rules that check a token.

HAProxy 2.6's ``jwt_verify`` checks the signature only, against a public
key it loaded from a file at start (every key file must appear literally in
the configuration). It checks no claim. So the rules here check the rest
themselves, in this order, and record the first failure in ``txn.auth``:
``missing`` (no bearer token), ``bad-signature`` (not the pinned algorithm,
an unknown key id, or a signature that fails), ``expired`` (``exp`` not in
the future), ``wrong-issuer``, ``wrong-audience``, ``insufficient-scope``.
A token that passes leaves ``txn.auth`` at ``ok`` and its claims in
``txn.sub``, ``txn.scope``, ``txn.aud``, ``txn.iss``.

Pinning the algorithm matters: a verifier that takes ``alg`` from the
token's own header can be talked into ``none`` or into HMAC with the public
key as the secret. HAProxy returns -1/-2 for algorithms it does not know; we
refuse anything but the configured one before calling it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

# Algorithms whose keys jwt_verify takes from a PEM file (2.6 does not manage PS*).
ASYMMETRIC_ALGORITHMS = ("ES256", "ES384", "ES512", "RS256", "RS384", "RS512")
AUTH_FAILURES = ("missing", "bad-signature", "expired", "wrong-issuer", "wrong-audience")
_CURVES = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}


def _b64_int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def public_key_of_jwk(jwk: dict):
    """Return the public key a JWK (EC or RSA) describes."""
    if jwk.get("kty") == "EC":
        numbers = ec.EllipticCurvePublicNumbers(
            _b64_int(jwk["x"]), _b64_int(jwk["y"]), _CURVES[jwk["crv"]]
        )
        return numbers.public_key()
    if jwk.get("kty") == "RSA":
        return rsa.RSAPublicNumbers(_b64_int(jwk["e"]), _b64_int(jwk["n"])).public_key()
    raise ValueError(f"unsupported JWK key type {jwk.get('kty')!r}")


@dataclass(frozen=True)
class VerificationKey:
    """One issuer key written where HAProxy loads it."""

    kid: str
    algorithm: str
    path: Path


def write_jwks(jwks: dict, directory: Path) -> list[VerificationKey]:
    """Write each key of a JWKS document as a PEM public key file; return them.

    What a gateway's control process does for a proxy that cannot fetch keys
    itself: the issuer publishes JWKS, the files are what ``jwt_verify`` reads.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    keys = []
    for jwk in jwks.get("keys", []):
        kid = str(jwk.get("kid") or f"key{len(keys)}")
        if not kid.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"key id {kid!r}: letters, digits, - and _ only")
        pem = public_key_of_jwk(jwk).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        path = directory / f"{kid}.pem"
        path.write_bytes(pem)
        keys.append(VerificationKey(kid, str(jwk.get("alg") or "ES256"), path))
    return keys


def _quoted(value: str) -> str:
    return json.dumps(value)  # a double-quoted string HAProxy's parser reads the same way


def jwt_rules(
    *,
    when: str,
    algorithm: str,
    keys: list[VerificationKey],
    issuer: str,
    audience: str,
) -> list[str]:
    """Return http-request rules that verify the bearer token of requests matching ``when``.

    ``when`` is an ACL expression (e.g. ``{ var(txn.route) -m str a b }``); the
    rules only set variables, the caller decides what to answer (see
    ``refusal_rules``). The scope check, per route, is ``scope_rule``.
    """
    rules = [
        "    http-request set-var(txn.auth) str(none)",
        f"    http-request set-var(txn.auth) str(pending) if {when}",
        "    http-request set-var(txn.bearer) http_auth_bearer if { var(txn.auth) -m str pending }",
        "    http-request set-var(txn.auth) str(missing)"
        " if { var(txn.auth) -m str pending } !{ var(txn.bearer) -m found }",
        "    http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')"
        " if { var(txn.auth) -m str pending }",
        "    http-request set-var(txn.kid) var(txn.bearer),jwt_header_query('$.kid')"
        " if { var(txn.auth) -m str pending }",
        f"    http-request set-var(txn.auth) str(bad-signature)"
        f" if {{ var(txn.auth) -m str pending }} !{{ var(txn.alg) -m str {algorithm} }}",
        "    http-request set-var(txn.sig) int(0) if { var(txn.auth) -m str pending }",
    ]
    for key in keys:
        # One literal file per key id: jwt_verify caches every key it sees at start.
        rules.append(
            f"    http-request set-var(txn.sig) var(txn.bearer),jwt_verify({_quoted(algorithm)},"
            f"{_quoted(str(key.path))}) if {{ var(txn.auth) -m str pending }}"
            f" {{ var(txn.kid) -m str {key.kid} }}"
        )
    rules += [
        "    http-request set-var(txn.auth) str(bad-signature)"
        " if { var(txn.auth) -m str pending } !{ var(txn.sig) -m int eq 1 }",
        "    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')"
        " if { var(txn.auth) -m str pending }",
        "    http-request set-var(txn.now) date if { var(txn.auth) -m str pending }",
        "    http-request set-var(txn.left) var(txn.exp),sub(txn.now)"
        " if { var(txn.auth) -m str pending }",
        "    http-request set-var(txn.auth) str(expired)"
        " if { var(txn.auth) -m str pending } !{ var(txn.left) -m int gt 0 }",
        "    http-request set-var(txn.iss) var(txn.bearer),jwt_payload_query('$.iss')"
        " if { var(txn.auth) -m str pending }",
        f"    http-request set-var(txn.auth) str(wrong-issuer)"
        f" if {{ var(txn.auth) -m str pending }} !{{ var(txn.iss) -m str {issuer} }}",
        "    http-request set-var(txn.aud) var(txn.bearer),jwt_payload_query('$.aud')"
        " if { var(txn.auth) -m str pending }",
        f"    http-request set-var(txn.auth) str(wrong-audience)"
        f" if {{ var(txn.auth) -m str pending }} !{{ var(txn.aud) -m str {audience} }}",
        "    http-request set-var(txn.sub) var(txn.bearer),jwt_payload_query('$.sub')"
        " if { var(txn.auth) -m str pending }",
        "    http-request set-var(txn.scope) var(txn.bearer),jwt_payload_query('$.scope')"
        " if { var(txn.auth) -m str pending }",
        "    http-request set-var(txn.auth) str(ok) if { var(txn.auth) -m str pending }",
    ]
    return rules


def scope_rule(*, when: str, scope: str) -> str:
    """Return the rule that marks a verified token lacking ``scope`` (space-separated claim)."""
    return (
        "    http-request set-var(txn.auth) str(insufficient-scope)"
        f" if {{ var(txn.auth) -m str ok }} {when}"
        f" !{{ var(txn.scope) -m reg (^|\\ ){scope}(\\ |$) }}"
    )


def refusal_rules(*, realm: str) -> list[str]:
    """Return the answers to a failed check: 401 (RFC 6750 invalid_token), 403 insufficient_scope.

    The request ends here, at the proxy: no back end sees it.
    """
    failures = " ".join(AUTH_FAILURES)
    body = '{"error":"%[var(txn.auth)]","refused_by":"gateway"}'
    return [
        f"    http-request return status 401 content-type application/json lf-string '{body}'"
        f' hdr WWW-Authenticate \'Bearer realm="{realm}", error="invalid_token",'
        f' error_description="%[var(txn.auth)]"\' if {{ var(txn.auth) -m str {failures} }}',
        f"    http-request return status 403 content-type application/json lf-string '{body}'"
        f' hdr WWW-Authenticate \'Bearer realm="{realm}", error="insufficient_scope"\''
        " if { var(txn.auth) -m str insufficient-scope }",
    ]
