"""The Transformer's layers against independent references: hand-computed cases and PyTorch's
own ``nn.LayerNorm``, ``nn.TransformerEncoderLayer`` and ``nn.TransformerDecoderLayer`` given
the same weights, in float64."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attn_course.data import reversal_task
from attn_course.functional.masks import causal_mask
from attn_course.functional.transformer import (
    DECODER_PARAMS,
    ENCODER_PARAMS,
    decoder_layer,
    encoder_layer,
    feed_forward,
    layer_norm,
    residual,
)
from attn_course.nn.decoders import Seq2Seq, greedy_decode
from attn_course.nn.transformer import (
    DecoderLayer,
    EncoderLayer,
    TransformerDecoder,
    TransformerEncoder,
)
from attn_course.train import evaluate, train

torch.set_num_threads(1)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def torch_layer(cls, d=8, h=2, d_ff=16, seed=0):
    """A torch layer (post-norm, ReLU, no dropout) whose biases and norms are not the defaults."""
    torch.manual_seed(seed)
    layer = cls(d, h, d_ff, dropout=0.0, batch_first=True).double()
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if "bias" in name or "norm" in name:
                p.normal_()
    return layer.eval()


def test_layer_norm_hand_computed():
    # (1, 2, 3): mean 2, variance 2/3 (divided by d = 3), so (-1, 0, 1) / sqrt(2/3)
    x = np.array([[1.0, 2.0, 3.0]])
    s = np.sqrt(2 / 3)
    np.testing.assert_allclose(layer_norm(x, eps=0.0), [[-1 / s, 0.0, 1 / s]])
    out = layer_norm(x, gamma=np.array([1.0, 2.0, 3.0]), beta=np.array([0.5, 0.5, 0.5]), eps=0.0)
    np.testing.assert_allclose(out, [[0.5 - 1 / s, 0.5, 0.5 + 3 / s]])
    # a constant vector has variance 0: eps turns 0 / 0 into 0
    np.testing.assert_array_equal(layer_norm(np.full((2, 4), 7.0)), np.zeros((2, 4)))


@pytest.mark.parametrize("eps", [1e-5, 0.3])
def test_layer_norm_matches_torch(eps):
    x, gamma, beta = randn(4, 5, 6), randn(6, seed=1), randn(6, seed=2)
    x = 1e3 * x + 1e4  # a large offset: subtracting the mean first matters
    ref = F.layer_norm(x, (6,), gamma, beta, eps)
    torch.testing.assert_close(layer_norm(x, gamma, beta, eps), ref, rtol=1e-12, atol=1e-12)
    ours_np = layer_norm(x.numpy(), gamma.numpy(), beta.numpy(), eps)
    np.testing.assert_allclose(ours_np, ref.numpy(), rtol=1e-12, atol=1e-12)


def test_feed_forward_hand_computed_and_residual():
    x = np.array([[1.0, -2.0]])
    W_1, b_1 = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]), np.array([0.0, 0.0, 0.5])
    W_2, b_2 = np.ones((3, 2)), np.array([0.0, 1.0])
    # x W_1 + b_1 = (1, -2, -0.5) -> ReLU (1, 0, 0) -> W_2 (1, 1) + b_2 = (1, 2)
    np.testing.assert_allclose(feed_forward(x, W_1, b_1, W_2, b_2), [[1.0, 2.0]])
    np.testing.assert_allclose(residual(lambda v: 2 * v, x), 3 * x)
    with pytest.raises(ValueError, match=r"\(1, 2\).*\(1, 3\)"):
        residual(lambda v: v @ W_1, x)


def test_feed_forward_matches_torch_linear_relu_linear():
    lin1, lin2 = torch.nn.Linear(6, 10).double(), torch.nn.Linear(10, 6).double()
    x = randn(3, 4, 6)
    ref = lin2(torch.relu(lin1(x)))
    ours = feed_forward(x, lin1.weight.T, lin1.bias, lin2.weight.T, lin2.bias)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("h", [1, 2, 4])
def test_encoder_layer_matches_torch(h):
    ref = torch_layer(torch.nn.TransformerEncoderLayer, d=8, h=h, d_ff=12)
    ours = EncoderLayer.from_torch(ref)
    x = randn(3, 5, 8, seed=3)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-12, atol=1e-12)
    # the same arithmetic on NumPy arrays, through the function the module calls
    params = {k: v.detach().numpy() for k, v in ours.params().items()}
    assert set(params) == set(ENCODER_PARAMS)
    out, weights = encoder_layer(x.numpy(), params, h)
    np.testing.assert_allclose(out, ref(x).detach().numpy(), rtol=1e-12, atol=1e-12)
    assert weights.shape == (3, h, 5, 5)
    np.testing.assert_allclose(weights.sum(-1), 1.0)


def test_encoder_layer_masks_match_torch():
    ref = torch_layer(torch.nn.TransformerEncoderLayer)
    ours = EncoderLayer.from_torch(ref)
    x = randn(3, 5, 8, seed=4)
    real = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.bool)
    got = ours(x, mask=real[:, None, None, :])
    want = ref(x, src_key_padding_mask=~real)
    torch.testing.assert_close(got[real], want[real], rtol=1e-12, atol=1e-12)
    causal = torch.as_tensor(causal_mask(5))
    want = ref(x, src_mask=~causal, is_causal=True)
    torch.testing.assert_close(ours(x, mask=causal), want, rtol=1e-12, atol=1e-12)
    assert (ours.weights[..., ~causal] == 0).all()


def test_decoder_layer_matches_torch():
    ref = torch_layer(torch.nn.TransformerDecoderLayer, d=8, h=2, d_ff=12)
    ours = DecoderLayer.from_torch(ref)
    y, memory = randn(3, 4, 8, seed=5), randn(3, 6, 8, seed=6)
    real = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 5 + [0]], dtype=torch.bool)
    causal = torch.as_tensor(causal_mask(4))
    got = ours(y, memory, mask=causal, memory_mask=real[:, None, None, :])
    want = ref(y, memory, tgt_mask=~causal, memory_key_padding_mask=~real)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert ours.cross_weights.shape == (3, 2, 4, 6)
    assert (ours.cross_weights[1, :, :, 4:] == 0).all()


def test_encoder_layer_returns_torchs_attention_weights_per_head():
    """The weights are those of the layer's first sublayer: torch's ``self_attn`` on x, per
    head (``average_attn_weights=False``), with the padding masked."""
    ref = torch_layer(torch.nn.TransformerEncoderLayer, d=8, h=2, d_ff=12)
    params = {k: v.detach().numpy() for k, v in EncoderLayer.from_torch(ref).params().items()}
    x = randn(3, 5, 8, seed=7)
    real = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.bool)
    with torch.no_grad():
        want = ref(x, src_key_padding_mask=~real)
        _, want_w = ref.self_attn(
            x, x, x, key_padding_mask=~real, need_weights=True, average_attn_weights=False
        )
    out, weights = encoder_layer(x.numpy(), params, 2, mask=real.numpy()[:, None, None, :])
    np.testing.assert_allclose(out[real.numpy()], want[real].numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(weights, want_w.numpy(), rtol=1e-12, atol=1e-12)


def test_decoder_layer_returns_torchs_self_and_cross_attention_weights():
    """The self-attention weights are torch's ``self_attn`` on y (causal); the cross-attention
    weights its ``multihead_attn`` on the first sublayer's output norm1(y + SA(y)) and the
    memory, with the source's padding masked."""
    ref = torch_layer(torch.nn.TransformerDecoderLayer, d=8, h=2, d_ff=12, seed=1)
    params = {k: v.detach().numpy() for k, v in DecoderLayer.from_torch(ref).params().items()}
    assert set(params) == set(DECODER_PARAMS)
    y, memory = randn(3, 4, 8, seed=8), randn(3, 6, 8, seed=9)
    real = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 5 + [0]], dtype=torch.bool)
    causal = torch.as_tensor(causal_mask(4))
    with torch.no_grad():
        want = ref(y, memory, tgt_mask=~causal, memory_key_padding_mask=~real)
        sa, want_self = ref.self_attn(
            y, y, y, attn_mask=~causal, need_weights=True, average_attn_weights=False
        )
        y1 = ref.norm1(y + sa)
        _, want_cross = ref.multihead_attn(
            y1,
            memory,
            memory,
            key_padding_mask=~real,
            need_weights=True,
            average_attn_weights=False,
        )
    out, self_w, cross_w = decoder_layer(
        y.numpy(), memory.numpy(), params, 2, causal.numpy(), real.numpy()[:, None, None, :]
    )
    np.testing.assert_allclose(out, want.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(self_w, want_self.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cross_w, want_cross.numpy(), rtol=1e-12, atol=1e-12)
    assert self_w.shape == (3, 2, 4, 4) and cross_w.shape == (3, 2, 4, 6)


def test_encoder_layer_inputs_unchanged_and_wrong_shapes_named():
    ref = torch_layer(torch.nn.TransformerEncoderLayer)
    params = {
        k: v.detach().numpy().copy() for k, v in EncoderLayer.from_torch(ref).params().items()
    }
    before = {k: v.copy() for k, v in params.items()}
    x = randn(2, 3, 8).numpy()
    x0 = x.copy()
    encoder_layer(x, params, 2)
    np.testing.assert_array_equal(x, x0)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
    with pytest.raises(ValueError, match=r"\(2, 3, 8\).*\(5,\)"):
        encoder_layer(x, params | {"gamma_1": np.ones(5)}, 2)
    with pytest.raises(ValueError, match="missing.*W_1"):
        encoder_layer(x, {k: v for k, v in params.items() if k != "W_1"}, 2)
    with pytest.raises(ValueError, match=r"\(2, 3, 8\).*\(7,\)"):
        layer_norm(x, gamma=np.ones(7))
    with pytest.raises(ValueError, match=r"W_1.*\(2, 3, 8\).*\(5, 16\)"):
        feed_forward(x, np.ones((5, 16)), np.ones(16), np.ones((16, 8)), np.ones(8))
    with pytest.raises(ValueError, match="num_heads=3"):
        encoder_layer(x, params, 3)


def test_from_torch_rejects_pre_norm_and_gelu():
    for kwargs in ({"norm_first": True}, {"activation": "gelu"}):
        layer = torch.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True, **kwargs)
        with pytest.raises(ValueError, match="post-norm"):
            EncoderLayer.from_torch(layer)


