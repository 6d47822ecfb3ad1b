"""Types of the projector."""

from __future__ import annotations

from dataclasses import dataclass


class ViewError(Exception):
    """A view request is invalid (unknown kind, duplicate name, too many views)."""


@dataclass
class ViewStatus:
    name: str
    kind: str
    next_offset: int  # the offset this view reads next: everything before it is applied
    events: int  # events applied since the view was (re)built
    # The last rebuild, as the engine timed it: from ("zero" or "snapshot"), start_offset,
    # until_offset, read (offsets delivered), seconds (None until next_offset reached until).
    rebuild: dict | None = None
