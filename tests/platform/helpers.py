"""Small helpers for platform tests that drive the real lab."""

import os
import time
from pathlib import Path

from rest_framework.test import APIClient

LESSON = "rest-vs-grpc"


def api_for(token: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return api


def wait_state(api: APIClient, sandbox_id: str, states: set[str], timeout: float = 40.0) -> dict:
    """Poll the API until the sandbox reaches one of ``states``; return its body."""
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        body = api.get(f"/api/sandboxes/{sandbox_id}/").json()
        if body.get("state") in states:
            return body
        time.sleep(0.1)
    raise AssertionError(
        f"sandbox stayed {body.get('state')!r} ({body.get('reason')!r}), wanted {states}"
    )


def wait_run(api: APIClient, run_id: str, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        body = api.get(f"/api/runs/{run_id}/").json()
        if body.get("state") in ("done", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"run stayed {body.get('state')!r}")


def pid_alive(pid: int) -> bool:
    """Tell whether ``pid`` is a live process (zombies count as dead, but are reported)."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return False


def service_pids(services: dict) -> list[int]:
    pids = []
    for info in services.values():
        if isinstance(info, dict):
            if isinstance(info.get("pid"), int):
                pids.append(info["pid"])
            pids.extend(pid for pid in info.get("pids", []) if isinstance(pid, int))
    return sorted(set(pids))


def descendants(roots: list[int]) -> list[int]:
    """Return ``roots`` and every live process below them (by parent pid)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(roots), list(roots)
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found.add(child)
                frontier.append(child)
    return sorted(found)
