"""A mask of the wrong shape is refused at the top of the function the caller called, in the
caller's terms: the error names the mask's shape and the shapes the caller passed, never a
shape built inside (the scores of ``masked_softmax``, the heads' axis of a layer)."""

import re

import numpy as np
import pytest
import torch

from attn_course.functional.attention import attention, hard_attention
from attn_course.functional.heads import multi_head_attention
from attn_course.functional.self_attention import projected_self_attention, self_attention
from attn_course.functional.transformer import DECODER_PARAMS, decoder_layer, encoder_layer
from attn_course.nn.transformer import (
    SelfAttentionEncoder,
    TransformerDecoder,
    TransformerEncoder,
)

rng = np.random.default_rng(0)
B, T, S, d, h = 2, 3, 5, 8, 2
q, K, V = rng.normal(size=(B, T, d)), rng.normal(size=(B, S, d)), rng.normal(size=(B, S, 4))
x, memory = rng.normal(size=(B, T, d)), rng.normal(size=(B, S, d))
W = [rng.normal(size=(d, d)) for _ in range(4)]
params = {name: rng.normal(size=(d, d)) for name in DECODER_PARAMS if "W_" in name}
params |= {name: rng.normal(size=d) for name in DECODER_PARAMS if name not in params}
params |= {"W_1": rng.normal(size=(d, 16)), "b_1": rng.normal(size=16)}
params |= {"W_2": rng.normal(size=(16, d))}
padding = np.ones((B, S), dtype=bool)  # (B, S): a padding mask not yet given its query axes


def shapes(*parts):
    """A regex for the shapes, in this order, anywhere in the message."""
    return ".*".join(re.escape(p) for p in parts)


CASES = {
    # a (B, S) padding mask aligns S with T_k but B with T_q: (B, 1, S) was meant
    "attention": (
        lambda: attention(q, K, V, mask=padding),
        shapes(
            "(..., T_q, T_k) = (2, 3, 5)",
            "mask has shape (2, 5)",
            "query has shape (2, 3, 8)",
            "keys have shape (2, 5, 8)",
        ),
    ),
    "attention, one query": (
        lambda: attention(q[0, 0], K[0], V[0], mask=np.ones(4, dtype=bool)),
        shapes(
            "(..., T_k) = (5,)",
            "mask has shape (4,)",
            "query has shape (8,)",
            "keys have shape (5, 8)",
        ),
    ),
    "hard_attention": (
        lambda: hard_attention(q, K, V, k=2, mask=padding),
        shapes(
            "(..., T_q, T_k) = (2, 3, 5)",
            "mask has shape (2, 5)",
            "query has shape (2, 3, 8)",
            "keys have shape (2, 5, 8)",
        ),
    ),
    # a causal mask for T = 4 on a sequence of 3
    "self_attention": (
        lambda: self_attention(x, mask=np.tril(np.ones((4, 4), dtype=bool))),
        shapes("(..., T, T) = (2, 3, 3)", "mask has shape (4, 4)", "x has shape (2, 3, 8)"),
    ),
    "projected_self_attention": (
        lambda: projected_self_attention(x, *W[:3], mask=np.ones((B, T), dtype=bool)),
        shapes("(..., T, T) = (2, 3, 3)", "mask has shape (2, 3)", "x has shape (2, 3, 8)"),
    ),
    # the (B, S) padding mask without its head and query axes, mask[:, None, None, :]
    "multi_head_attention": (
        lambda: multi_head_attention(memory, memory, memory, *W, h, mask=padding),
        shapes(
            "(..., h, T_q, T_k) = (2, 2, 5, 5)",
            "mask has shape (2, 5)",
            "query has shape (2, 5, 8)",
            "keys have shape (2, 5, 8)",
            "num_heads = 2",
        ),
    ),
    "encoder_layer": (
        lambda: encoder_layer(x, params, h, mask=np.ones((B, T), dtype=bool)),
        shapes(
            "(..., h, T, T) = (2, 2, 3, 3)",
            "mask has shape (2, 3)",
            "x has shape (2, 3, 8)",
            "num_heads = 2",
        ),
    ),
    "decoder_layer, mask": (
        lambda: decoder_layer(x, memory, params, h, mask=np.ones((T, S), dtype=bool)),
        shapes(
            "(..., h, T, T) = (2, 2, 3, 3)",
            "mask has shape (3, 5)",
            "y has shape (2, 3, 8)",
            "num_heads = 2",
        ),
    ),
    "decoder_layer, memory_mask": (
        lambda: decoder_layer(x, memory, params, h, memory_mask=padding),
        shapes(
            "(..., h, T, S) = (2, 2, 3, 5)",
            "mask has shape (2, 5)",
            "y has shape (2, 3, 8)",
            "memory has shape (2, 5, 8)",
            "num_heads = 2",
        ),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_wrong_mask_is_named_with_the_callers_shapes(case):
    call, message = CASES[case]
    with pytest.raises(ValueError, match=message) as err:
        call()
    assert "scores" not in str(err.value)  # not masked_softmax's view, deep inside


def test_a_wrong_mask_is_named_with_torch_tensors_too():
    with pytest.raises(ValueError, match=shapes("mask has shape (4, 4)", "x has shape (2, 3, 8)")):
        self_attention(torch.as_tensor(x), mask=torch.ones(4, 4, dtype=torch.bool))


def test_masks_that_broadcast_are_still_accepted():
    causal = np.tril(np.ones((T, T), dtype=bool))
    for mask in (causal, causal[None], causal[None, None], np.ones((B, 1, 1, T), dtype=bool)):
        out, w = encoder_layer(x, params, h, mask=mask)
        assert out.shape == (B, T, d) and w.shape == (B, h, T, T)
    _, w = attention(q, K, V, mask=padding[:, None, :])  # (B, 1, S): every query the same
    np.testing.assert_allclose(w.sum(-1), 1.0)


def test_the_transformer_modules_name_their_padding_masks():
    torch.manual_seed(0)
    tokens = torch.randint(0, 10, (B, S))
    wrong = torch.ones(B, S - 1, dtype=torch.bool)
    with pytest.raises(
        ValueError, match=shapes("(B, T)", "tokens has shape (2, 5)", "mask has shape (2, 4)")
    ):
        SelfAttentionEncoder(10, d_model=8, num_heads=2)(tokens, mask=wrong)
    encoder = TransformerEncoder(10, d_model=8, num_heads=2, num_layers=1, d_ff=16)
    with pytest.raises(
        ValueError, match=shapes("(B, S)", "src has shape (2, 5)", "src_mask has shape (2, 4)")
    ):
        encoder(tokens, wrong)
    h_states, C = encoder(tokens, torch.ones(B, S, dtype=torch.bool))
    decoder = TransformerDecoder(10, d_model=8, num_heads=2, num_layers=1, d_ff=16)
    with pytest.raises(
        ValueError, match=shapes("(B, S)", "h has shape (2, 5, 8)", "src_mask has shape (2, 4)")
    ):
        decoder(tokens[:, :3], h_states, C, wrong)
