r"""Softmax: turning scores into a probability distribution.

.. math::  \operatorname{softmax}(x)_j = \frac{e^{x_j}}{\sum_k e^{x_k}}

Both functions accept a NumPy array or a torch tensor and return the same kind.
"""

import math

from attn_course.functional._arrays import array_namespace, shape_of

__all__ = ["masked_softmax", "softmax"]


def softmax(x, axis: int = -1):
    """Numerically stable softmax along ``axis``.

    Subtracting the maximum first changes nothing mathematically (the factor
    ``e^{-max}`` cancels) but keeps every exponent <= 0, so ``exp`` cannot
    overflow: ``softmax([1000, 0])`` is ``[1, 0]``, not ``nan``.

    Shapes:
        x: any shape; the distribution is taken along ``axis``.
        returns: same shape as ``x``, non-negative, summing to 1 along ``axis``.
    """
    xp = array_namespace(x)
    z = x - xp.max(x, axis=axis, keepdims=True)  # largest entry becomes 0
    e = xp.exp(z)
    return e / xp.sum(e, axis=axis, keepdims=True)


def masked_softmax(x, mask, axis: int = -1):
    """Softmax over the entries where ``mask`` is True (e.g. real tokens).

    ``mask`` follows PyTorch's boolean convention: True means "may be attended
    to".
    Masked entries get weight exactly 0. They are set to ``-inf`` *before* the
    softmax; zeroing them afterwards would leave the other weights summing to
    less than 1.

    A row in which every entry is masked has nothing to attend to. It returns
    all zeros (so the attention output for it is the zero vector), never NaN
    and never a silent uniform distribution over padding.

    Shapes:
        x: (..., T_k), scores.
        mask: bool, broadcastable to ``x``.
        returns: same shape as ``x``; each row sums to 1, or to 0 if fully
            masked.
    """
    xp = array_namespace(x)
    try:
        mask = xp.broadcast_to(xp.asarray(mask, dtype=xp.bool), x.shape)
    except (ValueError, RuntimeError) as err:
        raise ValueError(
            "mask must broadcast to the scores' shape: "
            f"mask has shape {shape_of(mask)}, scores have shape {shape_of(x)}"
        ) from err
    z = xp.where(mask, x, -math.inf)
    row_max = xp.max(z, axis=axis, keepdims=True)
    # a fully masked row has max -inf
    row_max = xp.where(xp.isfinite(row_max), row_max, 0.0)
    e = xp.exp(z - row_max)  # exp(-inf) = 0 exactly on masked entries
    total = xp.sum(e, axis=axis, keepdims=True)
    return e / xp.where(total > 0, total, 1.0)  # fully masked row: 0 / 1 = 0
