"""Template filters about the viewer's role, so templates need no role logic of their own."""

from django import template

from lab.users.selectors import is_guest as _is_guest

register = template.Library()


@register.filter
def is_guest(user) -> bool:
    return _is_guest(user)


@register.filter
def get_item(mapping, key):
    """Look up ``mapping[key]`` (templates can't index by a variable)."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None
