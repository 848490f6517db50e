"""The attention decoder: weights, contexts and hard attention against hand computations."""

import math

import numpy as np
import pytest
import torch

from attn_course.nn.attention_decoder import AttentionDecoder, make_score

SCORES = ["additive", "dot", "scaled_dot", "cosine"]


def random_inputs(B=3, S=5, d_enc=6, lengths=(5, 3, 1), seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(B, S, d_enc, generator=g)
    C = torch.randn(B, d_enc, generator=g)
    src_mask = torch.arange(S)[None, :] < torch.tensor(lengths)[:, None]  # (B, S)
    return h, C, src_mask


@pytest.mark.parametrize("score", SCORES)
def test_weights_sum_to_one_and_are_zero_on_padding(score):
    torch.manual_seed(0)
    V, d_enc, d_dec = 7, 6, 4  # d_dec != d_enc: the dot scores need their projection
    decoder = AttentionDecoder(V, 3, d_dec, d_enc, score=score)
    h, C, src_mask = random_inputs(d_enc=d_enc)
    tgt_in = torch.randint(0, V, (3, 4))
    logits = decoder(tgt_in, h, C, src_mask)
    alpha = decoder.last_alpha
    assert logits.shape == (3, 4, V)
    assert alpha.shape == (3, 4, 5)  # (B, T, S)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(3, 4))
    pad = ~src_mask[:, None, :].expand_as(alpha)
    assert torch.all(alpha[pad] == 0.0)
    assert torch.all(alpha[~pad] > 0.0)  # soft attention: every real input gets some weight
    # a one-token input leaves nothing to choose: all weight on it
    torch.testing.assert_close(alpha[2, :, 0], torch.ones(4))


def test_worked_example_by_hand():
    """Three encoder states, one decoder state, dot score: alpha and C_i computed by hand."""
    decoder = AttentionDecoder(
        5, d_emb=3, d_hidden=2, d_context=2, score="dot"
    )  # equal sizes: no projection
    h = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # (1, 3, 2)
    s_prev = torch.tensor([[math.log(4.0), math.log(3.0) - math.log(4.0)]])  # (1, 2)
    # scores s.h_j = [ln 4, ln 3 - ln 4, ln 3]  ->  exp = [4, 3/4, 3]  ->  / 7.75
    C_i, alpha = decoder.attend(s_prev, h, torch.ones(1, 3, dtype=torch.bool))
    expected_alpha = torch.tensor([[4.0, 0.75, 3.0]]) / 7.75
    torch.testing.assert_close(alpha, expected_alpha)
    # C_i = alpha_1 (1, 0) + alpha_2 (0, 1) + alpha_3 (1, 1)
    torch.testing.assert_close(C_i, torch.tensor([[7.0, 3.75]]) / 7.75)


def test_additive_context_matches_a_loop_over_positions():
    """C_i from the module equals sum_j alpha_ij h_j with e_ij = v.tanh(W_q^T s + W_k^T h_j)."""
    torch.manual_seed(1)
    decoder = AttentionDecoder(7, 3, 4, 6, score="additive", d_a=5).double()
    h, C, src_mask = random_inputs(d_enc=6)
    h = h.double()
    s_prev = torch.randn(3, 4, dtype=torch.float64)
    C_i, alpha = decoder.attend(s_prev, h, src_mask)
    W_q, W_k, v = (p.detach() for p in (decoder.score.W_q, decoder.score.W_k, decoder.score.v))
    for b in range(3):
        valid = [j for j in range(5) if src_mask[b, j]]
        e = {j: float(v @ torch.tanh(s_prev[b] @ W_q + h[b, j] @ W_k)) for j in valid}
        Z = sum(math.exp(x) for x in e.values())
        a = [math.exp(e[j]) / Z if j in e else 0.0 for j in range(5)]
        c = sum(a[j] * h[b, j] for j in valid)
        torch.testing.assert_close(alpha[b].detach(), torch.tensor(a, dtype=torch.float64))
        torch.testing.assert_close(C_i[b].detach(), c)


def gru_cell_by_hand(x, s, cell):
    """s' = (1 - z) * n + z * s with PyTorch's gate order (r, z, n): the GRU of Cho et al."""
    W_ir, W_iz, W_in = cell.weight_ih.chunk(3)
    W_hr, W_hz, W_hn = cell.weight_hh.chunk(3)
    b_ir, b_iz, b_in = cell.bias_ih.chunk(3)
    b_hr, b_hz, b_hn = cell.bias_hh.chunk(3)
    r = torch.sigmoid(x @ W_ir.T + b_ir + s @ W_hr.T + b_hr)
    z = torch.sigmoid(x @ W_iz.T + b_iz + s @ W_hz.T + b_hz)
    n = torch.tanh(x @ W_in.T + b_in + r * (s @ W_hn.T + b_hn))
    return (1 - z) * n + z * s


def test_teacher_forced_forward_against_the_equations_written_out():
    """The whole forward pass, recomputed from the chapter's equations with torch's own
    softmax and a GRU written out by hand: s_0 = tanh(W_0 C), e_ij = v.tanh(s W_q + h_j W_k),
    alpha_i = softmax over the real tokens, C_i = sum_j alpha_ij h_j, s_i = GRU([e(y); C_i],
    s_{i-1}), logits_i = W_o [s_i; C_i; e(y)] + b_o."""
    torch.manual_seed(2)
    decoder = AttentionDecoder(7, 3, 4, 6, score="additive", d_a=5).double()
    h, C, src_mask = random_inputs(d_enc=6)
    h, C = h.double(), C.double()
    tgt_in = torch.randint(0, 7, (3, 4))
    with torch.no_grad():
        logits = decoder(tgt_in, h, C, src_mask)
        W_q, W_k, v = decoder.score.W_q, decoder.score.W_k, decoder.score.v
        s = torch.tanh(C @ decoder.init.weight.T + decoder.init.bias)  # (B, d_s)
        for i in range(tgt_in.shape[1]):
            e_y = decoder.embedding.weight[tgt_in[:, i]]  # (B, d_emb)
            scores = torch.tanh((s @ W_q)[:, None, :] + h @ W_k) @ v  # (B, S)
            alpha = torch.softmax(scores.masked_fill(~src_mask, -torch.inf), dim=-1)
            C_i = torch.einsum("bs,bsd->bd", alpha, h)  # (B, d_enc)
            s = gru_cell_by_hand(torch.cat([e_y, C_i], dim=-1), s, decoder.cell)
            expected = torch.cat([s, C_i, e_y], dim=-1) @ decoder.out.weight.T + decoder.out.bias
            torch.testing.assert_close(logits[:, i], expected, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(decoder.last_alpha[:, i], alpha, rtol=1e-12, atol=1e-12)


def test_keys_projected_once_give_the_same_values_and_gradients():
    """init_state computes h W_k once for the additive score; a step given another tensor h
    (equal values, another object) projects it again, so the two paths can be compared:
    the same logits, and the same gradients for every parameter and for h."""
    torch.manual_seed(3)
    decoder = AttentionDecoder(7, 3, 4, 6, score="additive", d_a=5).double()
    h, C, src_mask = random_inputs(d_enc=6)
    tgt_in = torch.randint(0, 7, (3, 4))
    results = []
    for same_h in (True, False):
        decoder.zero_grad()
        h_in = h.double().requires_grad_()
        s = decoder.init_state(h_in, C.double(), src_mask)
        logits = []
        for i in range(tgt_in.shape[1]):
            h_step = h_in if same_h else h_in * 1.0  # equal values, another tensor
            logits_i, s = decoder.step(tgt_in[:, i], s, h_step, C.double(), src_mask)
            logits.append(logits_i)
        logits = torch.stack(logits, dim=1)
        (logits**2).sum().backward()
        results.append((logits.detach(), h_in.grad, [p.grad.clone() for p in decoder.parameters()]))
    (a, h_a, grads_a), (b, h_b, grads_b) = results
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_a, h_b, rtol=1e-12, atol=1e-12)
    for x, y in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [1, 2])
