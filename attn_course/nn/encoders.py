r"""The RNN encoder of an encoder-decoder (torch): all hidden states h_1..h_n and the context C.

.. math::

    h_j = f(h_{j-1}, x_j), \qquad C = h_n

``f`` is a plain tanh RNN, an LSTM or a GRU cell; with ``bidirectional=True`` a
second RNN reads the sequence backwards, every ``h_j`` is the concatenation of
both directions and ``C`` concatenates the forward state after the last token
with the backward state after the first token.

Padding: sequences in a batch have different lengths; the encoder packs them
(``pack_padded_sequence``), so padded positions never update the state. ``C``
is the state after each sequence's *last real token*, and ``h`` is zero at
padded positions.

Usage::

    enc = Encoder(vocab_size, d_emb=32, d_hidden=128, cell="gru")
    h, C = enc(batch.src, batch.src_mask)      # (B, S, d_enc), (B, d_enc)

    # C as a function of the input embeddings (for sensitivity measurements):
    x = enc.embed(batch.src).requires_grad_()  # (B, S, d_emb)
    h, C = enc.encode(x, batch.src_mask)

See :func:`attn_course.experiments.recency.context_influence` for how strongly each
input position influences C.
"""

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attn_course.functional._arrays import shape_of

__all__ = ["CELLS", "Encoder", "make_rnn", "mask_lengths"]

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def make_rnn(cell: str, input_size: int, hidden_size: int, bidirectional: bool = False):
    """A one-layer batch-first ``nn.RNN`` (tanh), ``nn.LSTM`` or ``nn.GRU``."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
    return CELLS[cell](input_size, hidden_size, batch_first=True, bidirectional=bidirectional)


def mask_lengths(mask: torch.Tensor) -> torch.Tensor:
    """Lengths (B,) of a (B, S) padding mask whose True entries come first in every row."""
    if mask.dtype != torch.bool or mask.ndim != 2:
        raise ValueError(
            f"the mask must be a bool tensor (B, S), got {mask.dtype} {shape_of(mask)}"
        )
    lengths = mask.sum(dim=1)
    prefix = torch.arange(mask.shape[1], device=mask.device)[None, :] < lengths[:, None]
    if not torch.equal(prefix, mask):
        raise ValueError("the mask must be True for the real tokens first, then False (padding)")
    if (lengths == 0).any():
        raise ValueError("every sequence needs at least one real token (a mask row is all False)")
    return lengths


class Encoder(nn.Module):
    """Embedding + RNN/LSTM/GRU (optionally bidirectional): h_1..h_n and C.

    Args:
        vocab_size: number of token ids.
        d_emb: embedding size.
        d_hidden: hidden size of each direction.
        cell: ``"gru"``, ``"lstm"`` or ``"rnn"`` (tanh).
        bidirectional: also read right to left; then ``d_enc = 2 * d_hidden``.

    Shapes:
        src: (B, S) long; src_mask: (B, S) bool, True = real token (a prefix of each row)
        h: (B, S, d_enc), zero at padded positions
        C: (B, d_enc)
    """

    def __init__(
        self,
        vocab_size: int,
        d_emb: int,
        d_hidden: int,
        cell: str = "gru",
        bidirectional: bool = False,
    ):
        super().__init__()
        self.cell, self.bidirectional = cell, bidirectional
        self.d_enc = d_hidden * (2 if bidirectional else 1)
        self.embedding = nn.Embedding(vocab_size, d_emb)
        self.rnn = make_rnn(cell, d_emb, d_hidden, bidirectional)

    def embed(self, src: torch.Tensor) -> torch.Tensor:
        """Token ids (B, S) -> input vectors x (B, S, d_emb)."""
        return self.embedding(src)

    def encode(self, x: torch.Tensor, src_mask: torch.Tensor):
        """Run the RNN over input vectors x (B, S, d_emb): returns (h, C)."""
        if x.ndim != 3 or tuple(x.shape[:2]) != shape_of(src_mask):
            raise ValueError(
                "inputs (B, S, d_emb) and src_mask (B, S) disagree: "
                f"x has shape {shape_of(x)}, "
                f"src_mask has shape {shape_of(src_mask)}"
            )
        B, S, _ = x.shape
        lengths = mask_lengths(src_mask).cpu()
        packed = pack_padded_sequence(
            x,
            lengths,
            batch_first=True,
            enforce_sorted=False,
        )
        out, last = self.rnn(packed)
        # (B, S, d_enc)
        h, _ = pad_packed_sequence(out, batch_first=True, total_length=S)
        if self.cell == "lstm":
            last = last[0]  # (h_n, c_n): C is the hidden state, not the cell
        # last: (num_directions, B, d_hidden); the backward direction ends at
        # token 1
        C = torch.cat(list(last), dim=-1)  # (B, d_enc)
        return h, C

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor):
        if src.shape != src_mask.shape:
            raise ValueError(
                f"src and src_mask must have the same shape (B, S): got {shape_of(src)} "
                f"and {shape_of(src_mask)}"
            )
        return self.encode(self.embed(src), src_mask)
