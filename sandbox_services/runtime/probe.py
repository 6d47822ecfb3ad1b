"""Health probes the supervisor runs on its services, without gRPC.

The supervisor forks services all its life, so it must never initialise gRPC
core (an open channel makes forked children hang, see FIELD-NOTES.md). The gRPC
probe therefore speaks just enough HTTP/2 by hand to make one
``grpc.health.v1.Health/Check`` call: the client preface, an empty SETTINGS
frame, one HEADERS frame (HPACK literals, no Huffman, no table), one DATA frame
with the empty request, then it reads frames until the response message.
"""

from __future__ import annotations

import asyncio
import struct

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x7
_END_STREAM, _ACK, _END_HEADERS = 0x1, 0x1, 0x4
# HealthCheckResponse{status: SERVING}: field 1, varint 1.
_SERVING = b"\x08\x01"


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes((kind, flags))
        + struct.pack(">I", stream)
        + payload
    )


def _hpack_integer(value: int) -> bytes:
    # 7-bit prefix integer (RFC 7541 5.1) with the Huffman bit clear.
    if value < 127:
        return bytes((value,))
    out = bytearray((127,))
    value -= 127
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def _literal(name: str, value: str) -> bytes:
    # "Literal Header Field without Indexing, new name" (RFC 7541 6.2.2).
    return (
        b"\x00"
        + _hpack_integer(len(name))
        + name.encode()
        + _hpack_integer(len(value))
        + value.encode()
    )


def _health_check_request(port: int, service: str = "") -> bytes:
    headers = b"".join(
        _literal(name, value)
        for name, value in (
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/grpc.health.v1.Health/Check"),
            (":authority", f"127.0.0.1:{port}"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        )
    )
    field = service.encode()
    message = (b"\x0a" + bytes((len(field),)) + field) if field else b""
    body = b"\x00" + struct.pack(">I", len(message)) + message
    return (
        _PREFACE
        + _frame(_SETTINGS, 0, 0)
        + _frame(_HEADERS, _END_HEADERS, 1, headers)
        + _frame(_DATA, _END_STREAM, 1, body)
    )


async def grpc_health_once(port: int, timeout_s: float = 1.0) -> bool:
    """Return True if the gRPC server on 127.0.0.1:port answers Check with SERVING."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), timeout_s
        )
    except (TimeoutError, OSError):
        return False
    try:
        writer.write(_health_check_request(port))
        data = b""
        async with asyncio.timeout(timeout_s):
            while True:
                header = await reader.readexactly(9)
                length = int.from_bytes(header[:3], "big")
                kind, flags = header[3], header[4]
                stream = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
                payload = await reader.readexactly(length) if length else b""
                if kind == _SETTINGS and not flags & _ACK:
                    writer.write(_frame(_SETTINGS, _ACK, 0))
                elif kind == _DATA and stream == 1:
                    data += payload
                    if len(data) >= 5:
                        size = int.from_bytes(data[1:5], "big")
                        if len(data) >= 5 + size:
                            return data[5 : 5 + size] == _SERVING
                elif kind in (_RST_STREAM, _GOAWAY) or (
                    kind == _HEADERS and stream == 1 and flags & _END_STREAM
                ):
                    return False  # refused, or trailers without a message (UNIMPLEMENTED)
    except (TimeoutError, OSError, asyncio.IncompleteReadError):
        return False
    finally:
        writer.close()


async def http_health_once(port: int, timeout_s: float = 1.0) -> bool:
    """Return True if GET /healthz on 127.0.0.1:port answers 200."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(
                    f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                status_line = await reader.readline()
            finally:
                writer.close()
    except (TimeoutError, OSError):
        return False
    parts = status_line.split()
    return len(parts) >= 2 and parts[1] == b"200"
