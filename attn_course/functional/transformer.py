r"""The Transformer's layers (Vaswani et al. 2017), as functions of NumPy arrays or torch tensors.

Self-attention plus three pieces make a layer:

.. math::

    \mathrm{LayerNorm}(x) = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta,
    \qquad
    \mathrm{FFN}(x) = \max(0,\, x W_1 + b_1)\, W_2 + b_2,

    \text{a sublayer with its residual connection:}\quad
    x \mapsto \mathrm{LayerNorm}(x + \mathrm{Sublayer}(x))

(post-norm, as in the paper and in ``torch.nn.TransformerEncoderLayer`` by default).

- :func:`layer_norm`, :func:`feed_forward`, :func:`residual`
- :func:`encoder_layer`: multi-head self-attention, then the FFN, each as a residual step
- :func:`decoder_layer`: masked self-attention, attention over the encoder's states, the FFN

The layers write each residual step as the paper does, ``x = LN(x + Sublayer(x))``, with
the sum spelled out rather than through :func:`residual`, so that the attention's weights
come back beside its output.

The attention is :func:`attn_course.functional.heads.multi_head_attention`; nothing is
re-implemented here. The parameters of a layer travel as one mapping whose keys are the
paper's names (see :data:`ENCODER_PARAMS`).
"""

from collections.abc import Callable, Mapping

from attn_course.functional._arrays import (
    array_namespace,
    batch_shape,
    check_mask,
    check_sequence,
    project,
    shape_of,
)
from attn_course.functional.heads import multi_head_attention

__all__ = [
    "DECODER_PARAMS",
    "ENCODER_PARAMS",
    "decoder_layer",
    "encoder_layer",
    "feed_forward",
    "layer_norm",
    "residual",
]

#: The parameters of one encoder layer: attention (W_*, b_*), the two layer norms
#: (gamma_1, beta_1 after attention; gamma_2, beta_2 after the FFN) and the FFN (W_1, b_1,
#: W_2, b_2). Matrices are applied as ``x @ W``.
ENCODER_PARAMS = (
    *("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O"),
    *("gamma_1", "beta_1"),
    *("W_1", "b_1", "W_2", "b_2"),
    *("gamma_2", "beta_2"),
)

#: A decoder layer has a second attention (over the encoder's states, the ``cross_`` keys)
#: and so a third layer norm (gamma_3, beta_3, after the FFN).
DECODER_PARAMS = (
    *("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O"),
    *("gamma_1", "beta_1"),
    *("cross_W_Q", "cross_W_K", "cross_W_V", "cross_W_O"),
    *("cross_b_Q", "cross_b_K", "cross_b_V", "cross_b_O"),
    *("gamma_2", "beta_2"),
    *("W_1", "b_1", "W_2", "b_2"),
    *("gamma_3", "beta_3"),
)


def layer_norm(x, gamma=None, beta=None, eps: float = 1e-5):
    r"""Layer normalisation (Ba et al. 2016): every vector to mean 0 and
    variance 1, then a learned scale and shift.

    .. math::

        \mu = \frac{1}{d} \sum_k x_k, \quad
        \sigma^2 = \frac{1}{d} \sum_k (x_k - \mu)^2, \quad
        \mathrm{LayerNorm}(x) =
        \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta

    The statistics are per position (over the last axis only), so unlike
    batch norm it does not mix examples or positions. The variance divides
    by d (not d - 1), as in torch.

    Args:
        x: vectors to normalise.
        gamma, beta: scale and shift (default: ones and zeros).
        eps: added to the variance, so a constant vector gives 0, not 0 / 0.

    Shapes: x (..., d); gamma, beta (d,) -> (..., d).
    """
    d = x.shape[-1]
    for name, p in (("gamma", gamma), ("beta", beta)):
        if p is not None and shape_of(p) != (d,):
            raise ValueError(
                f"{name} must have shape (d,) with d = the last axis of x: "
                f"x has shape {shape_of(x)}, {name} has shape {shape_of(p)}"
            )
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    xp = array_namespace(x)
    mu = xp.mean(x, axis=-1, keepdims=True)  # (..., 1)
    var = xp.mean((x - mu) ** 2, axis=-1, keepdims=True)  # (..., 1), over d
    x_hat = (x - mu) / xp.sqrt(var + eps)  # (..., d)
    if gamma is not None:
        x_hat = gamma * x_hat
    if beta is not None:
        x_hat = x_hat + beta
    return x_hat