def test_hard_attention_keeps_the_top_k_of_the_soft_weights(k):
    torch.manual_seed(3)
    decoder = AttentionDecoder(7, 3, 4, 6)
    h, C, src_mask = random_inputs(d_enc=6, lengths=(5, 3, 2))
    s_prev = torch.randn(3, 4)
    _, soft = decoder.attend(s_prev, h, src_mask)
    with decoder.hard(k=k):
        C_hard, hard = decoder.attend(s_prev, h, src_mask)
    assert decoder.hard_k is None  # restored after the block
    top = soft.topk(k, dim=-1)
    expected = torch.zeros_like(soft).scatter(-1, top.indices, top.values)
    expected = expected / expected.sum(-1, keepdim=True)
    torch.testing.assert_close(hard, expected)
    torch.testing.assert_close(C_hard, torch.einsum("bs,bsd->bd", expected, h))
    if k == 1:  # argmax attention copies one encoder state
        torch.testing.assert_close(C_hard, h[torch.arange(3), soft.argmax(-1)])


def test_gradients_reach_the_score_parameters():
    torch.manual_seed(4)
    decoder = AttentionDecoder(7, 3, 4, 6, score="additive")
    h, C, src_mask = random_inputs(d_enc=6)
    h.requires_grad_(True)
    decoder(torch.randint(0, 7, (3, 4)), h, C, src_mask).sum().backward()
    for p in (decoder.score.W_q, decoder.score.W_k, decoder.score.v, h):
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert torch.all(h.grad[~src_mask] == 0)  # padding contributes nothing


