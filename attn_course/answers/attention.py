r"""Chapter 2 in NumPy: one step of an attention decoder, piece by piece.

These are the reference versions of the functions the Chapter 2 assignment asks for
(same names and signatures), written out next to their equations:

.. math::

    e_{ij} = v^\top \tanh(s_{i-1} W_q + h_j W_k)            \quad\text{(alignment scores)}

    \alpha_{ij} = \frac{\exp e_{ij}}{\sum_{k\,\text{real}} \exp e_{ik}},
    \ \alpha_{ij} = 0 \text{ on padding}                       \quad\text{(attention weights)}

    C_i = \sum_j \alpha_{ij} h_j                               \quad\text{(context vector)}

    s_i = \tanh(e_{i-1} W_e + s_{i-1} W_s + C_i W_c + b), \quad
    \text{logits}_i = s_i V_s + e_{i-1} V_e + C_i V_c + c      \quad\text{(one decoder step)}

The decoder step is :func:`attn_course.answers.encoder_decoder.cho_step` of Chapter 1 with one
change: the single context C is replaced by C_i, recomputed from s_{i-1} at every
step. Vectors are rows; ``e_{i-1}`` is the embedding of the previous output token.
Hard attention is :func:`attn_course.functional.attention.hard_weights` (NumPy or torch).
The trainable torch version is :class:`attn_course.nn.attention_decoder.AttentionDecoder`
(with a GRU cell instead of the tanh cell).
"""

import numpy as np

__all__ = [
    "alignment_scores",
    "attention_step",
    "attention_weights",
    "context_vector",
    "init_attention_params",
]


def alignment_scores(s_prev, h, W_q, W_k, v):
    """Additive scores of one decoder state against every encoder state.

    e_j = v . tanh(s_prev W_q + h_j W_k) for j = 1..n (Bahdanau et al. 2015).

    Shapes:
        s_prev: (..., d_s);  h: (..., n, d_h)
        W_q: (d_s, d_a);  W_k: (d_h, d_a);  v: (d_a,)
        returns: (..., n)
    """
    q = s_prev @ W_q  # (..., d_a)     the decoder state, projected once
    k = h @ W_k  # (..., n, d_a)  every encoder state, projected
    return np.tanh(q[..., None, :] + k) @ v  # (..., n)


def attention_weights(e, mask):
    """Softmax of the scores over the real positions; padding (mask False) gets exactly 0.

    Shapes:
        e: (..., n);  mask: (..., n) bool, True = real token
        returns: (..., n), summing to 1 over the real positions; a row with no real
            position is all zeros (as :func:`attn_course.functional.softmax.masked_softmax`)
    """
    z = np.where(mask, e, -np.inf)  # padding cannot win: exp(-inf) = 0
    z_max = np.max(z, axis=-1, keepdims=True)  # -inf on a fully masked row
    w = np.exp(z - np.where(np.isfinite(z_max), z_max, 0.0))  # stable: largest exponent 0
    total = np.sum(w, axis=-1, keepdims=True)
    return w / np.where(total > 0, total, 1.0)  # fully masked row: zeros, never 0/0


def context_vector(alpha, h):
    """C_i = sum_j alpha_j h_j: the encoder states averaged with the attention weights.

    Shapes:
        alpha: (..., n);  h: (..., n, d_h)
        returns: (..., d_h)
    """
    return np.sum(alpha[..., :, None] * h, axis=-2)  # (..., d_h)


def attention_step(e, s_prev, h, mask, params):
    """One step of the attention decoder: scores, weights, context, new state, logits.

    Args:
        e: embedding of the previous output token y_{i-1}.
        s_prev: the previous decoder state s_{i-1}.
        h: the encoder states h_1..h_n.
        mask: True on the real source tokens, False on padding.
        params: dict with the score's W_q (d_s, d_a), W_k (d_h, d_a), v (d_a,), the
            state update's W_e (d_e, d_s), W_s (d_s, d_s), W_c (d_h, d_s), b (d_s,) and
            the output layer's V_s (d_s, V), V_e (d_e, V), V_c (d_h, V), c (V,).

    Returns:
        ``(logits, s, alpha)``: scores of the next token, the new state s_i and the
        attention weights alpha_i used for it.

    Shapes:
        e: (..., d_e);  s_prev: (..., d_s);  h: (..., n, d_h);  mask: (..., n)
        logits: (..., V);  s: (..., d_s);  alpha: (..., n)
    """
    p = params
    scores = alignment_scores(s_prev, h, p["W_q"], p["W_k"], p["v"])  # (..., n)
    alpha = attention_weights(scores, mask)  # (..., n)
    C_i = context_vector(alpha, h)  # (..., d_h)  a fresh context for this step
    s = np.tanh(e @ p["W_e"] + s_prev @ p["W_s"] + C_i @ p["W_c"] + p["b"])  # (..., d_s)
    logits = s @ p["V_s"] + e @ p["V_e"] + C_i @ p["V_c"] + p["c"]  # (..., V)
    return logits, s, alpha


def init_attention_params(d_e, d_s, d_h, d_a, V, seed=0):
    """Random parameters for :func:`attention_step` (std 1/sqrt(fan_in), zero biases)."""
    rng = np.random.default_rng(seed)

    def w(*shape):
        return rng.normal(scale=1 / np.sqrt(shape[0]), size=shape)

    return {
        "W_q": w(d_s, d_a),
        "W_k": w(d_h, d_a),
        "v": w(d_a),
        "W_e": w(d_e, d_s),
        "W_s": w(d_s, d_s),
        "W_c": w(d_h, d_s),
        "b": np.zeros(d_s),
        "V_s": w(d_s, V),
        "V_e": w(d_e, V),
        "V_c": w(d_h, V),
        "c": np.zeros(V),
    }
