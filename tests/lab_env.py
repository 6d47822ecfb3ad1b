"""Give each test session its own Redis database, Celery queue, SQLite file and workdir.

Loaded as a pytest plugin (``-p tests.lab_env`` in pyproject.toml) so the
environment is set before pytest-django imports the settings.
"""

import os
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SESSION = uuid.uuid4().hex[:8]
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/1")
os.environ.setdefault("CELERY_BROKER_URL", os.environ["REDIS_URL"])
os.environ.setdefault("LAB_CELERY_QUEUE", f"test-{SESSION}")
os.environ.setdefault("LAB_KEEPALIVE_SECONDS", "3")
os.environ.setdefault("LAB_TEST_DATABASE", str(ROOT / "var" / f"test-{SESSION}.sqlite3"))
os.environ.setdefault("LAB_WORKDIR", str(ROOT / "var" / f"sandboxes-test-{SESSION}"))
os.environ["DJANGO_DEBUG"] = "0"
