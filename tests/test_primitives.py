"""attn_course's attention primitives against independent references: hand-computed small
cases, scipy.special.softmax, torch.softmax, torch.nn.functional.cosine_similarity and
torch.nn.functional.scaled_dot_product_attention."""

import functools
import subprocess
import sys

import numpy as np
import pytest
import scipy.special
import torch
import torch.nn.functional as F

from attn_course.functional.attention import attention, hard_attention, hard_weights
from attn_course.functional.scores import (
    additive_score,
    additive_score_projected,
    cosine_score,
    dot_score,
    init_additive_params,
    scaled_dot_score,
)
from attn_course.functional.softmax import masked_softmax, softmax

rng = np.random.default_rng(1234)


# --- softmax ------------------------------------------------------------------------------


def test_softmax_hand_case():
    # softmax(log 1, log 2, log 3) = (1, 2, 3) / 6
    np.testing.assert_allclose(softmax(np.log([1.0, 2.0, 3.0])), [1 / 6, 2 / 6, 3 / 6])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_matches_scipy_on_large_inputs(axis):
    x = rng.normal(scale=400.0, size=(3, 4, 5))  # exp would overflow without the shift
    np.testing.assert_allclose(softmax(x, axis=axis), scipy.special.softmax(x, axis=axis))


def test_softmax_is_stable_at_plus_and_minus_1000():
    np.testing.assert_array_equal(softmax(np.array([1000.0, 0.0, -1000.0])), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(softmax(np.array([-1000.0, -1000.0])), [0.5, 0.5])


def test_softmax_torch_matches_torch_softmax_and_keeps_type():
    x = torch.randn(4, 7, dtype=torch.float64) * 100
    out = softmax(x, axis=0)
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, torch.softmax(x, dim=0))


# --- masked softmax -----------------------------------------------------------------------


def test_masked_softmax_hand_case():
    e1, e3 = np.exp(1.0), np.exp(3.0)
    got = masked_softmax(np.array([1.0, 2.0, 3.0]), np.array([True, False, True]))
    np.testing.assert_allclose(got, [e1 / (e1 + e3), 0.0, e3 / (e1 + e3)])


def test_masked_softmax_equals_softmax_over_the_kept_entries():
    x = rng.normal(scale=300.0, size=(2, 3, 6))
    lengths = np.array([6, 2])
    mask = (np.arange(6) < lengths[:, None])[:, None, :]  # (B, 1, T_k) broadcasts
    got = masked_softmax(x, mask)
    np.testing.assert_allclose(got[0], scipy.special.softmax(x[0], axis=-1))
    np.testing.assert_allclose(got[1, :, :2], scipy.special.softmax(x[1, :, :2], axis=-1))
    assert (got[1, :, 2:] == 0).all()


def test_fully_masked_row_is_all_zeros_not_nan_numpy_and_torch():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    mask = np.array([[True, True], [False, False]])
    got = masked_softmax(x, mask)
    np.testing.assert_allclose(got[1], [0.0, 0.0])
    np.testing.assert_allclose(got[0], scipy.special.softmax(x[0]))
    xt = torch.tensor(x, requires_grad=True)
    wt = masked_softmax(xt, torch.tensor(mask))
    (wt * torch.arange(2.0)).sum().backward()
    assert torch.isfinite(xt.grad).all(), "gradients through a fully masked row must stay finite"
    assert (wt[1] == 0).all()


def test_masked_softmax_torch_matches_torch_with_minus_inf():
    x = torch.randn(3, 5, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0, 1, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    expected = torch.softmax(x.masked_fill(~mask, float("-inf")), dim=-1)
    torch.testing.assert_close(masked_softmax(x, mask), expected)


def test_mask_that_does_not_broadcast_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 4\)"):
        masked_softmax(np.zeros((2, 4)), np.ones(3, dtype=bool))


# --- scores -------------------------------------------------------------------------------


def test_dot_and_scaled_dot_hand_cases():
    q = np.array([[1.0, 2.0, 2.0, 4.0]])
    K = np.array([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    np.testing.assert_allclose(dot_score(q, K), [[1.0, 9.0]])
    np.testing.assert_allclose(scaled_dot_score(q, K), [[0.5, 4.5]])  # / sqrt(4)
    np.testing.assert_allclose(dot_score(q[0], K), [1.0, 9.0])  # a single query (d,)


def test_dot_scores_batched_non_square_match_einsum():
    Q, K = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4))
    np.testing.assert_allclose(dot_score(Q, K), np.einsum("bqd,bkd->bqk", Q, K))
    np.testing.assert_allclose(scaled_dot_score(Q, K), np.einsum("bqd,bkd->bqk", Q, K) / 2.0)


def test_cosine_hand_case_and_torch_reference():
    q = np.array([[3.0, 4.0]])
    K = np.array([[6.0, 8.0], [4.0, -3.0], [1.0, 0.0]])
    np.testing.assert_allclose(cosine_score(q, K), [[1.0, 0.0, 0.6]], atol=1e-12)
    Q, K = torch.randn(2, 3, 4, dtype=torch.float64), torch.randn(2, 5, 4, dtype=torch.float64)
    expected = F.cosine_similarity(Q[:, :, None, :], K[:, None, :, :], dim=-1)
    torch.testing.assert_close(cosine_score(Q, K), expected)


