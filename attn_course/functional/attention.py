r"""Attention in three steps: relevance scores, normalisation, weighted sum.

.. math::

    \alpha = \operatorname{softmax}(\rho(q, k_1), \dots, \rho(q, k_{T_k})), \qquad
    \operatorname{Attention}(q, K, V) = \sum_j \alpha_j v_j

Every function returns ``(output, weights)`` so that a chapter can draw the
weights. Inputs may be NumPy arrays or torch tensors (gradients flow).
"""

from attn_course.functional._arrays import (
    array_namespace,
    batch_shape,
    check_feature_dims,
    check_mask,
    check_same_length,
    shape_of,
)
from attn_course.functional.scores import scaled_dot_score
from attn_course.functional.softmax import masked_softmax, softmax

__all__ = ["attention", "hard_attention", "hard_weights"]


def attention(query, keys, values, score=scaled_dot_score, mask=None):
    """Soft attention: every value gets a weight; the output is their average.

    Args:
        query, keys, values: see Shapes.
        score: ``score(query, keys) -> scores``, e.g. ``dot_score``,
            ``cosine_score`` or ``functools.partial(additive_score, **params)``.
            Default: scaled dot.
        mask: optional bool, broadcastable to the weights' shape;
            True = may attend.

    Returns:
        ``(output, weights)``.

    Shapes:
        query: (..., T_q, d_k), or (d_k,) for a single query
        keys: (..., T_k, d_k)
        values: (..., T_k, d_v)
        weights: (..., T_q, T_k), or (..., T_k) for a single query;
            rows sum to 1
        output: (..., T_q, d_v), or (..., d_v) for a single query
    """
    check_same_length(keys, values)
    _check_mask(query, keys, mask)
    scores = score(query, keys)  # (..., T_q, T_k)       relevance
    if mask is None:
        weights = softmax(scores, axis=-1)  # normalisation
    else:
        weights = masked_softmax(scores, mask, axis=-1)
    output = _weighted_sum(weights, values)  # (..., T_q, d_v) weighted sum
    return output, weights


def _check_mask(query, keys, mask) -> None:
    """The mask against the weights' shape, (..., T_q, T_k) or (..., T_k) for one query."""
    if mask is None:
        return
    check_feature_dims(query, keys, what=None)
    if query.ndim == 1:
        check_mask(mask, shape_of(keys)[:-1], "(..., T_k)", query=query, keys=keys)
    else:
        weights = (*batch_shape(query, keys), query.shape[-2], keys.shape[-2])
        check_mask(mask, weights, "(..., T_q, T_k)", query=query, keys=keys)


def _weighted_sum(weights, values):
    """sum_j alpha_j v_j, for one query (..., T_k) or many (..., T_q, T_k)."""
    xp = array_namespace(weights, values)
    if weights.ndim == values.ndim - 1:  # single query: (..., T_k) -> (..., 1, T_k)
        return (xp.expand_dims(weights, axis=-2) @ values)[..., 0, :]
    return weights @ values


def hard_weights(weights, k: int = 1):
    """Hard attention weights: keep the ``k`` largest weights per row, renormalise, zero the rest.

    ``k=1`` is argmax attention: all weight on the single best input. Ties are
    broken towards the earlier position.

    Shapes:
        weights: (..., T_k), rows summing to 1.
        returns: same shape, at most ``k`` non-zero entries per row, summing to 1
            (a row of zeros, i.e. a fully masked row, stays zeros, as in ``attention``).
    """
    T_k = weights.shape[-1]
    if not 1 <= k <= T_k:
        raise ValueError(
            f"k must be between 1 and T_k={T_k}, got k={k} for weights {shape_of(weights)}"
        )
    xp = array_namespace(weights)
    order = xp.argsort(-weights, axis=-1, stable=True)  # best first, ties by position
    rank = xp.argsort(order, axis=-1, stable=True)  # rank of each entry: 0 = best
    kept = xp.where(rank < k, weights, xp.zeros_like(weights))
    total = xp.sum(kept, axis=-1, keepdims=True)
    return kept / xp.where(total > 0, total, 1.0)  # a fully masked row stays all zeros


def hard_attention(query, keys, values, k: int = 1, score=scaled_dot_score, mask=None):
    """Hard attention: soft weights first, then only the top ``k`` inputs survive; the
    values are averaged with the hard weights only.

    Same arguments, shapes and ``(output, weights)`` return as :func:`attention`.
    The selection is not differentiable: to *train* with it, Xu et al. 2015
    sample positions and use a REINFORCE-style estimator.
    """
    check_same_length(keys, values)
    _check_mask(query, keys, mask)
    scores = score(query, keys)  # (..., T_q, T_k)
    soft = softmax(scores, axis=-1) if mask is None else masked_softmax(scores, mask, axis=-1)
    weights = hard_weights(soft, k=k)  # the top k of the soft weights, renormalised
    return _weighted_sum(weights, values), weights
