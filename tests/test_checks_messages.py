"""What a student reads when a test cell fails: the function the error came from, and a
traceback that starts in the student's code.

Runs the committed notebooks' cells in this process (the given code, the instructor's answers
with one part replaced, the public test cell), as a kernel would; no kernel, no nbgrader.
"""

import linecache
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from IPython.core.ultratb import AutoFormattedTB

from attn_course import checks
from attn_course.checks import CallError, run, run_unchanged

ROOT = Path(__file__).resolve().parents[1]
MARKERS = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*\n", re.M)


def _cells(assignment: str) -> dict[str, str]:
    """grade_id -> source: the student's notebook, with the instructor's answers filled in."""
    name = f"{assignment}/{assignment}.ipynb"
    release = nbformat.read(ROOT / "exercises" / name, as_version=4)
    source = nbformat.read(ROOT / "solutions" / name, as_version=4)
    answers = {
        c.metadata["nbgrader"]["grade_id"]: MARKERS.sub("", c.source)
        for c in source.cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }
    code = [c for c in release.cells if c.cell_type == "code" and "nbgrader" in c.metadata]
    ids = [c.metadata["nbgrader"]["grade_id"] for c in code]
    return {i: answers.get(i, c.source) for i, c in zip(ids, code, strict=True)}


def _run_cell(source: str, namespace: dict, n: list[int] = [0]) -> None:  # noqa: B006
    """Run ``source`` as a notebook cell runs: compiled from a file name linecache knows."""
    n[0] += 1
    name = f"<cell-{n[0]}>"
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    exec(compile(source, name, "exec"), namespace)


# the public example of test_encoder_layer, run by the student in a cell of their own (in the
# test cell itself, Parts 1 and 2 are the tests' own versions while encoder_layer runs)
SCRATCH = """x = np.array([[0.0, 2.0], [4.0, 0.0]])
d, Z, I = 2, np.zeros((2, 2)), np.eye(2)
params = dict(W_Q=Z, W_K=Z, W_V=I, W_O=I, b_Q=np.zeros(d), b_K=np.zeros(d), b_V=np.zeros(d),
              b_O=np.zeros(d), gamma_1=np.ones(d), beta_1=np.zeros(d), gamma_2=np.ones(d),
              beta_2=np.zeros(d), W_1=np.zeros((d, 3)), b_1=np.zeros(3), W_2=np.zeros((3, d)),
              b_2=np.zeros(d))
output, weights = run(encoder_layer, x, params, 1)
"""


def _notebook(assignment: str, replace: dict[str, str]) -> dict:
    """The namespace after running the notebook's given code and answers (no test cells),
    with the answers in ``replace`` instead of the instructor's."""
    namespace: dict = {"__name__": "__main__"}
    _run_cell("from attn_course.checks import check_array, run", namespace)
    for grade_id, source in _cells(assignment).items():
        if not grade_id.startswith("test_"):
            _run_cell(replace.get(grade_id, source), namespace)
    return namespace


def _notebook_until(assignment: str, test: str, replace: dict[str, str]) -> CallError:
    """Run the notebook's code cells in order, with the answers in ``replace`` instead of the
    instructor's, up to the test cell ``test``; return the CallError that cell raises."""
    namespace: dict = {"__name__": "__main__"}
    for grade_id, source in _cells(assignment).items():
        if grade_id == test:
            with pytest.raises(CallError) as failed:
                _run_cell(source, namespace)
            return failed.value
        try:
            _run_cell(replace.get(grade_id, source), namespace)
        except AssertionError:  # an earlier test cell fails: the student runs on
            pass
    raise AssertionError(f"no test cell {test} in {assignment}")


def _encoder_layer_fails(replace: dict[str, str]) -> CallError:
    namespace = _notebook("05_transformer", replace)
    with pytest.raises(CallError) as failed:
        _run_cell(SCRATCH, namespace)
    return failed.value


UNWRITTEN_LAYER_NORM = """def layer_norm(x, gamma=None, beta=None, eps=1e-5):
    # YOUR CODE HERE
    raise NotImplementedError()
"""
FEED_FORWARD_WITHOUT_RETURN = """def feed_forward(x, W_1, b_1, W_2, b_2):
    out = np.maximum(0.0, x @ W_1 + b_1) @ W_2 + b_2
"""
FEED_FORWARD_WITHOUT_TRANSPOSE = """def feed_forward(x, W_1, b_1, W_2, b_2):
    hidden = np.maximum(0.0, x @ W_1 + b_1)
    return hidden @ W_2.T + b_2
"""


def test_an_unwritten_helper_is_named_not_its_caller():
    failed = _encoder_layer_fails({"layer_norm": UNWRITTEN_LAYER_NORM})
    message = str(failed)
    assert "encoder_layer calls layer_norm, which is not written yet" in message, message
    assert "encoder_layer is not written yet" not in message
    assert message.startswith("encoder_layer calls layer_norm"), message
    assert "encoder_layer was called with x of shape (2, 2)" in message


def test_a_helper_without_return_is_named():
    failed = _encoder_layer_fails({"feed_forward": FEED_FORWARD_WITHOUT_RETURN})
    message = str(failed)
    assert "unsupported operand type(s) for +: 'float' and 'NoneType'" in message, message
    assert "the None is what feed_forward returned: does feed_forward lack a `return`?" in message


