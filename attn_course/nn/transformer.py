r"""The Transformer as torch modules: the layers hold parameters and call
:mod:`attn_course.functional.transformer`, which does the arithmetic.

- :class:`EncoderLayer`: self-attention and a feed-forward network, each a residual step with
  layer norm (post-norm); loads ``torch.nn.TransformerEncoderLayer``'s weights
- :class:`DecoderLayer`: causal self-attention, attention over the encoder, feed-forward
- :class:`SelfAttentionEncoder`: token embedding + positions + a stack of encoder layers
- :class:`TransformerEncoder`, :class:`TransformerDecoder`: the encoder and decoder with the
  interface of :mod:`attn_course.nn.decoders`, so ``Seq2Seq``, ``train`` and
  ``greedy_decode`` work with them as with the RNN models

Masks are bool, True = may attend (see :mod:`attn_course.functional.masks`).
"""

import torch
from torch import nn

from attn_course.functional._arrays import shape_of
from attn_course.functional.masks import causal_mask
from attn_course.functional.transformer import decoder_layer, encoder_layer
from attn_course.nn.self_attention import MultiHeadAttention, PositionalEncoding

__all__ = [
    "DecoderLayer",
    "EncoderLayer",
    "SelfAttentionEncoder",
    "TransformerDecoder",
    "TransformerEncoder",
]


def _attention_params(mha: MultiHeadAttention, prefix: str = "") -> dict:
    return {f"{prefix}{n}": getattr(mha, n) for n in ("W_Q", "W_K", "W_V", "W_O")} | {
        f"{prefix}{n}": getattr(mha, n) for n in ("b_Q", "b_K", "b_V", "b_O")
    }


class _FeedForward(nn.Module):
    """W_1, b_1, W_2, b_2 of the FFN, initialised like two ``nn.Linear`` (applied as x @ W)."""

    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        lin1, lin2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.W_1 = nn.Parameter(lin1.weight.detach().T.clone())  # (d_model, d_ff)
        self.b_1 = nn.Parameter(lin1.bias.detach().clone())
        self.W_2 = nn.Parameter(lin2.weight.detach().T.clone())  # (d_ff, d_model)
        self.b_2 = nn.Parameter(lin2.bias.detach().clone())

    def params(self) -> dict:
        return {"W_1": self.W_1, "b_1": self.b_1, "W_2": self.W_2, "b_2": self.b_2}

    def load_linears(self, lin1: nn.Linear, lin2: nn.Linear) -> None:
        with torch.no_grad():
            self.W_1.copy_(lin1.weight.T)
            self.b_1.copy_(lin1.bias)
            self.W_2.copy_(lin2.weight.T)
            self.b_2.copy_(lin2.bias)


def _check_padding_mask(seq, mask, names=("tokens", "mask"), axes="(B, T)") -> None:
    """A padding mask (True = real token) has the first two axes of the sequence it marks."""
    if mask is not None and shape_of(mask) != shape_of(seq)[:2]:
        raise ValueError(
            f"{names[1]} must be {axes}, the first two axes of {names[0]}: {names[0]} has "
            f"shape {shape_of(seq)}, {names[1]} has shape {shape_of(mask)}"
        )


def _norm_params(d_model: int, n: int) -> nn.ParameterDict:
    """gamma_i = 1, beta_i = 0 for the layer norms 1..n (as ``nn.LayerNorm`` starts)."""
    params = {}
    for i in range(1, n + 1):
        params[f"gamma_{i}"] = nn.Parameter(torch.ones(d_model))
        params[f"beta_{i}"] = nn.Parameter(torch.zeros(d_model))
    return nn.ParameterDict(params)


def _load_norm(norms: nn.ParameterDict, i: int, ln: nn.LayerNorm) -> None:
    with torch.no_grad():
        norms[f"gamma_{i}"].copy_(ln.weight)
        norms[f"beta_{i}"].copy_(ln.bias)


