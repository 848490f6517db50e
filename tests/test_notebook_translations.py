"""The assignments in Chinese: catalogs complete, compiled files and notebooks regenerated
identically, and the messages of the checks in Chinese (no kernel here; the grading of
translated notebooks is in tests/test_grading_languages.py).

- every message extracted from solutions/ (markdown paragraphs, the words of the test cells)
  and from the package (``_()``) is in its catalog, translated, not fuzzy, and nothing else is;
- the package's ``.mo`` files are the compiled catalogs (``make exercises`` writes them);
- ``exercises/<a>/zh_CN/<a>.ipynb`` is what :func:`localize` makes of the English release:
  the same code cells, grade ids and points; only markdown and the set-up line differ.
"""

from __future__ import annotations

import re

import nbformat
import numpy as np
import pytest
from make_exercises import RELEASE, assignments  # scripts/, via conftest
from notebook_catalogs import LOCALES, compiled_path, mo_bytes, read, templates

from attn_course import messages
from attn_course.checks import check_array, check_shape, run
from attn_course.grading.languages import localize, notebook_language, to_source

LANGUAGE = "zh_CN"
ASSIGNMENTS = assignments()
CJK = re.compile(r"[\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]")  # Chinese, its punctuation
PLACEHOLDER = re.compile(r"\{[^{}]*\}")


@pytest.fixture(scope="module")
def fresh_templates():
    return templates()


@pytest.fixture
def chinese(monkeypatch):
    monkeypatch.setenv(messages.ENV, LANGUAGE)


def test_there_is_a_catalog_per_assignment_and_one_for_the_checks(fresh_templates):
    assert sorted(fresh_templates) == ["checks.po"] + [f"exercises/{a}.po" for a in ASSIGNMENTS]


@pytest.mark.parametrize("rel", ["checks.po"] + [f"exercises/{a}.po" for a in ASSIGNMENTS])
def test_catalog_is_complete_and_current(rel, fresh_templates):
    path = LOCALES / LANGUAGE / "LC_MESSAGES" / rel
    assert path.is_file(), f"{rel} is missing: run `make translations`"
    po = read(path)
    wanted = {m.id for m in fresh_templates[rel] if m.id}
    have = {m.id for m in po if m.id}
    assert not wanted - have, f"{rel} lacks {sorted(wanted - have)[:5]}: `make translations`"
    assert not have - wanted, f"{rel} holds removed messages {sorted(have - wanted)[:5]}"
    problems = [m.id for m in po if m.id and (not m.string or m.fuzzy)]
    assert not problems, f"{rel}: untranslated or fuzzy: {problems[:5]}"
    for m in po:
        if not m.id:
            continue
        assert set(PLACEHOLDER.findall(m.id)) == set(PLACEHOLDER.findall(m.string)), (
            f"{rel}: the translation of {m.id!r} changes its placeholders"
        )
        if CJK.search(m.string) is None:  # left as it is: only code, maths, names
            assert m.string == m.id, f"{rel}: {m.id!r} is neither translated nor kept"


@pytest.mark.parametrize("rel", ["checks.po"] + [f"exercises/{a}.po" for a in ASSIGNMENTS])
def test_compiled_catalog_is_the_catalog(rel):
    compiled = compiled_path(LANGUAGE, rel)
    assert compiled.is_file(), f"{compiled} is missing: run `make exercises`"
    expected = mo_bytes(read(LOCALES / LANGUAGE / "LC_MESSAGES" / rel))
    assert compiled.read_bytes() == expected, f"{compiled.name} is stale: run `make exercises`"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_chinese_notebook_regenerates_identically(assignment):
    english = RELEASE / assignment / f"{assignment}.ipynb"
    committed = RELEASE / assignment / LANGUAGE / f"{assignment}.ipynb"
    assert committed.is_file(), f"{committed} is missing: run `make exercises`"
    fresh = localize(nbformat.read(english, as_version=4), LANGUAGE)
    assert nbformat.writes(fresh) + "\n" == committed.read_text(encoding="utf-8"), (
        f"{committed.relative_to(RELEASE.parent)} differs from what `make exercises` makes of "
        "the English release and the catalog: run `make exercises` and commit the result"
    )


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_chinese_notebook_differs_only_in_words_and_set_up(assignment):
    en = nbformat.read(RELEASE / assignment / f"{assignment}.ipynb", as_version=4)
    zh = nbformat.read(RELEASE / assignment / LANGUAGE / f"{assignment}.ipynb", as_version=4)
    assert notebook_language(zh) == LANGUAGE and notebook_language(en) == "en"
    assert len(en.cells) == len(zh.cells)
    first_code = next(i for i, c in enumerate(en.cells) if c.cell_type == "code")
    for i, (a, b) in enumerate(zip(en.cells, zh.cells, strict=True)):
        meta_a, meta_b = dict(a.metadata.get("nbgrader", {})), dict(b.metadata.get("nbgrader", {}))
        meta_a.pop("checksum", None), meta_b.pop("checksum", None)
        assert (a.cell_type, meta_a) == (b.cell_type, meta_b), f"cell {i}"
        if a.cell_type == "code" and i != first_code:
            assert a.source == b.source, f"code cell {i} differs"
        elif a.cell_type == "code":
            assert b.source.startswith(a.source) and 'use_language("zh_CN")' in b.source
        elif meta_a.get("locked"):
            assert CJK.search(b.source), f"markdown cell {i} is not translated"
    # mapped back against the English cells, every locked cell is the English one again
    locked = [c for c in en.cells if c.metadata.get("nbgrader", {}).get("locked")]
    cells = {c.metadata.nbgrader["grade_id"]: c for c in locked}
    language, mapped = to_source(zh, cells)
    assert (
        language == LANGUAGE and len(mapped) == sum(c.cell_type == "markdown" for c in zh.cells) + 1
    )
    assert [c.source for c in zh.cells] == [c.source for c in en.cells]


