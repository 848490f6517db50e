r"""Relevance scores rho(q, k_j): how well a query matches each key.

All functions share one signature, ``score(query, keys) -> scores``:

Shapes:
    query: (..., T_q, d) for a batch of queries, or (d,) for one query.
    keys:  (..., T_k, d).
    returns: (..., T_q, T_k), or (T_k,)/(..., T_k) for one query.

======================  =========================================  =======================
score                   formula                                    used by
======================  =========================================  =======================
``dot_score``           q . k                                      Luong et al. 2015
``scaled_dot_score``    q . k / sqrt(d_k)                          Vaswani et al. 2017
``cosine_score``        q . k / (||q|| ||k||)                      —
``additive_score``      v . tanh(q W_q + k W_k)  (an MLP)          Bahdanau et al. 2015
======================  =========================================  =======================

Each accepts NumPy arrays or torch tensors and returns the same kind.
"""

import math

import numpy as np

from attn_course.functional._arrays import array_namespace, check_feature_dims, shape_of

__all__ = [
    "additive_score",
    "additive_score_projected",
    "cosine_score",
    "dot_score",
    "init_additive_params",
    "scaled_dot_score",
]


def _keys_T(keys):
    """(..., T_k, d) -> (..., d, T_k): so that ``query @ keys_T`` compares every pair."""
    return keys.swapaxes(-1, -2)


def dot_score(query, keys):
    """Dot product q . k_j for every key: large when they point the same way *and* are long.

    Shapes: query (..., T_q, d) or (d,); keys (..., T_k, d) -> (..., T_q, T_k) or (..., T_k).
    """
    check_feature_dims(query, keys)
    return query @ _keys_T(keys)


def scaled_dot_score(query, keys):
    """Dot product divided by sqrt(d_k).

    For q, k with independent unit-variance entries, q . k has variance d_k;
    dividing by sqrt(d_k) brings it back to 1, so the softmax does not
    saturate as the dimension grows.

    Shapes: query (..., T_q, d_k) or (d_k,); keys (..., T_k, d_k)
        -> (..., T_q, T_k) or (..., T_k).
    """
    check_feature_dims(query, keys)
    d_k = keys.shape[-1]
    return (query @ _keys_T(keys)) / math.sqrt(d_k)


def cosine_score(query, keys, eps: float = 1e-8):
    """Cosine similarity q . k_j / (||q|| ||k_j||): the angle only, not lengths.

    Each vector is divided by max(its length, ``eps``), so a zero vector
    scores 0 instead of dividing by zero.

    Shapes: query (..., T_q, d) or (d,); keys (..., T_k, d)
        -> (..., T_q, T_k) or (..., T_k).
    """
    check_feature_dims(query, keys)
    xp = array_namespace(query, keys)
    norm = xp.linalg.vector_norm
    q_norm = norm(query, axis=-1, keepdims=True)  # (..., T_q, 1)
    k_norm = norm(keys, axis=-1, keepdims=True)  # (..., T_k, 1)
    q_hat = query / xp.maximum(q_norm, xp.asarray(eps, dtype=q_norm.dtype))
    k_hat = keys / xp.maximum(k_norm, xp.asarray(eps, dtype=k_norm.dtype))
    return q_hat @ _keys_T(k_hat)


def additive_score(query, keys, W_q, W_k, v):
    """Additive (MLP) score of Bahdanau et al. 2015: v . tanh(q W_q + k_j W_k).

    A one-hidden-layer network of the pair (q, k_j). Unlike the dot scores,
    q and k_j may have different sizes, and it has parameters to learn.

    Shapes:
        query: (..., T_q, d_q) or (d_q,)
        keys: (..., T_k, d_k)
        W_q: (d_q, d_a);  W_k: (d_k, d_a);  v: (d_a,)
        returns: (..., T_q, T_k), or (..., T_k) for a single query.
    """
    check_feature_dims(query, keys, what=None)
    if query.shape[-1] != W_q.shape[0] or keys.shape[-1] != W_k.shape[0]:
        raise ValueError(
            "additive_score needs query @ W_q and keys @ W_k: "
            f"query {shape_of(query)} with W_q {shape_of(W_q)}, "
            f"keys {shape_of(keys)} with W_k {shape_of(W_k)}"
        )
    if W_q.shape[1] != W_k.shape[1] or v.shape != (W_q.shape[1],):
        raise ValueError(
            "W_q, W_k and v must share the hidden size d_a (of the alignment MLP): "
            f"W_q {shape_of(W_q)}, W_k {shape_of(W_k)}, v {shape_of(v)}"
        )
    return additive_score_projected(query @ W_q, keys @ W_k, v)


def additive_score_projected(q_h, k_h, v):
    """:func:`additive_score` from the projections ``q_h = query @ W_q`` and
    ``k_h = keys @ W_k``: v . tanh(q_h + k_h_j).

    ``k_h`` does not depend on the query, so a decoder that scores the same keys at every
    output step computes it once per sequence, as Bahdanau et al. note (appendix A.1.2).

    Shapes: q_h (..., T_q, d_a) or (d_a,); k_h (..., T_k, d_a); v (d_a,)
        -> (..., T_q, T_k), or (..., T_k) for a single query.
    """
    if q_h.shape[-1] != k_h.shape[-1] or tuple(v.shape) != (k_h.shape[-1],):
        raise ValueError(
            "q_h, k_h and v must share the hidden size d_a (of the alignment MLP): "
            f"q_h {shape_of(q_h)}, k_h {shape_of(k_h)}, v {shape_of(v)}"
        )
    xp = array_namespace(q_h, k_h)
    if q_h.ndim > 1:  # pair every query with every key
        q_h = xp.expand_dims(q_h, axis=-2)  # (..., T_q, 1, d_a)
        k_h = xp.expand_dims(k_h, axis=-3)  # (..., 1, T_k, d_a)
    return xp.tanh(q_h + k_h) @ v  # (..., T_q, T_k) or (..., T_k)


def init_additive_params(d_q: int, d_k: int, d_a: int, seed: int = 0):
    """Random parameters for :func:`additive_score` (NumPy, float64, Xavier-like scale).

    Returns ``dict(W_q=(d_q, d_a), W_k=(d_k, d_a), v=(d_a,))``, ready for
    ``functools.partial(additive_score, **params)``.
    """
    rng = np.random.default_rng(seed)
    return {
        "W_q": rng.normal(0.0, 1.0 / math.sqrt(d_q), size=(d_q, d_a)),
        "W_k": rng.normal(0.0, 1.0 / math.sqrt(d_k), size=(d_k, d_a)),
        "v": rng.normal(0.0, 1.0 / math.sqrt(d_a), size=(d_a,)),
    }
