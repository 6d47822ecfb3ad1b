"""The claim each lesson tests, and whether the site's latest recorded run says it held."""

from __future__ import annotations

from lab.curriculum.selectors import lesson_list
from lab.sandboxes.models import Run, RunState

from . import grading


def claim_results() -> list[dict]:
    """Return each lesson's claim with what the site's most recent finished run of its experiment says.

    Whether a claim held comes from a recorded run: the figure the claim names
    (above or below its bound), or, for a claim on no figure, the run's own
    ``ok`` (its invariants). With no such run the answer is "not run yet".
    """
    items = []
    for lesson in lesson_list():
        claim = lesson.claim
        entry = {"lesson": lesson, "text": claim.get("text", ""), "run": None}
        if claim:
            run = (
                Run.objects.filter(
                    sandbox__lesson=lesson.slug,
                    experiment=claim.get("experiment"),
                    state=RunState.DONE,
                )
                .order_by("-finished_at")
                .first()
            )
            if run is not None and isinstance(run.result, dict):
                entry["run"] = _claim_verdict(claim, run)
        items.append(entry)
    return items


def _claim_verdict(claim: dict, run: Run) -> dict:
    figure = claim.get("figure")
    value = held = None
    name = ""
    if figure:
        name = f"{figure} / {claim['per']}" if claim.get("per") else figure
        value = grading.ratio_value(run.result, figure, claim.get("per", ""))
        if value is not None:
            held = ("above" not in claim or value > claim["above"]) and (
                "below" not in claim or value < claim["below"]
            )
    else:
        held = bool(run.result.get("ok", True))
    return {
        "experiment": run.experiment,
        "finished_at": run.finished_at,
        "figure": name,
        "value": value,
        "held": held,
        "headline": run.result.get("headline", ""),
    }