# --- run time -----------------------------------------------------------------------------


def test_english_is_the_default_and_unchanged(monkeypatch):
    monkeypatch.delenv(messages.ENV, raising=False)
    with pytest.raises(AssertionError) as err:
        check_shape("softmax(x)", np.zeros((3, 2)), (2, 3), hint="Transpose it.")
    assert (
        str(err.value)
        == "softmax(x) has shape (3, 2), but it should have shape (2, 3). Transpose it."
    )


def test_an_unknown_language_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="'xx'.*'en', 'zh_CN'"):
        messages.use_language("xx")


def test_check_messages_are_chinese(chinese):
    def dot_score(query, keys):
        return query @ keys  # the classic mistake: no transpose

    q, K = np.ones((1, 2)), np.ones((3, 2))
    with pytest.raises(AssertionError) as err:
        check_array("dot_score(q, K)", run(dot_score, q, K), np.zeros((1, 3)),
                    hint="Entry [i, j] is the dot product of query i with key j.")  # fmt: skip
    text = str(err.value)
    assert "dot_score 抛出了 ValueError" in text, text
    assert "在 a @ b 中，a 的最后一个轴的大小必须等于 b 的倒数第二个轴的大小" in text
    assert (
        "调用 dot_score 时的参数" not in text
        and "调用时的参数：query 的形状为 (1, 2) 和 keys 的形状为 (3, 2)。" in text
    )
    assert text.endswith("元素 [i, j] 是查询 i 与键 j 的点积。")
    english = {m.id for m in read(LOCALES / LANGUAGE / "LC_MESSAGES" / "checks.po") if m.id}
    words = {re.sub(r"\{[^{}]*\}", "", e).strip(" .;:()") for e in english}
    leaked = [w for w in words if len(w) > 12 and w in text]
    assert not leaked, leaked


def test_test_cell_words_from_templates_and_pieces(chinese):
    assert messages.text("softmax(A, axis=0) for A of shape (3, 4, 5) with large entries") == (
        "元素很大的 (3, 4, 5) 形状数组 A 的 softmax(A, axis=0)"
    )
    joined = (
        "Take the maximum and the sum along axis=1 only, with keepdims=True. "
        "Large inputs overflow np.exp: subtract the maximum along `axis` before exponentiating."
    )
    assert messages.text(joined) == (
        "只沿 axis=1 取最大值和求和，并使用 keepdims=True。"
        "大的输入会让 np.exp 上溢：取指数之前先沿 `axis` 减去最大值。"
    )
    assert messages.text("a sentence no catalog has") == "a sentence no catalog has"


def test_a_notebook_in_an_unknown_language_is_a_clear_error():
    nb = nbformat.read(RELEASE / "03_query_key_value" / LANGUAGE / "03_query_key_value.ipynb", 4)
    nb.metadata["attn_course"]["language"] = "xx"
    with pytest.raises(ValueError, match="'xx'.*'en', 'zh_CN'"):
        notebook_language(nb)
    with pytest.raises(ValueError, match="no translation to 'en'"):
        localize(nb, "en")
    nb.metadata["attn_course"] = "zh_CN"  # not a mapping: no language can be read from it
    with pytest.raises(ValueError, match="attn_course is 'zh_CN', not a mapping"):
        notebook_language(nb)
    assert notebook_language(nb, unknown="en") == "en"


def test_the_graders_own_words_fall_back_to_english_for_an_unknown_language():
    """The grader's notes and the kernel's language switch read the same metadata: an
    unknown language (a student's edit) gives English words, not an error."""
    from attn_course.grading.kernels import language_request
    from attn_course.grading.notes import TIMEOUT, say

    nb = nbformat.read(RELEASE / "03_query_key_value" / LANGUAGE / "03_query_key_value.ipynb", 4)
    assert language_request(nb) == {
        "language": "__import__('attn_course.messages', fromlist=['use_language'])"
        ".use_language('zh_CN')"
    }
    chinese_note = say(TIMEOUT, nb, timeout=30)
    nb.metadata["attn_course"]["language"] = "xx"
    assert notebook_language(nb, unknown="en") == "en"
    assert language_request(nb) == {}
    assert say(TIMEOUT, nb, timeout=30) == TIMEOUT.format(timeout=30) != chinese_note


