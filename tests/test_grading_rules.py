"""The grader's rules, one at a time, without kernels (the fast tier).

Whole grading runs (tests/test_grading*.py) show the rules work together; these pin each rule
down where it is written, so a broken one fails in seconds: the settings and the limits
derived from them, what a test cell is and how its error reads, the repairs of a tampered
notebook, fair scoring of stderr, zeroing, and the guard's restore. References are
hand-computed values and nbgrader's own behaviour (its checksums, its Gradebook)."""

import copy
import html
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from grading_fixtures import TINY, tiny_notebook
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.api import Gradebook
from traitlets.config import Config

from attn_course.grading import SetupError, configure
from attn_course.grading.batch import GradeOptions, _settings
from attn_course.grading.cells import error_line, first_error, is_test_cell, part_name
from attn_course.grading.execute import GradingExecute
from attn_course.grading.gradebook import (
    ensure_schema,
    open_submission,
    read_submission,
    record_assignment,
    zero_notebook,
)
from attn_course.grading.preprocessors import (
    FromTranslation,
    FromWorkedTranslation,
    RepairSubmission,
    SaveAutoGradesFair,
)
from attn_course.grading.sandbox import Limits

GiB = 2**30
# nbgrader's Gradebook triggers SQLAlchemy's autoflush warnings in its own session use
pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")

# --- settings: one owner, limits derived in one place ------------------------------------


def _limits(**sections) -> Limits:
    return GradingExecute(config=Config(sections)).resolved_limits()


def test_the_defaults_are_the_traits():
    limits = _limits()
    assert (limits.timeout, limits.memory, limits.cpu) == (60, 2 * GiB, 1800)


@pytest.mark.parametrize(
    ("sections", "timeout"),
    [
        ({"ExecutePreprocessor": {"timeout": 45}}, 45),
        ({"Execute": {"timeout": 40}, "ExecutePreprocessor": {"timeout": 45}}, 40),
        ({"GradingExecute": {"timeout": 7}, "Execute": {"timeout": 40}}, 7),
    ],
)
def test_the_most_specific_config_section_wins(sections, timeout):
    assert _limits(**sections).timeout == timeout


@pytest.mark.parametrize(("timeout", "cpu"), [(10, 1800), (60, 1800), (100, 3000), (200, 6000)])
def test_cpu_backstop_is_max_1800_or_30_times_the_timeout(timeout, cpu):
    assert _limits(GradingExecute={"timeout": timeout}).cpu == cpu


def test_no_timeout_is_not_honoured_a_cell_is_always_bounded():
    assert _limits(ExecutePreprocessor={"timeout": None}).timeout == 60


def test_explicit_cpu_seconds_and_memory():
    limits = _limits(GradingExecute={"cpu_seconds": 99, "memory": "512M"})
    assert (limits.cpu, limits.memory) == (99, 512 * 2**20)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"timeout": 0}, "at least 1 second"),
        ({"memory": "lots"}, "cannot read the memory limit"),
        ({"memory": "10M"}, "below 64M"),
        ({"cpu_seconds": -1}, "0 or more"),
    ],
)
def test_a_bad_setting_is_an_error_not_the_default(section, message):
    with pytest.raises(ValueError, match=message):
        _limits(GradingExecute=section)


def test_command_options_override_the_course_config(tmp_path):
    cfg = Config({"ExecutePreprocessor": {"timeout": 60}, "GradingExecute": {"memory": "1G"}})
    opts = GradeOptions("a", tmp_path, timeout=5, memory="3G")
    limits = _settings(cfg, opts).resolved_limits()
    assert (limits.timeout, limits.memory, limits.cpu) == (5, 3 * GiB, 1800)
    # not given: the config's values stay
    cfg = Config({"GradingExecute": {"memory": "1G"}})
    limits = _settings(cfg, GradeOptions("a", tmp_path)).resolved_limits()
    assert (limits.timeout, limits.memory) == (60, GiB)