def test_bad_input_is_named():
    decoder = AttentionDecoder(7, 3, 4, 6)
    h, C, src_mask = random_inputs(d_enc=6)
    with pytest.raises(ValueError, match=r"src_mask \(3, 4\)"):
        decoder(torch.zeros(3, 2, dtype=torch.long), h, C, src_mask[:, :4])
    with pytest.raises(ValueError, match="unknown score 'bilinear'"):
        make_score("bilinear", 4, 6)


# --- the NumPy references of the assignment ---------------------------------------------------


def test_numpy_alignment_weights_and_context_against_torch():
    from attn_course.answers.attention import alignment_scores, attention_weights, context_vector

    rng = np.random.default_rng(5)
    B, n, d_s, d_h, d_a = 2, 5, 3, 4, 6
    s_prev, h = rng.normal(size=(B, d_s)), rng.normal(size=(B, n, d_h))
    W_q, W_k, v = rng.normal(size=(d_s, d_a)), rng.normal(size=(d_h, d_a)), rng.normal(size=d_a)
    mask = np.arange(n)[None, :] < np.array([[5], [2]])  # (B, n)

    e = alignment_scores(s_prev, h, W_q, W_k, v)
    t = torch.from_numpy
    e_ref = torch.tanh((t(s_prev) @ t(W_q))[:, None, :] + t(h) @ t(W_k)) @ t(v)
    np.testing.assert_allclose(e, e_ref.numpy(), rtol=1e-12)
    assert alignment_scores(s_prev[0], h[0], W_q, W_k, v).shape == (n,)  # one unbatched state

    alpha = attention_weights(100 * e, mask)  # large scores: must stay finite
    alpha_ref = torch.softmax(t(100 * e).masked_fill(~t(mask), -torch.inf), dim=-1)
    np.testing.assert_allclose(alpha, alpha_ref.numpy(), atol=1e-12)
    assert np.all(alpha[1, 2:] == 0.0)

    C = context_vector(alpha, h)
    np.testing.assert_allclose(C, torch.einsum("bn,bnd->bd", t(alpha), t(h)).numpy())


