r"""The attention decoder of Bahdanau, Cho & Bengio (2015): a context C_i for every output.

At output step i the previous decoder state s_{i-1} is compared with every
encoder state h_j, the scores become a distribution alpha_i by a (masked)
softmax, and the context is their weighted sum:

.. math::

    e_{ij} = \rho(s_{i-1}, h_j), \qquad
    \alpha_{ij} = \frac{\exp e_{ij}}{\sum_k \exp e_{ik}}, \qquad
    C_i = \sum_j \alpha_{ij} h_j,

    s_i = \mathrm{GRU}([y_{i-1}; C_i], s_{i-1}), \qquad
    p(y_i) = \operatorname{softmax}(W_o [s_i; C_i; y_{i-1}] + b_o).

The three steps (score, softmax, weighted sum) are the course's primitives,
:func:`attn_course.functional.attention.attention` with a pluggable score from
:mod:`attn_course.functional.scores`; nothing is reimplemented here.

The decoder has the call signature and the single-step interface of the
Chapter 1 decoders, so :class:`attn_course.nn.decoders.Seq2Seq`,
:func:`attn_course.nn.decoders.greedy_decode` and :mod:`attn_course.train` work
with it unchanged. It keeps the weights of its last run in ``last_alpha``.
"""

from contextlib import contextmanager
from functools import partial

import torch
from torch import nn

from attn_course.functional._arrays import shape_of
from attn_course.functional.attention import attention, hard_attention
from attn_course.functional.scores import (
    additive_score,
    additive_score_projected,
    cosine_score,
    dot_score,
    scaled_dot_score,
)

__all__ = ["SCORES", "AdditiveScore", "AttentionDecoder", "ProjectedScore", "make_score"]


class AdditiveScore(nn.Module):
    """The learned additive (MLP) score rho(s, h_j) = v . tanh(s W_q + h_j W_k).

    Holds the parameters; the arithmetic is :func:`attn_course.functional.scores.additive_score`.

    Shapes: query (B, T_q, d_q), keys (B, T_k, d_k) -> scores (B, T_q, T_k);
        W_q (d_q, d_a), W_k (d_k, d_a), v (d_a,), where d_a is the width of the score's MLP.
    """

    def __init__(self, d_q: int, d_k: int, d_a: int):
        super().__init__()
        self.W_q = nn.Parameter(torch.randn(d_q, d_a) / d_q**0.5)
        self.W_k = nn.Parameter(torch.randn(d_k, d_a) / d_k**0.5)
        self.v = nn.Parameter(torch.randn(d_a) / d_a**0.5)

    def project_keys(self, keys):
        """``keys @ W_k``: the keys' half of the score, the same for every query, so a caller
        with many queries computes it once (Bahdanau et al., appendix A.1.2).

        Shapes: keys (B, T_k, d_k) -> (B, T_k, d_a)
        """
        return keys @ self.W_k

    def forward(self, query, keys, keys_W_k=None):
        """``keys_W_k``: :meth:`project_keys` of ``keys``, when the caller computed it once."""
        if keys_W_k is None:
            return additive_score(query, keys, self.W_q, self.W_k, self.v)
        return additive_score_projected(query @ self.W_q, keys_W_k, self.v)


class ProjectedScore(nn.Module):
    """A parameter-free score (dot, scaled dot, cosine) applied to (s W, h_j).

    The decoder state s and the encoder states h_j may have different sizes;
    a learned map W (d_q, d_k) brings s to the size of h first (Luong et al.'s
    "general" score when the score is the dot product). When the sizes agree
    there is no map and the score compares s and h_j directly.

    Shapes: query (B, T_q, d_q), keys (B, T_k, d_k) -> scores (B, T_q, T_k).
    """

    def __init__(self, score, d_q: int, d_k: int):
        super().__init__()
        self.score = score
        self.W = nn.Linear(d_q, d_k, bias=False) if d_q != d_k else nn.Identity()

    def forward(self, query, keys):
        return self.score(self.W(query), keys)


SCORES = {"dot": dot_score, "scaled_dot": scaled_dot_score, "cosine": cosine_score}


def make_score(name: str, d_q: int, d_k: int, d_a: int | None = None) -> nn.Module:
    """The score module called ``name``: "additive" (of width ``d_a``, default d_q), "dot",
    "scaled_dot" or "cosine"."""
    if name == "additive":
        return AdditiveScore(d_q, d_k, d_a or d_q)
    if name in SCORES:
        return ProjectedScore(SCORES[name], d_q, d_k)
    raise ValueError(f"unknown score {name!r}: choose one of {['additive', *SCORES]}")


