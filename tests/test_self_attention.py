"""Self-attention, multi-head attention, masks and positions against independent references:
hand-computed small cases and PyTorch's own implementations."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attn_course.experiments.long_range import (
    GRUClassifier,
    SelfAttentionClassifier,
    accuracy,
    accuracy_against_distance,
    crossover_length,
    first_equals_last,
    growth_exponent,
    layer_times,
    multiply_adds,
    train_classifier,
)
from attn_course.functional.heads import merge_heads, multi_head_attention, split_heads
from attn_course.functional.masks import causal_mask, padding_mask
from attn_course.functional.positions import sinusoidal_positional_encoding
from attn_course.functional.self_attention import (
    permutation_equivariance_error,
    projected_self_attention,
    self_attention,
)
from attn_course.nn.self_attention import MultiHeadAttention, PositionalEncoding, SelfAttention
from attn_course.nn.transformer import SelfAttentionEncoder

torch.set_num_threads(1)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def torch_mha(d, h, bias=True, seed=0):
    torch.manual_seed(seed)
    mha = torch.nn.MultiheadAttention(d, h, bias=bias, batch_first=True).double()
    if bias:  # torch initialises the biases to zero; make them matter
        with torch.no_grad():
            mha.in_proj_bias.normal_()
            mha.out_proj.bias.normal_()
    return mha.eval()


def weights_of(mha):
    """Our (x @ W) matrices from torch's stacked (W^T) layout."""
    d = mha.embed_dim
    W = mha.in_proj_weight.detach()
    out = {"W_Q": W[:d].T, "W_K": W[d : 2 * d].T, "W_V": W[2 * d :].T}
    out["W_O"] = mha.out_proj.weight.detach().T
    if mha.in_proj_bias is not None:
        b = mha.in_proj_bias.detach()
        out |= {"b_Q": b[:d], "b_K": b[d : 2 * d], "b_V": b[2 * d :]}
        out["b_O"] = mha.out_proj.bias.detach()
    return out


# --- self-attention with Q = K = V ------------------------------------------------------------


def test_self_attention_hand_computed():
    # x = [[1, 0], [0, 1]]: scores x x^T / sqrt(2) = I / sqrt(2); each row softmax([s, 0])
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    output, weights = self_attention(x)
    a = math.exp(1 / math.sqrt(2)) / (math.exp(1 / math.sqrt(2)) + 1)  # weight on itself
    np.testing.assert_allclose(weights, [[a, 1 - a], [1 - a, a]], rtol=1e-12)
    np.testing.assert_allclose(output, [[a, 1 - a], [1 - a, a]], rtol=1e-12)  # V = x = I


def test_self_attention_matches_torch_sdpa():
    x = randn(3, 7, 5)
    output, weights = self_attention(x)
    expected = F.scaled_dot_product_attention(x, x, x)
    torch.testing.assert_close(output, expected)
    assert weights.shape == (3, 7, 7)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 7, dtype=torch.float64))
    # NumPy in, NumPy out, same numbers
    out_np, _ = self_attention(x.numpy())
    assert isinstance(out_np, np.ndarray)
    np.testing.assert_allclose(out_np, expected.numpy(), rtol=1e-10, atol=1e-12)


def test_self_attention_causal_matches_torch_is_causal():
    x = randn(2, 6, 4)
    output, weights = self_attention(x, mask=causal_mask(6))
    expected = F.scaled_dot_product_attention(x, x, x, is_causal=True)
    torch.testing.assert_close(output, expected)
    above = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)
    assert (weights[:, above] == 0).all()  # exactly zero, not merely small
    torch.testing.assert_close(weights[:, 0, 0], torch.ones(2, dtype=torch.float64))


def test_projected_self_attention_matches_torch_sdpa():
    x = randn(2, 5, 6)
    W_Q, W_K, W_V = randn(6, 4, seed=1), randn(6, 4, seed=2), randn(6, 3, seed=3)
    output, weights = projected_self_attention(x, W_Q, W_K, W_V)
    expected = F.scaled_dot_product_attention(x @ W_Q, x @ W_K, x @ W_V)
    torch.testing.assert_close(output, expected)
    assert output.shape == (2, 5, 3) and weights.shape == (2, 5, 5)


def test_gradients_flow_through_self_attention_module():
    torch.manual_seed(0)
    layer = SelfAttention(d_model=4, d_k=3, d_v=2)
    x = torch.randn(2, 5, 4)
    output, weights = layer(x)
    output.sum().backward()
    assert output.shape == (2, 5, 2)
    assert layer.weights.shape == (2, 5, 5) and not layer.weights.requires_grad
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())


# --- multi-head attention against torch.nn.MultiheadAttention -----------------------------------


