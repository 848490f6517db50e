r"""Chapter 1 in NumPy: a tanh RNN encoder, one step of each fixed-context decoder, and how
strongly each input position influences the context C.

These are the reference versions of the functions the Chapter 1 assignment asks for
(same names and signatures), small enough to read next to their equations:

.. math::

    h_t = \tanh(x_t W_x + h_{t-1} W_h + b), \qquad C = h_n

    \text{Cho:}\quad s_t = \tanh(e_{t-1} W_e + s_{t-1} W_s + C W_c + b), \quad
    \text{logits}_t = s_t V_s + e_{t-1} V_e + C V_c + c

    \text{Sutskever:}\quad s_t = \tanh(e_{t-1} W_e + s_{t-1} W_s + b), \quad
    \text{logits}_t = s_t V_s + e_{t-1} V_e + c

Vectors are rows (``x @ W``), as in NumPy code; ``e_{t-1}`` is the embedding of the
previous output token y_{t-1}. The torch modules of :mod:`attn_course.nn.encoders` and
:mod:`attn_course.nn.decoders` are the trainable versions of the same equations.
"""

import numpy as np

__all__ = [
    "cho_step",
    "init_decoder_params",
    "init_rnn_params",
    "position_influence",
    "rnn_forward",
    "sutskever_step",
]


def rnn_forward(x, W_x, W_h, b, h0=None):
    """Run a tanh RNN over a sequence: all states and the context C = h_n.

    Args:
        x: the inputs x_1..x_n.
        W_x, W_h, b: input weights, recurrent weights and bias.
        h0: initial state; zeros when None.

    Returns:
        ``(h, C)``: every state h_1..h_n, and the last one.

    Shapes:
        x: (..., n, d_x);  W_x: (d_x, d_h);  W_h: (d_h, d_h);  b: (d_h,)
        h0: (..., d_h);  h: (..., n, d_h);  C: (..., d_h)
    """
    x = np.asarray(x)
    n, d_x = x.shape[-2:]
    d_h = W_x.shape[1]
    if W_x.shape[0] != d_x or W_h.shape != (d_h, d_h):
        raise ValueError(
            "expected x (..., n, d_x), W_x (d_x, d_h), W_h (d_h, d_h): "
            f"got x {x.shape}, W_x {W_x.shape}, W_h {W_h.shape}"
        )
    h_t = np.zeros((*x.shape[:-2], d_h)) if h0 is None else h0  # (..., d_h)
    states = []
    # one step per input: the encoder cannot run in parallel over t
    for t in range(n):
        h_t = np.tanh(x[..., t, :] @ W_x + h_t @ W_h + b)
        states.append(h_t)
    h = np.stack(states, axis=-2)  # (..., n, d_h)
    return h, h[..., -1, :]


def cho_step(e, s_prev, C, params):
    """One decoder step of Cho et al. (2014): C enters the state and the output.

    Args:
        e: embedding of the previous output token y_{t-1}.
        s_prev: the previous decoder state s_{t-1}.
        C: the context vector from the encoder (the same at every step).
        params: dict with W_e (d_e, d_s), W_s (d_s, d_s), W_c (d_c, d_s),
            b (d_s,), V_s (d_s, V), V_e (d_e, V), V_c (d_c, V), c (V,).

    Returns:
        ``(logits, s)``: scores of the next token, p(y_t) = softmax(logits),
        and s_t.

    Shapes:
        e: (..., d_e);  s_prev: (..., d_s);  C: (..., d_c)
        logits: (..., V);  s: (..., d_s)
    """
    p = params
    s = np.tanh(e @ p["W_e"] + s_prev @ p["W_s"] + C @ p["W_c"] + p["b"])
    logits = s @ p["V_s"] + e @ p["V_e"] + C @ p["V_c"] + p["c"]  # (..., V)
    return logits, s


def sutskever_step(e, s_prev, params):
    """One decoder step of Sutskever et al. (2014): C was only s_0.

    Args:
        e: embedding of the previous output token y_{t-1}.
        s_prev: the previous decoder state s_{t-1} (s_0 = C).
        params: dict with W_e (d_e, d_s), W_s (d_s, d_s), b (d_s,),
            V_s (d_s, V), V_e (d_e, V), c (V,).

    Returns:
        ``(logits, s)``.

    Shapes:
        e: (..., d_e);  s_prev: (..., d_s);  logits: (..., V);  s: (..., d_s)
    """
    p = params
    s = np.tanh(e @ p["W_e"] + s_prev @ p["W_s"] + p["b"])  # (..., d_s)
    logits = s @ p["V_s"] + e @ p["V_e"] + p["c"]  # (..., V)
    return logits, s


def position_influence(encode, x, eps=1e-5):
    r"""How strongly each input position influences the context, \|dC/dx_j\|.

    The derivative is measured by central finite differences, one input
    coordinate at a time, so ``encode`` can be any function (no autograd):

    .. math::

        \frac{\partial C}{\partial x_{jl}} \approx
        \frac{C(x + \varepsilon e_{jl}) - C(x - \varepsilon e_{jl})}
             {2\varepsilon},
        \qquad
        \text{influence}_j = \Big\| \frac{\partial C}{\partial x_j} \Big\|_F

    Args:
        encode: ``encode(x) -> C``,
            e.g. ``lambda x: rnn_forward(x, W_x, W_h, b)[1]``.
        x: one input sequence.
        eps: finite-difference step.

    Shapes:
        x: (n, d_x);  encode(x): (d_c,);  returns: (n,)
    """
    x = np.asarray(x, dtype=np.float64)
    n, d_x = x.shape
    influence = np.zeros(n)
    for j in range(n):
        J_j = []  # columns dC/dx_jl, l = 1..d_x
        for l in range(d_x):
            step = np.zeros_like(x)
            step[j, l] = eps
            J_j.append((encode(x + step) - encode(x - step)) / (2 * eps))
        # Frobenius norm of the (d_c, d_x) Jacobian
        influence[j] = np.sqrt(np.sum(np.square(J_j)))
    return influence


def init_rnn_params(d_x, d_h, seed=0, scale=1.0):
    """Random tanh-RNN weights ``(W_x, W_h, b)`` with entries of std ``scale / sqrt(fan_in)``."""
    rng = np.random.default_rng(seed)
    W_x = rng.normal(scale=scale / np.sqrt(d_x), size=(d_x, d_h))
    W_h = rng.normal(scale=scale / np.sqrt(d_h), size=(d_h, d_h))
    return W_x, W_h, np.zeros(d_h)


def init_decoder_params(d_e, d_s, d_c, V, seed=0, design="cho"):
    """Random parameters for :func:`cho_step` (``design="cho"``) or :func:`sutskever_step`."""
    if design not in ("cho", "sutskever"):
        raise ValueError(f"design must be 'cho' or 'sutskever', got {design!r}")
    rng = np.random.default_rng(seed)

    def w(rows, cols):
        return rng.normal(scale=1 / np.sqrt(rows), size=(rows, cols))

    params = {"W_e": w(d_e, d_s), "W_s": w(d_s, d_s), "b": np.zeros(d_s)}
    params |= {"V_s": w(d_s, V), "V_e": w(d_e, V), "c": np.zeros(V)}
    if design == "cho":
        params |= {"W_c": w(d_c, d_s), "V_c": w(d_c, V)}
    return params
