"""The tests catch a mistake in the part where it is, and only there.

- The public tests catch the classic mistake that is right for one row or one sequence and
  wrong for two rows or a batch (``np.mean`` without ``keepdims``, ``keys.T`` on a batch,
  ``alpha @ h``): it fails its own public test cell.
- A mistake in a part that a later part uses costs no points in the later part: while the
  later part is tested, the earlier ones are the tests' own versions (public and hidden tests).

Runs the committed notebooks' cells in this process (the given code, the instructor's answers
with one part replaced, the test cells); no kernel, no nbgrader.
"""

import linecache
import re
from pathlib import Path

import nbformat
import pytest

from attn_course import checks

ROOT = Path(__file__).resolve().parents[1]
MARKERS = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*\n", re.M)
HIDDEN = re.compile(r"^\s*### (BEGIN|END) HIDDEN TESTS\s*\n", re.M)
ASSIGNMENTS = sorted(p.name for p in (ROOT / "exercises").iterdir() if p.is_dir())


def _cells(assignment: str, hidden: bool = False) -> list[tuple[str, bool, str]]:
    """(grade_id, is a test cell, source) of the student's notebook, in order, with the
    instructor's answers filled in; with ``hidden``, the test cells hold the hidden tests too."""
    name = f"{assignment}/{assignment}.ipynb"
    release = nbformat.read(ROOT / "exercises" / name, as_version=4)
    if hidden:
        release = nbformat.read(ROOT / "solutions" / name, as_version=4)
        for c in release.cells:
            c.source = HIDDEN.sub("", c.source)
    source = nbformat.read(ROOT / "solutions" / name, as_version=4)
    answers = {
        c.metadata["nbgrader"]["grade_id"]: MARKERS.sub("", c.source)
        for c in source.cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }
    cells = []
    for c in release.cells:
        meta = c.metadata.get("nbgrader", {})
        if c.cell_type == "code" and meta.get("grade_id"):
            grade_id = meta["grade_id"]
            cells.append((grade_id, bool(meta.get("grade")), answers.get(grade_id, c.source)))
    return cells


def _run_public_tests(
    assignment: str, replace: dict[str, str], hidden: bool = False
) -> dict[str, str | None]:
    """Every test cell's result, None if it passed, else its error message; the answers in
    ``replace`` stand in for the instructor's."""
    namespace: dict = {"__name__": "__main__"}
    results: dict[str, str | None] = {}
    for n, (grade_id, is_test, source) in enumerate(_cells(assignment, hidden)):
        source = replace.get(grade_id, source)
        filename = f"<{assignment}-cell-{n}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            exec(compile(source, filename, "exec"), namespace)
        except AssertionError as err:
            assert is_test, f"{grade_id} is not a test cell, but it failed: {err}"
            results[grade_id] = str(err)
        else:
            if is_test:
                results[grade_id] = None
    return results


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_instructors_answers_pass_every_public_test(assignment, capsys):
    results = _run_public_tests(assignment, {})
    assert results and all(r is None for r in results.values()), results


