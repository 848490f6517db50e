r"""Self-attention layers with parameters (torch modules).

The arithmetic lives in :mod:`attn_course.functional` (NumPy or torch, no
torch import); the modules here only hold the learned matrices and call it,
so there is one code path. Every attending module keeps the weights of its
last call in ``.weights`` (detached) so a chapter can draw them.

- :class:`SelfAttention`: one head, Q = X W_Q, K = X W_K, V = X W_V
- :class:`MultiHeadAttention`: h heads and W_O; loads ``torch.nn.MultiheadAttention``'s weights
- :class:`PositionalEncoding`: sinusoidal (fixed) or learned, added to the embeddings

Masks are bool, True = may attend (the opposite of torch's bool masks in
``nn.MultiheadAttention``; see :mod:`attn_course.functional.masks`).
"""

import torch
from torch import nn

from attn_course.functional._arrays import shape_of
from attn_course.functional.heads import multi_head_attention
from attn_course.functional.positions import sinusoidal_positional_encoding
from attn_course.functional.self_attention import projected_self_attention

__all__ = ["MultiHeadAttention", "PositionalEncoding", "SelfAttention"]


def _xavier(n_in: int, n_out: int) -> nn.Parameter:
    """A (n_in, n_out) matrix used as ``x @ W``, Xavier-uniform like torch's own layers."""
    W = torch.empty(n_in, n_out)
    nn.init.xavier_uniform_(W)
    return nn.Parameter(W)


class SelfAttention(nn.Module):
    """Single-head self-attention with learned projections (no biases, as in the equation).

    Shapes:
        x: (B, T, d_model);  mask: bool, broadcastable to (B, T, T), True = may attend
        output: (B, T, d_v);  weights: (B, T, T)
    """

    def __init__(self, d_model: int, d_k: int | None = None, d_v: int | None = None):
        super().__init__()
        d_k = d_model if d_k is None else d_k
        d_v = d_model if d_v is None else d_v
        self.W_Q = _xavier(d_model, d_k)
        self.W_K = _xavier(d_model, d_k)
        self.W_V = _xavier(d_model, d_v)
        self.weights = None

    def forward(self, x, mask=None):
        output, weights = projected_self_attention(x, self.W_Q, self.W_K, self.W_V, mask=mask)
        self.weights = weights.detach()
        return output, weights


class MultiHeadAttention(nn.Module):
    """Multi-head attention: ``num_heads`` heads of size d_model / num_heads, then W_O.

    Given the same weights it computes what ``torch.nn.MultiheadAttention(d_model,
    num_heads, batch_first=True)`` computes; :meth:`from_torch` copies them over.

    Shapes:
        query: (B, T_q, d_model);  keys, values: (B, T_k, d_model) (default: the query)
        mask: bool, broadcastable to (B, h, T_q, T_k), True = may attend
        output: (B, T_q, d_model);  weights: (B, h, T_q, T_k)
    """

    def __init__(self, d_model: int, num_heads: int, bias: bool = True):
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError(
                f"d_model={d_model} must split evenly into num_heads={num_heads} heads"
            )
        self.num_heads = num_heads
        self.W_Q, self.W_K, self.W_V, self.W_O = (_xavier(d_model, d_model) for _ in range(4))
        for name in ("b_Q", "b_K", "b_V", "b_O"):
            self.register_parameter(name, nn.Parameter(torch.zeros(d_model)) if bias else None)
        self.weights = None

    def forward(self, query, keys=None, values=None, mask=None):
        keys = query if keys is None else keys
        values = keys if values is None else values
        output, weights = multi_head_attention(
            query,
            keys,
            values,
            self.W_Q,
            self.W_K,
            self.W_V,
            self.W_O,
            self.num_heads,
            mask=mask,
            b_Q=self.b_Q,
            b_K=self.b_K,
            b_V=self.b_V,
            b_O=self.b_O,
        )
        self.weights = weights.detach()
        return output, weights

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> "MultiHeadAttention":
        """A copy of ``mha``'s weights (torch stores W^T, stacked as [W_Q; W_K; W_V])."""
        if mha.in_proj_weight is None:
            raise ValueError("from_torch needs kdim == vdim == embed_dim (one in_proj_weight)")
        d = mha.embed_dim
        has_bias = mha.in_proj_bias is not None
        new = cls(d, mha.num_heads, bias=has_bias).to(mha.in_proj_weight.dtype)
        with torch.no_grad():
            W = mha.in_proj_weight  # (3d, d): rows [W_Q^T; W_K^T; W_V^T]
            new.W_Q.copy_(W[:d].T)
            new.W_K.copy_(W[d : 2 * d].T)
            new.W_V.copy_(W[2 * d :].T)
            new.W_O.copy_(mha.out_proj.weight.T)
            if has_bias:
                b = mha.in_proj_bias
                new.b_Q.copy_(b[:d])
                new.b_K.copy_(b[d : 2 * d])
                new.b_V.copy_(b[2 * d :])
                new.b_O.copy_(mha.out_proj.bias)
        return new


class PositionalEncoding(nn.Module):
    """Adds position information to token embeddings: x_t + p_t.

    ``learned=False``: the fixed sinusoids of Vaswani et al. 2017 (no parameters,
    defined for any position up to ``max_len``). ``learned=True``: one trained
    vector per position (as in BERT/GPT), which knows only the lengths it was
    trained on.

    Shapes: x (B, T, d_model) with T <= max_len -> (B, T, d_model).
    """

    def __init__(self, d_model: int, max_len: int = 512, learned: bool = False):
        super().__init__()
        self.learned = learned
        if learned:
            self.pe = nn.Parameter(0.02 * torch.randn(max_len, d_model))
        else:
            pe = torch.as_tensor(sinusoidal_positional_encoding(max_len, d_model))
            self.register_buffer("pe", pe.float(), persistent=False)

    def forward(self, x):
        T, max_len = x.shape[-2], self.pe.shape[0]
        if T > max_len:
            raise ValueError(
                f"sequence of length T={T} is longer than max_len={max_len}: x has shape "
                f"{shape_of(x)}, the encoding table has shape {shape_of(self.pe)}"
            )
        return x + self.pe[:T].to(x.dtype)  # (B, T, d_model)
