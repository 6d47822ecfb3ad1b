"""axe-core in the browser tests: installed from npm by the test setup, injected with Playwright.

axe-core (MPL-2.0, Deque Systems) is not vendored: the ``axe_source`` fixture
installs the pinned major version into var/axe with npm once, and reads its
axe.min.js. Without npm or the registry the accessibility tests skip, saying
why, except in CI where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Page

from .static_server import PROJECT_ROOT

AXE_DIR = PROJECT_ROOT / "var" / "axe"
AXE_FILE = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
AXE_VERSION = "axe-core@4"
# The rules of WCAG 2.0/2.1 A and AA plus axe's best practices, as axe runs them by default.
RUN_OPTIONS = {"resultTypes": ["violations"]}


def axe_script() -> str:
    """Return axe.min.js, installing it with npm first when it is missing."""
    if not AXE_FILE.exists():
        npm = shutil.which("npm")
        problem = "npm is not installed" if npm is None else ""
        if npm:
            AXE_DIR.mkdir(parents=True, exist_ok=True)
            done = subprocess.run(
                [npm, "install", "--prefix", str(AXE_DIR), AXE_VERSION, "--no-audit", "--no-fund"],
                capture_output=True,
                text=True,
                timeout=180,
            )
            if done.returncode != 0 or not AXE_FILE.exists():
                problem = f"npm install {AXE_VERSION} failed: {done.stderr[-500:]}"
        if problem:
            if os.environ.get("CI") == "true":
                pytest.fail(problem)
            pytest.skip(problem)
    return Path(AXE_FILE).read_text()


def violations(page: Page, source: str) -> list[dict]:
    """Run axe on the page as it is now; return its violations, each with its nodes' targets."""
    if not page.evaluate("() => Boolean(window.axe)"):
        page.add_script_tag(content=source)
    found = page.evaluate(
        "async (options) => (await window.axe.run(document, options)).violations", RUN_OPTIONS
    )
    return [
        {
            "id": item["id"],
            "impact": item.get("impact"),
            "help": item.get("help"),
            "nodes": [
                {"target": node.get("target"), "summary": node.get("failureSummary", "")[:300]}
                for node in item.get("nodes", [])
            ],
        }
        for item in found
    ]


def assert_no_axe_violations(page: Page, source: str, where: str) -> None:
    found = violations(page, source)
    assert not found, f"axe found violations on {where}:\n{json.dumps(found, indent=1)}"