def test_cosine_of_zero_vector_is_zero():
    assert (cosine_score(np.zeros((1, 3)), np.ones((2, 3))) == 0).all()


def test_additive_score_matches_explicit_loop_with_different_sizes():
    B, T_q, T_k, d_q, d_k, d_a = 2, 3, 5, 4, 6, 7
    Q, K = rng.normal(size=(B, T_q, d_q)), rng.normal(size=(B, T_k, d_k))
    p = init_additive_params(d_q, d_k, d_a, seed=1)
    expected = np.array(
        [
            [[p["v"] @ np.tanh(Q[b, i] @ p["W_q"] + K[b, j] @ p["W_k"]) for j in range(T_k)]
             for i in range(T_q)]
            for b in range(B)
        ]
    )  # fmt: skip
    np.testing.assert_allclose(additive_score(Q, K, **p), expected)
    np.testing.assert_allclose(additive_score(Q[0, 1], K[0], **p), expected[0, 1])
    # the same from the two projections, K W_k computed once for every query
    q_h, k_h = Q @ p["W_q"], K @ p["W_k"]
    np.testing.assert_allclose(additive_score_projected(q_h, k_h, p["v"]), expected)
    np.testing.assert_allclose(additive_score_projected(q_h[0, 1], k_h[0], p["v"]), expected[0, 1])


def test_additive_score_hand_case():
    # W_q = W_k = I, v = (1, 1): rho(q, k) = tanh(q1 + k1) + tanh(q2 + k2)
    got = additive_score(np.array([1.0, 0.0]), np.array([[0.0, 1.0], [1.0, 1.0]]),
                         np.eye(2), np.eye(2), np.ones(2))  # fmt: skip
    np.testing.assert_allclose(got, [2 * np.tanh(1.0), np.tanh(2.0) + np.tanh(1.0)])


def test_score_shape_errors_name_both_shapes():
    with pytest.raises(ValueError, match=r"query has shape \(3, 4\), keys have shape \(5, 8\)"):
        dot_score(np.zeros((3, 4)), np.zeros((5, 8)))
    with pytest.raises(ValueError, match=r"\(2, 4\).*\(2, 5, 4\)"):
        dot_score(np.zeros((2, 4)), np.zeros((2, 5, 4)))  # forgot the T_q axis
    with pytest.raises(ValueError, match=r"\(3, 2, 4\).*\(2, 5, 4\)"):
        scaled_dot_score(np.zeros((3, 2, 4)), np.zeros((2, 5, 4)))  # batch sizes differ
    p = init_additive_params(4, 4, 3)
    with pytest.raises(ValueError, match=r"query \(2, 6\) with W_q \(4, 3\)"):
        additive_score(np.zeros((2, 6)), np.zeros((5, 4)), **p)
    with pytest.raises(ValueError, match=r"q_h \(2, 3\), k_h \(5, 4\), v \(3,\)"):
        additive_score_projected(np.zeros((2, 3)), np.zeros((5, 4)), p["v"])


# --- attention ----------------------------------------------------------------------------


def test_attention_hand_case():
    # a zero query scores 0 with both keys: equal weights, output = mean of the values
    out, w = attention(np.zeros(2), np.eye(2), np.array([[1.0, 0.0], [0.0, 10.0]]))
    np.testing.assert_allclose(w, [0.5, 0.5])
    np.testing.assert_allclose(out, [0.5, 5.0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_attention_matches_scaled_dot_product_attention(dtype):
    B, T_q, T_k, d_k, d_v = 4, 3, 7, 8, 5
    Q, K, V = torch.randn(B, T_q, d_k), torch.randn(B, T_k, d_k), torch.randn(B, T_k, d_v)
    Q, K, V = Q.to(dtype), K.to(dtype), V.to(dtype)
    out, w = attention(Q, K, V)
    assert out.shape == (B, T_q, d_v) and w.shape == (B, T_q, T_k)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(Q, K, V))
    lengths = torch.tensor([7, 1, 4, 6])
    mask = (torch.arange(T_k) < lengths[:, None])[:, None, :]  # (B, 1, T_k), True = real
    out, w = attention(Q, K, V, mask=mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(Q, K, V, attn_mask=mask))
    assert (w.masked_select(~mask.expand_as(w)) == 0).all()


def test_attention_numpy_matches_torch_reference_and_returns_numpy():
    Q, K, V = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 6, 4)), rng.normal(size=(2, 6, 3))
    out, w = attention(Q, K, V)
    assert isinstance(out, np.ndarray) and isinstance(w, np.ndarray)
    expected = F.scaled_dot_product_attention(*(torch.from_numpy(a) for a in (Q, K, V)))
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-10, atol=1e-12)


