"""Time JSON and protobuf encoding of the same page in-process: the serialization share of a call.

Each format is timed in the four steps a real call makes: on the server,
map domain objects to the wire object (a dict, a message) and serialize it to
bytes; on the client, parse the bytes and map the result back to domain
objects. These are exactly the functions the servers and clients run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from sandbox_services.rest_vs_grpc.services.catalog import codec_json, codec_proto
from sandbox_services.rest_vs_grpc.services.catalog.backend import make_products
from sandbox_services.rest_vs_grpc.services.catalog.interface import ProductPage
from sandbox_services.protos_gen.labapi.catalog.v1 import catalog_pb2 as pb

STEPS = ("map_us", "serialize_us", "parse_us", "unmap_us")


def _mean_us(function: Callable[[], Any], budget_s: float) -> float:
    """Return the mean microseconds of ``function()``, repeated for about ``budget_s``."""
    function()  # once untimed: first-call costs are not the steady state
    clock = time.perf_counter
    repeats, started = 0, clock()
    while (elapsed := clock() - started) < budget_s or repeats < 5:
        function()
        repeats += 1
    return round(elapsed / repeats * 1e6, 2)


def _dumps(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def measure_serialization(items: int, budget_s: float = 0.05) -> dict[str, Any]:
    """Return per-step microseconds and body bytes, JSON and protobuf, for ``items`` products."""
    products = make_products(items)
    page = ProductPage(products, len(products))
    document, message = codec_json.page_to_json(page), codec_proto.page_to_proto(page)
    json_body, proto_body = _dumps(document), message.SerializeToString()
    return {
        "items": items,
        "json": {
            "bytes": len(json_body),
            "map_us": _mean_us(lambda: codec_json.page_to_json(page), budget_s),
            "serialize_us": _mean_us(lambda: _dumps(document), budget_s),
            "parse_us": _mean_us(lambda: json.loads(json_body), budget_s),
            "unmap_us": _mean_us(lambda: codec_json.page_from_json(document), budget_s),
        },
        "protobuf": {
            "bytes": len(proto_body),
            "map_us": _mean_us(lambda: codec_proto.page_to_proto(page), budget_s),
            "serialize_us": _mean_us(message.SerializeToString, budget_s),
            "parse_us": _mean_us(lambda: pb.ListProductsResponse.FromString(proto_body), budget_s),
            "unmap_us": _mean_us(lambda: codec_proto.page_from_proto(message), budget_s),
        },
    }