def test_split_and_merge_heads_hand_computed():
    x = np.arange(12.0).reshape(1, 2, 6)  # T = 2, d = 6 -> 3 heads of size 2
    heads = split_heads(x, 3)
    assert heads.shape == (1, 3, 2, 2)
    np.testing.assert_array_equal(heads[0, 1], [[2.0, 3.0], [8.0, 9.0]])  # head 1 = columns 2:4
    np.testing.assert_array_equal(merge_heads(heads), x)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("masks", ["none", "padding", "causal", "both"])
def test_multi_head_matches_torch(bias, masks):
    B, T, d, h = 3, 6, 8, 2
    mha = torch_mha(d, h, bias=bias)
    x = randn(B, T, d, seed=4)
    key_padding_mask = torch.tensor([[False] * 6, [False] * 4 + [True] * 2, [False] * 5 + [True]])
    torch_kwargs, mask = {}, None
    if masks in ("padding", "both"):
        torch_kwargs["key_padding_mask"] = key_padding_mask  # torch: True = padding, ignore
        mask = ~key_padding_mask[:, None, None, :]  # ours: True = may attend
    if masks in ("causal", "both"):
        torch_kwargs["attn_mask"] = ~torch.as_tensor(causal_mask(T))  # torch: True = blocked
        causal = torch.as_tensor(causal_mask(T))
        mask = causal if mask is None else mask & causal
    expected, expected_weights = mha(x, x, x, average_attn_weights=False, **torch_kwargs)
    output, weights = multi_head_attention(x, x, x, num_heads=h, mask=mask, **weights_of(mha))
    torch.testing.assert_close(output, expected)
    torch.testing.assert_close(weights, expected_weights)
    # the module holding the same weights, and the NumPy path, agree too
    ours = MultiHeadAttention.from_torch(mha)
    torch.testing.assert_close(ours(x, mask=mask)[0], expected)
    np_weights = {k: v.numpy() for k, v in weights_of(mha).items()}
    np_mask = None if mask is None else mask.numpy()
    out_np, _ = multi_head_attention(
        x.numpy(), x.numpy(), x.numpy(), num_heads=h, mask=np_mask, **np_weights
    )
    np.testing.assert_allclose(out_np, expected.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_multi_head_cross_attention_non_square_matches_torch():
    d, h = 12, 3
    mha = torch_mha(d, h)
    query, memory = randn(2, 3, d, seed=5), randn(2, 7, d, seed=6)  # T_q = 3, T_k = 7
    expected, expected_weights = mha(query, memory, memory, average_attn_weights=False)
    output, weights = multi_head_attention(query, memory, memory, num_heads=h, **weights_of(mha))
    assert weights.shape == (2, 3, 3, 7)
    torch.testing.assert_close(output, expected)
    torch.testing.assert_close(weights, expected_weights)


def test_multi_head_module_trains_and_keeps_weights():
    torch.manual_seed(0)
    layer = MultiHeadAttention(d_model=8, num_heads=4)
    x = torch.randn(2, 5, 8)
    output, _ = layer(x)
    output.square().mean().backward()
    assert layer.weights.shape == (2, 4, 5, 5)
    assert layer.W_Q.grad is not None and layer.b_O.grad is not None


# --- masks --------------------------------------------------------------------------------------


def test_causal_mask_hand_computed():
    expected = [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    np.testing.assert_array_equal(causal_mask(3), np.array(expected, dtype=bool))
    with pytest.raises(ValueError, match="T must be a positive"):
        causal_mask(0)


def test_causal_multi_head_weights_exactly_zero_above_diagonal():
    torch.manual_seed(1)
    layer = MultiHeadAttention(d_model=8, num_heads=2)
    _, weights = layer(torch.randn(2, 9, 8), mask=causal_mask(9))
    above = torch.triu(torch.ones(9, 9, dtype=torch.bool), diagonal=1)
    assert (weights[..., above] == 0).all()
    assert (weights[..., ~above] > 0).all()


def test_padding_mask_numpy_and_torch():
    np.testing.assert_array_equal(
        padding_mask(np.array([3, 1]), 4), [[True, True, True, False], [True, False, False, False]]
    )
    mask = padding_mask(torch.tensor([2, 4]), 4)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[True, True, False, False], [True, True, True, True]]


def test_padding_gets_zero_weight_and_does_not_change_real_outputs():
    x = randn(1, 5, 4, seed=7)
    mask = padding_mask(torch.tensor([3]), 5)[:, None, :]  # (B, 1, T_k)
    output, weights = self_attention(x, mask=mask)
    assert (weights[..., 3:] == 0).all()
    short, _ = self_attention(x[:, :3])  # the same sequence without its padding
    torch.testing.assert_close(output[:, :3], short)


# --- positions and permutation equivariance -----------------------------------------------------


def test_sinusoidal_encoding_hand_computed():
    pe = sinusoidal_positional_encoding(T=4, d_model=4)
    # position 0: sin(0) = 0 and cos(0) = 1 in every pair
    np.testing.assert_allclose(pe[0], [0, 1, 0, 1], atol=1e-15)
    # columns 0, 1 turn at frequency 1; columns 2, 3 at 1 / 10000^(2/4) = 1/100
    np.testing.assert_allclose(pe[1], [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)])
    np.testing.assert_allclose(pe[3, 2:], [math.sin(0.03), math.cos(0.03)])
    odd = sinusoidal_positional_encoding(T=3, d_model=5)  # the last column is a sine
    assert odd.shape == (3, 5)
    np.testing.assert_allclose(odd[2, 4], math.sin(2 / 10000 ** (4 / 5)))
    np.testing.assert_allclose(odd[2, 3], math.cos(2 / 10000 ** (2 / 5)))


