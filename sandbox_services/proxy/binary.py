"""Find the HAProxy binary, or say plainly how to install it."""

from __future__ import annotations

import os
import shutil

INSTALL_HINT = (
    "HAProxy is not installed on this machine; the lessons that use a proxy need it:"
    " apt-get install -y haproxy (Debian/Ubuntu) or brew install haproxy (macOS)"
)


class HAProxyMissing(RuntimeError):
    """No usable haproxy binary; the message says how to install one."""


def haproxy_path() -> str | None:
    """Return the haproxy binary to run: $LAB_HAPROXY if set, else the one on PATH."""
    configured = os.environ.get("LAB_HAPROXY")
    if configured is not None:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("haproxy") or next(
        (
            path
            for path in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy")
            if os.access(path, os.X_OK)
        ),
        None,
    )


def require_haproxy() -> str:
    """Return the haproxy binary; raise HAProxyMissing with the install hint if there is none."""
    path = haproxy_path()
    if path is None:
        raise HAProxyMissing(INSTALL_HINT)
    return path
