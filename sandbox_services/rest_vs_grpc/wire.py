"""What travels on a gRPC call: both-way streams, a message across schema versions, the bytes.

``bidi_streaming`` streams requests on one call while the catalog answers each
as it arrives. ``schema_evolution`` reads the catalog's v2 Item with the v1
classes an old client was built from. ``debuggability`` shows the same data as
a plain HTTP client sees it (JSON, and a curl command), as the bytes a gRPC call
puts on the wire (captured by a relay, HTTP/2 frames parsed), and as a client
that has no .proto sees it through server reflection.

Each experiment drives and returns measured figures; ``*_result`` writes them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
from google.protobuf.unknown_fields import UnknownFieldSet

from sandbox_services.protos_gen.labapi.catalog.v1 import catalog_pb2 as pb
from sandbox_services.protos_gen.labapi.catalog.v1 import catalog_pb2_grpc as pb_grpc
from sandbox_services.protos_gen.labapi.evolution.v1 import item_pb2 as item_v1
from sandbox_services.protos_gen.labapi.evolution.v2 import item_pb2 as item_v2
from sandbox_services.protos_gen.labapi.evolution.v2 import item_pb2_grpc as item_v2_grpc
from sandbox_services.rest_vs_grpc.results import failed
from sandbox_services.runtime.spec import ExperimentContext

# --- bidirectional streaming -------------------------------------------------


async def bidi_streaming(ctx: ExperimentContext, params: dict) -> dict:
    """Stream reservations on one call while the catalog answers each; time both directions."""
    messages, interval_ms = params["messages"], params["interval_ms"]
    ctx.set_sample_ratio(1.0)
    window = f"bidi-{ctx.run_id}"
    clock = time.perf_counter
    sent_at: list[float] = []
    answered_at: list[float] = []
    await ctx.progress(0.1, f"{messages} requests on one call, {interval_ms} ms apart")
    try:
        async with grpc.aio.insecure_channel(ctx.address("catalog-grpc")) as channel:
            stub = pb_grpc.CatalogStub(channel)
            calls_before = dict((await stub.GetServerStats(pb.ServerStatsRequest())).calls)
            started = clock()

            async def requests() -> Any:
                for index in range(messages):
                    if index:
                        await asyncio.sleep(interval_ms / 1000)
                    sent_at.append(clock() - started)
                    yield pb.ReserveRequest(product_id=index + 1, count=1, window=window)

            async for _reservation in stub.ReserveMany(requests(), timeout=30):
                answered_at.append(clock() - started)
            stats = await stub.GetServerStats(pb.ServerStatsRequest(window=window))
    except grpc.aio.AioRpcError as error:
        return failed("The bidirectional stream did not complete.", error)
    await ctx.progress(1.0, "done")
    return bidi_result(
        interval_ms=interval_ms,
        sent_ms=[round(t * 1000, 1) for t in sent_at],
        answered_ms=[round(t * 1000, 1) for t in answered_at],
        server_messages=stats.window_calls,
        server_calls=stats.calls.get("ReserveMany", 0) - calls_before.get("ReserveMany", 0),
    )


def bidi_result(
    *,
    interval_ms: int,
    sent_ms: list[float],
    answered_ms: list[float],
    server_messages: int,
    server_calls: int,
) -> dict:
    """Return the bidirectional streaming result in RESULT_SHAPE."""
    last_sent = sent_ms[-1] if sent_ms else 0.0
    early = sum(1 for t in answered_ms if t < last_sent)
    lags = [round(a - s, 1) for s, a in zip(sent_ms, answered_ms, strict=False)]
    return {
        "headline": (
            f"One call carried {len(sent_ms)} requests and {len(answered_ms)} answers; "
            f"{early} answers arrived before the client sent its last request "
            f"(at {last_sent:.0f} ms), each about {_median(lags):.1f} ms after its request."
        ),
        "summary": [
            {"label": "calls the server counted", "value": server_calls, "unit": ""},
            {"label": "requests the server read", "value": server_messages, "unit": ""},
            {"label": "answers before the last request", "value": early, "unit": ""},
            {"label": "median request-to-answer", "value": _median(lags), "unit": "ms"},
        ],
        "charts": [
            {
                "title": "Both directions on one call",
                "type": "line",
                "x_label": "ms since the call opened",
                "y_label": "message number",
                "series": [
                    {"name": "request sent", "points": [[t, i + 1] for i, t in enumerate(sent_ms)]},
                    {
                        "name": "answer received",
                        "points": [[t, i + 1] for i, t in enumerate(answered_ms)],
                    },
                ],
            }
        ],
        "table": {
            "columns": ["message", "request sent ms", "answer received ms", "lag ms"],
            "rows": [
                [i + 1, s, a, lag]
                for i, (s, a, lag) in enumerate(zip(sent_ms, answered_ms, lags, strict=False))
            ],
        },
        "notes": [
            (
                "The times are the client's clock from the moment the call opened; 'calls' and "
                "'requests read' are the catalog's own counters for this run."
            ),
            (
                f"The client paused {interval_ms} ms between requests. Neither side waits for the "
                "other to finish: each direction of the HTTP/2 stream is independent, and the "
                "order of messages is kept within each direction only."
            ),
        ],
        "ok": server_calls == 1
        and server_messages == len(sent_ms) == len(answered_ms)
        and (len(sent_ms) == 1 or early > 0),
    }


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0.0


# --- schema evolution ------------------------------------------------------------

GET_ITEM = "/labapi.evolution.v2.Shelf/GetItem"


def _fields(message: Any) -> dict[str, Any]:
    """Return every field of a message by name, defaults included (proto3 hides them)."""
    return {field.name: getattr(message, field.name) for field in message.DESCRIPTOR.fields}


async def schema_evolution(ctx: ExperimentContext, params: dict) -> dict:
    """Read the catalog's v2 Item with v2 classes and with the v1 classes of an old client."""
    ctx.set_sample_ratio(1.0)
    await ctx.progress(0.1, "asking the v2 server for item 7")
    try:
        async with grpc.aio.insecure_channel(ctx.address("catalog-grpc")) as channel:
            raw = await channel.unary_unary(GET_ITEM)(
                item_v1.GetItemRequest(id=7).SerializeToString(), timeout=5
            )
            new_client = await item_v2_grpc.ShelfStub(channel).GetItem(
                item_v2.GetItemRequest(id=7), timeout=5
            )
            # The old client: built from v1/item.proto, it calls the same method
            # and parses the answer with its own (older) message class.
            old_client = await channel.unary_unary(
                GET_ITEM,
                request_serializer=item_v1.GetItemRequest.SerializeToString,
                response_deserializer=item_v1.Item.FromString,
            )(item_v1.GetItemRequest(id=7), timeout=5)
    except grpc.aio.AioRpcError as error:
        return failed("The schema evolution run did not complete.", error)
    await ctx.progress(1.0, "done")
    unknown = [(f.field_number, f.data) for f in UnknownFieldSet(old_client)]
    # What an old writer sends a new reader: legacy_code set, stock never heard of.
    old_written = item_v1.Item(id=7, name=old_client.name, legacy_code="LC-7")
    new_reads_old = item_v2.Item.FromString(old_written.SerializeToString())
    return evolution_result(
        wire_bytes=len(raw),
        new_client=_fields(new_client),
        old_client=_fields(old_client),
        old_unknown=unknown,
        old_reserialized=len(old_client.SerializeToString()),
        new_reads_old=_fields(new_reads_old),
        new_unknown=[(f.field_number, f.data) for f in UnknownFieldSet(new_reads_old)],
    )