def _from_torch(cls, layer, norms):
    """``cls`` holding a post-norm ReLU torch layer's self-attention, feed-forward and
    layer-norm weights (what encoder and decoder layers share)."""
    if layer.norm_first or layer.activation is not nn.functional.relu:
        raise ValueError("from_torch copies post-norm layers with ReLU (norm_first=False)")
    mha = layer.self_attn
    d_model, d_ff = mha.embed_dim, layer.linear1.out_features
    new = cls(d_model, mha.num_heads, d_ff, eps=layer.norm1.eps).to(mha.in_proj_weight.dtype)
    new.attn = MultiHeadAttention.from_torch(mha)
    new.ff.load_linears(layer.linear1, layer.linear2)
    for i, ln in enumerate(norms, start=1):
        _load_norm(new.norms, i, ln)
    return new


class EncoderLayer(nn.Module):
    """One encoder layer (Vaswani et al. 2017, post-norm):

    x = LayerNorm(x + MultiHead(x, x, x)),  x = LayerNorm(x + FFN(x)),
    FFN(x) = max(0, x W_1 + b_1) W_2 + b_2.

    Given the same weights (:meth:`from_torch`) it computes what
    ``torch.nn.TransformerEncoderLayer(d_model, num_heads, d_ff, dropout=0,
    batch_first=True)`` computes.

    Shapes: x (B, T, d_model), mask broadcastable to (B, h, T, T) -> (B, T, d_model).
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, eps: float = 1e-5):
        super().__init__()
        self.num_heads, self.eps = num_heads, eps
        self.attn = MultiHeadAttention(d_model, num_heads)
        self.ff = _FeedForward(d_model, d_ff)
        self.norms = _norm_params(d_model, 2)
        self.weights = None

    def params(self) -> dict:
        """The layer's parameters under the names of ``functional.transformer.ENCODER_PARAMS``."""
        return _attention_params(self.attn) | self.ff.params() | dict(self.norms)

    def forward(self, x, mask=None):
        p, h = self.params(), self.num_heads
        x, weights = encoder_layer(x, p, h, mask=mask, eps=self.eps)
        self.weights = weights.detach()  # (B, h, T, T), for the heatmaps
        return x

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer) -> "EncoderLayer":
        """A copy of a post-norm ReLU ``nn.TransformerEncoderLayer``'s weights."""
        return _from_torch(cls, layer, (layer.norm1, layer.norm2))


class DecoderLayer(nn.Module):
    """One decoder layer (post-norm): causal self-attention, attention over the encoder's
    states (queries from the target, keys and values from the source), feed-forward; each
    a residual step with layer norm. Given the same weights it computes what
    ``torch.nn.TransformerDecoderLayer(..., dropout=0, batch_first=True)`` computes.

    Shapes: y (B, T, d_model); memory (B, S, d_model); mask broadcastable to (B, h, T, T);
    memory_mask to (B, h, T, S) -> (B, T, d_model).
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, eps: float = 1e-5):
        super().__init__()
        self.num_heads, self.eps = num_heads, eps
        self.attn = MultiHeadAttention(d_model, num_heads)
        self.cross = MultiHeadAttention(d_model, num_heads)
        self.ff = _FeedForward(d_model, d_ff)
        self.norms = _norm_params(d_model, 3)
        self.weights = self.cross_weights = None

    def params(self) -> dict:
        """The parameters under the names of ``functional.transformer.DECODER_PARAMS``."""
        return (
            _attention_params(self.attn)
            | _attention_params(self.cross, "cross_")
            | self.ff.params()
            | dict(self.norms)
        )

    def forward(self, y, memory, mask=None, memory_mask=None):
        y, weights, cross_weights = decoder_layer(
            y, memory, self.params(), self.num_heads, mask, memory_mask, eps=self.eps
        )
        self.weights, self.cross_weights = weights.detach(), cross_weights.detach()
        return y

    @classmethod
    def from_torch(cls, layer: nn.TransformerDecoderLayer) -> "DecoderLayer":
        """A copy of a post-norm ReLU ``nn.TransformerDecoderLayer``'s weights."""
        new = _from_torch(cls, layer, (layer.norm1, layer.norm2, layer.norm3))
        new.cross = MultiHeadAttention.from_torch(layer.multihead_attn)
        return new


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
            EncoderLayer(d_model, num_heads, d_ff) for _ in range(num_layers)
        )
        self.causal = causal

    @property
    def weights(self):
        """Attention weights of the last call, one (B, h, T, T) tensor per layer."""
        return [layer.weights for layer in self.layers]

    def forward(self, tokens, mask=None):
        _check_padding_mask(tokens, mask)
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


