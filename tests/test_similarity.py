"""The similarity of `attn-course report`, calibrated on answers whose history is known: the
validity cases' independently written correct answers (no pair may be flagged) and planted
copies disguised as copiers disguise them (every one flagged, all in one group). No kernel:
answers are the cells' sources (tests/similarity_fixtures.py builds the classes)."""

from __future__ import annotations

import random

import pytest
from similarity_fixtures import ASSIGNMENTS, disguise, independent_class, released, ways

from attn_course.grading.cli import main
from attn_course.grading.similarity import Settings, common_cap, compare_class, written


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_independent_answers_are_never_flagged(assignment):
    starters, _ = released(assignment)
    answers = independent_class(assignment)
    assert len(answers) >= 2
    result = compare_class(answers, starters)
    assert result.pairs == [], [(p.a, p.b, round(p.score, 2)) for p in result.pairs]
    assert result.clusters == []


def _planted(assignment: str, seed: int = 0):
    """The independent class plus three disguised copies of its first student; the third
    copy has one part written anew (code found nowhere else in the class: the last of the
    part's validity cases, a mistake, so that no other student wrote it so)."""
    starters, _ = released(assignment)
    answers = independent_class(assignment)
    original = f"{assignment}-s0"
    rng = random.Random(seed)
    copies = [f"{assignment}-copy{i}" for i in range(3)]
    for name in copies:
        answers[name] = {
            g: disguise(c, rng, keep=set(starters)) for g, c in answers[original].items()
        }
    options = ways(assignment, mistakes=True)
    rewritten = sorted(starters)[0]
    answers[copies[2]][rewritten] = options[rewritten][-1]
    return starters, answers, [original, *copies]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_planted_copies_are_flagged_and_grouped(assignment):
    starters, answers, planted = _planted(assignment)
    result = compare_class(answers, starters)
    flagged = {frozenset((p.a, p.b)) for p in result.pairs}
    missing = [
        (a, b) for i, a in enumerate(planted) for b in planted[i + 1 :] if {a, b} not in flagged
    ]
    # the rewritten copy may fall below the threshold against one other copy, never against
    # all of them: it still joins the group
    assert len(missing) <= 2 and all(planted[3] in m for m in missing), missing
    assert result.clusters == [sorted(planted)], result.clusters
    for p in result.pairs:
        assert p.score >= result.settings.threshold and p.evidence >= result.settings.min_evidence
        assert any("<mark>" in d["a"] and "<mark>" in d["b"] for d in p.parts.values())


def test_the_disguise_changes_the_text_and_keeps_the_code_valid():
    import ast

    rng = random.Random(1)
    for assignment in ASSIGNMENTS:
        starters, _ = released(assignment)
        for code in independent_class(assignment)[f"{assignment}-s0"].values():
            copy = disguise(code, rng, keep=set(starters))
            ast.parse(copy)  # still Python
            assert copy != code


def test_starter_code_is_not_the_students_work():
    """A class that left the starter untouched: nothing written, nothing alike."""
    assignment = "03_query_key_value"
    starters, _ = released(assignment)
    answers = {f"s{i}": dict(starters) for i in range(12)}
    result = compare_class(answers, starters)
    assert result.pairs == []
    assert result.short == {g: 12 for g in starters}


def test_written_keeps_only_what_the_student_added():
    starter = 'def f(x):\n    """Doc."""\n    # YOUR CODE HERE\n    raise NotImplementedError()'
    code = 'def f(x):\n    """Doc."""\n    y = x + 1\n\n    return y'
    assert written(code, starter) == "    y = x + 1\n    return y"
    # the starter's lines are recognised with names renamed and spacing changed
    renamed = 'def f(x_v1):\n    """Doc."""\n    y = x_v1+1\n    return y'
    assert written(renamed, starter) == "    y = x_v1+1\n    return y"
    # a line equal to a starter line is kept where the starter has no such line in order
    assert written("    raise NotImplementedError()\ndef f(x):", "def f(x):") == (
        "    raise NotImplementedError()"
    )


def test_short_answers_carry_no_evidence():
    """Two students with the same three-line softmax and nothing else: not flagged."""
    starter = "def softmax(x, axis=-1):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    same = "def softmax(x, axis=-1):\n    e = np.exp(x - x.max(axis, keepdims=True))\n" + (
        "    return e / e.sum(axis, keepdims=True)"
    )
    result = compare_class({"a": {"softmax": same}, "b": {"softmax": same}}, {"softmax": starter})
    assert result.pairs == [] and result.short == {"softmax": 0}
    # the same answer as a longer share of the evidence threshold would be flagged
    loose = Settings(min_part=25, min_evidence=25)
    flagged = compare_class({"a": {"softmax": same}, "b": {"softmax": same}}, {"softmax": starter},
                            loose)  # fmt: skip
    assert [(p.a, p.b) for p in flagged.pairs] == [("a", "b")]


def test_a_way_of_writing_shared_by_many_is_not_evidence():
    """The same long answer in 30 of 40 students is a common way of writing it (above the
    cap of fingerprint holders), not 435 copied pairs."""
    assert common_cap(40, Settings()) == 10 and common_cap(10_000, Settings()) == 200
    starters, _ = released("03_query_key_value")
    answers = independent_class("03_query_key_value")
    base = answers["03_query_key_value-s0"]
    many = {f"m{i}": dict(base) for i in range(30)}
    result = compare_class(
        {**many, **{k: v for k, v in answers.items() if "s0" not in k}}, starters
    )
    assert result.pairs == []
    assert sum(result.common.values()) > 0


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError):
        Settings(threshold=0)
    with pytest.raises(ValueError):
        Settings(min_part=5)
    with pytest.raises(SystemExit):
        main(["report", "tiny", "--threshold", "0"])
    with pytest.raises(SystemExit):
        main(["report", "tiny", "--threshold", "half"])
