"""A class that mixes English and Chinese notebooks, graded in one batch by both paths.

The same answers (the solution, an untouched notebook, wrong answers, a tampered test cell and
markdown cell) are handed in once in the English release and once in the Chinese one
(``exercises/03_query_key_value/zh_CN/``, under the same file name), by different students of
one class. ``attn-course grade`` and plain ``nbgrader autograde`` (with the course's plugin)
must give every pair the same scores per cell, flags and status, and agree with each other;
the Chinese students' feedback and test messages are in Chinese, the English ones' in English.
`attn-course check` speaks the notebook's language, and every assignment's Chinese notebook
with the solutions filled in passes its public tests.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import nbformat
import pytest
from grading_fixtures import (
    BIN,
    ROOT,
    _env,
    fill,
    grade_cmd,
    gradebook_grades,
    read_csv,
    solutions_of,
)
from notebook_catalogs import LOCALES, read  # scripts/, via conftest

pytestmark = pytest.mark.grading

A = "03_query_key_value"
ZH = "zh_CN"
WRONG = {
    "softmax": "def softmax(x, axis=-1):\n"
    "    e = np.exp(x)  # no maximum subtracted: overflows\n"
    "    return e / e.sum(axis=axis, keepdims=True)",
    "dot_score": "def dot_score(query, keys):\n    return query @ keys",
    # fails the test cell's own `assert ..., f"..."`, not a check of attn_course.checks
    "attention": "def attention(query, keys, values, score=None, mask=None):\n    return []",
}


def _release(course, language):
    folder = course / "exercises" / A
    return nbformat.read((folder / language if language != "en" else folder) / f"{A}.ipynb", 4)


def _tampered(nb):
    nb = fill(nb, {})
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid == "test_dot_score":
            cell.source = "print('dot_score: public tests passed')"
        elif gid == "intro":
            cell.source = "# edited"
    return nb


def _answers(course):
    return {
        "sol": lambda nb: fill(nb, solutions_of(course, A)),
        "blank": lambda nb: nb,
        "wrong": lambda nb: fill(nb, {**solutions_of(course, A), **WRONG}),
        "tamper": lambda nb: _tampered(fill(nb, solutions_of(course, A))),
    }


def _course(path):
    path.mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", path)
    for kind in ("solutions", "exercises"):
        shutil.copytree(ROOT / kind / A, path / kind / A)
    return path


def _pairs(rows):
    return sorted(s[len("en_") :] for s in rows if s.startswith("en_"))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """One class, 4 answers x 2 languages, graded by `attn-course grade` (course) and by plain
    `nbgrader autograde` + `generate_feedback` (plain), from the same submissions."""
    base = tmp_path_factory.mktemp("languages")
    course = _course(base / "course")
    subs = base / "submitted"
    for language in ("en", ZH):
        release = _release(course, language)
        for name, make in _answers(course).items():
            folder = subs / f"{language}_{name}" / A
            folder.mkdir(parents=True)
            nbformat.write(make(release), folder / f"{A}.ipynb")
    # through nbgrader's exchange the whole release folder comes back, the English notebook at
    # its top: "hub_zh" answered in the Chinese one only, "hub_both" in both
    answers, en, zh = _answers(course), _release(course, "en"), _release(course, ZH)
    for name, top, translated in (
        ("hub_zh", en, answers["sol"](zh)),
        ("hub_both", answers["wrong"](en), answers["sol"](zh)),
    ):
        folder = subs / name / A
        (folder / ZH).mkdir(parents=True)
        nbformat.write(top, folder / f"{A}.ipynb")
        nbformat.write(translated, folder / ZH / f"{A}.ipynb")
    ours = grade_cmd(course, A, subs, "--jobs", "2", "--timeout", "60")
    plain = _course(base / "plain")
    shutil.copytree(subs, plain / "submitted")
    db = f"sqlite:///{plain / 'gradebook.db'}"
    runs = []
    for cmd in (
        ["generate_assignment", A, "--force"],
        ["autograde", A, "--force", "--create"],
        ["generate_feedback", A, "--force"],
    ):
        runs.append(
            subprocess.run(
                [str(BIN / "nbgrader"), *cmd, f"--db={db}"],
                cwd=plain,
                capture_output=True,
                text=True,
                env=_env(),
                timeout=900,
            )
        )
    return course, plain, ours, runs, db


def _flags(db):
    from nbgrader.api import Gradebook

    with Gradebook(db) as gb:
        return {
            s.student.id: any(nb.flagged for nb in s.notebooks)
            for s in gb.find_assignment(A).submissions
        }


def test_both_paths_grade_the_mixed_class(mixed):
    course, plain, ours, runs, _ = mixed
    assert ours.returncode == 0, ours.stderr[-3000:]
    for run in runs:
        assert run.returncode == 0, (run.args, run.stdout[-2000:], run.stderr[-3000:])
    # generate_assignment (the course's plugin) wrote the Chinese release again, unchanged
    again = plain / "exercises" / A / ZH / f"{A}.ipynb"
    assert again.read_bytes() == (ROOT / "exercises" / A / ZH / f"{A}.ipynb").read_bytes()


def test_same_answers_same_grades_flags_and_status_in_both_languages(mixed):
    course, plain, _, _, db = mixed
    rows = read_csv(course / "graded" / A / "grades.csv")
    assert len(rows) == 10
    cells = [k for k in rows["en_sol"] if k.startswith("test_")]
    for name in _pairs(rows):
        en, zh = rows[f"en_{name}"], rows[f"{ZH}_{name}"]
        for key in ["score", "max_score", "status", "flagged", *cells]:
            if key in en:
                assert en[key] == zh[key], f"{name}: {key} {en[key]!r} (en) != {zh[key]!r} (zh)"
    assert float(rows["en_sol"]["score"]) == float(rows["en_sol"]["max_score"]) > 0
    assert float(rows["en_blank"]["score"]) == 0
    assert 0 < float(rows["en_wrong"]["score"]) < float(rows["en_sol"]["max_score"])
    assert "test_dot_score" in rows["en_tamper"]["status"], rows["en_tamper"]
    assert float(rows["en_tamper"]["test_softmax"]) == float(rows["en_sol"]["test_softmax"])
    # plain nbgrader with the plugin: the same per-cell grades and flags as attn-course grade
    ours_db = f"sqlite:///{course / 'gradebook.db'}"
    assert gradebook_grades(ours_db, A) == gradebook_grades(db, A)
    assert _flags(ours_db) == _flags(db)
    flags = _flags(db)
    assert all(flags[f"en_{n}"] == flags[f"{ZH}_{n}"] for n in _pairs(rows))


def test_the_notebook_worked_in_is_graded_when_the_exchange_hands_in_both(mixed):
    """A student who fetched through nbgrader's exchange and worked in zh_CN/ is graded on the
    Chinese notebook, by both paths; one who answered at the top too is graded there."""
    course, plain, _, _, db = mixed
    rows = read_csv(course / "graded" / A / "grades.csv")
    cells = [k for k in rows["en_sol"] if k.startswith("test_")]
    hub, zh = rows["hub_zh"], rows[f"{ZH}_sol"]
    for key in ["score", "max_score", "flagged", *cells]:
        assert hub[key] == zh[key], f"{key}: {hub[key]!r} != {zh[key]!r}"
    assert float(hub["score"]) == float(hub["max_score"]) > 0
    assert f"graded {ZH}/{A}.ipynb: the notebook at the top was as released" in hub["status"]
    both = rows["hub_both"]
    assert [both[k] for k in ["score", *cells]] == [rows["en_wrong"][k] for k in ["score", *cells]]
    assert "graded " not in both["status"]
    for autograded in (course / "autograded", plain / "autograded"):
        nb = nbformat.read(autograded / "hub_zh" / A / f"{A}.ipynb", 4)
        assert nb.metadata["attn_course"]["language"] == ZH
        assert nb.metadata["attn_course"]["graded_from"] == f"{ZH}/{A}.ipynb"
        nb = nbformat.read(autograded / "hub_both" / A / f"{A}.ipynb", 4)
        assert "graded_from" not in nb.metadata.get("attn_course", {})
    page = _text(plain / "feedback" / "hub_zh" / A / f"{A}.html")
    assert "作业 3 — 查询、键、值" in page and "得分" in page


def _text(path):
    return re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8"))


def _english_messages():
    """The checks' English sentences (placeholders cut out), to find one that leaked."""
    po = read(LOCALES / ZH / "LC_MESSAGES" / "checks.po")
    parts = set()
    for m in po:
        if m.id:
            parts.update(p.strip(" .;:()") for p in re.split(r"\{[^{}]*\}", m.id))
    return {p for p in parts if len(p) >= 12}


