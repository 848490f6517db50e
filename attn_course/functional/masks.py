r"""Masks: which keys each query may attend to.

Masks follow :func:`attn_course.functional.softmax.masked_softmax`: bool, **True = may
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

from attn_course.functional._arrays import array_namespace, shape_of

__all__ = ["causal_mask", "padding_mask"]


def causal_mask(T: int):
    """The decoder's mask: position i may attend to positions 0..i only.

    It never attends to the future.

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
