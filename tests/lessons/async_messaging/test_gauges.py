"""Queue gauges read the real broker every second without filling the log."""

import logging
import uuid

from sandbox_services.broker.gauges import _declare_counts
from tests.broker import AMQP_URL


def test_a_missing_queue_reads_as_absent_without_a_warning(caplog):
    caplog.set_level(logging.INFO, logger="pika")
    assert _declare_counts(AMQP_URL, f"lab.{uuid.uuid4().hex}.absent") is None
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
