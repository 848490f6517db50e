"""What a new student or instructor meets first: the command line, the LMS file names, the
messages of a function that raises. Pure unit tests (no kernels): `make test-fast` runs them."""

from __future__ import annotations

import ast
import io
import linecache
import re
import subprocess
from pathlib import Path

import nbformat
import numpy as np
import pytest

from attn_course.checks import CallError, check_array, run
from attn_course.grading import batch, cli, collect, outputs
from attn_course.grading.task import Result

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


# --- item 4: --jobs 0 and --timeout 0 are errors, not "the default" --------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["grade", "03_query_key_value", "subs", "--jobs", "0"],
        ["grade", "03_query_key_value", "subs", "-j", "-1"],
        ["grade", "03_query_key_value", "subs", "--timeout", "0"],
        ["grade", "03_query_key_value", "subs", "--jobs", "two"],
        ["check", "x.ipynb", "--timeout", "0"],
    ],
)
def test_zero_jobs_or_timeout_is_rejected_with_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "must be at least 1" in err or "not a whole number" in err


def test_zero_through_the_python_api_is_not_the_default(tmp_path):
    """GradeOptions(jobs=0) must not become os.cpu_count() either (the `or` bug)."""
    course = tmp_path / "course"
    (course / "solutions" / "a").mkdir(parents=True)
    (course / "solutions" / "a" / "a.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    (course / "nbgrader_config.py").write_text(
        'c = get_config()\nc.CourseDirectory.source_directory = "solutions"\n'
    )
    for field, message in (("jobs", "--jobs must be at least 1"), ("timeout", "--timeout must")):
        opts = batch.GradeOptions("a", tmp_path, course=course, **{field: 0})
        with pytest.raises(batch.SetupError, match=message):
            batch.grade(opts)


# --- item 10: help, errors on stderr, the summary --------------------------------------------


