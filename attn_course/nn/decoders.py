r"""Fixed-context decoders, the encoder-decoder model and greedy decoding (torch).

Two decoders read the single context ``C`` of the encoder in two different ways:

- :class:`ChoDecoder` (Cho et al., 2014): ``C`` enters every step,

  .. math:: s_t = f(s_{t-1}, y_{t-1}, C), \qquad p(y_t) = g(s_t, y_{t-1}, C)

- :class:`SutskeverDecoder` (Sutskever et al., 2014): ``C`` is only the initial state,

  .. math:: s_0 = C, \qquad s_t = f(s_{t-1}, y_{t-1}), \qquad p(y_t) = g(s_t, y_{t-1})

Every decoder (also the attention decoder of Chapter 2) has the same interface:

- ``decoder(tgt_in, h, C, src_mask) -> logits`` (teacher forcing, all steps at once);
- ``decoder.init_state(h, C, src_mask) -> state`` and
  ``decoder.step(y_prev, state, h, C, src_mask) -> (logits, state)`` (one step, for
  greedy decoding). ``h`` and ``src_mask`` are not used by the fixed-context decoders;
  they are in the signature so that an attention decoder can look at every ``h_j``
  (:class:`attn_course.nn.attention_decoder.AttentionDecoder`).

A state is a tensor (B, d_hidden), or a pair of them (s, memory cell) for an LSTM.

Shapes:
    tgt_in: (B, T) long, [BOS, y_1, ..., y_m]; y_prev: (B,) long
    h: (B, S, d_enc); C: (B, d_enc); src_mask: (B, S) bool
    logits: (B, T, V) from ``forward``, (B, V) from ``step``
"""

import torch
from torch import nn

from attn_course.data import BOS, EOS, PAD, Batch
from attn_course.functional._arrays import shape_of
from attn_course.nn.encoders import make_rnn

__all__ = ["ChoDecoder", "Seq2Seq", "SutskeverDecoder", "greedy_decode"]


def _check_context(tgt_in: torch.Tensor, C: torch.Tensor, d_context: int) -> None:
    if tgt_in.ndim != 2 or C.ndim != 2 or C.shape != (tgt_in.shape[0], d_context):
        raise ValueError(
            f"expected tgt_in (B, T) and C (B, d_context={d_context}): got tgt_in "
            f"{shape_of(tgt_in)} and C {tuple(C.shape)}"
        )


class _RNNState:
    """Convert between a state (B, d) / (s, cell) and what nn.GRU/LSTM/RNN expect (1, B, d)."""

    @staticmethod
    def to_nn(state):
        if isinstance(state, tuple):
            return tuple(part[None] for part in state)
        return state[None]

    @staticmethod
    def from_nn(state):
        if isinstance(state, tuple):
            return tuple(part[0] for part in state)
        return state[0]


class ChoDecoder(nn.Module):
    r"""Cho et al. (2014): the context C is an input to every decoder step and to the output.

    .. math::

        s_0 = \tanh(W_0 C), \quad s_t = f(s_{t-1}, [e(y_{t-1}); C]), \quad
        \text{logits}_t = W_o [s_t; e(y_{t-1}); C]

    Args:
        vocab_size: output vocabulary size V.
        d_emb: size of the target embeddings e(y).
        d_hidden: decoder state size.
        d_context: size of C (the encoder's ``d_enc``).
        cell: ``"gru"``, ``"lstm"`` or ``"rnn"``.

    Shapes:
        see the module docstring.
    """

    def __init__(self, vocab_size, d_emb, d_hidden, d_context, cell="gru"):
        super().__init__()
        self.d_context, self.cell = d_context, cell
        self.embedding = nn.Embedding(vocab_size, d_emb)
        self.init = nn.Linear(d_context, d_hidden)
        self.rnn = make_rnn(cell, d_emb + d_context, d_hidden)
        self.out = nn.Linear(d_hidden + d_emb + d_context, vocab_size)

    def init_state(self, h, C, src_mask):
        s0 = torch.tanh(self.init(C))  # (B, d_hidden)
        return (s0, torch.zeros_like(s0)) if self.cell == "lstm" else s0

    def _run(self, y_in, state, C):
        """Steps for inputs y_in (B, T): logits (B, T, V) and the final state."""
        e = self.embedding(y_in)  # (B, T, d_emb)
        C_t = C[:, None, :].expand(-1, e.shape[1], -1)  # (B, T, d_context): same C every step
        s, last = self.rnn(torch.cat([e, C_t], dim=-1), _RNNState.to_nn(state))  # (B, T, d_hidden)
        logits = self.out(torch.cat([s, e, C_t], dim=-1))  # (B, T, V)
        return logits, _RNNState.from_nn(last)

    def forward(self, tgt_in, h, C, src_mask):
        _check_context(tgt_in, C, self.d_context)
        return self._run(tgt_in, self.init_state(h, C, src_mask), C)[0]

    def step(self, y_prev, state, h, C, src_mask):
        logits, state = self._run(y_prev[:, None], state, C)
        return logits[:, 0], state