def test_positional_encoding_module():
    x = torch.zeros(2, 5, 6)
    fixed = PositionalEncoding(6, max_len=8)
    expected = torch.as_tensor(sinusoidal_positional_encoding(5, 6), dtype=torch.float32)
    torch.testing.assert_close(fixed(x)[1], expected)
    assert list(fixed.parameters()) == []
    learned = PositionalEncoding(6, max_len=8, learned=True)
    assert sum(p.numel() for p in learned.parameters()) == 8 * 6
    with pytest.raises(ValueError, match=r"T=9 .*max_len=8"):
        fixed(torch.zeros(1, 9, 6))


PERM = [4, 0, 6, 2, 1, 5, 3]


def test_permutation_equivariance_hand_example():
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert permutation_equivariance_error(lambda y: 2 * y, x, [2, 0, 1]) == 0.0
    # a function that knows positions: add the index to each row
    position_aware = lambda y: y + np.arange(3)[:, None]  # noqa: E731
    assert permutation_equivariance_error(position_aware, x, [2, 0, 1]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="permutation of range"):
        permutation_equivariance_error(self_attention, x, [0, 0, 1])


def test_self_attention_is_equivariant_without_positions_and_not_with_them():
    x = randn(7, 8, seed=8).numpy()
    pe = sinusoidal_positional_encoding(7, 8)
    assert permutation_equivariance_error(self_attention, x, PERM) < 1e-12
    with_positions = permutation_equivariance_error(lambda y: self_attention(y + pe), x, PERM)
    assert with_positions > 1e-2
    # compare by hand for one case too: outputs follow the shuffle
    out, _ = self_attention(x)
    out_shuffled, _ = self_attention(x[PERM])
    np.testing.assert_allclose(out_shuffled, out[PERM], atol=1e-12)


def test_multi_head_and_encoder_equivariance():
    mha = torch_mha(8, 2)
    x = randn(2, 7, 8, seed=9)
    err = permutation_equivariance_error(lambda y: mha(y, y, y)[0], x, PERM)
    assert err < 1e-12
    torch.manual_seed(0)
    tokens = torch.randint(0, 10, (2, 7))
    for positions, bound in (("none", 1e-5), ("sinusoidal", None), ("learned", None)):
        encoder = SelfAttentionEncoder(10, d_model=16, num_layers=2, positions=positions).eval()
        with torch.no_grad():
            embedded = encoder.embed(tokens)

            def rest(e, encoder=encoder):  # the encoder from the embeddings on
                if encoder.positions is not None:
                    e = encoder.positions(e)
                for layer in encoder.layers:
                    e = layer(e)
                return e

            err = permutation_equivariance_error(rest, embedded, PERM)
        if bound is None:
            assert err > 1e-2, positions
        else:
            assert err < bound, positions


# --- the encoder --------------------------------------------------------------------------------


def test_encoder_shapes_masks_and_weights():
    torch.manual_seed(0)
    encoder = SelfAttentionEncoder(11, d_model=16, num_heads=4, num_layers=2, causal=True)
    tokens = torch.randint(0, 11, (3, 6))
    mask = padding_mask(torch.tensor([6, 4, 2]), 6)
    h = encoder(tokens, mask=mask)
    assert h.shape == (3, 6, 16)
    assert len(encoder.weights) == 2 and encoder.weights[0].shape == (3, 4, 6, 6)
    w = encoder.weights[1]
    above = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)
    assert (w[..., above] == 0).all()
    assert (w[1, :, :, 4:] == 0).all() and (w[2, :, :, 2:] == 0).all()


# --- errors name both shapes --------------------------------------------------------------------


