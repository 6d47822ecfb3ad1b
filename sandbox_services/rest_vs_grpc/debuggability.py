"""One product, seen three ways: as a plain HTTP client, as gRPC's bytes, through reflection.

A REST answer is text a person can read and a command line can fetch. A gRPC
answer is a length-prefixed protobuf message inside HTTP/2 DATA frames: this
experiment relays one call through a local socket, keeps the bytes, parses the
HTTP/2 frames (the 9-byte frame header is all it needs) and shows the message
as hex. Then a client with no .proto asks the server for its descriptors
(server reflection), lists the services and calls one.

The experiment drives and returns measured figures; ``debuggability_result``
writes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from typing import Any

import aiohttp
import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from sandbox_services.protos_gen.labapi.catalog.v1 import catalog_pb2 as pb
from sandbox_services.protos_gen.labapi.catalog.v1 import catalog_pb2_grpc as pb_grpc
from sandbox_services.rest_vs_grpc.results import failed
from sandbox_services.runtime.spec import ExperimentContext

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA_FRAME, PADDED = 0x0, 0x8
LIST_PRODUCTS = "labapi.catalog.v1.Catalog.ListProducts"


class CapturingRelay:
    """A 127.0.0.1 TCP relay to one upstream that keeps every byte, each way."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self.sent = bytearray()  # client -> server
        self.received = bytearray()  # server -> client
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> str:
        """Start listening; return the address a client dials instead of the upstream."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, self.sent)),
            asyncio.create_task(self._pump(up_reader, writer, self.received)),
        ]
        self._tasks.update(pumps)
        await asyncio.gather(*pumps, return_exceptions=True)
        for w in (writer, up_writer):
            w.close()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, kept: bytearray
    ) -> None:
        while chunk := await reader.read(65536):
            kept.extend(chunk)
            writer.write(chunk)
            await writer.drain()


def data_frames(stream: bytes) -> dict[int, bytes]:
    """Return the DATA frames' payloads of an HTTP/2 byte stream, joined per stream id."""
    if stream.startswith(HTTP2_PREFACE):
        stream = stream[len(HTTP2_PREFACE) :]
    payloads: dict[int, bytearray] = {}
    offset = 0
    while offset + 9 <= len(stream):
        length = int.from_bytes(stream[offset : offset + 3], "big")
        kind, flags = stream[offset + 3], stream[offset + 4]
        stream_id = int.from_bytes(stream[offset + 5 : offset + 9], "big") & 0x7FFFFFFF
        payload = stream[offset + 9 : offset + 9 + length]
        offset += 9 + length
        if kind != DATA_FRAME:
            continue
        if flags & PADDED:
            payload = payload[1 : len(payload) - payload[0]]
        payloads.setdefault(stream_id, bytearray()).extend(payload)
    return {stream_id: bytes(data) for stream_id, data in payloads.items()}


def grpc_message(data: bytes) -> tuple[int, int, bytes]:
    """Split one gRPC length-prefixed message: (compressed flag, declared length, message)."""
    compressed, length = struct.unpack(">BI", data[:5])
    return compressed, length, data[5 : 5 + length]


def hex_dump(data: bytes, limit: int = 96) -> str:
    """Return the first ``limit`` bytes as hex lines of 16, as xxd shows them."""
    lines = []
    for start in range(0, min(len(data), limit), 16):
        chunk = data[start : start + 16]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{start:08x}: {chunk.hex(' '):<47}  {text}")
    if len(data) > limit:
        lines.append(f"... {len(data) - limit} more bytes")
    return "\n".join(lines)


async def _as_rest(address: str) -> dict[str, Any]:
    url = f"http://{address}/v1/products?count=1"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        body = await response.read()
        return {
            "url": url,
            "status": response.status,
            "content_type": response.headers.get("Content-Type", ""),
            "body": body.decode(),
            "curl": f"curl -s '{url}'",
        }


async def _as_grpc_bytes(address: str) -> dict[str, Any]:
    relay = CapturingRelay(address)
    try:
        async with grpc.aio.insecure_channel(await relay.start()) as channel:
            await pb_grpc.CatalogStub(channel).ListProducts(
                pb.ListProductsRequest(count=1), timeout=5
            )
    finally:
        await relay.close()
    requests, responses = data_frames(bytes(relay.sent)), data_frames(bytes(relay.received))
    # The call is the connection's first stream, id 1 (client streams are odd).
    request, response = requests.get(1, b""), responses.get(1, b"")
    compressed, length, message = grpc_message(response)
    return {
        "connection_bytes": [len(relay.sent), len(relay.received)],
        "request_data": request.hex(" "),
        "response_flag": compressed,
        "response_length": length,
        "response_message": message,
        "response_dump": hex_dump(response, limit=1024),
    }


