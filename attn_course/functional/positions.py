r"""Positional encodings: attention treats its input as a set, so positions are added to it."""

import numpy as np

__all__ = ["sinusoidal_positional_encoding"]


def sinusoidal_positional_encoding(T: int, d_model: int, base: float = 10000.0):
    r"""The fixed positional encoding of Vaswani et al. 2017.

    .. math::

        PE_{(pos, 2i)} = \sin\!\left(pos / base^{2i/d_{model}}\right), \qquad
        PE_{(pos, 2i+1)} = \cos\!\left(pos / base^{2i/d_{model}}\right)

    Each pair of columns is a clock turning at its own speed, from one turn
    every 2*pi positions down to one every 2*pi*base positions. Added to the
    token embeddings, it gives every position a distinct signature.

    Returns a NumPy float64 array (``torch.as_tensor(pe, dtype=...)`` for
    torch).

    Shapes: returns (T, d_model).
    """
    if T < 1 or d_model < 1:
        got = f"got T={T}, d_model={d_model}"
        raise ValueError(f"T and d_model must be positive, {got}")
    pos = np.arange(T)[:, None]  # (T, 1)
    two_i = np.arange(0, d_model, 2)  # (ceil(d/2),)  the even columns 2i
    angle = pos / base ** (two_i / d_model)  # (T, ceil(d/2))
    pe = np.empty((T, d_model))
    pe[:, 0::2] = np.sin(angle)
    # an odd d_model has one sine column more than cosine columns
    pe[:, 1::2] = np.cos(angle[:, : d_model // 2])
    return pe