def feed_forward(x, W_1, b_1, W_2, b_2):
    r"""The position-wise feed-forward network: the same two-layer ReLU net
    at every position.

    .. math:: \mathrm{FFN}(x) = \max(0,\, x W_1 + b_1)\, W_2 + b_2

    Attention only mixes positions (a weighted average of values); this is
    where each position's vector is transformed non-linearly, with d_ff
    (usually 4 d_model) hidden units.

    Shapes:
        x: (..., T, d_model);  W_1: (d_model, d_ff);  b_1: (d_ff,)
        W_2: (d_ff, d_model);  b_2: (d_model,)
        returns: (..., T, d_model)
    """
    xp = array_namespace(x)
    a = project(x, W_1, b_1, "x", "W_1")  # (..., T, d_ff)
    a = xp.where(a > 0, a, xp.zeros_like(a))  # ReLU
    return project(a, W_2, b_2, "the hidden layer", "W_2")  # (..., T, d_model)


def residual(sublayer: Callable, x):
    r"""A residual connection (He et al. 2016): the sublayer adds to x
    instead of replacing it.

    .. math:: x + \mathrm{Sublayer}(x)

    The identity path carries x (and, backwards, the gradient) through any
    depth unchanged.

    Shapes: x (..., d); ``sublayer(x)`` (..., d) -> (..., d).
    """
    fx = sublayer(x)
    if shape_of(fx) != shape_of(x):
        raise ValueError(
            "a residual connection adds the sublayer's output to its input, "
            f"so the shapes must match: x has shape {shape_of(x)}, "
            f"sublayer(x) has shape {shape_of(fx)}"
        )
    return x + fx


def _check_params(params: Mapping, names, x, what: str) -> None:
    missing = [name for name in names if name not in params]
    if missing:
        raise ValueError(f"{what} needs the parameters {list(names)}; missing: {missing}")
    d_model = x.shape[-1]
    for name in names:
        shape = shape_of(params[name])
        if name.startswith(("gamma", "beta", "b_2", "b_O", "cross_b_O")) and shape != (d_model,):
            raise ValueError(
                f"{name} must have shape (d_model,) = ({d_model},): x has shape {shape_of(x)}, "
                f"{name} has shape {shape}"
            )


def encoder_layer(x, params: Mapping, num_heads: int, mask=None, eps=1e-5):
    r"""One encoder layer (Vaswani et al. 2017, post-norm), built from the
    course's pieces:

    .. math::

        x' = \mathrm{LayerNorm}_1(x + \mathrm{MultiHead}(x, x, x)), \qquad
        \mathrm{out} = \mathrm{LayerNorm}_2(x' + \mathrm{FFN}(x'))

    Given the same weights it computes what
    ``torch.nn.TransformerEncoderLayer(d_model, num_heads, d_ff, dropout=0,
    batch_first=True)`` computes (ReLU, post-norm).

    Args:
        x: the sequence.
        params: the mapping of :data:`ENCODER_PARAMS`.
        num_heads: h; d_model must be divisible by it.
        mask: optional bool, broadcastable to (..., h, T, T), True = may attend.
        eps: the layer norms' epsilon.

    Returns:
        ``(output, weights)``, the attention weights per head.

    Shapes:
        x: (..., T, d_model);  b_*: (d_model,)
        W_Q, W_K, W_V, W_O: (d_model, d_model)
        W_1: (d_model, d_ff);  b_1: (d_ff,);  W_2: (d_ff, d_model)
        b_2, gamma_1, beta_1, gamma_2, beta_2: (d_model,)
        output: (..., T, d_model);  weights: (..., h, T, T)
    """
    check_sequence(x)
    _check_params(params, ENCODER_PARAMS, x, "encoder_layer")
    _check_mask(mask, num_heads, x=x)
    p = params
    a, weights = _multi_head(x, x, p, num_heads, mask)  # (..., T, d_model)
    x = layer_norm(x + a, p["gamma_1"], p["beta_1"], eps)  # LN(x + MHA(x))
    f = feed_forward(x, p["W_1"], p["b_1"], p["W_2"], p["b_2"])
    x = layer_norm(x + f, p["gamma_2"], p["beta_2"], eps)  # LN(x + FFN(x))
    return x, weights