@pytest.mark.parametrize(
    ("field", "value", "message"), [("timeout", 0, "--timeout must"), ("memory", "x", "memory")]
)
def test_bad_command_options_are_setup_errors(tmp_path, field, value, message):
    with pytest.raises(SetupError, match=message):
        _settings(Config(), GradeOptions("a", tmp_path, **{field: value}))


def test_configure_keeps_nbgraders_pipeline_with_ours_slotted_in():
    c = Config()
    configure(c)
    assert [p.__name__ for p in c.Autograde.sanitize_preprocessors] == [
        "FromWorkedTranslation",
        "ClearOutput",
        "FromTranslation",
        "RepairSubmission",
        "DeduplicateIds",
        "OverwriteKernelspec",
        "OverwriteCells",
        "CheckCellMetadata",
    ]
    assert [p.__name__ for p in c.Autograde.autograde_preprocessors] == [
        "GradingExecute",
        "IgnorePattern",
        "ClearMetadataPreprocessor",
        "LimitOutput",
        "SaveAutoGradesFair",
        "AssignLatePenalties",
        "CheckCellMetadata",
    ]
    # generate_assignment writes each release's translations beside it
    assert type(c.GenerateAssignment.post_convert_hook).__name__ == "TranslateRelease"


def test_the_notebook_worked_in_is_the_one_graded(tmp_path):
    """FromWorkedTranslation, on the released 03 notebooks (their answer cells carry nbgrader's
    checksums): the top notebook unless only a translation in its language's folder has
    answers; never stopped by a broken or mislabelled extra file."""
    A = "03_query_key_value"
    release = Path(__file__).resolve().parents[1] / "exercises" / A
    en, zh = (
        nbformat.read(release / f"{A}.ipynb", 4),
        nbformat.read(release / "zh_CN" / f"{A}.ipynb", 4),
    )

    def answered(nb):
        nb = nbformat.from_dict(json.loads(json.dumps(nb)))
        next(c for c in nb.cells if utils.is_solution(c)).source = "def softmax(x): ..."
        return nb

    def graded(top, others):
        folder = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        nbformat.write(top, folder / f"{A}.ipynb")
        for sub, content in others.items():
            (folder / sub).mkdir()
            path = folder / sub / f"{A}.ipynb"
            path.write_text(content) if isinstance(content, str) else nbformat.write(content, path)
        resources = {"metadata": {"path": str(folder)}, "nbgrader": {"notebook": A}}
        nb, _ = FromWorkedTranslation().preprocess(
            nbformat.read(folder / f"{A}.ipynb", 4), resources
        )
        said = nb.metadata.get("attn_course", {})
        return said.get("language", "en"), said.get("graded_from")

    assert graded(en, {"zh_CN": answered(zh)}) == ("zh_CN", f"zh_CN/{A}.ipynb")
    assert graded(en, {"zh_CN": zh}) == ("en", None)  # nothing answered anywhere: the top
    assert graded(answered(en), {"zh_CN": answered(zh)}) == ("en", None)  # answers at the top
    assert graded(en, {"fr": answered(zh)}) == ("en", None)  # a zh_CN notebook in another folder
    assert graded(en, {"zh_CN": "{not json"}) == ("en", None)
    broken = nbformat.from_dict(json.loads(json.dumps(en)))
    next(c for c in broken.cells if utils.is_solution(c)).metadata.nbgrader = "tampered"
    assert graded(broken, {"zh_CN": answered(zh)}) == ("en", None)  # the top, as nbgrader would
    odd = answered(zh)
    odd.metadata.attn_course = "zh_CN"
    assert graded(en, {"zh_CN": odd}) == ("en", None)
    assert graded(en, {}) == ("en", None)


# --- cells ----------------------------------------------------------------------------------