def test_an_error_raised_in_a_helper_names_the_helper_and_its_caller():
    failed = _encoder_layer_fails({"feed_forward": FEED_FORWARD_WITHOUT_TRANSPOSE})
    message = str(failed)
    assert "ValueError raised in feed_forward (called by encoder_layer): matmul" in message, message
    assert "encoder_layer was called with x of shape (2, 2)" in message


def test_in_a_test_cell_a_students_own_helper_is_named():
    layer_norm = """def variance(x):
    return np.mean((x - np.mean(x, axis=-1)) ** 2, axis=-1, keepdims=True)


def layer_norm(x, gamma=None, beta=None, eps=1e-5):
    out = (x - np.mean(x, axis=-1, keepdims=True)) / np.sqrt(variance(x) + eps)
    out = out if gamma is None else gamma * out
    return out if beta is None else out + beta
"""
    failed = _notebook_until("05_transformer", "test_layer_norm", {"layer_norm": layer_norm})
    message = str(failed)
    assert message.startswith(
        "layer_norm([[1, 2, 3], [0, 0, 6]], eps=0) could not be computed: ValueError raised in "
        "variance (called by layer_norm): operands could not be broadcast together"
    ), message
    assert "layer_norm was called with x of shape (2, 3) and eps = 0.0." in message
    assert message.endswith("so that they broadcast against x.")


def test_a_given_function_between_names_the_way_there():
    """encoder_layer -> multi_head_attention (given) -> attention (given) -> masked_softmax:
    the mask of the wrong shape fails in np.broadcast_to, in the given masked_softmax."""
    cells = _cells("05_transformer")
    namespace: dict = {"__name__": "__main__"}
    for grade_id in ("given", "layer_norm", "feed_forward", "encoder_layer"):
        _run_cell(cells[grade_id], namespace)
    d = 4
    params = {k: np.eye(d) for k in ("W_Q", "W_K", "W_V", "W_O")}
    params.update({k: np.zeros(d) for k in ("b_Q", "b_K", "b_V", "b_O", "beta_1", "beta_2")})
    params.update(gamma_1=np.ones(d), gamma_2=np.ones(d), b_1=np.zeros(3), b_2=np.zeros(d))
    params.update(W_1=np.ones((d, 3)), W_2=np.ones((3, d)))
    with pytest.raises(CallError) as failed:
        run(namespace["encoder_layer"], np.ones((3, d)), params, 2, mask=np.ones(5, bool))
    message = str(failed.value)
    assert (
        "ValueError raised in masked_softmax "
        "(called by encoder_layer through multi_head_attention, attention)"
    ) in message, message


def test_the_graded_function_itself_is_still_named_as_before():
    def dot_score(query, keys):
        return query @ keys

    with pytest.raises(CallError, match=r"^dot_score raised ValueError: matmul.*; it was called"):
        run(dot_score, np.ones((1, 2)), np.ones((3, 2)))


def _traceback_text(err: BaseException) -> str:
    """The traceback as Jupyter shows it under a cell (IPython's formatter, no colours)."""
    return AutoFormattedTB(mode="Context", theme_name="nocolor").text(
        type(err), err, err.__traceback__
    )


def _frames(text: str) -> list[str]:
    """The header line of every frame shown, in order: 'File .../checks.py:289, in run(...)'
    or 'Cell In[...]' / 'File <cell-3>:...'."""
    return [line for line in text.splitlines() if re.match(r"^(File |Cell )", line)]


def test_the_traceback_under_a_test_cell_starts_in_the_students_code():
    failed = _encoder_layer_fails({"feed_forward": FEED_FORWARD_WITHOUT_TRANSPOSE})
    text = _traceback_text(failed)
    frames = _frames(text)
    assert frames, text
    assert checks.__file__ not in frames[0], f"the traceback starts in checks.py:\n{text}"
    assert "in feed_forward" in "\n".join(frames[:3]), text  # the student's error comes first
    # checks.py shows at most its last frame, right above the message it explains
    inside = [i for i, f in enumerate(frames) if checks.__file__ in f]
    assert inside == [len(frames) - 1], text
    last = text.rstrip().splitlines()[-1]
    assert last.startswith("CallError: ValueError raised in feed_forward (called by encoder_layer)")


def test_a_wrong_value_shows_the_test_line_then_the_message():
    namespace: dict = {"__name__": "__main__"}
    cells = _cells("05_transformer")
    _run_cell(cells["given"], namespace)
    _run_cell(
        "def layer_norm(x, gamma=None, beta=None, eps=1e-5):\n    return x - x.mean()\n",
        namespace,
    )
    with pytest.raises(AssertionError) as failed:
        _run_cell(cells["test_layer_norm"], namespace)
    frames = _frames(_traceback_text(failed.value))
    assert checks.__file__ not in frames[0]
    assert sum(checks.__file__ in f for f in frames) <= 1  # check_shape, to_numpy: hidden


def test_run_unchanged_is_hidden_too():
    def shift(x):
        x -= 1
        return x

    with pytest.raises(AssertionError) as failed:
        run_unchanged(shift, np.ones(2))
    frames = _frames(_traceback_text(failed.value))
    assert sum(checks.__file__ in f for f in frames) <= 1, frames


def test_a_helper_that_returns_a_value_on_some_paths_is_not_blamed():
    def helper(x):
        if x > 0:
            return x
        print("negative")  # noqa: T201

    def graded(x):
        return None + helper(x)

    with pytest.raises(CallError) as failed:
        run(graded, 1.0)
    assert "the None is what" not in str(failed.value)
    assert str(failed.value).startswith("graded raised TypeError")
