"""One source per answer: the solution cells of every assignment are the library's functions.

- Assignments 01 and 02: each solution cell's code *is* the body of its answer-key function
  (``attn_course.answers.*``); ``make exercises`` writes it there, and this test fails if either
  side is edited alone.
- The other graded functions are ``attn_course.functional``'s own (NumPy or torch). Their
  solution cells are plain NumPy, so they are compared by behaviour: same signature, and the
  same result on the cases where a second implementation would drift first (fully masked
  rows, huge scores, ties, non-default arguments), within the shapes the assignment promises
  (the library also takes a single query (d,)).

Reads the notebooks and runs their cells in this process: no kernels, part of `make test-fast`.
"""

import inspect

import nbformat
import numpy as np
import pytest
from make_exercises import ANSWER_KEYS, SOURCE, sync_solutions  # scripts/, via conftest

from attn_course.functional import attention as f_attention
from attn_course.functional import (
    heads,
    masks,
    positions,
    scores,
    self_attention,
    softmax,
    transformer,
)


@pytest.mark.parametrize("assignment", sorted(ANSWER_KEYS))
def test_solution_cells_are_the_answer_key_functions(assignment):
    stale = sync_solutions(assignment, write=False)
    assert not stale, (
        f"solutions/{assignment}: the solution cells of {stale} differ from "
        f"{ANSWER_KEYS[assignment]}; edit the module and run `make exercises`"
    )


def solution_namespace(assignment: str) -> dict:
    """Run the notebook's set-up and solution cells (not its tests) and return its globals."""
    (path,) = sorted((SOURCE / assignment).glob("*.ipynb"))
    namespace: dict = {}
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code" and not cell.metadata.get("nbgrader", {}).get("grade"):
            exec(
                compile(cell.source, f"{path.name}:{cell.metadata.get('nbgrader', {})}", "exec"),
                namespace,
            )
    return namespace


LIBRARY = {
    "02_attention": {"hard_weights": f_attention.hard_weights},
    "03_query_key_value": {
        "softmax": softmax.softmax,
        "masked_softmax": softmax.masked_softmax,
        "dot_score": scores.dot_score,
        "scaled_dot_score": scores.scaled_dot_score,
        "cosine_score": scores.cosine_score,
        "additive_score": scores.additive_score,
        "attention": f_attention.attention,
    },
    "04_self_attention": {
        "self_attention": self_attention.self_attention,
        "projected_self_attention": self_attention.projected_self_attention,
        "permutation_equivariance_error": self_attention.permutation_equivariance_error,
        "causal_mask": masks.causal_mask,
        "split_heads": heads.split_heads,
        "merge_heads": heads.merge_heads,
        "multi_head_attention": heads.multi_head_attention,
        "sinusoidal_positional_encoding": positions.sinusoidal_positional_encoding,
    },
    "05_transformer": {
        "layer_norm": transformer.layer_norm,
        "feed_forward": transformer.feed_forward,
        "encoder_layer": transformer.encoder_layer,
    },
}

rng = np.random.default_rng(0)
x3 = rng.normal(size=(2, 3, 4))  # (B, T, d)
q, K, V = rng.normal(size=(2, 2, 4)), rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 5, 3))
mask_rows = np.array([[True, True, False, False, False], [False] * 5])  # a fully masked row
W = {n: rng.normal(size=(4, 4)) for n in ("W_Q", "W_K", "W_V", "W_O")}
b = {n: rng.normal(size=4) for n in ("b_Q", "b_K", "b_V", "b_O")}
additive = {"W_q": rng.normal(size=(4, 6)), "W_k": rng.normal(size=(4, 6)), "v": rng.normal(size=6)}
ffn = {"W_1": rng.normal(size=(4, 8)), "b_1": rng.normal(size=8)}
ffn |= {"W_2": rng.normal(size=(8, 4)), "b_2": rng.normal(size=4)}
norms = {f"{p}_{i}": rng.normal(size=4) for p in ("gamma", "beta") for i in (1, 2)}
layer = W | b | ffn | norms  # the parameters of one encoder layer


