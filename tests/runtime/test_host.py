"""The host's housekeeping: directories of sandboxes that ended without cleaning up."""

from __future__ import annotations

import os
import time
import uuid

import redis

from sandbox_services.runtime import keys
from sandbox_services.runtime.host import sweep_workdirs


def test_sweep_removes_only_old_directories_of_dead_sandboxes(tmp_path):
    connection = redis.Redis.from_url(os.environ["REDIS_URL"])
    old_dead, old_alive, recent_dead = (uuid.uuid4().hex for _ in range(3))
    for name in (old_dead, old_alive, recent_dead, "not-a-sandbox"):
        (tmp_path / name / "logs").mkdir(parents=True)
    long_ago = time.time() - 7200
    for name in (old_dead, old_alive, "not-a-sandbox"):
        os.utime(tmp_path / name, (long_ago, long_ago))
    connection.set(keys.sandbox_alive(old_alive), 1, ex=30)
    try:
        assert sweep_workdirs(tmp_path, connection) == [old_dead]
    finally:
        connection.delete(keys.sandbox_alive(old_alive))
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [old_alive, recent_dead, "not-a-sandbox"]
    )
