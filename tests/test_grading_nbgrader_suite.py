"""nbgrader's own test suite (shipped in its wheel), run with the course's plugin switched on
the way any course would: a JUPYTER_CONFIG_DIR whose nbgrader_config.py calls configure(c).

A selection of the autograde and feedback tests that exercise what the plugin changes
(execution, sanitising, scoring, files next to the notebook, timeouts, cheating through
tracebacks). It passes except for the cases where a different answer is the documented intent
(README, grading section); the test fails if any other case fails, or if one of those passes
(then the plugin was not switched on, or the difference is gone and the README is wrong).
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbgrader
import pytest
from grading_fixtures import _env

pytestmark = [pytest.mark.grading]

APPS = Path(nbgrader.__file__).parent / "tests" / "apps"

SELECTED = {
    "test_nbgrader_autograde.py": [
        "test_grade",
        "test_showtraceback_exploit",
        "test_grade_timestamp",
        "test_grade_overwrite_files",
        "test_hidden_tests_single_notebook",
        "test_infinite_loop",
        "test_grade_missing_notebook",
        "test_side_effects",
        "test_handle_failure",
        "test_missing_source_kernelspec",
    ],
    "test_nbgrader_generate_feedback.py": ["test_single_file", "test_force"],
}

# nbgrader's test classes, for the node ids
CLASSES = {
    "test_nbgrader_autograde.py": "TestNbGraderAutograde",
    "test_nbgrader_generate_feedback.py": "TestNbGraderFeedback",
}

# The cases where the plugin answers differently on purpose (listed in the README).
DOCUMENTED = {
    "test_side_effects": "files a student's code writes stay in its private box; they do not "
    "appear in autograded/",
    "test_handle_failure": "a notebook whose nbgrader metadata does not match the gradebook is "
    "repaired and graded, not rejected with the whole submission",
    "test_missing_source_kernelspec": "the grading kernel is always the course environment's "
    "Python in its box, whatever kernelspec the notebook names",
}

CONFIG = """from attn_course.grading import configure

c = get_config()  # noqa: F821
configure(c)
"""


def test_nbgrader_suite_with_the_plugin(tmp_path):
    config_dir = tmp_path / "jupyter-config"
    config_dir.mkdir()
    (config_dir / "nbgrader_config.py").write_text(CONFIG)
    env = _env()
    env["JUPYTER_CONFIG_DIR"] = str(config_dir)
    report = tmp_path / "junit.xml"
    # exact node ids: a -k expression matches substrings, so "test_grade" would also run
    # every test_grade_* (and "test_force" every test_force_*), twice the work
    node_ids = [
        f"{APPS / file}::{CLASSES[file]}::{name}"
        for file, tests in SELECTED.items()
        for name in tests
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *node_ids, "-p", "no:cacheprovider",
         "-o", "addopts=", "-q", f"--junitxml={report}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert report.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    outcome = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = case.get("name")
        module = [m for m in case.get("classname", "").split(".") if m.startswith("test_")]
        file = (module or ["?"])[-1] + ".py"
        kinds = {child.tag for child in case}
        outcome[(file, name)] = (
            "failed" if kinds & {"failure", "error"} else "skipped" if "skipped" in kinds else "ok"
        )
    expected = {(f, n) for f, tests in SELECTED.items() for n in tests}
    assert set(outcome) == expected, sorted(expected - set(outcome))
    failed = {n for (_, n), o in outcome.items() if o == "failed"}
    assert failed == set(DOCUMENTED), proc.stdout[-6000:]