class AttentionDecoder(nn.Module):
    """A GRU decoder that attends over the encoder states at every step.

    Args (the first four as for the Chapter 1 decoders):
        vocab_size: size of the output vocabulary V.
        d_emb: size of the token embedding e(y_{i-1}).
        d_hidden: size of the decoder state s_i.
        d_context: size of an encoder state h_j, ``d_enc`` (2 d for a bidirectional encoder).
        score: "additive" (Bahdanau), "dot", "scaled_dot" or "cosine".
        d_a: width of the additive score's MLP (default d_hidden).
        hard_k: ``None`` for soft attention; an int k to keep only the k largest
            weights at every step (hard attention, for inference; see :meth:`hard`).

    ``forward(tgt_in, h, C, src_mask)`` runs teacher-forced over a whole target
    and returns logits (B, T, V); ``step`` advances one token for greedy
    decoding. After either, ``last_alpha`` holds the attention weights
    (B, T, S) of every step taken so far, detached, for plotting.

    Shapes:
        tgt_in: (B, T) int, y_0..y_{T-1} (starting with BOS)
        h: (B, S, d_enc), encoder states;  C: (B, d_enc), the encoder's summary
        src_mask: (B, S) bool, True on real tokens, False on padding
        returns: logits (B, T, V)
    """

    def __init__(
        self,
        vocab_size: int,
        d_emb: int,
        d_hidden: int,
        d_context: int,
        score: str = "additive",
        d_a: int | None = None,
        hard_k: int | None = None,
    ):
        super().__init__()
        self.d_context = d_context
        self.embedding = nn.Embedding(vocab_size, d_emb)
        self.init = nn.Linear(d_context, d_hidden)  # s_0 = tanh(W_0 C), as in Bahdanau et al.
        self.score = make_score(score, d_hidden, d_context, d_a)
        self.cell = nn.GRUCell(d_emb + d_context, d_hidden)
        self.out = nn.Linear(d_hidden + d_context + d_emb, vocab_size)
        self.score_name = score
        self.hard_k = hard_k
        self._alphas = []  # alpha_i of every step since the last init_state
        self._keys_W_k = None  # (h, h W_k) of the last init_state, for the additive score

    @property
    def last_alpha(self):
        """Attention weights of every step since the last ``init_state``: (B, steps, S), or None."""
        return torch.stack(self._alphas, dim=1) if self._alphas else None

    @contextmanager
    def hard(self, k: int = 1):
        """Within this block the decoder uses hard attention: top-``k`` weights, renormalised.

        The same trained parameters, a different selection rule at inference::

            with model.decoder.hard(k=1):
                pred = greedy_decode(model, src, src_mask, max_len)
        """
        previous, self.hard_k = self.hard_k, k
        try:
            yield self
        finally:
            self.hard_k = previous

    def attend(self, s_prev, h, src_mask):
        """One attention read: weights alpha_i and context C_i for s_{i-1}.

        Shapes: s_prev (B, d_hidden), h (B, S, d_enc), src_mask (B, S)
            -> C_i (B, d_enc), alpha_i (B, S)
        """
        query = s_prev[:, None, :]  # (B, 1, d_hidden): one query per sequence
        mask = src_mask[:, None, :]  # (B, 1, S)
        read = attention  # soft: every input gets a weight
        if self.hard_k is not None:  # hard: only the top k survive
            read = partial(hard_attention, k=min(self.hard_k, h.shape[1]))
        score = self.score
        if self._keys_W_k is not None and self._keys_W_k[0] is h:
            score = partial(score, keys_W_k=self._keys_W_k[1])  # once
        # (B, 1, d_enc), (B, 1, S); keys = values = h
        C_i, alpha = read(query, h, h, score=score, mask=mask)
        return C_i[:, 0], alpha[:, 0]

    def init_state(self, h, C, src_mask):
        """The first state s_0 = tanh(W_0 C); also starts a fresh ``last_alpha``.

        Shapes: h (B, S, d_enc), C (B, d_enc), src_mask (B, S) -> s_0 (B, d_hidden)
        """
        _check_inputs(h, C, src_mask, self.d_context)
        self._alphas = []
        # The additive score's h_j W_k is the same at every step: computed once here.
        self._keys_W_k = None
        if isinstance(self.score, AdditiveScore):
            self._keys_W_k = (h, self.score.project_keys(h))  # (B, S, d_a), for this h only
        return torch.tanh(self.init(C))

    def step(self, y_prev, state, h, C, src_mask):
        """One output step: attend with s_{i-1}, update to s_i, score every y_i.

        ``C`` (the encoder's single summary) is only used by
        :meth:`init_state`; it is in the signature so that every decoder of
        the course is stepped the same way.

        Shapes: y_prev (B,) long, state s_{i-1} (B, d_hidden), h (B, S, d_enc),
            C (B, d_enc), src_mask (B, S) -> logits (B, V), s_i (B, d_hidden)
        """
        e = self.embedding(y_prev)  # (B, d_emb)       e(y_{i-1})
        C_i, alpha = self.attend(state, h, src_mask)  # (B, d_enc), (B, S)
        s = self.cell(torch.cat([e, C_i], dim=-1), state)  # (B, d_hidden)  s_i
        logits = self.out(torch.cat([s, C_i, e], dim=-1))  # (B, V)
        self._alphas.append(alpha.detach())  # for plotting: (B, S) per step
        return logits, s

    def forward(self, tgt_in, h, C, src_mask):
        if tgt_in.ndim != 2 or tgt_in.shape[0] != h.shape[0]:
            raise ValueError(
                f"expected tgt_in (B, T) and h (B, S, d_enc): got tgt_in {shape_of(tgt_in)}, "
                f"h {shape_of(h)}"
            )
        s = self.init_state(h, C, src_mask)  # (B, d_hidden)
        logits = []
        for i in range(tgt_in.shape[1]):  # teacher forcing: y_{i-1} is the true previous token
            logits_i, s = self.step(tgt_in[:, i], s, h, C, src_mask)
            logits.append(logits_i)
        return torch.stack(logits, dim=1)  # (B, T, V)


def _check_inputs(h, C, src_mask, d_context):
    if h.ndim != 3 or h.shape[-1] != d_context:
        raise ValueError(f"expected h (B, S, d_context={d_context}): got h {shape_of(h)}")
    B, S, d_enc = h.shape
    if C.shape != (B, d_enc) or src_mask.shape != (B, S):
        raise ValueError(
            "expected h (B, S, d_enc), C (B, d_enc) and src_mask (B, S): got "
            f"h {shape_of(h)}, C {shape_of(C)}, src_mask {shape_of(src_mask)}"
        )
