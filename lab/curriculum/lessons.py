"""Lessons as the site sees them: read from lessons/<slug>/lesson.md and validated.

A lesson file is YAML front matter and Markdown (see docs/architecture.md).
Each experiment's parameters are not in the file: they come from the lesson's
``LAB`` (``sandbox_services/<slug>/knobs.py`` declares them once), so the page,
the API and the validation of a run all read the one declaration.
Every problem is reported as a ``LessonProblem`` naming the file and the field,
so ``manage.py check`` can say exactly what to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import markdown
import yaml

from sandbox_services.runtime.params import Param
from sandbox_services.runtime.plan import lesson_module, load_lab
from sandbox_services.runtime.spec import LabSpec

CHECKPOINT_KINDS = ("run", "quiz", "read", "predict")
# A predict checkpoint takes a number, or one of its choices (each a range of the figure).
ANSWER_TYPES = ("number", "choice")
SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,48}$")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,48}$")
STEP_MARKER = re.compile(r"<!--\s*step:\s*([A-Za-z0-9_-]+)\s*-->")
EXPERIMENT_MARKER = re.compile(r"<!--\s*experiment:\s*([A-Za-z0-9_-]+)\s*-->")


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    step: str
    parameters: tuple[Param, ...]  # the LAB's ExperimentSpec's, never the file's
    summary: str = ""

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "step": self.step,
            "summary": self.summary,
            "parameters": [parameter.as_dict() for parameter in self.parameters],
        }


@dataclass(frozen=True)
class Checkpoint:
    id: str
    step: str
    kind: str
    experiment: str = ""
    question: str = ""
    choices: tuple[str, ...] = ()
    answer: int | None = None
    explanation: str = ""
    # kind predict: the answer is graded against the summary figure ``figure`` of the
    # run's own result (divided by the figure ``per`` when given): a number within
    # ``tolerance`` (a fraction of the observed value), or the choice whose range
    # the figure falls in (``bins`` are the boundaries between the choices).
    answer_type: str = ""
    figure: str = ""
    per: str = ""
    tolerance: float = 0.0
    bins: tuple[float, ...] = ()
    unit: str = ""

    def as_dict(self) -> dict:
        # The answer stays on the server: a quiz that ships its answer teaches nothing.
        return {
            "id": self.id,
            "step": self.step,
            "kind": self.kind,
            "experiment": self.experiment,
            "question": self.question,
            "choices": list(self.choices),
            "answer_type": self.answer_type,
            "figure": self.figure,
            "unit": self.unit,
        }


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    html: str


@dataclass(frozen=True)
class Lesson:
    slug: str
    title: str
    summary: str
    order: int
    steps: tuple[Step, ...]
    experiments: tuple[Experiment, ...]
    checkpoints: tuple[Checkpoint, ...]
    path: Path = field(compare=False)
    # About how long the lesson takes, for the path on the home page.
    minutes: int = 0
    # The claim the lesson tests and how a run of its experiment decides it:
    # {text, experiment, figure, per, above, below}; without a figure the run's
    # own ``ok`` (its invariants) decides.
    claim: dict = field(default_factory=dict, compare=False)

    def experiment(self, name: str) -> Experiment | None:
        return next((item for item in self.experiments if item.name == name), None)

    def checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        return next((item for item in self.checkpoints if item.id == checkpoint_id), None)

    def step(self, step_id: str) -> Step | None:
        return next((item for item in self.steps if item.id == step_id), None)

    def as_dict(self) -> dict:
        return {
            "slug": self.slug,
            "title": self.title,
            "summary": self.summary,
            "order": self.order,
            "minutes": self.minutes,
            "steps": [{"id": step.id, "title": step.title} for step in self.steps],
            "experiments": [experiment.as_dict() for experiment in self.experiments],
            "checkpoints": [checkpoint.as_dict() for checkpoint in self.checkpoints],
        }


@dataclass(frozen=True)
class LessonProblem:
    path: Path
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.field}: {self.message}"


class LessonInvalid(Exception):
    def __init__(self, problems: list[LessonProblem]):
        self.problems = problems
        super().__init__("; ".join(str(problem) for problem in problems))


def lab_module_name(slug: str) -> str:
    """Return the Python package holding a lesson's LabSpec."""
    return lesson_module(slug)


