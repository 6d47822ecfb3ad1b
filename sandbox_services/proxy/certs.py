"""A per-sandbox certificate authority and short-lived workload certificates (SPIFFE-style).

What Istio's istiod does as its CA: every workload gets a key and a
certificate naming its identity in a URI SAN, ``spiffe://lab/sandbox/<id>/sa/<service>``,
valid for minutes, replaced before it expires. ECDSA P-256, as Istio uses.
The CA keeps every certificate it issued by serial number, so whoever reads
a serial from the proxy's log (the peer's verified certificate) can name the
identity it carried.
"""

from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TRUST_DOMAIN = "lab"
WORKLOAD_TTL = datetime.timedelta(minutes=30)
CA_TTL = datetime.timedelta(days=1)
CLOCK_SKEW = datetime.timedelta(minutes=1)


def spiffe_id(sandbox_id: str, service: str) -> str:
    """Return the SPIFFE ID of a service of a sandbox."""
    return f"spiffe://{TRUST_DOMAIN}/sandbox/{sandbox_id}/sa/{service}"


def dns_name(sandbox_id: str, service: str) -> str:
    """Return the DNS SAN a workload certificate carries (what a client can check with verifyhost)."""
    return f"{service}.{sandbox_id[:12]}.mesh.lab"


@dataclass(frozen=True)
class Issued:
    """One workload certificate: where its PEM bundle lies and what it says."""

    service: str
    serial: str  # upper-case hex in whole bytes, as HAProxy prints it
    spiffe_id: str
    not_after: float  # Unix seconds
    path: Path  # certificate then key, one PEM file, as HAProxy's "crt" wants
    pem: str


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class CertificateAuthority:
    """The sandbox's own CA: a root written to ``<directory>/ca.pem``, issuing workload certs."""

    def __init__(self, sandbox_id: str, directory: Path) -> None:
        self.sandbox_id = sandbox_id
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "microservices lab"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"sandbox {sandbox_id[:12]} CA"),
            ]
        )
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + CA_TTL)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca_path = self.directory / "ca.pem"
        self.ca_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        self._issued: dict[str, Issued] = {}
        self._lock = threading.Lock()

    def issue(self, service: str, *, ttl: datetime.timedelta = WORKLOAD_TTL) -> Issued:
        """Issue a fresh key and certificate for ``service``; write them to ``<service>.pem``."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        identity = spiffe_id(self.sandbox_id, service)
        serial = x509.random_serial_number()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "microservices lab"),
                        x509.NameAttribute(NameOID.COMMON_NAME, service),
                    ]
                )
            )
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + ttl)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.UniformResourceIdentifier(identity),
                        x509.DNSName(dns_name(self.sandbox_id, service)),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        pem = (certificate.public_bytes(serialization.Encoding.PEM) + _pem_key(key)).decode()
        path = self.directory / f"{service}.pem"
        temporary = path.with_suffix(".pem.tmp")
        temporary.write_text(pem)
        temporary.chmod(0o600)
        temporary.replace(path)  # a proxy starting now reads the old file or the new, never half
        issued = Issued(
            service=service,
            serial=_hex_bytes(serial),
            spiffe_id=identity,
            not_after=(now + ttl).timestamp(),
            path=path,
            pem=pem,
        )
        with self._lock:
            self._issued[_normal_serial(issued.serial)] = issued
        return issued

    def identity_of(self, serial_hex: str) -> Issued | None:
        """Return the certificate this CA issued with that serial (any hex case, leading zeros)."""
        with self._lock:
            return self._issued.get(_normal_serial(serial_hex))


def _hex_bytes(number: int) -> str:
    """Return a serial as HAProxy prints it: whole bytes of upper-case hex."""
    text = format(number, "X")
    return text if len(text) % 2 == 0 else "0" + text


def _normal_serial(serial_hex: str) -> str:
    return serial_hex.strip().upper().lstrip("0")