def test_an_edited_translated_cell_is_left_for_the_repair(chinese):
    en = nbformat.read(RELEASE / "03_query_key_value" / "03_query_key_value.ipynb", 4)
    zh = nbformat.read(RELEASE / "03_query_key_value" / LANGUAGE / "03_query_key_value.ipynb", 4)
    zh.cells[0].source += "\n\n我改了这里。"
    cells = {c.metadata.nbgrader["grade_id"]: c for c in en.cells if c.metadata.nbgrader["locked"]}
    language, mapped = to_source(zh, cells)
    assert language == LANGUAGE and "intro" not in mapped and "setup" in mapped
    assert zh.cells[0].source.endswith("我改了这里。")  # OverwriteCells restores and reports it


def _failures() -> list[tuple]:
    """The signature (failures.py, read by `attn-course report`) of one failure of each kind
    of the checks, in the current language."""
    from attn_course.checks import check_rows_sum_to_one, run_unchanged
    from attn_course.grading.failures import signature

    def dot_score(query, keys):
        return query @ keys

    def layer_norm(x):
        raise NotImplementedError()

    def encoder_layer(x):
        return layer_norm(x)

    def shift(x):
        x -= 1
        return x

    q, K = np.ones((1, 2)), np.ones((3, 2))
    cases = [
        lambda: check_array("dot_score(q, K)", run(dot_score, q, K), np.zeros((1, 3))),
        lambda: check_array("the weights on padded keys", run(encoder_layer, q), q),
        lambda: check_array("the output", run(layer_norm, q), q),
        lambda: check_array("softmax([-1000, -1000])", np.array([np.nan, 1.0]), np.zeros(2)),
        lambda: check_array("attention weights", np.ones(2), np.zeros(2)),
        lambda: check_shape("the output", np.ones((2, 3)), (3, 2), hint="One output row."),
        lambda: check_shape("the output", None, (3, 2)),
        lambda: check_shape("the output", (np.ones(2), np.ones(2)), (3, 2)),
        lambda: check_shape("the output", "text", (3, 2)),
        lambda: check_rows_sum_to_one("attention weights", -np.ones((2, 2))),
        lambda: check_rows_sum_to_one("attention weights", np.ones((2, 2))),
        lambda: run_unchanged(shift, np.ones(3)),
    ]
    out = []
    for case in cases:
        with pytest.raises(AssertionError) as err:
            case()
        out.append(signature(type(err.value).__name__, str(err.value)))
    return out


def test_the_report_reads_every_kind_of_failure_alike_in_both_languages(monkeypatch):
    monkeypatch.delenv(messages.ENV, raising=False)
    english = _failures()
    monkeypatch.setenv(messages.ENV, LANGUAGE)
    chinese = _failures()
    kinds = [s[0] for s in english]
    expected = ["raised", "helper not written", "not written", "not finite", "wrong values",
                "wrong shape", "returned None", "returned a tuple", "not an array",
                "negative entries", "does not sum to 1", "changed its input"]  # fmt: skip
    assert kinds == expected, kinds
    assert chinese == english


def test_the_report_reads_the_graders_notes_alike_in_both_languages():
    """A cell that ran too long, a kernel that died, cells not run: one kind of failure in
    the class report whichever language the notebook was in."""
    from attn_course.grading import notes
    from attn_course.grading.failures import signature

    zh = {"metadata": {"attn_course": {"language": LANGUAGE}}}
    cases = [
        ("CellTimeoutError", notes.TIMEOUT, {"timeout": 30}),
        ("CellTimeoutError", notes.HUNG, {"timeout": 30}),
        ("KernelDied", notes.DIED, {}),
        ("NotRun", notes.GAVE_UP, {}),
        ("NotRun", notes.OUT_OF_TIME, {}),
    ]
    for ename, note, values in cases:
        chinese = notes.say(note, zh, **values)
        assert chinese != note.format(**values)  # translated
        assert signature(ename, chinese) == signature(ename, note.format(**values)), note


def test_the_graders_notes_in_each_language():
    """The grader's notes on a run, in the notebook's language from the compiled catalog;
    English for an English notebook and for metadata naming no known language."""
    from attn_course.grading import notes

    def nb(language=None):
        return {"metadata": {"attn_course": {"language": language}} if language else {}}

    assert notes.say(notes.GAVE_UP, nb("zh_CN")) == "未运行：内核在前面的单元格中崩溃的次数太多"
    assert notes.say(notes.TIMEOUT, nb("zh_CN"), timeout=5).startswith("这个单元格运行超过了 5 秒")
    assert notes.say(notes.TIMEOUT, nb(), timeout=5).startswith("this cell ran longer than 5 s")
    assert notes.say(notes.OUT_OF_TIME, nb("xx")) == notes.OUT_OF_TIME