def load_lesson(path: Path) -> Lesson:
    """Parse and validate one lesson.md; raise LessonInvalid listing every problem."""
    problems: list[LessonProblem] = []

    def problem(field_name: str, message: str) -> None:
        problems.append(LessonProblem(path, field_name, message))

    text = path.read_text(encoding="utf-8")
    front, body = _split_front_matter(text)
    if front is None:
        raise LessonInvalid([LessonProblem(path, "front matter", "missing '---' YAML block")])
    try:
        meta = yaml.safe_load(front) or {}
    except yaml.YAMLError as error:
        raise LessonInvalid(
            [LessonProblem(path, "front matter", f"invalid YAML: {error}")]
        ) from None
    if not isinstance(meta, dict):
        raise LessonInvalid([LessonProblem(path, "front matter", "must be a mapping")])

    slug = path.parent.name
    if not SLUG_PATTERN.match(slug):
        problem("slug", f"folder name {slug!r} must be lowercase letters, digits and dashes")
    for required in ("title", "summary"):
        if not isinstance(meta.get(required), str) or not meta[required].strip():
            problem(required, "is required and must be text")
    order = meta.get("order", 100)
    if not isinstance(order, int):
        problem("order", "must be an integer")
        order = 100
    minutes = meta.get("minutes")
    if minutes is not None and (
        not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < 1
    ):
        problem("minutes", "must be a whole number of minutes, at least 1")
        minutes = None
    claim = meta.get("claim") or {}
    if not isinstance(claim, dict):
        problem("claim", "must be a mapping: text, experiment, and optionally figure")
        claim = {}

    steps_meta = _list_of_mappings(meta.get("steps"), "steps", problem)
    step_titles: dict[str, str] = {}
    for index, item in enumerate(steps_meta):
        step_id, title = item.get("id"), item.get("title")
        if not isinstance(step_id, str) or not NAME_PATTERN.match(step_id):
            problem(f"steps[{index}].id", "must be a short lowercase name")
            continue
        if step_id in step_titles:
            problem(f"steps[{index}].id", f"duplicate step {step_id!r}")
        if not isinstance(title, str) or not title.strip():
            problem(f"steps[{index}].title", "is required")
        step_titles[step_id] = str(title)
    if not step_titles:
        problem("steps", "a lesson needs at least one step")

    lab = _lab(slug, problem)
    experiments = []
    for index, item in enumerate(
        _list_of_mappings(meta.get("experiments"), "experiments", problem)
    ):
        experiment = _experiment(item, f"experiments[{index}]", step_titles, slug, lab, problem)
        if experiment:
            if any(existing.name == experiment.name for existing in experiments):
                problem(f"experiments[{index}].name", f"duplicate experiment {experiment.name!r}")
            experiments.append(experiment)
    if lab is not None:
        _check_lab(lab, experiments, problem)

    checkpoints = []
    experiment_names = {experiment.name for experiment in experiments}
    for index, item in enumerate(
        _list_of_mappings(meta.get("checkpoints"), "checkpoints", problem)
    ):
        checkpoint = _checkpoint(
            item, f"checkpoints[{index}]", step_titles, experiment_names, problem
        )
        if checkpoint:
            checkpoints.append(checkpoint)

    steps = _steps(body, step_titles, experiment_names, problem)
    if claim:
        _check_claim(claim, experiment_names, problem)
    if problems:
        raise LessonInvalid(problems)
    return Lesson(
        slug=slug,
        title=meta["title"].strip(),
        summary=meta["summary"].strip(),
        order=order,
        steps=tuple(steps),
        experiments=tuple(experiments),
        checkpoints=tuple(checkpoints),
        path=path,
        # Without a figure in the file: about five minutes a step and three a run.
        minutes=minutes or 5 * len(steps) + 3 * len(experiments),
        claim=claim,
    )


def _check_claim(claim: dict, experiments: set, problem) -> None:
    """Check a lesson's claim: its words, the experiment that tests it, and the rule."""
    if not isinstance(claim.get("text"), str) or not claim["text"].strip():
        problem("claim.text", "says what the lesson claims, in one sentence")
    if claim.get("experiment") not in experiments:
        problem(
            "claim.experiment", f"names no experiment of this lesson: {claim.get('experiment')!r}"
        )
    if "figure" in claim:
        bounds = [claim.get(name) for name in ("above", "below") if name in claim]
        if not bounds or not all(_is_number(bound) for bound in bounds):
            problem(
                "claim.above",
                "a claim on a figure holds when the figure is above or below a number",
            )


