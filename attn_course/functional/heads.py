r"""Multi-head attention: h attentions side by side on slices of the features, mixed by W_O.

.. math::

    \mathrm{head}_i = \mathrm{Attention}(Q W_Q^{(i)}, K W_K^{(i)}, V W_V^{(i)}), \qquad
    \mathrm{MultiHead}(Q, K, V) = [\mathrm{head}_1; \dots; \mathrm{head}_h] W_O

``split_heads`` and ``merge_heads`` move the heads in and out of a batch axis, so every head
is one call of :func:`attn_course.functional.attention.attention`. NumPy or torch.
"""

from attn_course.functional._arrays import (
    array_namespace,
    batch_shape,
    check_mask,
    check_sequence,
    project,
    shape_of,
)
from attn_course.functional.attention import attention

__all__ = ["merge_heads", "multi_head_attention", "split_heads"]


def split_heads(x, num_heads: int):
    """Cut the feature axis into ``num_heads`` slices; heads become an axis.

    Shapes: x (..., T, num_heads * d_k) -> (..., num_heads, T, d_k)
    """
    check_sequence(x)
    d = x.shape[-1]
    if num_heads < 1 or d % num_heads != 0:
        raise ValueError(
            "the feature size must split evenly into "
            f"num_heads={num_heads} heads: "
            f"x has shape {shape_of(x)} (last axis {d})"
        )
    xp = array_namespace(x)
    *batch, T, _ = shape_of(x)
    d_k = d // num_heads
    x = xp.reshape(x, (*batch, T, num_heads, d_k))  # (..., T, h, d_k)
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
    r"""Multi-head attention (Vaswani et al. 2017): attentions side by side.

    .. math::

        \mathrm{head}_r =
            \mathrm{Attention}(Q W_Q^{(r)}, K W_K^{(r)}, V W_V^{(r)}),
        \qquad
        \mathrm{MultiHead}(Q, K, V) =
            [\mathrm{head}_1; \dots; \mathrm{head}_h] W_O

    Head r uses columns ``r*d_k:(r+1)*d_k`` of W_Q, W_K (and of W_V with d_v),
    which is how ``torch.nn.MultiheadAttention`` slices its weights too: with
    ``W_Q = mha.in_proj_weight[:d].T`` (and so on) the two agree. For
    self-attention pass the same sequence three times.

    Args:
        query, keys, values: the three inputs (the same x for self-attention).
        W_Q, W_K, W_V, W_O: projection matrices, applied as ``x @ W``.
        num_heads: h; the projected sizes must be divisible by it.
        mask: optional bool, broadcastable to (..., h, T_q, T_k);
            True = may attend. A (T_q, T_k) mask is shared by every example
            and head; a padding mask (B, T_k) goes in as
            ``mask[:, None, None, :]``.
        b_Q, b_K, b_V, b_O: optional biases (torch's module has them by
            default).

    Returns:
        ``(output, weights)``, weights per head.

    Shapes:
        query: (..., T_q, d_q);  keys: (..., T_k, d_kin)
        values: (..., T_k, d_vin)
        W_Q: (d_q, h*d_k);  W_K: (d_kin, h*d_k);  W_V: (d_vin, h*d_v)
        W_O: (h*d_v, d_out)
        weights: (..., h, T_q, T_k)
        output: (..., T_q, d_out)
    """
    for name, seq in (("query", query), ("keys", keys), ("values", values)):
        check_sequence(seq, name)
    if W_Q.shape[-1] != W_K.shape[-1]:
        raise ValueError(
            "queries and keys are compared by a dot product, so W_Q and W_K "
            "need the same output size h*d_k: "
            f"W_Q has shape {shape_of(W_Q)}, W_K has shape {shape_of(W_K)}"
        )
    _check_mask(query, keys, num_heads, mask)
    h = num_heads
    Q = project(query, W_Q, b_Q, "query", "W_Q")  # (..., T_q, h*d_k)
    K = project(keys, W_K, b_K, "keys", "W_K")  # (..., T_k, h*d_k)
    V = project(values, W_V, b_V, "values", "W_V")  # (..., T_k, h*d_v)
    Q, K, V = (split_heads(M, h) for M in (Q, K, V))  # each (..., h, T, d_head)
    # (..., h, T_q, d_v), (..., h, T_q, T_k)
    heads, weights = attention(Q, K, V, mask=mask)
    # (..., T_q, d_out)
    output = project(merge_heads(heads), W_O, b_O, "the merged heads", "W_O")
    return output, weights


def _check_mask(query, keys, num_heads: int, mask) -> None:
    """The mask against the weights' shape (..., h, T_q, T_k), in the caller's terms."""
    if mask is None:
        return
    T_q, T_k = query.shape[-2], keys.shape[-2]
    weights = (*batch_shape(query, keys), num_heads, T_q, T_k)
    given = {"query": query, "keys": keys, "num_heads": num_heads}
    check_mask(mask, weights, "(..., h, T_q, T_k)", **given)