def test_help_has_no_rst_markup():
    out = subprocess.run(
        [str(Path(cli.sys.executable).parent / "attn-course"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "``" not in out and ":mod:" not in out
    assert "grade" in out and "check" in out


def test_check_errors_go_to_stderr(tmp_path, capsys):
    from attn_course.grading.selfcheck import check_notebook

    out, err = io.StringIO(), io.StringIO()
    assert check_notebook(tmp_path / "missing.ipynb", out=out, err=err) == 2
    assert out.getvalue() == "" and "no such file" in err.getvalue()
    (tmp_path / "broken.ipynb").write_text("{ not json")
    out, err = io.StringIO(), io.StringIO()
    assert check_notebook(tmp_path / "broken.ipynb", out=out, err=err) == 2
    assert out.getvalue() == "" and "not a notebook" in err.getvalue()


def test_a_check_without_a_time_limit_is_refused(tmp_path):
    from attn_course.grading.selfcheck import check_notebook

    with pytest.raises(ValueError, match="at least 1 second, not 0"):
        check_notebook(tmp_path / "any.ipynb", timeout=0)


def test_the_command_refuses_inside_a_check_or_grading(tmp_path, monkeypatch):
    from attn_course.grading.selfcheck import check, check_notebook

    for var, value in (("ATTN_COURSE_CHECK", "1"), ("NBGRADER_EXECUTION", "autograde")):
        with monkeypatch.context() as m:
            m.setenv(var, value)
            out, err = io.StringIO(), io.StringIO()
            assert check_notebook(tmp_path / "any.ipynb", out=out, err=err) == 2
            assert out.getvalue() == "" and err.getvalue().startswith("check() does nothing here")
            assert check(tmp_path / "any.ipynb") is None


def test_the_summary_counts_students_not_statuses():
    two_missing = Result(
        "ann", "a", status=["notebook missing: x.ipynb", "notebook missing: y.ipynb"]
    )
    results = [two_missing, Result("bob", "a"), Result("cy", "a")]
    for r, score in zip(results, (0.0, 3.0, 3.0), strict=True):
        r.score, r.max_score = score, 3.0

    class Box:
        kind, uid, notes = "rlimits", None, []

    out = io.StringIO()
    where = {"grades": Path("/o/grades.csv"), "gradebook": "sqlite:///g.db"}
    outputs.print_summary(results, 1.0, 2, "local", Box(), where, set(), out)
    text = out.getvalue()
    assert re.search(r"^\s+1\s+notebook missing$", text, re.M), text
    assert re.search(r"^\s+2\s+graded$", text, re.M), text
    assert "3 students" in text
    # in a small class the students under a heading are named (not the plainly graded)
    assert re.search(r"^\s+1\s+notebook missing\n\s+ann$", text, re.M), text
    assert "bob" not in text
    assert "kernels NOT boxed" in text  # this box was resource limits only


def test_one_submission_is_graded_by_one_worker():
    class Box:
        kind, uid, notes = "bwrap", 61000, []

    out = io.StringIO()
    outputs.print_summary([Result("ann", "a")], 1.0, 2, "local", Box(), {}, set(), out)
    assert "Graded 1 submission in 1.0 s with 1 worker (" in out.getvalue()
    assert "kernels boxed by bwrap, unprivileged uid" in out.getvalue()


def test_one_line_for_an_unreachable_database():
    import sqlalchemy

    try:
        sqlalchemy.create_engine("postgresql+psycopg2://nobody@127.0.0.1:9/x").connect()
    except sqlalchemy.exc.OperationalError as err:
        wrapped = err
    assert "sqlalche.me" in str(wrapped) and len(str(wrapped).splitlines()) > 1  # the problem
    line = outputs.one_line(wrapped)
    assert "\n" not in line and "sqlalche.me" not in line and "127.0.0.1" in line


def test_downloads_and_grades_are_git_ignored(tmp_path):
    proc = subprocess.run(
        ["git", "check-ignore", "downloaded/03_query_key_value/archive/x.zip", "grades.csv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0
    assert proc.stdout.split() == ["downloaded/03_query_key_value/archive/x.zip", "grades.csv"]


# --- items 2 and 3: the LMS file-name pattern ---------------------------------------------

ARCHIVE = "/course/downloaded/03_query_key_value/archive/"
LMS_NAMES = {
    # plain, as in the README
    "alice_03_query_key_value.ipynb": ("alice", "03_query_key_value.ipynb"),
    # Canvas: <lastfirst>_<user id>_<submission id>_<file>, late ones with _late_
    "smithjohn_12345_6789012_03_query_key_value.ipynb": ("smithjohn", "03_query_key_value.ipynb"),
    "smithjohn_late_12345_6789012_03_query_key_value.ipynb": (
        "smithjohn",
        "03_query_key_value.ipynb",
    ),
    # Moodle: <full name>_<id>_assignsubmission_file_<file>, flat or one folder per student
    "Ana Silva_48213_assignsubmission_file_03_query_key_value.ipynb": (
        "Ana Silva",
        "03_query_key_value.ipynb",
    ),
    "Ana Silva_48213_assignsubmission_file_/03_query_key_value.ipynb": (
        "Ana Silva",
        "03_query_key_value.ipynb",
    ),
    # Blackboard: <assignment title>_<user>_attempt_<date>_<file>
    "Assignment 3_jdoe_attempt_2026-03-01-12-30-45_03_query_key_value.ipynb": (
        "jdoe",
        "03_query_key_value.ipynb",
    ),
    "03_query_key_value_jdoe_attempt_2026-03-01-12-30-45_03_query_key_value.ipynb": (
        "jdoe",
        "03_query_key_value.ipynb",
    ),
    "bob_01_encoder_decoder.ipynb": ("bob", "01_encoder_decoder.ipynb"),
    # Canvas re-upload: the suffix stays (the grader reports "notebook renamed", as the README says)
    "smithjohn_12345_6789013_03_query_key_value-1.ipynb": (
        "smithjohn",
        "03_query_key_value-1.ipynb",
    ),
}


def _collect(name: str, regexp: str = collect.DEFAULT_LMS_REGEXP):
    """What nbgrader's FileNameCollectorPlugin reads from a path (its own code, not ours)."""
    from nbgrader.plugins.zipcollect import FileNameCollectorPlugin

    found = FileNameCollectorPlugin(named_regexp=regexp).collect(ARCHIVE + name)
    return (found["student_id"], found["file_id"]) if found else None


@pytest.mark.parametrize("name", sorted(LMS_NAMES))
def test_lms_names_keep_the_notebooks_number(name):
    assert _collect(name) == LMS_NAMES[name]


def test_the_readmes_own_examples_map_to_the_notebook():
    names = set(re.findall(r"`([^`]+_\d\d_[a-z_]+\.ipynb)`", README))
    assert len(names) >= 5  # plain, Canvas (twice), Moodle, Blackboard
    assert "alice_03_query_key_value.ipynb" in names
    for name in names:
        student, file_id = _collect(name.replace("...", "999_888"))
        assert file_id == "03_query_key_value.ipynb", name


def test_nbgrader_config_uses_the_same_pattern():
    """One pattern: `nbgrader zip_collect` (the course's config) and `attn-course grade`."""
    from traitlets.config.loader import PyFileConfigLoader

    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    assert cfg.FileNameCollectorPlugin.named_regexp == collect.DEFAULT_LMS_REGEXP


# --- item 12: a student's function that raises ------------------------------------------------


def dot_score(query, keys):  # the most common mistake: no transpose
    return query @ keys


def _cell(source: str) -> dict:
    """Run ``source`` as a notebook cell runs: compiled from a file name linecache knows."""
    name = f"<cell-{abs(hash(source))}>"
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    namespace = {"np": np, "run": run, "check_array": check_array, "dot_score": dot_score}
    exec(compile(source, name, "exec"), namespace)
    return namespace


def _public_test(assignment: str, grade_id: str) -> str:
    nb = nbformat.read(ROOT / "exercises" / assignment / f"{assignment}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return cell.source


def test_the_real_test_cell_names_the_call_the_shapes_and_the_hint():
    source = _public_test("03_query_key_value", "test_dot_score")
    call = next(
        n
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "check_array"
    )
    hint = next(k.value.value for k in call.keywords if k.arg == "hint")  # from the notebook
    with pytest.raises(CallError) as failed:
        _cell(source)
    message = str(failed.value)
    assert message.startswith("dot_score(q, K) could not be computed: dot_score raised ValueError")
    assert "query of shape (1, 2) and keys of shape (3, 2)" in message
    assert "the last axis of a must have the size of the second-to-last axis of b" in message
    assert message.endswith(hint)
    assert isinstance(failed.value.__cause__, ValueError)  # the student's traceback is kept


def test_hints_in_variables_and_fstrings_are_shown():
    ns = _cell(
        "stability = 'Subtract the maximum.'\n"
        "q, K = np.ones((2, 3)), np.ones((4, 3))\n"
        "try:\n"
        "    check_array(f'dot_score for {q.shape}', run(dot_score, q, K), np.ones((2, 4)),\n"
        "                hint=stability + ' Then exponentiate.')\n"
        "except AssertionError as e:\n"
        "    message = str(e)\n"
    )
    assert ns["message"].startswith("dot_score for (2, 3) could not be computed")
    assert ns["message"].endswith("Subtract the maximum. Then exponentiate.")


def test_a_hint_that_would_call_something_is_not_evaluated():
    ns = _cell(
        "calls = []\n"
        "def hint():\n"
        "    calls.append(1)\n"
        "    return 'from a call'\n"
        "try:\n"
        "    check_array('d', run(dot_score, np.ones((1, 2)), np.ones((3, 2))), 0, hint=hint())\n"
        "except AssertionError as e:\n"
        "    message = str(e)\n"
    )
    assert ns["calls"] == [] and "from a call" not in ns["message"]
    assert "query of shape (1, 2) and keys of shape (3, 2)" in ns["message"]


def test_outside_a_check_the_call_and_shapes_are_still_named():
    with pytest.raises(CallError, match=r"dot_score raised ValueError.*query of shape \(1, 2\)"):
        result = run(dot_score, np.ones((1, 2)), np.ones((3, 2)))  # noqa: F841


def test_an_unwritten_function_says_so():
    def softmax(x, axis=-1):
        raise NotImplementedError()

    with pytest.raises(
        CallError, match=r"softmax is not written yet.*x of shape \(3,\) and axis = -1"
    ):
        run(softmax, np.zeros(3), axis=-1)


def test_a_wrong_signature_still_names_the_inputs():
    def attention(query, keys):
        return query

    with pytest.raises(
        CallError, match=r"TypeError.*argument 1 of shape \(1, 2\).*score = dot_score"
    ):
        run(attention, np.ones((1, 2)), np.ones((3, 2)), np.ones((3, 2)), score=dot_score)


def test_running_out_of_memory_is_not_turned_into_a_message():
    """The grader re-runs a notebook without the cell whose kernel ran out of memory; it
    recognises the MemoryError by name, so run() must not wrap it."""

    def hog(a):
        raise MemoryError

    with pytest.raises(MemoryError):
        run(hog, np.ones(2))


def test_an_interrupt_is_not_turned_into_a_message():
    def loops(x):
        raise KeyboardInterrupt  # what the grader's timeout raises in the kernel

    with pytest.raises(KeyboardInterrupt):
        run(loops, np.zeros(2))


def test_the_feedback_settings_leave_the_formgrader_alone():
    """nbgrader_config.py is also read by the formgrader, after its own HTMLExporter template
    ("formgrade"): the feedback template must be scoped to GenerateFeedback."""
    from traitlets.config.loader import PyFileConfigLoader

    from attn_course.grading.feedback import FeedbackIndex, HideHiddenTests

    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    assert "template_name" not in cfg.get("HTMLExporter", {})
    assert cfg.GenerateFeedback.HTMLExporter.template_name == "attn_feedback"
    pipeline = cfg.GenerateFeedback.preprocessors
    assert HideHiddenTests in pipeline and FeedbackIndex in pipeline


def test_the_progress_bar_names_who_was_graded_and_who_runs_long():
    import time

    from attn_course.grading.outputs import Progress

    out = io.StringIO()
    running = {"slow": 95.0, "quick": 2.0}
    bar = Progress(3, True, lambda: running, file=out, long=30, every=0.01, mininterval=0)
    time.sleep(0.3)
    assert "running long: slow (95 s)" in out.getvalue() and "quick" not in out.getvalue()
    for student in ("ann", "bob", "cy"):
        bar.graded(student, 3, 3)
    bar.close()
    text = out.getvalue()
    assert re.search(r" 1/3 \[[^\]]*ann: 3/3\]", text), text  # the count and the student agree
    assert text.count("100%") == 1, text  # the last line is drawn once
    assert "cy: 3/3" in text.split("100%")[1]