def cases(ns):
    """(name, args, kwargs) per function; scores are the notebook's own where one is passed."""
    dot, cosine = ns.get("dot_score", scores.dot_score), ns.get("cosine_score", scores.cosine_score)
    return [
        ("hard_weights", (np.array([[0.4, 0.4, 0.2], [0.0, 0.0, 0.0]]),), {"k": 1}),
        ("hard_weights", (np.array([[0.1, 0.3, 0.3, 0.3]]),), {"k": 2}),
        ("softmax", (np.array([[1000.0, 0.0, -1000.0]]),), {}),
        ("softmax", (x3,), {"axis": 1}),
        ("masked_softmax", (1e4 * q[..., :1] @ K[..., :1].swapaxes(-1, -2), mask_rows), {}),
        ("masked_softmax", (x3, np.array([True, False, True])[:, None]), {"axis": 1}),
        ("dot_score", (q, K), {}),
        ("scaled_dot_score", (q, K), {}),
        ("cosine_score", (q, K), {"eps": 0.5}),
        ("cosine_score", (np.zeros((1, 4)), K[0]), {}),
        ("additive_score", (q, K), additive),
        ("attention", (q, K, V), {"mask": mask_rows[:, None, :]}),
        ("attention", (q, K, V), {"score": dot, "mask": mask_rows[:1]}),
        ("attention", (q[:1], K[:1], V[:1]), {"score": cosine}),
        ("self_attention", (x3,), {}),
        (
            "self_attention",
            (x3,),
            {"mask": np.tril(np.ones((3, 3), bool)), "score": dot},
        ),
        ("projected_self_attention", (x3, W["W_Q"], W["W_K"], W["W_V"][:, :2]), {}),
        (
            "projected_self_attention",
            (x3, W["W_Q"], W["W_K"], W["W_V"]),
            {"mask": np.eye(3, dtype=bool)},
        ),
        ("causal_mask", (4,), {}),
        ("split_heads", (x3, 2), {}),
        ("merge_heads", (rng.normal(size=(2, 2, 3, 2)),), {}),
        ("multi_head_attention", (x3, x3, x3, *W.values(), 2), {}),
        (
            "multi_head_attention",
            (q, K, K, *W.values(), 4),
            {"mask": mask_rows[:, None, None, :], **b},
        ),
        ("sinusoidal_positional_encoding", (6, 5), {"base": 7.0}),
        ("layer_norm", (x3,), {}),
        ("layer_norm", (1e8 + x3, norms["gamma_1"], norms["beta_1"]), {"eps": 0.5}),
        ("layer_norm", (np.full((2, 4), 3.0),), {"beta": norms["beta_2"]}),
        ("feed_forward", (x3, *ffn.values()), {}),
        ("encoder_layer", (x3, layer, 2), {}),
        (
            "encoder_layer",
            (x3, layer, 4),
            {"mask": mask_rows[:1, None, None, :3] | np.eye(3, dtype=bool), "eps": 0.1},
        ),
        ("permutation_equivariance_error", (ns.get("self_attention"), x3, [2, 0, 1]), {}),
        (
            "permutation_equivariance_error",
            (lambda x: x + np.arange(3.0)[:, None], x3, [1, 2, 0]),
            {},
        ),
    ]


def as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def compare(ns: dict, library: dict, where: str) -> set[str]:
    """Run every case of ``library``'s functions on the notebook's and the library's version;
    the library's scores where the notebook passes its own (one function at a time)."""
    checked = set()
    for name, args, kwargs in cases(ns):
        if name not in library:
            continue
        ours, theirs = ns[name], library[name]
        assert (
            inspect.signature(ours).parameters.keys() == inspect.signature(theirs).parameters.keys()
        ), (
            f"{where}: {name} has the signature {inspect.signature(ours)} in the notebook and "
            f"{inspect.signature(theirs)} in attn_course"
        )
        swap = {id(ns.get(n)): f for n, f in library.items() if ns.get(n) is not None}
        lib_args = tuple(swap.get(id(a), a) if callable(a) else a for a in args)
        lib_kwargs = {k: swap.get(id(v), v) if callable(v) else v for k, v in kwargs.items()}
        with np.errstate(over="raise", invalid="raise", divide="raise"):  # 0/0, overflow: drift
            got, want = as_tuple(ours(*args, **kwargs)), as_tuple(theirs(*lib_args, **lib_kwargs))
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(
                np.asarray(g), np.asarray(w), rtol=1e-12, atol=1e-12, err_msg=f"{where}: {name}"
            )
        checked.add(name)
    return checked


@pytest.mark.parametrize("assignment", sorted(LIBRARY))
def test_solution_cells_compute_what_the_library_computes(assignment):
    library = LIBRARY[assignment]
    checked = compare(solution_namespace(assignment), library, assignment)
    assert checked == set(library), f"no case for {sorted(set(library) - checked)}"


def naive_softmax(x, axis=-1):
    return np.exp(x) / np.sum(np.exp(x), axis=axis, keepdims=True)


def nan_masked_softmax(x, mask, axis=-1):
    z = np.where(mask, x, -np.inf)
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))  # 0/0 on a fully masked row
    return e / np.sum(e, axis=axis, keepdims=True)


@pytest.mark.parametrize(
    "name, drifted", [("softmax", naive_softmax), ("masked_softmax", nan_masked_softmax)]
)
def test_the_comparison_catches_a_drifted_solution(name, drifted):
    """The behavioural check has teeth: a softmax without the max shift, and a masked softmax
    that gives NaN on a fully masked row, are told apart from the library's."""
    with pytest.raises((AssertionError, FloatingPointError)):
        compare({name: drifted}, {name: LIBRARY["03_query_key_value"][name]}, "drifted")
