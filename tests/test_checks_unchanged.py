"""``checks.run_unchanged``: a graded function that writes into its inputs is caught and named,
and the public test of "numerically stable softmax" fails a softmax without the max shift.

Reads the committed student notebook; no kernel, no nbgrader.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from attn_course.checks import run_unchanged

ROOT = Path(__file__).resolve().parents[1]


def shift_in_place(x, axis=-1):
    x -= x.max(axis=axis, keepdims=True)
    return np.exp(x)


def fill_params(e, params):
    params["W"][0, 0] = 7.0
    return e


def pure(x, mask, axis=-1):
    return np.where(mask, x, -np.inf).max(axis=axis)


def test_an_in_place_shift_is_caught_and_the_argument_named():
    x = np.array([[1.0, 2.0], [3.0, 5.0]])
    with pytest.raises(AssertionError, match=r"shift_in_place changed its input `x` in place"):
        run_unchanged(shift_in_place, x, axis=0)


def test_an_array_inside_a_dict_is_checked_too():
    params = {"W": np.zeros((2, 2)), "b": np.zeros(2)}
    with pytest.raises(AssertionError, match=r"changed its input `params\['W'\]`"):
        run_unchanged(fill_params, np.ones(2), params)


def test_a_function_that_leaves_its_inputs_alone_passes_and_returns_its_result():
    x = np.array([[1.0, np.nan], [3.0, 4.0]])  # NaN equals NaN: not a change
    mask = np.broadcast_to(np.array([True, False]), (2, 2))  # a read-only view
    np.testing.assert_array_equal(run_unchanged(pure, x, mask, axis=-1), [1.0, 3.0])
    assert np.isnan(x[0, 1]) and x[1, 1] == 4.0


def public_part(notebook: Path, grade_id: str) -> str:
    (cell,) = [
        c
        for c in json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id
    ]
    source = "".join(cell["source"])
    return re.split(r"^### BEGIN HIDDEN TESTS", source, flags=re.M)[0]


def test_the_public_softmax_test_fails_without_the_max_shift():
    """Issue 12, item 14: the part is titled "numerically stable softmax"."""
    tests = public_part(
        ROOT / "exercises/03_query_key_value/03_query_key_value.ipynb", "test_softmax"
    )
    assert "HIDDEN" not in tests

    def naive(x, axis=-1):
        e = np.exp(x)
        return e / np.sum(e, axis=axis, keepdims=True)

    def stable(x, axis=-1):
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return e / np.sum(e, axis=axis, keepdims=True)

    exec(tests, {"np": np, "softmax": stable})  # the right answer passes the public tests
    with pytest.raises(AssertionError, match=r"softmax\(\[1000, 1001, 1002\]\).*subtract the max"):
        exec(tests, {"np": np, "softmax": naive})