@pytest.mark.parametrize("path", ["ours", "plain"])
def test_feedback_is_in_the_language_of_the_notebook(mixed, path):
    course, plain, *_ = mixed
    folder = course / "graded" / A if path == "ours" else plain / "feedback"

    def page(student):
        if path == "ours":
            return _text(folder / student / f"{A}.html")
        return _text(folder / student / A / f"{A}.html")

    zh, en = page(f"{ZH}_wrong"), page("en_wrong")
    assert "作业 3 — 查询、键、值" in zh and "得分" in zh and "结果" in zh
    assert (
        "softmax([1000, 1001, 1002]) 在 3 个元素中有" in zh
        or "softmax([1000, 1001, 1002]) 在索引" in zh
    ), zh[:3000]
    assert "dot_score 抛出了 ValueError" in zh
    assert "取指数之前先沿 `axis` 减去最大值" in zh
    assert "attention 应当返回 (output, weights) 这一对，但返回的是 list" in zh
    leaked = [m for m in _english_messages() if m in zh]
    assert not leaked, leaked
    assert "Assignment 3 — Query, Key, Value" in en and "score" in en
    assert "dot_score raised ValueError" in en and "作业" not in en


def test_autograded_chinese_notebook_has_chinese_test_messages(mixed):
    course, *_ = mixed
    nb = nbformat.read(course / "autograded" / f"{ZH}_wrong" / A / f"{A}.ipynb", 4)
    errors = [
        o["evalue"]
        for c in nb.cells
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert any("抛出了 ValueError" in e for e in errors), errors
    assert nb.metadata["attn_course"]["language"] == ZH


def test_the_graders_own_notes_are_in_the_language_of_the_notebook(tmp_path):
    """A cell that never ends, in a Chinese notebook: the grader's note on it (in the
    autograded notebook and the feedback) is in Chinese; the same answer in English gets
    the English note, and both keep the other parts' points alike."""
    course = _course(tmp_path / "course")
    subs = tmp_path / "submitted"
    looping = {"softmax": "def softmax(x, axis=-1):\n    while True:\n        pass"}
    for language in ("en", ZH):
        folder = subs / f"{language}_loop" / A
        folder.mkdir(parents=True)
        answers = {**solutions_of(course, A), **looping}
        nbformat.write(fill(_release(course, language), answers), folder / f"{A}.ipynb")
    run = grade_cmd(course, A, subs, "--jobs", "1", "--timeout", "8")
    assert run.returncode == 0, run.stdout + run.stderr

    def timeout_note(student):
        nb = nbformat.read(course / "autograded" / student / A / f"{A}.ipynb", 4)
        return [
            o["evalue"]
            for c in nb.cells
            for o in c.get("outputs", [])
            if o.get("ename") == "CellTimeoutError"
        ]

    zh, en = timeout_note(f"{ZH}_loop"), timeout_note("en_loop")
    assert zh == ["这个单元格运行超过了 8 秒（也许是死循环），已被中断；其他部分的得分不受影响"], zh
    assert en == [
        "this cell ran longer than 8 s (perhaps an endless loop) and was interrupted; "
        "the other parts keep their points"
    ], en
    assert "这个单元格运行超过了 8 秒" in _text(course / "graded" / A / f"{ZH}_loop" / f"{A}.html")
    rows = read_csv(course / "graded" / A / "grades.csv")
    assert rows["en_loop"]["score"] == rows[f"{ZH}_loop"]["score"]


# --- attn-course check ---------------------------------------------------------------------


def _check(path):
    return subprocess.run(
        [str(BIN / "attn-course"), "check", str(path)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )


def test_the_check_speaks_chinese_for_a_chinese_notebook(tmp_path):
    course = _course(tmp_path / "course")
    work = tmp_path / "work"
    work.mkdir()
    nbformat.write(_answers(course)["wrong"](_release(course, ZH)), work / f"{A}.ipynb")
    proc = _check(work / f"{A}.ipynb")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "正在一个全新的内核中从上到下运行" in out
    assert "未通过" in out and "通过" in out and "个测试单元格中有" in out
    assert "dot_score 抛出了 ValueError" in out
    assert "在 a @ b 中，a 的最后一个轴的大小必须等于 b 的倒数第二个轴的大小" in out
    assert "attention 应当返回 (output, weights) 这一对，但返回的是 list" in out
    leaked = [m for m in _english_messages() if m in out]
    assert not leaked, leaked


@pytest.mark.parametrize("assignment", sorted(p.name for p in (ROOT / "exercises").iterdir()))
def test_every_chinese_notebook_with_the_solutions_passes_its_public_tests(assignment, tmp_path):
    release = ROOT / "exercises" / assignment / ZH / f"{assignment}.ipynb"
    nb = fill(nbformat.read(release, 4), solutions_of(ROOT, assignment))
    nbformat.write(nb, tmp_path / f"{assignment}.ipynb")
    proc = _check(tmp_path / f"{assignment}.ipynb")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAILED" not in proc.stdout and "未通过" not in proc.stdout


def test_the_report_reads_a_chinese_failure_as_the_same_failure(mixed):
    """`attn-course report` groups failures by their structure (failures.signature): the same
    mistake in a Chinese notebook has the same signature as in an English one."""
    from attn_course.grading.failures import cell_failure

    course, *_ = mixed

    def failures(student):
        nb = nbformat.read(course / "autograded" / student / A / f"{A}.ipynb", 4)
        found = {}
        for cell in nb.cells:
            failure = cell_failure(cell)
            if failure is not None:
                found[cell.metadata.nbgrader["grade_id"]] = failure.signature
        return found

    for name in ("wrong", "blank"):
        en, zh = failures(f"en_{name}"), failures(f"{ZH}_{name}")
        assert en and en == zh, (en, zh)
    kinds = {s[0] for s in failures("en_wrong").values()}
    assert {"raised", "not finite"} <= kinds, kinds  # parsed, not grouped by their raw text
