"""The sandbox runtime: host, supervisor, service and runner processes, and their client.

Lesson code depends on ``spec.py`` (the contract) and the helpers in
``serve.py``; the web tier and Celery tasks use ``client.py`` and ``worker.py``.
"""
