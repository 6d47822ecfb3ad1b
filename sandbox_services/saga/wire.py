"""Convert the saga's domain types to and from the protobuf messages of protos/labapi/saga/v1."""

from __future__ import annotations

from sandbox_services.protos_gen.labapi.saga.v1 import saga_pb2

from sandbox_services.saga.interface import FaultPlan, Order, StepResult

# action -> (gRPC service, method): the participants' RPC names, as in the proto.
RPCS: dict[str, tuple[str, str]] = {
    "create": ("orders", "CreateOrder"),
    "approve": ("orders", "ApproveOrder"),
    "reject": ("orders", "RejectOrder"),
    "charge": ("payments", "ChargePayment"),
    "refund": ("payments", "RefundPayment"),
    "reserve": ("inventory", "ReserveStock"),
    "release": ("inventory", "ReleaseStock"),
    "schedule": ("shipping", "ScheduleShipping"),
    "cancel": ("shipping", "CancelShipping"),
}


def order_to_proto(order: Order) -> saga_pb2.Order:
    """Return the protobuf form of an order."""
    return saga_pb2.Order(
        saga_id=order.saga_id,
        order_id=order.order_id,
        customer=order.customer,
        sku=order.sku,
        quantity=order.quantity,
        amount_cents=order.amount_cents,
        plan_json=order.plan.to_json(),
    )


def order_from_proto(message: saga_pb2.Order) -> Order:
    """Return the domain order of a protobuf message."""
    return Order(
        saga_id=message.saga_id,
        order_id=message.order_id,
        customer=message.customer,
        sku=message.sku,
        quantity=message.quantity,
        amount_cents=message.amount_cents,
        plan=FaultPlan.from_json(message.plan_json),
    )


def reply_to_proto(result: StepResult) -> saga_pb2.StepReply:
    """Return the protobuf reply of a step result."""
    return saga_pb2.StepReply(status=result.status, detail=result.detail)


def reply_from_proto(reply: saga_pb2.StepReply) -> StepResult:
    """Return the step result of a protobuf reply."""
    return StepResult(reply.status, reply.detail)  # type: ignore[arg-type]