def load_all(lessons_dir: Path) -> tuple[list[Lesson], list[LessonProblem]]:
    """Load every lesson under ``lessons_dir``; return the good ones and all problems."""
    lessons, problems = [], []
    for path in sorted(lessons_dir.glob("*/lesson.md")):
        try:
            lessons.append(load_lesson(path))
        except LessonInvalid as invalid:
            problems.extend(invalid.problems)
    lessons.sort(key=lambda lesson: (lesson.order, lesson.title))
    return lessons, problems


def _split_front_matter(text: str) -> tuple[str | None, str]:
    if not text.startswith("---"):
        return None, text
    parts = text.split("\n---", 2)
    if len(parts) < 2:
        return None, text
    front = parts[0][3:]
    body = parts[1].split("\n", 1)[1] if "\n" in parts[1] else ""
    if len(parts) == 3:
        body = body + "\n---" + parts[2]
    return front, body


def _list_of_mappings(value: Any, name: str, problem) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        problem(name, "must be a list of mappings")
        return []
    return value


def _experiment(
    item: dict, where: str, step_titles: dict, slug: str, lab: LabSpec | None, problem
) -> Experiment | None:
    name = item.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        problem(f"{where}.name", "must be a short lowercase name")
        return None
    step = item.get("step")
    if step not in step_titles:
        problem(f"{where}.step", f"names no step of this lesson: {step!r}")
    if "parameters" in item:
        problem(
            f"{where}.parameters",
            "are declared once, in Python: remove them here; they belong in "
            f"sandbox_services/{slug.replace('-', '_')}/knobs.py",
        )
    parameters: tuple[Param, ...] = ()
    if lab is not None:
        try:
            parameters = lab.experiment(name).parameters
        except KeyError:
            pass  # reported by _check_lab, with the module that lacks it
    return Experiment(
        name=name,
        title=str(item.get("title") or name),
        step=str(step),
        parameters=parameters,
        summary=str(item.get("summary") or ""),
    )


