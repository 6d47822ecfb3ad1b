"""Types and Protocol of the projector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class ViewError(Exception):
    """A view request is invalid (unknown kind, duplicate name, too many views)."""


@dataclass
class ViewStatus:
    name: str
    kind: str
    next_offset: int  # the offset this view reads next: everything before it is applied
    events: int  # events applied since the view was (re)built


class ProjectorService(Protocol):
    async def views(self) -> list[ViewStatus]: ...

    async def view(self, name: str) -> tuple[ViewStatus, dict]:
        """Return a view's status and its state."""

    async def add_view(self, name: str, kind: str) -> ViewStatus:
        """Add a view that catches up from the start of the log."""

    async def rebuild(self, name: str) -> ViewStatus:
        """Drop a view's state and rebuild it by replaying the log from offset 0."""
