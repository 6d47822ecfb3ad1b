"""The import rule of the one-package-per-lesson layout, read from the source with ``ast``.

- A shared package (sandbox_services/runtime, broker, proxy, ...), the web tier
  (lab/) and the scripts never import a lesson package.
- A lesson package (sandbox_services/<lesson>/) imports only shared packages and
  itself, never another lesson. Dotted "module:function" strings in a lesson
  (a ServiceSpec's main, an ExperimentSpec's main) count as imports too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from sandbox_services.runtime.plan import SHARED_PACKAGES, lesson_packages

ROOT = Path(__file__).resolve().parents[1]
SANDBOX = ROOT / "sandbox_services"
LESSONS = {name.split(".")[1] for name in lesson_packages()}
DOTTED_STRING = re.compile(r"^sandbox_services\.([A-Za-z_][A-Za-z0-9_]*)[.:]")


def module_name(path: Path) -> str:
    """Return the dotted module name of a file under the project root."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """Return (line, dotted name) for every import and dotted-path string in a file."""
    if source is None:
        source = path.read_text()
    tree = ast.parse(source, filename=str(path))
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # "from sandbox_services import saga" imports the lesson package itself.
            if target == "sandbox_services":
                found += [(node.lineno, f"sandbox_services.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = DOTTED_STRING.match(node.value)
            if match:
                found.append((node.lineno, f"sandbox_services.{match.group(1)}"))
    return found


def lesson_of(dotted: str) -> str | None:
    """Return the lesson a dotted module name belongs to, or None for anything else."""
    parts = dotted.split(".")
    if len(parts) >= 2 and parts[0] == "sandbox_services" and parts[1] in LESSONS:
        return parts[1]
    return None


def python_files(*roots: Path) -> list[Path]:
    return sorted(
        path for root in roots for path in root.rglob("*.py") if "protos_gen" not in path.parts
    )


def violations(extra: dict[Path, str] | None = None) -> list[str]:
    """Return one line per import that breaks the rule, naming file and line.

    ``extra`` adds files that are not on disk (path -> source), so the tests of
    the rule itself never write into the tree.
    """
    extra = extra or {}
    found = []
    shared_roots = [SANDBOX / name for name in SHARED_PACKAGES if (SANDBOX / name).is_dir()]
    shared_files = python_files(*shared_roots, ROOT / "lab", ROOT / "scripts")
    shared_files += [SANDBOX / "__init__.py", SANDBOX / "codegen.py"]
    shared_files += [
        path for path in extra if not any(path.is_relative_to(SANDBOX / n) for n in LESSONS)
    ]
    for path in shared_files:
        for line, target in imported_modules(path, extra.get(path)):
            if lesson := lesson_of(target):
                found.append(
                    f"{path.relative_to(ROOT)}:{line} (shared) imports lesson {lesson!r}: {target}"
                )
    for lesson in sorted(LESSONS):
        lesson_files = python_files(SANDBOX / lesson)
        lesson_files += [path for path in extra if path.is_relative_to(SANDBOX / lesson)]
        for path in lesson_files:
            for line, target in imported_modules(path, extra.get(path)):
                other = lesson_of(target)
                if other is not None and other != lesson:
                    found.append(
                        f"{path.relative_to(ROOT)}:{line} (lesson {lesson!r}) imports lesson "
                        f"{other!r}: {target}"
                    )
    return found


def test_every_lesson_package_is_found():
    assert {"rest_vs_grpc", "async_messaging", "event_sourcing", "saga"} <= LESSONS
    assert not LESSONS & SHARED_PACKAGES


def test_no_shared_package_imports_a_lesson_and_no_lesson_imports_another():
    problems = violations()
    assert not problems, "import rule broken:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("source", "where", "expected"),
    [
        ("from sandbox_services.saga import knobs\n", "runtime", "(shared) imports lesson 'saga'"),
        ("import sandbox_services.saga.scenario\n", "broker", "(shared) imports lesson 'saga'"),
        ("from sandbox_services import saga\n", "runtime", "(shared) imports lesson 'saga'"),
        (
            "MAIN = 'sandbox_services.event_sourcing.experiments:replay'\n",
            "saga",
            "(lesson 'saga') imports lesson 'event_sourcing'",
        ),
        ("from ..event_sourcing import knobs\n", "saga", "imports lesson 'event_sourcing'"),
    ],
)
def test_the_rule_catches_a_violation_and_names_the_file(source, where, expected):
    path = SANDBOX / where / "_layout_probe.py"
    problems = [line for line in violations({path: source}) if "_layout_probe.py" in line]
    assert problems and expected in problems[0], problems
    assert problems[0].startswith(f"sandbox_services/{where}/_layout_probe.py:1")


def test_a_lesson_importing_itself_and_shared_code_is_allowed():
    path = SANDBOX / "saga" / "_layout_probe.py"
    source = (
        "from sandbox_services.runtime.spec import LabSpec\n"
        "from sandbox_services.broker.connection import connect\n"
        "from . import knobs\n"
        "MAIN = 'sandbox_services.saga.experiments:happy_path'\n"
    )
    assert [line for line in violations({path: source}) if "_layout_probe" in line] == []