def test_numpy_attention_step_by_hand():
    """Identity-like weights small enough to follow on paper."""
    from attn_course.answers.attention import attention_step

    h = np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])  # third state is padding
    mask = np.array([True, True, False])
    zeros = np.zeros((2, 2))
    params = {
        "W_q": zeros, "W_k": np.eye(2), "v": np.array([np.log(3.0), 0.0]),  # scores tanh(h_j1) ln 3
        "W_e": zeros, "W_s": zeros, "W_c": np.eye(2), "b": np.zeros(2),  # s = tanh(C_i)
        "V_s": np.eye(2), "V_e": zeros, "V_c": zeros, "c": np.zeros(2),  # logits = s
    }  # fmt: skip
    logits, s, alpha = attention_step(np.zeros(2), np.zeros(2), h, mask, params)
    a = np.exp(np.tanh(1.0) * np.log(3.0))  # weight ratio of h_1 to h_2
    np.testing.assert_allclose(alpha, [a / (a + 1), 1 / (a + 1), 0.0])
    np.testing.assert_allclose(s, np.tanh([a / (a + 1), 1 / (a + 1)]))
    np.testing.assert_allclose(logits, s)


def test_numpy_attention_step_is_chos_step_with_a_fresh_context():
    """Given the context C_i it computed, the attention step is exactly Chapter 1's cho_step."""
    from attn_course.answers.attention import attention_step, init_attention_params
    from attn_course.answers.encoder_decoder import cho_step

    rng = np.random.default_rng(6)
    B, n, d_e, d_s, d_h = 3, 4, 2, 5, 6
    params = init_attention_params(d_e, d_s, d_h, d_a=7, V=9, seed=1)
    e, s_prev, h = (
        rng.normal(size=(B, d_e)),
        rng.normal(size=(B, d_s)),
        rng.normal(size=(B, n, d_h)),
    )
    mask = np.ones((B, n), dtype=bool)
    logits, s, alpha = attention_step(e, s_prev, h, mask, params)
    C_i = np.einsum("bn,bnd->bd", alpha, h)
    logits_cho, s_cho = cho_step(e, s_prev, C_i, params)
    np.testing.assert_allclose(logits, logits_cho)
    np.testing.assert_allclose(s, s_cho)


# --- training: the point of the chapter, in miniature ------------------------------------------


def test_short_training_attention_beats_both_fixed_context_models_on_long_inputs():
    """Same encoder, width, batches and steps: only the attention decoder reverses long inputs.

    A few seconds on one thread (the chapter runs the full-size version).
    """
    from attn_course.data import reversal_task
    from attn_course.nn.decoders import ChoDecoder, Seq2Seq, SutskeverDecoder
    from attn_course.nn.encoders import Encoder
    from attn_course.train import evaluate, token_accuracy, train

    task = reversal_task()
    V = task.vocab_size
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        exact, tokens = {}, {}
        for name, Decoder in [
            ("sutskever", SutskeverDecoder),
            ("cho", ChoDecoder),
            ("attention", AttentionDecoder),
        ]:
            torch.manual_seed(0)
            encoder = Encoder(V, 16, 32, bidirectional=True)
            model = Seq2Seq(encoder, Decoder(V, 16, 32, encoder.d_enc))
            train(model, task, steps=300, batch_size=32, lengths=(2, 12), progress=False)
            exact[name] = evaluate(model, task, [12], n=200, seed=1)[12]
            tokens[name] = evaluate(model, task, [12], n=200, seed=1, metric=token_accuracy)[12]
    finally:
        torch.set_num_threads(threads)
    assert exact["attention"] >= 0.5, exact
    assert exact["cho"] <= 0.2 and exact["sutskever"] <= 0.2, exact
    assert tokens["attention"] >= max(tokens["cho"], tokens["sutskever"]) + 0.3, tokens
