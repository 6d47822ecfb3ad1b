"""Convert catalog domain types to and from the generated protobuf messages."""

from __future__ import annotations

from sandbox_services.rest_vs_grpc.services.catalog.interface import (
    PriceUpdate,
    Product,
    ProductPage,
    Reservation,
    ServerStats,
)
from sandbox_services.protos_gen.labapi.catalog.v1 import catalog_pb2 as pb


def product_to_proto(product: Product) -> pb.Product:
    return pb.Product(
        id=product.id,
        sku=product.sku,
        name=product.name,
        description=product.description,
        price_cents=product.price_cents,
        currency=product.currency,
        stock=product.stock,
        tags=product.tags,
        rating=product.rating,
        active=product.active,
    )


def product_from_proto(message: pb.Product) -> Product:
    return Product(
        id=message.id,
        sku=message.sku,
        name=message.name,
        description=message.description,
        price_cents=message.price_cents,
        currency=message.currency,
        stock=message.stock,
        tags=tuple(message.tags),
        rating=message.rating,
        active=message.active,
    )


def page_to_proto(page: ProductPage) -> pb.ListProductsResponse:
    return pb.ListProductsResponse(
        products=[product_to_proto(p) for p in page.products], total=page.total
    )


def page_from_proto(message: pb.ListProductsResponse) -> ProductPage:
    return ProductPage(tuple(product_from_proto(p) for p in message.products), message.total)


def reservation_to_proto(reservation: Reservation) -> pb.Reservation:
    return pb.Reservation(
        reservation_id=reservation.reservation_id,
        product_id=reservation.product_id,
        count=reservation.count,
        total_cents=reservation.total_cents,
    )


def reservation_from_proto(message: pb.Reservation) -> Reservation:
    return Reservation(
        message.reservation_id, message.product_id, message.count, message.total_cents
    )


def price_to_proto(update: PriceUpdate) -> pb.PriceUpdate:
    return pb.PriceUpdate(
        symbol=update.symbol,
        sequence=update.sequence,
        price_micros=update.price_micros,
        emitted_unix_nanos=update.emitted_unix_nanos,
    )


def price_from_proto(message: pb.PriceUpdate) -> PriceUpdate:
    return PriceUpdate(
        message.symbol, message.sequence, message.price_micros, message.emitted_unix_nanos
    )


def stats_to_proto(stats: ServerStats) -> pb.ServerStats:
    return pb.ServerStats(
        calls=stats.calls,
        window_connections=stats.window_connections,
        window_calls=stats.window_calls,
    )


def stats_from_proto(message: pb.ServerStats) -> ServerStats:
    return ServerStats(dict(message.calls), message.window_connections, message.window_calls)
