"""Small helpers shared by the NumPy/torch code paths: namespaces and shape checks."""

import numpy as np
from array_api_compat import array_namespace

__all__ = [
    "array_namespace",
    "batch_shape",
    "check_mask",
    "check_feature_dims",
    "check_same_length",
    "check_sequence",
    "project",
    "shape_of",
]


def shape_of(x) -> tuple[int, ...]:
    """The shape of an array or tensor as a plain tuple (torch.Size prints noisily)."""
    return tuple(int(n) for n in x.shape)


def check_feature_dims(query, keys, what: str | None = "d_k") -> None:
    """Check that a query (d,) or queries (..., T_q, d) can be scored against keys (..., T_k, d).

    With ``what=None`` the feature sizes may differ (the additive score projects both).
    """
    if query.ndim < 1 or keys.ndim < 2:
        raise ValueError(
            f"query needs at least 1 axis and keys at least 2 (T_k, d_k): "
            f"got query {shape_of(query)} and keys {shape_of(keys)}"
        )
    if query.ndim != 1 and query.ndim != keys.ndim:
        raise ValueError(
            "queries must be (d,) or have a T_q axis like the keys' T_k axis, (..., T_q, d) with "
            f"(..., T_k, d): query has shape {shape_of(query)}, keys have shape "
            f"{shape_of(keys)} (one query per batch element? use query[..., None, :])"
        )
    batch_q, batch_k = shape_of(query)[:-2], shape_of(keys)[:-2]
    if query.ndim > 1 and any(
        a != b and 1 not in (a, b) for a, b in zip(batch_q, batch_k, strict=True)
    ):
        raise ValueError(
            f"query and keys have different batch sizes: query has shape {shape_of(query)}, "
            f"keys have shape {shape_of(keys)}"
        )
    if what is not None and query.shape[-1] != keys.shape[-1]:
        raise ValueError(
            f"query and keys must have the same feature size {what} (last axis): "
            f"query has shape {shape_of(query)}, keys have shape {shape_of(keys)}"
        )


def check_same_length(keys, values) -> None:
    """Every key has exactly one value: the T_k axes (second to last) must match."""
    if values.ndim < 2 or keys.shape[:-1] != values.shape[:-1]:
        raise ValueError(
            "keys and values must pair up one to one (same shape except the last axis): "
            f"keys have shape {shape_of(keys)}, values have shape {shape_of(values)}"
        )


def check_sequence(x, name: str = "x") -> None:
    """A sequence of vectors has at least two axes, (..., T, d)."""
    if x.ndim < 2:
        raise ValueError(
            f"{name} must be a sequence of vectors (..., T, d), got shape {shape_of(x)}"
        )


def project(x, W, b=None, x_name: str = "x", W_name: str = "W"):
    """x W (+ b), the map every projection uses. Shapes: x (..., T, d_in), W (d_in, d_out)."""
    if W.ndim != 2 or x.shape[-1] != W.shape[0]:
        raise ValueError(
            f"{x_name} @ {W_name} needs {W_name} of shape (d_in, d_out) with d_in = the last "
            f"axis of {x_name}: {x_name} has shape {shape_of(x)}, {W_name} has shape {shape_of(W)}"
        )
    if b is None:
        return x @ W
    if b.shape != (W.shape[1],):
        raise ValueError(
            f"the bias of {W_name} must have shape (d_out,) = ({W.shape[1]},): "
            f"{W_name} has shape {shape_of(W)}, its bias has shape {shape_of(b)}"
        )
    return x @ W + b


def batch_shape(query, keys, names: tuple[str, str] = ("query", "keys")) -> tuple[int, ...]:
    """The batch axes ``...`` that (..., T_q, d) and (..., T_k, d) broadcast to."""
    try:
        return tuple(np.broadcast_shapes(shape_of(query)[:-2], shape_of(keys)[:-2]))
    except ValueError as err:
        raise ValueError(
            f"{names[0]} and {names[1]} have different batch sizes: {names[0]} has shape "
            f"{shape_of(query)}, {names[1]} {_have(names[1])} shape {shape_of(keys)}"
        ) from err


def check_mask(mask, weights: tuple[int, ...], axes: str, **given) -> None:
    """A mask (True = may attend) must broadcast to the attention weights' shape ``weights``,
    whose axes ``axes`` names (e.g. ``"(..., h, T_q, T_k)"``), without growing it.

    ``given`` are the caller's arguments that shape comes from (arrays or sizes such as
    ``num_heads``); the error names each of them, so that a wrong mask is reported in the
    caller's terms, not as a shape built inside.
    """
    if mask is None:
        return
    m = shape_of(mask) if hasattr(mask, "shape") else tuple(np.shape(mask))
    if len(m) <= len(weights) and all(
        a in (1, b) for a, b in zip(reversed(m), reversed(weights), strict=False)
    ):
        return
    inputs = ", ".join(
        f"{name} = {value}"
        if isinstance(value, int)
        else f"{name} {_have(name)} shape {shape_of(value)}"
        for name, value in given.items()
    )
    raise ValueError(
        f"mask must broadcast to the attention weights' shape {axes} = {weights}: "
        f"mask has shape {m}, {inputs}"
    )


def _have(name: str) -> str:
    return "have" if name.endswith("s") else "has"