def _by_reflection(address: str) -> dict[str, Any]:
    """List the services and call ListProducts knowing nothing but the server's address."""
    with grpc.insecure_channel(address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(database.get_services())
        pool = descriptor_pool.DescriptorPool(database)
        service_name, method_name = LIST_PRODUCTS.rsplit(".", 1)
        method = pool.FindServiceByName(service_name).FindMethodByName(method_name)
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        call = channel.unary_unary(
            f"/{method.containing_service.full_name}/{method.name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        reply = call(request_class(count=1), timeout=5)
        return {
            "services": services,
            "methods": [m.name for m in method.containing_service.methods],
            "request_type": method.input_type.full_name,
            "reply_json": json_format.MessageToJson(reply, indent=1),
        }


async def debuggability(ctx: ExperimentContext, params: dict) -> dict:
    """Fetch one product as REST JSON, as gRPC bytes on the wire, and through reflection."""
    ctx.set_sample_ratio(1.0)
    try:
        await ctx.progress(0.1, "REST: a plain HTTP GET")
        rest = await _as_rest(ctx.address("catalog-rest"))
        await ctx.progress(0.4, "gRPC: the bytes on the wire")
        wire = await _as_grpc_bytes(ctx.address("catalog-grpc"))
        await ctx.progress(0.7, "gRPC: asking the server for its schema")
        # The reflection client is blocking: keep it off the event loop.
        reflected = await asyncio.to_thread(_by_reflection, ctx.address("catalog-grpc"))
    except (aiohttp.ClientError, grpc.RpcError, KeyError) as error:
        return failed("The debuggability run did not complete.", error)
    await ctx.progress(1.0, "done")
    return debuggability_result(rest=rest, wire=wire, reflected=reflected)


def debuggability_result(*, rest: dict, wire: dict, reflected: dict) -> dict:
    """Return the debuggability result in RESULT_SHAPE."""
    message: bytes = wire["response_message"]
    printable = sum(32 <= b < 127 for b in message)
    rest_product = json.loads(rest["body"])
    reflected_product = json.loads(reflected["reply_json"])
    return {
        "headline": (
            f"REST answered {len(rest['body'])} B of readable JSON; gRPC carried the same product "
            f"as a {wire['response_length']} B protobuf message behind a 5-byte prefix, "
            f"with field numbers where JSON has names: the schema that decodes it, reflection "
            f"then fetched from the server "
            f"({len(reflected['services'])} services listed)."
        ),
        "summary": [
            {"label": "REST body", "value": len(rest["body"]), "unit": "B"},
            {"label": "gRPC message", "value": wire["response_length"], "unit": "B"},
            {"label": "printable bytes in the message", "value": printable, "unit": "B"},
            {"label": "services found by reflection", "value": len(reflected["services"])},
        ],
        "table": {
            "columns": ["how", "what it shows"],
            "rows": [
                ["REST: copy and run on the lab's machine", rest["curl"]],
                ["REST: HTTP status, Content-Type", f"{rest['status']} {rest['content_type']}"],
                ["REST: the body", rest["body"]],
                ["gRPC: request DATA (prefix + message)", wire["request_data"]],
                ["gRPC: response DATA (prefix + message)", wire["response_dump"]],
                ["reflection: services", ", ".join(reflected["services"])],
                ["reflection: Catalog methods", ", ".join(reflected["methods"])],
                ["reflection: ListProducts reply as JSON", reflected["reply_json"]],
            ],
        },
        "notes": [
            (
                "The curl command uses the catalog-rest port of your sandbox on 127.0.0.1: it "
                "works only from a shell on the machine the lab runs on, and only while this "
                "sandbox is running."
            ),
            (
                "The gRPC bytes were captured by a relay between this experiment and "
                "catalog-grpc and cut out of the HTTP/2 DATA frames of stream 1. The first byte "
                f"is the compressed flag ({wire['response_flag']}), the next four the message "
                f"length ({wire['response_length']}); the rest is protobuf: field numbers and "
                "wire types, no names. The headers went in HPACK-compressed HEADERS frames."
            ),
            (
                "Reflection: the client asked the grpc.reflection.v1alpha service for the file "
                f"that defines {LIST_PRODUCTS}, built the message classes from it at run time, "
                "and called the method. grpcurl and Postman work the same way. Reflection is on "
                "in this sandbox; many production services leave it off or serve it internally."
            ),
        ],
        "rest": {k: v for k, v in rest.items() if k != "body"},
        "ok": rest["status"] == 200
        and rest_product["products"][0]["id"] == int(reflected_product["products"][0]["id"])
        and wire["response_flag"] == 0
        and pb.ListProductsResponse.FromString(message).products[0].id
        == rest_product["products"][0]["id"],
    }
