r"""Self-attention: a sequence attending to itself.

Encoder-decoder attention links two different sequences: queries come from the
target, keys and values from the source. Self-attention is the special case
Target = Source. In its plainest form the queries, keys and values are the
sequence itself, Q = K = V = X:

.. math::

    \mathrm{SelfAttention}(X) = \mathrm{softmax}\!\left(\frac{X X^\top}{\sqrt{d}}\right) X

With learned projections each position asks, offers and returns different
things: Q = X W_Q, K = X W_K, V = X W_V. Multi-head attention runs ``h`` of these
side by side on slices of size d_k = d_model / h and mixes them with W_O.

Everything here is built on :func:`attn_course.attention.attention` and accepts
NumPy arrays or torch tensors (gradients flow), returning the same kind.
Importing this module does not import torch: the torch *modules* (layers with
parameters, the encoder) live in :mod:`attn_course.self_attention_torch`.

Masks follow :func:`attn_course.softmax.masked_softmax`: bool, **True = may
attend**. ``torch.nn.MultiheadAttention`` uses the opposite convention for its
bool masks (True = *not* allowed), so convert with ``~``:

========================================  ==========================================
torch.nn.MultiheadAttention               here
========================================  ==========================================
``attn_mask`` (T_q, T_k), True = blocked  ``mask = ~attn_mask``
``key_padding_mask`` (B, T_k), True = pad ``mask = ~key_padding_mask[:, None, None, :]``
``is_causal=True``                        ``mask = causal_mask(T)``
========================================  ==========================================
"""

import numpy as np

from attn_course._arrays import array_namespace, shape_of
from attn_course.attention import attention
from attn_course.scores import scaled_dot_score

__all__ = [
    "causal_mask",
    "merge_heads",
    "multi_head_attention",
    "padding_mask",
    "permutation_equivariance_error",
    "projected_self_attention",
    "self_attention",
    "sinusoidal_positional_encoding",
    "split_heads",
]


def _check_sequence(x, name: str = "x") -> None:
    if x.ndim < 2:
        raise ValueError(
            f"{name} must be a sequence of vectors (..., T, d), got shape {shape_of(x)}"
        )


def _project(x, W, b=None, x_name: str = "x", W_name: str = "W"):
    """x W (+ b), the map every projection uses. Shapes: x (..., T, d_in), W (d_in, d_out)."""
    if W.ndim != 2 or x.shape[-1] != W.shape[0]:
        raise ValueError(
            f"{x_name} @ {W_name} needs {W_name} of shape (d_in, d_out) with d_in = the last "
            f"axis of {x_name}: {x_name} has shape {shape_of(x)}, {W_name} has shape {shape_of(W)}"
        )
    if b is None:
        return x @ W
    if b.shape != (W.shape[1],):
        raise ValueError(
            f"the bias of {W_name} must have shape (d_out,) = ({W.shape[1]},): "
            f"{W_name} has shape {shape_of(W)}, its bias has shape {shape_of(b)}"
        )
    return x @ W + b


def self_attention(x, mask=None, score=scaled_dot_score):
    r"""Self-attention with Q = K = V = X: every position attends to every position of x.

    Exactly :func:`attn_course.attention.attention` with the sequence passed three
    times: ``softmax(x x^T / sqrt(d)) x`` for the default scaled dot score.

    Args:
        x: the sequence.
        mask: optional bool, broadcastable to (..., T, T); True = may attend
            (e.g. :func:`causal_mask` or :func:`padding_mask` ``[..., None, :]``).
        score: the relevance score, as in ``attention``.

    Returns:
        ``(output, weights)``; row i of ``weights`` says where position i looks.

    Shapes:
        x: (..., T, d)
        weights: (..., T, T), rows sum to 1
        output: (..., T, d)
    """
    _check_sequence(x)
    return attention(x, x, x, score=score, mask=mask)


def projected_self_attention(x, W_Q, W_K, W_V, mask=None):
    r"""Self-attention with learned projections: Q = X W_Q, K = X W_K, V = X W_V.

    Without projections a token's query, key and value are the same vector, so
    it always scores itself highly (x . x = ||x||^2). The projections let a
    token look for something other than itself and hand over something else.

    Shapes:
        x: (..., T, d_model)
        W_Q, W_K: (d_model, d_k);  W_V: (d_model, d_v)
        mask: bool, broadcastable to (..., T, T); True = may attend
        weights: (..., T, T);  output: (..., T, d_v)
    """
    _check_sequence(x)
    if W_Q.shape != W_K.shape:
        raise ValueError(
            "queries and keys are compared by a dot product, so W_Q and W_K must have the same "
            f"shape (d_model, d_k): W_Q has shape {shape_of(W_Q)}, W_K has shape {shape_of(W_K)}"
        )
    Q = _project(x, W_Q, W_name="W_Q")  # (..., T, d_k)
    K = _project(x, W_K, W_name="W_K")  # (..., T, d_k)
    V = _project(x, W_V, W_name="W_V")  # (..., T, d_v)
    return attention(Q, K, V, mask=mask)


