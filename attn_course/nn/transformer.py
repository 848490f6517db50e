r"""The Transformer encoder: self-attention and a feed-forward network, each with a residual
connection and layer norm, stacked on token embeddings plus positions.

- :class:`EncoderLayer`: attention + residual + layer norm, feed-forward + residual + layer norm
- :class:`SelfAttentionEncoder`: token embedding + positions + a stack of encoder layers

Masks are bool, True = may attend (see :mod:`attn_course.functional.masks`).
"""

import torch
from torch import nn

from attn_course.functional.masks import causal_mask
from attn_course.nn.self_attention import MultiHeadAttention, PositionalEncoding

__all__ = ["EncoderLayer", "SelfAttentionEncoder"]


class EncoderLayer(nn.Module):
    """One encoder layer (Vaswani et al. 2017, post-norm):

    x = LayerNorm(x + MultiHead(x, x, x)),  x = LayerNorm(x + FFN(x)),
    FFN(x) = max(0, x W_1 + b_1) W_2 + b_2.

    Shapes: x (B, T, d_model), mask broadcastable to (B, h, T, T) -> (B, T, d_model).
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.attn = MultiHeadAttention(d_model, num_heads)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model))
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    @property
    def weights(self):
        """Attention weights of the last call, (B, h, T, T)."""
        return self.attn.weights

    def forward(self, x, mask=None):
        # (B, T, d_model): every position mixes in the others
        a, _ = self.attn(x, mask=mask)
        x = self.norm1(x + self.dropout(a))
        # (B, T, d_model): position by position
        x = self.norm2(x + self.dropout(self.ff(x)))
        return x


class SelfAttentionEncoder(nn.Module):
    """Token embedding + positional encoding + ``num_layers`` encoder layers.

    Args:
        vocab_size: number of token ids.
        d_model, num_heads, d_ff: sizes (d_model divisible by num_heads).
        num_layers: how many :class:`EncoderLayer` to stack (one or two suffice here).
        max_len: longest sequence the positional encoding covers.
        positions: ``"sinusoidal"``, ``"learned"`` or ``"none"`` (then the encoder
            is permutation-equivariant: it sees a bag of tokens).
        causal: a decoder-style stack: position t attends to positions <= t only.

    Shapes:
        tokens: (B, T) long;  mask: (B, T) bool, True = real token (optional)
        returns: (B, T, d_model);  ``.weights``: one (B, h, T, T) per layer
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 32,
        num_heads: int = 2,
        num_layers: int = 1,
        d_ff: int = 64,
        max_len: int = 512,
        positions: str = "sinusoidal",
        causal: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        if positions not in ("sinusoidal", "learned", "none"):
            raise ValueError(
                f"positions must be 'sinusoidal', 'learned' or 'none', got {positions!r}"
            )
        self.embed = nn.Embedding(vocab_size, d_model)
        self.positions = (
            None
            if positions == "none"
            else PositionalEncoding(d_model, max_len, learned=positions == "learned")
        )
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers)
        )
        self.causal = causal

    @property
    def weights(self):
        """Attention weights of the last call, one (B, h, T, T) tensor per layer."""
        return [layer.weights for layer in self.layers]

    def forward(self, tokens, mask=None):
        B, T = tokens.shape
        x = self.embed(tokens)  # (B, T, d_model), entries ~ N(0, 1)
        if self.positions is not None:
            x = self.positions(x)
        attend = torch.ones(B, 1, T, T, dtype=torch.bool, device=tokens.device)
        if mask is not None:
            attend = attend & mask[:, None, None, :]  # no query looks at padding
        if self.causal:
            attend = attend & torch.as_tensor(causal_mask(T), device=tokens.device)
        for layer in self.layers:
            x = layer(x, mask=attend)  # (B, T, d_model)
        return x