def test_wrong_shapes_raise_value_error_naming_both():
    x = np.ones((5, 4))
    with pytest.raises(ValueError, match=r"\(5, 4\).*\(3, 2\)"):
        projected_self_attention(x, np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"W_Q has shape \(4, 2\), W_K has shape \(4, 3\)"):
        projected_self_attention(x, np.ones((4, 2)), np.ones((4, 3)), np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        self_attention(np.ones(4))
    with pytest.raises(ValueError, match=r"num_heads=3.*\(5, 4\)"):
        split_heads(x, 3)
    W = np.ones((4, 4))
    with pytest.raises(ValueError, match=r"\(5, 6\).*\(4, 4\)"):
        multi_head_attention(np.ones((5, 6)), x, x, W, W, W, W, num_heads=2)
    with pytest.raises(ValueError, match=r"W_O has shape \(3, 4\)"):
        multi_head_attention(x, x, x, W, W, W, np.ones((3, 4)), num_heads=2)
    with pytest.raises(ValueError, match=r"W_Q has shape \(4, 4\), its bias has shape \(3,\)"):
        multi_head_attention(x, x, x, W, W, W, W, num_heads=2, b_Q=np.ones(3))


def test_importing_numpy_part_does_not_import_torch():
    code = "import sys, attn_course.functional.self_attention; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- the long-range task and the cost measurement -----------------------------------------------


def test_first_equals_last_labels():
    tokens, labels = first_equals_last(2000, T=9, vocab_size=5, rng=0)
    assert tokens.shape == (2000, 9) and labels.shape == (2000,)
    assert torch.equal(labels, (tokens[:, 0] == tokens[:, -1]).long())
    assert 0.45 < labels.float().mean() < 0.55
    assert int(tokens.min()) >= 0 and int(tokens.max()) < 5


def test_self_attention_classifier_learns_short_task():
    torch.manual_seed(0)
    model = SelfAttentionClassifier(vocab_size=8, max_len=5)
    losses = train_classifier(model, T=5, steps=200, seed=0)
    assert np.mean(losses[-20:]) < np.mean(losses[:20])
    tokens, labels = first_equals_last(1000, 5, rng=123)
    assert accuracy(model, tokens, labels) > 0.9


def test_layer_times_and_growth_exponent():
    times = layer_times([8, 16], d_model=8, repeats=2)
    assert times["n"] == [8, 16]
    assert all(t > 0 for t in times["self-attention"] + times["GRU"])
    n = np.array([100, 200, 400, 800])
    assert growth_exponent(n, 3e-9 * n**2) == pytest.approx(2.0)
    assert growth_exponent(n, 5e-7 * n) == pytest.approx(1.0)


def test_accuracy_against_distance_structure():
    models = {
        "attn": lambda T: SelfAttentionClassifier(8, max_len=T),
        "gru": lambda T: GRUClassifier(8),
    }
    results = accuracy_against_distance(models, [3, 4], steps=2, n_test=50)
    assert set(results) == {"accuracy", "seconds", "models"}
    assert all(len(results[key][name]) == 2 for key in results for name in models)
    assert all(0.0 <= a <= 1.0 for a in results["accuracy"]["attn"])
    assert isinstance(results["models"]["gru"][1], GRUClassifier)


def test_multiply_adds_hand_computed_and_crossover():
    # n = 2, d = 3: attention 4*2*9 + 2*4*3 = 72 + 24 = 96; GRU 6*2*9 = 108
    assert multiply_adds(2, 3) == {"self-attention": 96, "GRU": 108}
    for d in (16, 64):  # equal exactly at n = d, attention cheaper below
        ops = multiply_adds(d, d)
        assert ops["self-attention"] == ops["GRU"]
        smaller = multiply_adds(d - 1, d)
        assert smaller["self-attention"] < smaller["GRU"]
    # times 2 ms vs 1 ms at n = 1000: attention ~ n^2 reaches the RNN ~ n at n = 500
    assert crossover_length([10, 1000], [1e-5, 2e-3], [1e-5, 1e-3]) == pytest.approx(500.0)


def test_encoder_reads_chapter_1_batches():
    # the Chapter 1 tasks: padded (B, S) token ids and a (B, S) mask, True = real token
    from attn_course.data import make_batch, reversal_task

    task = reversal_task()
    batch = make_batch(task, batch_size=4, lengths=(3, 7), rng=np.random.default_rng(0))
    torch.manual_seed(0)
    encoder = SelfAttentionEncoder(task.vocab_size, d_model=16, num_heads=2).eval()
    h = encoder(batch.src, mask=batch.src_mask)
    B, S = batch.src.shape
    assert h.shape == (B, S, 16)
    w = encoder.weights[0]  # (B, h, S, S)
    assert (w.masked_select(~batch.src_mask[:, None, None, :].expand_as(w)) == 0).all()
    # padding does not change the states of the real tokens
    b = int(batch.src_mask.sum(1).argmin())  # the shortest sequence
    n = int(batch.src_mask[b].sum())
    alone = encoder(batch.src[b : b + 1, :n])
    torch.testing.assert_close(h[b : b + 1, :n], alone)