def _checkpoint(
    item: dict, where: str, step_titles: dict, experiments: set, problem
) -> Checkpoint | None:
    checkpoint_id, kind = item.get("id"), item.get("kind", "read")
    if not isinstance(checkpoint_id, str) or not NAME_PATTERN.match(checkpoint_id):
        problem(f"{where}.id", "must be a short lowercase name")
        return None
    if item.get("step") not in step_titles:
        problem(f"{where}.step", f"names no step of this lesson: {item.get('step')!r}")
    if kind not in CHECKPOINT_KINDS:
        problem(f"{where}.kind", f"must be one of {', '.join(CHECKPOINT_KINDS)}")
        return None
    if kind in ("run", "predict") and item.get("experiment") not in experiments:
        problem(
            f"{where}.experiment", f"names no experiment of this lesson: {item.get('experiment')!r}"
        )
    choices = tuple(str(choice) for choice in item.get("choices") or ())
    answer = item.get("answer")
    if kind == "quiz":
        if not item.get("question") or len(choices) < 2:
            problem(f"{where}.question", "a quiz needs a question and at least two choices")
        if not isinstance(answer, int) or not 0 <= answer < len(choices):
            problem(f"{where}.answer", "must be the index of the right choice")
    if kind == "predict":
        _check_prediction(item, where, choices, problem)
    return Checkpoint(
        id=checkpoint_id,
        step=str(item.get("step")),
        kind=kind,
        experiment=str(item.get("experiment") or ""),
        question=str(item.get("question") or ""),
        choices=choices,
        answer=answer if isinstance(answer, int) else None,
        explanation=str(item.get("explanation") or ""),
        answer_type=str(item.get("answer_type") or ""),
        figure=str(item.get("figure") or ""),
        per=str(item.get("per") or ""),
        tolerance=float(item.get("tolerance") or 0),
        bins=tuple(float(bound) for bound in item.get("bins") or () if _is_number(bound)),
        unit=str(item.get("unit") or ""),
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_prediction(item: dict, where: str, choices: tuple, problem) -> None:
    """Check a predict checkpoint: a question, the figure it is graded on, and how."""
    if not item.get("question"):
        problem(f"{where}.question", "a prediction needs a question")
    if not isinstance(item.get("figure"), str) or not item["figure"].strip():
        problem(f"{where}.figure", "names the summary figure of the run it is graded on")
    if "per" in item and (not isinstance(item["per"], str) or not item["per"].strip()):
        problem(f"{where}.per", "names the summary figure to divide by")
    answer_type = item.get("answer_type")
    if answer_type not in ANSWER_TYPES:
        problem(f"{where}.answer_type", f"must be one of {', '.join(ANSWER_TYPES)}")
    elif answer_type == "number":
        tolerance = item.get("tolerance")
        if not _is_number(tolerance) or not 0 < tolerance <= 10:
            problem(
                f"{where}.tolerance",
                "a number prediction needs a tolerance: a fraction of the observed value",
            )
    else:
        bins = item.get("bins")
        if len(choices) < 2:
            problem(f"{where}.choices", "a choice prediction needs at least two choices")
        elif (
            not isinstance(bins, list)
            or len(bins) != len(choices) - 1
            or not all(_is_number(bound) for bound in bins)
            or bins != sorted(bins)
        ):
            problem(
                f"{where}.bins",
                f"needs {len(choices) - 1} ascending numbers: the figure's boundaries "
                "between one choice and the next",
            )


def _steps(body: str, step_titles: dict, experiments: set, problem) -> list[Step]:
    """Split the body at step markers and render each part to HTML."""
    pieces = STEP_MARKER.split(body)
    found: dict[str, str] = {}
    for index in range(1, len(pieces), 2):
        step_id, text = pieces[index], pieces[index + 1]
        if step_id not in step_titles:
            problem("body", f"marker names an undeclared step {step_id!r}")
            continue
        found[step_id] = text
    for step_id in step_titles:
        if step_id not in found:
            problem("body", f"no '<!-- step: {step_id} -->' marker for a declared step")
    placed = set(EXPERIMENT_MARKER.findall(body))
    for name in placed - experiments:
        problem("body", f"marker places an undeclared experiment {name!r}")
    steps = []
    for step_id, title in step_titles.items():
        if step_id in found:
            steps.append(Step(id=step_id, title=title, html=_render(found[step_id])))
    return steps


def _render(text: str) -> str:
    text = EXPERIMENT_MARKER.sub(
        lambda match: f'\n<div class="experiment-slot" data-experiment="{match.group(1)}"></div>\n',
        text,
    )
    return markdown.markdown(text, extensions=["fenced_code", "tables", "attr_list", "sane_lists"])


def _lab(slug: str, problem) -> LabSpec | None:
    """Return the lesson's LAB, or report why there is none."""
    try:
        module_name = lab_module_name(slug)
    except LookupError as error:
        problem("lab", str(error))
        return None
    try:
        lab = load_lab(slug)
    except (ImportError, LookupError) as error:
        problem("lab", f"cannot import {module_name}: {error}")
        return None
    except Exception as error:  # a broken knobs.py (a Param that breaks its rules, say)
        problem("lab", f"importing {module_name} failed: {type(error).__name__}: {error}")
        return None
    if lab.slug != slug:
        problem("lab", f"{module_name}.LAB has slug {lab.slug!r}, not {slug!r}")
    return lab


def _check_lab(lab: LabSpec, experiments: list[Experiment], problem) -> None:
    """Check that lesson.md and the LAB name the same experiments, each way round."""
    module_name = lab_module_name(lab.slug)
    implemented = [spec.name for spec in lab.experiments]
    declared = [experiment.name for experiment in experiments]
    for index, name in enumerate(declared):
        if name not in implemented:
            problem(
                f"experiments[{index}].name",
                f"{name!r} has no ExperimentSpec in {module_name}.LAB "
                f"(it has: {', '.join(implemented) or 'none'})",
            )
    for name in implemented:
        if name not in declared:
            problem(
                "experiments",
                f"{module_name}.LAB has experiment {name!r}, which this file does not list",
            )
