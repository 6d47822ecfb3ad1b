"""Talk to HAProxy's runtime API (stats socket) and master CLI over their unix sockets.

Server state here is HAProxy's own word: ``show stat`` says UP, DOWN, MAINT
(and "UP 1/2" while checks are moving it), ``show servers state`` says why.
Nothing in the lab computes a breaker state on the side.
"""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_S = 3.0


def _terminated(line: str) -> bytes:
    # A payload ("<<") ends at an empty line; a plain command at its newline.
    if "<<\n" in line:
        return line.rstrip("\n").encode() + b"\n\n"
    return line.rstrip("\n").encode() + b"\n"


async def command(socket_path: Path | str, line: str, *, timeout_s: float = TIMEOUT_S) -> str:
    """Send one command to a HAProxy CLI socket and return the whole answer."""

    async def exchange() -> str:
        reader, writer = await asyncio.open_unix_connection(str(socket_path))
        try:
            writer.write(_terminated(line))
            await writer.drain()
            return (await reader.read()).decode(errors="replace")
        finally:
            writer.close()

    return await asyncio.wait_for(exchange(), timeout_s)


def command_blocking(socket_path: Path | str, line: str, *, timeout_s: float = TIMEOUT_S) -> str:
    """Send one command from sync code (tests, benchmarks) and return the answer."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(socket_path))
        sock.sendall(_terminated(line))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


@dataclass(frozen=True)
class ServerState:
    """One server line of one backend as HAProxy reports it."""

    backend: str
    server: str
    status: str  # UP, DOWN, MAINT, DRAIN, "UP 1/2", "DOWN 1/2", no check: "no check"
    check_status: str  # L7OK, L7STS, L4CON, ... ("" without checks)
    last_change_s: int  # seconds since the status last changed
    current_sessions: int
    total_sessions: int
    responses_5xx: int
    retries: int
    redispatches: int
    downtime_s: int
    failed_checks: int
    down_transitions: int  # "chkdown": times it went from UP to DOWN

    @property
    def ejected(self) -> bool:
        """Tell whether HAProxy keeps traffic off this server because it judged it DOWN."""
        return self.status.startswith("DOWN")

    def as_dict(self) -> dict:
        return {
            "backend": self.backend,
            "server": self.server,
            "status": self.status,
            "check_status": self.check_status,
            "ejected": self.ejected,
            "last_change_s": self.last_change_s,
            "current_sessions": self.current_sessions,
            "total_sessions": self.total_sessions,
            "responses_5xx": self.responses_5xx,
            "retries": self.retries,
            "redispatches": self.redispatches,
            "downtime_s": self.downtime_s,
            "failed_checks": self.failed_checks,
            "down_transitions": self.down_transitions,
        }


def _int(value: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def parse_show_stat(text: str) -> list[dict[str, str]]:
    """Return the rows of ``show stat`` (CSV with a '# ' header line) as dicts."""
    lines = text.lstrip().splitlines()
    if not lines or not lines[0].startswith("# "):
        raise ValueError(f"not a show stat answer: {text[:80]!r}")
    lines[0] = lines[0][2:]
    return list(csv.DictReader(io.StringIO("\n".join(line for line in lines if line))))


def server_states(stat_text: str) -> list[ServerState]:
    """Return each server's state from a ``show stat`` answer (frontends and backends skipped)."""
    states = []
    for row in parse_show_stat(stat_text):
        if row.get("svname") in ("FRONTEND", "BACKEND"):
            continue
        states.append(
            ServerState(
                backend=row["pxname"],
                server=row["svname"],
                status=row.get("status", ""),
                check_status=row.get("check_status", ""),
                last_change_s=_int(row.get("lastchg", "")),
                current_sessions=_int(row.get("scur", "")),
                total_sessions=_int(row.get("stot", "")),
                responses_5xx=_int(row.get("hrsp_5xx", "")),
                retries=_int(row.get("wretr", "")),
                redispatches=_int(row.get("wredis", "")),
                downtime_s=_int(row.get("downtime", "")),
                failed_checks=_int(row.get("chkfail", "")),
                down_transitions=_int(row.get("chkdown", "")),
            )
        )
    return states


def proxy_totals(stat_text: str) -> dict[str, dict[str, int]]:
    """Return per frontend/backend totals: requests, 5xx, retries, errors, denials, queue."""
    totals = {}
    for row in parse_show_stat(stat_text):
        if row.get("svname") not in ("FRONTEND", "BACKEND"):
            continue
        totals[f"{row['pxname']}/{row['svname']}"] = {
            "sessions": _int(row.get("stot", "")),
            "requests": _int(row.get("req_tot", "")),
            "responses_5xx": _int(row.get("hrsp_5xx", "")),
            "retries": _int(row.get("wretr", "")),
            "redispatches": _int(row.get("wredis", "")),
            "request_errors": _int(row.get("ereq", "")),
            "connection_errors": _int(row.get("econ", "")),
            "response_errors": _int(row.get("eresp", "")),
            "denied": _int(row.get("dreq", "")),
            "queued_now": _int(row.get("qcur", "")),  # backends only: waiting for a server
            "queued_max": _int(row.get("qmax", "")),
        }
    return totals


async def set_ssl_cert(socket_path: Path | str, cert_path: Path | str, pem: str) -> str:
    """Replace a loaded certificate in memory (``set ssl cert`` then ``commit ssl cert``).

    HAProxy swaps it on every bind and server line that uses the file; connections
    already open keep their session, new handshakes get the new certificate.
    """
    payload = "\n".join(line for line in pem.splitlines() if line.strip())
    answer = await command(socket_path, f"set ssl cert {cert_path} <<\n{payload}\n")
    if "Transaction created" not in answer and "Transaction updated" not in answer:
        raise RuntimeError(f"set ssl cert {cert_path}: {answer.strip()}")
    committed = await command(socket_path, f"commit ssl cert {cert_path}")
    if "Success" not in committed:
        raise RuntimeError(f"commit ssl cert {cert_path}: {committed.strip()}")
    return committed


def certificate_serial(show_ssl_cert_text: str) -> str | None:
    """Return the serial (hex) from a ``show ssl cert <file>`` answer."""
    for line in show_ssl_cert_text.splitlines():
        if line.startswith("Serial:"):
            return line.split(":", 1)[1].strip().upper()
    return None