def test_what_a_test_cell_is():
    nb = tiny_notebook()
    kinds = {part_name(c, i): is_test_cell(c) for i, c in enumerate(nb.cells)}
    assert kinds == {
        "intro": False,
        "setup": False,
        "add": False,
        "test_add": True,
        "double": False,
        "test_double": True,
    }
    # nbgrader's own predicates agree on well-formed metadata
    for cell in nb.cells:
        expected = cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)
        assert is_test_cell(cell) == expected
    tampered = nbformat.v4.new_code_cell("x", metadata={"nbgrader": "not a dict"})
    assert not is_test_cell(tampered) and part_name(tampered, 4) == "cell 5"


def test_the_grade_ids_that_tell_one_notebook_from_another():
    from attn_course.grading.cells import grade_ids

    nb = tiny_notebook()
    expected = {"intro", "setup", "add", "test_add", "double", "test_double"}
    assert grade_ids(nb.cells) == expected
    assert grade_ids(json.loads(nbformat.writes(nb))["cells"]) == expected  # plain JSON dicts
    stray = [{"cell_type": "code", "metadata": {"nbgrader": "x"}}, {"cell_type": "markdown"}]
    assert grade_ids(stray) == set()


def test_the_checksum_is_nbgraders():
    """The self-check's checksum (no nbgrader in a student's install) against nbgrader's own,
    on every checksummed cell of the released notebooks, and on edited ones."""
    from attn_course.grading.cells import checksum

    root = Path(__file__).resolve().parents[1] / "exercises"
    cells = [
        c
        for path in sorted(root.glob("*/*.ipynb"))
        for c in nbformat.read(path, as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("checksum")
    ]
    assert len(cells) > 20
    for cell in cells:
        assert checksum(cell) == utils.compute_checksum(cell) == cell.metadata.nbgrader.checksum
        edited = nbformat.from_dict({**cell, "source": cell.source + " "})
        assert checksum(edited) == utils.compute_checksum(edited) != cell.metadata.nbgrader.checksum
        regraded = nbformat.from_dict(cell)
        regraded.metadata.nbgrader["points"] = 99
        regraded.metadata.nbgrader["locked"] = True
        assert checksum(regraded) == utils.compute_checksum(regraded)


def test_an_error_in_one_line():
    out = {"output_type": "error", "ename": "AssertionError", "evalue": "\x1b[0;31mbad\n  x\x1b[0m"}
    assert error_line(out) == "AssertionError: bad x"
    assert error_line({"ename": "KeyboardInterrupt", "evalue": ""}) == "KeyboardInterrupt"
    cell = nbformat.v4.new_code_cell("1", outputs=[nbformat.v4.new_output("stream", text="hi")])
    assert first_error(cell) is None
    cell.outputs.append(nbformat.from_dict(out))
    assert first_error(cell) == "AssertionError: bad x"


def test_maths_becomes_mathml_and_code_stays_code():
    from attn_course.grading.feedback import maths_to_mathml

    out = maths_to_mathml(r"Weights $\alpha_{ij}$ sum to 1: $$\sum_j \alpha_{ij} = 1$$")
    out = html.unescape(out)  # latex2mathml writes characters as entities
    assert out.count("<math") == 2 and "$" not in out
    assert '<math xmlns="http://www.w3.org/1998/Math/MathML" display="block">' in out
    assert "<msub><mi>α</mi><mrow><mi>i</mi><mi>j</mi></mrow></msub>" in out
    assert "<mo>∑</mo>" in out and "<mn>1</mn>" in out
    # code spans, fences and escaped dollars are left alone, and so is a lone dollar
    kept = "Use `x[$i$]` or \\$5, and $ alone.\n```\n$not maths$\n```\n"
    assert maths_to_mathml(kept) == kept
    less = maths_to_mathml("$a < b$")  # a TeX "<" is escaped, never a tag
    assert "<mo>&#x0003C;</mo>" in less and html.unescape(less).count("<mo><</mo>") == 1


# --- the gradebook and the preprocessors on a real nbgrader gradebook ----------------------


@pytest.fixture
def recorded(tmp_path):
    """The tiny assignment recorded by nbgrader's GenerateAssignment in a SQLite gradebook,
    with a submission of student ann: (db_url, the released notebook)."""
    course = tmp_path / "course"
    (course / "solutions" / TINY).mkdir(parents=True)
    nbformat.write(tiny_notebook(), course / "solutions" / TINY / f"{TINY}.ipynb")
    db_url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    ensure_schema(db_url)
    cfg = Config({"CourseDirectory": {"source_directory": "solutions"}})
    record_assignment(course, cfg, TINY, db_url, tmp_path / "release")
    assert open_submission(db_url, TINY, "ann", None)
    released = nbformat.read(tmp_path / "release" / TINY / f"{TINY}.ipynb", as_version=4)
    return db_url, released


def _repair(db_url, nb):
    pp = RepairSubmission()
    resources = {"nbgrader": {"notebook": TINY, "assignment": TINY, "db_url": db_url}}
    nb, _ = pp.preprocess(nb, resources)
    return nb, nb.metadata["attn_course"]["repairs"]


@pytest.mark.parametrize("said", [{"language": "xx", "graded_from": "x/y.ipynb"}, "zh_CN"])
def test_metadata_naming_no_known_language_is_graded_as_english(recorded, said):
    """A student's edit of ``attn_course`` (an unknown language, or no mapping at all) does not
    stop FromTranslation: the notebook is graded as English, its other notes kept."""
    db_url, released = recorded
    nb = copy.deepcopy(released)
    nb.metadata["attn_course"] = said
    resources = {"nbgrader": {"notebook": TINY, "assignment": TINY, "db_url": db_url}}
    nb, _ = FromTranslation().preprocess(nb, resources)
    kept = {"graded_from": "x/y.ipynb"} if isinstance(said, dict) else {}
    assert nb.metadata["attn_course"] == kept


def _grade_ids(nb):
    return [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]


def test_an_untouched_notebook_needs_no_repair(recorded):
    db_url, released = recorded
    _, repairs = _repair(db_url, released)
    assert repairs == []


def test_repairs_each_kind_of_tampering(recorded):
    db_url, nb = recorded
    index = {c.metadata["nbgrader"]["grade_id"]: i for i, c in enumerate(nb.cells)}
    nb.cells[index["test_add"]].metadata["nbgrader"]["points"] = 100  # metadata edited
    nb.cells[index["test_add"]].source = "print('all good')"  # a test replaced
    extra = nbformat.from_dict(json.loads(json.dumps(nb.cells[index["double"]])))
    extra["id"] = nb.cells[0]["id"]  # a copied cell, with a duplicated id
    nb.cells.insert(index["double"], extra)
    stray = nbformat.v4.new_code_cell("1", metadata={"nbgrader": {"grade": True, "grade_id": "x"}})
    nb.cells.append(stray)
    del nb.cells[
        [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells].index("test_double")
    ]
    nb, repairs = _repair(db_url, nb)
    assert set(repairs) == {
        "duplicated cell ids renumbered",
        "test_add metadata edited (reset)",
        "test_add edited (restored)",
        "double duplicated (the extra copy is an ordinary cell)",
        "unknown graded cell 'x' made an ordinary cell",
        "test_double deleted (restored)",
    }
    ids = [c["id"] for c in nb.cells]
    assert len(ids) == len(set(ids))
    graded = [g for g in _grade_ids(nb) if g]
    assert graded == ["intro", "setup", "add", "test_add", "double", "test_double"]
    test_add = nb.cells[_grade_ids(nb).index("test_add")]
    assert test_add.metadata["nbgrader"]["points"] == 2.0


def _scored(db_url, nb, outputs):
    """SaveAutoGradesFair on ``nb`` with ``outputs`` in test_double: its auto score."""
    cell = nb.cells[_grade_ids(nb).index("test_double")]
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    pp = SaveAutoGradesFair()
    resources = {
        "nbgrader": {"notebook": TINY, "assignment": TINY, "student": "ann", "db_url": db_url}
    }
    pp.preprocess(nb, resources)
    return read_submission(db_url, TINY, "ann")["notebooks"][TINY]["grades"]["test_double"]


def test_stderr_text_does_not_zero_a_test_cell_but_an_error_does(recorded):
    db_url, nb = recorded
    warning = {"output_type": "stream", "name": "stderr", "text": "UserWarning: careful\n"}
    assert _scored(db_url, nb, [warning])["auto_score"] == 1.0
    error = {"output_type": "error", "ename": "AssertionError", "evalue": "no", "traceback": []}
    assert _scored(db_url, nb, [warning, error])["auto_score"] == 0.0


def test_the_guards_verdict_withholds_and_flags(recorded):
    db_url, nb = recorded
    nb.metadata["attn_course"] = {"execution": {"guard_ok": False, "undone": []}}
    grades = _scored(db_url, nb, [])
    assert grades["auto_score"] == 0 and grades["needs_manual_grade"] is False
    stored = read_submission(db_url, TINY, "ann")
    assert stored["flagged"] and stored["score"] == 0
    nb.metadata["attn_course"] = {"execution": {"guard_ok": True, "undone": ["math.sqrt"]}}
    _scored(db_url, nb, [])
    stored = read_submission(db_url, TINY, "ann")
    assert stored["flagged"] and stored["score"] == 3.0  # flagged for review, score kept


def test_zero_notebook(recorded):
    db_url, nb = recorded
    nb.metadata["attn_course"] = {"execution": {"guard_ok": True, "undone": []}}
    _scored(db_url, nb, [])
    assert read_submission(db_url, TINY, "ann")["score"] == 3.0
    zero_notebook(db_url, TINY, TINY, "ann")
    with Gradebook(db_url) as gb:
        sub = gb.find_submission_notebook(TINY, TINY, "ann")
        assert [g.auto_score for g in sub.grades] == [0, 0]
        assert not any(g.needs_manual_grade for g in sub.grades)
    zero_notebook(db_url, TINY, TINY, "nobody")  # a student without the notebook: nothing


def test_an_unreadable_timestamp_is_dropped_not_fatal(recorded):
    db_url, _ = recorded
    assert open_submission(db_url, TINY, "bob", "2026-01-01 10:00:00")
    assert not open_submission(db_url, TINY, "cy", "not a time")
    assert read_submission(db_url, TINY, "cy")["max_score"] == 3.0


# --- the guard, in a process of its own (it installs an import hook) ------------------------

GUARD_SCRIPT = """
import json, types
from attn_course.grading import guard

class Events:
    def register(self, name, fn):
        self.fn = fn

shell = types.SimpleNamespace(events=Events())
guard.install(shell)
import numpy as np
import attn_course.checks as checks
original_mean = np.mean
np.mean = lambda *a, **k: 0.0                                   # a rebound name
checks.check_array.__code__ = (lambda *a, **k: None).__code__  # a swapped body
shell.events.fn()                                              # before the next cell
restored = np.mean is original_mean
raises = False
try:
    checks.check_array("x", 1.0, 2.0)
except AssertionError:
    raises = True
print(json.dumps({"restored": restored, "raises": raises,
                  "report": json.loads(guard.report("t0k"))}))
"""


def test_the_guard_restores_what_a_cell_changed():
    proc = subprocess.run(
        [sys.executable, "-c", GUARD_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["restored"] and out["raises"]
    report = out["report"]
    assert report["token"] == "t0k" and report["cells"] == 1
    assert "numpy.mean" in report["undone"]
    assert "attn_course.checks.check_array.__code__" in report["undone"]


def test_the_fixture_notebook_is_where_the_tests_expect():
    assert Path(__file__).with_name("grading_fixtures.py").is_file()
    assert isinstance(tiny_notebook(), NotebookNode)
