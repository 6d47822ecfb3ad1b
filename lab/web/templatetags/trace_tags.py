"""Template tags of the lesson page's trace view."""

import importlib

from django import template

from lab.curriculum.lessons import lab_module_name

register = template.Library()


@register.simple_tag
def lesson_lifelines(slug: str) -> list[str]:
    """Return the sequence diagram's fixed columns, as the lesson's LabSpec declares them."""
    try:
        return list(importlib.import_module(lab_module_name(slug)).LAB.lifeline_order())
    except (ImportError, AttributeError):
        return []