# (assignment, the answer replaced, its test cell, the mistake)
MISTAKES = {
    "layer_norm without keepdims": (
        "05_transformer",
        "layer_norm",
        "test_layer_norm",
        """def layer_norm(x, gamma=None, beta=None, eps=1e-5):
    mu = np.mean(x, axis=-1)
    var = np.var(x, axis=-1)
    out = (x - mu) / np.sqrt(var + eps)
    if gamma is not None:
        out = gamma * out
    return out if beta is None else out + beta
""",
    ),
    "layer_norm with the statistics of the whole array": (
        "05_transformer",
        "layer_norm",
        "test_layer_norm",
        """def layer_norm(x, gamma=None, beta=None, eps=1e-5):
    out = (x - x.mean()) / np.sqrt(x.var() + eps)
    if gamma is not None:
        out = gamma * out
    return out if beta is None else out + beta
""",
    ),
    "feed_forward with a ReLU after W_2 as well": (
        "05_transformer",
        "feed_forward",
        "test_feed_forward",
        """def feed_forward(x, W_1, b_1, W_2, b_2):
    return np.maximum(0, np.maximum(0, x @ W_1 + b_1) @ W_2 + b_2)
""",
    ),
    "dot_score with keys.T": (
        "03_query_key_value",
        "dot_score",
        "test_dot_score",
        """def dot_score(query, keys):
    return query @ keys.T
""",
    ),
    "scaled_dot_score with keys.T": (
        "03_query_key_value",
        "scaled_dot_score",
        "test_scaled_dot_score",
        """def scaled_dot_score(query, keys):
    return query @ keys.T / np.sqrt(keys.shape[-1])
""",
    ),
    "scaled_dot_score with d = keys.shape[1]": (
        "03_query_key_value",
        "scaled_dot_score",
        "test_scaled_dot_score",
        """def scaled_dot_score(query, keys):
    return query @ np.swapaxes(keys, -1, -2) / np.sqrt(keys.shape[1])
""",
    ),
    "additive_score with axes counted from the front": (
        "03_query_key_value",
        "additive_score",
        "test_additive_score",
        """def additive_score(query, keys, W_q, W_k, v):
    return np.tanh((query @ W_q)[:, None, :] + (keys @ W_k)[None, :, :]) @ v
""",
    ),
    "masked_softmax without keepdims": (
        "03_query_key_value",
        "masked_softmax",
        "test_masked_softmax",
        """def masked_softmax(x, mask, axis=-1):
    z = np.where(mask, x, -np.inf)
    e = np.exp(z - np.max(z, axis=axis))
    return e / np.sum(e, axis=axis)
""",
    ),
    "alignment_scores without the axis of the encoder states": (
        "02_attention",
        "alignment_scores",
        "test_alignment_scores",
        """def alignment_scores(s_prev, h, W_q, W_k, v):
    return np.tanh(s_prev @ W_q + h @ W_k) @ v
""",
    ),
    "attention_weights without keepdims": (
        "02_attention",
        "attention_weights",
        "test_attention_weights",
        """def attention_weights(e, mask):
    z = np.where(mask, e, -np.inf)
    w = np.exp(z - np.max(z, axis=-1))
    return w / np.sum(w, axis=-1)
""",
    ),
    "context_vector as alpha @ h": (
        "02_attention",
        "context_vector",
        "test_context_vector",
        """def context_vector(alpha, h):
    return alpha @ h
""",
    ),
    "hard_weights without keepdims": (
        "02_attention",
        "hard_weights",
        "test_hard_weights",
        """def hard_weights(weights, k=1):
    kth = np.sort(weights, axis=-1)[..., -k]
    kept = np.where(weights >= kth, weights, 0.0)
    return kept / kept.sum(axis=-1)
""",
    ),
    "self_attention with x.T": (
        "04_self_attention",
        "self_attention",
        "test_self_attention",
        """def self_attention(x, mask=None, score=scaled_dot_score):
    weights = softmax(x @ x.T / np.sqrt(x.shape[-1])) if mask is None else None
    return weights @ x, weights
""",
    ),
    "projected_self_attention with K.T": (
        "04_self_attention",
        "projected_self_attention",
        "test_projected_self_attention",
        """def projected_self_attention(x, W_Q, W_K, W_V, mask=None):
    Q, K, V = x @ W_Q, x @ W_K, x @ W_V
    weights = softmax(Q @ K.T / np.sqrt(K.shape[-1]))
    return weights @ V, weights
""",
    ),
    "permutation_equivariance_error shuffling the first axis": (
        "04_self_attention",
        "permutation_equivariance_error",
        "test_permutation_equivariance_error",
        """def permutation_equivariance_error(f, x, perm):
    def out(y):
        r = f(y)
        return r[0] if isinstance(r, tuple) else r
    return float(np.max(np.abs(out(x[perm]) - out(x)[perm])))
""",
    ),
    "rnn_forward looping over the first axis": (
        "01_encoder_decoder",
        "rnn_forward",
        "test_rnn_forward",
        """def rnn_forward(x, W_x, W_h, b, h0=None):
    h = np.zeros(W_h.shape[0]) if h0 is None else h0
    states = []
    for x_t in x:
        h = np.tanh(x_t @ W_x + h @ W_h + b)
        states.append(h)
    return np.stack(states), h
""",
    ),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_a_mistake_for_batches_fails_its_own_public_test(mistake, capsys):
    assignment, answer, test, code = MISTAKES[mistake]
    results = _run_public_tests(assignment, {answer: code})
    assert results[test] is not None, f"the public {test} passes {mistake}:\n{code}"


# (assignment, the answer replaced, its test cell, the mistake): a part that a later part uses
CASCADES = {
    "layer_norm without keepdims": MISTAKES["layer_norm without keepdims"],
    "feed_forward with the ReLU before b_1": (
        "05_transformer",
        "feed_forward",
        "test_feed_forward",
        """def feed_forward(x, W_1, b_1, W_2, b_2):
    return (np.maximum(0, x @ W_1) + b_1) @ W_2 + b_2
""",
    ),
    "layer_norm not written": (
        "05_transformer",
        "layer_norm",
        "test_layer_norm",
        """def layer_norm(x, gamma=None, beta=None, eps=1e-5):
    raise NotImplementedError()
""",
    ),
    "masked_softmax without keepdims": MISTAKES["masked_softmax without keepdims"],
    "softmax without the max shift": (
        "03_query_key_value",
        "softmax",
        "test_softmax",
        """def softmax(x, axis=-1):
    e = np.exp(x)
    return e / np.sum(e, axis=axis, keepdims=True)
""",
    ),
    "split_heads as a plain reshape": (
        "04_self_attention",
        "split_heads",
        "test_split_heads",
        """def split_heads(x, num_heads):
    *batch, T, d = x.shape
    return np.reshape(x, (*batch, num_heads, T, d // num_heads))
""",
    ),
    "merge_heads as a plain reshape": (
        "04_self_attention",
        "merge_heads",
        "test_merge_heads",
        """def merge_heads(x):
    *batch, h, T, d_k = x.shape
    return np.reshape(x, (*batch, T, h * d_k))
""",
    ),
}


@pytest.mark.parametrize("mistake", CASCADES)
def test_a_mistake_costs_points_in_its_own_part_only(mistake, capsys):
    assignment, answer, test, code = CASCADES[mistake]
    results = _run_public_tests(assignment, {answer: code}, hidden=True)
    assert results[test] is not None, f"{test} passes {mistake}"
    others = {t: r for t, r in results.items() if t != test and r is not None}
    assert not others, f"{mistake} also fails {others}"


def _test_ids(assignment: str) -> list[str]:
    return [grade_id for grade_id, is_test, _ in _cells(assignment) if is_test]


@pytest.mark.parametrize(
    ("assignment", "test"), [(a, t) for a in ASSIGNMENTS for t in _test_ids(a)]
)
def test_a_test_cell_needs_nothing_an_earlier_failed_one_skipped(assignment, test, capsys):
    """A test cell that fails stops at its first failed call of the student's function, so a
    later test cell must not need a name defined after that point (an import in its hidden
    tests): else one mistake fails two parts. Here every other test cell fails at its first
    call, and ``test`` must still pass."""
    real = {"run": checks.run, "run_unchanged": checks.run_unchanged}

    def fails(fn, *args, **kwargs):
        raise AssertionError("the student's function failed")

    namespace: dict = {"__name__": "__main__"}
    for n, (grade_id, is_test, source) in enumerate(_cells(assignment, hidden=True)):
        filename = f"<{assignment}-{n}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        code = compile(source, filename, "exec")
        if not is_test or grade_id == test:
            exec(code, namespace)
            continue
        try:
            checks.run = checks.run_unchanged = fails
            for name, value in list(namespace.items()):
                if name in real and value is real[name]:
                    namespace[name] = fails
            exec(code, namespace)
        except AssertionError:
            pass
        finally:
            checks.run, checks.run_unchanged = real["run"], real["run_unchanged"]
        for name, value in list(namespace.items()):  # the real ones were imported
            if value is fails:
                namespace[name] = real[name]


def test_a_masked_softmax_that_calls_softmax_does_not_pay_for_softmax(capsys):
    """A masked_softmax may call the notebook's own softmax (a valid answer); while it is
    graded, softmax is the tests' own, so a softmax mistake costs Part 1's points only."""
    answers = {
        "softmax": CASCADES["softmax without the max shift"][3],
        "masked_softmax": """def masked_softmax(x, mask, axis=-1):
    weights = softmax(np.where(mask, x, -np.inf), axis=axis)
    return np.where(mask, weights, 0.0)
""",
    }
    results = _run_public_tests("03_query_key_value", answers, hidden=True)
    assert results["test_softmax"] is not None  # the mistake is found where it is
    others = {t: r for t, r in results.items() if t != "test_softmax" and r is not None}
    assert not others, f"the softmax mistake also fails {others}"
    # and that masked_softmax is right with a right softmax (a valid alternative)
    right = _run_public_tests(
        "03_query_key_value", {"masked_softmax": answers["masked_softmax"]}, hidden=True
    )
    assert not {t: r for t, r in right.items() if r is not None}