def test_attention_with_additive_and_cosine_scores():
    Q, K, V = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 6)), rng.normal(size=(2, 5, 2))
    p = init_additive_params(4, 6, 8, seed=3)
    out, w = attention(Q, K, V, score=functools.partial(additive_score, **p))
    np.testing.assert_allclose(w, scipy.special.softmax(additive_score(Q, K, **p), axis=-1))
    np.testing.assert_allclose(out, np.einsum("bqk,bkv->bqv", w, V))
    out, w = attention(Q, Q, V[:, :3], score=cosine_score)
    np.testing.assert_allclose(out, scipy.special.softmax(cosine_score(Q, Q), axis=-1) @ V[:, :3])


def test_attention_gradients_flow_in_torch():
    Q = torch.randn(1, 2, 3, requires_grad=True)
    out, _ = attention(Q, torch.randn(1, 4, 3), torch.randn(1, 4, 3))
    out.sum().backward()
    assert Q.grad is not None and torch.isfinite(Q.grad).all()


def test_attention_rejects_keys_and_values_of_different_length():
    with pytest.raises(
        ValueError, match=r"keys have shape \(2, 5, 4\), values have shape \(2, 6, 4\)"
    ):
        attention(np.zeros((2, 3, 4)), np.zeros((2, 5, 4)), np.zeros((2, 6, 4)))


# --- hard attention -----------------------------------------------------------------------


def test_hard_weights_hand_cases():
    w = np.array([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2]])
    np.testing.assert_array_equal(hard_weights(w, k=1), [[0, 1, 0], [1, 0, 0]])  # tie -> first
    np.testing.assert_allclose(hard_weights(w, k=2), [[0, 0.625, 0.375], [0.5, 0.5, 0]])
    torch.testing.assert_close(
        hard_weights(torch.tensor(w), k=2),
        torch.tensor([[0, 0.625, 0.375], [0.5, 0.5, 0]], dtype=torch.float64),
    )
    with pytest.raises(ValueError, match="k must be between 1 and T_k=3"):
        hard_weights(w, k=4)


def test_hard_attention_argmax_returns_the_best_value():
    q = np.array([0.0, 5.0])
    K = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    V = np.array([[1.0], [2.0], [3.0]])
    out, w = hard_attention(q, K, V, k=1, score=dot_score)
    np.testing.assert_array_equal(w, [0.0, 1.0, 0.0])  # key 2 and key 3 score 5; first wins
    np.testing.assert_array_equal(out, [2.0])


def test_hard_attention_hand_computed_top_2_with_and_without_a_mask():
    # dot scores (2, 1, 0): the top 2 soft weights e^2 : e^1, renormalised to e/(e+1), 1/(e+1)
    e = np.e
    q = np.array([1.0, 0.0])
    K = np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    V = np.array([[10.0, 0.0], [0.0, 10.0], [5.0, 5.0]])
    out, w = hard_attention(q, K, V, k=2, score=dot_score)
    np.testing.assert_allclose(w, [e / (e + 1), 1 / (e + 1), 0.0])
    np.testing.assert_allclose(out, [10 * e / (e + 1), 10 / (e + 1)])
    # key 2 masked: the soft weights e^2 : e^0 over keys 1 and 3, both kept
    out, w = hard_attention(q, K, V, k=2, score=dot_score, mask=np.array([True, False, True]))
    np.testing.assert_allclose(w, [e**2 / (e**2 + 1), 0.0, 1 / (e**2 + 1)])
    np.testing.assert_allclose(out, [(10 * e**2 + 5) / (e**2 + 1), 5 / (e**2 + 1)])
    # torch, two queries, k = 1: query 1 takes key 1 (score 2); query 2 scores every key 0,
    # a tie broken towards key 1
    Q = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)  # (T_q=2, d=2)
    out, w = hard_attention(Q, torch.as_tensor(K), torch.as_tensor(V), k=1, score=dot_score)
    torch.testing.assert_close(w, torch.tensor([[1.0, 0, 0], [1.0, 0, 0]], dtype=torch.float64))
    torch.testing.assert_close(out, torch.tensor([[10.0, 0], [10.0, 0]], dtype=torch.float64))


def test_hard_attention_on_a_fully_masked_row_is_zero_like_soft_attention():
    """A query with nothing to attend to: soft attention returns weights 0 and output 0
    (masked_softmax's promise); hard attention must agree, not divide 0 by 0."""
    q = np.array([[1.0, 0.0], [0.0, 1.0]])  # two queries
    K = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    V = np.array([[1.0], [2.0], [3.0]])
    mask = np.array([[True, True, False], [False, False, False]])  # query 2 sees nothing
    _, soft = attention(q, K, V, score=dot_score, mask=mask)
    out, w = hard_attention(q, K, V, k=2, score=dot_score, mask=mask)
    np.testing.assert_array_equal(soft[1], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(w[1], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(out[1], [0.0])
    np.testing.assert_array_equal(hard_weights(np.zeros((1, 3)), k=1), [[0.0, 0.0, 0.0]])


def test_importing_the_numpy_primitives_does_not_import_torch():
    code = (
        "import sys, attn_course.functional.attention, attn_course.checks; "
        "assert 'torch' not in sys.modules, 'attn_course imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
