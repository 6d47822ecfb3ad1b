"""The predict checkpoint on the lesson page, drawn by the classroom app."""

from django import template

register = template.Library()


@register.inclusion_tag("classroom/_prediction.html", takes_context=True)
def prediction_checkpoint(context, lesson, checkpoint, passed, read_only=False):
    from ..views import prediction_context

    user = context["request"].user
    # A watching instructor sees the learner's prediction, not their own.
    watched = context.get("watched")
    return prediction_context(
        user=watched or user,
        lesson=lesson,
        checkpoint=checkpoint,
        passed=passed,
        read_only=read_only or not user.is_authenticated,
    )