def evolution_result(
    *,
    wire_bytes: int,
    new_client: dict,
    old_client: dict,
    old_unknown: list,
    old_reserialized: int,
    new_reads_old: dict,
    new_unknown: list,
) -> dict:
    """Return the schema evolution result in RESULT_SHAPE."""
    stock_skipped = any(number == 5 for number, _ in old_unknown)
    rows = []
    for name in ("id", "name", "price_cents", "legacy_code", "stock"):
        rows.append(
            [
                name,
                new_client.get(name, "(not in v2)"),
                old_client.get(name, "(not in v1: kept as unknown field)"),
            ]
        )
    return {
        "headline": (
            f"The old (v1) client parsed the v2 answer without error: the new field stock "
            f"({new_client['stock']}) was "
            + ("skipped and kept as unknown field 5" if stock_skipped else "not seen")
            + f", and the removed legacy_code read as its default {old_client['legacy_code']!r}."
        ),
        "summary": [
            {"label": "answer on the wire", "value": wire_bytes, "unit": "B"},
            {"label": "old client: unknown fields", "value": len(old_unknown), "unit": ""},
            {"label": "old client: legacy_code", "value": repr(old_client["legacy_code"])},
            {
                "label": "old client re-serializes",
                "value": old_reserialized,
                "unit": "B",
            },
        ],
        "table": {
            "columns": ["field", "v2 client reads", "v1 (old) client reads"],
            "rows": rows,
        },
        "notes": [
            (
                f"The old client kept the field it does not know as raw data {old_unknown} "
                f"(field number, value) and wrote it back when it re-serialized the message "
                f"({old_reserialized} B, the same {wire_bytes} B it received)."
            ),
            (
                f"The other direction, an old writer to a new reader: a v1 Item with legacy_code "
                f"'LC-7' read with v2 classes gives stock {new_reads_old['stock']} (the default) "
                f"and keeps field 4 as unknown data {new_unknown}."
            ),
            (
                "A default is indistinguishable from a value set to it: the old reader cannot tell "
                "'legacy_code removed' from 'legacy_code empty'. That is why v2 reserves number 4: "
                "reused with another type, old readers would misread it."
            ),
            (
                "Both versions are generated from protos/labapi/evolution/v1 and v2; they differ "
                "in package name only because one Python process loads both."
            ),
        ],
        "ok": stock_skipped and old_client["legacy_code"] == "" and wire_bytes == old_reserialized,
    }
