"""Convert catalog domain types to and from the JSON documents of the REST API."""

from __future__ import annotations

from typing import Any

from sandbox_services.rest_vs_grpc.services.catalog.interface import (
    PriceUpdate,
    Product,
    ProductPage,
    Reservation,
    ServerStats,
)


def product_to_json(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        "price_cents": product.price_cents,
        "currency": product.currency,
        "stock": product.stock,
        "tags": list(product.tags),
        "rating": product.rating,
        "active": product.active,
    }


def product_from_json(data: dict[str, Any]) -> Product:
    return Product(
        id=data["id"],
        sku=data["sku"],
        name=data["name"],
        description=data["description"],
        price_cents=data["price_cents"],
        currency=data["currency"],
        stock=data["stock"],
        tags=tuple(data["tags"]),
        rating=data["rating"],
        active=data["active"],
    )


def page_to_json(page: ProductPage) -> dict[str, Any]:
    return {"products": [product_to_json(p) for p in page.products], "total": page.total}


def page_from_json(data: dict[str, Any]) -> ProductPage:
    return ProductPage(tuple(product_from_json(p) for p in data["products"]), data["total"])


def reservation_to_json(reservation: Reservation) -> dict[str, Any]:
    return {
        "reservation_id": reservation.reservation_id,
        "product_id": reservation.product_id,
        "count": reservation.count,
        "total_cents": reservation.total_cents,
    }


def reservation_from_json(data: dict[str, Any]) -> Reservation:
    return Reservation(
        data["reservation_id"], data["product_id"], data["count"], data["total_cents"]
    )


def price_to_json(update: PriceUpdate) -> dict[str, Any]:
    return {
        "symbol": update.symbol,
        "sequence": update.sequence,
        "price_micros": update.price_micros,
        "emitted_unix_nanos": update.emitted_unix_nanos,
    }


def price_from_json(data: dict[str, Any]) -> PriceUpdate:
    return PriceUpdate(
        data["symbol"], data["sequence"], data["price_micros"], data["emitted_unix_nanos"]
    )


def stats_to_json(stats: ServerStats) -> dict[str, Any]:
    return {
        "calls": stats.calls,
        "window_connections": stats.window_connections,
        "window_calls": stats.window_calls,
    }


def stats_from_json(data: dict[str, Any]) -> ServerStats:
    return ServerStats(dict(data["calls"]), data["window_connections"], data["window_calls"])
