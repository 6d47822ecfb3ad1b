"""Tell the instructors watching a cohort that something of theirs changed.

The message carries no data: each class view reads the class again through
the selectors, with its own viewer's rights, so nothing a viewer may not see
travels over the channel layer.
"""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from lab.users.models import Cohort

from sandbox_services.runtime.keys import cohort_group

CHANGED = {"type": "classroom.changed"}


def cohort_changed(cohort_id: int) -> None:
    """Ask every class view of one cohort to read the class again."""
    async_to_sync(get_channel_layer().group_send)(cohort_group(cohort_id), dict(CHANGED))


def learner_changed(user_id: int) -> None:
    """Ask the class views of every cohort ``user_id`` learns in to read the class again."""
    for cohort_id in Cohort.objects.filter(learners=user_id).values_list("id", flat=True):
        cohort_changed(cohort_id)
