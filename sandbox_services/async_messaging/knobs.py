"""Every knob of the async messaging lesson, in one place.

Names are short names; on the broker each is prefixed with the sandbox's
``ctx.prefix`` ("lab.<sandbox id>.").
"""

from __future__ import annotations

from pika.adapters.blocking_connection import BlockingChannel

from sandbox_services.broker.naming import QUEUE_EXPIRES_MS, queue_arguments
from sandbox_services.runtime.params import Param

# --- topology ---------------------------------------------------------------------------
# The order service publishes one OrderPlaced event here; it does not know who listens.
EXCHANGE = "orders"
ROUTING_KEY = "order.placed"
# Each consumer has its own queue bound to the exchange: one copy of every event each.
CONSUMERS = ("email", "audit", "analytics")
# Where a message goes after MAX_ATTEMPTS failures: "<consumer>.dead".
DEAD_SUFFIX = ".dead"
# Queues of an abandoned sandbox delete themselves after this long without consumers.
EXPIRES_MS = QUEUE_EXPIRES_MS

# --- consumers --------------------------------------------------------------------------
# Simulated work per message (ms): what "sending an email" costs in this sandbox.
WORK_MS = {"email": 3.0, "audit": 1.0, "analytics": 2.0}
# Messages the broker may push to one consumer before it acks any (basic.qos).
DEFAULT_PREFETCH = 10
PREFETCH_RANGE = (1, 500)
# A message that fails this many times in a row goes to the dead-letter queue.
MAX_ATTEMPTS = 3
# Replicas a consumer may be scaled to (competing consumers on one queue).
MAX_REPLICAS = 3

# --- the order service --------------------------------------------------------------------
# In sync mode the order service calls each consumer over HTTP and waits this long at most.
SYNC_CALL_TIMEOUT_S = 3.0
# How long a publish may keep retrying through a broker outage before the order fails.
PUBLISH_RETRY_DEADLINE_S = 15.0
# An email address the email service can never deliver to: the poison message.
POISON_EMAIL = "nobody@invalid"

# A run's load phase may last this long at most (keeps runs inside their timeouts).
MAX_LOAD_SECONDS = 60

# --- experiment parameters --------------------------------------------------------------
# The one declaration of what the learner may set in each experiment (the LAB attaches
# them): the lesson page shows them, the API refuses anything outside them with a 400.
PARAMETERS: dict[str, tuple[Param, ...]] = {
    "sync-vs-async": (
        Param("orders", "int", 10, 1, 100, help="Orders placed in each mode"),
        Param(
            "email_fault",
            "choice",
            "stop",
            choices=("none", "stop", "slow"),
            help="What happens to email before the last two orders",
        ),
        Param("slow_ms", "int", 500, 0, 2000, help="Injected delay when email is slow"),
    ),
    "temporal-decoupling": (
        Param("orders", "int", 60, 5, 500, help="Orders placed while the consumer is down"),
        Param(
            "consumer", "choice", "email", choices=CONSUMERS, help="The consumer to stop or slow"
        ),
        Param(
            "fault",
            "choice",
            "stop",
            choices=("stop", "slow"),
            help="Stop the process, or inject a delay per message",
        ),
        Param(
            "rate",
            "float",
            20.0,
            1.0,
            200.0,
            help=f"Orders per second (orders / rate at most {MAX_LOAD_SECONDS} s)",
        ),
        Param("slow_ms", "int", 200, 10, 2000, help="Injected delay per message when slow"),
    ),
    "at-least-once": (
        Param("orders", "int", 20, 1, 200, help="Orders placed"),
        Param(
            "crashes", "int", 3, 0, 20, help="Orders on which the consumer crashes before its ack"
        ),
        Param(
            "idempotent", "bool", False, help="Deduplicate by message id in the consumer's store"
        ),
        Param("consumer", "choice", "email", choices=CONSUMERS, help="The consumer that crashes"),
    ),
    "poison-messages": (
        Param("good_orders", "int", 5, 0, 100, help="Good orders placed around the poison one"),
        Param(
            "send_back", "bool", True, help="Repair the dead letter and move it back to its queue"
        ),
    ),
    "competing-consumers": (
        Param(
            "orders",
            "int",
            300,
            10,
            2000,
            help="Orders placed as fast as the order service takes them",
        ),
        Param(
            "replicas",
            "int",
            3,
            1,
            MAX_REPLICAS,
            help="Analytics replicas consuming the one queue",
        ),
        Param(
            "prefetch",
            "int",
            DEFAULT_PREFETCH,
            *PREFETCH_RANGE,
            help="Unacked messages the broker may push to each replica",
        ),
        Param("work_ms", "float", 5.0, 0.0, 50.0, help="Simulated work per message in analytics"),
        Param(
            "scale",
            "choice",
            "before",
            choices=("before", "after"),
            help="Add the replicas before the orders arrive, or onto a backlog",
        ),
    ),
}