def split_heads(x, num_heads: int):
    """Cut the feature axis into ``num_heads`` slices and make the heads a batch axis.

    Shapes: x (..., T, num_heads * d_k) -> (..., num_heads, T, d_k)
    """
    _check_sequence(x)
    d = x.shape[-1]
    if num_heads < 1 or d % num_heads != 0:
        raise ValueError(
            f"the feature size must split evenly into num_heads={num_heads} heads: "
            f"x has shape {shape_of(x)} (last axis {d})"
        )
    xp = array_namespace(x)
    *batch, T, _ = shape_of(x)
    x = xp.reshape(x, (*batch, T, num_heads, d // num_heads))  # (..., T, h, d_k)
    return xp.moveaxis(x, -2, -3)  # (..., h, T, d_k)


def merge_heads(x):
    """Undo :func:`split_heads`: put the heads' outputs side by side again.

    Shapes: x (..., num_heads, T, d_k) -> (..., T, num_heads * d_k)
    """
    if x.ndim < 3:
        raise ValueError(f"merge_heads needs (..., num_heads, T, d_k), got shape {shape_of(x)}")
    xp = array_namespace(x)
    *batch, h, T, d_k = shape_of(x)
    x = xp.moveaxis(x, -3, -2)  # (..., T, h, d_k)
    return xp.reshape(x, (*batch, T, h * d_k))


def multi_head_attention(
    query,
    keys,
    values,
    W_Q,
    W_K,
    W_V,
    W_O,
    num_heads: int,
    mask=None,
    *,
    b_Q=None,
    b_K=None,
    b_V=None,
    b_O=None,
):
    r"""Multi-head attention (Vaswani et al. 2017): ``num_heads`` attentions side by side.

    .. math::

        \mathrm{head}_i = \mathrm{Attention}(Q W_Q^{(i)}, K W_K^{(i)}, V W_V^{(i)}),
        \qquad
        \mathrm{MultiHead}(Q, K, V) = [\mathrm{head}_1; \dots; \mathrm{head}_h] W_O

    Head i uses columns ``i*d_k:(i+1)*d_k`` of W_Q, W_K (and of W_V with d_v),
    which is how ``torch.nn.MultiheadAttention`` slices its weights too: with
    ``W_Q = mha.in_proj_weight[:d].T`` (and so on) the two agree. For
    self-attention pass the same sequence three times.

    Args:
        query, keys, values: the three inputs (the same x for self-attention).
        W_Q, W_K, W_V, W_O: projection matrices, applied as ``x @ W``.
        num_heads: h; the projected sizes must be divisible by it.
        mask: optional bool, broadcastable to (..., h, T_q, T_k), True = may attend.
            A (T_q, T_k) mask is shared by every example and head; a padding mask
            (B, T_k) goes in as ``mask[:, None, None, :]``.
        b_Q, b_K, b_V, b_O: optional biases (torch's module has them by default).

    Returns:
        ``(output, weights)``, weights per head.

    Shapes:
        query: (..., T_q, d_q);  keys: (..., T_k, d_kin);  values: (..., T_k, d_vin)
        W_Q: (d_q, h*d_k);  W_K: (d_kin, h*d_k);  W_V: (d_vin, h*d_v);  W_O: (h*d_v, d_out)
        weights: (..., h, T_q, T_k)
        output: (..., T_q, d_out)
    """
    for name, seq in (("query", query), ("keys", keys), ("values", values)):
        _check_sequence(seq, name)
    if W_Q.shape[-1] != W_K.shape[-1]:
        raise ValueError(
            "queries and keys are compared by a dot product, so W_Q and W_K need the same output "
            f"size h*d_k: W_Q has shape {shape_of(W_Q)}, W_K has shape {shape_of(W_K)}"
        )
    Q = split_heads(_project(query, W_Q, b_Q, "query", "W_Q"), num_heads)  # (..., h, T_q, d_k)
    K = split_heads(_project(keys, W_K, b_K, "keys", "W_K"), num_heads)  # (..., h, T_k, d_k)
    V = split_heads(_project(values, W_V, b_V, "values", "W_V"), num_heads)  # (..., h, T_k, d_v)
    heads, weights = attention(Q, K, V, mask=mask)  # (..., h, T_q, d_v), (..., h, T_q, T_k)
    output = _project(merge_heads(heads), W_O, b_O, "the merged heads", "W_O")  # (..., T_q, d_out)
    return output, weights


def causal_mask(T: int):
    """The decoder's mask: position i may attend to positions 0..i only, never to the future.

    Returns a NumPy bool array, True = may attend (lower triangle with the
    diagonal). It broadcasts over batches and heads, and torch code can pass
    it as is (or as ``torch.as_tensor(causal_mask(T))``).

    Shapes: returns (T, T).
    """
    if T < 1:
        raise ValueError(f"T must be a positive sequence length, got {T}")
    return np.tril(np.ones((T, T), dtype=bool))


def padding_mask(lengths, T: int):
    """True at the real tokens, False at the padding after each sequence's length.

    For attention, add the query axis: ``mask = padding_mask(lengths, T)[:, None, :]``
    (or ``[:, None, None, :]`` with heads) so no query looks at padding.

    Shapes: lengths (B,) integers -> returns (B, T) bool. Works with NumPy or torch lengths.
    """
    xp = array_namespace(lengths)
    if lengths.ndim != 1:
        raise ValueError(f"lengths must have shape (B,), got shape {shape_of(lengths)}")
    positions = xp.arange(T)  # (T,)
    return positions[None, :] < lengths[:, None]  # (B, T)


def sinusoidal_positional_encoding(T: int, d_model: int, base: float = 10000.0):
    r"""The fixed positional encoding of Vaswani et al. 2017.

    .. math::

        PE_{(pos, 2i)} = \sin\!\left(pos / base^{2i/d_{model}}\right), \qquad
        PE_{(pos, 2i+1)} = \cos\!\left(pos / base^{2i/d_{model}}\right)

    Each pair of columns is a clock turning at its own speed, from one turn
    every 2*pi positions down to one every 2*pi*base positions. Added to the
    token embeddings, it gives every position a distinct signature.

    Returns a NumPy float64 array (use ``torch.as_tensor(pe, dtype=...)`` in torch).

    Shapes: returns (T, d_model).
    """
    if T < 1 or d_model < 1:
        raise ValueError(f"T and d_model must be positive, got T={T}, d_model={d_model}")
    pos = np.arange(T)[:, None]  # (T, 1)
    two_i = np.arange(0, d_model, 2)  # (ceil(d/2),)  the even columns 2i
    angle = pos / base ** (two_i / d_model)  # (T, ceil(d/2))
    pe = np.empty((T, d_model))
    pe[:, 0::2] = np.sin(angle)
    pe[:, 1::2] = np.cos(angle[:, : d_model // 2])  # odd d_model: one sin column more
    return pe


def permutation_equivariance_error(f, x, perm) -> float:
    """How far ``f`` is from being permutation-equivariant on ``x``: max |f(x[perm]) - f(x)[perm]|.

    Shuffle the positions of the input, run ``f``; shuffle the output of the
    unshuffled input the same way; compare. Self-attention without positional
    information gives 0 up to rounding (about 1e-15 in float64): it treats the
    input as a *set*. Anything that knows positions gives a clearly larger number.

    Args:
        f: maps a sequence (..., T, d) to (..., T, d_out), or to ``(output, weights)``
            (as the attention functions do), in which case the output is compared.
        x: the sequence.
        perm: a permutation of range(T), as a list or integer array.

    Shapes: x (..., T, d); perm (T,).
    """
    _check_sequence(x)
    xp = array_namespace(x)
    T = x.shape[-2]
    perm_np = np.asarray(perm)
    if perm_np.shape != (T,) or sorted(perm_np.tolist()) != list(range(T)):
        raise ValueError(
            f"perm must be a permutation of range(T) with T = {T} (x has shape {shape_of(x)}), "
            f"got {perm_np.tolist()}"
        )
    index = xp.asarray(perm_np.astype(np.int64))

    def out(y):
        result = f(y)
        return result[0] if isinstance(result, tuple) else result

    shuffled_then_f = out(xp.take(x, index, axis=x.ndim - 2))  # f(x[perm])
    f_then_shuffled = xp.take(out(x), index, axis=x.ndim - 2)  # f(x)[perm]
    error = xp.max(xp.abs(shuffled_then_f - f_then_shuffled))
    return float(error.detach() if hasattr(error, "detach") else error)  # torch: leave the graph