class TransformerEncoder(nn.Module):
    """The Transformer's encoder with the course's encoder interface: ``(h, C)``.

    ``h`` are the top layer's states; ``C`` (the mean of h over the real tokens) is only
    there for the interface: the decoder attends to every h_j and never reads C.

    Shapes: src (B, S) long; src_mask (B, S) bool -> h (B, S, d_model), C (B, d_model).
    """

    def __init__(self, vocab_size, d_model=64, num_heads=4, num_layers=2, d_ff=128, max_len=512):
        super().__init__()
        self.d_enc = d_model
        self.stack = SelfAttentionEncoder(
            vocab_size, d_model, num_heads, num_layers, d_ff, max_len, positions="sinusoidal"
        )

    @property
    def weights(self):
        return self.stack.weights

    def forward(self, src, src_mask):
        _check_padding_mask(src, src_mask, ("src", "src_mask"), "(B, S)")
        h = self.stack(src, mask=src_mask)  # (B, S, d_model)
        m = src_mask[..., None].to(h.dtype)  # (B, S, 1)
        C = (h * m).sum(dim=1) / m.sum(dim=1)  # (B, d_model)
        return h, C


class TransformerDecoder(nn.Module):
    """The Transformer's decoder with the course's decoder interface (see
    :mod:`attn_course.nn.decoders`). Its state for greedy decoding is the prefix
    ``[BOS, y_1, ..., y_{t-1}]``: every step re-reads the whole prefix (no key/value cache,
    which would only save time).

    Shapes: tgt_in (B, T) long; h (B, S, d_model); src_mask (B, S) -> logits (B, T, V).
    """

    def __init__(self, vocab_size, d_model=64, num_heads=4, num_layers=2, d_ff=128, max_len=512):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.positions = PositionalEncoding(d_model, max_len)
        self.layers = nn.ModuleList(
            DecoderLayer(d_model, num_heads, d_ff) for _ in range(num_layers)
        )
        self.out = nn.Linear(d_model, vocab_size)

    @property
    def cross_weights(self):
        """Attention over the source of the last call, one (B, h, T, S) per layer."""
        return [layer.cross_weights for layer in self.layers]

    def forward(self, tgt_in, h, C, src_mask):
        _check_padding_mask(h, src_mask, ("h", "src_mask"), "(B, S)")
        B, T = tgt_in.shape
        y = self.positions(self.embed(tgt_in))  # (B, T, d_model)
        mask = torch.as_tensor(causal_mask(T), device=tgt_in.device)  # (T, T)
        memory_mask = src_mask[:, None, None, :]  # (B, 1, 1, S)
        for layer in self.layers:
            y = layer(y, h, mask=mask, memory_mask=memory_mask)  # (B, T, d_model)
        return self.out(y)  # (B, T, V)

    def init_state(self, h, C, src_mask):
        return torch.empty(h.shape[0], 0, dtype=torch.long, device=h.device)  # (B, 0)

    def step(self, y_prev, state, h, C, src_mask):
        prefix = torch.cat([state, y_prev[:, None]], dim=1)  # (B, t)
        return self(prefix, h, C, src_mask)[:, -1], prefix
