"""JSON with a nesting limit, for the API and the WebSocket alike.

Python's json module recurses once per level: a document nested 100,000 deep
raises RecursionError, which no handler expects. Parsing stops there, and a
document deeper than LAB_JSON_MAX_DEPTH is refused before any serializer walks it.
"""

import json

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class JSONTooDeep(ValueError):
    pass


def _max_depth() -> int:
    return getattr(settings, "LAB_JSON_MAX_DEPTH", 32)


def check_depth(value, limit: int | None = None) -> None:
    """Raise JSONTooDeep if ``value`` nests lists and objects deeper than ``limit``."""
    limit = _max_depth() if limit is None else limit
    # Iterative, so checking cannot hit the recursion it guards against.
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            raise JSONTooDeep(f"JSON nested deeper than {limit} levels.")
        pending.extend((child, depth + 1) for child in children)


def loads_bounded(text: str | bytes):
    """Parse JSON text; raise ValueError (JSONTooDeep included) for bad or over-deep input."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise JSONTooDeep(f"JSON nested deeper than {_max_depth()} levels.") from None
    check_depth(value)
    return value


class DepthLimitedJSONParser(JSONParser):
    """DRF's JSON parser, refusing documents nested deeper than LAB_JSON_MAX_DEPTH."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(
                f"JSON parse error - nested deeper than {_max_depth()} levels."
            ) from None
        try:
            check_depth(data)
        except JSONTooDeep as error:
            raise ParseError(f"JSON parse error - {error}") from None
        return data