class SutskeverDecoder(nn.Module):
    r"""Sutskever et al. (2014): the context C is only the decoder's initial state.

    .. math::

        s_0 = C, \quad s_t = f(s_{t-1}, e(y_{t-1})), \quad
        \text{logits}_t = W_o [s_t; e(y_{t-1})]

    When ``d_context != d_hidden`` (e.g. a bidirectional encoder), ``s_0 = \tanh(W_0 C)``
    maps C to the decoder's size. With an LSTM, the initial memory cell is zero.

    Args and Shapes: as :class:`ChoDecoder`.
    """

    def __init__(self, vocab_size, d_emb, d_hidden, d_context, cell="gru"):
        super().__init__()
        self.d_context, self.cell = d_context, cell
        self.embedding = nn.Embedding(vocab_size, d_emb)
        self.init = (
            nn.Identity()
            if d_context == d_hidden
            else nn.Sequential(nn.Linear(d_context, d_hidden), nn.Tanh())
        )
        self.rnn = make_rnn(cell, d_emb, d_hidden)
        self.out = nn.Linear(d_hidden + d_emb, vocab_size)

    def init_state(self, h, C, src_mask):
        s0 = self.init(C)  # (B, d_hidden)
        return (s0, torch.zeros_like(s0)) if self.cell == "lstm" else s0

    def _run(self, y_in, state):
        e = self.embedding(y_in)  # (B, T, d_emb)
        s, last = self.rnn(e, _RNNState.to_nn(state))  # (B, T, d_hidden): C is not an input
        logits = self.out(torch.cat([s, e], dim=-1))  # (B, T, V)
        return logits, _RNNState.from_nn(last)

    def forward(self, tgt_in, h, C, src_mask):
        _check_context(tgt_in, C, self.d_context)
        return self._run(tgt_in, self.init_state(h, C, src_mask))[0]

    def step(self, y_prev, state, h, C, src_mask):
        logits, state = self._run(y_prev[:, None], state)
        return logits[:, 0], state


class Seq2Seq(nn.Module):
    """An encoder and a decoder: ``model(batch) -> logits`` (B, T, V) with teacher forcing.

    ``encoder(src, src_mask) -> (h, C)``; the decoder has the interface of the module docstring.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, batch: Batch) -> torch.Tensor:
        h, C = self.encoder(batch.src, batch.src_mask)  # (B, S, d_enc), (B, d_enc)
        return self.decoder(batch.tgt_in, h, C, batch.src_mask)  # (B, T, V)


@torch.no_grad()
def greedy_decode(model: Seq2Seq, src, src_mask, max_len: int) -> torch.Tensor:
    """Decode ``max_len`` steps, each time feeding back the most likely token.

    Tokens after a sequence's first EOS are replaced by PAD.

    Shapes:
        src, src_mask: (B, S); returns (B, max_len) long.
    """
    h, C = model.encoder(src, src_mask)
    state = model.decoder.init_state(h, C, src_mask)
    y = torch.full((src.shape[0],), BOS, dtype=torch.long, device=src.device)  # (B,)
    out = []
    for _ in range(max_len):
        logits, state = model.decoder.step(y, state, h, C, src_mask)  # (B, V)
        y = logits.argmax(dim=-1)
        out.append(y)
    pred = torch.stack(out, dim=1)  # (B, max_len)
    ended = torch.cumsum((pred == EOS).long(), dim=1) - (pred == EOS).long() > 0
    return pred.masked_fill(ended, PAD)