def decoder_layer(
    y, memory, params: Mapping, num_heads: int, mask=None, memory_mask=None, eps: float = 1e-5
):
    r"""One decoder layer (Vaswani et al. 2017, post-norm): the encoder layer with a second
    attention in the middle, whose queries come from the decoder and whose keys and values
    are the encoder's states (Chapter 2's C_i, with h heads):

    .. math::

        y' = \mathrm{LN}_1(y + \mathrm{MultiHead}(y, y, y)), \quad
        y'' = \mathrm{LN}_2(y' + \mathrm{MultiHead}(y', h, h)), \quad
        \mathrm{out} = \mathrm{LN}_3(y'' + \mathrm{FFN}(y''))

    Args:
        y: the target sequence so far; memory: the encoder's states h.
        params: the mapping of :data:`DECODER_PARAMS`.
        mask: bool, broadcastable to (..., h, T, T), usually :func:`causal_mask`.
        memory_mask: bool, broadcastable to (..., h, T, S), e.g. padding of the source.

    Returns:
        ``(output, self_weights, cross_weights)``.

    Shapes:
        y: (..., T, d_model);  memory: (..., S, d_model)
        output: (..., T, d_model);  self_weights: (..., h, T, T);  cross_weights: (..., h, T, S)
    """
    check_sequence(y, "y")
    check_sequence(memory, "memory")
    if y.shape[-1] != memory.shape[-1]:
        raise ValueError(
            f"y and memory must have the same d_model (last axis): y has shape {shape_of(y)}, "
            f"memory has shape {shape_of(memory)}"
        )
    _check_params(params, DECODER_PARAMS, y, "decoder_layer")
    batch_shape(y, memory, ("y", "memory"))
    _check_mask(mask, num_heads, y=y)
    _check_mask(memory_mask, num_heads, y=y, memory=memory)
    p = params
    a, self_weights = _multi_head(y, y, p, num_heads, mask)  # (..., T, d_model)
    y = layer_norm(y + a, p["gamma_1"], p["beta_1"], eps)  # LN(y + MHA(y))
    c, cross_weights = _multi_head(y, memory, p, num_heads, memory_mask, prefix="cross_")
    y = layer_norm(y + c, p["gamma_2"], p["beta_2"], eps)  # LN(y + MHA(y, memory))
    f = feed_forward(y, p["W_1"], p["b_1"], p["W_2"], p["b_2"])
    y = layer_norm(y + f, p["gamma_3"], p["beta_3"], eps)  # LN(y + FFN(y))
    return y, self_weights, cross_weights


def _multi_head(queries, source, p: Mapping, num_heads: int, mask, prefix: str = ""):
    """MultiHead(queries, source, source) with the parameters ``prefix + "W_Q"`` etc. of p.

    Shapes: queries (..., T, d_model), source (..., S, d_model)
        -> output (..., T, d_model), weights (..., h, T, S)
    """
    W = (p[f"{prefix}W_{n}"] for n in "QKVO")
    b = {f"b_{n}": p[f"{prefix}b_{n}"] for n in "QKVO"}
    return multi_head_attention(queries, source, source, *W, num_heads, mask=mask, **b)


def _check_mask(mask, num_heads: int, **given) -> None:
    """A layer's mask against its weights' shape (..., h, T, S), named in the layer's terms:
    the queries are the first of ``given`` (x or y), the keys the last (the same, or memory).
    """
    if mask is None:
        return
    (q_name, queries), (k_name, keys) = list(given.items())[0], list(given.items())[-1]
    batch = batch_shape(queries, keys, (q_name, k_name))
    weights = (*batch, num_heads, queries.shape[-2], keys.shape[-2])
    axes = "(..., h, T, T)" if len(given) == 1 else "(..., h, T, S)"
    check_mask(mask, weights, axes, **given, num_heads=num_heads)
