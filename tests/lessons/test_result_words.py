"""Result headlines agree with the learner's parameters (issue 10, item 5).

Each case was measured wrong on a real run; the report functions that write
them are pure, so each is checked here with the figures of that run.
"""

from sandbox_services.async_messaging.experiments import (
    decoupling_headline,
    replica_shares,
    replicas_phrase,
)
from sandbox_services.event_sourcing.experiments import replay_headline


def decoupling(**overrides) -> str:
    figures = dict(
        victim="email", fault="stop", peak=24, p50_ms=3.1, orders=60, caught_up=True, seen={}
    )
    return decoupling_headline(**(figures | overrides))


def test_temporal_decoupling_counts_the_orders_the_learner_asked_for():
    headline = decoupling(orders=60)
    assert "65" not in headline  # was "every consumer saw all 65 orders" for orders=60
    assert "the 60 orders placed while email was stopped" in headline
    assert "after the restart" in headline


def test_a_slow_consumer_is_not_said_to_restart():
    headline = decoupling(fault="slow")
    assert "restart" not in headline
    assert "once the delay was cleared" in headline and "was slow" in headline


def test_one_replica_is_not_added_after_the_orders_and_earlier_replicas_get_no_bar():
    assert replicas_phrase(1, "after") == "1 analytics replica"
    assert replicas_phrase(3, "after") == "3 analytics replicas (added after the orders)"
    # A run with 3 replicas came first; this run has 1: replicas 1 and 2 handled nothing now.
    before = {"0": 120, "1": 80, "2": 60}
    after = {"0": 220, "1": 80, "2": 60}
    assert replica_shares(before, after, 1) == {"0": 100}
    assert replica_shares({}, {"0": 40, "1": 30, "2": 30}, 3) == {"0": 40, "1": 30, "2": 30}


def test_a_replay_says_how_many_events_this_run_appended_and_how_many_came_before():
    headline = replay_headline(
        view="balances", replayed=5633, appended=2000, elapsed_s=1.2, equal=True
    )
    assert "5633 events in the log (2000 appended by this run, 3633 by earlier ones)" in headline
    first = replay_headline(
        view="balances", replayed=2000, appended=2000, elapsed_s=1.0, equal=True
    )
    assert "the 2000 events in the log" in first and "earlier" not in first
