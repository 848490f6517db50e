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

Everything here is built on :func:`attn_course.functional.attention.attention` and
accepts NumPy arrays or torch tensors (gradients flow), returning the same kind. Heads are
in :mod:`attn_course.functional.heads`, masks in :mod:`attn_course.functional.masks`
(bool, True = may attend), positions in :mod:`attn_course.functional.positions`; the
torch layers with parameters in :mod:`attn_course.nn.self_attention`.
"""

import numpy as np

from attn_course.functional._arrays import (
    array_namespace,
    check_mask,
    check_sequence,
    project,
    shape_of,
)
from attn_course.functional.attention import attention
from attn_course.functional.scores import scaled_dot_score

__all__ = ["permutation_equivariance_error", "projected_self_attention", "self_attention"]


def self_attention(x, mask=None, score=scaled_dot_score):
    r"""Self-attention with Q = K = V = X: every position attends to every one.

    Exactly :func:`attn_course.functional.attention.attention` with the
    sequence passed three times: ``softmax(x x^T / sqrt(d)) x`` for the
    default scaled dot score.

    Args:
        x: the sequence.
        mask: optional bool, broadcastable to (..., T, T); True = may attend
            (e.g. :func:`causal_mask`, or :func:`padding_mask`
            ``[..., None, :]``).
        score: the relevance score, as in ``attention``.

    Returns:
        ``(output, weights)``; row i of ``weights`` says where position i looks.

    Shapes:
        x: (..., T, d)
        weights: (..., T, T), rows sum to 1
        output: (..., T, d)
    """
    check_sequence(x)
    check_mask(mask, (*shape_of(x)[:-1], x.shape[-2]), "(..., T, T)", x=x)
    return attention(x, x, x, score=score, mask=mask)


def projected_self_attention(x, W_Q, W_K, W_V, mask=None):
    r"""Self-attention with projections: Q = X W_Q, K = X W_K, V = X W_V.

    Without projections a token's query, key and value are the same vector, so
    it always scores itself highly (x . x = ||x||^2). The projections let a
    token look for something other than itself and hand over something else.

    Shapes:
        x: (..., T, d_model)
        W_Q, W_K: (d_model, d_k);  W_V: (d_model, d_v)
        mask: bool, broadcastable to (..., T, T); True = may attend
        weights: (..., T, T);  output: (..., T, d_v)
    """
    check_sequence(x)
    if W_Q.shape != W_K.shape:
        raise ValueError(
            "queries and keys are compared by a dot product, so W_Q and W_K "
            "must have the same shape (d_model, d_k): "
            f"W_Q has shape {shape_of(W_Q)}, W_K has shape {shape_of(W_K)}"
        )
    check_mask(mask, (*shape_of(x)[:-1], x.shape[-2]), "(..., T, T)", x=x)
    Q = project(x, W_Q, W_name="W_Q")  # (..., T, d_k)
    K = project(x, W_K, W_name="W_K")  # (..., T, d_k)
    V = project(x, W_V, W_name="W_V")  # (..., T, d_v)
    return attention(Q, K, V, mask=mask)


def permutation_equivariance_error(f, x, perm) -> float:
    """How far ``f`` is from permutation-equivariant on ``x``.

    The error is max |f(x[perm]) - f(x)[perm]|.

    Shuffle the positions of the input, run ``f``; shuffle the output of the
    unshuffled input the same way; compare. Self-attention without positional
    information gives 0 up to rounding (about 1e-15 in float64): it treats the
    input as a *set*. Anything that knows positions gives a clearly larger
    number.

    Args:
        f: maps a sequence (..., T, d) to (..., T, d_out), or to
            ``(output, weights)`` (as the attention functions do), in which
            case the output is compared.
        x: the sequence.
        perm: a permutation of range(T), as a list or integer array.

    Shapes: x (..., T, d); perm (T,).
    """
    check_sequence(x)
    xp = array_namespace(x)
    T = x.shape[-2]
    perm_np = np.asarray(perm)
    if perm_np.shape != (T,) or sorted(perm_np.tolist()) != list(range(T)):
        raise ValueError(
            f"perm must be a permutation of range(T) with T = {T} "
            f"(x has shape {shape_of(x)}), got {perm_np.tolist()}"
        )
    index = xp.asarray(perm_np.astype(np.int64))

    def out(y):
        result = f(y)
        return result[0] if isinstance(result, tuple) else result

    shuffled_then_f = out(xp.take(x, index, axis=x.ndim - 2))  # f(x[perm])
    f_then_shuffled = xp.take(out(x), index, axis=x.ndim - 2)  # f(x)[perm]
    error = xp.max(xp.abs(shuffled_then_f - f_then_shuffled))
    # torch: leave the graph
    return float(error.detach() if hasattr(error, "detach") else error)
