"""Channel-layer group names of the class view: the only place they are built."""


def cohort_group(cohort_id: int) -> str:
    """Return the channel layer group of the instructors watching one cohort."""
    return f"cohort.{int(cohort_id)}"
