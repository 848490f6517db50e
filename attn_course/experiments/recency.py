r"""Recency: how strongly each input position of an RNN encoder influences its context C.

Chapter 1 measures it on trained and untrained encoders; the finite-difference version a
student writes is :func:`attn_course.answers.encoder_decoder.position_influence`.
"""

import torch

from attn_course.nn.encoders import Encoder

__all__ = ["context_influence"]


def context_influence(encoder: Encoder, src: torch.Tensor, src_mask: torch.Tensor):
    r"""How strongly each input position influences the context: \|dC/dx_j\|_F for every j.

    ``x_j`` is the embedding of token j; the Jacobian dC/dx_j (d_enc, d_emb) is computed
    exactly by autograd, one component of C at a time (sequences in a batch do not
    interact, so one backward pass serves the whole batch). The NumPy twin
    :func:`attn_course.answers.encoder_decoder.position_influence` measures the same quantity by
    finite differences.

    Shapes:
        src, src_mask: (B, S);  returns: (B, S), zero at padded positions.
    """
    x = encoder.embed(src).detach().requires_grad_()  # (B, S, d_emb)
    _, C = encoder.encode(x, src_mask)  # (B, d_enc)
    squared = torch.zeros(src.shape, dtype=x.dtype)  # (B, S)
    for k in range(C.shape[1]):
        (grad,) = torch.autograd.grad(C[:, k].sum(), x, retain_graph=True)  # (B, S, d_emb)
        squared += grad.pow(2).sum(dim=-1)  # adds row k of every Jacobian dC/dx_j
    return squared.sqrt() * src_mask