def test_gradients_reach_every_parameter():
    layer = EncoderLayer(8, 2, 16).double()
    layer(randn(2, 4, 8)).square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_transformer_seq2seq_greedy_decoding_equals_teacher_forcing_and_learns():
    """Greedy decoding re-reads the prefix: its logits at step t are the teacher-forced ones
    when the prefix is the model's own output; and a short run learns short reversals."""
    task = reversal_task(n_symbols=5)
    V = task.vocab_size
    torch.manual_seed(0)
    model = Seq2Seq(
        TransformerEncoder(V, d_model=32, num_heads=2, num_layers=1, d_ff=64),
        TransformerDecoder(V, d_model=32, num_heads=2, num_layers=1, d_ff=64),
    )
    train(model, task, steps=300, batch_size=32, lengths=(3, 5), lr=3e-3, seed=0, progress=False)
    src = torch.tensor([[3, 4, 5, 6, 7], [4, 4, 3, 0, 0]])
    src_mask = src != 0
    pred = greedy_decode(model, src, src_mask, max_len=6)
    h, C = model.encoder(src, src_mask)
    tgt_in = torch.cat([torch.ones(2, 1, dtype=torch.long), pred[:, :-1].clamp(min=0)], dim=1)
    forced = model.decoder(tgt_in, h, C, src_mask).argmax(-1)
    assert torch.equal(forced[0], pred[0])  # the first row has no early EOS to pad
    scores = evaluate(model, task, lengths=[3, 4, 5], n=100, seed=1)
    assert min(scores.values()) > 0.8, scores