def queue_names() -> list[str]:
    """Return the short names of the queues the services declare (runs declare more; see hooks)."""
    return [*CONSUMERS, *(c + DEAD_SUFFIX for c in CONSUMERS)]


def declare_exchange(channel: BlockingChannel, prefix: str) -> None:
    """Declare the topic exchange; auto-delete so it goes once its queues have expired."""
    channel.exchange_declare(prefix + EXCHANGE, "topic", durable=True, auto_delete=True)


def declare_consumer_queue(channel: BlockingChannel, prefix: str, consumer: str) -> None:
    """Declare a consumer's queue, its dead-letter queue and its binding."""
    declare_exchange(channel, prefix)
    dead = prefix + consumer + DEAD_SUFFIX
    channel.queue_declare(dead, durable=True, arguments=queue_arguments(EXPIRES_MS))
    # Rejected messages go straight to "<consumer>.dead" through the default exchange.
    arguments = queue_arguments(
        EXPIRES_MS, **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}
    )
    channel.queue_declare(prefix + consumer, durable=True, arguments=arguments)
    channel.queue_bind(prefix + consumer, prefix + EXCHANGE, ROUTING_KEY)


def declare_all(channel: BlockingChannel, prefix: str) -> None:
    """Declare the whole topology (idempotent: same arguments each time)."""
    for consumer in CONSUMERS:
        declare_consumer_queue(channel, prefix, consumer)


# --- an effect outside the consumer's store (external-side-effect) --------------------------
# The outside mail provider the email consumer calls when the experiment switches it on.
MAIL_PROVIDER = "mail-provider"

# --- backpressure (queue-length-limit) ----------------------------------------------------
# One bounded queue per overflow behaviour, declared by the run with x-max-length.
OVERFLOW_MODES = ("reject-publish", "drop-head")
BOUNDED_QUEUE = "bounded.{}"

# --- Kafka's model on RabbitMQ 3.10 (partitions) --------------------------------------------
# A direct exchange routes each message to the queue of its partition ("partition.<n>"),
# chosen by the producer from the key; each queue has a single active consumer.
PARTITION_EXCHANGE = "partitions"
PARTITION_QUEUE = "partition.{}"
MAX_PARTITIONS = 8
# The group's members: the broker makes one of them active on each partition.
GROUP_MEMBERS = ("member-a", "member-b", "member-c")

# The experiments that go past the lesson's five (declared like the ones above).
PARAMETERS |= {
    "external-side-effect": (
        Param("orders", "int", 6, 1, 50, help="Orders placed in each phase (no key, then a key)"),
        Param(
            "crashes",
            "int",
            2,
            0,
            10,
            help="Orders on which email crashes after the provider's answer, before its commit",
        ),
    ),
    "queue-length-limit": (
        Param("max_length", "int", 10, 1, 1000, help="x-max-length of each bounded queue"),
        Param("messages", "int", 30, 1, 2000, help="Messages published to each, with no consumer"),
    ),
    "partitions": (
        Param("keys", "int", 12, 1, 100, help="Distinct keys (customers), each in its own order"),
        Param("per_key", "int", 10, 2, 100, help="Messages per key in each phase"),
        Param("partitions", "int", 3, 1, MAX_PARTITIONS - 1, help="Partitions before the change"),
        Param("work_ms", "float", 5.0, 0.0, 20.0, help="Work per message in each member"),
    ),
}


def bounded_queue(prefix: str, overflow: str) -> str:
    """Return the broker name of the bounded queue for one overflow behaviour."""
    return prefix + BOUNDED_QUEUE.format(overflow)


def partition_queues(prefix: str) -> list[str]:
    """Return the broker names of every partition queue a run may declare."""
    return [prefix + PARTITION_QUEUE.format(n) for n in range(MAX_PARTITIONS)]


# --- the broker's poison guard (delivery-limit) --------------------------------------------
# A quorum queue with x-delivery-limit beside a classic queue, each with its ".dead" queue.
GUARD_KINDS = ("quorum", "classic")
GUARD_QUEUE = "guarded.{}"

PARAMETERS |= {
    "delivery-limit": (
        Param("delivery_limit", "int", 3, 1, 20, help="x-delivery-limit of the quorum queue"),
        Param(
            "give_up",
            "int",
            200,
            10,
            5000,
            help="Deliveries after which the classic queue's consumer gives up",
        ),
        Param("good", "int", 5, 0, 100, help="Good messages published behind the poison one"),
    ),
}


def guard_queue(prefix: str, kind: str) -> str:
    """Return the broker name of the guarded queue of one kind (its dead letters: + ".dead")."""
    return prefix + GUARD_QUEUE.format(kind)
